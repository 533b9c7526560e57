//! `POST /containers/create`: the deny rules, non-root, and the resource,
//! read-only, capability and `no-new-privileges` defaults, applied to the
//! body and its `HostConfig`.

use serde_json::{Map, Value};

use crate::config::{ContainerIdentity, Cpus, HardeningMode, LoadedConfig, RootImage, StandardsMode};

use super::canon;
use super::engine::{keep_original, unchanged, Engine};
use super::fitted::{self, Fit, FitPlan, UserFit};
use super::json::{append_strings, array, boolean, int, object, object_mut, string, strings};
use super::limits::{
    bytes_i64, fill, nano_to_quota, quota_to_nano, show_bytes, show_cpus, Maxima, Targets, DEFAULT_CPU_PERIOD,
};
use super::predicates::{exposes_docker_socket, is_host, normalize_path, seccomp_profile, split_security_opt, Seccomp};
use super::rule::*;
use super::shared::{deny_cap_add, deny_socket_mount, missing_cap_drops};
use super::user::{self, Resolved};
use super::{BadRequest, CreateContext, Outcome, Rejection};

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

pub(super) fn apply_create(cfg: &LoadedConfig, ctx: &CreateContext, body: Value) -> Result<Outcome, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off {
        return Ok(unchanged(body));
    }
    let original = keep_original(standards, &body);
    let (e, body) = run_create(cfg, ctx, body)?;
    e.finish(original, body)
}

/// Every rule of a create, run on `body`: the engine with its findings, and
/// the edited body.
pub(super) fn run_create<'c>(
    cfg: &'c LoadedConfig,
    ctx: &CreateContext,
    body: Value,
) -> Result<(Engine<'c>, Value), Rejection> {
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
        image_id: ctx.image_id.as_deref(),
        repo_digests: &ctx.repo_digests,
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

    let mut fit = Fitting::new(&e, ctx, image.as_deref());
    deny_create(&mut e, &host)?;
    non_root_create(&mut e, root, ctx, &mut fit)?;
    let maxima = Maxima::for_engine(&e);
    memory_create(&mut e, &mut host, &targets, &maxima)?;
    cpus_create(&mut e, &mut host, &targets, &maxima)?;
    pids_create(&mut e, &mut host, &targets, &maxima)?;
    read_only_create(&mut e, root, &mut host, &mut fit)?;
    cap_drop_create(&mut e, &mut host, &mut fit)?;
    no_new_privileges_create(&mut e, &mut host)?;
    fit.label(root)?;

    if had_host_config || !host.is_empty() {
        root.insert("HostConfig".to_string(), Value::Object(host));
    }
    Ok((e, body))
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

pub(super) fn non_root_create(
    e: &mut Engine<'_>,
    root: &mut Map<String, Value>,
    ctx: &CreateContext,
    fit: &mut Fitting,
) -> Result<(), BadRequest> {
    if !e.applies(NON_ROOT) {
        return Ok(());
    }
    let non_root = &e.standards.non_root;
    let advice = || {
        let example = e.standards.defaults.user.as_deref().unwrap_or("65534:65534");
        Some(format!("run as a non-root user (e.g. --user {example})"))
    };
    let user = string(root, "User", "")?.unwrap_or("").to_string();
    if !user.is_empty() {
        if !non_root.deny_explicit_root {
            return Ok(());
        }
        match user::resolve(&user, ctx.passwd.as_ref()) {
            Resolved::Root(why) => {
                let advice = advice();
                e.deny(NON_ROOT, format!("running as root ({why})"), advice);
            }
            Resolved::Unknown(why) => {
                let advice = advice();
                e.deny(NON_ROOT, format!("User {user:?} cannot be checked: {why}"), advice);
            }
            Resolved::NonRoot {
                pinned: Some(pinned), ..
            } => pin_user(e, root, &user, pinned),
            Resolved::NonRoot { pinned: None, .. } => {}
        }
        return Ok(());
    }
    let why = match ctx.image_user.as_deref() {
        None => "the image's user is unknown".to_string(),
        Some(image_user) => match user::resolve(image_user, ctx.passwd.as_ref()) {
            Resolved::Root(_) => "the image runs as root".to_string(),
            Resolved::Unknown(why) => format!("the image's user {image_user:?} cannot be proved non-root: {why}"),
            Resolved::NonRoot {
                pinned: Some(pinned), ..
            } => {
                pin_user(e, root, image_user, pinned);
                return Ok(());
            }
            Resolved::NonRoot { pinned: None, .. } => return Ok(()),
        },
    };
    match non_root.when_image_runs_as_root {
        RootImage::Allow => {}
        RootImage::Deny => {
            let advice = advice();
            e.deny(NON_ROOT, format!("running as root (no User given and {why})"), advice);
        }
        RootImage::SetUser => match fit.user(e) {
            Held::Apply(Some(UserFit::StartAsRoot { uid, gid })) => {
                fit.applied.push(NON_ROOT);
                e.change(
                    NON_ROOT,
                    format!(
                        "kept root at start: {} drops to {uid}:{gid} itself (seen running as it); \
                         its capabilities are only what that needs",
                        fit.image
                    ),
                );
            }
            Held::Apply(_) => {
                if let Some(user) = e.standards.defaults.user.clone() {
                    if fit.fitted(e, NON_ROOT) {
                        fit.applied.push(NON_ROOT);
                    }
                    root.insert("User".to_string(), Value::String(user.clone()));
                    e.change(NON_ROOT, format!("set user {user} ({why})"));
                }
            }
            Held::Back(note) => e.note(NON_ROOT, note),
            Held::Never => {}
        },
    }
    Ok(())
}

/// A hardening rule's answer for one create.
enum Held<T> {
    Apply(T),
    /// Not applied: the note to give.
    Back(String),
    /// `never`: nothing to say.
    Never,
}

/// The fitted hardening of one create: the plan the image's profile gives,
/// and the fitted rules applied so far (for the label).
pub(super) struct Fitting {
    plan: FitPlan,
    image: String,
    applied: Vec<&'static str>,
    learning: bool,
    /// Take `fitted` as `always` (swarm services: no profile to fit).
    as_always: bool,
}

impl Fitting {
    fn new(e: &Engine<'_>, ctx: &CreateContext, image: Option<&str>) -> Fitting {
        let standards = e.standards;
        let default_user = standards.defaults.user.as_deref().and_then(fitted::numeric_user);
        Fitting {
            plan: fitted::plan(
                ctx.profile.as_deref(),
                &standards.hardening,
                &standards.cap_add_allowed,
                default_user,
            ),
            image: image.unwrap_or("the image").to_string(),
            applied: Vec::new(),
            learning: false,
            as_always: false,
        }
    }

    /// For a spec the shim will not see created: `fitted` rules as `always`.
    pub(super) fn always(ctx: &CreateContext) -> Fitting {
        Fitting {
            plan: fitted::plan(None, &Default::default(), &[], None),
            image: ctx.image_id.clone().unwrap_or_default(),
            applied: Vec::new(),
            learning: false,
            as_always: true,
        }
    }

    fn mode(&self, e: &Engine<'_>, rule: &str) -> HardeningMode {
        let hardening = &e.standards.hardening;
        let mode = match rule {
            NON_ROOT => hardening.non_root,
            DEFAULTS_READ_ONLY_ROOTFS => hardening.read_only_rootfs,
            _ => hardening.cap_drop,
        };
        match mode {
            HardeningMode::Fitted if self.as_always => HardeningMode::Always,
            mode => mode,
        }
    }

    fn fitted(&self, e: &Engine<'_>, rule: &str) -> bool {
        self.mode(e, rule) == HardeningMode::Fitted
    }

    /// The answer for `rule` from `fit` (its part of the plan), with the
    /// note for a rule held back. `what` names the rule for people.
    fn hold<T: Clone>(
        &mut self,
        e: &Engine<'_>,
        rule: &str,
        fit: &Fit<T>,
        what: &str,
        learning: &str,
    ) -> Held<Option<T>> {
        match self.mode(e, rule) {
            HardeningMode::Never => Held::Never,
            HardeningMode::Always => Held::Apply(None),
            HardeningMode::Fitted => match fit {
                Fit::Apply(value) => Held::Apply(Some(value.clone())),
                Fit::Learning => {
                    self.learning = true;
                    Held::Back(format!(
                        "{what} not applied yet: learning what {} {learning} \
                         (`forge-shim profile {}` learns it now)",
                        self.image, self.image
                    ))
                }
                Fit::Failed(evidence) => Held::Back(format!(
                    "{what} not applied: a hardened run of {} failed with it ({evidence})",
                    self.image
                )),
                Fit::Unfit(why) => Held::Back(format!("{what} not applied: {} {why}", self.image)),
            },
        }
    }

    fn user(&mut self, e: &Engine<'_>) -> Held<Option<UserFit>> {
        let fit = self.plan.user.clone();
        self.hold(e, NON_ROOT, &fit, "non-root user", "runs as")
    }

    /// Marks the create with the fitted rules applied to it (or that it
    /// is a learning run), overwriting any value the client gave: the
    /// lifecycle learns from and judges failures by it.
    fn label(&self, root: &mut Map<String, Value>) -> Result<(), BadRequest> {
        let value = if self.learning {
            fitted::LEARNING.to_string()
        } else if !self.applied.is_empty() {
            self.applied.join(",")
        } else {
            // Nothing fitted: no label, and none the client may claim.
            if let Some(Value::Object(labels)) = root.get_mut("Labels") {
                labels.remove(fitted::LABEL_HARDENING);
            }
            return Ok(());
        };
        object_mut(root, "Labels", "")?.insert(fitted::LABEL_HARDENING.to_string(), Value::String(value));
        Ok(())
    }
}

/// Forwards a user name as the uid the shim judged, so that a later edit of
/// the image's or container's `/etc/passwd` cannot make it another user.
fn pin_user(e: &mut Engine<'_>, root: &mut Map<String, Value>, name: &str, pinned: String) {
    e.change(
        NON_ROOT,
        format!("pinned user {name:?} to {pinned}, its uid in the image's /etc/passwd"),
    );
    root.insert("User".to_string(), Value::String(pinned));
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
    let mut swap = nonzero(int(host, "MemorySwap", at)?);

    if let Some(max) = maxima.memory {
        if swap == Some(-1) && unlimited_swap(e) {
            host.remove("MemorySwap");
            swap = None;
        }
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

/// `MemorySwap: -1` under a memory maximum: swap without bound, which the
/// maximum exists to prevent. Denies (false), or says to drop it (true),
/// per `limits.on_exceed`.
pub(super) fn unlimited_swap(e: &mut Engine<'_>) -> bool {
    let what = "unlimited swap (MemorySwap -1)".to_string();
    if e.over_limit(LIMITS_MEMORY, what, "twice the memory limit (leave MemorySwap unset)") {
        e.change(LIMITS_MEMORY, "removed unlimited swap (MemorySwap -1)");
        return true;
    }
    false
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
    fit: &mut Fitting,
) -> Result<(), BadRequest> {
    let defaults = &e.standards.defaults;
    if defaults.read_only_rootfs != Some(true) || !e.applies(DEFAULTS_READ_ONLY_ROOTFS) {
        return Ok(());
    }
    if boolean(host, "ReadonlyRootfs", "HostConfig.")? == Some(true) {
        return Ok(());
    }
    let plan = fit.plan.read_only.clone();
    let learned = match fit.hold(e, DEFAULTS_READ_ONLY_ROOTFS, &plan, "read-only root", "writes") {
        Held::Apply(learned) => learned.unwrap_or_default(),
        Held::Back(note) => {
            e.note(DEFAULTS_READ_ONLY_ROOTFS, note);
            return Ok(());
        }
        Held::Never => return Ok(()),
    };
    let defaults = &e.standards.defaults;
    let covered = mount_targets(root, host)?;
    let is_covered = |path: &str| covered.iter().any(|c| fitted::is_under(path, c));
    let added: Vec<String> = defaults
        .tmpfs
        .iter()
        .filter(|path| normalize_path(path).is_some_and(|p| !covered.contains(&p)))
        .cloned()
        .collect();
    // Learned paths the defaults' tmpfs or the request's mounts hold
    // already need nothing.
    let learned: Vec<String> = learned
        .into_iter()
        .filter(|path| !is_covered(path) && !added.iter().any(|d| fitted::is_under(path, d)))
        .collect();
    if fit.fitted(e, DEFAULTS_READ_ONLY_ROOTFS) {
        fit.applied.push(DEFAULTS_READ_ONLY_ROOTFS);
    }
    host.insert("ReadonlyRootfs".to_string(), Value::Bool(true));
    if added.is_empty() && learned.is_empty() {
        e.change(DEFAULTS_READ_ONLY_ROOTFS, "made the root filesystem read-only");
        return Ok(());
    }
    let options = fitted::tmpfs_options(fit.plan.tmpfs_owner, e.standards.hardening.tmpfs_size.0);
    let tmpfs = object_mut(host, "Tmpfs", "HostConfig.")?;
    for path in &added {
        // Docker's own tmpfs options (noexec, nosuid, nodev), as `--tmpfs PATH`.
        tmpfs.insert(path.clone(), Value::String(String::new()));
    }
    for path in &learned {
        tmpfs.insert(path.clone(), Value::String(options.clone()));
    }
    let added: Vec<String> = added.into_iter().chain(learned).collect();
    e.change(
        DEFAULTS_READ_ONLY_ROOTFS,
        format!("made the root filesystem read-only, with tmpfs at {}", added.join(", ")),
    );
    Ok(())
}

fn cap_drop_create(e: &mut Engine<'_>, host: &mut Map<String, Value>, fit: &mut Fitting) -> Result<(), BadRequest> {
    if !e.applies(DEFAULTS_CAP_DROP) {
        return Ok(());
    }
    let missing = missing_cap_drops(e, &strings(host, "CapDrop", "HostConfig.")?);
    if missing.is_empty() {
        return Ok(());
    }
    let plan = fit.plan.caps.clone();
    let keep = match fit.hold(e, DEFAULTS_CAP_DROP, &plan, "dropped capabilities", "needs") {
        Held::Apply(keep) => keep.unwrap_or_default(),
        Held::Back(note) => {
            e.note(DEFAULTS_CAP_DROP, note);
            return Ok(());
        }
        Held::Never => return Ok(()),
    };
    if fit.fitted(e, DEFAULTS_CAP_DROP) {
        fit.applied.push(DEFAULTS_CAP_DROP);
    }
    append_strings(host, "CapDrop", &missing);
    let present: Vec<String> = strings(host, "CapAdd", "HostConfig.")?
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
        .collect();
    let add: Vec<String> = keep.into_iter().filter(|c| !present.contains(c)).collect();
    if add.is_empty() {
        e.change(
            DEFAULTS_CAP_DROP,
            format!("dropped capabilities {}", missing.join(", ")),
        );
        return Ok(());
    }
    append_strings(host, "CapAdd", &add);
    e.change(
        DEFAULTS_CAP_DROP,
        format!(
            "dropped capabilities {}, kept {} (what {} was seen to need)",
            missing.join(", "),
            add.join(", "),
            fit.image
        ),
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
            } else {
                match value.map(seccomp_profile) {
                    Some(Seccomp::AllowsAll) => e.deny(
                        DENY_SECCOMP_UNCONFINED,
                        format!("a seccomp profile that allows every system call by default ({field})"),
                        None,
                    ),
                    Some(Seccomp::Unreadable(why)) => e.deny(
                        DENY_SECCOMP_UNCONFINED,
                        format!("a seccomp profile that cannot be checked ({field}: {why})"),
                        None,
                    ),
                    Some(Seccomp::Confines) | None => {}
                }
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
