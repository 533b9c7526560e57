//! The backstop after a create: what dockerd *recorded* (its inspect of the
//! new container) judged again, so that any difference between how the shim
//! and dockerd read a request is caught before the container can start.
//!
//! Three checks, each a breach when it fails:
//! - the recorded image id is the one the standards judged (a name moved to
//!   another image between the check and the create);
//! - the recorded user is the one forwarded, or the judged image's own when
//!   none was (a `User` dockerd read differently);
//! - the create rules, run again on the recorded `HostConfig`, deny nothing
//!   and find no value above a `limits:` maximum.
//!
//! It is a backstop, not a second judge: the defaults (which fill what is
//! unset) are not re-applied, and `MemorySwap: -1` is left out, because
//! dockerd 20.10 records it itself on kernels without swap accounting.

use serde_json::{Map, Value};

use crate::config::{LoadedConfig, StandardsMode};

use super::create::run_create;
use super::rule::NON_ROOT;
use super::{CreateContext, Rejection};

/// The breaches found in `recorded` (dockerd's inspect of the container made
/// from `forwarded`, the body the shim sent), each as a sentence. Empty
/// outside `enforce` mode.
pub fn check_recorded_create(
    cfg: &LoadedConfig,
    ctx: &CreateContext,
    forwarded: &Value,
    recorded: &Value,
) -> Vec<String> {
    if cfg.config.standards.mode != StandardsMode::Enforce {
        return Vec::new();
    }
    let mut breaches = Vec::new();
    let recorded_image = recorded["Image"].as_str().unwrap_or_default();
    if let Some(judged) = ctx.image_id.as_deref() {
        if recorded_image != judged {
            breaches.push(format!(
                "dockerd created it from image {recorded_image}, not {judged}, the image the standards judged"
            ));
        }
    }

    let config = &recorded["Config"];
    let recorded_user = config["User"].as_str().unwrap_or_default();
    let forwarded_user = forwarded.get("User").and_then(Value::as_str).filter(|u| !u.is_empty());
    if let Some(expected) = forwarded_user.or(ctx.image_user.as_deref()) {
        if recorded_user != expected {
            breaches.push(format!(
                "dockerd recorded user {recorded_user:?}, not {expected:?}, the user the standards judged"
            ));
        }
    }

    let mut host = match &recorded["HostConfig"] {
        Value::Object(host) => host.clone(),
        _ => Map::new(),
    };
    if host.get("MemorySwap").and_then(Value::as_i64) == Some(-1) {
        host.remove("MemorySwap");
    }
    // dockerd adds `label=disable` to a privileged container's options
    // itself; the privileged mode it follows from was judged already.
    if host.get("Privileged") == Some(&Value::Bool(true)) {
        let asked = forwarded
            .pointer("/HostConfig/SecurityOpt")
            .and_then(Value::as_array)
            .map_or(0, |options| options.iter().filter(|o| is_label_disable(o)).count());
        if let Some(Value::Array(options)) = host.get_mut("SecurityOpt") {
            let mut derived = options
                .iter()
                .filter(|o| is_label_disable(o))
                .count()
                .saturating_sub(asked)
                .min(1);
            options.retain(|option| {
                let drop = derived > 0 && is_label_disable(option);
                derived -= usize::from(drop);
                !drop
            });
        }
    }
    let mut body = Map::new();
    body.insert("Image".into(), config["Image"].clone());
    body.insert("User".into(), Value::String(recorded_user.to_string()));
    if config["Labels"].is_object() {
        body.insert("Labels".into(), config["Labels"].clone());
    }
    body.insert("HostConfig".into(), Value::Object(host));
    let rerun = CreateContext {
        name: recorded["Name"].as_str().map(|n| n.trim_start_matches('/').to_string()),
        image_id: Some(recorded_image.to_string()).filter(|id| !id.is_empty()),
        ..ctx.clone()
    };
    match run_create(cfg, &rerun, Value::Object(body)) {
        Ok((engine, _)) => {
            let (denials, changes) = engine.into_findings();
            // The user was checked above, against what was forwarded.
            for denial in denials.into_iter().filter(|d| d.rule != NON_ROOT) {
                breaches.push(format!("dockerd recorded {}", denial.what));
            }
            for change in changes.into_iter().filter(|c| c.rule.starts_with("limits.")) {
                breaches.push(format!(
                    "dockerd recorded a value above a maximum (the shim would have {change})"
                ));
            }
        }
        Err(Rejection::BadRequest(e)) => breaches.push(format!("dockerd's record cannot be read: {e}")),
        Err(Rejection::Denied(denial)) => breaches.push(format!("dockerd recorded {}", denial.what)),
    }
    breaches
}

/// `label=disable` (or dockerd's older `label:disable`).
fn is_label_disable(option: &Value) -> bool {
    matches!(option.as_str(), Some("label=disable" | "label:disable"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Config;

    const ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn cfg() -> LoadedConfig {
        Config::load(None).expect("embedded shim.yml")
    }

    fn context() -> CreateContext {
        CreateContext {
            image_user: Some("1000".into()),
            image_id: Some(ID.into()),
            ..CreateContext::default()
        }
    }

    /// What dockerd 20.10 records for a create the embedded standards edited.
    fn recorded() -> Value {
        json!({
            "Id": "abc", "Name": "/web", "Image": ID,
            "Config": {"Image": "app", "User": "1000", "Labels": {}},
            "HostConfig": {
                "Memory": 536870912, "MemoryReservation": 134217728, "MemorySwap": -1,
                "NanoCpus": 1000000000, "CpuQuota": 0, "CpuPeriod": 0, "PidsLimit": 512,
                "ReadonlyRootfs": true, "Tmpfs": {"/tmp": "", "/run": ""}, "CapDrop": ["ALL"], "CapAdd": null,
                "SecurityOpt": ["no-new-privileges=true"], "Privileged": false, "NetworkMode": "default",
                "PidMode": "", "IpcMode": "private", "UTSMode": "", "UsernsMode": "", "CgroupnsMode": "host",
                "Devices": [], "DeviceCgroupRules": null, "DeviceRequests": null, "Binds": null,
                "MaskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
                "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
            }
        })
    }

    #[test]
    fn a_faithful_record_has_no_breach() {
        let breaches = check_recorded_create(&cfg(), &context(), &json!({"Image": "app"}), &recorded());
        assert_eq!(breaches, Vec::<String>::new());
    }

    #[test]
    fn what_dockerd_read_differently_is_a_breach() {
        let cases: &[(&str, Value, &str)] = &[
            ("/Image", json!("sha256:22"), "not sha256:1111"),
            ("/Config/User", json!("0"), "user \"0\""),
            ("/HostConfig/Privileged", json!(true), "privileged"),
            ("/HostConfig/PidMode", json!("host"), "PID namespace"),
            ("/HostConfig/Memory", json!(8i64 << 30), "above the maximum"),
            ("/HostConfig/Binds", json!(["/var/run/docker.sock:/s"]), "docker.sock"),
            ("/HostConfig/CapAdd", json!(["SYS_ADMIN"]), "SYS_ADMIN"),
        ];
        for (pointer, value, part) in cases {
            let mut record = recorded();
            *record.pointer_mut(pointer).unwrap() = value.clone();
            let breaches = check_recorded_create(&cfg(), &context(), &json!({"Image": "app"}), &record);
            assert!(
                breaches.iter().any(|b| b.contains(part)),
                "{pointer} = {value}: {breaches:?}"
            );
        }
    }

    #[test]
    fn the_forwarded_user_is_the_one_expected() {
        let mut record = recorded();
        record["Config"]["User"] = json!("65534:65534");
        let forwarded = json!({"Image": "app", "User": "65534:65534"});
        assert!(check_recorded_create(&cfg(), &context(), &forwarded, &record).is_empty());
        let forwarded = json!({"Image": "app", "User": "1000"});
        assert_eq!(check_recorded_create(&cfg(), &context(), &forwarded, &record).len(), 1);
    }

    #[test]
    fn the_label_dockerd_adds_to_an_exempt_privileged_container_is_not_a_breach() {
        let yaml =
            "standards:\n  exempt:\n    - match: { name: web }\n      rules: [deny.privileged]\n      reason: test\n";
        let cfg = Config::from_yaml_over_default(yaml, "t").unwrap();
        let context = CreateContext {
            name: Some("web".into()),
            ..context()
        };
        let mut record = recorded();
        record["HostConfig"]["Privileged"] = json!(true);
        record["HostConfig"]["SecurityOpt"] = json!(["label=disable", "no-new-privileges=true"]);
        let forwarded = json!({"Image": "app", "HostConfig": {"Privileged": true}});
        assert_eq!(
            check_recorded_create(&cfg, &context, &forwarded, &record),
            Vec::<String>::new()
        );
        // Only the one dockerd adds: a second, or one on an unprivileged
        // container, is judged as any other.
        record["HostConfig"]["SecurityOpt"] = json!(["label=disable", "label=disable"]);
        assert_eq!(check_recorded_create(&cfg, &context, &forwarded, &record).len(), 1);
        record["HostConfig"]["Privileged"] = json!(false);
        record["HostConfig"]["SecurityOpt"] = json!(["label=disable"]);
        assert_eq!(check_recorded_create(&cfg, &context, &forwarded, &record).len(), 1);
    }

    #[test]
    fn audit_mode_has_no_backstop() {
        let cfg = Config::from_yaml_over_default("standards: { mode: audit }", "t").unwrap();
        let mut record = recorded();
        record["HostConfig"]["Privileged"] = json!(true);
        assert!(check_recorded_create(&cfg, &context(), &json!({}), &record).is_empty());
    }
}
