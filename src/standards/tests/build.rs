//! `POST /build` and plugin installs: judged on the query.

use super::*;

fn denied_by(result: &Result<HeadOutcome, Rejection>) -> Option<&str> {
    match result {
        Err(Rejection::Denied(denial)) => Some(denial.rule.as_str()),
        _ => None,
    }
}

#[test]
fn build_network_modes() {
    let cfg = load(DENY_ONLY);
    for (query, denied) in [
        ("t=app&networkmode=host", true),
        ("networkmode=container:web", true),
        // Go reads the first value of a key.
        ("networkmode=host&networkmode=bridge", true),
        ("networkmode=bridge&networkmode=host", false),
        ("networkmode=default", false),
        ("networkmode=none", false),
        ("networkmode=mynet", false),
        ("t=app", false),
    ] {
        let result = check_build(&cfg, Some(query));
        assert_eq!(
            denied_by(&result),
            denied.then_some(rule::DENY_HOST_NETWORK),
            "{query}: {result:?}"
        );
    }
    assert!(check_build(&cfg, None).is_ok());
}

#[test]
fn build_limits_are_set_where_unset_and_judged_where_asked() {
    let cfg = load(LIMITS);
    let set = check_build(&cfg, Some("t=app&memory=0")).unwrap();
    let query = set.query.unwrap();
    assert!(query.contains(&format!("memory={}", 4u64 << 30)), "{query}");
    assert!(
        !query.contains("memory=0"),
        "the unset value must not stay first: {query}"
    );
    assert!(
        query.contains("cpuquota=200000") && query.contains("cpuperiod=100000"),
        "{query}"
    );
    let rules: Vec<_> = set.changes.iter().map(|c| c.rule).collect();
    assert_eq!(rules, [rule::LIMITS_MEMORY, rule::LIMITS_CPUS]);

    let within = check_build(&cfg, Some("memory=1073741824&cpuquota=50000")).unwrap();
    assert!(within.changes.is_empty(), "{within:?}");
    assert_eq!(
        within.query.as_deref(),
        Some("memory=1073741824&cpuquota=50000"),
        "nothing to rewrite"
    );

    for query in [
        "memory=8589934592",
        "memory=-1",
        "memswap=-1",
        "cpuquota=300000",
        "cpuquota=-1",
        "cpuperiod=50000&cpuquota=150000",
    ] {
        let result = check_build(&cfg, Some(query));
        assert!(
            matches!(denied_by(&result), Some(r) if r == rule::LIMITS_MEMORY || r == rule::LIMITS_CPUS),
            "{query}: {result:?}"
        );
    }
    assert!(matches!(
        check_build(&cfg, Some("memory=lots")),
        Err(Rejection::BadRequest(_))
    ));
}

#[test]
fn build_limits_clamp_when_asked_to() {
    let cfg = load(CLAMP);
    let clamped = check_build(&cfg, Some("memory=8589934592&memory=1")).unwrap();
    let query = clamped.query.unwrap();
    assert_eq!(query.matches("memory=").count(), 1, "{query}");
    assert!(query.contains(&format!("memory={}", 4u64 << 30)), "{query}");
}

#[test]
fn audit_and_off_forward_the_query_unchanged() {
    let audit = load("standards: { mode: audit, limits: { memory: 4G } }");
    let result = check_build(&audit, Some("networkmode=host")).unwrap();
    assert_eq!(result.query.as_deref(), Some("networkmode=host"));
    assert!(
        result.changes.iter().any(|c| c.message.starts_with("would deny")),
        "{result:?}"
    );
    let off = load("standards: { mode: off }");
    let result = check_build(&off, Some("networkmode=host")).unwrap();
    assert_eq!(result.query.as_deref(), Some("networkmode=host"));
    assert!(result.changes.is_empty());
}

#[test]
fn plugins_are_denied_unless_allowed() {
    let cfg = load(DENY_ONLY);
    let result = check_plugin_install(&cfg, "/plugins/pull");
    assert_eq!(denied_by(&result), Some(rule::DENY_PLUGINS), "{result:?}");
    let allowed = load("standards: { deny: { plugins: false } }");
    assert!(check_plugin_install(&allowed, "/plugins/pull").is_ok());
}
