//! Host paths as the host resolves them: a bind source, or a local volume's
//! `device` with `o=bind`, is mounted by the kernel, which follows every
//! symlink on the way, and a relative `device` is taken from dockerd's
//! working directory. The create and volume rules judge the path as
//! written; this judges where it leads.
//!
//! Pure, like every rule: [`create_host_paths`] and [`volume_host_paths`]
//! find the paths, the caller resolves them on the host (and resolves what
//! must stay out of reach: dockerd's data root and the sockets, into a
//! [`Protected`]), and [`check_host_paths`] judges the result (rule
//! `deny.docker_socket`).

use serde_json::{Map, Value};

use super::canon::go_fold_eq;
use super::engine::{keep_original, Engine};
use super::predicates::{exposes_docker_socket, normalize_path, KNOWN_SOCKETS};
use super::rule::DENY_DOCKER_SOCKET;
use super::{Change, Rejection};
use crate::config::{ContainerIdentity, LoadedConfig, StandardsMode};

/// A host path a request would have mounted, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPath {
    /// Where it was found, e.g. `HostConfig.Binds[0]`.
    pub field: String,
    pub path: String,
}

/// Where the host resolves a [`HostPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Absolute, every symlink followed; a part that does not exist yet
    /// (dockerd creates missing bind folders) is appended as written.
    Resolved(String),
    /// Not absolute: a volume `device` dockerd would take from its own
    /// working directory.
    Relative,
}

/// A host path and where it leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedHostPath {
    pub written: HostPath,
    pub resolution: Resolution,
}

/// What no mount may reach, each as the host resolves it: dockerd's data
/// root and the sockets that control the host (see [`protected_sockets`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Protected {
    pub data_root: Vec<String>,
    pub sockets: Vec<String>,
}

/// The sockets no mount may reach, as configured: Docker's and
/// containerd's usual paths, the shim's own listen socket and its upstream.
/// The caller resolves them.
pub fn protected_sockets(cfg: &LoadedConfig) -> Vec<String> {
    let mut sockets: Vec<String> = KNOWN_SOCKETS.iter().map(|s| s.to_string()).collect();
    sockets.push(cfg.config.listen.to_string_lossy().into_owned());
    sockets.push(cfg.config.upstream_path().to_string_lossy().into_owned());
    sockets
}

/// The host paths a canonicalised create body mounts: `Binds` with an
/// absolute source, `Mounts` with an absolute `Source` (binds; a volume's
/// source is its name), and the `device` of a volume a mount creates with
/// `o=bind`.
pub fn create_host_paths(body: &Value) -> Vec<HostPath> {
    let host = &body["HostConfig"];
    let mut paths = Vec::new();
    for (index, bind) in host["Binds"].as_array().into_iter().flatten().enumerate() {
        // `source:target[:options]`, split at every `:` as dockerd does.
        let source = bind.as_str().and_then(|b| b.split_once(':')).map(|(s, _)| s);
        if let Some(source) = source.filter(|s| s.starts_with('/')) {
            paths.push(HostPath {
                field: format!("HostConfig.Binds[{index}]"),
                path: source.to_string(),
            });
        }
    }
    for (index, mount) in host["Mounts"].as_array().into_iter().flatten().enumerate() {
        let field = format!("HostConfig.Mounts[{index}]");
        if let Some(source) = mount["Source"].as_str().filter(|s| s.starts_with('/')) {
            paths.push(HostPath {
                field: format!("{field}.Source"),
                path: source.to_string(),
            });
        }
        if let Some(options) = mount["VolumeOptions"]["DriverConfig"]["Options"].as_object() {
            paths.extend(volume_host_paths(
                options,
                &format!("{field}.VolumeOptions.DriverConfig.Options"),
            ));
        }
    }
    paths
}

/// The `device` of a local volume's driver options when `o` binds it
/// (`bind` or `rbind`): a host path by another name. Keys are matched as
/// Go folds them, which is stricter than the local driver.
pub fn volume_host_paths(options: &Map<String, Value>, field: &str) -> Vec<HostPath> {
    fn option<'o>(options: &'o Map<String, Value>, name: &'static str) -> impl Iterator<Item = &'o str> {
        options
            .iter()
            .filter(move |(key, _)| go_fold_eq(key, name))
            .filter_map(|(_, value)| value.as_str())
    }
    let binds = option(options, "o").any(|o| {
        o.split(',')
            .any(|flag| matches!(flag.trim().to_ascii_lowercase().as_str(), "bind" | "rbind"))
    });
    if !binds {
        return Vec::new();
    }
    option(options, "device")
        .map(|device| HostPath {
            field: format!("{field}.device"),
            path: device.to_string(),
        })
        .collect()
}

/// The `device` of `POST /volumes/create`'s `DriverOpts`, when bound.
pub fn volume_create_host_paths(body: &Value) -> Vec<HostPath> {
    let options = body
        .as_object()
        .into_iter()
        .flatten()
        .find(|(key, _)| go_fold_eq(key, "DriverOpts"))
        .and_then(|(_, options)| options.as_object());
    options
        .map(|options| volume_host_paths(options, "DriverOpts"))
        .unwrap_or_default()
}

/// Denies a host path that leads where the rules forbid: to a Docker
/// socket (or a folder above one), into dockerd's data root (or a folder
/// above it), or relative to dockerd's working directory. A path the
/// create rules already deny as written is left to them.
pub fn check_host_paths(
    cfg: &LoadedConfig,
    who: &ContainerIdentity<'_>,
    protected: &Protected,
    paths: &[ResolvedHostPath],
) -> Result<Vec<Change>, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off || !standards.deny.docker_socket {
        return Ok(Vec::new());
    }
    let mut engine = Engine::new(cfg, who);
    for ResolvedHostPath { written, resolution } in paths {
        let HostPath { field, path } = written;
        let resolved = match resolution {
            Resolution::Relative => {
                engine.deny(
                    DENY_DOCKER_SOCKET,
                    format!(
                        "the relative volume device {path:?} ({field}), which dockerd resolves \
                         against its own working directory"
                    ),
                    Some("give the device as an absolute path".to_string()),
                );
                continue;
            }
            Resolution::Resolved(resolved) => resolved,
        };
        if exposes_docker_socket(cfg, path) {
            continue;
        }
        if let Some(why) = protected_reason(cfg, protected, resolved) {
            let leads = if normalize_path(path.trim()).as_deref() == Some(resolved.as_str()) {
                String::new()
            } else {
                format!(", which the host resolves to {resolved}")
            };
            engine.deny(
                DENY_DOCKER_SOCKET,
                format!("mounting {path}{leads} ({why}; {field})"),
                None,
            );
        }
    }
    let original = keep_original(standards, &Value::Null);
    engine.finish(original, Value::Null).map(|outcome| outcome.changes)
}

/// Why a resolved host path may not be mounted, if it may not.
fn protected_reason(cfg: &LoadedConfig, protected: &Protected, resolved: &str) -> Option<String> {
    let under = |path: &str, folder: &str| folder == "/" || path.starts_with(&format!("{folder}/"));
    if exposes_docker_socket(cfg, resolved) {
        return Some("a way to the Docker socket or the host's root".to_string());
    }
    for socket in &protected.sockets {
        if resolved == socket || under(socket, resolved) {
            return Some(format!("a way to the socket {socket}"));
        }
    }
    for root in &protected.data_root {
        if resolved == root || under(resolved, root) {
            return Some(format!("inside dockerd's data root {root}"));
        }
        if under(root, resolved) {
            return Some(format!("a folder holding dockerd's data root {root}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(yaml: &str) -> LoadedConfig {
        crate::config::Config::from_yaml(yaml, "t").unwrap()
    }

    fn protected() -> Protected {
        Protected {
            data_root: vec!["/srv/docker".to_string()],
            sockets: vec!["/run/docker.sock".to_string(), "/opt/shim/shim.sock".to_string()],
        }
    }

    fn resolved(path: &str, to: &str) -> ResolvedHostPath {
        ResolvedHostPath {
            written: HostPath {
                field: "HostConfig.Binds[0]".to_string(),
                path: path.to_string(),
            },
            resolution: Resolution::Resolved(to.to_string()),
        }
    }

    fn relative(path: &str) -> ResolvedHostPath {
        ResolvedHostPath {
            written: HostPath {
                field: "DriverOpts.device".to_string(),
                path: path.to_string(),
            },
            resolution: Resolution::Relative,
        }
    }

    /// Denied (with this in the message) or allowed.
    fn judge(yaml: &str, path: ResolvedHostPath) -> Result<Vec<Change>, String> {
        let cfg = config(yaml);
        match check_host_paths(&cfg, &ContainerIdentity::default(), &protected(), &[path]) {
            Ok(changes) => Ok(changes),
            Err(Rejection::Denied(denial)) => {
                assert_eq!(denial.rule, "deny.docker_socket");
                Err(denial.what)
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn where_a_path_leads_is_judged() {
        let cases: &[(ResolvedHostPath, Option<&str>)] = &[
            // A symlink to the socket, and to the folder above it.
            (
                resolved("/home/u/link", "/run/docker.sock"),
                Some("resolves to /run/docker.sock"),
            ),
            (resolved("/home/u/link", "/run"), Some("resolves to /run")),
            (resolved("/home/u/link", "/"), Some("resolves to /")),
            // The shim's own socket wherever it is, and its folders.
            (
                resolved("/data/x", "/opt/shim/shim.sock"),
                Some("the socket /opt/shim/shim.sock"),
            ),
            (resolved("/data/x", "/opt"), Some("the socket /opt/shim/shim.sock")),
            // dockerd's data root, anything in it, and anything above it.
            (
                resolved("/srv/docker", "/srv/docker"),
                Some("inside dockerd's data root /srv/docker"),
            ),
            (
                resolved("/mnt/v/_data/l", "/srv/docker/volumes/v/_data/l"),
                Some("inside dockerd's data root"),
            ),
            (resolved("/srv", "/srv"), Some("a folder holding dockerd's data root")),
            // Through /proc to another root.
            (
                resolved("/home/u/l", "/proc/1/root/etc"),
                Some("a way to the Docker socket or the host's root"),
            ),
            // Harmless places.
            (resolved("/home/u/data", "/home/u/data"), None),
            (resolved("/home/u/link", "/srv/dockerish"), None),
            (resolved("/home/u/link", "/run/user/1000"), None),
            (resolved("/tmp/new/dir", "/tmp/new/dir"), None),
        ];
        for (path, expect) in cases {
            match (judge("", path.clone()), expect) {
                (Ok(changes), None) => assert_eq!(changes, vec![], "{path:?}"),
                (Err(what), Some(part)) => assert!(what.contains(part), "{path:?}: {what}"),
                (got, _) => panic!("{path:?}: expected {expect:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_relative_device_is_refused_and_what_the_create_rules_deny_is_theirs() {
        let what = judge("", relative("../../../../run")).unwrap_err();
        assert!(what.contains("relative volume device"), "{what}");
        // Written as the socket: the create rules deny it, not twice here.
        assert_eq!(
            judge("", resolved("/var/run/docker.sock", "/run/docker.sock")),
            Ok(vec![])
        );
    }

    #[test]
    fn the_switch_exemptions_and_audit_mode_are_honoured() {
        let socket = || resolved("/home/u/link", "/run/docker.sock");
        assert_eq!(
            judge("standards: { deny: { docker_socket: false } }", socket()),
            Ok(vec![])
        );
        assert_eq!(judge("standards: { mode: off }", socket()), Ok(vec![]));
        let exempt = "standards: { exempt: [ { match: { name: '*' }, rules: [deny.docker_socket] } ] }";
        let cfg = config(exempt);
        let who = ContainerIdentity {
            name: Some("x"),
            ..ContainerIdentity::default()
        };
        assert_eq!(check_host_paths(&cfg, &who, &protected(), &[socket()]), Ok(vec![]));
        let changes = judge("standards: { mode: audit }", socket()).unwrap();
        assert_eq!(changes.len(), 1);
        assert!(
            changes[0].message.starts_with("would deny mounting /home/u/link"),
            "{changes:?}"
        );
    }

    #[test]
    fn paths_are_found_where_dockerd_mounts_them() {
        let body = json!({"HostConfig": {
            "Binds": ["/srv/a:/a", "named:/n", "/anonymous", "/srv/b:/b:ro"],
            "Mounts": [
                {"Type": "bind", "Source": "/srv/c", "Target": "/c"},
                {"Type": "volume", "Source": "vol", "Target": "/v"},
                {"Type": "volume", "Target": "/w", "VolumeOptions": {"DriverConfig": {
                    "Name": "local", "Options": {"type": "none", "o": "bind", "device": "../../run"}}}}
            ]
        }});
        let found: Vec<(String, String)> = create_host_paths(&body)
            .into_iter()
            .map(|p| (p.field, p.path))
            .collect();
        let expect = [
            ("HostConfig.Binds[0]", "/srv/a"),
            ("HostConfig.Binds[3]", "/srv/b"),
            ("HostConfig.Mounts[0].Source", "/srv/c"),
            (
                "HostConfig.Mounts[2].VolumeOptions.DriverConfig.Options.device",
                "../../run",
            ),
        ];
        let expect: Vec<(String, String)> = expect.iter().map(|(f, p)| (f.to_string(), p.to_string())).collect();
        assert_eq!(found, expect);

        let bound = json!({"Name": "v", "driveropts": {"type": "none", "o": "ro,rbind", "device": "/srv/x"}});
        assert_eq!(
            volume_create_host_paths(&bound),
            vec![HostPath {
                field: "DriverOpts.device".into(),
                path: "/srv/x".into()
            }]
        );
        // Without a bind, `device` is not a host folder (tmpfs, nfs, …).
        let tmpfs = json!({"DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=100m"}});
        assert_eq!(volume_create_host_paths(&tmpfs), vec![]);
        assert_eq!(volume_create_host_paths(&json!({"Name": "plain"})), vec![]);
    }
}
