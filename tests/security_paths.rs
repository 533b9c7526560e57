//! The ways around the standards that go through what the shim looks up
//! (issue 13, classes 2, 4 and 5, and the backstops), through the real
//! binary in front of the real dockerd. Each test checks on dockerd's own
//! view that the standard held: no such container, a limit unchanged, a
//! reference pinned to an id, a container stopped.
//!
//! The shim runs with the embedded `shim.yml` (enforce mode), sleeping off.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
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

/// A create that borrows from a container the shim cannot inspect is
/// refused; one that names a container dockerd does not know is refused
/// too, though dockerd keeps a `container:NAME` network mode by name.
#[test]
fn a_create_whose_source_cannot_be_inspected_is_refused() {
    require_dockerd();
    let names = Names::new("uninspectable-source");
    let source = direct_create(&names, "src", json!({"Image": BUSYBOX, "Cmd": ["sleep", "300"]}));
    let faulty = FaultyDockerd::start(&source, 500, r#"{"message":"inspect failed"}"#);
    let shim = Shim::builder(ENFORCE)
        .upstream(format!("unix://{}", faulty.path.display()))
        .start();
    for (what, mode) in [
        ("pid", json!({"PidMode": format!("container:{source}")})),
        ("net", json!({"NetworkMode": format!("container:{source}")})),
        ("volumes", json!({"VolumesFrom": [source.clone()]})),
    ] {
        let name = names.name(what);
        let create = post(
            &shim,
            &format!("/v1.41/containers/create?name={name}"),
            &json!({"Image": BUSYBOX, "Cmd": ["true"], "HostConfig": mode}),
        );
        assert_eq!(create.status, 502, "{what}: {}", create.body_text());
        assert!(message(&create).contains("cannot be checked"), "{}", create.body_text());
        assert_not_created(&name);
    }
    let name = names.name("missing");
    let create = post(
        &shim,
        &format!("/v1.41/containers/create?name={name}"),
        &json!({"Image": BUSYBOX, "HostConfig": {"NetworkMode": format!("container:{}", names.name("nope"))}}),
    );
    assert_eq!(create.status, 400, "{}", create.body_text());
    assert_not_created(&name);
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

// ---------------------------------------------------------------------------
// class 4: paths as the host resolves them

/// A folder of the test's own, with the symlinks it needs, removed on drop.
fn link_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fs-links-").tempdir().unwrap()
}

fn symlink(target: &str, link: &std::path::Path) {
    std::os::unix::fs::symlink(target, link).unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
}

/// A create through the shim that must be refused by `deny.docker_socket`
/// with `part` in the message; dockerd must have no such container.
fn assert_bind_denied(shim: &Shim, names: &Names, what: &str, args: &[&str], part: &str) {
    let name = names.name(what);
    let mut all = vec!["create", "--name", &name];
    all.extend_from_slice(args);
    all.extend_from_slice(&[BUSYBOX, "true"]);
    let out = shim.docker(&all);
    assert_ne!(out.code(), 0, "{what}: created; stderr: {}", out.stderr_text());
    let stderr = out.stderr_text();
    assert!(stderr.contains("deny.docker_socket"), "{what}: {stderr}");
    assert!(stderr.contains(part), "{what}: no {part:?} in {stderr}");
    assert_not_created(&name);
}

#[test]
fn a_bind_of_a_symlink_to_the_docker_socket_is_denied() {
    let shim = shim();
    let names = Names::new("socket-link");
    let dir = link_dir();
    let link = dir.path().join("sock");
    symlink("/var/run/docker.sock", &link);
    let folder = dir.path().join("run");
    symlink("/run", &folder);
    let link = link.to_str().unwrap();
    let folder = folder.to_str().unwrap();

    let bind = format!("{link}:/var/run/docker.sock");
    assert_bind_denied(&shim, &names, "binds", &["-v", &bind], "resolves to /run/docker.sock");
    let mount = format!("type=bind,src={link},dst=/sock");
    assert_bind_denied(
        &shim,
        &names,
        "mounts",
        &["--mount", &mount],
        "resolves to /run/docker.sock",
    );
    let bind = format!("{folder}:/host-run");
    assert_bind_denied(&shim, &names, "folder", &["-v", &bind], "resolves to /run");
    // The missing tail of a path is judged below where its parents lead.
    let data_root = dir.path().join("root");
    symlink("/var/lib/docker", &data_root);
    let bind = format!("{}/new/dir:/d", data_root.display());
    assert_bind_denied(&shim, &names, "missing", &["-v", &bind], "/var/lib/docker/new/dir");

    // A plain folder, and a symlink to one, are still fine.
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let to_plain = dir.path().join("to-plain");
    symlink(plain.to_str().unwrap(), &to_plain);
    let name = names.name("fine");
    let bind = format!("{}:/data", to_plain.display());
    shim.docker(&["create", "--name", &name, "-v", &bind, BUSYBOX, "true"])
        .assert_success("a bind of a symlink to a plain folder");
    let binds = inspect(&name).expect("created")["HostConfig"]["Binds"].clone();
    assert_eq!(binds, json!([bind]), "the bind is forwarded as written");
}

#[test]
fn a_symlink_inside_a_named_volume_bound_through_the_data_root_is_denied() {
    let shim = shim();
    let names = Names::new("volume-link");
    let volume = names.name("v");
    direct_docker(&["volume", "create", &volume]).assert_success("volume create");
    names.track_volume(&volume);
    // What any container using the volume can do.
    let maker = names.name("maker");
    direct_docker(&[
        "run",
        "--rm",
        "--name",
        &maker,
        "-v",
        &format!("{volume}:/data"),
        BUSYBOX,
        "ln",
        "-s",
        "/run",
        "/data/link",
    ])
    .assert_success("make the link inside the volume");
    let data = format!("/var/lib/docker/volumes/{volume}/_data");
    assert!(std::fs::symlink_metadata(format!("{data}/link"))
        .unwrap()
        .file_type()
        .is_symlink());

    let bind = format!("{data}/link:/host-run");
    assert_bind_denied(&shim, &names, "link", &["-v", &bind], "resolves to /run");
    // The volume's folder itself is inside dockerd's data root.
    let bind = format!("{data}:/v");
    assert_bind_denied(
        &shim,
        &names,
        "data",
        &["-v", &bind],
        "dockerd's data root /var/lib/docker",
    );
    // A symlink elsewhere to the data root is the same.
    let dir = link_dir();
    let link = dir.path().join("root");
    symlink("/var/lib/docker", &link);
    let bind = format!("{}:/r", link.display());
    assert_bind_denied(
        &shim,
        &names,
        "root-link",
        &["-v", &bind],
        "resolves to /var/lib/docker",
    );
}

#[test]
fn a_bound_volume_with_a_relative_device_is_denied() {
    let shim = shim();
    let names = Names::new("relative-device");
    let volume = names.name("rel");
    let out = shim.docker(&[
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        "device=../../../../run",
        &volume,
    ]);
    names.track_volume(&volume);
    assert_ne!(out.code(), 0, "created: {}", out.stdout_text());
    assert!(
        out.stderr_text().contains("relative volume device"),
        "{}",
        out.stderr_text()
    );
    let listed = direct_docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]);
    assert_eq!(listed.stdout_text().trim(), "", "dockerd has the volume");

    // Made behind the shim's back, it cannot be used through the shim.
    direct_docker(&[
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        "device=../../../../run",
        &volume,
    ])
    .assert_success("direct volume create");
    let mount = format!("{volume}:/host-run");
    assert_bind_denied(&shim, &names, "user", &["-v", &mount], "relative volume device");

    // A bound volume whose folder became a symlink since it was made.
    let dir = link_dir();
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let swapped = names.name("swapped");
    shim.docker(&[
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        &format!("device={}", folder.display()),
        &swapped,
    ])
    .assert_success("a volume bound to a plain folder");
    names.track_volume(&swapped);
    std::fs::remove_dir(&folder).unwrap();
    symlink("/var/run", &folder);
    let mount = format!("type=volume,src={swapped},dst=/host-run");
    assert_bind_denied(&shim, &names, "swapped", &["--mount", &mount], "resolves to /run");
    // And a volume made on the fly by a mount, with a relative device.
    let inline =
        "type=volume,dst=/r,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=../../run";
    assert_bind_denied(&shim, &names, "inline", &["--mount", inline], "relative volume device");
}

// ---------------------------------------------------------------------------
// class 5: names pinned to the container judged

fn id_of(name: &str) -> String {
    inspect(name).expect("the container exists")["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The namespace `kind` (`pid`, `net`, `ipc`) of a running container.
fn namespace(name: &str, kind: &str) -> String {
    let pid = inspect(name).expect("the container exists")["State"]["Pid"]
        .as_i64()
        .unwrap();
    assert!(pid > 0, "{name} is not running");
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A create that names containers gets them by the id judged, on dockerd's
/// side; after a rename hands the name to another container, the created
/// one still joins the one that was judged.
#[test]
fn container_references_are_pinned_so_a_rename_cannot_swap_them() {
    let shim = shim();
    let names = Names::new("pinned");
    let judged = names.name("judged");
    shim.docker(&[
        "run",
        "-d",
        "--name",
        &judged,
        "--ipc",
        "shareable",
        "-v",
        "/data",
        BUSYBOX,
        "sleep",
        "300",
    ])
    .assert_success("the container to join");
    let judged_id = id_of(&judged);
    let impostor = direct_create(
        &names,
        "impostor",
        json!({"Image": BUSYBOX, "Cmd": ["sleep", "300"], "HostConfig": {"IpcMode": "shareable"}}),
    );
    direct_docker(&["start", &impostor]).assert_success("start the impostor");

    let joiner = names.name("joiner");
    shim.docker(&[
        "create",
        "--name",
        &joiner,
        "--pid",
        &format!("container:{judged}"),
        "--ipc",
        &format!("container:{judged}"),
        "--network",
        &format!("container:{judged}"),
        "--volumes-from",
        &format!("{judged}:ro"),
        BUSYBOX,
        "sleep",
        "300",
    ])
    .assert_success("create naming the container");
    let host = inspect(&joiner).unwrap()["HostConfig"].clone();
    let pinned = format!("container:{judged_id}");
    assert_eq!(host["PidMode"], json!(pinned));
    assert_eq!(host["IpcMode"], json!(pinned));
    assert_eq!(host["NetworkMode"], json!(pinned));
    assert_eq!(host["VolumesFrom"], json!([format!("{judged_id}:ro")]));

    // The name moves to the impostor before the joiner starts.
    direct_docker(&["rename", &judged, &names.name("moved")]).assert_success("rename the judged one");
    direct_docker(&["rename", &impostor, &judged]).assert_success("the impostor takes the name");
    shim.docker(&["start", &joiner]).assert_success("start the joiner");
    for kind in ["pid", "net", "ipc"] {
        assert_eq!(
            namespace(&joiner, kind),
            namespace(&names.name("moved"), kind),
            "{kind}: the joiner is not in the judged container's namespace"
        );
        assert_ne!(
            namespace(&joiner, kind),
            namespace(&judged, kind),
            "{kind}: joined the impostor"
        );
    }
}

// ---------------------------------------------------------------------------
// the backstop: dockerd's record of a create, judged again

/// The shim judges a create by the image its name pointed to when it
/// looked; dockerd creates from the image the name points to when it
/// creates. Here the two differ (a dockerd whose image inspect says
/// `busybox-nonroot` for a name that is a root image, as a retag between
/// the check and the create would): the record shows the other image and
/// user, and the backstop removes the container: the start that would run
/// it is refused with the reason.
#[test]
fn a_create_dockerd_records_differently_is_removed_and_refused() {
    require_dockerd();
    let names = Names::new("backstop");
    let moved = names.image("moved");
    direct_docker(&["tag", BUSYBOX, &moved]).assert_success("docker tag");
    names.track_image(&moved);
    let nonroot = raw_request(
        DOCKERD_SOCKET,
        &bodyless_request("GET", &format!("/images/{BUSYBOX_NONROOT}/json")),
    );
    assert_eq!(nonroot.status, 200);
    let lie: &'static str = Box::leak(nonroot.body_text().into_boxed_str());
    // The shim's own reads escape `/` in a name.
    let faulty = FaultyDockerd::answering(format!("/images/{}/json", moved.replace('/', "%2F")), 200, lie);
    let shim = Shim::builder(ENFORCE)
        .upstream(format!("unix://{}", faulty.path.display()))
        .start();

    // The create's answer does not wait for the check; the start does, and
    // is refused with the reason, by name and by id.
    let name = names.name("c");
    let out = shim.docker(&["create", "--name", &name, &moved, "id", "-u"]);
    let id = out.stdout_text().trim().to_string();
    for reference in [name.as_str(), id.as_str()] {
        if reference.is_empty() {
            continue;
        }
        let out = shim.docker(&["start", reference]);
        assert!(
            !out.status.success(),
            "started {reference}: {} {} {:?}",
            out.stdout_text(),
            out.stderr_text(),
            inspect(&name).map(|r| (r["Config"]["User"].clone(), r["Image"].clone()))
        );
        let stderr = out.stderr_text();
        assert!(
            stderr.contains("backstop")
                && stderr.contains("the image the standards judged")
                && stderr.contains("removed"),
            "{stderr}"
        );
    }
    // `docker run -d` (create, then start) is refused the same way. (An
    // attached run fails at its attach, whose refusal the CLI prints as
    // "unable to upgrade to tcp, received 403" without the reason.)
    let run = names.name("run");
    let out = shim.docker(&["run", "-d", "--name", &run, &moved, "id", "-u"]);
    assert!(
        !out.status.success(),
        "ran: {} {}",
        out.stdout_text(),
        out.stderr_text()
    );
    assert!(out.stderr_text().contains("backstop"), "{}", out.stderr_text());
    assert!(inspect(&name).is_none(), "the container is still on dockerd");
    assert!(inspect(&run).is_none(), "the run's container is still on dockerd");

    // A create whose record matches is untouched (the must-not side).
    let name = names.name("faithful");
    shim.docker(&["create", "--name", &name, BUSYBOX_NONROOT, "true"])
        .assert_success("a faithful create");
    let record = inspect(&name).expect("the faithful container exists");
    assert_eq!(record["Config"]["User"], json!("1000:1000"));
}

/// The backstop after start: a container whose record says a non-root user
/// but whose process runs as uid 0 is stopped (never removed), with the
/// evidence in the log; an honest container is checked and left running.
/// The difference of reading is made by a dockerd that lies about one
/// container's `Config.User`, as a reading the shim got wrong would.
#[test]
fn a_container_running_as_root_against_its_record_is_stopped_after_start() {
    require_dockerd();
    let names = Names::new("rootcheck");
    let liar = names.name("liar");
    let out = direct_docker(&["create", "--name", &liar, "--user", "0", BUSYBOX, "sleep", "3600"]);
    out.assert_success("docker create --user 0 on dockerd");
    let id = out.stdout_text().trim().to_string();
    names.track_container(&id);
    let mut record = raw_request(
        DOCKERD_SOCKET,
        &bodyless_request("GET", &format!("/containers/{id}/json")),
    )
    .json();
    record["Config"]["User"] = json!("1000");
    let lie: &'static str = Box::leak(record.to_string().into_boxed_str());
    let faulty = FaultyDockerd::start(&id, 200, lie);
    let shim = Shim::builder(ENFORCE)
        .upstream(format!("unix://{}", faulty.path.display()))
        .rust_log("info,forge_shim::lifecycle::rootcheck=debug")
        .start();

    // The must-not side first: an honest non-root container is checked and
    // keeps running.
    let honest = names.name("honest");
    let out = shim.docker(&["run", "-d", "--name", &honest, BUSYBOX_NONROOT, "sleep", "3600"]);
    out.assert_success("docker run of a non-root image");
    let honest_id = out.stdout_text().trim().to_string();
    wait_until("the honest container's check", Duration::from_secs(30), || {
        shim.log()
            .lines()
            .any(|l| l.contains("a started container runs as its user") && l.contains(&honest_id))
    });

    direct_docker(&["start", &liar]).assert_success("docker start on dockerd");
    wait_until("the liar stopped", Duration::from_secs(60), || {
        inspect(&liar).is_some_and(|r| r["State"]["Running"] == json!(false))
    });
    let log = shim.log();
    let line = log
        .lines()
        .find(|l| l.contains("stopping a container running as root"))
        .unwrap_or_else(|| panic!("no stop in the log:\n{log}"));
    assert!(
        line.contains(&id) && line.contains("User \"1000\" is uid 1000"),
        "{line}"
    );
    // Stopped, never removed; the honest one is untouched.
    assert!(inspect(&liar).is_some(), "the container was removed");
    let honest_record = inspect(&honest).expect("the honest container exists");
    assert_eq!(
        honest_record["State"]["Running"],
        json!(true),
        "the honest container was stopped"
    );
}

/// A client that hangs up after sending its create, while dockerd makes the
/// container (its answer held back here): the create runs to its end in
/// the shim without the client. The container is recorded as the shim's,
/// never reported as a bypass, and the backstop still checks it: its start
/// waits for the check, then goes on (it breaches nothing).
#[test]
fn a_create_whose_client_hangs_up_is_still_recorded_and_checked() {
    require_dockerd();
    let names = Names::new("hangup");
    let slow = FaultyDockerd::delaying_creates(Duration::from_millis(1500));
    let shim = Shim::builder(&format!(
        "{ENFORCE}bypass: {{ action: report, scope: [ {{ name: \"{}-*\" }} ] }}\n",
        names.prefix()
    ))
    .upstream(format!("unix://{}", slow.path.display()))
    .start();
    let name = names.name("gone");
    let body = json!({ "Image": BUSYBOX_NONROOT, "Cmd": ["true"] }).to_string();
    let request = format!(
        "POST /v1.41/containers/create?name={name} HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut client = UnixStream::connect(shim.socket_path()).expect("connect");
    client.write_all(request.as_bytes()).expect("send the create");
    wait_until("dockerd makes the container", Duration::from_secs(30), || {
        inspect(&name).is_some()
    });
    // Gone before the answer, which the stand-in still holds back.
    drop(client);
    let id = inspect(&name).expect("made")["Id"].as_str().unwrap().to_string();
    names.track_container(&id);

    // A control made straight on dockerd is reported once judged; the
    // judgement of the container above waits for its create to end.
    let direct = direct_create(&names, "direct", json!({ "Image": BUSYBOX, "Cmd": ["true"] }));
    let direct_id = inspect(&direct).unwrap()["Id"].as_str().unwrap().to_string();
    let bypassed = |id: &str| {
        let answer = shim.get("/_forge/v1/bypasses");
        let list: Value = serde_json::from_slice(&answer.body).expect("JSON");
        list["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["id"].as_str() == Some(id))
    };
    wait_until("the control is reported", Duration::from_secs(120), || {
        bypassed(&direct_id)
    });
    assert!(!bypassed(&id), "a create whose client hung up was reported as a bypass");
    // Checked: its start through the shim goes on.
    shim.docker(&["start", &name])
        .assert_success("start of the hung-up create");
    shim.assert_no_panic();
}
