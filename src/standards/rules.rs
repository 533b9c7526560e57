//! The rules for container create, update, exec and volume create, and the
//! [`Engine`] that records what they change or deny.
//!
//! Each rule runs only when its config switch is on and the container is not
//! exempt from it. In enforce mode every rule still runs after a denial, so
//! audit mode (which returns everything) and enforce mode (which returns the
//! first denial) always agree.
//!
//! Decisions taken where Docker leaves room:
//! - **Zero means unset.** Go clients send `Memory: 0`, `NanoCpus: 0`,
//!   `ReadonlyRootfs: false`; all of these get the default. An explicit
//!   `no-new-privileges=false` in `SecurityOpt` is not a zero value (no client
//!   sends it by accident) and is kept, like any other explicit setting.
//! - **`PidsLimit`**: null and 0 are unset and get the default; a negative
//!   value is an explicit "unlimited", which is above `limits.pids_limit`
//!   when that is set (denied or clamped) and kept otherwise.
//! - **CPU**: a `CpuQuota` of -1 is an explicit "unlimited" (dockerd lets it
//!   override `NanoCpus`), treated like `PidsLimit: -1`. The default goes to
//!   `NanoCpus` when `NanoCpus`, `CpuQuota` and `CpuPeriod` are all unset;
//!   when only `CpuPeriod` is set it goes to `CpuQuota` for that period
//!   instead (dockerd rejects `NanoCpus` with either), so a limit is never
//!   skipped.
//! - **Memory consistency**: a default memory limit is lowered to an explicit
//!   `MemorySwap` (the user capped memory + swap) and raised to an explicit
//!   `MemoryReservation` (dockerd requires reservation ≤ limit); a default
//!   reservation is lowered to the memory limit.
//! - **Limits** judge what the request asks for. The operator's own values
//!   (`defaults`, class and service `resources`) are not checked against
//!   them. When a request leaves a value unset and no default exists, the
//!   maximum is set (rule `limits.*`): "cannot remove a limit".
//! - **Root**: an unknown image user counts as root. Besides `root`, `0` and
//!   `0:…`, a sign (`+0`, `-0`) counts too: runc resolves numeric users with
//!   Go's `strconv.Atoi`, which accepts one.
//! - **Host namespaces**: `UTSMode: host` is judged by `deny.host_network`
//!   (the hostname is network identity and `--uts=host` comes with
//!   `--network=host`); `UsernsMode: host` (leaving userns remapping) by
//!   `deny.privileged`. `CgroupnsMode: host` is allowed: it is the cgroup v1
//!   default.
//! - **`deny.privileged`** also covers what privileged mode is made of:
//!   `systempaths=unconfined`, and `MaskedPaths`/`ReadonlyPaths` lists that
//!   leave out any of Docker's defaults (a list that keeps them all, as
//!   copied from `docker inspect` by tools that recreate containers, passes).
//! - **`deny.devices`** covers `Devices`, `DeviceCgroupRules` and
//!   `DeviceRequests` (GPUs): all give a container host devices.
//! - **`deny.seccomp_unconfined`** also denies an inline seccomp profile whose
//!   `defaultAction` is `SCMP_ACT_ALLOW` or `SCMP_ACT_LOG`.
//!   **`deny.apparmor_unconfined`** also denies `label=disable` (SELinux's
//!   equivalent).
//! - **`deny.cap_add`**: names are compared as dockerd does (upper-cased with
//!   Unicode rules, `CAP_` prefix optional); `ALL` is never in the allow-list.
//! - **Docker socket**: a host path is normalised lexically (`//`, `/./`,
//!   `..`, trailing `/`), as dockerd cleans it, and denied when it is one of
//!   the known socket paths (Docker's, containerd's, the shim's own listen
//!   and upstream paths) or a directory above one, when its file name ends
//!   in `docker.sock` or is `containerd.sock`, or when it goes through
//!   `/proc/<pid>/{root,cwd,fd,map_files}`. Symlinks on the host cannot be
//!   seen from here.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::config::{
    is_root_user, ByteSize, ContainerIdentity, Cpus, LoadedConfig, OnExceed, Resources, RootImage, ServicePolicy,
    StandardsConfig, StandardsMode, RULE_NAMES,
};

use super::canon::{self, go_fold_eq, kind};
use super::rule::*;
use super::{BadRequest, Change, CreateContext, Denial, Outcome, Rejection, LABEL_EXEMPT};

/// Docker's CFS period when none is given: 100ms, in microseconds.
pub(crate) const DEFAULT_CPU_PERIOD: i64 = 100_000;

/// dockerd's defaults (20.10's `oci/defaults.go`); a list without all of
/// them unmasks part of `/proc` or `/sys`.
const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
const DEFAULT_READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Sockets that give whoever can reach them root on the host.
const KNOWN_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/docker/containerd/containerd.sock",
    "/var/run/docker/containerd/containerd.sock",
];

// ---------------------------------------------------------------------------
// The engine

/// Which rules are switched off for one container.
#[derive(Debug, Default)]
struct Exemptions {
    all: bool,
    rules: BTreeSet<String>,
}

impl Exemptions {
    fn for_container(cfg: &LoadedConfig, who: &ContainerIdentity<'_>) -> Exemptions {
        let mut exemptions = Exemptions::default();
        let mut add = |rule: &str| {
            if rule == "all" {
                exemptions.all = true;
            } else if RULE_NAMES.contains(&rule) {
                exemptions.rules.insert(rule.to_string());
            }
        };
        for (selector, exemption) in &cfg.exemptions {
            if selector.matches(who) {
                exemption.rules.iter().for_each(|rule| add(rule));
            }
        }
        if cfg.config.standards.allow_label_exemptions {
            if let Some(rules) = who.label(LABEL_EXEMPT) {
                rules.split(',').map(str::trim).for_each(&mut add);
            }
        }
        exemptions
    }

    fn covers(&self, rule: &str) -> bool {
        self.all || self.rules.contains(rule)
    }
}

/// Runs rules for one request and collects their findings.
pub(crate) struct Engine<'c> {
    pub cfg: &'c LoadedConfig,
    pub standards: &'c StandardsConfig,
    exemptions: Exemptions,
    changes: Vec<Change>,
    /// Each denial with its rule as a `&'static str`, for audit findings.
    denials: Vec<(&'static str, Denial)>,
}

impl<'c> Engine<'c> {
    pub fn new(cfg: &'c LoadedConfig, who: &ContainerIdentity<'_>) -> Engine<'c> {
        Engine {
            cfg,
            standards: &cfg.config.standards,
            exemptions: Exemptions::for_container(cfg, who),
            changes: Vec::new(),
            denials: Vec::new(),
        }
    }

    /// Whether `rule` applies to this container (it is not exempt).
    pub fn applies(&self, rule: &str) -> bool {
        !self.exemptions.covers(rule)
    }

    pub fn change(&mut self, rule: &'static str, message: impl Into<String>) {
        self.changes.push(Change {
            rule,
            message: message.into(),
        });
    }

    /// Records a denial unless the container is exempt from `rule`. `advice`
    /// says what to ask for instead, when there is something.
    pub fn deny(&mut self, rule: &'static str, what: impl Into<String>, advice: Option<String>) {
        if !self.applies(rule) {
            return;
        }
        let mut hint = String::new();
        if let Some(advice) = advice {
            hint.push_str(&advice);
            hint.push_str(", or ");
        }
        hint.push_str(&format!(
            "ask the operator to exempt this container from {rule} (standards.exempt in the forge-shim config)"
        ));
        if self.standards.allow_label_exemptions {
            hint.push_str(&format!(", or set the label {LABEL_EXEMPT}={rule}"));
        }
        let denial = Denial {
            rule: rule.to_string(),
            what: what.into(),
            hint,
        };
        self.denials.push((rule, denial));
    }

    /// A request above a maximum: denies (returns false) or tells the caller
    /// to clamp (returns true), per `limits.on_exceed`.
    pub fn over_limit(&mut self, rule: &'static str, what: String, max: &str) -> bool {
        match self.standards.limits.on_exceed {
            OnExceed::Clamp => true,
            OnExceed::Deny => {
                self.deny(rule, what, Some(format!("ask for at most {max}")));
                false
            }
        }
    }

    /// Enforce: the first denial, or the edited body and its changes.
    /// Audit (`original` is the body as received): the original body, with
    /// every change and denial as a `would …` finding.
    pub fn finish(self, original: Option<Value>, body: Value) -> Result<Outcome, Rejection> {
        match original {
            None => match self.denials.into_iter().next() {
                Some((_, denial)) => Err(Rejection::Denied(denial)),
                None => Ok(Outcome {
                    body,
                    changes: self.changes,
                }),
            },
            Some(original) => {
                let denials = self.denials.into_iter().map(|(rule, denial)| Change {
                    rule,
                    message: format!("would deny {}", denial.what),
                });
                let changes = self.changes.into_iter().map(|change| Change {
                    rule: change.rule,
                    message: format!("would {}", change.message),
                });
                Ok(Outcome {
                    body: original,
                    changes: denials.chain(changes).collect(),
                })
            }
        }
    }
}

/// The body as received, for audit mode; `None` in enforce mode.
pub(crate) fn keep_original(standards: &StandardsConfig, body: &Value) -> Option<Value> {
    (standards.mode == StandardsMode::Audit).then(|| body.clone())
}

pub(crate) fn unchanged(body: Value) -> Outcome {
    Outcome {
        body,
        changes: Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Typed access to JSON fields. A value of the wrong type is a 400: dockerd's
// decoder would refuse it too, and a rule must never guess.

pub(crate) fn int(object: &Map<String, Value>, key: &str, at: &str) -> Result<Option<i64>, BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(Some)
            .ok_or_else(|| BadRequest::new(format!("invalid body: {at}{key} must be an integer, got {number}"))),
        Some(other) => Err(wrong_type(at, key, "an integer", other)),
    }
}

pub(crate) fn boolean(object: &Map<String, Value>, key: &str, at: &str) -> Result<Option<bool>, BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(other) => Err(wrong_type(at, key, "a boolean", other)),
    }
}

pub(crate) fn string<'v>(object: &'v Map<String, Value>, key: &str, at: &str) -> Result<Option<&'v str>, BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(other) => Err(wrong_type(at, key, "a string", other)),
    }
}

/// An array of strings; null and absent are empty.
pub(crate) fn strings<'v>(object: &'v Map<String, Value>, key: &str, at: &str) -> Result<Vec<&'v str>, BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str()
                    .ok_or_else(|| wrong_type(at, &format!("{key}[{i}]"), "a string", item))
            })
            .collect(),
        Some(other) => Err(wrong_type(at, key, "an array of strings", other)),
    }
}

/// An array of anything; null and absent are empty.
pub(crate) fn array<'v>(object: &'v Map<String, Value>, key: &str, at: &str) -> Result<&'v [Value], BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(wrong_type(at, key, "an array", other)),
    }
}

pub(crate) fn object<'v>(
    object: &'v Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'v Map<String, Value>>, BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(other) => Err(wrong_type(at, key, "an object", other)),
    }
}

/// The object at `key`, created (or replacing null) when missing.
pub(crate) fn object_mut<'v>(
    object: &'v mut Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<&'v mut Map<String, Value>, BadRequest> {
    let slot = object.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(inner) => Ok(inner),
        other => Err(wrong_type(at, key, "an object", other)),
    }
}

fn wrong_type(at: &str, key: &str, expected: &str, got: &Value) -> BadRequest {
    BadRequest::new(format!("invalid body: {at}{key} must be {expected}, got {}", kind(got)))
}

// ---------------------------------------------------------------------------
// Shared judgements

/// Whether a user spec names root: see the module doc.
pub(crate) fn runs_as_root(user: &str) -> bool {
    if is_root_user(user) {
        return true;
    }
    let name = user.split(':').next().unwrap_or("").trim();
    let digits = name.strip_prefix(['+', '-']).unwrap_or(name);
    !digits.is_empty() && digits.chars().all(|c| c == '0')
}

/// A namespace mode of `host`.
pub(crate) fn is_host(mode: Option<&str>) -> bool {
    mode.is_some_and(|mode| mode.trim().eq_ignore_ascii_case("host"))
}

/// A capability name as dockerd compares it: upper case (Go's `ToUpper` is
/// Unicode-aware, so `ſys_admin` is `SYS_ADMIN`), without `CAP_`.
pub(crate) fn normalize_cap(cap: &str) -> String {
    let upper = cap.trim().to_uppercase();
    upper.strip_prefix("CAP_").unwrap_or(&upper).to_string()
}

/// Lexically normalises an absolute path: `//`, `.`, `..` and trailing `/`
/// removed, as Go's `path.Clean`. `None` for a relative path (a volume name).
pub(crate) fn normalize_path(path: &str) -> Option<String> {
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
/// that controls the host: see the module doc.
pub(crate) fn exposes_docker_socket(cfg: &LoadedConfig, source: &str) -> bool {
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
fn split_security_opt(opt: &str) -> (&str, Option<&str>) {
    if let Some((key, value)) = opt.split_once('=') {
        (key.trim(), Some(value.trim()))
    } else if let Some((key, value)) = opt.split_once(':') {
        (key.trim(), Some(value.trim()))
    } else {
        (opt.trim(), None)
    }
}

/// An inline seccomp profile that allows every system call it does not name.
fn seccomp_profile_allows_all(profile: &str) -> bool {
    let Ok(Value::Object(profile)) = serde_json::from_str::<Value>(profile) else {
        return false;
    };
    profile.iter().any(|(key, value)| {
        go_fold_eq(key, "defaultAction")
            && value
                .as_str()
                .is_some_and(|action| matches!(action.trim(), "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG"))
    })
}

/// The deny rules read from a container's `SecurityOpt`: seccomp, AppArmor,
/// SELinux labels and `systempaths`.
fn deny_security_opts(e: &mut Engine<'_>, opts: &[&str], field: &str) {
    let deny = &e.standards.deny;
    let (seccomp, apparmor, privileged) = (deny.seccomp_unconfined, deny.apparmor_unconfined, deny.privileged);
    for opt in opts {
        let (key, value) = split_security_opt(opt);
        let key = key.to_ascii_lowercase();
        let value_is = |want: &str| value.is_some_and(|v| v.eq_ignore_ascii_case(want));
        if seccomp && key == "seccomp" {
            if value_is("unconfined") {
                e.deny(DENY_SECCOMP_UNCONFINED, format!("seccomp=unconfined ({field})"), None);
            } else if value.is_some_and(seccomp_profile_allows_all) {
                e.deny(
                    DENY_SECCOMP_UNCONFINED,
                    format!("a seccomp profile that allows every system call by default ({field})"),
                    None,
                );
            }
        }
        if apparmor && key == "apparmor" && value_is("unconfined") {
            e.deny(DENY_APPARMOR_UNCONFINED, format!("apparmor=unconfined ({field})"), None);
        }
        if apparmor && ((key == "label" && value_is("disable")) || (key == "disable" && value.is_none())) {
            e.deny(
                DENY_APPARMOR_UNCONFINED,
                format!("label=disable, SELinux unconfined ({field})"),
                None,
            );
        }
        if privileged && key == "systempaths" && value_is("unconfined") {
            e.deny(DENY_PRIVILEGED, format!("systempaths=unconfined ({field})"), None);
        }
    }
}

pub(crate) fn deny_cap_add(e: &mut Engine<'_>, caps: &[&str], field: &str) {
    if !e.standards.deny.cap_add {
        return;
    }
    let allowed: Vec<String> = e.standards.cap_add_allowed.iter().map(|c| normalize_cap(c)).collect();
    for cap in caps {
        let cap = normalize_cap(cap);
        if cap == "ALL" || !allowed.contains(&cap) {
            let advice = if allowed.is_empty() {
                "no capability may be added".to_string()
            } else {
                format!("add only {}", allowed.join(", "))
            };
            e.deny(DENY_CAP_ADD, format!("adding capability {cap} ({field})"), Some(advice));
        }
    }
}

/// The `defaults.cap_drop` entries missing from `present`, in the config's
/// spelling.
pub(crate) fn missing_cap_drops(e: &Engine<'_>, present: &[&str]) -> Vec<String> {
    let present: Vec<String> = present.iter().map(|c| normalize_cap(c)).collect();
    e.standards
        .defaults
        .cap_drop
        .iter()
        .filter(|cap| !present.contains(&normalize_cap(cap)))
        .cloned()
        .collect()
}

/// Checks one `mount.Mount` (create's `HostConfig.Mounts` or a service's
/// `ContainerSpec.Mounts`) for the Docker socket.
pub(crate) fn deny_socket_mount(e: &mut Engine<'_>, mount: &Map<String, Value>, field: &str) -> Result<(), BadRequest> {
    let at = format!("{field}.");
    if let Some(source) = string(mount, "Source", &at)? {
        if exposes_docker_socket(e.cfg, source) {
            e.deny(DENY_DOCKER_SOCKET, format!("mounting {source} ({field}.Source)"), None);
        }
    }
    let driver_options = object(mount, "VolumeOptions", &at)?
        .map(|options| object(options, "DriverConfig", &format!("{at}VolumeOptions.")))
        .transpose()?
        .flatten()
        .map(|driver| object(driver, "Options", &format!("{at}VolumeOptions.DriverConfig.")))
        .transpose()?
        .flatten();
    if let Some(options) = driver_options {
        deny_socket_device(e, options, &format!("{field}.VolumeOptions.DriverConfig.Options"));
    }
    Ok(())
}

/// A local volume's `device` option naming the socket (with `o=bind` it is
/// a bind mount by another name). Checked whatever `o` says: no real block
/// device lives at those paths.
fn deny_socket_device(e: &mut Engine<'_>, options: &Map<String, Value>, field: &str) {
    for (key, value) in options {
        if let (true, Some(device)) = (go_fold_eq(key, "device"), value.as_str()) {
            if exposes_docker_socket(e.cfg, device) {
                e.deny(
                    DENY_DOCKER_SOCKET,
                    format!("a volume bound to {device} ({field})"),
                    None,
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Resource targets: what the defaults are for this container

/// A value to set when the request leaves it unset, and where it comes from
/// (for the change message): `""`, ` for class high`, ` for service entry shop/api`.
pub(crate) struct Target<T> {
    pub value: T,
    pub origin: String,
}

pub(crate) struct Targets {
    pub memory: Option<Target<ByteSize>>,
    pub memory_reservation: Option<Target<ByteSize>>,
    pub cpus: Option<Target<Cpus>>,
    pub pids_limit: Option<Target<i64>>,
}

impl Targets {
    /// Class and service `resources` override `standards.defaults`.
    pub fn resolve(cfg: &LoadedConfig, policy: &ServicePolicy) -> Targets {
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

pub(crate) fn bytes_i64(size: ByteSize) -> i64 {
    i64::try_from(size.bytes()).unwrap_or(i64::MAX)
}

pub(crate) fn show_bytes(bytes: i64) -> String {
    ByteSize(bytes.max(0).unsigned_abs()).to_string()
}

pub(crate) fn show_cpus(nano_cpus: i64) -> String {
    Cpus(nano_cpus).to_string()
}

pub(crate) fn quota_to_nano(quota: i64, period: i64) -> i64 {
    let nano = i128::from(quota) * 1_000_000_000 / i128::from(period.max(1));
    i64::try_from(nano).unwrap_or(i64::MAX)
}

/// The CFS quota for `nano_cpus` at `period`; at least dockerd's minimum 1ms.
pub(crate) fn nano_to_quota(nano_cpus: i64, period: i64) -> i64 {
    let quota = i128::from(nano_cpus) * i128::from(period) / 1_000_000_000;
    i64::try_from(quota).unwrap_or(i64::MAX).max(1000)
}

/// The memory, CPU and PID maxima that apply to this container.
pub(crate) struct Maxima {
    pub memory: Option<i64>,
    pub cpus: Option<i64>,
    pub pids: Option<i64>,
}

impl Maxima {
    pub fn for_engine(e: &Engine<'_>) -> Maxima {
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
pub(crate) fn fill<T: Copy>(
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

// ---------------------------------------------------------------------------
// POST /containers/create

pub(crate) fn apply_create(cfg: &LoadedConfig, ctx: &CreateContext, body: Value) -> Result<Outcome, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off {
        return Ok(unchanged(body));
    }
    let original = keep_original(standards, &body);
    let mut body = canon::canonicalize_create(body)?;
    let Some(root) = body.as_object_mut() else {
        return Err(BadRequest::new("invalid create body: expected an object").into());
    };

    let image = string(root, "Image", "")?.map(str::to_string);
    let labels = object(root, "Labels", "")?;
    let who = ContainerIdentity {
        name: ctx.name.as_deref(),
        image: image.as_deref(),
        labels,
    };
    let mut e = Engine::new(cfg, &who);
    let policy = cfg.policy.resolve(&who);
    let targets = Targets::resolve(cfg, &policy);

    // Work on HostConfig on its own; it goes back in place, or at the end
    // when it was missing and something was set.
    let had_host_config = matches!(root.get("HostConfig"), Some(Value::Object(_)));
    let mut host = match root.get_mut("HostConfig") {
        Some(Value::Object(host)) => std::mem::take(host),
        _ => Map::new(),
    };

    deny_create(&mut e, &host)?;
    non_root_create(&mut e, root, ctx)?;
    let maxima = Maxima::for_engine(&e);
    memory_create(&mut e, &mut host, &targets, &maxima)?;
    cpus_create(&mut e, &mut host, &targets, &maxima)?;
    pids_create(&mut e, &mut host, &targets, &maxima)?;
    read_only_create(&mut e, root, &mut host)?;
    cap_drop_create(&mut e, &mut host)?;
    no_new_privileges_create(&mut e, &mut host)?;

    if had_host_config || !host.is_empty() {
        root.insert("HostConfig".to_string(), Value::Object(host));
    }
    e.finish(original, body)
}

fn deny_create(e: &mut Engine<'_>, host: &Map<String, Value>) -> Result<(), BadRequest> {
    let at = "HostConfig.";
    let deny = e.standards.deny.clone();

    if deny.privileged {
        if boolean(host, "Privileged", at)? == Some(true) {
            e.deny(DENY_PRIVILEGED, "privileged mode (HostConfig.Privileged)", None);
        }
        if is_host(string(host, "UsernsMode", at)?) {
            e.deny(
                DENY_PRIVILEGED,
                "leaving user namespace remapping (HostConfig.UsernsMode host)",
                None,
            );
        }
        for (key, defaults) in [
            ("MaskedPaths", DEFAULT_MASKED_PATHS),
            ("ReadonlyPaths", DEFAULT_READONLY_PATHS),
        ] {
            if matches!(host.get(key), None | Some(Value::Null)) {
                continue;
            }
            let listed: Vec<String> = strings(host, key, at)?.into_iter().filter_map(normalize_path).collect();
            if let Some(missing) = defaults.iter().find(|path| !listed.iter().any(|l| l == *path)) {
                e.deny(
                    DENY_PRIVILEGED,
                    format!("unmasking {missing} (HostConfig.{key} without Docker's defaults)"),
                    None,
                );
            }
        }
    }

    if deny.docker_socket {
        for bind in strings(host, "Binds", at)? {
            // `source:target[:options]`; a lone path is an anonymous volume.
            if let Some((source, _)) = bind.split_once(':') {
                if exposes_docker_socket(e.cfg, source) {
                    e.deny(
                        DENY_DOCKER_SOCKET,
                        format!("mounting {source} (HostConfig.Binds)"),
                        None,
                    );
                }
            }
        }
        for (index, mount) in array(host, "Mounts", at)?.iter().enumerate() {
            if let Value::Object(mount) = mount {
                deny_socket_mount(e, mount, &format!("HostConfig.Mounts[{index}]"))?;
            }
        }
    }

    let namespaces = [
        (deny.host_pid, "PidMode", DENY_HOST_PID, "the host PID namespace"),
        (deny.host_ipc, "IpcMode", DENY_HOST_IPC, "the host IPC namespace"),
        (
            deny.host_network,
            "NetworkMode",
            DENY_HOST_NETWORK,
            "the host network namespace",
        ),
        (
            deny.host_network,
            "UTSMode",
            DENY_HOST_NETWORK,
            "the host UTS namespace (hostname)",
        ),
    ];
    for (on, key, rule, what) in namespaces {
        if on && is_host(string(host, key, at)?) {
            e.deny(rule, format!("{what} (HostConfig.{key} host)"), None);
        }
    }

    deny_cap_add(e, &strings(host, "CapAdd", at)?, "HostConfig.CapAdd");

    if deny.devices {
        for (key, what) in [
            ("Devices", "host devices"),
            ("DeviceCgroupRules", "device cgroup rules"),
            ("DeviceRequests", "device requests such as GPUs"),
        ] {
            if !array(host, key, at)?.is_empty() {
                e.deny(DENY_DEVICES, format!("{what} (HostConfig.{key})"), None);
            }
        }
    }

    deny_security_opts(e, &strings(host, "SecurityOpt", at)?, "HostConfig.SecurityOpt");
    Ok(())
}

fn non_root_create(e: &mut Engine<'_>, root: &mut Map<String, Value>, ctx: &CreateContext) -> Result<(), BadRequest> {
    if !e.applies(NON_ROOT) {
        return Ok(());
    }
    let non_root = &e.standards.non_root;
    let advice = || {
        let example = e.standards.defaults.user.as_deref().unwrap_or("65534:65534");
        Some(format!("run as a non-root user (e.g. --user {example})"))
    };
    let user = string(root, "User", "")?.unwrap_or("");
    if !user.is_empty() {
        if non_root.deny_explicit_root && runs_as_root(user) {
            let what = format!("running as root (User {user:?})");
            let advice = advice();
            e.deny(NON_ROOT, what, advice);
        }
        return Ok(());
    }
    let why = match ctx.image_user.as_deref() {
        None => "the image's user is unknown",
        Some(image_user) if image_user.trim().is_empty() || runs_as_root(image_user) => "the image runs as root",
        Some(_) => return Ok(()),
    };
    match non_root.when_image_runs_as_root {
        RootImage::Allow => {}
        RootImage::Deny => {
            let advice = advice();
            e.deny(NON_ROOT, format!("running as root (no User given and {why})"), advice);
        }
        RootImage::SetUser => {
            if let Some(user) = e.standards.defaults.user.clone() {
                root.insert("User".to_string(), Value::String(user.clone()));
                e.change(NON_ROOT, format!("set user {user} ({why})"));
            }
        }
    }
    Ok(())
}

fn memory_create(
    e: &mut Engine<'_>,
    host: &mut Map<String, Value>,
    targets: &Targets,
    maxima: &Maxima,
) -> Result<(), BadRequest> {
    let at = "HostConfig.";
    let nonzero = |v: Option<i64>| v.filter(|v| *v != 0);
    let mut memory = nonzero(int(host, "Memory", at)?);
    let mut reservation = nonzero(int(host, "MemoryReservation", at)?);
    let swap = nonzero(int(host, "MemorySwap", at)?);

    if let Some(max) = maxima.memory {
        for (key, label, value) in [
            ("Memory", "memory limit", &mut memory),
            ("MemoryReservation", "memory reservation", &mut reservation),
        ] {
            let Some(asked) = value.filter(|v| *v > max) else {
                continue;
            };
            let what = format!(
                "a {label} of {} (HostConfig.{key}, above the maximum)",
                show_bytes(asked)
            );
            if e.over_limit(LIMITS_MEMORY, what, &show_bytes(max)) {
                host.insert(key.to_string(), max.into());
                *value = Some(max);
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

    if memory.is_none() {
        if let Some((rule, mut value, mut why)) = fill(
            e,
            &targets.memory,
            DEFAULTS_MEMORY,
            maxima.memory,
            LIMITS_MEMORY,
            bytes_i64,
        ) {
            if let Some(swap) = swap.filter(|s| *s > 0 && *s < value) {
                value = swap;
                why.push_str(", capped by MemorySwap");
            }
            if let Some(reservation) = reservation.filter(|r| *r > value) {
                value = reservation;
                why.push_str(", raised to MemoryReservation");
            }
            host.insert("Memory".to_string(), value.into());
            memory = Some(value);
            e.change(rule, format!("set memory limit {}{why}", show_bytes(value)));
        }
    }

    if reservation.is_none() && e.applies(DEFAULTS_MEMORY_RESERVATION) {
        if let Some(target) = &targets.memory_reservation {
            let mut value = bytes_i64(target.value);
            let mut why = target.origin.clone();
            if let Some(memory) = memory.filter(|m| *m > 0 && *m < value) {
                value = memory;
                why.push_str(", lowered to the memory limit");
            }
            host.insert("MemoryReservation".to_string(), value.into());
            e.change(
                DEFAULTS_MEMORY_RESERVATION,
                format!("set memory reservation {}{why}", show_bytes(value)),
            );
        }
    }
    Ok(())
}

fn cpus_create(
    e: &mut Engine<'_>,
    host: &mut Map<String, Value>,
    targets: &Targets,
    maxima: &Maxima,
) -> Result<(), BadRequest> {
    let at = "HostConfig.";
    let nano = int(host, "NanoCpus", at)?.unwrap_or(0);
    let quota = int(host, "CpuQuota", at)?.unwrap_or(0);
    let period = int(host, "CpuPeriod", at)?.unwrap_or(0);
    let effective_period = if period > 0 { period } else { DEFAULT_CPU_PERIOD };

    if let Some(max) = maxima.cpus {
        let max_text = show_cpus(max);
        if quota < 0 {
            let what = "no CPU limit (HostConfig.CpuQuota -1)".to_string();
            if e.over_limit(LIMITS_CPUS, what, &max_text) {
                if nano > 0 {
                    // Dropping the quota lets NanoCpus (clamped below) limit.
                    host.insert("CpuQuota".to_string(), 0.into());
                    e.change(LIMITS_CPUS, "removed CpuQuota -1, which would lift the CPU limit");
                } else {
                    host.insert("CpuQuota".to_string(), nano_to_quota(max, effective_period).into());
                    e.change(
                        LIMITS_CPUS,
                        format!("set CPU limit {max_text} (the maximum) instead of none"),
                    );
                }
            }
        } else if quota > 0 && quota_to_nano(quota, effective_period) > max {
            let asked = show_cpus(quota_to_nano(quota, effective_period));
            let what = format!("a CPU limit of {asked} (HostConfig.CpuQuota, above the maximum)");
            if e.over_limit(LIMITS_CPUS, what, &max_text) {
                host.insert("CpuQuota".to_string(), nano_to_quota(max, effective_period).into());
                e.change(
                    LIMITS_CPUS,
                    format!("lowered CPU limit {asked} to the maximum {max_text}"),
                );
            }
        }
        if nano > max && quota <= 0 {
            let asked = show_cpus(nano);
            let what = format!("a CPU limit of {asked} (HostConfig.NanoCpus, above the maximum)");
            if e.over_limit(LIMITS_CPUS, what, &max_text) {
                host.insert("NanoCpus".to_string(), max.into());
                e.change(
                    LIMITS_CPUS,
                    format!("lowered CPU limit {asked} to the maximum {max_text}"),
                );
            }
        }
    }

    if nano == 0 && quota == 0 {
        if let Some((rule, value, why)) = fill(
            e,
            &targets.cpus,
            DEFAULTS_CPUS,
            maxima.cpus,
            LIMITS_CPUS,
            Cpus::nano_cpus,
        ) {
            if period > 0 {
                let quota = nano_to_quota(value, period);
                host.insert("CpuQuota".to_string(), quota.into());
                e.change(
                    rule,
                    format!(
                        "set CPU limit {}{why} as CpuQuota {quota} per CpuPeriod {period}",
                        show_cpus(value)
                    ),
                );
            } else {
                host.insert("NanoCpus".to_string(), value.into());
                e.change(rule, format!("set CPU limit {}{why}", show_cpus(value)));
            }
        }
    }
    Ok(())
}

fn pids_create(
    e: &mut Engine<'_>,
    host: &mut Map<String, Value>,
    targets: &Targets,
    maxima: &Maxima,
) -> Result<(), BadRequest> {
    let pids = int(host, "PidsLimit", "HostConfig.")?.unwrap_or(0);
    if let Some(max) = maxima.pids {
        let asked = match pids {
            p if p < 0 => Some(format!("an unlimited PID count (HostConfig.PidsLimit {p})")),
            p if p > max => Some(format!("a PID limit of {p} (HostConfig.PidsLimit, above the maximum)")),
            _ => None,
        };
        if let Some(what) = asked {
            if e.over_limit(LIMITS_PIDS_LIMIT, what, &max.to_string()) {
                host.insert("PidsLimit".to_string(), max.into());
                let was = if pids < 0 {
                    "unlimited".to_string()
                } else {
                    pids.to_string()
                };
                e.change(
                    LIMITS_PIDS_LIMIT,
                    format!("lowered PID limit {was} to the maximum {max}"),
                );
            }
        }
    }
    if pids == 0 {
        if let Some((rule, value, why)) = fill(
            e,
            &targets.pids_limit,
            DEFAULTS_PIDS_LIMIT,
            maxima.pids,
            LIMITS_PIDS_LIMIT,
            |p| p,
        ) {
            host.insert("PidsLimit".to_string(), value.into());
            e.change(rule, format!("set PID limit {value}{why}"));
        }
    }
    Ok(())
}

/// Container paths something is already mounted on: tmpfs, binds, mounts
/// and anonymous volumes.
fn mount_targets(root: &Map<String, Value>, host: &Map<String, Value>) -> Result<Vec<String>, BadRequest> {
    let at = "HostConfig.";
    let mut targets: Vec<String> = Vec::new();
    if let Some(tmpfs) = object(host, "Tmpfs", at)? {
        targets.extend(tmpfs.keys().cloned());
    }
    for bind in strings(host, "Binds", at)? {
        let mut parts = bind.split(':');
        let first = parts.next().unwrap_or("");
        targets.push(parts.next().unwrap_or(first).to_string());
    }
    for (index, mount) in array(host, "Mounts", at)?.iter().enumerate() {
        if let Value::Object(mount) = mount {
            if let Some(target) = string(mount, "Target", &format!("HostConfig.Mounts[{index}]."))? {
                targets.push(target.to_string());
            }
        }
    }
    if let Some(volumes) = object(root, "Volumes", "")? {
        targets.extend(volumes.keys().cloned());
    }
    Ok(targets.iter().filter_map(|t| normalize_path(t)).collect())
}

fn read_only_create(
    e: &mut Engine<'_>,
    root: &Map<String, Value>,
    host: &mut Map<String, Value>,
) -> Result<(), BadRequest> {
    let defaults = &e.standards.defaults;
    if defaults.read_only_rootfs != Some(true) || !e.applies(DEFAULTS_READ_ONLY_ROOTFS) {
        return Ok(());
    }
    if boolean(host, "ReadonlyRootfs", "HostConfig.")? == Some(true) {
        return Ok(());
    }
    let covered = mount_targets(root, host)?;
    let added: Vec<String> = defaults
        .tmpfs
        .iter()
        .filter(|path| normalize_path(path).is_some_and(|p| !covered.contains(&p)))
        .cloned()
        .collect();
    host.insert("ReadonlyRootfs".to_string(), Value::Bool(true));
    if added.is_empty() {
        e.change(DEFAULTS_READ_ONLY_ROOTFS, "made the root filesystem read-only");
        return Ok(());
    }
    let tmpfs = object_mut(host, "Tmpfs", "HostConfig.")?;
    for path in &added {
        // Docker's own tmpfs options (noexec, nosuid, nodev), as `--tmpfs PATH`.
        tmpfs.insert(path.clone(), Value::String(String::new()));
    }
    e.change(
        DEFAULTS_READ_ONLY_ROOTFS,
        format!("made the root filesystem read-only, with tmpfs at {}", added.join(", ")),
    );
    Ok(())
}

fn cap_drop_create(e: &mut Engine<'_>, host: &mut Map<String, Value>) -> Result<(), BadRequest> {
    if !e.applies(DEFAULTS_CAP_DROP) {
        return Ok(());
    }
    let missing = missing_cap_drops(e, &strings(host, "CapDrop", "HostConfig.")?);
    if missing.is_empty() {
        return Ok(());
    }
    append_strings(host, "CapDrop", &missing);
    e.change(
        DEFAULTS_CAP_DROP,
        format!("dropped capabilities {}", missing.join(", ")),
    );
    Ok(())
}

fn no_new_privileges_create(e: &mut Engine<'_>, host: &mut Map<String, Value>) -> Result<(), BadRequest> {
    if e.standards.defaults.no_new_privileges != Some(true) || !e.applies(DEFAULTS_NO_NEW_PRIVILEGES) {
        return Ok(());
    }
    let opts = strings(host, "SecurityOpt", "HostConfig.")?;
    let present = opts
        .iter()
        .any(|opt| split_security_opt(opt).0.eq_ignore_ascii_case("no-new-privileges"));
    if !present {
        append_strings(host, "SecurityOpt", &["no-new-privileges=true".to_string()]);
        e.change(DEFAULTS_NO_NEW_PRIVILEGES, "set no-new-privileges");
    }
    Ok(())
}

/// Appends to an array of strings that the caller has already checked is an
/// array or null/absent.
pub(crate) fn append_strings(object: &mut Map<String, Value>, key: &str, items: &[String]) {
    let slot = object.entry(key.to_string()).or_insert(Value::Null);
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    if let Value::Array(list) = slot {
        list.extend(items.iter().cloned().map(Value::String));
    }
}

// ---------------------------------------------------------------------------
// POST /containers/{id}/update

pub(crate) fn check_update(
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

// ---------------------------------------------------------------------------
// POST /containers/{id}/exec

pub(crate) fn check_exec(
    cfg: &LoadedConfig,
    who: &ContainerIdentity<'_>,
    container_user: Option<&str>,
    body: Value,
) -> Result<Outcome, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off {
        return Ok(unchanged(body));
    }
    let original = keep_original(standards, &body);
    let body = canon::canonicalize(body, &canon::EXEC, "exec")?;
    let Some(root) = body.as_object() else {
        return Err(BadRequest::new("invalid exec body: expected an object").into());
    };
    let mut e = Engine::new(cfg, who);
    if standards.deny.privileged && boolean(root, "Privileged", "")? == Some(true) {
        e.deny(DENY_PRIVILEGED, "a privileged exec (Privileged)", None);
    }
    if standards.non_root.deny_root_exec {
        let (user, whose) = match string(root, "User", "")?.filter(|u| !u.is_empty()) {
            Some(user) => (Some(user), "User"),
            None => (container_user, "the container's user"),
        };
        let root_user = match user {
            None => true,
            Some(u) => u.trim().is_empty() || runs_as_root(u),
        };
        if root_user {
            let shown = user.filter(|u| !u.trim().is_empty()).unwrap_or("root");
            e.deny(
                NON_ROOT,
                format!("exec as root ({whose} {shown:?})"),
                Some("exec as a non-root user (docker exec --user 65534)".to_string()),
            );
        }
    }
    e.finish(original, body)
}

// ---------------------------------------------------------------------------
// POST /volumes/create

pub(crate) fn check_volume_create(cfg: &LoadedConfig, body: Value) -> Result<Outcome, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off {
        return Ok(unchanged(body));
    }
    let original = keep_original(standards, &body);
    let body = canon::canonicalize(body, &canon::VOLUME_CREATE, "volume create")?;
    let Some(root) = body.as_object() else {
        return Err(BadRequest::new("invalid volume create body: expected an object").into());
    };
    let who = ContainerIdentity {
        name: string(root, "Name", "")?,
        image: None,
        labels: object(root, "Labels", "")?,
    };
    let mut e = Engine::new(cfg, &who);
    if standards.deny.docker_socket {
        if let Some(options) = object(root, "DriverOpts", "")? {
            deny_socket_device(&mut e, options, "DriverOpts");
        }
    }
    e.finish(original, body)
}
