//! The ways around the standards that go through what the shim looks up
//! (issue 13, classes 2, 4 and 5, and the backstops), through the real
//! binary in front of the real dockerd. Each test checks on dockerd's own
//! view that the standard held: no such container, a limit unchanged, a
//! reference pinned to an id, a container stopped.
//!
//! The shim runs with the embedded `shim.yml` (enforce mode), sleeping off.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// helpers

/// The embedded standards, sleeping off.
const ENFORCE: &str = "auto_sleep: { enabled: false }\n";

fn shim() -> Shim {
    require_dockerd();
    Shim::start(ENFORCE)
}

/// `docker inspect NAME` straight from dockerd; `None` when there is no
/// such container.
fn inspect(name: &str) -> Option<Value> {
    let out = direct_docker(&["inspect", "--type", "container", name]);
    if !out.status.success() {
        assert!(
            out.stderr_text().contains("No such"),
            "docker inspect {name}: {}",
            out.stderr_text()
        );
        return None;
    }
    let list: Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    Some(list[0].clone())
}

#[allow(dead_code)] // used by the later tests
fn assert_not_created(name: &str) {
    assert!(inspect(name).is_none(), "dockerd has a container named {name}");
}

fn message(response: &RawResponse) -> String {
    response.json()["message"].as_str().unwrap_or("").to_string()
}

/// `POST path` with a JSON body through the shim.
fn post(shim: &Shim, path: &str, body: &Value) -> RawResponse {
    raw_request(shim.socket_path(), &json_request("POST", path, body))
}

/// A container made straight on dockerd (not through the shim), tracked.
fn direct_create(names: &Names, what: &str, body: Value) -> String {
    let name = names.name(what);
    let response = raw_request(
        DOCKERD_SOCKET,
        &json_request("POST", &format!("/v1.41/containers/create?name={name}"), &body),
    );
    assert_eq!(response.status, 201, "direct create {name}: {}", response.body_text());
    let id = response.json()["Id"].as_str().expect("an Id").to_string();
    names.track_container(&id);
    name
}

/// A socket in front of dockerd that answers the inspect of one container
/// with an error and splices every other connection to dockerd. The shim
/// reads an inspect on a connection of its own, so the first request head
/// on each connection is all it looks at.
struct FaultyDockerd {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl FaultyDockerd {
    /// Inspects of `container` get `status` with `body`.
    fn start(container: &str, status: u16, body: &'static str) -> FaultyDockerd {
        let dir = tempfile::Builder::new().prefix("fs-faulty-").tempdir().unwrap();
        let path = dir.path().join("dockerd.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let target = format!("/containers/{container}/json");
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let target = target.clone();
                        std::thread::spawn(move || serve_faulty(client, &target, status, body));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultyDockerd { path, stop, _dir: dir }
    }
}

impl Drop for FaultyDockerd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_faulty(mut client: UnixStream, target: &str, status: u16, body: &str) {
    client.set_nonblocking(false).ok();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
    let path = line.split(' ').nth(1).unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    if line.starts_with("GET ") && path.ends_with(target) {
        let answer = format!(
            "HTTP/1.1 {status} Faulty\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(answer.as_bytes());
        return;
    }
    let Ok(mut upstream) = UnixStream::connect(DOCKERD_SOCKET) else {
        return;
    };
    if upstream.write_all(&head).is_err() {
        return;
    }
    let (mut client_read, mut upstream_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = forward.join();
}

fn memory_of(name: &str) -> i64 {
    inspect(name).expect("the container exists")["HostConfig"]["Memory"]
        .as_i64()
        .unwrap()
}

// ---------------------------------------------------------------------------
// class 2: the target container

/// A container dockerd accepted with a blkio rate above i64 (bollard's typed
/// model rejected its inspect, and the update went through unjudged) is
/// judged like any other.
#[test]
fn update_and_exec_of_a_container_with_a_huge_blkio_rate_are_judged() {
    let shim = shim();
    let names = Names::new("huge-blkio");
    let name = direct_create(
        &names,
        "big",
        json!({"Image": BUSYBOX, "Cmd": ["sleep", "300"], "User": "65534",
               "HostConfig": {"Memory": 268435456,
                              "BlkioDeviceReadBps": [{"Path": "/dev/vda", "Rate": u64::MAX}]}}),
    );
    direct_docker(&["start", &name]).assert_success("start");

    let out = shim.docker(&["update", "--memory", "8g", "--memory-swap", "8g", &name]);
    assert_ne!(out.code(), 0, "an update above limits.memory went through");
    assert!(out.stderr_text().contains("limits.memory"), "{}", out.stderr_text());
    assert_eq!(memory_of(&name), 268435456, "dockerd's memory limit changed");

    let out = shim.docker(&["exec", "--privileged", &name, "true"]);
    assert_ne!(out.code(), 0, "a privileged exec went through");
    assert!(out.stderr_text().contains("deny.privileged"), "{}", out.stderr_text());
}

/// When dockerd's inspect of the target fails or cannot be read, the update
/// and the exec are refused with `cannot be checked`, not forwarded.
#[test]
fn update_and_exec_of_a_target_that_cannot_be_inspected_are_refused() {
    require_dockerd();
    let names = Names::new("uninspectable");
    let name = direct_create(
        &names,
        "t",
        json!({"Image": BUSYBOX, "Cmd": ["sleep", "300"], "User": "65534", "HostConfig": {"Memory": 268435456}}),
    );
    direct_docker(&["start", &name]).assert_success("start");

    for (status, body) in [
        (
            500,
            r#"{"message":"json: cannot unmarshal number into Go struct field"}"#,
        ),
        (200, r#"{"Id": "#),
        (200, r#"{"Name": "/no-id"}"#),
    ] {
        let faulty = FaultyDockerd::start(&name, status, body);
        let shim = Shim::builder(ENFORCE)
            .upstream(format!("unix://{}", faulty.path.display()))
            .start();
        let update = post(
            &shim,
            &format!("/v1.41/containers/{name}/update"),
            &json!({"Memory": 8589934592u64, "MemorySwap": 8589934592u64}),
        );
        assert_eq!(update.status, 502, "update ({status} {body}): {}", update.body_text());
        assert!(
            message(&update).starts_with(&format!("forge-shim: container {name} cannot be checked: ")),
            "{}",
            update.body_text()
        );
        assert_eq!(memory_of(&name), 268435456, "the update reached dockerd");

        let exec = post(
            &shim,
            &format!("/v1.41/containers/{name}/exec"),
            &json!({"Cmd": ["true"], "Privileged": true}),
        );
        assert_eq!(exec.status, 502, "exec ({status} {body}): {}", exec.body_text());
        assert!(message(&exec).contains("cannot be checked"), "{}", exec.body_text());
        let execs = inspect(&name).unwrap()["ExecIDs"].clone();
        assert!(execs.is_null() || execs == json!([]), "an exec was made: {execs}");
    }
}

/// A target dockerd does not know gets dockerd's own 404.
#[test]
fn update_of_a_missing_container_is_dockerds_404() {
    let shim = shim();
    let names = Names::new("missing-target");
    let name = names.name("nope");
    let update = post(
        &shim,
        &format!("/v1.41/containers/{name}/update"),
        &json!({"Memory": 1}),
    );
    assert_eq!(update.status, 404, "{}", update.body_text());
    assert_eq!(message(&update), format!("No such container: {name}"));
}
