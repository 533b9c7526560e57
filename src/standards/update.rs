//! `POST /containers/{id}/update`: a flat resources object that may not
//! raise a value above a maximum nor remove a limit the standards set.

use serde_json::Value;

use crate::config::{ContainerIdentity, LoadedConfig, StandardsMode};

use super::canon;
use super::engine::{keep_original, unchanged, Engine};
use super::json::int;
use super::limits::{nano_to_quota, quota_to_nano, show_bytes, show_cpus, Maxima, Targets, DEFAULT_CPU_PERIOD};
use super::rule::*;
use super::{BadRequest, Outcome, Rejection};

pub(super) fn check_update(
    cfg: &LoadedConfig,
    who: &ContainerIdentity<'_>,
    current_host_config: Option<&Value>,
    body: Value,
) -> Result<Outcome, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off {
        return Ok(unchanged(body));
    }
    let original = keep_original(standards, &body);
    let mut body = canon::canonicalize(body, &canon::UPDATE, "update")?;
    let Some(root) = body.as_object_mut() else {
        return Err(BadRequest::new("invalid update body: expected an object").into());
    };
    let mut e = Engine::new(cfg, who);
    let targets = Targets::resolve(cfg, &cfg.policy.resolve(who));
    let maxima = Maxima::for_engine(&e);
    let current = |key: &str| {
        current_host_config
            .and_then(|c| c.get(key))
            .and_then(Value::as_i64)
            .filter(|v| *v != 0)
    };

    // Memory: 0 leaves it unchanged and dockerd refuses a negative limit.
    if let Some(max) = maxima.memory {
        if int(root, "MemorySwap", "")? == Some(-1) && super::create::unlimited_swap(&mut e) {
            root.remove("MemorySwap");
        }
        for (key, label) in [("Memory", "memory limit"), ("MemoryReservation", "memory reservation")] {
            let Some(asked) = int(root, key, "")?.filter(|v| *v > max) else {
                continue;
            };
            let what = format!(
                "raising the {label} to {} ({key}, above the maximum)",
                show_bytes(asked)
            );
            if e.over_limit(LIMITS_MEMORY, what, &show_bytes(max)) {
                root.insert(key.to_string(), max.into());
                e.change(
                    LIMITS_MEMORY,
                    format!(
                        "lowered {label} {} to the maximum {}",
                        show_bytes(asked),
                        show_bytes(max)
                    ),
                );
            }
        }
    }

    // CPU. A rule guards a limit when there is a maximum, or a default the
    // standards would have set.
    let cpu_rule = if maxima.cpus.is_some() {
        Some(LIMITS_CPUS)
    } else if targets.cpus.is_some() && e.applies(DEFAULTS_CPUS) {
        Some(DEFAULTS_CPUS)
    } else {
        None
    };
    let nano = int(root, "NanoCpus", "")?.unwrap_or(0);
    let quota = int(root, "CpuQuota", "")?.unwrap_or(0);
    let period = int(root, "CpuPeriod", "")?.unwrap_or(0);
    if let Some(rule) = cpu_rule {
        if quota < 0 {
            let what = "removing the CPU limit (CpuQuota -1)".to_string();
            match maxima.cpus {
                Some(max) if e.over_limit(rule, what.clone(), &show_cpus(max)) => {
                    root.remove("CpuQuota");
                    e.change(rule, "ignored CpuQuota -1, which would remove the CPU limit");
                }
                Some(_) => {}
                None => e.deny(rule, what, None),
            }
        }
    }
    if let Some(max) = maxima.cpus {
        let max_text = show_cpus(max);
        let period_now = if period > 0 {
            period
        } else {
            current("CpuPeriod").unwrap_or(DEFAULT_CPU_PERIOD)
        };
        if quota > 0 && quota_to_nano(quota, period_now) > max {
            let asked = show_cpus(quota_to_nano(quota, period_now));
            let what = format!("raising the CPU limit to {asked} (CpuQuota, above the maximum)");
            if e.over_limit(LIMITS_CPUS, what, &max_text) {
                root.insert("CpuQuota".to_string(), nano_to_quota(max, period_now).into());
                e.change(
                    LIMITS_CPUS,
                    format!("lowered CPU limit {asked} to the maximum {max_text}"),
                );
            }
        }
        if period > 0 && quota == 0 {
            // A shorter period with the same quota is more CPU.
            let raises = match (current_host_config, current("CpuQuota")) {
                (_, Some(current_quota)) if current_quota > 0 => quota_to_nano(current_quota, period) > max,
                (Some(_), _) => false,
                (None, _) => true,
            };
            if raises {
                let what = "changing CpuPeriod without CpuQuota, which can raise the CPU limit".to_string();
                if e.over_limit(LIMITS_CPUS, what, &max_text) {
                    root.insert("CpuQuota".to_string(), nano_to_quota(max, period).into());
                    e.change(
                        LIMITS_CPUS,
                        format!("set CPU limit {max_text} (the maximum) for CpuPeriod {period}"),
                    );
                }
            }
        }
        if nano > max {
            let asked = show_cpus(nano);
            let what = format!("raising the CPU limit to {asked} (NanoCpus, above the maximum)");
            if e.over_limit(LIMITS_CPUS, what, &max_text) {
                root.insert("NanoCpus".to_string(), max.into());
                e.change(
                    LIMITS_CPUS,
                    format!("lowered CPU limit {asked} to the maximum {max_text}"),
                );
            }
        }
    }

    // PIDs: null leaves it unchanged, 0 and negative mean unlimited.
    if let Some(pids) = int(root, "PidsLimit", "")? {
        let pids_rule = if maxima.pids.is_some() {
            Some(LIMITS_PIDS_LIMIT)
        } else if targets.pids_limit.is_some() && e.applies(DEFAULTS_PIDS_LIMIT) {
            Some(DEFAULTS_PIDS_LIMIT)
        } else {
            None
        };
        let what = match (pids, maxima.pids) {
            (p, _) if p <= 0 => Some(format!("removing the PID limit (PidsLimit {p})")),
            (p, Some(max)) if p > max => Some(format!("raising the PID limit to {p} (PidsLimit, above the maximum)")),
            _ => None,
        };
        if let (Some(rule), Some(what)) = (pids_rule, what) {
            match maxima.pids {
                Some(max) => {
                    if e.over_limit(rule, what, &max.to_string()) {
                        root.insert("PidsLimit".to_string(), max.into());
                        e.change(rule, format!("lowered PID limit {pids} to the maximum {max}"));
                    }
                }
                None => e.deny(rule, what, None),
            }
        }
    }

    e.finish(original, body)
}
