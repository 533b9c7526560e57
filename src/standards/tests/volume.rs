//! `POST /volumes/create`.

use super::*;

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
