//! Create: the defaults (resources, read-only root, capabilities,
//! no-new-privileges) and non-root.

use serde_json::{json, Value};

use super::*;

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
        apply_create(&cfg, &ctx(Some("1000")), body).expect("allowed")
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
        // A name is resolved in the image's /etc/passwd, and pinned.
        (
            set,
            Some("node"),
            r#"{"Image":"app"}"#,
            Body(r#"{"Image":"app","User":"1000:1000"}"#, &[rule::NON_ROOT]),
        ),
        (
            set,
            Some("toor"),
            r#"{"Image":"app"}"#,
            Body(with_user, &[rule::NON_ROOT]),
        ),
        (
            set,
            Some("ghost"),
            r#"{"Image":"app"}"#,
            Body(with_user, &[rule::NON_ROOT]),
        ),
        (set, Some(":"), r#"{"Image":"app"}"#, Body(with_user, &[rule::NON_ROOT])),
        (
            set,
            Some(":1000"),
            r#"{"Image":"app"}"#,
            Body(with_user, &[rule::NON_ROOT]),
        ),
        (set, Some("1000"), r#"{"Image":"app"}"#, Body(r#"{"Image":"app"}"#, &[])),
        (deny, Some("toor"), r#"{"Image":"app"}"#, Denied(rule::NON_ROOT)),
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
        // runc runs an empty user part as uid 0, whatever the group.
        (set, Some("node"), r#"{"User":":"}"#, Denied(rule::NON_ROOT)),
        (set, Some("node"), r#"{"User":":0"}"#, Denied(rule::NON_ROOT)),
        (set, Some("node"), r#"{"User":":65534"}"#, Denied(rule::NON_ROOT)),
        // A name mapped to uid 0, or one the shim cannot resolve.
        (set, Some("node"), r#"{"User":"toor"}"#, Denied(rule::NON_ROOT)),
        (set, Some("node"), r#"{"User":"ghost"}"#, Denied(rule::NON_ROOT)),
        (
            set,
            Some("root"),
            r#"{"User":"node:staff"}"#,
            Body(r#"{"User":"1000:staff"}"#, &[rule::NON_ROOT]),
        ),
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
