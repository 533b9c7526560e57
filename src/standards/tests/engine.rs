//! What the engine does for every endpoint: modes, exemptions, denial
//! messages, rule names.

use serde_json::json;

use super::*;
use crate::config::RULE_NAMES;

// ---------------------------------------------------------------------------
// Modes

#[test]
fn audit_mode_changes_nothing_and_says_what_it_would_do() {
    let config = FULL.replace("standards:\n", "standards:\n  mode: audit\n");
    let cfg = load(&config);
    let input = json!({"Image": "app", "HostConfig": {"Privileged": true, "Memory": 0}});
    let outcome = apply_create(&cfg, &ctx(Some("root")), input.clone()).expect("audit never denies");
    assert_eq!(outcome.body, input);
    let warnings: Vec<String> = outcome.changes.iter().map(Change::warning).collect();
    assert_eq!(
        warnings[0],
        "forge-shim: would deny privileged mode (HostConfig.Privileged) (standards.deny.privileged)"
    );
    assert!(warnings
        .contains(&"forge-shim: would set user 65534:65534 (the image runs as root) (standards.non_root)".to_string()));
    assert!(warnings.contains(&"forge-shim: would set memory limit 512M (standards.defaults.memory)".to_string()));
    assert_eq!(outcome.changes.len(), 9, "{warnings:#?}");
    // Duplicates are still a 400: dockerd would misread the body either way.
    assert!(parse_body(br#"{"HostConfig":{"Privileged":false,"privileged":true}}"#).is_err());
}

#[test]
fn off_mode_passes_everything() {
    let config = FULL.replace("standards:\n", "standards:\n  mode: off\n");
    let body = r#"{"Image":"app","User":"root","HostConfig":{"Privileged":true,"Binds":["/:/host"]}}"#;
    check(&config, body, Body(body, &[]));
}

// ---------------------------------------------------------------------------
// Exemptions

#[test]
fn exemptions_by_image_digest_and_compose_service() {
    let config = r#"
standards:
  exempt:
    - match: { pulled_from: postgres }
      rules: [non_root, deny.privileged]
    - match: { project: shop, service: agent }
      rules: [deny.docker_socket]
    - match: { name: "debug-*" }
      rules: [all]
"#;
    let root_privileged = r#"{"Image":"postgres:16","User":"root","HostConfig":{"Privileged":true}}"#;
    let pulled = CreateContext {
        repo_digests: vec![format!("postgres@sha256:{}", "0".repeat(64))],
        ..ctx(Some("1000"))
    };
    check_with(config, &pulled, root_privileged, Body(root_privileged, &[]));
    // The same name, tagged locally: no digest, no exemption.
    check(
        config,
        r#"{"Image":"postgres:16","User":"root"}"#,
        Denied(rule::NON_ROOT),
    );
    check(
        config,
        r#"{"Image":"postgres:16","HostConfig":{"Privileged":true}}"#,
        Denied(rule::DENY_PRIVILEGED),
    );
    let agent = r#"{"Image":"agent","Labels":{"com.docker.compose.project":"shop","com.docker.compose.service":"agent"},
        "HostConfig":{"Binds":["/var/run/docker.sock:/var/run/docker.sock"]}}"#;
    check(config, agent, Body(agent, &[]));
    let other_project = agent.replace("\"shop\"", "\"blog\"");
    check(config, &other_project, Denied(rule::DENY_DOCKER_SOCKET));
    // An exemption covers only its rules.
    check(
        config,
        &agent.replace("\"Binds\"", "\"Privileged\":true,\"Binds\""),
        Denied(rule::DENY_PRIVILEGED),
    );
    let named = CreateContext {
        name: Some("debug-1".into()),
        image_user: Some("root".into()),
        ..CreateContext::default()
    };
    let anything = r#"{"Image":"x","User":"0","HostConfig":{"Privileged":true,"PidMode":"host"}}"#;
    check_with(config, &named, anything, Body(anything, &[]));
}

#[test]
fn label_exemptions_only_when_allowed() {
    let body = r#"{"Image":"x","Labels":{"forge.exempt":"deny.privileged, deny.host_pid"},
        "HostConfig":{"Privileged":true,"PidMode":"host"}}"#;
    check(DENY_ONLY, body, Denied(rule::DENY_PRIVILEGED));
    let allowed = "standards: { allow_label_exemptions: true }";
    check(allowed, body, Body(body, &[]));
    // The hint names the label only when it works.
    let cfg = load(allowed);
    let denial = apply_create(&cfg, &ctx(Some("1000")), json!({"HostConfig": {"IpcMode": "host"}})).unwrap_err();
    assert!(
        denial.to_string().contains("set the label forge.exempt=deny.host_ipc"),
        "{denial}"
    );
    let cfg = load(DENY_ONLY);
    let denial = apply_create(&cfg, &ctx(Some("1000")), json!({"HostConfig": {"IpcMode": "host"}})).unwrap_err();
    assert!(!denial.to_string().contains("forge.exempt"), "{denial}");
}

#[test]
fn denial_message_names_the_rule_and_the_way_out() {
    let cfg = load(DENY_ONLY);
    let rejection = apply_create(&cfg, &ctx(Some("1000")), json!({"HostConfig": {"Privileged": true}})).unwrap_err();
    assert!(matches!(rejection, Rejection::Denied(_)), "{rejection:?}");
    assert_eq!(
        rejection.to_string(),
        "standards: privileged mode (HostConfig.Privileged) is not allowed (rule standards.deny.privileged); \
         ask the operator to exempt this container from deny.privileged (standards.exempt in the forge-shim config)"
    );
    let cfg = load(LIMITS);
    let rejection = apply_create(&cfg, &ctx(Some("1000")), json!({"HostConfig": {"Memory": 8i64 << 30}})).unwrap_err();
    assert_eq!(
        rejection.to_string(),
        "standards: a memory limit of 8G (HostConfig.Memory, above the maximum) is not allowed \
         (rule standards.limits.memory); ask for at most 4G, or ask the operator to exempt this container \
         from limits.memory (standards.exempt in the forge-shim config)"
    );
    let bad = parse_body(b"[]").map_err(Rejection::from).unwrap_err();
    assert!(matches!(bad, Rejection::BadRequest(_)), "{bad:?}");
}

#[test]
fn embedded_config_on_a_compose_style_body() {
    // With the hardening rules `always`: every standard at once.
    let mut cfg = Config::load(None).expect("embedded shim.yml");
    cfg.config.standards.hardening = crate::config::Hardening::always();
    let body = json!({
        "Image": "ghcr.io/acme/api:1.2",
        "Labels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "api"},
        "HostConfig": {"Memory": 0, "NanoCpus": 0, "PidsLimit": null, "ReadonlyRootfs": false,
                       "Binds": ["/srv/shop/uploads:/app/uploads:rw"], "NetworkMode": "shop_default"}
    });
    let outcome = apply_create(&cfg, &ctx(Some("")), body).expect("allowed");
    let host = &outcome.body["HostConfig"];
    assert_eq!(outcome.body["User"], json!("65534:65534"));
    assert_eq!(host["Memory"], json!(512 << 20));
    assert_eq!(host["NanoCpus"], json!(1_000_000_000));
    assert_eq!(host["PidsLimit"], json!(512));
    assert_eq!(host["ReadonlyRootfs"], json!(true));
    assert_eq!(host["Tmpfs"], json!({"/tmp": "", "/run": ""}));
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges=true"]));
    assert_eq!(outcome.changes.len(), 8, "{:#?}", outcome.changes);

    // As embedded (`fitted`), an image with no profile yet gets the
    // always-rules, and the hardening rules are reported, not applied.
    let fitted = Config::load(None).expect("embedded shim.yml");
    let body = json!({"Image": "ghcr.io/acme/api:1.2", "HostConfig": {"Binds": ["/srv/shop/uploads:/app/uploads:rw"]}});
    let outcome = apply_create(&fitted, &ctx(Some("")), body).expect("allowed");
    let host = &outcome.body["HostConfig"];
    assert_eq!(outcome.body.get("User"), None);
    assert_eq!(host.get("ReadonlyRootfs"), None);
    assert_eq!(host.get("CapDrop"), None);
    assert_eq!(host["Memory"], json!(512 << 20));
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges=true"]));
    assert_eq!(outcome.notes.len(), 3, "{:#?}", outcome.notes);
    assert!(outcome
        .notes
        .iter()
        .all(|n| n.message.contains("not applied yet: learning")));

    // A local tag `postgres:16` of anything is in class high (a class is
    // not a privilege) and gets every standard.
    let outcome = apply_create(&cfg, &ctx(Some("")), json!({"Image": "postgres:16"})).expect("allowed");
    assert_eq!(outcome.body["User"], json!("65534:65534"));
    assert_eq!(outcome.body["HostConfig"]["Memory"], json!(1 << 30));
    assert_eq!(outcome.body["HostConfig"]["ReadonlyRootfs"], json!(true));
}

#[test]
fn rule_names_are_the_configs() {
    for name in [
        rule::DEFAULTS_MEMORY,
        rule::DEFAULTS_MEMORY_RESERVATION,
        rule::DEFAULTS_CPUS,
        rule::DEFAULTS_PIDS_LIMIT,
        rule::DEFAULTS_READ_ONLY_ROOTFS,
        rule::DEFAULTS_CAP_DROP,
        rule::DEFAULTS_NO_NEW_PRIVILEGES,
        rule::NON_ROOT,
        rule::LIMITS_MEMORY,
        rule::LIMITS_CPUS,
        rule::LIMITS_PIDS_LIMIT,
        rule::DENY_PRIVILEGED,
        rule::DENY_DOCKER_SOCKET,
        rule::DENY_HOST_PID,
        rule::DENY_HOST_IPC,
        rule::DENY_HOST_NETWORK,
        rule::DENY_CAP_ADD,
        rule::DENY_DEVICES,
        rule::DENY_SECCOMP_UNCONFINED,
        rule::DENY_APPARMOR_UNCONFINED,
    ] {
        assert!(RULE_NAMES.contains(&name), "{name}");
    }
}

#[test]
fn one_warning_sums_up_a_create() {
    let change = |rule: &'static str, message: &str| Change {
        rule,
        message: message.to_string(),
    };
    assert_eq!(summary_warning(&[]), None);
    // One change: as it is.
    let one = [change(rule::DEFAULTS_MEMORY, "set memory limit 512M")];
    assert_eq!(
        summary_warning(&one).unwrap(),
        "forge-shim: set memory limit 512M (standards.defaults.memory)"
    );
    // Several: the count, each rule once, where the details are.
    let many = [
        change(rule::NON_ROOT, "set user 65534:65534"),
        change(rule::DEFAULTS_MEMORY, "set memory limit 512M"),
        change(rule::NON_ROOT, "pinned user"),
    ];
    let line = summary_warning(&many).unwrap();
    assert!(
        line.starts_with("forge-shim: 3 changes made by the standards (non_root, defaults.memory);"),
        "{line}"
    );
    assert!(
        line.contains("forge-shim audit") && line.contains("standards.warnings: each"),
        "{line}"
    );
    assert!(!line.contains('\n'));
    let audit = [
        change(rule::NON_ROOT, "would set user 65534:65534"),
        change(rule::DEFAULTS_MEMORY, "would set memory limit 512M"),
    ];
    assert!(summary_warning(&audit).unwrap().contains("2 changes would be made"));
}
