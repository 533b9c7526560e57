//! Key spellings, duplicate keys, malformed bodies, and fields the shim does
//! not know.

use super::*;

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
    let outcome = apply_create(&cfg, &ctx(Some("1000")), parse_body(input.as_bytes()).unwrap()).unwrap();
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
