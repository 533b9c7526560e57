//! Resource arithmetic: the defaults that apply to a container ([`Targets`],
//! from `standards.defaults` and its class or service entry), the maxima
//! ([`Maxima`], from `standards.limits`), and conversions between bytes,
//! CPUs, CFS quotas and their display.

use crate::config::{ByteSize, Cpus, LoadedConfig, Resources, ServicePolicy};

use super::engine::Engine;
use super::rule::*;

/// Docker's CFS period when none is given: 100ms, in microseconds.
pub(super) const DEFAULT_CPU_PERIOD: i64 = 100_000;

/// A value to set when the request leaves it unset, and where it comes from
/// (for the change message): `""`, ` for class high`, ` for service entry shop/api`.
pub(super) struct Target<T> {
    pub(super) value: T,
    pub(super) origin: String,
}

pub(super) struct Targets {
    pub(super) memory: Option<Target<ByteSize>>,
    pub(super) memory_reservation: Option<Target<ByteSize>>,
    pub(super) cpus: Option<Target<Cpus>>,
    pub(super) pids_limit: Option<Target<i64>>,
}

impl Targets {
    /// Class and service `resources` override `standards.defaults`.
    pub(super) fn resolve(cfg: &LoadedConfig, policy: &ServicePolicy) -> Targets {
        let defaults = &cfg.config.standards.defaults;
        let origin = |has: fn(&Resources) -> bool| -> String {
            let from_service = policy.service_entry.as_ref().filter(|key| {
                cfg.policy
                    .services
                    .iter()
                    .any(|(name, _, spec)| name == *key && has(&spec.resources))
            });
            match from_service {
                Some(key) => format!(" for service entry {key}"),
                None => format!(" for class {}", policy.class),
            }
        };
        fn pick<T: Copy>(
            from_policy: Option<T>,
            origin: impl FnOnce() -> String,
            default: Option<T>,
        ) -> Option<Target<T>> {
            match (from_policy, default) {
                (Some(value), _) => Some(Target {
                    value,
                    origin: origin(),
                }),
                (None, Some(value)) => Some(Target {
                    value,
                    origin: String::new(),
                }),
                (None, None) => None,
            }
        }
        let resources = &policy.resources;
        Targets {
            memory: pick(resources.memory, || origin(|r| r.memory.is_some()), defaults.memory),
            memory_reservation: pick(
                resources.memory_reservation,
                || origin(|r| r.memory_reservation.is_some()),
                defaults.memory_reservation,
            ),
            cpus: pick(resources.cpu, || origin(|r| r.cpu.is_some()), defaults.cpus),
            pids_limit: pick(
                resources.pids_limit.filter(|p| *p > 0),
                || origin(|r| r.pids_limit.is_some()),
                defaults.pids_limit.filter(|p| *p > 0),
            ),
        }
    }
}

pub(super) fn bytes_i64(size: ByteSize) -> i64 {
    i64::try_from(size.bytes()).unwrap_or(i64::MAX)
}

pub(super) fn show_bytes(bytes: i64) -> String {
    ByteSize(bytes.max(0).unsigned_abs()).to_string()
}

pub(super) fn show_cpus(nano_cpus: i64) -> String {
    Cpus(nano_cpus).to_string()
}

pub(super) fn quota_to_nano(quota: i64, period: i64) -> i64 {
    let nano = i128::from(quota) * 1_000_000_000 / i128::from(period.max(1));
    i64::try_from(nano).unwrap_or(i64::MAX)
}

/// The CFS quota for `nano_cpus` at `period`; at least dockerd's minimum 1ms.
pub(super) fn nano_to_quota(nano_cpus: i64, period: i64) -> i64 {
    let quota = i128::from(nano_cpus) * i128::from(period) / 1_000_000_000;
    i64::try_from(quota).unwrap_or(i64::MAX).max(1000)
}

/// The memory, CPU and PID maxima that apply to this container.
pub(super) struct Maxima {
    pub(super) memory: Option<i64>,
    pub(super) cpus: Option<i64>,
    pub(super) pids: Option<i64>,
}

impl Maxima {
    pub(super) fn for_engine(e: &Engine<'_>) -> Maxima {
        let limits = &e.standards.limits;
        Maxima {
            memory: limits.memory.map(bytes_i64).filter(|_| e.applies(LIMITS_MEMORY)),
            cpus: limits.cpus.map(Cpus::nano_cpus).filter(|_| e.applies(LIMITS_CPUS)),
            pids: limits.pids_limit.filter(|p| *p > 0 && e.applies(LIMITS_PIDS_LIMIT)),
        }
    }
}

/// What to set for an unset value: the default (when its rule applies), or
/// else the maximum, so a limit is never left out.
pub(super) fn fill<T: Copy>(
    e: &Engine<'_>,
    target: &Option<Target<T>>,
    default_rule: &'static str,
    max: Option<i64>,
    max_rule: &'static str,
    to_i64: impl Fn(T) -> i64,
) -> Option<(&'static str, i64, String)> {
    match (target, max) {
        (Some(target), _) if e.applies(default_rule) => {
            Some((default_rule, to_i64(target.value), target.origin.clone()))
        }
        (_, Some(max)) => Some((max_rule, max, " (the maximum)".to_string())),
        _ => None,
    }
}
