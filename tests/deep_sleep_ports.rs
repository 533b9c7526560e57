//! Deep sleep and published ports, through the real binary in front of the
//! real dockerd: a container the shim stopped after a long sleep does not
//! refuse connections on its published port; the shim holds the port,
//! starts the container, and hands the connection over. `docker rm -f` of a
//! deep sleeper hands it back without starting it and frees the port.
//!
//! Like `tests/sleep.rs`, the shim here sleeps only this test's names: the
//! default class is `high`, and a `classify:` rule opts in the prefix.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use forge_shim::State;

use common::*;

const CHANGE_WITHIN: Duration = Duration::from_secs(60);

fn deep_sleep_config(names: &Names) -> String {
    format!(
        "standards: {{ mode: off }}\n\
         default_class: high\n\
         auto_sleep: {{ enabled: true, check_interval: 500ms, min_uptime: 0, max_sleep_time: 1s }}\n\
         classes:\n  deep:\n    sleep_policy: {{ enabled: true, idle_timeout: 1s, deep_sleep: true }}\n\
         classify:\n  - match: {{ name: \"{}-*\" }}\n    class: deep\n",
        names.prefix()
    )
}

fn state_of(name: &str) -> String {
    let out = direct_docker(&["inspect", "-f", "{{.State.Status}}", name]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The shim's state of `name`; `None` while it does not track it.
fn shim_state(shim: &Shim, name: &str) -> Option<State> {
    shim.container(name).map(|row| row.state)
}

/// How the shim last woke `name`; panics when it does not track it.
fn last_wake_trigger(shim: &Shim, name: &str) -> Option<String> {
    let row = shim
        .container(name)
        .unwrap_or_else(|| panic!("the shim does not track {name}"));
    row.last_wake.map(|wake| wake.trigger)
}

/// `docker run -d` of the test httpd with 8080 published on a free
/// loopback port, through the shim; its name and host port.
fn start_web(shim: &Shim, names: &Names) -> (String, u16) {
    let web = names.name("web");
    let out = shim.docker(&["run", "-d", "--name", &web, "-p", "127.0.0.1::8080", HTTPD]);
    assert!(out.status.success(), "run: {}", String::from_utf8_lossy(&out.stderr));
    let port = host_port(shim, &web);
    (web, port)
}

fn wait_deep_sleep(shim: &Shim, web: &str) {
    wait_until("the shim stops the idle container (deep sleep)", CHANGE_WITHIN, || {
        state_of(web) == "exited" && shim_state(shim, web) == Some(State::DeepSleep)
    });
}

/// `docker port NAME 8080` → the host port.
fn host_port(shim: &Shim, name: &str) -> u16 {
    let out = shim.docker(&["port", name, "8080/tcp"]);
    assert!(
        out.status.success(),
        "docker port: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default();
    line.rsplit(':')
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("a port number")
}

fn http_get(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect: the port must not refuse");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .expect("send request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    answer
}

#[test]
fn connection_to_a_deep_sleeper_is_held_and_served() {
    let names = Names::new("deep-port");
    let shim = Shim::start(&deep_sleep_config(&names));
    let (web, port) = start_web(&shim, &names);

    wait_deep_sleep(&shim, &web);

    // The port answers although the container is stopped.
    let answer = http_get(port);
    assert!(answer.contains("forge-test-ok"), "answer: {answer}");
    assert_eq!(state_of(&web), "running");
    assert_eq!(shim_state(&shim, &web), Some(State::Running));
    assert_eq!(last_wake_trigger(&shim, &web).as_deref(), Some("connection"));
    shim.assert_no_panic();
}

#[test]
fn a_restarted_shim_holds_a_deep_sleepers_ports_again() {
    let names = Names::new("deep-restart");
    let mut shim = Shim::start(&deep_sleep_config(&names));
    let (web, port) = start_web(&shim, &names);
    wait_deep_sleep(&shim, &web);

    // Killed: its holds die with it, and only the state file remembers the
    // port (a stopped container publishes none).
    shim.kill9();
    shim.respawn();
    wait_until("the restarted shim sees the deep sleeper", CHANGE_WITHIN, || {
        shim_state(&shim, &web) == Some(State::DeepSleep)
    });
    // The hold is bound a moment after the view is rebuilt. Nobody else
    // binds the port meanwhile, so the first accepted connection is the
    // shim's hold, and it is served by the woken container.
    let mut stream = None;
    wait_until("the port is held again", CHANGE_WITHIN, || {
        stream = TcpStream::connect(("127.0.0.1", port)).ok();
        stream.is_some()
    });
    let mut stream = stream.unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    assert!(answer.contains("forge-test-ok"), "answer: {answer}");
    assert_eq!(last_wake_trigger(&shim, &web).as_deref(), Some("connection"));
    assert_eq!(state_of(&web), "running");
    shim.assert_no_panic();
}

#[test]
fn removing_a_deep_sleeper_does_not_start_it_and_frees_its_port() {
    let names = Names::new("deep-rm");
    let shim = Shim::start(&deep_sleep_config(&names));
    let (web, port) = start_web(&shim, &names);
    wait_until("deep sleep", CHANGE_WITHIN, || {
        shim_state(&shim, &web) == Some(State::DeepSleep)
    });

    let out = shim.docker(&["rm", &web]);
    assert!(out.status.success(), "rm: {}", String::from_utf8_lossy(&out.stderr));
    let events = direct_docker(&[
        "events",
        "--since",
        "60s",
        "--until",
        "0s",
        "--filter",
        &format!("container={web}"),
        "--filter",
        "event=start",
    ]);
    let starts = String::from_utf8_lossy(&events.stdout).lines().count();
    assert_eq!(
        starts,
        1,
        "only the first start; rm must not start it: {}",
        String::from_utf8_lossy(&events.stdout)
    );
    wait_until("the held port is released", Duration::from_secs(10), || {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    });
}
