//! Judgements on single values, shared by the rules of every endpoint (who
//! is root is `user.rs`'s): what is a host namespace, how dockerd spells a capability or
//! cleans a path, and which host paths expose the Docker socket.

use serde_json::Value;

use crate::config::LoadedConfig;

use super::canon::go_fold_eq;

/// Sockets that give whoever can reach them root on the host.
pub(super) const KNOWN_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/docker/containerd/containerd.sock",
    "/var/run/docker/containerd/containerd.sock",
];

/// A namespace mode of `host`.
pub(super) fn is_host(mode: Option<&str>) -> bool {
    mode.is_some_and(|mode| mode.trim().eq_ignore_ascii_case("host"))
}

/// A capability name as dockerd compares it: upper case (Go's `ToUpper` is
/// Unicode-aware, so `ſys_admin` is `SYS_ADMIN`), without `CAP_`.
pub(super) fn normalize_cap(cap: &str) -> String {
    let upper = cap.trim().to_uppercase();
    upper.strip_prefix("CAP_").unwrap_or(&upper).to_string()
}

/// Lexically normalises an absolute path: `//`, `.`, `..` and trailing `/`
/// removed, as Go's `path.Clean`. `None` for a relative path (a volume name).
pub(super) fn normalize_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether binding host path `source` into a container exposes a socket
/// that controls the host: see the decisions in the `standards` module doc.
pub(super) fn exposes_docker_socket(cfg: &LoadedConfig, source: &str) -> bool {
    let Some(path) = normalize_path(source.trim()) else {
        return false;
    };
    let listen = cfg.config.listen.to_string_lossy().into_owned();
    let upstream = cfg.config.upstream_path().to_string_lossy().into_owned();
    let sockets = KNOWN_SOCKETS
        .iter()
        .copied()
        .chain([listen.as_str(), upstream.as_str()])
        .filter_map(normalize_path);
    for socket in sockets {
        if path == "/" || socket == path || socket.starts_with(&format!("{path}/")) {
            return true;
        }
    }
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if let Some(name) = components.last() {
        let name = name.to_ascii_lowercase();
        if name.ends_with("docker.sock") || name == "containerd.sock" {
            return true;
        }
    }
    // /proc/<pid>/root is a door into that process's filesystem (pid 1's is
    // the host's); /proc/<pid>/task/<tid>/root too.
    if components.first() == Some(&"proc") {
        let magic = |c: &&str| matches!(*c, "root" | "cwd" | "fd" | "map_files");
        if components.get(2).is_some_and(magic)
            || (components.get(2) == Some(&"task") && components.get(4).is_some_and(magic))
        {
            return true;
        }
    }
    false
}

/// Splits a `SecurityOpt` entry as dockerd does: at the first `=`, or else
/// at the first `:` (the deprecated separator).
pub(super) fn split_security_opt(opt: &str) -> (&str, Option<&str>) {
    if let Some((key, value)) = opt.split_once('=') {
        (key.trim(), Some(value.trim()))
    } else if let Some((key, value)) = opt.split_once(':') {
        (key.trim(), Some(value.trim()))
    } else {
        (opt.trim(), None)
    }
}

/// What dockerd makes of a `seccomp=` value other than `unconfined`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seccomp {
    /// `builtin` (dockerd's default profile), or a profile that confines.
    Confines,
    /// A profile that allows every system call it does not name.
    AllowsAll,
    /// Not JSON the shim can read (a lone UTF-16 surrogate Go reads as
    /// U+FFFD, nesting deeper than serde_json's limit, …): not judged.
    Unreadable(String),
}

/// Reads an inline seccomp profile as dockerd does (20.10: `builtin` is the
/// default profile, anything else is parsed as a JSON profile).
pub(super) fn seccomp_profile(profile: &str) -> Seccomp {
    if profile == "builtin" {
        return Seccomp::Confines;
    }
    let profile = match serde_json::from_str::<Value>(profile) {
        Ok(Value::Object(profile)) => profile,
        Ok(_) => return Seccomp::Unreadable("not a JSON object".into()),
        Err(e) => return Seccomp::Unreadable(e.to_string()),
    };
    let allows_all = profile.iter().any(|(key, value)| {
        go_fold_eq(key, "defaultAction")
            && value
                .as_str()
                .is_some_and(|action| matches!(action.trim(), "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG"))
    });
    if allows_all {
        Seccomp::AllowsAll
    } else {
        Seccomp::Confines
    }
}
