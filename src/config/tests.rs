use std::path::PathBuf;

use super::*;

fn load(yaml: &str) -> Result<LoadedConfig, ConfigError> {
    Config::from_yaml(yaml, "test.yml")
}

#[test]
fn embedded_default_is_valid() {
    let loaded = Config::load(None).expect("embedded shim.yml is valid");
    assert_eq!(loaded.config.listen, PathBuf::from("/run/forge-shim/docker.sock"));
    assert_eq!(loaded.config.upstream_path(), PathBuf::from("/var/run/docker.sock"));
    assert_eq!(loaded.config.standards.mode, StandardsMode::Enforce);
    assert!(loaded.policy.classes.contains_key("browser"));
}

#[test]
fn empty_file_means_defaults() {
    let loaded = load("").unwrap();
    assert_eq!(loaded.config.socket_mode, "0660");
    assert_eq!(loaded.policy.default_class, "normal");
}

#[test]
fn unknown_key_names_line_and_column() {
    let err = load("listen: /tmp/x.sock\nauto_sleep:\n  idle_timout: 5m\n").unwrap_err();
    let problem = &err.problems[0];
    assert_eq!(problem.file, "test.yml");
    assert_eq!(problem.position.map(|p| p.0), Some(3));
    assert!(problem.message.contains("idle_timout"), "{}", problem.message);
    assert!(err.to_string().starts_with("test.yml:3:"), "{err}");
}

#[test]
fn bad_unit_names_line() {
    let err = load("standards:\n  defaults:\n    memory: 12Q\n").unwrap_err();
    assert_eq!(err.problems[0].position.map(|p| p.0), Some(3));
    assert!(err.problems[0].message.contains("unknown unit"), "{err}");
}

#[test]
fn validation_collects_every_problem() {
    let yaml = "\
listen: relative.sock
socket_mode: rw-rw----
standards:
  defaults:
    memory: 1G
    memory_reservation: 2G
    user: root
  exempt:
    - match: { image: x }
      rules: [no_such_rule]
default_class: tiny
";
    let err = load(yaml).unwrap_err();
    let keys: Vec<_> = err.problems.iter().filter_map(|p| p.key.clone()).collect();
    for expected in [
        "listen",
        "socket_mode",
        "standards.defaults.memory_reservation",
        "standards.defaults.user",
        "standards.exempt[0].rules",
        "default_class",
    ] {
        assert!(keys.iter().any(|k| k == expected), "missing {expected} in {keys:?}");
    }
    let reservation = err
        .problems
        .iter()
        .find(|p| p.key.as_deref() == Some("standards.defaults.memory_reservation"))
        .unwrap();
    assert_eq!(reservation.position.map(|p| p.0), Some(6));
}

#[test]
fn seed_services_yml_pastes_in() {
    let yaml = r#"
services:
  pdf-worker:
    image: forge/pdf:latest
    command: ["run"]
    port: 8080
    environment:
      - VAR: "${ENV_VAR}"
    resources:
      memory: "512M"
      cpu: "0.5"
      memory_reservation: "256M"
      cpu_reservation: "0.1"
    sleep_policy:
      enabled: true
      idle_timeout: 300
      min_sleep_time: 60
      memory_reservation: "128MB"
      priority: "normal"
    auto_start: false
    volumes: ["data:/data"]
    health_check:
      path: "/health"
      interval: 30
      timeout: 10
"#;
    let loaded = load(yaml).unwrap();
    let labels: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"com.docker.compose.service":"pdf-worker"}"#).unwrap();
    let policy = loaded.policy.resolve(&ContainerIdentity {
        labels: Some(&labels),
        ..Default::default()
    });
    assert_eq!(policy.service_entry.as_deref(), Some("pdf-worker"));
    assert_eq!(policy.class, "normal");
    assert_eq!(policy.resources.memory, Some(ByteSize(512 << 20)));
    assert_eq!(policy.sleep_policy.memory_reservation, Some(ByteSize(128 << 20)));
    assert_eq!(policy.sleep_policy.idle_timeout, Some(HumanDuration::from_secs(300)));
}

#[test]
fn class_resolution_order() {
    let yaml = r#"
classify:
  - match: { image: "postgres*" }
    class: high
services:
  shop/web:
    class: browser
  web:
    class: low
"#;
    let loaded = load(yaml).unwrap();
    let resolve = |image: &str, labels: &str| {
        let labels: serde_json::Map<String, serde_json::Value> = serde_json::from_str(labels).unwrap();
        loaded
            .policy
            .resolve(&ContainerIdentity {
                image: Some(image),
                labels: Some(&labels),
                ..Default::default()
            })
            .class
    };
    assert_eq!(resolve("postgres:16", "{}"), "high");
    assert_eq!(resolve("busybox", "{}"), "normal");
    assert_eq!(resolve("busybox", r#"{"forge.class":"browser"}"#), "browser");
    assert_eq!(resolve("busybox", r#"{"forge.class":"no-such"}"#), "normal");
    assert_eq!(
        resolve(
            "busybox",
            r#"{"com.docker.compose.project":"shop","com.docker.compose.service":"web"}"#
        ),
        "browser"
    );
    assert_eq!(
        resolve(
            "busybox",
            r#"{"com.docker.compose.project":"blog","com.docker.compose.service":"web"}"#
        ),
        "low"
    );
    // The high class from the defaults never sleeps.
    let high = loaded.policy.classes.get("high").unwrap();
    assert_eq!(high.sleep_policy.enabled, Some(false));
}

#[test]
fn root_users() {
    for user in ["root", "0", "0:0", "root:root", "00", "+0", "-0", "", ":", ":65534"] {
        assert!(is_root_user(user), "{user}");
    }
    for user in ["1000", "65534:65534", "app", "1000:0"] {
        assert!(!is_root_user(user), "{user}");
    }
}

#[test]
fn socket_modes() {
    assert_eq!(parse_socket_mode("0660"), Some(0o660));
    assert_eq!(parse_socket_mode("660"), Some(0o660));
    assert_eq!(parse_socket_mode("0o600"), Some(0o600));
    assert_eq!(parse_socket_mode("rw"), None);
    assert_eq!(parse_socket_mode("0999"), None);
}

/// Every key of `timeouts`, `standards` and `auto_sleep` (and every
/// top-level key) has a row in README.md's configuration tables.
#[test]
fn readme_documents_every_key() {
    let readme = include_str!("../../README.md");
    let loaded = Config::load(None).unwrap();
    let value = serde_json::to_value(&loaded.config).unwrap();
    let mut keys = Vec::new();
    fn walk(prefix: &str, value: &serde_json::Value, keys: &mut Vec<String>) {
        if let serde_json::Value::Object(map) = value {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                keys.push(path.clone());
                // Maps keyed by the operator's names and lists are
                // documented by their item schema, not walked.
                let nested = ["timeouts", "standards", "auto_sleep", "metrics"];
                if nested.iter().any(|n| path == *n || path.starts_with(&format!("{n}."))) && !path.ends_with(".exempt")
                {
                    walk(&path, child, keys);
                }
            }
        }
    }
    walk("", &value, &mut keys);
    assert!(keys.len() > 40, "walked too few keys: {keys:?}");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|key| !readme.contains(&format!("| `{key}` |")))
        .collect();
    assert!(missing.is_empty(), "README.md has no table row for: {missing:?}");
}

fn layer(yaml: &str) -> Result<LoadedConfig, ConfigError> {
    Config::from_yaml_over_default(yaml, "site.yml")
}

#[test]
fn a_config_file_is_a_layer_over_the_embedded_default() {
    let loaded = layer("listen: /run/site/docker.sock\n").unwrap();
    let default = Config::load(None).unwrap();
    assert_eq!(loaded.config.listen, PathBuf::from("/run/site/docker.sock"));
    // Everything it does not mention is shim.yml's, not an empty default.
    assert_eq!(loaded.config.standards.defaults.user, Some("65534:65534".to_string()));
    assert_eq!(
        loaded.config.standards.defaults.memory,
        default.config.standards.defaults.memory
    );
    assert_eq!(loaded.config.classify.len(), default.config.classify.len());
    assert!(loaded.policy.classes.contains_key("browser"));
    assert_eq!(layer("").unwrap().config.listen, default.config.listen);
}

#[test]
fn layer_merges_mappings_and_replaces_lists() {
    let loaded = layer(
        "standards:\n  defaults:\n    memory: 256M\n    tmpfs: [/scratch]\n\
         classes:\n  web:\n    sleep_policy: { enabled: true, idle_timeout: 10m }\n\
         classify: []\n",
    )
    .unwrap();
    let defaults = &loaded.config.standards.defaults;
    assert_eq!(defaults.memory.map(|m| m.0), Some(256 << 20));
    assert_eq!(defaults.tmpfs, vec!["/scratch".to_string()]);
    // Siblings of a changed key keep their defaults.
    assert_eq!(defaults.user, Some("65534:65534".to_string()));
    assert!(loaded.policy.classes.contains_key("web"));
    assert!(loaded.policy.classes.contains_key("normal"));
    assert!(loaded.config.classify.is_empty());
}

#[test]
fn layer_errors_point_into_the_users_file() {
    let error = layer("listen: /run/x.sock\nstandards:\n  bogus: 1\n").unwrap_err();
    let problem = &error.problems[0];
    assert_eq!(problem.file, "site.yml");
    assert_eq!(problem.position.map(|p| p.0), Some(3), "{error}");
    // A check across keys sees the merged values: the default memory is
    // 512M, below this reservation.
    let error = layer("standards:\n  defaults:\n    memory_reservation: 1G\n").unwrap_err();
    let problem = &error.problems[0];
    assert_eq!(problem.key.as_deref(), Some("standards.defaults.memory_reservation"));
    assert_eq!(problem.position.map(|p| p.0), Some(3), "{error}");
}

/// Each rule is named after its switch under `standards:`, so README.md's
/// table (kept complete by `readme_documents_every_key`) documents every
/// rule; and every `standards.deny` switch is a rule an exemption can name.
#[test]
fn rule_names_are_the_keys_of_their_switches() {
    let readme = include_str!("../../README.md");
    let standards = serde_json::to_value(&Config::load(None).unwrap().config.standards).unwrap();
    for name in RULE_NAMES {
        let switch = name
            .split('.')
            .try_fold(&standards, |value, part| value.as_object()?.get(part));
        assert!(switch.is_some(), "rule {name} is not a key of standards");
        assert!(
            readme.contains(&format!("| `standards.{name}` |")),
            "README.md has no table row for rule {name}"
        );
    }
    let mut sorted = RULE_NAMES.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), RULE_NAMES.len(), "a rule name is listed twice");
    let deny = standards["deny"].as_object().expect("standards.deny is a mapping");
    assert!(!deny.is_empty());
    for key in deny.keys() {
        let name = format!("deny.{key}");
        assert!(RULE_NAMES.contains(&name.as_str()), "standards.{name} has no rule name");
    }
}

#[test]
fn exemptions_never_match_an_image_by_name() {
    let err = load("standards: { exempt: [ { match: { image: 'postgres*' }, rules: [non_root] } ] }").unwrap_err();
    let problem = &err.problems[0];
    assert_eq!(problem.key.as_deref(), Some("standards.exempt[0].match.image"), "{err}");
    assert!(problem.message.contains("docker tag"), "{err}");
    // By digest or id it loads; classes may still match by name.
    let id = format!("sha256:{}", "0".repeat(64));
    load(&format!(
        "standards: {{ exempt: [ {{ match: {{ pulled_from: [postgres, 'ghcr.io/acme/db'] }}, rules: [non_root] }},
                                 {{ match: {{ image_id: '{id}' }}, rules: [all] }} ] }}
classify: [ {{ match: {{ image: 'postgres*' }}, class: high }} ]"
    ))
    .unwrap();
    for bad in [
        "{ pulled_from: 'postgres:16' }",
        "{ image_id: abc }",
        "{ pulled_from: 'postgres*' }",
    ] {
        let err = load(&format!(
            "standards: {{ exempt: [ {{ match: {bad}, rules: [non_root] }} ] }}"
        ))
        .unwrap_err();
        assert_eq!(
            err.problems[0].key.as_deref(),
            Some("standards.exempt[0].match"),
            "{bad}: {err}"
        );
    }
}

/// `metrics.listen` is off unless set; when set it must be an IP address
/// and a port, and a mistake is placed at its line.
#[test]
fn metrics_listen_is_an_ip_and_port() {
    assert_eq!(Config::load(None).unwrap().config.metrics.listen_addr(), None);
    let loaded = load("metrics:\n  listen: 127.0.0.1:9464\n").unwrap();
    assert_eq!(
        loaded.config.metrics.listen_addr(),
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert!(load("metrics:\n  listen: \"[::1]:9464\"\n").is_ok());
    for bad in ["localhost:9464", "127.0.0.1", "127.0.0.1:0", "9464"] {
        let err = load(&format!("metrics:\n  listen: \"{bad}\"\n")).unwrap_err();
        let problem = &err.problems[0];
        assert_eq!(problem.key.as_deref(), Some("metrics.listen"), "{bad}: {err}");
        assert_eq!(problem.position.map(|p| p.0), Some(2), "{bad}: {err}");
    }
    assert!(load("metrics:\n  lisen: 127.0.0.1:9464\n").is_err());
}
