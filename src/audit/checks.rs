//! The compliance checklist, pure: findings from a container's inspect JSON,
//! and what its writes so far say about a read-only root.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::config::is_root_user;

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub detail: String,
}

/// What a running container's writes say about a read-only root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadOnlyAdvice {
    pub possible: bool,
    /// Top-level paths written outside volumes and tmpfs: each needs a tmpfs
    /// or a volume before `read_only_rootfs` can be turned on.
    pub needs_writable: Vec<String>,
}

/// Checks one container's inspect JSON (`Config` is already merged with its
/// image's, so an image's `USER` and `HEALTHCHECK` count).
pub fn check(inspect: &Value) -> Vec<Finding> {
    let host = &inspect["HostConfig"];
    let config = &inspect["Config"];
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let mut findings = Vec::new();
    let mut find = |rule: &'static str, detail: &str| {
        findings.push(Finding {
            rule,
            detail: detail.to_string(),
        })
    };
    if int(&host["Memory"]) <= 0 {
        find("limits.memory", "no memory limit");
    }
    if int(&host["NanoCpus"]) <= 0 && int(&host["CpuQuota"]) <= 0 {
        find("limits.cpus", "no CPU limit");
    }
    if int(&host["PidsLimit"]) <= 0 {
        find("limits.pids_limit", "no pids limit");
    }
    let user = config["User"].as_str().unwrap_or("");
    if user.is_empty() || is_root_user(user) {
        find("non_root", "runs as root");
    }
    if !host["ReadonlyRootfs"].as_bool().unwrap_or(false) {
        find("read_only_rootfs", "root filesystem is writable");
    }
    let health = config["Healthcheck"]["Test"].as_array();
    let has_health = health.is_some_and(|test| test.first().and_then(Value::as_str).is_some_and(|t| t != "NONE"));
    if !has_health {
        find("health_check", "no health check");
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let security_opt = strings(&host["SecurityOpt"]);
    if !security_opt.iter().any(|o| {
        let o = o.to_ascii_lowercase();
        o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
    }) {
        find("no_new_privileges", "no-new-privileges is not set");
    }
    if !strings(&host["CapDrop"]).iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        find("cap_drop", "capabilities are not dropped (cap_drop: ALL)");
    }
    if host["Privileged"].as_bool().unwrap_or(false) {
        find("deny.privileged", "privileged");
    }
    for (mode, rule) in [
        ("PidMode", "deny.host_pid"),
        ("IpcMode", "deny.host_ipc"),
        ("NetworkMode", "deny.host_network"),
    ] {
        if host[mode].as_str() == Some("host") {
            find(rule, &format!("shares the host's namespace ({mode}=host)"));
        }
    }
    let mounts = inspect["Mounts"].as_array().cloned().unwrap_or_default();
    if mounts
        .iter()
        .any(|m| m["Source"].as_str().is_some_and(|s| s.ends_with("docker.sock")))
    {
        find("deny.docker_socket", "mounts the Docker socket");
    }
    findings
}

/// From `GET /containers/{id}/changes`: the top-level paths written outside
/// what is already writable (volumes, binds, tmpfs).
pub fn read_only_advice(inspect: &Value, changes: &Value) -> ReadOnlyAdvice {
    let mut writable: Vec<String> = inspect["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["Destination"].as_str().map(str::to_string))
        .collect();
    if let Some(tmpfs) = inspect["HostConfig"]["Tmpfs"].as_object() {
        writable.extend(tmpfs.keys().cloned());
    }
    // dockerd writes these itself at start; they are not the app's writes.
    let ignored = [
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/etc/mtab",
        "/dev",
        "/proc",
        "/sys",
    ];
    let paths: Vec<&str> = changes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Path"].as_str())
        .collect();
    let mut needs = BTreeSet::new();
    for path in paths.iter().copied() {
        // A folder listed as modified because something below it changed
        // says nothing of its own.
        if paths.iter().any(|other| other.starts_with(&format!("{path}/"))) {
            continue;
        }
        // Kind 2 is a deletion; it still needs a writable root.
        let covered = writable
            .iter()
            .any(|w| path == w || path.starts_with(&format!("{}/", w.trim_end_matches('/'))));
        if covered || ignored.iter().any(|i| path == *i || path.starts_with(&format!("{i}/"))) {
            continue;
        }
        // The folder to make writable: the first two levels (`/var/cache`),
        // or the top level for a file right under `/`.
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let depth = if parts.len() > 2 {
            2
        } else {
            parts.len().saturating_sub(1).max(1)
        };
        needs.insert(format!("/{}", parts[..depth].join("/")));
    }
    // Keep only the outermost of nested suggestions.
    let all: Vec<String> = needs.into_iter().collect();
    let needs_writable: Vec<String> = all
        .iter()
        .filter(|p| !all.iter().any(|q| q != *p && p.starts_with(&format!("{q}/"))))
        .cloned()
        .collect();
    ReadOnlyAdvice {
        possible: needs_writable.is_empty(),
        needs_writable,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn bare_container_breaks_every_rule() {
        let inspect = json!({"Config": {"User": ""}, "HostConfig": {"Memory": 0}, "Mounts": []});
        let found = rules(&check(&inspect));
        for rule in [
            "limits.memory",
            "limits.cpus",
            "limits.pids_limit",
            "non_root",
            "read_only_rootfs",
            "health_check",
            "no_new_privileges",
            "cap_drop",
        ] {
            assert!(found.contains(&rule), "missing {rule} in {found:?}");
        }
    }

    #[test]
    fn hardened_container_is_compliant() {
        let inspect = json!({
            "Config": {"User": "65534:65534", "Healthcheck": {"Test": ["CMD", "true"]}},
            "HostConfig": {
                "Memory": 536870912, "NanoCpus": 1000000000, "PidsLimit": 512,
                "ReadonlyRootfs": true, "SecurityOpt": ["no-new-privileges:true"], "CapDrop": ["ALL"]
            },
            "Mounts": []
        });
        assert_eq!(check(&inspect), vec![]);
    }

    #[test]
    fn dangerous_settings_are_named() {
        let inspect = json!({
            "Config": {"User": "0"},
            "HostConfig": {"Privileged": true, "NetworkMode": "host", "Healthcheck": {"Test": ["NONE"]}},
            "Mounts": [{"Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock"}]
        });
        let found = rules(&check(&inspect));
        for rule in [
            "deny.privileged",
            "deny.host_network",
            "deny.docker_socket",
            "non_root",
            "health_check",
        ] {
            assert!(found.contains(&rule), "missing {rule} in {found:?}");
        }
    }

    #[test]
    fn read_only_advice_from_changes() {
        let inspect = json!({"Mounts": [{"Destination": "/data"}], "HostConfig": {"Tmpfs": {"/tmp": ""}}});
        let changes = json!([
            {"Path": "/tmp/x", "Kind": 1},
            {"Path": "/data/db", "Kind": 1},
            {"Path": "/etc/hosts", "Kind": 0},
            {"Path": "/var", "Kind": 0},
            {"Path": "/var/cache", "Kind": 0},
            {"Path": "/var/cache/app/index", "Kind": 1},
            {"Path": "/state.json", "Kind": 1}
        ]);
        let advice = read_only_advice(&inspect, &changes);
        assert!(!advice.possible);
        assert_eq!(advice.needs_writable, vec!["/state.json", "/var/cache"]);
        let quiet = read_only_advice(&inspect, &json!([{"Path": "/tmp/a", "Kind": 1}]));
        assert!(quiet.possible);
    }
}
