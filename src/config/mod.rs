//! `shim.yml`: load → parse → validate.
//!
//! The default config is `shim.yml` at the repository root, embedded in the
//! binary; `--config FILE` is a layer over it (mappings merge, lists and
//! values replace). Unknown keys are errors (a typo in `idle_timeout` must
//! not silently become a default), and every
//! error names the file, line and column when the YAML parser knows them, or
//! the key path for checks that span several keys.

pub mod policy;
pub mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use policy::{
    ClassSpec, ClassifyRule, CompiledSelector, ContainerIdentity, PolicyTable, Priority, Resources, Selector,
    ServicePolicy, ServiceSpec, SleepPolicy,
};
pub use units::{ByteSize, Cpus, HumanDuration};

/// The embedded default config.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../shim.yml");
pub const DEFAULT_CONFIG_NAME: &str = "<embedded shim.yml>";

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
    /// Deny `exec` as root into containers covered by this rule.
    pub deny_root_exec: bool,
}

impl Default for NonRoot {
    fn default() -> Self {
        NonRoot {
            when_image_runs_as_root: RootImage::SetUser,
            deny_explicit_root: true,
            deny_root_exec: false,
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

// ---------------------------------------------------------------------------
// errors

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// The key path (`standards.limits.memory`), when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem found in a config; loading reports them all at once.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// A validated config with its matchers compiled.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    pub source: String,
    pub config: Config,
    pub policy: PolicyTable,
    pub exemptions: Vec<(CompiledSelector, Exemption)>,
}

impl Config {
    /// Reads `path`, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
        match path {
            None => Config::from_yaml(DEFAULT_CONFIG_YAML, DEFAULT_CONFIG_NAME),
            Some(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                    problems: vec![ConfigProblem {
                        file: name.clone(),
                        position: None,
                        key: None,
                        message: format!("cannot read: {e}"),
                    }],
                })?;
                Config::from_yaml_over_default(&text, &name)
            }
        }
    }

    /// Parses `text` as a layer over the embedded `shim.yml`: mappings merge
    /// key by key, anything else (lists, scalars) replaces the default. A
    /// file that sets only `listen` keeps every standard and class of the
    /// default. `file` names it in errors, which point into `text`.
    pub fn from_yaml_over_default(text: &str, file: &str) -> Result<LoadedConfig, ConfigError> {
        let problem = |e: serde_norway::Error| ConfigError {
            problems: vec![ConfigProblem {
                file: file.to_string(),
                position: e.location().map(|l| (l.line(), l.column())),
                key: None,
                message: strip_location(&e.to_string()),
            }],
        };
        if text.trim().is_empty() {
            return Config::from_yaml(DEFAULT_CONFIG_YAML, file);
        }
        // The layer alone first: unknown keys, duplicates and bad values are
        // reported with their place in the user's file.
        serde_norway::from_str::<Config>(text).map_err(problem)?;
        let layer: serde_norway::Value = serde_norway::from_str(text).map_err(problem)?;
        let mut merged: serde_norway::Value =
            serde_norway::from_str(DEFAULT_CONFIG_YAML).expect("the embedded shim.yml parses");
        merge_yaml(&mut merged, layer);
        let config: Config = serde_norway::from_value(merged).map_err(problem)?;
        config.validate(text, file)
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<LoadedConfig, ConfigError> {
        // An empty file is the all-defaults config, not a parse error.
        let parsed: Result<Config, _> = if text.trim().is_empty() {
            serde_norway::from_str("{}")
        } else {
            serde_norway::from_str(text)
        };
        let config = parsed.map_err(|e| ConfigError {
            problems: vec![ConfigProblem {
                file: file.to_string(),
                position: e.location().map(|l| (l.line(), l.column())),
                key: None,
                message: strip_location(&e.to_string()),
            }],
        })?;
        config.validate(text, file)
    }

    /// Checks that span several keys, collecting every problem.
    fn validate(self, text: &str, file: &str) -> Result<LoadedConfig, ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| {
            let position = locate_key(text, &key);
            problems.push(ConfigProblem {
                file: file.to_string(),
                position,
                key: Some(key),
                message,
            });
        };

        if let Some(path) = self.upstream.strip_prefix("unix://").or(Some(self.upstream.as_str())) {
            if path.is_empty() || !path.starts_with('/') {
                problem(
                    "upstream".into(),
                    format!(
                        "expected an absolute socket path or unix:// URL, got {:?}",
                        self.upstream
                    ),
                );
            }
        }
        if self.upstream.contains("://") && !self.upstream.starts_with("unix://") {
            problem("upstream".into(), "only unix:// upstreams are supported".into());
        }
        if !self.listen.is_absolute() {
            problem(
                "listen".into(),
                format!("expected an absolute path, got {:?}", self.listen),
            );
        }
        if parse_socket_mode(&self.socket_mode).is_none() {
            problem(
                "socket_mode".into(),
                format!("expected an octal mode such as \"0660\", got {:?}", self.socket_mode),
            );
        }

        let standards = &self.standards;
        if let (Some(reservation), Some(memory)) = (standards.defaults.memory_reservation, standards.defaults.memory) {
            if reservation > memory {
                problem(
                    "standards.defaults.memory_reservation".into(),
                    format!("{reservation} is above standards.defaults.memory ({memory})"),
                );
            }
        }
        if let (Some(default), Some(limit)) = (standards.defaults.memory, standards.limits.memory) {
            if default > limit {
                problem(
                    "standards.defaults.memory".into(),
                    format!("{default} is above standards.limits.memory ({limit})"),
                );
            }
        }
        if let (Some(default), Some(limit)) = (standards.defaults.cpus, standards.limits.cpus) {
            if default > limit {
                problem(
                    "standards.defaults.cpus".into(),
                    format!("{default} is above standards.limits.cpus ({limit})"),
                );
            }
        }
        for path in &standards.defaults.tmpfs {
            if !path.starts_with('/') {
                problem(
                    "standards.defaults.tmpfs".into(),
                    format!("{path:?} is not an absolute path"),
                );
            }
        }
        if standards.non_root.when_image_runs_as_root == RootImage::SetUser && standards.defaults.user.is_none() {
            problem(
                "standards.non_root.when_image_runs_as_root".into(),
                "set_user needs standards.defaults.user".into(),
            );
        }
        if let Some(user) = &standards.defaults.user {
            if is_root_user(user) {
                problem("standards.defaults.user".into(), format!("{user:?} is root"));
            }
        }
        for (i, exemption) in standards.exempt.iter().enumerate() {
            for rule in &exemption.rules {
                if rule != "all" && !RULE_NAMES.contains(&rule.as_str()) {
                    problem(
                        format!("standards.exempt[{i}].rules"),
                        format!("unknown rule {rule:?}; known rules: all, {}", RULE_NAMES.join(", ")),
                    );
                }
            }
        }
        for cap in standards.cap_add_allowed.iter().chain(&standards.defaults.cap_drop) {
            let bare = cap.trim_start_matches("CAP_");
            if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                problem(
                    "standards.cap_add_allowed".into(),
                    format!("{cap:?} is not a capability name such as NET_BIND_SERVICE"),
                );
            }
        }

        let default_class = self.default_class.clone().unwrap_or_else(|| "normal".to_string());
        let mut classes = builtin_classes();
        for (name, spec) in &self.classes {
            classes.insert(name.clone(), spec.clone());
        }
        if !classes.contains_key(&default_class) {
            problem("default_class".into(), format!("unknown class {default_class:?}"));
        }
        let mut classify = Vec::new();
        for (i, rule) in self.classify.iter().enumerate() {
            if !classes.contains_key(&rule.class) {
                problem(
                    format!("classify[{i}].class"),
                    format!("unknown class {:?}", rule.class),
                );
            }
            match CompiledSelector::compile(&rule.selector) {
                Ok(selector) => classify.push((selector, rule.class.clone())),
                Err(e) => problem(format!("classify[{i}].match"), e),
            }
        }
        let mut services = Vec::new();
        for (key, spec) in &self.services {
            if let Some(class) = &spec.class {
                if !classes.contains_key(class) {
                    problem(format!("services.{key}.class"), format!("unknown class {class:?}"));
                }
            }
            let selector = match &spec.selector {
                Some(selector) => match CompiledSelector::compile(selector) {
                    Ok(selector) => selector,
                    Err(e) => {
                        problem(format!("services.{key}.match"), e);
                        continue;
                    }
                },
                None => CompiledSelector::from_service_key(key),
            };
            services.push((key.clone(), selector, spec.clone()));
        }
        // Project-qualified and explicit entries are more specific than bare
        // service names; try them first so `shop/web` beats `web`.
        services.sort_by_key(|(key, _, spec)| !(key.contains('/') || spec.selector.is_some()));
        let mut exemptions = Vec::new();
        for (i, exemption) in standards.exempt.iter().enumerate() {
            match CompiledSelector::compile(&exemption.selector) {
                Ok(selector) => exemptions.push((selector, exemption.clone())),
                Err(e) => problem(format!("standards.exempt[{i}].match"), e),
            }
        }
        let auto_sleep = &self.auto_sleep;
        if !(0.0..=1.0).contains(&auto_sleep.idle_threshold) {
            problem(
                "auto_sleep.idle_threshold".into(),
                format!("{} is not a fraction between 0 and 1", auto_sleep.idle_threshold),
            );
        }
        if auto_sleep.check_interval.as_duration().is_zero() {
            problem("auto_sleep.check_interval".into(), "must be above zero".into());
        }

        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(LoadedConfig {
            source: file.to_string(),
            policy: PolicyTable {
                default_class,
                classes,
                classify,
                services,
            },
            exemptions,
            config: self,
        })
    }

    /// The upstream socket path, with any `unix://` stripped.
    pub fn upstream_path(&self) -> PathBuf {
        PathBuf::from(self.upstream.strip_prefix("unix://").unwrap_or(&self.upstream))
    }
}

/// The names `exempt:` entries may switch off.
pub const RULE_NAMES: &[&str] = &[
    "defaults.memory",
    "defaults.memory_reservation",
    "defaults.cpus",
    "defaults.pids_limit",
    "defaults.read_only_rootfs",
    "defaults.cap_drop",
    "defaults.no_new_privileges",
    "non_root",
    "limits.memory",
    "limits.cpus",
    "limits.pids_limit",
    "deny.privileged",
    "deny.docker_socket",
    "deny.host_pid",
    "deny.host_ipc",
    "deny.host_network",
    "deny.cap_add",
    "deny.devices",
    "deny.seccomp_unconfined",
    "deny.apparmor_unconfined",
];

/// `root`, `0`, `0:…` and `root:…` name the root user.
pub fn is_root_user(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or("").trim();
    // Go's strconv reads `+0`, `-0` and `00` as uid 0 too.
    name == "root" || name.parse::<i64>() == Ok(0)
}

/// Merges `layer` into `base`: mappings key by key, recursively; any other
/// value of `layer` replaces `base`'s.
fn merge_yaml(base: &mut serde_norway::Value, layer: serde_norway::Value) {
    use serde_norway::Value;
    match (base, layer) {
        (Value::Mapping(base), Value::Mapping(layer)) => {
            for (key, value) in layer {
                match base.get_mut(&key) {
                    Some(existing) => merge_yaml(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, layer) => *base = layer,
    }
}

pub fn parse_socket_mode(mode: &str) -> Option<u32> {
    let digits = mode.trim().trim_start_matches("0o");
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

/// The seed's classes, used where the config does not define them.
fn builtin_classes() -> BTreeMap<String, ClassSpec> {
    let yaml = r#"
high:
  sleep_policy: { enabled: false, priority: high }
  auto_start: true
normal:
  sleep_policy: { enabled: true, idle_timeout: 300, min_sleep_time: 60, memory_reservation: 128M, priority: normal }
  auto_start: false
low:
  sleep_policy: { enabled: true, idle_timeout: 120, min_sleep_time: 60, memory_reservation: 64M, priority: low, deep_sleep: true }
  auto_start: false
browser:
  sleep_policy: { enabled: true, idle_timeout: 180, min_sleep_time: 120, memory_reservation: 256M, priority: normal }
  auto_start: false
"#;
    serde_norway::from_str(yaml).expect("built-in classes parse")
}

/// serde_norway appends " at line L column C"; we print the position first.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Best-effort position of a dotted key path (`a.b[0].c`) in the YAML text,
/// for problems found after parsing. It follows indentation, which is enough
/// for block-style YAML as configs are written; when it cannot tell, the
/// problem is reported with its key path alone.
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let parts: Vec<&str> = key
        .split('.')
        .map(|p| p.split('[').next().unwrap_or(p))
        .filter(|p| !p.is_empty())
        .collect();
    let mut min_indent = 0usize;
    let mut found = None;
    let mut lines = text.lines().enumerate();
    'parts: for part in parts {
        for (number, line) in lines.by_ref() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let trimmed = trimmed.trim_start_matches("- ");
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if found.is_some() && indent < min_indent {
                return found;
            }
            if indent >= min_indent
                && (trimmed.starts_with(&format!("{part}:")) || trimmed.starts_with(&format!("\"{part}\":")))
            {
                found = Some((number + 1, indent + 1));
                min_indent = indent + 1;
                continue 'parts;
            }
        }
        return found;
    }
    found
}

#[cfg(test)]
mod tests;
