//! The standards: what every container created through the shim must meet.
//!
//! This module is **pure**: no I/O, no async, no clock. The proxy reads a
//! request body, looks up what it needs from dockerd (the image's configured
//! user, the container's identity for update and exec), and calls one
//! function here per endpoint:
//!
//! | endpoint | parse | apply |
//! |---|---|---|
//! | `POST /containers/create` | [`parse_body`] | [`apply_create`] |
//! | `POST /containers/{id}/update` | [`parse_body`] | [`check_update`] |
//! | `POST /containers/{id}/exec` | [`parse_body`] | [`check_exec`] |
//! | `POST /services/create`, `/services/{id}/update` | [`parse_body`] | [`apply_service_spec`] |
//! | `POST /volumes/create` | [`parse_body`] | [`check_volume_create`] |
//! | create with `VolumesFrom`, `container:<id>` modes or named volumes | [`inherited_sources`] | [`check_inherited`] |
//! | create or volume create with host paths (binds, `o=bind` devices) | [`create_host_paths`], [`volume_create_host_paths`] | [`check_host_paths`] |
//!
//! Each `apply`/`check` returns an [`Outcome`] (the body to forward and the
//! [`Change`]s made, one warning each) or a [`Rejection`]: a [`Denial`] (403)
//! or a [`BadRequest`] (400). Bodies are edited as JSON values and never
//! round-tripped through a typed model, so fields the shim does not know are
//! forwarded as they came.
//!
//! How a body is read (see `canon.rs`): dockerd's Go decoder matches keys
//! case-insensitively and lets the last duplicate win, so parsing rejects
//! duplicates on the raw bytes and canonicalisation renames every key the
//! rules read to dockerd's spelling before any rule looks at it.
//!
//! Modes: `enforce` edits and denies; `audit` returns the body untouched with
//! the same findings phrased `would set …` / `would deny …`; `off` returns the
//! body untouched with no findings (the caller may skip parsing altogether).
//! A malformed body is a [`BadRequest`] in `enforce` and `audit` alike.
//!
//! Every rule has a name from [`crate::config::RULE_NAMES`]; `exempt:` entries
//! (and, only with `allow_label_exemptions: true`, the [`LABEL_EXEMPT`] label)
//! switch rules off per container.
//!
//! The files: `engine` runs the rules of one request (exemptions, changes,
//! denials, audit phrasing); `json` reads typed fields; `predicates` judges
//! single values (root, host namespaces, socket paths); `limits` does the
//! resource arithmetic; `shared` holds the rule pieces several endpoints
//! share; `create`, `update`, `exec`, `volume` and `service` hold one
//! endpoint's rules each, `inherit` what a create borrows from others.
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
//!   seen from here: the proxy resolves each bind source and bound volume
//!   device on the host and [`check_host_paths`] judges where it leads,
//!   dockerd's data root included (`hostpath`).

mod backstop;
mod build;
mod canon;
mod create;
mod engine;
mod exec;
pub mod fitted;
mod hostpath;
mod inherit;
mod json;
mod limits;
mod predicates;
mod service;
mod shared;
mod update;
pub mod user;
mod volume;

pub use hostpath::{
    check_host_paths, create_host_paths, protected_sockets, volume_create_host_paths, volume_host_paths, HostPath,
    Protected, Resolution, ResolvedHostPath,
};
pub use inherit::{check_inherited, inherited_sources, Inheritance, Inherited};

#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

use crate::config::{ContainerIdentity, LoadedConfig};

pub use backstop::check_recorded_create;
pub use canon::{canonicalize_create, parse_body};

/// A label listing rules (comma-separated, or `all`) to switch off for this
/// container. Honoured only when `standards.allow_label_exemptions` is true:
/// the config is the operator's, a label is the user's.
pub const LABEL_EXEMPT: &str = "forge.exempt";

/// The rule names, one constant each: [`crate::config::RULE_NAMES`] and these
/// constants are declared together, in `config/rule_names.rs`.
pub use crate::config::rule;
pub use build::HeadOutcome;

/// What the caller knows about a create request beyond its body.
#[derive(Clone, Debug, Default)]
pub struct CreateContext {
    /// The `?name=` query parameter, if any.
    pub name: Option<String>,
    /// The image's configured `Config.User`, looked up by the caller. `None`
    /// means unknown (image not found, lookup failed) and is treated as root:
    /// the safe side. For services, [`apply_service_spec`] reads it the same way.
    pub image_user: Option<String>,
    /// The image's `/etc/passwd`, read by the caller when the user that
    /// applies (the request's, else the image's) is a name
    /// ([`user::lookup_name`]). Without it a name is not proved non-root.
    pub passwd: Option<user::Passwd>,
    /// The image's content id and `RepoDigests`, looked up by the caller,
    /// for the `image_id` and `pulled_from` selectors of `exempt:` entries.
    pub image_id: Option<String>,
    pub repo_digests: Vec<String>,
    /// What the shim learned of the image (by its id), for the fitted
    /// hardening rules; `None`: nothing yet.
    pub profile: Option<std::sync::Arc<fitted::Profile>>,
}

/// The body to forward and what was changed (or, in audit mode, what would
/// have been changed or denied).
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub body: Value,
    pub changes: Vec<Change>,
    /// Decisions that changed nothing, each a warning of its own: a fitted
    /// hardening rule held back (learning, failed, or unfit), and why.
    pub notes: Vec<Change>,
}

/// One thing the standards did (or would do) to a request. The caller adds
/// [`Change::warning`] to the response's `Warnings` and logs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The rule's name as `exempt:` entries spell it, e.g. `defaults.memory`.
    pub rule: &'static str,
    /// What was done, e.g. `set memory limit 512M`.
    pub message: String,
}

impl Change {
    /// The text for the response's `Warnings` array, e.g.
    /// `forge-shim: set memory limit 512M (standards.defaults.memory)`.
    pub fn warning(&self) -> String {
        format!("forge-shim: {self}")
    }
}

/// The one warning that sums up a create's changes (`standards.warnings:
/// summary`): a single change as it is, several as the count and their
/// rules, with where each change can be read.
pub fn summary_warning(changes: &[Change]) -> Option<String> {
    match changes {
        [] => None,
        [one] => Some(one.warning()),
        many => {
            let audit = many.iter().all(|c| c.message.starts_with("would "));
            let mut rules: Vec<&str> = Vec::new();
            for change in many {
                if !rules.contains(&change.rule) {
                    rules.push(change.rule);
                }
            }
            Some(format!(
                "forge-shim: {} {} by the standards ({}); each is in the shim's log, \
                 `forge-shim audit` checks the container, `standards.warnings: each` lists them here",
                many.len(),
                if audit { "changes would be made" } else { "changes made" },
                rules.join(", ")
            ))
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (standards.{})", self.message, self.rule)
    }
}

/// A request the standards refuse: HTTP 403. Renders as
/// `standards: <what> is not allowed (rule standards.<rule>); <hint>`; the
/// caller prefixes `forge-shim: `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("standards: {what} is not allowed (rule standards.{rule}); {hint}")]
pub struct Denial {
    /// The rule's name as `exempt:` entries spell it, e.g. `deny.privileged`.
    pub rule: String,
    /// What was asked for, e.g. `privileged mode (HostConfig.Privileged)`.
    pub what: String,
    /// How to get it allowed, or what to ask for instead.
    pub hint: String,
}

/// A body the shim cannot judge: not JSON, not an object, a duplicate key,
/// a field of the wrong type. HTTP 400; dockerd would reject most of these
/// too, the rest (case-folded duplicates) it would silently misread.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadRequest {
    pub message: String,
}

impl BadRequest {
    fn new(message: impl Into<String>) -> BadRequest {
        BadRequest {
            message: message.into(),
        }
    }
}

/// Why a request does not go through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    #[error(transparent)]
    Denied(#[from] Denial),
}

/// `POST /containers/create`: fills in defaults, enforces limits and denies
/// what is forbidden. `body` comes from [`parse_body`]; it is
/// canonicalised here again, so a value built any other way is safe too.
/// Whether `rule` applies to the container `who` (its switch aside): it is
/// not exempt from it. The post-start check of the user asks this.
pub fn rule_applies(cfg: &LoadedConfig, who: &ContainerIdentity<'_>, rule: &str) -> bool {
    engine::Engine::new(cfg, who).applies(rule)
}

pub fn apply_create(cfg: &LoadedConfig, ctx: &CreateContext, body: Value) -> Result<Outcome, Rejection> {
    create::apply_create(cfg, ctx, body)
}

/// `POST /containers/{id}/update`: a flat resources object. It may not raise
/// a value above a `limits:` maximum nor remove a limit the standards set.
/// `who` is the container's identity and `current_host_config` its current
/// `HostConfig` (both from inspect); the latter is needed to judge a
/// `CpuQuota` or `CpuPeriod` sent alone, and without it such an update is
/// judged against Docker's default period.
pub fn check_update(
    cfg: &LoadedConfig,
    who: &ContainerIdentity<'_>,
    current_host_config: Option<&Value>,
    body: Value,
) -> Result<Outcome, Rejection> {
    update::check_update(cfg, who, current_host_config, body)
}

/// `POST /containers/{id}/exec`: denies `Privileged: true` (rule
/// `deny.privileged`) and, with `non_root.deny_root_exec`, running as root.
/// An exec without `User` runs as the container's `Config.User`, which the
/// caller passes as `container_user` (`None` = unknown, treated as root).
pub fn check_exec(
    cfg: &LoadedConfig,
    who: &ContainerIdentity<'_>,
    container_user: Option<&str>,
    passwd: Option<&user::Passwd>,
    body: Value,
) -> Result<Outcome, Rejection> {
    exec::check_exec(cfg, who, container_user, passwd, body)
}

/// `POST /services/create` and `POST /services/{id}/update` (Swarm): the same
/// defaults and denials, applied to `TaskTemplate.ContainerSpec` and
/// `TaskTemplate.Resources`. `ctx.name` defaults to the spec's `Name`.
pub fn apply_service_spec(cfg: &LoadedConfig, ctx: &CreateContext, body: Value) -> Result<Outcome, Rejection> {
    service::apply_service_spec(cfg, ctx, body)
}

/// `POST /build`: the classic builder's step containers get no host or
/// `container:` network (rule `deny.host_network`) and stay within
/// `limits.memory` and `limits.cpus`, which are set where the query leaves
/// them unset. Judged on the query; the context is streamed.
pub fn check_build(cfg: &LoadedConfig, query: Option<&str>) -> Result<HeadOutcome, Rejection> {
    build::check_build(cfg, query)
}

/// Plugin pull, create, enable, upgrade and set: denied while
/// `deny.plugins` is on. `what` names the call in the message.
pub fn check_plugin_install(cfg: &LoadedConfig, what: &str) -> Result<HeadOutcome, Rejection> {
    build::check_plugin_install(cfg, what)
}

/// `POST /volumes/create`: a local volume with `o=bind` and a `device` that
/// exposes the Docker socket is the same as binding the socket, only one
/// request earlier (rule `deny.docker_socket`). Exemptions match the volume's
/// `Name` as `name` and its `Labels`.
pub fn check_volume_create(cfg: &LoadedConfig, body: Value) -> Result<Outcome, Rejection> {
    volume::check_volume_create(cfg, body)
}
