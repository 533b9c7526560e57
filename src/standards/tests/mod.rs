//! Table-driven tests of the standards: a config, a request body, and what
//! must come out (a body and the rules that changed it, a denial, or a 400).
//! The configs and helpers live here; each file tests one concern.

mod bodies;
mod build;
mod create_defaults;
mod create_deny;
mod create_limits;
mod engine;
mod exec;
mod fitted;
mod service;
mod update;
mod volume;

use serde_json::Value;

use super::*;
use crate::config::Config;

/// Every default and limit on; no classes with resources, so the defaults
/// are what applies.
const FULL: &str = r#"
standards:
  defaults:
    memory: 512M
    memory_reservation: 128M
    cpus: 1
    pids_limit: 512
    read_only_rootfs: true
    tmpfs: [/tmp, /run]
    cap_drop: [ALL]
    no_new_privileges: true
    user: "65534:65534"
  limits: { memory: 4G, cpus: 2, pids_limit: 4096, on_exceed: deny }
  cap_add_allowed: [CHOWN, NET_BIND_SERVICE]
"#;

/// Only the deny rules (on by default) and non-root (set_user by default).
const DENY_ONLY: &str = "";

const MEMORY: &str = "standards: { defaults: { memory: 512M, memory_reservation: 128M } }";
const CPUS: &str = "standards: { defaults: { cpus: 1 } }";
const PIDS: &str = "standards: { defaults: { pids_limit: 512 } }";
const LIMITS: &str = "standards: { limits: { memory: 4G, cpus: 2, pids_limit: 4096 } }";
const CLAMP: &str = "standards: { limits: { memory: 4G, cpus: 2, pids_limit: 4096, on_exceed: clamp } }";
const READ_ONLY: &str = "standards: { defaults: { read_only_rootfs: true, tmpfs: [/tmp, /run] } }";

/// The config; the hardening rules are `always` unless `yaml` says
/// otherwise (these tables test what the rules do, `fitted` tests when).
fn load(yaml: &str) -> LoadedConfig {
    let mut loaded = Config::from_yaml(yaml, "test.yml").unwrap_or_else(|e| panic!("test config: {e}"));
    if !yaml.contains("hardening") {
        loaded.config.standards.hardening = crate::config::Hardening::always();
    }
    loaded
}

/// What a request must come to.
enum Expect<'a> {
    /// The forwarded body, and the rules of the changes, in order.
    Body(&'a str, &'a [&'a str]),
    /// Denied by this rule.
    Denied(&'a str),
    /// 400, with this in the message.
    Bad(&'a str),
}
use Expect::*;

fn ctx(image_user: Option<&str>) -> CreateContext {
    CreateContext {
        name: None,
        image_user: image_user.map(str::to_string),
        passwd: Some(crate::standards::user::Passwd::Read(std::sync::Arc::from(
            &b"root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\ntoor:x:0:0::/:/bin/sh\n"[..],
        ))),
        ..CreateContext::default()
    }
}

/// A create through `config`, with an image that runs as uid 1000.
fn check(config: &str, input: &str, expect: Expect<'_>) {
    check_with(config, &ctx(Some("1000")), input, expect)
}

fn check_with(config: &str, ctx: &CreateContext, input: &str, expect: Expect<'_>) {
    let cfg = load(config);
    let result = parse_body(input.as_bytes())
        .map_err(Rejection::from)
        .and_then(|body| apply_create(&cfg, ctx, body));
    assert_outcome(input, result, expect);
}

fn assert_outcome(input: &str, result: Result<Outcome, Rejection>, expect: Expect<'_>) {
    match (result, expect) {
        (Ok(outcome), Body(expected, rules)) => {
            let expected: Value = serde_json::from_str(expected).expect("expected JSON parses");
            assert_eq!(
                outcome.body, expected,
                "body for {input}\nchanges: {:#?}",
                outcome.changes
            );
            let got: Vec<&str> = outcome.changes.iter().map(|c| c.rule).collect();
            assert_eq!(got, rules, "change rules for {input}\nchanges: {:#?}", outcome.changes);
        }
        (Err(Rejection::Denied(denial)), Denied(rule)) => {
            assert_eq!(denial.rule, rule, "denial for {input}: {denial}");
        }
        (Err(Rejection::BadRequest(bad)), Bad(part)) => {
            assert!(
                bad.message.contains(part),
                "400 for {input} should mention {part:?}: {bad}"
            );
        }
        (got, _) => panic!("unexpected result for {input}: {got:#?}"),
    }
}

/// The container an update or exec is for.
fn identity() -> ContainerIdentity<'static> {
    ContainerIdentity {
        name: Some("/web"),
        image: Some("app"),
        labels: None,
        ..Default::default()
    }
}
