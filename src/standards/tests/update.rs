//! `POST /containers/{id}/update`.

use serde_json::{json, Value};

use super::*;

fn update(config: &str, current: Option<Value>, input: &str, expect: Expect<'_>) {
    let cfg = load(config);
    let result = parse_body(input.as_bytes())
        .map_err(Rejection::from)
        .and_then(|body| check_update(&cfg, &identity(), current.as_ref(), body));
    assert_outcome(input, result, expect);
}

#[test]
fn update_cannot_lift_limits() {
    let fits = r#"{"Memory":1073741824,"MemorySwap":2147483648,"NanoCpus":2000000000,"PidsLimit":100,"CpuShares":512}"#;
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
        (r#"{"MemorySwap":-1}"#, rule::LIMITS_MEMORY),
        (r#"{"Memory":1073741824,"memoryswap":-1}"#, rule::LIMITS_MEMORY),
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
