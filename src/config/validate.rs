//! Validation: the checks that span several keys, run after parsing, and the
//! compiling of selectors into a [`LoadedConfig`]. Each section has its own
//! function; all of them add to one list, so a config with several mistakes
//! reports them all at once, each placed at its key when the text shows it.

use std::collections::BTreeMap;

use super::load::{ConfigError, ConfigProblem, LoadedConfig};
use super::policy::{ClassSpec, CompiledSelector, PolicyTable, ServiceSpec};
use super::schema::{AutoSleep, Config, Exemption, MetricsConfig, RootImage, StandardsConfig};
use super::RULE_NAMES;

impl Config {
    /// Checks that span several keys, collecting every problem.
    pub(super) fn validate(self, text: &str, file: &str) -> Result<LoadedConfig, ConfigError> {
        let mut problems = Problems {
            text,
            file,
            found: Vec::new(),
        };
        check_sockets(&self, &mut problems);
        check_standards(&self.standards, &mut problems);
        let policy = compile_policy(&self, &mut problems);
        let exemptions = compile_exemptions(&self.standards, &mut problems);
        check_auto_sleep(&self.auto_sleep, &mut problems);
        check_metrics(&self.metrics, &mut problems);
        check_bypass(&self, &mut problems);

        if !problems.found.is_empty() {
            return Err(ConfigError {
                problems: problems.found,
            });
        }
        Ok(LoadedConfig {
            source: file.to_string(),
            policy,
            exemptions,
            config: self,
        })
    }
}

/// The problems found so far, each placed in `text` by its key path.
struct Problems<'t> {
    text: &'t str,
    file: &'t str,
    found: Vec<ConfigProblem>,
}

impl Problems<'_> {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        self.found.push(ConfigProblem {
            file: self.file.to_string(),
            position: locate_key(self.text, &key),
            key: Some(key),
            message: message.into(),
        });
    }
}

/// `bypass.scope`: each selector compiles.
fn check_bypass(config: &Config, problems: &mut Problems<'_>) {
    for (i, selector) in config.bypass.scope.iter().enumerate() {
        if let Err(e) = CompiledSelector::compile(selector) {
            problems.add(format!("bypass.scope[{i}]"), e);
        }
    }
}

/// `upstream`, `listen` and `socket_mode`.
fn check_sockets(config: &Config, problems: &mut Problems<'_>) {
    let upstream = &config.upstream;
    let path = upstream.strip_prefix("unix://").unwrap_or(upstream);
    if path.is_empty() || !path.starts_with('/') {
        problems.add(
            "upstream",
            format!("expected an absolute socket path or unix:// URL, got {upstream:?}"),
        );
    }
    if upstream.contains("://") && !upstream.starts_with("unix://") {
        problems.add("upstream", "only unix:// upstreams are supported");
    }
    if !config.listen.is_absolute() {
        problems.add("listen", format!("expected an absolute path, got {:?}", config.listen));
    }
    if parse_socket_mode(&config.socket_mode).is_none() {
        problems.add(
            "socket_mode",
            format!("expected an octal mode such as \"0660\", got {:?}", config.socket_mode),
        );
    }
}

/// `standards:`.
fn check_standards(standards: &StandardsConfig, problems: &mut Problems<'_>) {
    check_resources(standards, problems);
    check_non_root(standards, problems);
    check_exempt_rules(standards, problems);
    check_capabilities(standards, problems);
}

/// `standards.defaults` against each other and against `standards.limits`.
fn check_resources(standards: &StandardsConfig, problems: &mut Problems<'_>) {
    let (defaults, limits) = (&standards.defaults, &standards.limits);
    if let (Some(reservation), Some(memory)) = (defaults.memory_reservation, defaults.memory) {
        if reservation > memory {
            problems.add(
                "standards.defaults.memory_reservation",
                format!("{reservation} is above standards.defaults.memory ({memory})"),
            );
        }
    }
    if let (Some(default), Some(limit)) = (defaults.memory, limits.memory) {
        if default > limit {
            problems.add(
                "standards.defaults.memory",
                format!("{default} is above standards.limits.memory ({limit})"),
            );
        }
    }
    if let (Some(default), Some(limit)) = (defaults.cpus, limits.cpus) {
        if default > limit {
            problems.add(
                "standards.defaults.cpus",
                format!("{default} is above standards.limits.cpus ({limit})"),
            );
        }
    }
    for path in &defaults.tmpfs {
        if !path.starts_with('/') {
            problems.add("standards.defaults.tmpfs", format!("{path:?} is not an absolute path"));
        }
    }
}

/// `standards.non_root` needs a non-root `standards.defaults.user`.
fn check_non_root(standards: &StandardsConfig, problems: &mut Problems<'_>) {
    if standards.non_root.when_image_runs_as_root == RootImage::SetUser && standards.defaults.user.is_none() {
        problems.add(
            "standards.non_root.when_image_runs_as_root",
            "set_user needs standards.defaults.user",
        );
    }
    if let Some(user) = &standards.defaults.user {
        if is_root_user(user) {
            problems.add("standards.defaults.user", format!("{user:?} is root"));
        }
    }
}

/// `standards.exempt[].rules` names known rules.
fn check_exempt_rules(standards: &StandardsConfig, problems: &mut Problems<'_>) {
    for (i, exemption) in standards.exempt.iter().enumerate() {
        for rule in &exemption.rules {
            if rule != "all" && !RULE_NAMES.contains(&rule.as_str()) {
                problems.add(
                    format!("standards.exempt[{i}].rules"),
                    format!("unknown rule {rule:?}; known rules: all, {}", RULE_NAMES.join(", ")),
                );
            }
        }
    }
}

/// `standards.cap_add_allowed` and `standards.defaults.cap_drop` are
/// capability names.
fn check_capabilities(standards: &StandardsConfig, problems: &mut Problems<'_>) {
    for cap in standards.cap_add_allowed.iter().chain(&standards.defaults.cap_drop) {
        let bare = cap.trim_start_matches("CAP_");
        if bare.is_empty() || !bare.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            problems.add(
                "standards.cap_add_allowed",
                format!("{cap:?} is not a capability name such as NET_BIND_SERVICE"),
            );
        }
    }
}

/// `default_class`, `classes`, `classify` and `services`, compiled.
fn compile_policy(config: &Config, problems: &mut Problems<'_>) -> PolicyTable {
    let default_class = config.default_class.clone().unwrap_or_else(|| "normal".to_string());
    let mut classes = builtin_classes();
    for (name, spec) in &config.classes {
        classes.insert(name.clone(), spec.clone());
    }
    if !classes.contains_key(&default_class) {
        problems.add("default_class", format!("unknown class {default_class:?}"));
    }
    let classify = compile_classify(config, &classes, problems);
    let services = compile_services(config, &classes, problems);
    PolicyTable {
        default_class,
        classes,
        classify,
        services,
    }
}

/// `classify:` rules name known classes and compile.
fn compile_classify(
    config: &Config,
    classes: &BTreeMap<String, ClassSpec>,
    problems: &mut Problems<'_>,
) -> Vec<(CompiledSelector, String)> {
    let mut classify = Vec::new();
    for (i, rule) in config.classify.iter().enumerate() {
        if !classes.contains_key(&rule.class) {
            problems.add(
                format!("classify[{i}].class"),
                format!("unknown class {:?}", rule.class),
            );
        }
        match CompiledSelector::compile(&rule.selector) {
            Ok(selector) => classify.push((selector, rule.class.clone())),
            Err(e) => problems.add(format!("classify[{i}].match"), e),
        }
    }
    classify
}

/// `services:` entries name known classes; their selectors compile (an entry
/// without `match` matches its key as a compose service, `project/service`
/// or `service`).
fn compile_services(
    config: &Config,
    classes: &BTreeMap<String, ClassSpec>,
    problems: &mut Problems<'_>,
) -> Vec<(String, CompiledSelector, ServiceSpec)> {
    let mut services = Vec::new();
    for (key, spec) in &config.services {
        if let Some(class) = &spec.class {
            if !classes.contains_key(class) {
                problems.add(format!("services.{key}.class"), format!("unknown class {class:?}"));
            }
        }
        let selector = match &spec.selector {
            Some(selector) => match CompiledSelector::compile(selector) {
                Ok(selector) => selector,
                Err(e) => {
                    problems.add(format!("services.{key}.match"), e);
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
    services
}

/// `standards.exempt[].match`, compiled.
fn compile_exemptions(standards: &StandardsConfig, problems: &mut Problems<'_>) -> Vec<(CompiledSelector, Exemption)> {
    let mut exemptions = Vec::new();
    for (i, exemption) in standards.exempt.iter().enumerate() {
        match CompiledSelector::compile(&exemption.selector) {
            Ok(selector) if selector.matches_image_name() => problems.add(
                format!("standards.exempt[{i}].match.image"),
                "an exemption cannot match an image by name: anyone who may `docker tag` can give any image \
                 that name; match it by image_id, or by pulled_from (the repositories its digests come from)"
                    .to_string(),
            ),
            Ok(selector) => exemptions.push((selector, exemption.clone())),
            Err(e) => problems.add(format!("standards.exempt[{i}].match"), e),
        }
    }
    exemptions
}

/// `metrics:`: an IP address and a port (no host names: the listener binds
/// exactly what is written).
fn check_metrics(metrics: &MetricsConfig, problems: &mut Problems<'_>) {
    let Some(listen) = &metrics.listen else { return };
    match listen.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.port() == 0 => problems.add("metrics.listen", "needs a port above 0"),
        Ok(_) => {}
        Err(_) => problems.add(
            "metrics.listen",
            format!("expected an IP address and port such as \"127.0.0.1:9464\", got {listen:?}"),
        ),
    }
}

/// `auto_sleep:`.
fn check_auto_sleep(auto_sleep: &AutoSleep, problems: &mut Problems<'_>) {
    if !(0.0..=1.0).contains(&auto_sleep.idle_threshold) {
        problems.add(
            "auto_sleep.idle_threshold",
            format!("{} is not a fraction between 0 and 1", auto_sleep.idle_threshold),
        );
    }
    if auto_sleep.check_interval.as_duration().is_zero() {
        problems.add("auto_sleep.check_interval", "must be above zero");
    }
}

/// `root`, `0`, `0:…` and `root:…` name the root user.
pub fn is_root_user(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or("").trim();
    // runc runs an empty user part as uid 0; Go's strconv reads `+0`, `-0`
    // and `00` as 0 too.
    name.is_empty() || name == "root" || name.parse::<i64>() == Ok(0)
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
