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
        // A copied top-level field dockerd could not decode.
        (
            r#"{"Image":"app","Memory":"1g","HostConfig":{}}"#,
            "Memory must be an integer",
        ),
        (
            r#"{"Image":"app","Cpuset":0,"HostConfig":{}}"#,
            "Cpuset must be a string",
        ),
        (
            r#"{"Image":"app","Memory":1,"HostConfig":[]}"#,
            "HostConfig must be an object",
        ),
        (
            r#"{"Image":"app","Privileged":"yes"}"#,
            "HostConfig.Privileged must be a boolean",
        ),
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

#[test]
fn top_level_host_config_fields_are_folded_as_dockerd_folds_them() {
    let cases: &[(&str, &str)] = &[
        // No HostConfig: the top-level fields are the HostConfig (docker-py's
        // `create_container(runtime=...)` sends this).
        (
            r#"{"Image":"app","Runtime":"runc"}"#,
            r#"{"Image":"app","HostConfig":{"Runtime":"runc"}}"#,
        ),
        (
            r#"{"Image":"app","runtime":"runc","HostConfig":null}"#,
            r#"{"Image":"app","HostConfig":{"Runtime":"runc"}}"#,
        ),
        // A field is there for Go even when null.
        (
            r#"{"Image":"app","Privileged":null}"#,
            r#"{"Image":"app","HostConfig":{"Privileged":null}}"#,
        ),
        // Both: the inner one wins; five fields fill its zeros.
        (
            r#"{"Image":"app","Memory":100,"CpuShares":2,"Privileged":true,"Runtime":"x","HostConfig":{"Memory":0,"CpuShares":5}}"#,
            r#"{"Image":"app","HostConfig":{"Memory":100,"CpuShares":5}}"#,
        ),
        (
            r#"{"Image":"app","MemorySwap":-1,"CpusetCpus":"0","VolumeDriver":"local","HostConfig":{"CpusetCpus":""}}"#,
            r#"{"Image":"app","HostConfig":{"MemorySwap":-1,"CpusetCpus":"0","VolumeDriver":"local"}}"#,
        ),
        // A zero at the top copies nothing.
        (
            r#"{"Image":"app","Memory":0,"VolumeDriver":"","HostConfig":{}}"#,
            r#"{"Image":"app","HostConfig":{}}"#,
        ),
        // The deprecated Cpuset fills an empty CpusetCpus, and is dropped.
        (
            r#"{"Image":"app","Cpuset":"1","HostConfig":{}}"#,
            r#"{"Image":"app","HostConfig":{"CpusetCpus":"1"}}"#,
        ),
        (
            r#"{"Image":"app","Cpuset":"1","HostConfig":{"CpusetCpus":"0"}}"#,
            r#"{"Image":"app","HostConfig":{"CpusetCpus":"0"}}"#,
        ),
        (r#"{"Image":"app","Cpuset":"1"}"#, r#"{"Image":"app"}"#),
        // Nothing at the top: unchanged.
        (
            r#"{"Image":"app","HostConfig":{"Memory":5}}"#,
            r#"{"Image":"app","HostConfig":{"Memory":5}}"#,
        ),
        // Folded fields are canonicalised like inner ones.
        (
            r#"{"Image":"app","mounts":[{"type":"tmpfs","target":"/x"}]}"#,
            r#"{"Image":"app","HostConfig":{"Mounts":[{"Type":"tmpfs","Target":"/x"}]}}"#,
        ),
    ];
    for (input, expected) in cases {
        let parsed = canon::parse_body(input.as_bytes()).unwrap();
        let folded = canon::canonicalize_create(parsed).unwrap_or_else(|e| panic!("{input}: {e}"));
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(folded, expected, "{input}");
    }
}

#[test]
fn top_level_host_config_fields_are_judged_where_dockerd_uses_them() {
    // Used by dockerd: judged.
    check(
        DENY_ONLY,
        r#"{"Image":"app","Privileged":true}"#,
        Denied(rule::DENY_PRIVILEGED),
    );
    check(
        DENY_ONLY,
        r#"{"Image":"app","binds":["/var/run/docker.sock:/s"]}"#,
        Denied(rule::DENY_DOCKER_SOCKET),
    );
    check(
        DENY_ONLY,
        r#"{"Image":"app","NetworkMode":"host","HostConfig":null}"#,
        Denied(rule::DENY_HOST_NETWORK),
    );
    // Ignored by dockerd beside a HostConfig, so dropped, never forwarded.
    check(
        MEMORY,
        r#"{"Image":"app","User":"1000","Privileged":true,"HostConfig":{"Memory":268435456}}"#,
        Body(
            r#"{"Image":"app","User":"1000","HostConfig":{"Memory":268435456,"MemoryReservation":134217728}}"#,
            &[rule::DEFAULTS_MEMORY_RESERVATION],
        ),
    );
    // A copied top-level memory is what the limits judge.
    check(
        LIMITS,
        r#"{"Image":"app","User":"1000","Memory":8589934592,"HostConfig":{}}"#,
        Denied(rule::LIMITS_MEMORY),
    );
}
