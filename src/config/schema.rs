//! The schema of `shim.yml`: one serde struct per block, with the defaults
//! that apply where a key is left out. Every struct denies unknown fields, so
//! a typo is an error rather than a silent default. The checks that span
//! several keys are in `validate.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::policy::{ClassSpec, ClassifyRule, Selector, ServiceSpec};
use super::units::{ByteSize, Cpus, HumanDuration};

/// The whole config, as written in `shim.yml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The shim's own socket.
    #[serde(default = "defaults::listen")]
    pub listen: PathBuf,
    /// dockerd's socket: a path or a `unix://` URL.
    #[serde(default = "defaults::upstream")]
    pub upstream: String,
    /// Octal mode of the listening socket, e.g. `"0660"`.
    #[serde(default = "defaults::socket_mode")]
    pub socket_mode: String,
    /// Group of the listening socket; `docker` by default when it exists.
    #[serde(default)]
    pub socket_group: Option<String>,
    #[serde(default)]
    pub log_format: LogFormat,
    /// Threads serving connections: 1 runs the shim on one thread (the
    /// least CPU and latency per request); 0 means one per core.
    #[serde(default = "defaults::worker_threads")]
    pub worker_threads: usize,
    /// Forward requests that have no phase (`/_ping`, `ps`, `inspect`,
    /// `events`, …) as the bytes read, without re-encoding them.
    #[serde(default = "defaults::fast_path")]
    pub fast_path: bool,
    /// Client connections open at once; past it, the oldest idle one is
    /// closed, or the new one is refused with a 503. 0: as many as the
    /// open-file limit allows (three descriptors each).
    #[serde(default)]
    pub max_connections: usize,
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub standards: StandardsConfig,
    #[serde(default)]
    pub default_class: Option<String>,
    #[serde(default)]
    pub classes: BTreeMap<String, ClassSpec>,
    #[serde(default)]
    pub classify: Vec<ClassifyRule>,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceSpec>,
    #[serde(default)]
    pub auto_sleep: AutoSleep,
    #[serde(default)]
    pub on_shutdown: OnShutdown,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub bypass: BypassConfig,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// A client that has not sent a full request head in this time is cut.
    pub header_read: HumanDuration,
    /// How long shutdown waits for requests in flight before cutting them.
    pub shutdown_grace: HumanDuration,
    /// Connecting to dockerd's socket.
    pub upstream_connect: HumanDuration,
    /// A keep-alive client connection with nothing in flight is closed
    /// after this long.
    pub client_idle: HumanDuration,
    /// A body the standards judge must arrive whole within this.
    pub body_read: HumanDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: HumanDuration::from_secs(30),
            shutdown_grace: HumanDuration::from_secs(10),
            upstream_connect: HumanDuration::from_secs(5),
            client_idle: HumanDuration::from_secs(300),
            body_read: HumanDuration::from_secs(30),
        }
    }
}

impl Config {
    /// The upstream socket path, with any `unix://` stripped.
    pub fn upstream_path(&self) -> PathBuf {
        PathBuf::from(self.upstream.strip_prefix("unix://").unwrap_or(&self.upstream))
    }
}

// ---------------------------------------------------------------------------
// standards:

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StandardsMode {
    #[default]
    Enforce,
    Audit,
    Off,
}

/// What to do with a request above a `limits:` maximum.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnExceed {
    #[default]
    Deny,
    Clamp,
}

/// How a create's changes reach the client as warnings.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WarningStyle {
    /// One line naming the rules that changed the create (one change: that
    /// change); each change is in the shim's log.
    #[default]
    Summary,
    /// One warning per change.
    Each,
}

/// What to do when a create gives no `User` and the image runs as root.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RootImage {
    /// Set `defaults.user`.
    #[default]
    SetUser,
    Deny,
    Allow,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StandardsConfig {
    pub mode: StandardsMode,
    pub defaults: StandardsDefaults,
    pub non_root: NonRoot,
    pub limits: Limits,
    pub deny: DenyRules,
    /// Capabilities a container may add (after `cap_drop: [ALL]`).
    pub cap_add_allowed: Vec<String>,
    pub exempt: Vec<Exemption>,
    /// Let the `forge.exempt` label switch rules off. Off by default: the
    /// config is the operator's, a label is the user's.
    pub allow_label_exemptions: bool,
    /// Largest create body the shim reads; above it the request gets 413.
    pub max_body: Option<ByteSize>,
    /// One summing-up warning per create, or one per change.
    pub warnings: WarningStyle,
    /// When the hardening rules (non-root user, read-only root, dropped
    /// capabilities) apply: always, fitted to what the image survives, or
    /// never.
    pub hardening: Hardening,
}

/// When one hardening rule applies.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HardeningMode {
    /// From the first create, whatever the image does.
    Always,
    /// Once the image's profile says it survives the rule, and as that
    /// profile says (tmpfs paths, user, capabilities).
    #[default]
    Fitted,
    /// Not at all.
    Never,
}

/// `standards.hardening:`: a mode per hardening rule, and how profiles are
/// learned.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Hardening {
    pub non_root: HardeningMode,
    pub read_only_rootfs: HardeningMode,
    pub cap_drop: HardeningMode,
    /// How long an image's containers are watched, in all, before its
    /// profile is used.
    pub learn_for: HumanDuration,
    /// A hardened container that exits within this of its start, with a
    /// sign of the rule in its last log lines, is taken to have failed
    /// because of the rule.
    pub failure_window: HumanDuration,
    /// The size bound of each learned tmpfs.
    pub tmpfs_size: ByteSize,
}

impl Default for Hardening {
    fn default() -> Self {
        Hardening {
            non_root: HardeningMode::Fitted,
            read_only_rootfs: HardeningMode::Fitted,
            cap_drop: HardeningMode::Fitted,
            learn_for: HumanDuration::from_secs(60),
            failure_window: HumanDuration::from_secs(60),
            tmpfs_size: ByteSize(64 * 1024 * 1024),
        }
    }
}

impl Hardening {
    /// Every rule `always`: today's standards, whatever the image.
    pub fn always() -> Hardening {
        Hardening {
            non_root: HardeningMode::Always,
            read_only_rootfs: HardeningMode::Always,
            cap_drop: HardeningMode::Always,
            ..Hardening::default()
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StandardsDefaults {
    pub memory: Option<ByteSize>,
    pub memory_reservation: Option<ByteSize>,
    pub cpus: Option<Cpus>,
    pub pids_limit: Option<i64>,
    pub read_only_rootfs: Option<bool>,
    /// Paths that stay writable (as tmpfs) under a read-only root.
    pub tmpfs: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: Option<bool>,
    /// User for images that would run as root, e.g. `65534:65534`.
    pub user: Option<String>,
}

impl Default for StandardsDefaults {
    /// Without a `defaults:` block only the user has a default, so that
    /// `non_root` (on by default) has someone to run as: `nobody`.
    fn default() -> Self {
        StandardsDefaults {
            memory: None,
            memory_reservation: None,
            cpus: None,
            pids_limit: None,
            read_only_rootfs: None,
            tmpfs: Vec::new(),
            cap_drop: Vec::new(),
            no_new_privileges: None,
            user: Some("65534:65534".to_string()),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NonRoot {
    pub when_image_runs_as_root: RootImage,
    /// Deny an explicit `User` of root (`root`, `0`, `0:…`).
    pub deny_explicit_root: bool,
    /// Deny `exec` as root into containers covered by this rule that do
    /// not run as root themselves.
    pub deny_root_exec: bool,
}

impl Default for NonRoot {
    fn default() -> Self {
        NonRoot {
            when_image_runs_as_root: RootImage::SetUser,
            deny_explicit_root: true,
            deny_root_exec: true,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub memory: Option<ByteSize>,
    pub cpus: Option<Cpus>,
    pub pids_limit: Option<i64>,
    pub on_exceed: OnExceed,
}

/// Each deny rule can be switched off on its own.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenyRules {
    pub privileged: bool,
    pub docker_socket: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub host_network: bool,
    pub cap_add: bool,
    pub devices: bool,
    pub seccomp_unconfined: bool,
    pub apparmor_unconfined: bool,
    /// Plugin installs, upgrades, enables and settings.
    pub plugins: bool,
}

impl Default for DenyRules {
    fn default() -> Self {
        DenyRules {
            privileged: true,
            docker_socket: true,
            host_pid: true,
            host_ipc: true,
            host_network: true,
            cap_add: true,
            devices: true,
            seccomp_unconfined: true,
            apparmor_unconfined: true,
            plugins: true,
        }
    }
}

/// Switches chosen rules off for matching containers.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    #[serde(rename = "match")]
    pub selector: Selector,
    /// Rule names (see README), or `all`.
    pub rules: Vec<String>,
    /// Why; shown in logs.
    #[serde(default)]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------
// metrics:

/// `metrics:`: the Prometheus listener.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `address:port` to serve `GET /metrics` on over plain TCP; `None`
    /// (the default): no TCP listener, metrics only on the shim's socket.
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The validated listen address.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref().and_then(|a| a.parse().ok())
    }
}

// ---------------------------------------------------------------------------
// auto_sleep:

/// The seed's `auto_sleep:` block, plus the knobs idle detection needs.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoSleep {
    pub enabled: bool,
    /// How often idle detection samples containers.
    pub check_interval: HumanDuration,
    /// CPU use, as a fraction of the container's CPU limit (or one core),
    /// below which a container counts as idle.
    pub idle_threshold: f64,
    /// A container is never put to sleep before it has run this long.
    pub min_uptime: HumanDuration,
    /// After this long asleep, classes with `deep_sleep` are stopped.
    pub max_sleep_time: HumanDuration,
    pub wake_on_request: bool,
    /// Wake `high` priority containers ahead of others.
    pub priority_wake: bool,
    /// Network traffic below this rate (bytes/s, in + out) is background
    /// chatter and does not keep a container awake.
    pub network_idle_rate: ByteSize,
    /// Squeeze a sleeping container's memory when swap exists.
    pub memory_squeeze: bool,
    /// Upper bound for one pause, unpause, start or stop.
    pub transition_timeout: HumanDuration,
}

impl Default for AutoSleep {
    fn default() -> Self {
        AutoSleep {
            enabled: true,
            check_interval: HumanDuration::from_secs(30),
            idle_threshold: 0.1,
            min_uptime: HumanDuration::from_secs(300),
            max_sleep_time: HumanDuration::from_secs(3600),
            wake_on_request: true,
            priority_wake: true,
            network_idle_rate: ByteSize(1024),
            memory_squeeze: true,
            transition_timeout: HumanDuration::from_secs(10),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnShutdown {
    #[default]
    WakeAll,
    Leave,
}

// ---------------------------------------------------------------------------
// bypass:

/// `bypass:`: what the shim does about containers created straight on
/// dockerd, around its socket.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BypassConfig {
    pub action: BypassAction,
    /// Which containers bypass detection covers, any of which matches (the
    /// selectors of `services:`); empty: every container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<Selector>,
}

/// What happens to a container created around the shim.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BypassAction {
    /// Logged, counted, shown in `status` and `audit`.
    #[default]
    Report,
    /// Reported, and when it starts, judged by the create backstop on
    /// dockerd's record and stopped (never removed) on a breach.
    Stop,
}

mod defaults {
    use std::path::PathBuf;

    pub fn worker_threads() -> usize {
        1
    }

    pub fn fast_path() -> bool {
        true
    }

    pub fn listen() -> PathBuf {
        PathBuf::from("/run/forge-shim/docker.sock")
    }
    pub fn upstream() -> String {
        "/var/run/docker.sock".to_string()
    }
    pub fn socket_mode() -> String {
        "0660".to_string()
    }
    pub fn state_dir() -> PathBuf {
        PathBuf::from("/var/lib/forge-shim")
    }
}
