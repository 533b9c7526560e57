//! What the standards phase looks up in dockerd before the pure rules judge
//! a request, failing closed: a container or volume the shim needs and
//! cannot read is an error answer, never a request forwarded unjudged.
//!
//! - [`target`]: the container an `update`, `exec` or `start` acts on. A
//!   404 is dockerd's own answer, relayed as dockerd gave it; any other
//!   failure (dockerd unreachable, an error answer, an inspect without an
//!   `Id`) is `forge-shim: container X cannot be checked: …` (502).
//! - [`create_sources`]: what a create borrows from other containers and
//!   named volumes, judged by [`standards::check_inherited`], and where its
//!   host paths lead ([`super::hostpath`]); [`volume_paths`] the same for a
//!   volume create.

use http::{Response, StatusCode};
use serde_json::Value;

use super::Proxy;
use crate::body::{json_response, ProxyBody};
use crate::config::{ContainerIdentity, LoadedConfig};
use crate::docker::{ContainerInfo, DockerError};
use crate::error::ShimError;
use crate::route::{ContainerAction, Endpoint, Route};
use crate::standards::{self, Change, CreateContext, Inheritance, Rejection};

/// The container a request acts on, or the answer to give instead.
pub enum Target {
    Found(Box<ContainerInfo>),
    /// dockerd does not know it: its own 404, to send as it is.
    Missing(Response<ProxyBody>),
}

/// Inspects the container `reference` names, for a rule that judges it.
pub async fn target(proxy: &Proxy, reference: &str) -> Result<Target, ShimError> {
    match proxy.inner.docker.inspect_container(reference).await {
        Ok(info) => Ok(Target::Found(Box::new(info))),
        // Answered here rather than by forwarding: a container of that name
        // made in between would get the request unjudged.
        Err(DockerError::NotFound(message)) => Ok(Target::Missing(dockerd_answer(StatusCode::NOT_FOUND, &message))),
        Err(error) => Err(unchecked(&format!("container {reference}"), &error)),
    }
}

/// dockerd's own error answer, `{"message": …}`, as dockerd writes it.
fn dockerd_answer(status: StatusCode, message: &str) -> Response<ProxyBody> {
    json_response(status, &serde_json::json!({ "message": message }))
}

/// The error for something the standards need and cannot read, logged.
pub(super) fn unchecked(what: &str, error: &DockerError) -> ShimError {
    tracing::warn!(what, error = %error, "cannot be checked; refusing the request");
    ShimError::Unchecked {
        what: what.to_string(),
        message: error.to_string(),
    }
}

/// Judges what a create would inherit from other containers (`VolumesFrom`,
/// `container:<id>` namespaces) and named volumes (a local volume bound to
/// the Docker socket), looking the sources up first. The outer error is the
/// shim's (a source that cannot be read); the inner one the standards'.
pub async fn create_sources(
    proxy: &Proxy,
    loaded: &LoadedConfig,
    context: &CreateContext,
    body: &mut Value,
) -> Result<Result<Vec<Change>, Rejection>, ShimError> {
    let sources = standards::inherited_sources(body);
    let mut inherited = Vec::with_capacity(sources.len());
    let judge_volumes = loaded.config.standards.deny.docker_socket;
    for (kind, source) in sources {
        let inspect = match kind {
            Inheritance::NamedVolume if !judge_volumes => continue,
            Inheritance::NamedVolume => match proxy.inner.docker.inspect_volume_json(&source).await {
                Ok(inspect) => Some(inspect),
                // dockerd makes a plain local volume of that name.
                Err(DockerError::NotFound(_)) => None,
                Err(error) => return Err(unchecked(&format!("volume {source}"), &error)),
            },
            _ => match proxy.inner.docker.inspect_container_json(&source).await {
                Ok(inspect) => Some(inspect),
                // dockerd refuses most of these itself, but keeps a
                // `container:NAME` network mode by name and looks it up at
                // start, when the name may be someone else's.
                Err(DockerError::NotFound(message)) => {
                    return Err(ShimError::BadRequest(format!(
                        "container {source} ({}) cannot be checked: {message}",
                        field(kind)
                    )))
                }
                Err(error) => return Err(unchecked(&format!("container {source}"), &error)),
            },
        };
        inherited.push(standards::Inherited { kind, source, inspect });
    }
    // What was judged is what dockerd gets: each container by its id, so a
    // rename between the check and dockerd's lookup cannot swap it.
    let pins: Vec<Pin> = inherited
        .iter()
        .filter(|source| source.kind != Inheritance::NamedVolume)
        .filter_map(|source| {
            let id = source.inspect.as_ref()?["Id"].as_str()?;
            Some(Pin {
                kind: source.kind,
                source: source.source.clone(),
                id: id.to_string(),
            })
        })
        .collect();
    pin_sources(body, &pins);
    let body = &*body;
    let labels = body.get("Labels").and_then(Value::as_object);
    let who = ContainerIdentity {
        name: context.name.as_deref(),
        image: body.get("Image").and_then(Value::as_str),
        labels,
        image_id: context.image_id.as_deref(),
        repo_digests: &context.repo_digests,
    };
    let mut changes = match standards::check_inherited(loaded, &who, &inherited) {
        Ok(changes) => changes,
        Err(rejection) => return Ok(Err(rejection)),
    };
    // Where the binds and bound volume devices lead on the host, named
    // volumes' included: the folder may have become a symlink since.
    let mut paths = standards::create_host_paths(body);
    for source in &inherited {
        let options = source.inspect.as_ref().and_then(|v| v["Options"].as_object());
        if let (Inheritance::NamedVolume, Some(options)) = (source.kind, options) {
            paths.extend(standards::volume_host_paths(
                options,
                &format!("volume {}", source.source),
            ));
        }
    }
    match super::hostpath::judge(proxy, loaded, &who, paths).await? {
        Ok(more) => changes.extend(more),
        Err(rejection) => return Ok(Err(rejection)),
    }
    Ok(Ok(changes))
}

/// A container a create names, and the id the shim judged it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub kind: Inheritance,
    /// As written in the body (a name, an id prefix, an id).
    pub source: String,
    pub id: String,
}

/// Rewrites each `container:<source>` mode to `container:<id>` and each
/// `VolumesFrom` entry `<source>[:ro|:rw]` to `<id>[:ro|:rw]`, in a
/// canonicalised create body. dockerd looks a full id up before names, and
/// keeps a `container:` mode as written to look it up again at every start.
pub fn pin_sources(body: &mut Value, pins: &[Pin]) {
    let Some(host) = body.get_mut("HostConfig").and_then(Value::as_object_mut) else {
        return;
    };
    let id_of = |kind: Inheritance, source: &str| {
        pins.iter()
            .find(|pin| pin.kind == kind && pin.source == source)
            .map(|pin| pin.id.as_str())
    };
    if let Some(Value::Array(entries)) = host.get_mut("VolumesFrom") {
        for entry in entries.iter_mut() {
            let Some(text) = entry.as_str() else { continue };
            let (name, mode) = match text.split_once(':') {
                Some((name, mode)) => (name, Some(mode)),
                None => (text, None),
            };
            if let Some(id) = id_of(Inheritance::Volumes, name.trim()) {
                *entry = Value::String(match mode {
                    Some(mode) => format!("{id}:{mode}"),
                    None => id.to_string(),
                });
            }
        }
    }
    for (key, kind) in [
        ("NetworkMode", Inheritance::Network),
        ("PidMode", Inheritance::Pid),
        ("IpcMode", Inheritance::Ipc),
    ] {
        let Some(mode) = host.get_mut(key) else { continue };
        let source = mode.as_str().and_then(|m| m.trim().strip_prefix("container:"));
        if let Some(id) = source.and_then(|source| id_of(kind, source)) {
            *mode = Value::String(format!("container:{id}"));
        }
    }
}

/// Points a request on one container (`update`, `exec`, `start`) at the
/// full id the shim judged, so a rename before dockerd routes it cannot
/// hand the request to another container.
pub fn pin_target(parts: &mut http::request::Parts, route: &Route, id: &str) -> Result<(), ShimError> {
    let action = match &route.endpoint {
        Endpoint::ContainerUpdate { .. } => "update",
        Endpoint::ExecCreate { .. } => "exec",
        Endpoint::ContainerUse {
            action: ContainerAction::Start,
            ..
        } => "start",
        _ => return Ok(()),
    };
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ShimError::Internal(format!("dockerd gave an odd container id {id:?}")));
    }
    let version = route.version.as_deref().map(|v| format!("/v{v}")).unwrap_or_default();
    let target = match parts.uri.query() {
        Some(query) => format!("{version}/containers/{id}/{action}?{query}"),
        None => format!("{version}/containers/{id}/{action}"),
    };
    parts.uri = target
        .parse()
        .map_err(|e| ShimError::Internal(format!("pinned path {target:?}: {e}")))?;
    Ok(())
}

/// Judges where a volume create's bound `device` leads on the host.
pub async fn volume_paths(
    proxy: &Proxy,
    loaded: &LoadedConfig,
    body: &Value,
) -> Result<Result<Vec<Change>, Rejection>, ShimError> {
    let paths = standards::volume_create_host_paths(body);
    let field = |name: &str| {
        body.as_object()
            .into_iter()
            .flatten()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    };
    let who = ContainerIdentity {
        name: field("Name").and_then(Value::as_str),
        image: None,
        labels: field("Labels").and_then(Value::as_object),
        ..Default::default()
    };
    super::hostpath::judge(proxy, loaded, &who, paths).await
}

/// The create field a source comes from, for messages.
fn field(kind: Inheritance) -> &'static str {
    match kind {
        Inheritance::Volumes => "HostConfig.VolumesFrom",
        Inheritance::Network => "HostConfig.NetworkMode",
        Inheritance::Pid => "HostConfig.PidMode",
        Inheritance::Ipc => "HostConfig.IpcMode",
        Inheritance::NamedVolume => "HostConfig.Binds or Mounts",
    }
}

/// A proxy over a fake dockerd, for the phases' unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use std::sync::Arc;

    use super::Proxy;
    use crate::docker::fake::FakeDocker;
    use crate::docker::DockerApi;

    pub(crate) fn proxy_with(docker: Arc<FakeDocker>) -> Proxy {
        proxy_with_config(docker, "auto_sleep: { enabled: false }")
    }

    pub(crate) fn proxy_with_config(docker: Arc<FakeDocker>, yaml: &str) -> Proxy {
        let docker: Arc<dyn DockerApi> = docker;
        Proxy::new(super::super::ProxyParts {
            config: crate::config::SharedConfig::new(crate::config::Config::from_yaml(yaml, "t").unwrap()),
            docker,
            lifecycle: None,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            tasks: tokio_util::task::TaskTracker::new(),
            token: tokio_util::sync::CancellationToken::new(),
            origins: crate::lifecycle::Origins::in_memory(),
            profiles: crate::lifecycle::Profiles::in_memory(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::proxy_with;
    use super::*;
    use crate::docker::fake::{FakeContainer, FakeDocker, Op};

    /// dockerd takes a blkio rate as a uint64; bollard's typed model took it
    /// as an i64 and rejected the inspect, which let updates through
    /// unjudged. The raw read keeps it.
    #[test]
    fn a_blkio_rate_above_i64_is_read() {
        let bytes = br#"{"Id": "abc", "Name": "/big", "Config": {"Image": "busybox", "User": ""},
            "HostConfig": {"Memory": 536870912,
                "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 18446744073709551615}]}}"#;
        let inspect: Value = serde_json::from_slice(bytes).expect("dockerd's JSON parses");
        let info = ContainerInfo::from_inspect(&inspect).expect("an inspect with an Id");
        assert_eq!(info.id, "abc");
        assert_eq!(info.memory_limit, Some(536870912));
        let host = info.host_config.expect("HostConfig kept");
        assert_eq!(host["BlkioDeviceReadBps"][0]["Rate"].as_u64(), Some(u64::MAX));
    }

    #[tokio::test]
    async fn a_target_that_cannot_be_inspected_fails_closed() {
        let docker = FakeDocker::new([FakeContainer::running(1, "web")]);
        let proxy = proxy_with(docker.clone());

        assert!(matches!(target(&proxy, "web").await, Ok(Target::Found(info)) if info.name.as_deref() == Some("web")));

        // dockerd's 404 is relayed as dockerd wrote it.
        let Ok(Target::Missing(response)) = target(&proxy, "nope").await else {
            panic!("a missing container is dockerd's 404");
        };
        assert_eq!(response.status(), StatusCode::NOT_FOUND);

        for error in [
            DockerError::Api {
                status: 500,
                message: "json: cannot unmarshal".into(),
            },
            DockerError::Malformed("not JSON".into()),
            DockerError::Unreachable {
                path: "/x.sock".into(),
                message: "gone".into(),
            },
        ] {
            docker.fail_next(Op::Inspect, error.clone());
            match target(&proxy, "web").await {
                Err(e @ ShimError::Unchecked { .. }) => {
                    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
                    assert!(e.to_string().starts_with("container web cannot be checked: "), "{e}");
                }
                Err(other) => panic!("{error:?}: {other}"),
                Ok(_) => panic!("{error:?}: judged a container it could not read"),
            }
        }
    }

    #[tokio::test]
    async fn an_inherited_source_that_cannot_be_inspected_fails_closed() {
        let docker = FakeDocker::new([FakeContainer::running(1, "web")]);
        let proxy = proxy_with(docker.clone());
        let loaded = proxy.config().clone();
        let body = serde_json::json!({"Image": "x", "HostConfig": {"PidMode": "container:web"}});

        let judged = create_sources(&proxy, &loaded, &CreateContext::default(), &mut body.clone()).await;
        assert!(
            matches!(judged, Ok(Ok(ref changes)) if changes.is_empty()),
            "{judged:?}"
        );

        docker.fail_next(Op::Inspect, DockerError::Malformed("bad".into()));
        let judged = create_sources(&proxy, &loaded, &CreateContext::default(), &mut body.clone()).await;
        assert!(matches!(judged, Err(ShimError::Unchecked { .. })), "{judged:?}");

        let missing = serde_json::json!({"Image": "x", "HostConfig": {"NetworkMode": "container:nope"}});
        match create_sources(&proxy, &loaded, &CreateContext::default(), &mut missing.clone()).await {
            Err(e @ ShimError::BadRequest(_)) => assert!(e.to_string().contains("HostConfig.NetworkMode"), "{e}"),
            other => panic!("a missing network source is refused, got {other:?}"),
        }
    }

    #[test]
    fn judged_sources_are_pinned_to_their_ids() {
        let pin = |kind, source: &str, id: &str| Pin {
            kind,
            source: source.to_string(),
            id: id.to_string(),
        };
        let pins = [
            pin(Inheritance::Volumes, "data", "aaaa"),
            pin(Inheritance::Volumes, "logs", "bbbb"),
            pin(Inheritance::Network, "net", "cccc"),
            pin(Inheritance::Pid, "web", "dddd"),
            pin(Inheritance::Ipc, "web", "dddd"),
        ];
        let mut body = serde_json::json!({"Image": "x", "HostConfig": {
            "VolumesFrom": ["data:ro", "logs", "other:rw", 7],
            "NetworkMode": "container:net",
            "PidMode": "container:web",
            "IpcMode": " container:web",
            "Binds": ["/srv:/srv"]
        }});
        pin_sources(&mut body, &pins);
        assert_eq!(
            body,
            serde_json::json!({"Image": "x", "HostConfig": {
                "VolumesFrom": ["aaaa:ro", "bbbb", "other:rw", 7],
                "NetworkMode": "container:cccc",
                "PidMode": "container:dddd",
                "IpcMode": "container:dddd",
                "Binds": ["/srv:/srv"]
            }})
        );
        // A pin is for its own field only; nothing else is touched.
        let mut body = serde_json::json!({"HostConfig": {"PidMode": "container:net", "NetworkMode": "bridge"}});
        let before = body.clone();
        pin_sources(&mut body, &pins);
        assert_eq!(body, before);
        let mut bare = serde_json::json!({"Image": "x"});
        pin_sources(&mut bare, &pins);
        assert_eq!(bare, serde_json::json!({"Image": "x"}));
    }

    #[test]
    fn a_target_is_pinned_in_the_path() {
        let id = "0123456789abcdef".repeat(4);
        for (method, path, pinned) in [
            (
                "POST",
                "/v1.41/containers/a/b/update",
                format!("/v1.41/containers/{id}/update"),
            ),
            ("POST", "/containers/web/exec", format!("/containers/{id}/exec")),
            (
                "POST",
                "/v1.24/containers/web/start?detachKeys=ctrl-x",
                format!("/v1.24/containers/{id}/start?detachKeys=ctrl-x"),
            ),
        ] {
            let method: http::Method = method.parse().unwrap();
            let route = Route::classify(&method, path.split('?').next().unwrap()).unwrap();
            let (mut parts, ()) = http::Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap()
                .into_parts();
            pin_target(&mut parts, &route, &id).unwrap();
            assert_eq!(parts.uri.to_string(), pinned, "{path}");
        }
    }
}
