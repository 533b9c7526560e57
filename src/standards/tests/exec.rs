//! `POST /containers/{id}/exec`.

use super::*;

#[test]
fn exec_checks() {
    let root_exec = "standards: { non_root: { deny_root_exec: true } }";
    let allow_root_exec = "standards: { non_root: { deny_root_exec: false } }";
    let cases: &[(&str, Option<&str>, &str, Expect<'_>)] = &[
        (
            DENY_ONLY,
            Some("1000"),
            r#"{"Cmd":["sh"],"Privileged":true}"#,
            Denied(rule::DENY_PRIVILEGED),
        ),
        (
            DENY_ONLY,
            Some("1000"),
            r#"{"Cmd":["sh"],"privileged":true}"#,
            Denied(rule::DENY_PRIVILEGED),
        ),
        // Denied by default into a non-root container; an operator may allow it.
        (
            DENY_ONLY,
            Some("1000"),
            r#"{"Cmd":["sh"],"User":"root"}"#,
            Denied(rule::NON_ROOT),
        ),
        (
            allow_root_exec,
            Some("1000"),
            r#"{"Cmd":["sh"],"User":"root"}"#,
            Body(r#"{"Cmd":["sh"],"User":"root"}"#, &[]),
        ),
        (
            root_exec,
            Some("1000"),
            r#"{"Cmd":["sh"],"User":"root"}"#,
            Denied(rule::NON_ROOT),
        ),
        (
            root_exec,
            Some("1000"),
            r#"{"Cmd":["sh"],"USER":"0:0"}"#,
            Denied(rule::NON_ROOT),
        ),
        (
            root_exec,
            Some("1000"),
            r#"{"Cmd":["sh"]}"#,
            Body(r#"{"Cmd":["sh"]}"#, &[]),
        ),
        (
            root_exec,
            Some("1000:1000"),
            r#"{"User":"0:1000"}"#,
            Denied(rule::NON_ROOT),
        ),
        // Into a container that runs as root, root is no escalation.
        (root_exec, Some(""), r#"{"Cmd":["sh"]}"#, Body(r#"{"Cmd":["sh"]}"#, &[])),
        (
            root_exec,
            None,
            r#"{"Cmd":["sh"],"User":""}"#,
            Body(r#"{"Cmd":["sh"],"User":""}"#, &[]),
        ),
        (
            root_exec,
            Some("0"),
            r#"{"Cmd":["sh"],"User":"root"}"#,
            Body(r#"{"Cmd":["sh"],"User":"root"}"#, &[]),
        ),
        (
            root_exec,
            Some("root"),
            r#"{"Cmd":["sh"],"User":"1000"}"#,
            Body(r#"{"Cmd":["sh"],"User":"1000"}"#, &[]),
        ),
        (
            root_exec,
            Some("1000"),
            r#"{"User":"a","user":"root"}"#,
            Bad("differ only in case"),
        ),
    ];
    for (config, container_user, input, expect) in cases {
        let cfg = load(config);
        let result = parse_body(input.as_bytes())
            .map_err(Rejection::from)
            .and_then(|body| check_exec(&cfg, &identity(), *container_user, None, body));
        let expect = match expect {
            Body(body, rules) => Body(body, rules),
            Denied(rule) => Denied(rule),
            Bad(part) => Bad(part),
        };
        assert_outcome(input, result, expect);
    }
}

#[test]
fn exec_users_resolve_through_the_containers_passwd() {
    let cfg = load("standards: { non_root: { deny_root_exec: true } }");
    let passwd = ctx(None).passwd;
    let cases: &[(Option<&str>, &str, Expect<'_>)] = &[
        (Some("1000"), r#"{"User":"toor"}"#, Denied(rule::NON_ROOT)),
        (Some("1000"), r#"{"User":":"}"#, Denied(rule::NON_ROOT)),
        (Some("1000"), r#"{"User":":1000"}"#, Denied(rule::NON_ROOT)),
        (Some("1000"), r#"{"User":"ghost"}"#, Denied(rule::NON_ROOT)),
        (
            Some("1000"),
            r#"{"User":"node"}"#,
            Body(r#"{"User":"1000:1000"}"#, &[rule::NON_ROOT]),
        ),
        // No User: the container's, resolved the same way (a container
        // that is root by name is root: exec as it is no escalation).
        (Some("toor"), r#"{"Cmd":["id"]}"#, Body(r#"{"Cmd":["id"]}"#, &[])),
        (Some("toor"), r#"{"User":"0"}"#, Body(r#"{"User":"0"}"#, &[])),
        // A container user that cannot be resolved now: fail closed.
        (Some("ghost"), r#"{"User":"0"}"#, Denied(rule::NON_ROOT)),
        (Some("ghost"), r#"{"Cmd":["id"]}"#, Denied(rule::NON_ROOT)),
        (
            Some("node"),
            r#"{"Cmd":["id"]}"#,
            Body(r#"{"Cmd":["id"],"User":"1000:1000"}"#, &[rule::NON_ROOT]),
        ),
    ];
    for (container_user, input, expect) in cases {
        let result = parse_body(input.as_bytes())
            .map_err(Rejection::from)
            .and_then(|body| check_exec(&cfg, &identity(), *container_user, passwd.as_ref(), body));
        let expect = match expect {
            Body(body, rules) => Body(body, rules),
            Denied(rule) => Denied(rule),
            Bad(part) => Bad(part),
        };
        assert_outcome(input, result, expect);
    }
}
