//! Table-driven tests of the standards: a config, a request body, and what
//! must come out (a body and the rules that changed it, a denial, or a 400).

use serde_json::{json, Value};

use super::*;
use crate::config::{Config, RULE_NAMES};

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

fn load(yaml: &str) -> LoadedConfig {
    Config::from_yaml(yaml, "test.yml").unwrap_or_else(|e| panic!("test config: {e}"))
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
    }
}

/// A create through `config`, with an image that runs as user `app`.
fn check(config: &str, input: &str, expect: Expect<'_>) {
    check_with(config, &ctx(Some("app")), input, expect)
}

fn check_with(config: &str, ctx: &CreateContext, input: &str, expect: Expect<'_>) {
    let cfg = load(config);
    let result = parse_create_body(input.as_bytes())
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

// ---------------------------------------------------------------------------
// Defaults

#[test]
fn full_defaults_fill_an_empty_request() {
    check_with(
        FULL,
        &ctx(Some("root")),
        r#"{"Image":"app"}"#,
        Body(
            r#"{"Image":"app","User":"65534:65534","HostConfig":{
                "Memory":536870912,"MemoryReservation":134217728,"NanoCpus":1000000000,"PidsLimit":512,
                "ReadonlyRootfs":true,"Tmpfs":{"/tmp":"","/run":""},"CapDrop":["ALL"],
                "SecurityOpt":["no-new-privileges=true"]}}"#,
            &[
                rule::NON_ROOT,
                rule::DEFAULTS_MEMORY,
                rule::DEFAULTS_MEMORY_RESERVATION,
                rule::DEFAULTS_CPUS,
                rule::DEFAULTS_PIDS_LIMIT,
                rule::DEFAULTS_READ_ONLY_ROOTFS,
                rule::DEFAULTS_CAP_DROP,
                rule::DEFAULTS_NO_NEW_PRIVILEGES,
            ],
        ),
    );
}

#[test]
fn go_zero_values_count_as_unset() {
    // What the docker CLI sends for `docker run app`.
    check(
        FULL,
        r#"{"User":"","Image":"app","HostConfig":{"Memory":0,"MemoryReservation":0,"MemorySwap":0,
            "NanoCpus":0,"CpuQuota":0,"CpuPeriod":0,"PidsLimit":null,"ReadonlyRootfs":false,
            "Privileged":false,"CapAdd":null,"CapDrop":null,"SecurityOpt":null,"Tmpfs":null,
            "Binds":null,"Mounts":null,"Devices":[],"DeviceCgroupRules":null,"NetworkMode":"default"}}"#,
        Body(
            r#"{"User":"","Image":"app","HostConfig":{"Memory":536870912,"MemoryReservation":134217728,
            "MemorySwap":0,"NanoCpus":1000000000,"CpuQuota":0,"CpuPeriod":0,"PidsLimit":512,
            "ReadonlyRootfs":true,"Privileged":false,"CapAdd":null,"CapDrop":["ALL"],
            "SecurityOpt":["no-new-privileges=true"],"Tmpfs":{"/tmp":"","/run":""},
            "Binds":null,"Mounts":null,"Devices":[],"DeviceCgroupRules":null,"NetworkMode":"default"}}"#,
            &[
                rule::DEFAULTS_MEMORY,
                rule::DEFAULTS_MEMORY_RESERVATION,
                rule::DEFAULTS_CPUS,
                rule::DEFAULTS_PIDS_LIMIT,
                rule::DEFAULTS_READ_ONLY_ROOTFS,
                rule::DEFAULTS_CAP_DROP,
                rule::DEFAULTS_NO_NEW_PRIVILEGES,
            ],
        ),
    );
}

#[test]
fn explicit_values_are_kept() {
    let body = r#"{"Image":"app","User":"1000","HostConfig":{"Memory":1073741824,"MemoryReservation":268435456,
        "NanoCpus":1500000000,"PidsLimit":100,"ReadonlyRootfs":true,"CapDrop":["all"],
        "SecurityOpt":["no-new-privileges"]}}"#;
    check(FULL, body, Body(body, &[]));
}

#[test]
fn resource_defaults_and_consistency() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // Memory below the default reservation: the reservation follows it down.
        (
            MEMORY,
            r#"{"HostConfig":{"Memory":67108864}}"#,
            r#"{"HostConfig":{"Memory":67108864,"MemoryReservation":67108864}}"#,
            &[rule::DEFAULTS_MEMORY_RESERVATION],
        ),
        // An explicit reservation above the default memory raises the limit.
        (
            MEMORY,
            r#"{"HostConfig":{"MemoryReservation":1073741824}}"#,
            r#"{"HostConfig":{"MemoryReservation":1073741824,"Memory":1073741824}}"#,
            &[rule::DEFAULTS_MEMORY],
        ),
        // MemorySwap below the default memory caps it.
        (
            MEMORY,
            r#"{"HostConfig":{"MemorySwap":268435456}}"#,
            r#"{"HostConfig":{"MemorySwap":268435456,"Memory":268435456,"MemoryReservation":134217728}}"#,
            &[rule::DEFAULTS_MEMORY, rule::DEFAULTS_MEMORY_RESERVATION],
        ),
        // Unlimited swap (-1) is the user's; memory gets its default.
        (
            MEMORY,
            r#"{"HostConfig":{"MemorySwap":-1}}"#,
            r#"{"HostConfig":{"MemorySwap":-1,"Memory":536870912,"MemoryReservation":134217728}}"#,
            &[rule::DEFAULTS_MEMORY, rule::DEFAULTS_MEMORY_RESERVATION],
        ),
        // CpuQuota set: no NanoCpus default (dockerd rejects both).
        (
            CPUS,
            r#"{"HostConfig":{"CpuQuota":50000,"NanoCpus":0}}"#,
            r#"{"HostConfig":{"CpuQuota":50000,"NanoCpus":0}}"#,
            &[],
        ),
        // CpuPeriod alone: the default goes to CpuQuota for that period.
        (
            CPUS,
            r#"{"HostConfig":{"CpuPeriod":50000}}"#,
            r#"{"HostConfig":{"CpuPeriod":50000,"CpuQuota":50000}}"#,
            &[rule::DEFAULTS_CPUS],
        ),
        // A CpuQuota of -1 (unlimited) without a maximum is the user's.
        (
            CPUS,
            r#"{"HostConfig":{"CpuQuota":-1}}"#,
            r#"{"HostConfig":{"CpuQuota":-1}}"#,
            &[],
        ),
        // PidsLimit: 0 and null are unset; -1 is an explicit "unlimited".
        (
            PIDS,
            r#"{"HostConfig":{"PidsLimit":0}}"#,
            r#"{"HostConfig":{"PidsLimit":512}}"#,
            &[rule::DEFAULTS_PIDS_LIMIT],
        ),
        (
            PIDS,
            r#"{"HostConfig":{"PidsLimit":-1}}"#,
            r#"{"HostConfig":{"PidsLimit":-1}}"#,
            &[],
        ),
        // HostConfig null is replaced; missing is added.
        (
            PIDS,
            r#"{"HostConfig":null}"#,
            r#"{"HostConfig":{"PidsLimit":512}}"#,
            &[rule::DEFAULTS_PIDS_LIMIT],
        ),
        // Nothing to set: no HostConfig appears.
        (DENY_ONLY, r#"{"Image":"app"}"#, r#"{"Image":"app"}"#, &[]),
    ];
    for (config, input, output, rules) in cases {
        check(config, input, Body(output, rules));
    }
}

#[test]
fn read_only_root_gets_tmpfs_where_nothing_is_mounted() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            r#"{}"#,
            r#"{"HostConfig":{"ReadonlyRootfs":true,"Tmpfs":{"/tmp":"","/run":""}}}"#,
            &[rule::DEFAULTS_READ_ONLY_ROOTFS],
        ),
        (
            r#"{"HostConfig":{"Tmpfs":{"/tmp/":"size=1m"},"Binds":["data:/run"]}}"#,
            r#"{"HostConfig":{"Tmpfs":{"/tmp/":"size=1m"},"Binds":["data:/run"],"ReadonlyRootfs":true}}"#,
            &[rule::DEFAULTS_READ_ONLY_ROOTFS],
        ),
        (
            r#"{"Volumes":{"/tmp":{}},"HostConfig":{"Mounts":[{"Type":"volume","Target":"/run"}]}}"#,
            r#"{"Volumes":{"/tmp":{}},"HostConfig":{"Mounts":[{"Type":"volume","Target":"/run"}],"ReadonlyRootfs":true}}"#,
            &[rule::DEFAULTS_READ_ONLY_ROOTFS],
        ),
        // Read-only by the user's own choice: their tmpfs layout stands.
        (
            r#"{"HostConfig":{"ReadonlyRootfs":true}}"#,
            r#"{"HostConfig":{"ReadonlyRootfs":true}}"#,
            &[],
        ),
    ];
    for (input, output, rules) in cases {
        check(READ_ONLY, input, Body(output, rules));
    }
}

#[test]
fn cap_drop_and_no_new_privileges() {
    let config = "standards: { defaults: { cap_drop: [ALL], no_new_privileges: true } }";
    let cases: &[(&str, &str, &[&str])] = &[
        (
            r#"{"HostConfig":{"CapDrop":["NET_RAW"]}}"#,
            r#"{"HostConfig":{"CapDrop":["NET_RAW","ALL"],"SecurityOpt":["no-new-privileges=true"]}}"#,
            &[rule::DEFAULTS_CAP_DROP, rule::DEFAULTS_NO_NEW_PRIVILEGES],
        ),
        // An explicit no-new-privileges=false is a choice, not a zero value.
        (
            r#"{"HostConfig":{"CapDrop":["CAP_ALL"],"SecurityOpt":["no-new-privileges:false"]}}"#,
            r#"{"HostConfig":{"CapDrop":["CAP_ALL"],"SecurityOpt":["no-new-privileges:false"]}}"#,
            &[],
        ),
    ];
    for (input, output, rules) in cases {
        check(config, input, Body(output, rules));
    }
}

#[test]
fn class_and_service_resources_override_defaults() {
    let config = r#"
standards: { defaults: { memory: 512M, cpus: 1 } }
classes:
  small: { resources: { memory: 128M } }
services:
  shop/api: { resources: { memory: 256M } }
  worker: { class: small }
"#;
    let cfg = load(config);
    let create = |labels: Value| {
        let body = json!({"Image": "app", "Labels": labels});
        apply_create(&cfg, &ctx(Some("app")), body).expect("allowed")
    };
    let api = create(json!({"com.docker.compose.project": "shop", "com.docker.compose.service": "api"}));
    assert_eq!(api.body["HostConfig"]["Memory"], json!(256 << 20));
    assert_eq!(api.body["HostConfig"]["NanoCpus"], json!(1_000_000_000));
    assert_eq!(
        api.changes[0].message,
        "set memory limit 256M for service entry shop/api"
    );
    assert_eq!(api.changes[1].message, "set CPU limit 1");

    let worker = create(json!({"com.docker.compose.service": "worker"}));
    assert_eq!(worker.body["HostConfig"]["Memory"], json!(128 << 20));
    assert_eq!(worker.changes[0].message, "set memory limit 128M for class small");

    let other = create(json!({"forge.class": "small"}));
    assert_eq!(other.body["HostConfig"]["Memory"], json!(128 << 20));
    let plain = create(json!({}));
    assert_eq!(plain.body["HostConfig"]["Memory"], json!(512 << 20));
    assert_eq!(
        plain.changes[0].warning(),
        "forge-shim: set memory limit 512M (standards.defaults.memory)"
    );
}

// ---------------------------------------------------------------------------
// Non-root

#[test]
fn non_root() {
    let set = "standards: { non_root: { when_image_runs_as_root: set_user } }";
    let deny = "standards: { non_root: { when_image_runs_as_root: deny } }";
    let allow = "standards: { non_root: { when_image_runs_as_root: allow, deny_explicit_root: false } }";
    let with_user = r#"{"Image":"app","User":"65534:65534"}"#;
    let cases: &[(&str, Option<&str>, &str, Expect<'_>)] = &[
        (
            set,
            Some("root"),
            r#"{"Image":"app"}"#,
            Body(with_user, &[rule::NON_ROOT]),
        ),
        (
            set,
            Some(""),
            r#"{"Image":"app","User":""}"#,
            Body(with_user, &[rule::NON_ROOT]),
        ),
        (
            set,
            Some("0:0"),
            r#"{"Image":"app"}"#,
            Body(with_user, &[rule::NON_ROOT]),
        ),
        // Unknown image user: the safe side.
        (set, None, r#"{"Image":"app"}"#, Body(with_user, &[rule::NON_ROOT])),
        (set, Some("node"), r#"{"Image":"app"}"#, Body(r#"{"Image":"app"}"#, &[])),
        (deny, Some("root"), r#"{"Image":"app"}"#, Denied(rule::NON_ROOT)),
        (
            allow,
            Some("root"),
            r#"{"Image":"app"}"#,
            Body(r#"{"Image":"app"}"#, &[]),
        ),
        // Explicit root, however it is spelled.
        (set, Some("node"), r#"{"User":"root"}"#, Denied(rule::NON_ROOT)),
        (set, Some("node"), r#"{"User":"0"}"#, Denied(rule::NON_ROOT)),
        (set, Some("node"), r#"{"User":"000:1000"}"#, Denied(rule::NON_ROOT)),
        (set, Some("node"), r#"{"User":"root:root"}"#, Denied(rule::NON_ROOT)),
        (set, Some("node"), r#"{"User":"+0"}"#, Denied(rule::NON_ROOT)),
        (set, Some("node"), r#"{"user":"0"}"#, Denied(rule::NON_ROOT)),
        (
            allow,
            Some("node"),
            r#"{"User":"root"}"#,
            Body(r#"{"User":"root"}"#, &[]),
        ),
        // Group 0 is not user 0.
        (
            set,
            Some("root"),
            r#"{"User":"1000:0"}"#,
            Body(r#"{"User":"1000:0"}"#, &[]),
        ),
    ];
    for (config, image_user, input, expect) in cases {
        let expect = match expect {
            Body(body, rules) => Body(body, rules),
            Denied(rule) => Denied(rule),
            Bad(part) => Bad(part),
        };
        check_with(config, &ctx(*image_user), input, expect);
    }
}

// ---------------------------------------------------------------------------
// Limits

#[test]
fn limits_deny() {
    let cases: &[(&str, &str)] = &[
        (r#"{"HostConfig":{"Memory":8589934592}}"#, rule::LIMITS_MEMORY),
        (
            r#"{"HostConfig":{"Memory":1073741824,"MemoryReservation":8589934592}}"#,
            rule::LIMITS_MEMORY,
        ),
        (r#"{"HostConfig":{"NanoCpus":4000000000}}"#, rule::LIMITS_CPUS),
        (
            r#"{"HostConfig":{"CpuQuota":400000,"CpuPeriod":100000}}"#,
            rule::LIMITS_CPUS,
        ),
        // The same quota is 40 CPUs at a 10ms period.
        (
            r#"{"HostConfig":{"CpuQuota":100000,"CpuPeriod":10000}}"#,
            rule::LIMITS_CPUS,
        ),
        (r#"{"HostConfig":{"CpuQuota":-1}}"#, rule::LIMITS_CPUS),
        (
            r#"{"HostConfig":{"CpuQuota":-1,"NanoCpus":1000000000}}"#,
            rule::LIMITS_CPUS,
        ),
        (r#"{"HostConfig":{"PidsLimit":10000}}"#, rule::LIMITS_PIDS_LIMIT),
        (r#"{"HostConfig":{"PidsLimit":-1}}"#, rule::LIMITS_PIDS_LIMIT),
    ];
    for (input, rule) in cases {
        check(LIMITS, input, Denied(rule));
    }
}

#[test]
fn limits_allow_what_fits_and_fill_what_is_missing() {
    check(
        LIMITS,
        r#"{"HostConfig":{"Memory":4294967296,"CpuQuota":200000,"CpuPeriod":100000,"PidsLimit":4096}}"#,
        Body(
            r#"{"HostConfig":{"Memory":4294967296,"CpuQuota":200000,"CpuPeriod":100000,"PidsLimit":4096}}"#,
            &[],
        ),
    );
    // No default configured: the maximum is set, so a limit is never missing.
    check(
        LIMITS,
        r#"{}"#,
        Body(
            r#"{"HostConfig":{"Memory":4294967296,"NanoCpus":2000000000,"PidsLimit":4096}}"#,
            &[rule::LIMITS_MEMORY, rule::LIMITS_CPUS, rule::LIMITS_PIDS_LIMIT],
        ),
    );
}

#[test]
fn limits_clamp() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"HostConfig":{"Memory":8589934592,"NanoCpus":4000000000,"PidsLimit":-1}}"#,
            r#"{"HostConfig":{"Memory":4294967296,"NanoCpus":2000000000,"PidsLimit":4096}}"#,
        ),
        (
            r#"{"HostConfig":{"Memory":1073741824,"CpuQuota":100000,"CpuPeriod":10000,"PidsLimit":100}}"#,
            r#"{"HostConfig":{"Memory":1073741824,"CpuQuota":20000,"CpuPeriod":10000,"PidsLimit":100}}"#,
        ),
        (
            r#"{"HostConfig":{"Memory":1073741824,"CpuQuota":-1,"PidsLimit":100}}"#,
            r#"{"HostConfig":{"Memory":1073741824,"CpuQuota":200000,"PidsLimit":100}}"#,
        ),
        (
            r#"{"HostConfig":{"Memory":1073741824,"CpuQuota":-1,"NanoCpus":3000000000,"PidsLimit":100}}"#,
            r#"{"HostConfig":{"Memory":1073741824,"CpuQuota":0,"NanoCpus":2000000000,"PidsLimit":100}}"#,
        ),
    ];
    let cfg = load(CLAMP);
    for (input, output) in cases {
        let body = parse_create_body(input.as_bytes()).unwrap();
        let outcome = apply_create(&cfg, &ctx(Some("app")), body).expect("clamped, not denied");
        assert_eq!(outcome.body, serde_json::from_str::<Value>(output).unwrap(), "{input}");
        assert!(!outcome.changes.is_empty(), "{input}");
        assert!(
            outcome.changes.iter().all(|c| c.rule.starts_with("limits.")),
            "{input}: {:?}",
            outcome.changes
        );
    }
    let outcome = apply_create(&cfg, &ctx(Some("app")), json!({"HostConfig": {"Memory": 8i64 << 30}})).unwrap();
    assert_eq!(
        outcome.changes[0].warning(),
        "forge-shim: lowered memory limit 8G to the maximum 4G (standards.limits.memory)"
    );
}

// ---------------------------------------------------------------------------
// Deny rules

#[test]
fn deny_rules() {
    let cases: &[(&str, &str)] = &[
        (r#"{"HostConfig":{"Privileged":true}}"#, rule::DENY_PRIVILEGED),
        (r#"{"HostConfig":{"UsernsMode":"host"}}"#, rule::DENY_PRIVILEGED),
        (r#"{"HostConfig":{"MaskedPaths":[]}}"#, rule::DENY_PRIVILEGED),
        (
            r#"{"HostConfig":{"ReadonlyPaths":["/proc/bus"]}}"#,
            rule::DENY_PRIVILEGED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["systempaths=unconfined"]}}"#,
            rule::DENY_PRIVILEGED,
        ),
        (r#"{"HostConfig":{"PidMode":"host"}}"#, rule::DENY_HOST_PID),
        (r#"{"HostConfig":{"IpcMode":"host"}}"#, rule::DENY_HOST_IPC),
        (r#"{"HostConfig":{"NetworkMode":"host"}}"#, rule::DENY_HOST_NETWORK),
        (r#"{"HostConfig":{"NetworkMode":" HOST "}}"#, rule::DENY_HOST_NETWORK),
        (r#"{"HostConfig":{"UTSMode":"host"}}"#, rule::DENY_HOST_NETWORK),
        (r#"{"HostConfig":{"CapAdd":["SYS_ADMIN"]}}"#, rule::DENY_CAP_ADD),
        (r#"{"HostConfig":{"CapAdd":["cap_sys_admin"]}}"#, rule::DENY_CAP_ADD),
        (r#"{"HostConfig":{"CapAdd":["ALL"]}}"#, rule::DENY_CAP_ADD),
        (r#"{"HostConfig":{"CapAdd":["CHOWN","NET_ADMIN"]}}"#, rule::DENY_CAP_ADD),
        (
            r#"{"HostConfig":{"Devices":[{"PathOnHost":"/dev/sda","PathInContainer":"/dev/sda"}]}}"#,
            rule::DENY_DEVICES,
        ),
        (
            r#"{"HostConfig":{"DeviceCgroupRules":["c 1:3 mr"]}}"#,
            rule::DENY_DEVICES,
        ),
        (
            r#"{"HostConfig":{"DeviceRequests":[{"Count":-1,"Capabilities":[["gpu"]]}]}}"#,
            rule::DENY_DEVICES,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["seccomp=unconfined"]}}"#,
            rule::DENY_SECCOMP_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["seccomp:unconfined"]}}"#,
            rule::DENY_SECCOMP_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":[" Seccomp = Unconfined "]}}"#,
            rule::DENY_SECCOMP_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]}}"#,
            rule::DENY_SECCOMP_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["apparmor=unconfined"]}}"#,
            rule::DENY_APPARMOR_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["apparmor:UNCONFINED"]}}"#,
            rule::DENY_APPARMOR_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["label=disable"]}}"#,
            rule::DENY_APPARMOR_UNCONFINED,
        ),
    ];
    for (input, rule) in cases {
        check(DENY_ONLY, input, Denied(rule));
    }
}

#[test]
fn deny_rules_allow_the_harmless() {
    let bodies = [
        r#"{"HostConfig":{"Privileged":false,"NetworkMode":"bridge","PidMode":"","IpcMode":"private","UTSMode":""}}"#,
        r#"{"HostConfig":{"CapAdd":["CHOWN","cap_net_bind_service"],"Devices":[],"DeviceCgroupRules":null}}"#,
        r#"{"HostConfig":{"SecurityOpt":["seccomp=default.json","apparmor=docker-default","label=level:s0"]}}"#,
        r#"{"HostConfig":{"SecurityOpt":["seccomp={\"defaultAction\":\"SCMP_ACT_ERRNO\"}"]}}"#,
        // What `docker inspect` shows, copied back by tools that recreate containers.
        r#"{"HostConfig":{"MaskedPaths":["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys",
            "/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi",
            "/sys/firmware","/sys/devices/virtual/powercap"],
            "ReadonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}}"#,
        r#"{"HostConfig":{"CgroupnsMode":"host","NetworkMode":"container:abc"}}"#,
    ];
    let config = "standards: { cap_add_allowed: [CHOWN, NET_BIND_SERVICE] }";
    for body in bodies {
        check(config, body, Body(body, &[]));
    }
}

#[test]
fn each_deny_rule_can_be_switched_off() {
    let cases: &[(&str, &str)] = &[
        ("privileged", r#"{"HostConfig":{"Privileged":true}}"#),
        (
            "docker_socket",
            r#"{"HostConfig":{"Binds":["/var/run/docker.sock:/s"]}}"#,
        ),
        ("host_pid", r#"{"HostConfig":{"PidMode":"host"}}"#),
        ("host_ipc", r#"{"HostConfig":{"IpcMode":"host"}}"#),
        ("host_network", r#"{"HostConfig":{"NetworkMode":"host"}}"#),
        ("cap_add", r#"{"HostConfig":{"CapAdd":["SYS_ADMIN"]}}"#),
        ("devices", r#"{"HostConfig":{"Devices":[{"PathOnHost":"/dev/fuse"}]}}"#),
        (
            "seccomp_unconfined",
            r#"{"HostConfig":{"SecurityOpt":["seccomp=unconfined"]}}"#,
        ),
        (
            "apparmor_unconfined",
            r#"{"HostConfig":{"SecurityOpt":["apparmor=unconfined"]}}"#,
        ),
    ];
    for (switch, body) in cases {
        check(DENY_ONLY, body, Denied(&format!("deny.{switch}")));
        let off = format!("standards: {{ deny: {{ {switch}: false }} }}");
        check(&off, body, Body(body, &[]));
    }
}

#[test]
fn docker_socket_spellings() {
    let denied = [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/var/run/docker.sock/",
        "//var//run//docker.sock",
        "/var/./run/./docker.sock",
        "/var/run/../run/docker.sock",
        "/tmp/../var/run/docker.sock",
        "/var/run",
        "/run/",
        "/var",
        "/",
        "/..",
        "/home/me/.docker/desktop/docker.sock",
        "/run/user/1000/docker.sock",
        "/run/containerd/containerd.sock",
        "/run/containerd",
        "/run/forge-shim",
        "/proc/1/root",
        "/proc/self/root/run",
        "/proc/1/task/1/cwd",
    ];
    for source in denied {
        let bind = json!({"HostConfig": {"Binds": [format!("{source}:/mnt:ro")]}}).to_string();
        check(DENY_ONLY, &bind, Denied(rule::DENY_DOCKER_SOCKET));
        let mount =
            json!({"HostConfig": {"Mounts": [{"Type": "bind", "Source": source, "Target": "/mnt"}]}}).to_string();
        check(DENY_ONLY, &mount, Denied(rule::DENY_DOCKER_SOCKET));
        let volume = json!({"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/mnt", "VolumeOptions":
            {"DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": source}}}}]}})
        .to_string();
        check(DENY_ONLY, &volume, Denied(rule::DENY_DOCKER_SOCKET));
    }
    let allowed = [
        "/var/lib/app",
        "/srv/docker.sockets/x",
        "/run/user/1000/app",
        "/proc",
        "/home/me/project",
    ];
    for source in allowed {
        let bind =
            json!({"HostConfig": {"Binds": [format!("{source}:/mnt"), "named:/data", "/anonymous"]}}).to_string();
        check(DENY_ONLY, &bind, Body(&bind, &[]));
    }
    // Key spellings inside Mounts are canonicalised before the check.
    check(
        DENY_ONLY,
        r#"{"hostconfig":{"mounts":[{"TYPE":"bind","source":"/var/run","target":"/x"}]}}"#,
        Denied(rule::DENY_DOCKER_SOCKET),
    );
}

// ---------------------------------------------------------------------------
// Key spellings, duplicates and bad bodies

#[test]
fn case_variant_keys_are_caught() {
    let cases: &[(&str, &str)] = &[
        (r#"{"HostConfig":{"privileged":true}}"#, rule::DENY_PRIVILEGED),
        (r#"{"hostconfig":{"PRIVILEGED":true}}"#, rule::DENY_PRIVILEGED),
        (r#"{"HOSTCONFIG":{"pRiViLeGeD":true}}"#, rule::DENY_PRIVILEGED),
        // Go folds the Kelvin sign to k and the long s to s.
        (
            "{\"HostConfig\":{\"Networ\u{212A}Mode\":\"host\"}}",
            rule::DENY_HOST_NETWORK,
        ),
        (
            "{\"HostConfig\":{\"\u{17F}ecurityOpt\":[\"seccomp=unconfined\"]}}",
            rule::DENY_SECCOMP_UNCONFINED,
        ),
        // Go's ToUpper turns ſ into S: "ſys_admin" is SYS_ADMIN to dockerd.
        (
            "{\"HostConfig\":{\"CapAdd\":[\"\u{17F}ys_admin\"]}}",
            rule::DENY_CAP_ADD,
        ),
        (
            r#"{"HostConfig":{"binds":["/var/run/docker.sock:/s"]}}"#,
            rule::DENY_DOCKER_SOCKET,
        ),
    ];
    for (input, rule) in cases {
        check(DENY_ONLY, input, Denied(rule));
    }
    // Known keys come out in dockerd's spelling, unknown ones as they were.
    check(
        PIDS,
        r#"{"image":"app","hostconfig":{"pidslimit":0,"someFutureField":1}}"#,
        Body(
            r#"{"Image":"app","HostConfig":{"PidsLimit":512,"someFutureField":1}}"#,
            &[rule::DEFAULTS_PIDS_LIMIT],
        ),
    );
}

#[test]
fn duplicate_and_malformed_bodies_are_400() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"HostConfig":{"Privileged":false,"privileged":true}}"#,
            "differ only in case",
        ),
        (
            r#"{"HostConfig":{"Privileged":false,"Privileged":true}}"#,
            "duplicate key",
        ),
        (
            r#"{"HostConfig":{},"hostconfig":{"Privileged":true}}"#,
            "differ only in case",
        ),
        (r#"{"Image":"a","Image":"b"}"#, "duplicate key"),
        (
            r#"{"HostConfig":{"Mounts":[{"Source":"/x","source":"/var/run"}]}}"#,
            "in HostConfig.Mounts[0]",
        ),
        (r#"{"Labels":{"a":"1","a":"2"}}"#, "duplicate key"),
        // Top-level HostConfig fields, which dockerd 20.10 still reads.
        (r#"{"Image":"app","Privileged":true}"#, "HostConfig field"),
        (r#"{"Image":"app","binds":["/:/host"]}"#, "HostConfig field"),
        ("[]", "expected an object"),
        ("null", "expected an object"),
        ("", "invalid JSON"),
        (r#"{"Image":"app"} {"Privileged":true}"#, "trailing"),
        (r#"{"Image":"app""#, "invalid JSON"),
        (r#"{"HostConfig":[]}"#, "HostConfig must be an object"),
        (
            r#"{"HostConfig":{"Memory":"1g"}}"#,
            "HostConfig.Memory must be an integer",
        ),
        (
            r#"{"HostConfig":{"Memory":1.5}}"#,
            "HostConfig.Memory must be an integer",
        ),
        (
            r#"{"HostConfig":{"Privileged":"true"}}"#,
            "HostConfig.Privileged must be a boolean",
        ),
        (
            r#"{"HostConfig":{"Binds":"/:/x"}}"#,
            "HostConfig.Binds must be an array",
        ),
        (
            r#"{"HostConfig":{"Mounts":[1]}}"#,
            "HostConfig.Mounts[0] must be an object",
        ),
        (r#"{"User":0}"#, "User must be a string"),
    ];
    for (input, part) in cases {
        check(FULL, input, Bad(part));
    }
}

#[test]
fn user_data_maps_keep_case_distinct_keys() {
    let body = r#"{"Labels":{"app":"1","App":"2"},"HostConfig":{"Sysctls":{"net.a":"1","NET.A":"2"},
        "Tmpfs":{"/Data":"","/data":""},"LogConfig":{"Type":"json-file","Config":{"max-size":"1m","MAX-SIZE":"2m"}}}}"#;
    check(DENY_ONLY, body, Body(body, &[]));
}

#[test]
fn unknown_fields_survive_byte_for_byte() {
    let input = r#"{"Image":"app","XFuture":{"b":[1,2.5,"z",null,true],"a":{"nested":"x"}},"HostConfig":{"Memory":0,"Foo":{"Bar":-7},"KernelMemoryTCP":0},"NetworkingConfig":{"EndpointsConfig":{"net":{"Aliases":["a"]}}},"Zeta":1e3}"#;
    let cfg = load(PIDS);
    let outcome = apply_create(&cfg, &ctx(Some("app")), parse_create_body(input.as_bytes()).unwrap()).unwrap();
    let output = serde_json::to_string(&outcome.body).unwrap();
    for part in [
        r#""XFuture":{"b":[1,2.5,"z",null,true],"a":{"nested":"x"}}"#,
        r#""Memory":0,"Foo":{"Bar":-7},"KernelMemoryTCP":0,"PidsLimit":512}"#,
        r#""NetworkingConfig":{"EndpointsConfig":{"net":{"Aliases":["a"]}}}"#,
        r#""Zeta":1000.0"#,
    ] {
        assert!(output.contains(part), "{part} missing from {output}");
    }
    assert!(output.starts_with(r#"{"Image":"app","XFuture""#), "{output}");
}

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
    assert!(parse_create_body(br#"{"HostConfig":{"Privileged":false,"privileged":true}}"#).is_err());
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
fn exemptions_by_image_name_and_compose_service() {
    let config = r#"
standards:
  exempt:
    - match: { image: "postgres*" }
      rules: [non_root, deny.privileged]
    - match: { project: shop, service: agent }
      rules: [deny.docker_socket]
    - match: { name: "debug-*" }
      rules: [all]
"#;
    let root_privileged = r#"{"Image":"postgres:16","User":"root","HostConfig":{"Privileged":true}}"#;
    check(config, root_privileged, Body(root_privileged, &[]));
    check(
        config,
        r#"{"Image":"mypostgres","User":"root"}"#,
        Denied(rule::NON_ROOT),
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
    let denial = apply_create(&cfg, &ctx(Some("app")), json!({"HostConfig": {"IpcMode": "host"}})).unwrap_err();
    assert!(
        denial.to_string().contains("set the label forge.exempt=deny.host_ipc"),
        "{denial}"
    );
    let cfg = load(DENY_ONLY);
    let denial = apply_create(&cfg, &ctx(Some("app")), json!({"HostConfig": {"IpcMode": "host"}})).unwrap_err();
    assert!(!denial.to_string().contains("forge.exempt"), "{denial}");
}

#[test]
fn denial_message_names_the_rule_and_the_way_out() {
    let cfg = load(DENY_ONLY);
    let rejection = apply_create(&cfg, &ctx(Some("app")), json!({"HostConfig": {"Privileged": true}})).unwrap_err();
    assert_eq!(rejection.status(), 403);
    assert_eq!(
        rejection.to_string(),
        "standards: privileged mode (HostConfig.Privileged) is not allowed (rule standards.deny.privileged); \
         ask the operator to exempt this container from deny.privileged (standards.exempt in the forge-shim config)"
    );
    let cfg = load(LIMITS);
    let rejection = apply_create(&cfg, &ctx(Some("app")), json!({"HostConfig": {"Memory": 8i64 << 30}})).unwrap_err();
    assert_eq!(
        rejection.to_string(),
        "standards: a memory limit of 8G (HostConfig.Memory, above the maximum) is not allowed \
         (rule standards.limits.memory); ask for at most 4G, or ask the operator to exempt this container \
         from limits.memory (standards.exempt in the forge-shim config)"
    );
    let bad = parse_create_body(b"[]").map_err(Rejection::from).unwrap_err();
    assert_eq!(bad.status(), 400);
}

#[test]
fn embedded_config_on_a_compose_style_body() {
    let cfg = Config::load(None).expect("embedded shim.yml");
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

    // The official postgres image is exempt from non_root, read-only and cap_drop, and is in class high.
    let outcome = apply_create(&cfg, &ctx(Some("")), json!({"Image": "postgres:16"})).expect("allowed");
    assert_eq!(outcome.body.get("User"), None);
    assert_eq!(outcome.body["HostConfig"]["Memory"], json!(1 << 30));
    assert_eq!(outcome.body["HostConfig"].get("ReadonlyRootfs"), None);
}

// ---------------------------------------------------------------------------
// Update, exec, services, volumes

fn identity() -> ContainerIdentity<'static> {
    ContainerIdentity {
        name: Some("/web"),
        image: Some("app"),
        labels: None,
    }
}

fn update(config: &str, current: Option<Value>, input: &str, expect: Expect<'_>) {
    let cfg = load(config);
    let result = parse_body(input.as_bytes())
        .map_err(Rejection::from)
        .and_then(|body| check_update(&cfg, &identity(), current.as_ref(), body));
    assert_outcome(input, result, expect);
}

#[test]
fn update_cannot_lift_limits() {
    let fits = r#"{"Memory":1073741824,"MemorySwap":-1,"NanoCpus":2000000000,"PidsLimit":100,"CpuShares":512}"#;
    update(LIMITS, None, fits, Body(fits, &[]));
    update(
        LIMITS,
        None,
        r#"{"Memory":0,"NanoCpus":0}"#,
        Body(r#"{"Memory":0,"NanoCpus":0}"#, &[]),
    );
    let denied: &[(&str, &str)] = &[
        (r#"{"Memory":8589934592}"#, rule::LIMITS_MEMORY),
        (r#"{"memory":8589934592}"#, rule::LIMITS_MEMORY),
        (r#"{"MemoryReservation":8589934592}"#, rule::LIMITS_MEMORY),
        (r#"{"NanoCpus":3000000000}"#, rule::LIMITS_CPUS),
        (r#"{"CpuQuota":-1}"#, rule::LIMITS_CPUS),
        (r#"{"CpuQuota":300000}"#, rule::LIMITS_CPUS),
        (r#"{"CpuPeriod":10000}"#, rule::LIMITS_CPUS),
        (r#"{"PidsLimit":0}"#, rule::LIMITS_PIDS_LIMIT),
        (r#"{"PidsLimit":-1}"#, rule::LIMITS_PIDS_LIMIT),
        (r#"{"PidsLimit":5000}"#, rule::LIMITS_PIDS_LIMIT),
    ];
    for (input, rule) in denied {
        update(LIMITS, None, input, Denied(rule));
    }
    update(LIMITS, None, r#"{"Memory":1,"memory":2}"#, Bad("differ only in case"));
    // With the container's current settings, a period change can be judged.
    let current = json!({"CpuQuota": 100000, "CpuPeriod": 100000});
    update(
        LIMITS,
        Some(current.clone()),
        r#"{"CpuPeriod":50000}"#,
        Body(r#"{"CpuPeriod":50000}"#, &[]),
    );
    update(
        LIMITS,
        Some(current),
        r#"{"CpuPeriod":20000}"#,
        Denied(rule::LIMITS_CPUS),
    );
    // A quota alone is judged with the container's period.
    let short_period = json!({"CpuPeriod": 10000});
    update(
        LIMITS,
        Some(short_period),
        r#"{"CpuQuota":30000}"#,
        Denied(rule::LIMITS_CPUS),
    );
    // Without a maximum, removing a limit the defaults set is still denied.
    update(PIDS, None, r#"{"PidsLimit":-1}"#, Denied(rule::DEFAULTS_PIDS_LIMIT));
    update(CPUS, None, r#"{"CpuQuota":-1}"#, Denied(rule::DEFAULTS_CPUS));
    update(
        DENY_ONLY,
        None,
        r#"{"PidsLimit":-1,"CpuQuota":-1}"#,
        Body(r#"{"PidsLimit":-1,"CpuQuota":-1}"#, &[]),
    );
}

#[test]
fn update_clamps() {
    update(
        CLAMP,
        None,
        r#"{"Memory":8589934592,"NanoCpus":3000000000,"PidsLimit":-1}"#,
        Body(
            r#"{"Memory":4294967296,"NanoCpus":2000000000,"PidsLimit":4096}"#,
            &[rule::LIMITS_MEMORY, rule::LIMITS_CPUS, rule::LIMITS_PIDS_LIMIT],
        ),
    );
    update(CLAMP, None, r#"{"CpuQuota":-1}"#, Body(r#"{}"#, &[rule::LIMITS_CPUS]));
}

#[test]
fn exec_checks() {
    let root_exec = "standards: { non_root: { deny_root_exec: true } }";
    let cases: &[(&str, Option<&str>, &str, Expect<'_>)] = &[
        (
            DENY_ONLY,
            Some("app"),
            r#"{"Cmd":["sh"],"Privileged":true}"#,
            Denied(rule::DENY_PRIVILEGED),
        ),
        (
            DENY_ONLY,
            Some("app"),
            r#"{"Cmd":["sh"],"privileged":true}"#,
            Denied(rule::DENY_PRIVILEGED),
        ),
        (
            DENY_ONLY,
            Some("app"),
            r#"{"Cmd":["sh"],"User":"root"}"#,
            Body(r#"{"Cmd":["sh"],"User":"root"}"#, &[]),
        ),
        (
            root_exec,
            Some("app"),
            r#"{"Cmd":["sh"],"User":"root"}"#,
            Denied(rule::NON_ROOT),
        ),
        (
            root_exec,
            Some("app"),
            r#"{"Cmd":["sh"],"USER":"0:0"}"#,
            Denied(rule::NON_ROOT),
        ),
        (
            root_exec,
            Some("app"),
            r#"{"Cmd":["sh"]}"#,
            Body(r#"{"Cmd":["sh"]}"#, &[]),
        ),
        (root_exec, Some(""), r#"{"Cmd":["sh"]}"#, Denied(rule::NON_ROOT)),
        (root_exec, None, r#"{"Cmd":["sh"],"User":""}"#, Denied(rule::NON_ROOT)),
        (
            root_exec,
            Some("root"),
            r#"{"Cmd":["sh"],"User":"1000"}"#,
            Body(r#"{"Cmd":["sh"],"User":"1000"}"#, &[]),
        ),
        (
            root_exec,
            Some("app"),
            r#"{"User":"a","user":"root"}"#,
            Bad("differ only in case"),
        ),
    ];
    for (config, container_user, input, expect) in cases {
        let cfg = load(config);
        let result = parse_body(input.as_bytes())
            .map_err(Rejection::from)
            .and_then(|body| check_exec(&cfg, &identity(), *container_user, body));
        let expect = match expect {
            Body(body, rules) => Body(body, rules),
            Denied(rule) => Denied(rule),
            Bad(part) => Bad(part),
        };
        assert_outcome(input, result, expect);
    }
}

fn service(config: &str, image_user: Option<&str>, input: &str, expect: Expect<'_>) {
    let cfg = load(config);
    let result = parse_body(input.as_bytes())
        .map_err(Rejection::from)
        .and_then(|body| apply_service_spec(&cfg, &ctx(image_user), body));
    assert_outcome(input, result, expect);
}

#[test]
fn service_specs_get_the_same_standards() {
    service(
        FULL,
        Some("root"),
        r#"{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"app","Mounts":[{"Type":"volume","Source":"data","Target":"/run"}]}}}"#,
        Body(
            r#"{"Name":"web","TaskTemplate":{
                "ContainerSpec":{"Image":"app","User":"65534:65534","ReadOnly":true,
                    "Mounts":[{"Type":"volume","Source":"data","Target":"/run"},{"Type":"tmpfs","Target":"/tmp"}],
                    "CapabilityDrop":["ALL"]},
                "Resources":{"Limits":{"MemoryBytes":536870912,"NanoCPUs":1000000000,"Pids":512},
                             "Reservations":{"MemoryBytes":134217728}}}}"#,
            &[
                rule::NON_ROOT,
                rule::DEFAULTS_READ_ONLY_ROOTFS,
                rule::DEFAULTS_CAP_DROP,
                rule::DEFAULTS_MEMORY,
                rule::DEFAULTS_CPUS,
                rule::DEFAULTS_PIDS_LIMIT,
                rule::DEFAULTS_MEMORY_RESERVATION,
            ],
        ),
    );
    let denied: &[(&str, &str)] = &[
        (r#"{"TaskTemplate":{"ContainerSpec":{"User":"root"}}}"#, rule::NON_ROOT),
        (
            r#"{"TaskTemplate":{"ContainerSpec":{"CapabilityAdd":["SYS_ADMIN"]}}}"#,
            rule::DENY_CAP_ADD,
        ),
        (
            r#"{"TaskTemplate":{"ContainerSpec":{"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock","Target":"/s"}]}}}"#,
            rule::DENY_DOCKER_SOCKET,
        ),
        (
            r#"{"taskTemplate":{"containerSpec":{"mounts":[{"type":"bind","SOURCE":"/run","target":"/s"}]}}}"#,
            rule::DENY_DOCKER_SOCKET,
        ),
        (
            r#"{"TaskTemplate":{"ContainerSpec":{"Privileges":{"Seccomp":{"Mode":"unconfined"}}}}}"#,
            rule::DENY_SECCOMP_UNCONFINED,
        ),
        (
            r#"{"TaskTemplate":{"ContainerSpec":{"Privileges":{"AppArmor":{"Mode":"disabled"}}}}}"#,
            rule::DENY_APPARMOR_UNCONFINED,
        ),
        (
            r#"{"TaskTemplate":{"ContainerSpec":{},"Networks":[{"Target":"host"}]}}"#,
            rule::DENY_HOST_NETWORK,
        ),
        (
            r#"{"Networks":[{"Target":"host"}],"TaskTemplate":{"ContainerSpec":{}}}"#,
            rule::DENY_HOST_NETWORK,
        ),
        (
            r#"{"TaskTemplate":{"PluginSpec":{"Name":"evil"},"Runtime":"plugin"}}"#,
            rule::DENY_PRIVILEGED,
        ),
        (
            r#"{"TaskTemplate":{"ContainerSpec":{},"Resources":{"Limits":{"MemoryBytes":8589934592}}}}"#,
            rule::LIMITS_MEMORY,
        ),
        (
            r#"{"TaskTemplate":{"ContainerSpec":{},"Resources":{"Limits":{"Pids":-1}}}}"#,
            rule::LIMITS_PIDS_LIMIT,
        ),
    ];
    for (input, rule) in denied {
        service(FULL, Some("app"), input, Denied(rule));
    }
    service(
        FULL,
        Some("app"),
        r#"{"TaskTemplate":{"ContainerSpec":{"Privileged":true,"privileged":false}}}"#,
        Bad("differ only in case"),
    );
}

#[test]
fn volume_create_with_the_socket_is_denied() {
    let cfg = load(DENY_ONLY);
    let volume = |body: &str| {
        parse_body(body.as_bytes())
            .map_err(Rejection::from)
            .and_then(|body| check_volume_create(&cfg, body))
    };
    let denied =
        volume(r#"{"Name":"sock","Driver":"local","DriverOpts":{"type":"none","o":"bind","device":"/var/run"}}"#);
    assert!(
        matches!(denied, Err(Rejection::Denied(ref d)) if d.rule == rule::DENY_DOCKER_SOCKET),
        "{denied:?}"
    );
    let fine = volume(r#"{"Name":"data","DriverOpts":{"type":"none","o":"bind","device":"/srv/data"}}"#);
    assert!(fine.is_ok(), "{fine:?}");
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
