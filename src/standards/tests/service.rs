//! `POST /services/create` and `/services/{id}/update`.

use super::*;

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
