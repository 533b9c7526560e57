//! Create: the `limits:` maxima, denied or clamped.

use serde_json::{json, Value};

use super::*;

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
fn unlimited_swap_is_above_any_memory_maximum() {
    check(
        LIMITS,
        r#"{"HostConfig":{"Memory":1073741824,"MemorySwap":-1,"NanoCpus":1000000000,"PidsLimit":100}}"#,
        Denied(rule::LIMITS_MEMORY),
    );
    check(
        LIMITS,
        r#"{"HostConfig":{"Memory":1073741824,"memoryswap":-1,"NanoCpus":1000000000,"PidsLimit":100}}"#,
        Denied(rule::LIMITS_MEMORY),
    );
    // No maximum, nothing to guard.
    let free = r#"{"HostConfig":{"Memory":1073741824,"MemorySwap":-1,"NanoCpus":1000000000,"PidsLimit":100}}"#;
    check(DENY_ONLY, free, Body(free, &[]));
}

#[test]
fn limits_clamp() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"HostConfig":{"Memory":1073741824,"MemorySwap":-1,"NanoCpus":1000000000,"PidsLimit":100}}"#,
            r#"{"HostConfig":{"Memory":1073741824,"NanoCpus":1000000000,"PidsLimit":100}}"#,
        ),
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
        let body = parse_body(input.as_bytes()).unwrap();
        let outcome = apply_create(&cfg, &ctx(Some("1000")), body).expect("clamped, not denied");
        assert_eq!(outcome.body, serde_json::from_str::<Value>(output).unwrap(), "{input}");
        assert!(!outcome.changes.is_empty(), "{input}");
        assert!(
            outcome.changes.iter().all(|c| c.rule.starts_with("limits.")),
            "{input}: {:?}",
            outcome.changes
        );
    }
    let outcome = apply_create(&cfg, &ctx(Some("1000")), json!({"HostConfig": {"Memory": 8i64 << 30}})).unwrap();
    assert_eq!(
        outcome.changes[0].warning(),
        "forge-shim: lowered memory limit 8G to the maximum 4G (standards.limits.memory)"
    );
}
