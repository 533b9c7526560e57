//! `POST /build` and plugin installs: judged on the query alone, since the
//! body (a build context, a plugin's settings) is streamed.
//!
//! The classic builder (`version=1`, dockerd 20.10's default for the API)
//! runs each `RUN` step in a container whose network mode and limits come
//! from the query: `networkmode`, `memory`, `memswap`, `cpuquota`,
//! `cpuperiod`. BuildKit (`version=2`) reads `networkmode` (`host` needs
//! dockerd's `network.host` entitlement) and ignores the limits; its steps
//! run under BuildKit's own cgroup. Neither builder lets a step run
//! privileged or mount the Docker socket from the query.

use crate::config::{ContainerIdentity, LoadedConfig, StandardsMode};
use crate::route::query_value;

use super::engine::Engine;
use super::limits::show_bytes;
use super::rule::{DENY_HOST_NETWORK, DENY_PLUGINS, LIMITS_CPUS, LIMITS_MEMORY};
use super::{BadRequest, Change, Rejection};

/// What a judged head becomes: the query to forward (rewritten when a
/// limit was set) and what was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadOutcome {
    pub query: Option<String>,
    pub changes: Vec<Change>,
}

/// Docker's CPU period, which a quota is set against.
const CPU_PERIOD: i64 = 100_000;

pub(super) fn check_build(cfg: &LoadedConfig, query: Option<&str>) -> Result<HeadOutcome, Rejection> {
    let standards = &cfg.config.standards;
    let unchanged = HeadOutcome {
        query: query.map(str::to_string),
        changes: Vec::new(),
    };
    if standards.mode == StandardsMode::Off {
        return Ok(unchanged);
    }
    let tag = query_value(query, "t");
    let who = ContainerIdentity {
        name: tag.as_deref(),
        image: None,
        labels: None,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, &who);
    let network = query_value(query, "networkmode").unwrap_or_default();
    if standards.deny.host_network && (network == "host" || network.starts_with("container:")) {
        e.deny(
            DENY_HOST_NETWORK,
            format!("a build on network mode {network:?} (networkmode=)"),
            Some("build on the default bridge network".into()),
        );
    }
    let int = |key: &str| -> Result<Option<i64>, Rejection> {
        match query_value(query, key) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| BadRequest::new(format!("build: {key}={v:?} is not a number")).into()),
        }
    };
    let mut set: Vec<(&str, String)> = Vec::new();
    if let Some(max) = standards.limits.memory.map(|m| m.bytes()) {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        match int("memory")?.filter(|m| *m != 0) {
            Some(memory) if memory < 0 || memory > max => {
                let what = format!("a build memory limit of {} (memory=)", show_bytes(memory));
                if e.over_limit(LIMITS_MEMORY, what, &show_bytes(max)) {
                    set.push(("memory", max.to_string()));
                    e.change(LIMITS_MEMORY, format!("capped build memory at {}", show_bytes(max)));
                }
            }
            Some(_) => {}
            None => {
                set.push(("memory", max.to_string()));
                e.change(LIMITS_MEMORY, format!("set build memory limit {}", show_bytes(max)));
            }
        }
        if int("memswap")? == Some(-1) {
            e.deny(
                LIMITS_MEMORY,
                "unlimited swap for a build (memswap=-1)",
                Some("leave memswap unset (twice the memory limit)".into()),
            );
        }
    }
    if let Some(cpus) = standards.limits.cpus.map(|c| c.nano_cpus()) {
        let max_quota = cpus.saturating_mul(CPU_PERIOD) / 1_000_000_000;
        let period = int("cpuperiod")?.filter(|p| *p > 0).unwrap_or(CPU_PERIOD);
        match int("cpuquota")?.filter(|q| *q != 0) {
            Some(quota) if quota < 0 || quota.saturating_mul(CPU_PERIOD) > max_quota.saturating_mul(period) => {
                let what = format!("a build CPU quota of {quota} per {period} µs (cpuquota=)");
                if e.over_limit(LIMITS_CPUS, what, &format!("{max_quota} per {CPU_PERIOD} µs")) {
                    set.push(("cpuquota", (max_quota * period / CPU_PERIOD).to_string()));
                    e.change(LIMITS_CPUS, "capped build CPU quota".to_string());
                }
            }
            Some(_) => {}
            None => {
                set.push(("cpuquota", (max_quota * period / CPU_PERIOD).to_string()));
                set.push(("cpuperiod", period.to_string()));
                e.change(
                    LIMITS_CPUS,
                    format!("set build CPU quota {max_quota} per {CPU_PERIOD} µs"),
                );
            }
        }
    }
    let outcome = e.finish(
        (standards.mode == StandardsMode::Audit).then_some(serde_json::Value::Null),
        serde_json::Value::Null,
    )?;
    if standards.mode == StandardsMode::Audit {
        return Ok(HeadOutcome {
            changes: outcome.changes,
            ..unchanged
        });
    }
    Ok(HeadOutcome {
        query: Some(with_values(query, &set)),
        changes: outcome.changes,
    })
}

pub(super) fn check_plugin_install(cfg: &LoadedConfig, what: &str) -> Result<HeadOutcome, Rejection> {
    let standards = &cfg.config.standards;
    let unchanged = HeadOutcome {
        query: None,
        changes: Vec::new(),
    };
    if standards.mode == StandardsMode::Off || !standards.deny.plugins {
        return Ok(unchanged);
    }
    let who = ContainerIdentity {
        name: None,
        image: None,
        labels: None,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, &who);
    e.deny(
        DENY_PLUGINS,
        format!("installing or changing a plugin ({what}): a plugin runs with the privileges it asks for"),
        Some("ask the operator to install it on dockerd itself".into()),
    );
    let outcome = e.finish(
        (standards.mode == StandardsMode::Audit).then_some(serde_json::Value::Null),
        serde_json::Value::Null,
    )?;
    Ok(HeadOutcome {
        changes: outcome.changes,
        ..unchanged
    })
}

/// `query` without any pair whose key is in `set`, then `set` appended:
/// Go reads the first value of a key, so an earlier one must not remain.
fn with_values(query: Option<&str>, set: &[(&str, String)]) -> String {
    let mut pairs: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            let key = percent_encoding::percent_decode_str(&key.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            !set.iter().any(|(k, _)| *k == key)
        })
        .map(str::to_string)
        .collect();
    pairs.extend(set.iter().map(|(k, v)| format!("{k}={v}")));
    pairs.join("&")
}
