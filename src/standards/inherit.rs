//! What a create can borrow from another container or volume: `VolumesFrom`
//! copies its mounts, `container:<id>` modes join its namespaces, and a named
//! volume in `Binds` or `Mounts` brings whatever its driver options bind.
//! Without this check a request could pick up a Docker socket mount or a host
//! namespace from a container the operator exempted, or from a local volume
//! with `o=bind` created before the shim (or around it). The caller inspects
//! the sources; the judgement here is pure, like every other rule.

use serde_json::Value;

use super::canon::go_fold_eq;
use super::engine::{keep_original, Engine};
use super::predicates::{exposes_docker_socket, is_host};
use super::rule;
use super::{Change, Rejection};
use crate::config::{ContainerIdentity, LoadedConfig, StandardsMode};

/// How a create inherits from another container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inheritance {
    /// `HostConfig.VolumesFrom`.
    Volumes,
    /// `HostConfig.NetworkMode: container:<id>`.
    Network,
    /// `HostConfig.PidMode: container:<id>`.
    Pid,
    /// `HostConfig.IpcMode: container:<id>`.
    Ipc,
    /// A named volume in `HostConfig.Binds` or `HostConfig.Mounts`; its
    /// inspect is the volume's (`Driver`, `Options`).
    NamedVolume,
}

/// One source container (or volume) and its inspect JSON (`None`: dockerd
/// does not know it, and will refuse the create itself, or create a plain
/// volume).
#[derive(Clone, Debug)]
pub struct Inherited {
    pub kind: Inheritance,
    pub source: String,
    pub inspect: Option<Value>,
}

/// The containers and named volumes a canonicalised create body inherits from.
pub fn inherited_sources(body: &Value) -> Vec<(Inheritance, String)> {
    let host = &body["HostConfig"];
    let mut sources = Vec::new();
    for entry in host["VolumesFrom"].as_array().into_iter().flatten() {
        if let Some(entry) = entry.as_str() {
            // `name[:ro|:rw]`
            let name = entry.split(':').next().unwrap_or(entry).trim();
            if !name.is_empty() {
                sources.push((Inheritance::Volumes, name.to_string()));
            }
        }
    }
    for (key, kind) in [
        ("NetworkMode", Inheritance::Network),
        ("PidMode", Inheritance::Pid),
        ("IpcMode", Inheritance::Ipc),
    ] {
        if let Some(source) = host[key]
            .as_str()
            .and_then(|mode| mode.trim().strip_prefix("container:"))
        {
            sources.push((kind, source.to_string()));
        }
    }
    // `name:/target[:options]`; a source starting with `/` is a host path,
    // judged by the create rules, and a lone path is an anonymous volume.
    for bind in host["Binds"].as_array().into_iter().flatten() {
        if let Some((source, _)) = bind.as_str().and_then(|b| b.split_once(':')) {
            let source = source.trim();
            if !source.is_empty() && !source.starts_with('/') {
                sources.push((Inheritance::NamedVolume, source.to_string()));
            }
        }
    }
    for mount in host["Mounts"].as_array().into_iter().flatten() {
        let is_volume = mount["Type"].as_str().is_some_and(|t| t.trim() == "volume");
        if let (true, Some(source)) = (is_volume, mount["Source"].as_str().map(str::trim)) {
            if !source.is_empty() {
                sources.push((Inheritance::NamedVolume, source.to_string()));
            }
        }
    }
    sources.dedup();
    sources
}

/// Denies what the sources would give the new container that the rules
/// forbid it to ask for directly. Audit mode returns them as `would deny`.
pub fn check_inherited(
    cfg: &LoadedConfig,
    who: &ContainerIdentity<'_>,
    inherited: &[Inherited],
) -> Result<Vec<Change>, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off {
        return Ok(Vec::new());
    }
    let deny = &standards.deny;
    let mut engine = Engine::new(cfg, who);
    for Inherited { kind, source, inspect } in inherited {
        let Some(inspect) = inspect else { continue };
        let host = &inspect["HostConfig"];
        match kind {
            Inheritance::Volumes if deny.docker_socket => {
                let mounts = inspect["Mounts"].as_array().into_iter().flatten();
                if mounts
                    .filter_map(|m| m["Source"].as_str())
                    .any(|s| exposes_docker_socket(cfg, s))
                {
                    engine.deny(
                        rule::DENY_DOCKER_SOCKET,
                        format!("the Docker socket mount of container {source} (HostConfig.VolumesFrom)"),
                        None,
                    );
                }
            }
            Inheritance::Network if deny.host_network && is_host(host["NetworkMode"].as_str()) => {
                engine.deny(
                    rule::DENY_HOST_NETWORK,
                    format!("the host network, joined through container {source} (HostConfig.NetworkMode)"),
                    None,
                );
            }
            Inheritance::Pid => {
                if deny.host_pid && is_host(host["PidMode"].as_str()) {
                    engine.deny(
                        rule::DENY_HOST_PID,
                        format!("the host PID namespace, joined through container {source} (HostConfig.PidMode)"),
                        None,
                    );
                }
                // Its processes' /proc/<pid>/root is the privileged
                // container's filesystem view, devices included.
                if deny.privileged && host["Privileged"].as_bool() == Some(true) {
                    engine.deny(
                        rule::DENY_PRIVILEGED,
                        format!("joining the PID namespace of privileged container {source} (HostConfig.PidMode)"),
                        None,
                    );
                }
            }
            Inheritance::Ipc if deny.host_ipc && is_host(host["IpcMode"].as_str()) => {
                engine.deny(
                    rule::DENY_HOST_IPC,
                    format!("the host IPC namespace, joined through container {source} (HostConfig.IpcMode)"),
                    None,
                );
            }
            Inheritance::NamedVolume if deny.docker_socket => {
                // A local volume's `device` with `o=bind` is a bind mount by
                // another name; checked whatever `o` says, as at volume create.
                let options = inspect["Options"].as_object().into_iter().flatten();
                let device = options
                    .filter(|(key, _)| go_fold_eq(key, "device"))
                    .filter_map(|(_, value)| value.as_str())
                    .find(|device| exposes_docker_socket(cfg, device));
                if let Some(device) = device {
                    engine.deny(
                        rule::DENY_DOCKER_SOCKET,
                        format!("volume {source}, which is bound to {device} (HostConfig.Binds or Mounts)"),
                        None,
                    );
                }
            }
            _ => {}
        }
    }
    let original = keep_original(standards, &Value::Null);
    engine.finish(original, Value::Null).map(|outcome| outcome.changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(mode: &str) -> LoadedConfig {
        crate::config::Config::from_yaml(&format!("standards: {{ mode: {mode} }}"), "t").unwrap()
    }

    fn judge(mode: &str, kind: Inheritance, inspect: Value) -> Result<Vec<Change>, Rejection> {
        let cfg = config(mode);
        let inherited = [Inherited {
            kind,
            source: "src".into(),
            inspect: Some(inspect),
        }];
        check_inherited(&cfg, &ContainerIdentity::default(), &inherited)
    }

    fn denied_rule(result: Result<Vec<Change>, Rejection>) -> String {
        match result {
            Err(Rejection::Denied(denial)) => denial.rule,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn sources_from_a_body() {
        let body = json!({"HostConfig": {
            "VolumesFrom": ["data:ro", "other"],
            "NetworkMode": "container:net",
            "PidMode": "container:pid",
            "IpcMode": "shareable"
        }});
        assert_eq!(
            inherited_sources(&body),
            vec![
                (Inheritance::Volumes, "data".to_string()),
                (Inheritance::Volumes, "other".to_string()),
                (Inheritance::Network, "net".to_string()),
                (Inheritance::Pid, "pid".to_string()),
            ]
        );
        assert!(inherited_sources(&json!({"Image": "x"})).is_empty());

        let body = json!({"HostConfig": {
            "Binds": ["/srv:/srv", "named:/data:ro", "/anonymous"],
            "Mounts": [
                {"Type": "volume", "Source": "other", "Target": "/o"},
                {"Type": "volume", "Target": "/anon"},
                {"Type": "bind", "Source": "/srv", "Target": "/b"}
            ]
        }});
        assert_eq!(
            inherited_sources(&body),
            vec![
                (Inheritance::NamedVolume, "named".to_string()),
                (Inheritance::NamedVolume, "other".to_string()),
            ]
        );
    }

    #[test]
    fn borrowed_dangers_are_denied() {
        let socket = json!({"Mounts": [{"Source": "/var/run/docker.sock"}], "HostConfig": {}});
        assert_eq!(
            denied_rule(judge("enforce", Inheritance::Volumes, socket)),
            "deny.docker_socket"
        );
        let host_net = json!({"HostConfig": {"NetworkMode": "host"}});
        assert_eq!(
            denied_rule(judge("enforce", Inheritance::Network, host_net)),
            "deny.host_network"
        );
        let privileged = json!({"HostConfig": {"Privileged": true}});
        assert_eq!(
            denied_rule(judge("enforce", Inheritance::Pid, privileged)),
            "deny.privileged"
        );
        let host_ipc = json!({"HostConfig": {"IpcMode": "host"}});
        assert_eq!(
            denied_rule(judge("enforce", Inheritance::Ipc, host_ipc)),
            "deny.host_ipc"
        );
        let bound = json!({"Driver": "local", "Options": {"type": "none", "o": "bind", "device": "/var/run"}});
        assert_eq!(
            denied_rule(judge("enforce", Inheritance::NamedVolume, bound)),
            "deny.docker_socket"
        );
        let plain = json!({"Driver": "local", "Options": {"type": "none", "o": "bind", "device": "/srv/data"}});
        assert_eq!(judge("enforce", Inheritance::NamedVolume, plain).unwrap(), vec![]);
        assert_eq!(
            judge(
                "enforce",
                Inheritance::NamedVolume,
                json!({"Driver": "local", "Options": null})
            )
            .unwrap(),
            vec![]
        );
    }

    #[test]
    fn harmless_sources_pass_and_audit_only_warns() {
        let plain = json!({"Mounts": [{"Source": "/srv/data"}], "HostConfig": {"NetworkMode": "bridge"}});
        assert_eq!(judge("enforce", Inheritance::Volumes, plain.clone()).unwrap(), vec![]);
        assert_eq!(judge("enforce", Inheritance::Network, plain).unwrap(), vec![]);
        let socket = json!({"Mounts": [{"Source": "/run/docker.sock"}], "HostConfig": {}});
        let changes = judge("audit", Inheritance::Volumes, socket.clone()).unwrap();
        assert_eq!(changes.len(), 1);
        assert!(changes[0].message.starts_with("would deny"), "{:?}", changes[0]);
        assert_eq!(judge("off", Inheritance::Volumes, socket).unwrap(), vec![]);
    }
}
