//! [`Docker`]: the real [`DockerApi`], and the only bollard client.
//!
//! Actions (pause, unpause, start, stop), the image and exec inspects and
//! the event streams go through bollard, which negotiates the API version.
//! Reads whose every field matters (container and volume inspects, the
//! container list, `/changes`, `/_ping`) are plain `GET`s on the same
//! socket, read as dockerd's JSON: bollard's typed models drop fields they
//! do not know and reject some they do not expect.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;
use tokio::net::UnixStream;

use super::{DockerApi, DockerError, Event, EventKind, ImageInfo, LABEL_PROBE, MAX_FILE};

/// Characters escaped in one path segment of a raw request: a reference
/// taken from a client's request must not reach another endpoint.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Characters escaped in a query value.
const QUERY_VALUE: &AsciiSet = &SEGMENT.add(b'&').add(b'=').add(b'+').add(b';');

/// The most symlinks [`Docker::read_file`] follows, as the kernel's 40 is
/// more than any image needs.
const MAX_LINKS: usize = 8;

/// bollard's own timeout for one request.
const BOLLARD_TIMEOUT_SECS: u64 = 120;
/// The longest a raw read waits for its answer once connected.
const RAW_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A lazily connected bollard client. The API version is negotiated on first
/// use (dockerd 20.10 speaks 1.41, below bollard's default), and again after
/// an error, so a dockerd that restarts is picked up without a shim restart.
pub struct Docker {
    path: PathBuf,
    /// How long a raw read waits to connect.
    connect_timeout: Duration,
    client: Arc<Mutex<Option<bollard::Docker>>>,
}

impl Docker {
    pub fn new(path: &Path, connect_timeout: Duration) -> Docker {
        Docker {
            path: path.to_path_buf(),
            connect_timeout,
            client: Arc::new(Mutex::new(None)),
        }
    }

    async fn client(&self) -> Result<bollard::Docker, DockerError> {
        connect(&self.path, &self.client).await
    }

    /// Forgets the negotiated client, e.g. after dockerd went away.
    fn reset(&self) {
        self.client.lock().take();
    }

    /// Maps a bollard error, forgetting the client unless dockerd gave a
    /// plain answer about the object.
    fn error(&self, e: bollard::errors::Error) -> DockerError {
        let error = from_bollard(&self.path, e);
        if !matches!(
            error,
            DockerError::NotFound(_)
                | DockerError::NotModified
                | DockerError::AlreadyPaused(_)
                | DockerError::Conflict(_)
        ) {
            self.reset();
        }
        error
    }

    fn unreachable(&self, message: impl std::fmt::Display) -> DockerError {
        DockerError::Unreachable {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    /// `GET path` on dockerd's socket; the body of a 200 answer.
    async fn get(&self, path: &str) -> Result<Bytes, DockerError> {
        let (status, body) = self.request(http::Method::GET, path, None, usize::MAX).await?;
        if status == StatusCode::OK {
            return Ok(body);
        }
        Err(from_status(status.as_u16(), answer_message(&body)))
    }

    /// One request on its own connection to dockerd's socket: the answer's
    /// status and body (at most `limit` bytes, else an error).
    async fn request(
        &self,
        method: http::Method,
        path: &str,
        json: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), DockerError> {
        let stream = match tokio::time::timeout(self.connect_timeout, UnixStream::connect(&self.path)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(self.unreachable(e)),
            Err(_) => return Err(self.unreachable("connect timed out")),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(e))?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "docker");
        if json.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(json.unwrap_or_default())))
            .map_err(|e| DockerError::Malformed(format!("request {path}: {e}")))?;
        let exchange = async {
            let response = sender.send_request(request).await.map_err(|e| self.unreachable(e))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| match e.downcast::<LengthLimitError>() {
                    Ok(_) => DockerError::Malformed(format!("{path}: the answer is larger than {limit} bytes")),
                    Err(e) => self.unreachable(e),
                })?
                .to_bytes();
            Ok::<_, DockerError>((status, body))
        };
        // The connection is driven here, next to its one request: it ends
        // with it, and no task outlives the call. A connection that ends
        // cleanly (`Connection: close`) may have delivered the whole answer
        // already: the exchange then still completes, or fails on its own.
        let mut connection = std::pin::pin!(connection);
        let mut exchange = std::pin::pin!(exchange);
        tokio::time::timeout(RAW_READ_TIMEOUT, async {
            tokio::select! {
                biased;
                answered = &mut exchange => answered,
                closed = &mut connection => match closed {
                    Ok(()) => exchange.await,
                    Err(e) => Err(self.unreachable(e)),
                },
            }
        })
        .await
        .map_err(|_| self.unreachable(format!("no answer to {path} within {RAW_READ_TIMEOUT:?}")))?
    }

    /// Reads one file out of a container's `archive` endpoint, following
    /// symlinks (each resolved inside the container) up to [`MAX_LINKS`].
    async fn read_file(&self, id: &str, path: &str) -> Result<Option<Bytes>, DockerError> {
        let mut path = path.to_string();
        for _ in 0..=MAX_LINKS {
            let request = format!(
                "/containers/{}/archive?path={}",
                segment(id),
                utf8_percent_encode(&path, QUERY_VALUE)
            );
            // A tar of one file: its header, its bytes, padding, two end blocks.
            let (status, tar) = self
                .request(http::Method::GET, &request, None, MAX_FILE + 64 * 1024)
                .await?;
            match status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Ok(None),
                other => return Err(from_status(other.as_u16(), answer_message(&tar))),
            }
            match first_entry(&tar).map_err(|e| DockerError::Malformed(format!("archive of {path}: {e}")))? {
                Entry::File(bytes) => return Ok(Some(bytes)),
                Entry::Link(target) => path = follow_link(&path, &target),
            }
        }
        Err(DockerError::Malformed(format!(
            "{path}: more than {MAX_LINKS} symlinks"
        )))
    }

    async fn get_json(&self, path: &str) -> Result<Value, DockerError> {
        let body = self.get(path).await?;
        serde_json::from_slice(&body).map_err(|e| DockerError::Malformed(format!("{path}: {e}")))
    }
}

impl DockerApi for Docker {
    fn ping(&self) -> BoxFuture<'_, Result<(), DockerError>> {
        Box::pin(async move { self.get("/_ping").await.map(drop) })
    }

    fn list_containers(&self) -> BoxFuture<'_, Result<Vec<String>, DockerError>> {
        Box::pin(async move {
            let list = self.get_json("/containers/json?all=1").await?;
            let list = list
                .as_array()
                .ok_or_else(|| DockerError::Malformed("/containers/json: not a list".into()))?;
            Ok(list
                .iter()
                .filter_map(|summary| summary["Id"].as_str().map(str::to_string))
                .collect())
        })
    }

    fn inspect_container_json<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Value, DockerError>> {
        Box::pin(async move { self.get_json(&format!("/containers/{}/json", segment(reference))).await })
    }

    fn container_changes<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Value, DockerError>> {
        Box::pin(async move { self.get_json(&format!("/containers/{}/changes", segment(id))).await })
    }

    fn image_info<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<ImageInfo>, DockerError>> {
        Box::pin(async move {
            match self.get_json(&format!("/images/{}/json", segment(image))).await {
                Ok(inspect) => ImageInfo::from_inspect(&inspect)
                    .map(Some)
                    .ok_or_else(|| DockerError::Malformed(format!("inspect of image {image} has no Id"))),
                Err(DockerError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn container_file<'a>(&'a self, id: &'a str, path: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, DockerError>> {
        Box::pin(self.read_file(id, path))
    }

    fn image_file<'a>(&'a self, image_id: &'a str, path: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, DockerError>> {
        Box::pin(async move {
            let spec = serde_json::json!({
                "Image": image_id,
                // Never started: the entrypoint only has to be there for
                // dockerd to accept an image without one.
                "Entrypoint": ["/forge-shim-probe"],
                "Cmd": [],
                "NetworkDisabled": true,
                "Labels": { LABEL_PROBE: "1" },
                "HostConfig": { "NetworkMode": "none" },
            });
            let body = serde_json::to_vec(&spec).map_err(|e| DockerError::Malformed(e.to_string()))?;
            let (status, answer) = self
                .request(http::Method::POST, "/containers/create", Some(body), 64 * 1024)
                .await?;
            if status != StatusCode::CREATED {
                return Err(from_status(status.as_u16(), answer_message(&answer)));
            }
            let created: Value = serde_json::from_slice(&answer)
                .map_err(|e| DockerError::Malformed(format!("create of a probe of {image_id}: {e}")))?;
            let id = created["Id"]
                .as_str()
                .ok_or_else(|| DockerError::Malformed(format!("create of a probe of {image_id}: no Id")))?
                .to_string();
            let read = self.read_file(&id, path).await;
            let removed = self.remove_container(&id).await;
            if let Err(e) = &removed {
                tracing::warn!(probe = %id, error = %e, "cannot remove the probe container");
            }
            read
        })
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            let path = format!("/containers/{}?force=1&v=1", segment(id));
            let (status, answer) = self.request(http::Method::DELETE, &path, None, 64 * 1024).await?;
            match status {
                StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
                other => Err(from_status(other.as_u16(), answer_message(&answer))),
            }
        })
    }

    fn inspect_volume_json<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Value, DockerError>> {
        Box::pin(async move { self.get_json(&format!("/volumes/{}", segment(name))).await })
    }

    fn data_root(&self) -> BoxFuture<'_, Result<String, DockerError>> {
        Box::pin(async move {
            let info = self.get_json("/info").await?;
            info["DockerRootDir"]
                .as_str()
                .filter(|root| !root.is_empty())
                .map(str::to_string)
                .ok_or_else(|| DockerError::Malformed("/info has no DockerRootDir".into()))
        })
    }

    fn exec_container<'a>(&'a self, exec_id: &'a str) -> BoxFuture<'a, Result<String, DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let inspect = client.inspect_exec(exec_id).await.map_err(|e| self.error(e))?;
            inspect
                .container_id
                .ok_or_else(|| DockerError::Malformed(format!("exec {exec_id} names no container")))
        })
    }

    fn pause<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client.pause_container(id).await.map_err(|e| self.error(e))
        })
    }

    fn unpause<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client.unpause_container(id).await.map_err(|e| self.error(e))
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
                .await
                .map_err(|e| self.error(e))
        })
    }

    fn stop<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .stop_container(id, None::<bollard::query_parameters::StopContainerOptions>)
                .await
                .map_err(|e| self.error(e))
        })
    }

    fn logs_tail<'a>(&'a self, id: &'a str, lines: usize) -> BoxFuture<'a, Result<String, DockerError>> {
        Box::pin(async move {
            let path = format!("/containers/{}/logs?stdout=1&stderr=1&tail={lines}", segment(id));
            let (status, answer) = self.request(http::Method::GET, &path, None, 64 * 1024).await?;
            if status != StatusCode::OK {
                return Err(from_status(status.as_u16(), answer_message(&answer)));
            }
            Ok(super::demux_log(&answer))
        })
    }

    fn create_container<'a>(&'a self, body: &'a Value) -> BoxFuture<'a, Result<String, DockerError>> {
        Box::pin(async move {
            let bytes = serde_json::to_vec(body).map_err(|e| DockerError::Malformed(e.to_string()))?;
            let (status, answer) = self
                .request(http::Method::POST, "/containers/create", Some(bytes), 64 * 1024)
                .await?;
            if status != StatusCode::CREATED {
                return Err(from_status(status.as_u16(), answer_message(&answer)));
            }
            let created: Value =
                serde_json::from_slice(&answer).map_err(|e| DockerError::Malformed(format!("create answer: {e}")))?;
            created["Id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| DockerError::Malformed("create answer has no Id".into()))
        })
    }

    fn events(&self, kind: EventKind, since: Option<SystemTime>) -> BoxStream<'static, Result<Event, DockerError>> {
        let path = self.path.clone();
        let slot = self.client.clone();
        let kind = match kind {
            EventKind::Container => "container",
            EventKind::Image => "image",
        };
        let since = since.map(docker_timestamp);
        let events = futures_util::stream::once(async move {
            let client = connect(&path, &slot).await?;
            let mut filters = std::collections::HashMap::new();
            filters.insert("type".to_string(), vec![kind.to_string()]);
            let mut options = bollard::query_parameters::EventsOptionsBuilder::default().filters(&filters);
            if let Some(since) = &since {
                options = options.since(since);
            }
            let stream = client.events(Some(options.build())).map(move |event| match event {
                Ok(event) => {
                    let actor = event.actor.unwrap_or_default();
                    Ok(Event {
                        action: event.action.unwrap_or_default(),
                        id: actor.id.unwrap_or_default(),
                        attributes: actor.attributes.unwrap_or_default().into_iter().collect(),
                    })
                }
                Err(e) => {
                    slot.lock().take();
                    Err(from_bollard(&path, e))
                }
            });
            Ok::<_, DockerError>(stream)
        })
        .try_flatten();
        let slot = self.client.clone();
        // However the stream ends, the next use negotiates again.
        let forget = futures_util::stream::once(async move {
            slot.lock().take();
            None
        })
        .filter_map(std::future::ready);
        events.chain(forget).boxed()
    }
}

/// The client in `slot`, connected and negotiated when there is none.
async fn connect(path: &Path, slot: &Mutex<Option<bollard::Docker>>) -> Result<bollard::Docker, DockerError> {
    if let Some(client) = slot.lock().clone() {
        return Ok(client);
    }
    let unreachable = |e: bollard::errors::Error| DockerError::Unreachable {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let client = bollard::Docker::connect_with_unix(
        &path.to_string_lossy(),
        BOLLARD_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(unreachable)?
    .negotiate_version()
    .await
    .map_err(unreachable)?;
    *slot.lock() = Some(client.clone());
    Ok(client)
}

fn from_bollard(path: &Path, e: bollard::errors::Error) -> DockerError {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError { status_code, message } => from_status(status_code, message),
        B::JsonDataError { message, .. } => DockerError::Malformed(message),
        B::JsonSerdeError { err } => DockerError::Malformed(err.to_string()),
        other => DockerError::Unreachable {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// An error answer by its status and dockerd's message.
fn from_status(status: u16, message: String) -> DockerError {
    match status {
        304 => DockerError::NotModified,
        404 => DockerError::NotFound(message),
        409 if message.contains("already paused") => DockerError::AlreadyPaused(message),
        409 => DockerError::Conflict(message),
        _ => DockerError::Api { status, message },
    }
}

/// dockerd's `{"message": "…"}`, else the body as text.
fn answer_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// `seconds.nanoseconds` since the epoch, as dockerd's `since` takes it.
fn docker_timestamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", since_epoch.as_secs(), since_epoch.subsec_nanos())
}

/// The first entry of a tar: a regular file's bytes, or a symlink's target.
enum Entry {
    File(Bytes),
    Link(String),
}

fn first_entry(tar: &[u8]) -> Result<Entry, String> {
    use std::io::Read;
    let mut archive = tar::Archive::new(tar);
    let mut entries = archive.entries().map_err(|e| e.to_string())?;
    let mut entry = match entries.next() {
        Some(entry) => entry.map_err(|e| e.to_string())?,
        None => return Err("empty archive".into()),
    };
    let kind = entry.header().entry_type();
    if kind.is_symlink() {
        let target = entry
            .link_name_bytes()
            .ok_or("a symlink without a target")?
            .into_owned();
        return String::from_utf8(target)
            .map(Entry::Link)
            .map_err(|_| "a symlink target that is not UTF-8".into());
    }
    if !kind.is_file() {
        return Err(format!("not a regular file ({kind:?})"));
    }
    let size = entry.header().size().map_err(|e| e.to_string())?;
    if size > MAX_FILE as u64 {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(Entry::File(Bytes::from(bytes)))
}

/// Where a symlink at `path` (absolute) pointing at `target` leads, as a
/// clean absolute path inside the container: a relative target is taken
/// from the link's directory, and `..` stops at `/`.
fn follow_link(path: &str, target: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if !target.starts_with('/') {
        parts.extend(path.split('/').filter(|p| !p.is_empty()));
        parts.pop();
    }
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod link_tests {
    use super::follow_link;

    #[test]
    fn symlinks_resolve_inside_the_container() {
        for (path, target, expect) in [
            ("/etc/passwd", "/usr/lib/passwd", "/usr/lib/passwd"),
            ("/etc/passwd", "../usr/lib/passwd", "/usr/lib/passwd"),
            ("/etc/passwd", "passwd.real", "/etc/passwd.real"),
            ("/etc/passwd", "../../../../host/etc/passwd", "/host/etc/passwd"),
            ("/etc/passwd", "./x/../y", "/etc/y"),
            ("/etc/passwd", "/", "/"),
        ] {
            assert_eq!(follow_link(path, target), expect, "{path} -> {target}");
        }
    }
}
