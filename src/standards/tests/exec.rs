//! `POST /containers/{id}/exec`.

use super::*;

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
