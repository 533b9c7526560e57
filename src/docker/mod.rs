//! The one boundary to dockerd for what the shim asks on its own initiative:
//! image users and inspects for the standards, the lifecycle's list, inspect,
//! pause, unpause, stop, start and event stream, the audit's reads, and the
//! health check's ping. Requests of clients are forwarded by `proxy/` and
//! never come here.
//!
//! - [`DockerApi`]: the calls, as a small object-safe trait, so that the
//!   lifecycle and the audit run in tests against an in-memory fake;
//! - [`Docker`] (in `client.rs`): the real one, the only bollard client;
//! - [`DockerError`]: what callers need to tell apart (not found, already in
//!   that state, unreachable, …), so no caller ever matches bollard's errors;
//! - [`ContainerInfo`]: what the shim needs of a container's inspect, read
//!   from dockerd's JSON by a pure function.

mod client;
#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde_json::Value;

pub use client::Docker;

/// What a dockerd call can end in, besides success.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// dockerd does not answer: not running, socket gone, connection broken.
    #[error("cannot reach dockerd at {path}: {message}")]
    Unreachable { path: PathBuf, message: String },
    /// 404: no such container, image, exec or volume (dockerd's message).
    #[error("dockerd: {0}")]
    NotFound(String),
    /// 304: the object already is in the state asked for (a start of a
    /// running container).
    #[error("dockerd: already in that state")]
    NotModified,
    /// 409 to a pause: someone else paused the container first.
    #[error("dockerd: {0}")]
    AlreadyPaused(String),
    /// Any other 409: the object's state does not allow it (not running,
    /// not paused, restarting).
    #[error("dockerd: {0}")]
    Conflict(String),
    /// Any other error answer.
    #[error("dockerd answered {status}: {message}")]
    Api { status: u16, message: String },
    /// An answer that cannot be read.
    #[error("dockerd sent an answer that cannot be read: {0}")]
    Malformed(String),
}

/// Which of dockerd's events to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Container,
    Image,
}

/// One event: what happened (`start`, `pause`, `exec_start: sh -c …`) to
/// which object (a container's id, an image's reference).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub action: String,
    pub id: String,
    /// The actor's attributes: for a container, `name`, `image` and its
    /// labels, as they were when it happened (a container removed since can
    /// no longer be inspected).
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// Every dockerd call the shim makes on its own initiative. Object-safe
/// (boxed futures) so the shim holds an `Arc<dyn DockerApi>`.
pub trait DockerApi: Send + Sync {
    /// `GET /_ping`: whether dockerd answers.
    fn ping(&self) -> BoxFuture<'_, Result<(), DockerError>>;

    /// The ids of every container, running or not.
    fn list_containers(&self) -> BoxFuture<'_, Result<Vec<String>, DockerError>>;

    /// A container's inspect as dockerd's JSON, every field kept; by id, name
    /// or id prefix.
    fn inspect_container_json<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Value, DockerError>>;

    /// What the shim needs of a container's inspect.
    fn inspect_container<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<ContainerInfo, DockerError>> {
        Box::pin(async move {
            let inspect = self.inspect_container_json(reference).await?;
            ContainerInfo::from_inspect(&inspect)
                .ok_or_else(|| DockerError::Malformed(format!("inspect of {reference} has no Id")))
        })
    }

    /// `GET /containers/{id}/changes`: what a container wrote to its root.
    fn container_changes<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Value, DockerError>>;

    /// What the shim needs of an image's inspect. `Ok(None)` when the image
    /// does not exist.
    fn image_info<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<ImageInfo>, DockerError>>;

    /// One file of a container's filesystem (`GET /containers/{id}/archive`),
    /// symlinks followed inside the container, at most [`MAX_FILE`] bytes.
    /// `Ok(None)` when there is no such file.
    fn container_file<'a>(&'a self, id: &'a str, path: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, DockerError>>;

    /// One file of an image, as [`DockerApi::container_file`] reads it from a
    /// container created for the purpose (never started, no network,
    /// labelled [`LABEL_PROBE`]) and removed again.
    fn image_file<'a>(&'a self, image_id: &'a str, path: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, DockerError>>;

    /// Removes a container, running or not, with its anonymous volumes.
    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>>;

    /// A volume's inspect as dockerd's JSON (`Driver`, `Options`).
    fn inspect_volume_json<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Value, DockerError>>;

    /// dockerd's data root (`DockerRootDir` of `GET /info`).
    fn data_root(&self) -> BoxFuture<'_, Result<String, DockerError>>;

    /// The id of the container an exec belongs to.
    fn exec_container<'a>(&'a self, exec_id: &'a str) -> BoxFuture<'a, Result<String, DockerError>>;

    fn pause<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>>;
    fn unpause<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>>;
    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>>;
    /// Stops with the container's own stop timeout (or dockerd's default).
    fn stop<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>>;

    /// The last `lines` lines of a container's log, stdout and stderr
    /// (demultiplexed when it has no TTY), at most 64 KiB.
    fn logs_tail<'a>(&'a self, id: &'a str, lines: usize) -> BoxFuture<'a, Result<String, DockerError>> {
        let _ = (id, lines);
        Box::pin(async { Err(DockerError::Malformed("logs are not available here".into())) })
    }

    /// `POST /containers/create` straight on dockerd (the shim's own
    /// containers: probes); the new id.
    fn create_container<'a>(&'a self, body: &'a Value) -> BoxFuture<'a, Result<String, DockerError>> {
        let _ = body;
        Box::pin(async { Err(DockerError::Malformed("create is not available here".into())) })
    }

    /// dockerd's events of one kind, replayed from `since` when given. The
    /// request is made when the stream is first polled; the stream ends
    /// (after an error item, or without one) when dockerd goes away.
    fn events(&self, kind: EventKind, since: Option<SystemTime>) -> BoxStream<'static, Result<Event, DockerError>>;
}

/// The label on the containers the shim creates to read an image's files.
pub const LABEL_PROBE: &str = "forge-shim.probe";

/// The largest file [`DockerApi::container_file`] reads.
pub const MAX_FILE: usize = 1 << 20;

/// What the shim needs of an image's inspect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The content id, `sha256:…`.
    pub id: String,
    /// `Config.User`, `""` for root by default.
    pub user: String,
    /// `RepoDigests`: the repositories it was pulled from or pushed to, by
    /// digest (`postgres@sha256:…`). `docker tag` cannot add one.
    pub repo_digests: Vec<String>,
}

impl ImageInfo {
    pub fn from_inspect(inspect: &Value) -> Option<ImageInfo> {
        let id = inspect["Id"].as_str().filter(|id| !id.is_empty())?.to_string();
        let user = inspect["Config"]["User"].as_str().unwrap_or_default().to_string();
        let repo_digests = inspect["RepoDigests"]
            .as_array()
            .map(|list| list.iter().filter_map(|d| d.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Some(ImageInfo { id, user, repo_digests })
    }
}

/// What the shim needs of a container's inspect.
#[derive(Clone, Debug, Default)]
pub struct ContainerInfo {
    pub id: String,
    /// Without the leading `/`.
    pub name: Option<String>,
    /// The image as the create request named it (`Config.Image`).
    pub image: Option<String>,
    /// The image's content id (`Image`).
    pub image_id: Option<String>,
    pub labels: Option<serde_json::Map<String, Value>>,
    pub pid: Option<i64>,
    pub running: bool,
    pub paused: bool,
    pub started_at: Option<String>,
    pub nano_cpus: Option<i64>,
    pub memory_limit: Option<i64>,
    /// The container's addresses on its Docker networks.
    pub addresses: Vec<IpAddr>,
    /// Its TCP ports published on the host, as bound while it runs.
    pub published: Vec<PublishedPort>,
    /// Whether it has a network namespace of its own (not `host`, not
    /// `container:<id>`), so its `/proc/<pid>/net/dev` is its own traffic.
    pub own_network: bool,
    /// `Config.User` (merged with the image's).
    pub user: Option<String>,
    /// `HostConfig` as dockerd's JSON, for the update rules.
    pub host_config: Option<Value>,
}

impl ContainerInfo {
    /// Who the container is to the standards' selectors; `repo_digests`
    /// are its image's, when the caller looked them up.
    pub fn identity<'a>(&'a self, repo_digests: &'a [String]) -> crate::config::ContainerIdentity<'a> {
        crate::config::ContainerIdentity {
            name: self.name.as_deref(),
            image: self.image.as_deref(),
            labels: self.labels.as_ref(),
            image_id: self.image_id.as_deref(),
            repo_digests,
        }
    }

    /// Reads dockerd's inspect JSON (`GET /containers/{id}/json`); `None`
    /// when it has no `Id`.
    pub fn from_inspect(inspect: &Value) -> Option<ContainerInfo> {
        let id = inspect.get("Id")?.as_str()?.to_string();
        let text = |v: &Value| v.as_str().map(str::to_string);
        let config = &inspect["Config"];
        let state = &inspect["State"];
        let host_config = inspect.get("HostConfig").filter(|h| h.is_object());
        let settings = &inspect["NetworkSettings"];
        let addresses = settings["Networks"]
            .as_object()
            .into_iter()
            .flat_map(|networks| networks.values())
            .flat_map(|n| [&n["IPAddress"], &n["GlobalIPv6Address"]])
            .filter_map(|a| a.as_str()?.parse().ok())
            .collect();
        let network_mode = host_config.and_then(|h| h["NetworkMode"].as_str());
        Some(ContainerInfo {
            id,
            name: inspect["Name"].as_str().map(|n| n.trim_start_matches('/').to_string()),
            image: text(&config["Image"]),
            image_id: text(&inspect["Image"]),
            labels: config["Labels"].as_object().cloned(),
            pid: state["Pid"].as_i64(),
            running: state["Running"].as_bool().unwrap_or(false),
            paused: state["Paused"].as_bool().unwrap_or(false),
            started_at: text(&state["StartedAt"]),
            nano_cpus: host_config.and_then(|h| h["NanoCpus"].as_i64()),
            memory_limit: host_config.and_then(|h| h["Memory"].as_i64()),
            addresses,
            published: published_ports(&settings["Ports"]),
            own_network: network_mode.is_none_or(|mode| mode != "host" && !mode.starts_with("container:")),
            user: text(&config["User"]),
            host_config: host_config.cloned(),
        })
    }
}

/// One TCP port published on the host.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

/// `NetworkSettings.Ports` (`"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]`)
/// to the TCP ports bound on the host.
fn published_ports(ports: &Value) -> Vec<PublishedPort> {
    let mut published = Vec::new();
    for (key, bindings) in ports.as_object().into_iter().flatten() {
        let Some((port, "tcp")) = key.split_once('/') else {
            continue;
        };
        let Ok(container_port) = port.parse() else { continue };
        for binding in bindings.as_array().into_iter().flatten() {
            let host_port = binding["HostPort"].as_str().and_then(|p| p.parse().ok());
            let host_ip = binding["HostIp"]
                .as_str()
                .filter(|ip| !ip.is_empty())
                .unwrap_or("0.0.0.0");
            if let (Some(host_port), Ok(host_ip)) = (host_port, host_ip.parse()) {
                published.push(PublishedPort {
                    host_ip,
                    host_port,
                    container_port,
                });
            }
        }
    }
    published.sort_by_key(|p| (p.host_port, p.host_ip));
    published.dedup();
    published
}

/// A read of `/etc/passwd` (from [`DockerApi::container_file`] or
/// [`DockerApi::image_file`]) as the user rules take it.
/// A log answer as text: the frames of a multiplexed stream (8-byte
/// headers: stream, three zeros, a big-endian length) joined, or the bytes
/// as they are when they are not framed (a TTY's log).
pub fn demux_log(bytes: &[u8]) -> String {
    let framed = |mut rest: &[u8]| -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(rest.len());
        while !rest.is_empty() {
            if rest.len() < 8 || rest[0] > 2 || rest[1..4] != [0, 0, 0] {
                return None;
            }
            let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let frame = rest.get(8..8 + len)?;
            out.extend_from_slice(frame);
            rest = &rest[8 + len..];
        }
        Some(out)
    };
    match framed(bytes) {
        Some(text) => String::from_utf8_lossy(&text).into_owned(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

pub fn passwd_from(read: Result<Option<Bytes>, DockerError>) -> crate::standards::user::Passwd {
    use crate::standards::user::Passwd;
    match read {
        Ok(Some(bytes)) => Passwd::Read(std::sync::Arc::from(&bytes[..])),
        Ok(None) => Passwd::Absent,
        Err(e) => Passwd::Unreadable(e.to_string()),
    }
}
