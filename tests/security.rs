//! The standards hold against the ways around them that live in the proxy
//! itself: dockerd's greedy routes, builds and plugins, and floods of
//! connections. Each test checks the outcome on dockerd's own view (through
//! its socket, not the shim's).

mod common;

use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;

/// The embedded standards (enforce), without sleeping.
const STANDARDS: &str = "auto_sleep: { enabled: false }\n";

fn inspect_direct(name: &str, format: &str) -> String {
    let out = direct_docker(&["inspect", "--format", format, name]);
    out.assert_success("docker inspect on dockerd");
    out.stdout_text().trim().to_string()
}

// ---------------------------------------------------------------------------
// routes as dockerd routes them

#[test]
fn a_link_alias_path_reaches_the_standards_like_any_other() {
    require_dockerd();
    let shim = Shim::start(STANDARDS);
    let names = Names::new("alias");
    let target = names.name("target");
    let linker = names.name("linker");
    // The target is made through the shim, so it has the default limits.
    let mut args = vec!["run", "-d", "--name", &target];
    args.extend_from_slice(&NO_SLEEP);
    args.extend_from_slice(&[BUSYBOX, "sleep", "3600"]);
    shim.docker(&args).assert_success("docker run target");
    let memory_before = inspect_direct(&target, "{{.HostConfig.Memory}}");
    assert_ne!(memory_before, "0", "the standards set a memory limit");
    // A linker that calls the target `alias`: dockerd then knows the target
    // also as `/<linker>/alias`.
    let link = format!("{target}:alias");
    let mut args = vec!["run", "-d", "--name", &linker, "--link", &link];
    args.extend_from_slice(&NO_SLEEP);
    args.extend_from_slice(&[BUSYBOX, "sleep", "3600"]);
    shim.docker(&args).assert_success("docker run linker");

    // dockerd routes this to the target's update (checked straight on it:
    // a harmless update through the alias path answers 200).
    let harmless = json_request(
        "POST",
        &format!("/v1.23/containers/{linker}/alias/update"),
        &serde_json::json!({ "CpuShares": 512 }),
    );
    let direct = raw_request(DOCKERD_SOCKET, &harmless);
    assert_eq!(
        direct.status,
        200,
        "dockerd routes the alias path: {}",
        direct.body_text()
    );

    // Through the shim, lifting the limit by that path is judged and denied.
    let lift = json_request(
        "POST",
        &format!("/v1.23/containers/{linker}/alias/update"),
        &serde_json::json!({ "Memory": 64i64 << 30, "MemorySwap": -1 }),
    );
    let answer = raw_request(shim.socket_path(), &lift);
    assert_eq!(answer.status, 403, "{}", answer.body_text());
    assert!(
        answer.body_text().contains("forge-shim: standards:"),
        "{}",
        answer.body_text()
    );
    assert_eq!(inspect_direct(&target, "{{.HostConfig.Memory}}"), memory_before);

    // A privileged exec by the same path is judged too.
    let exec = json_request(
        "POST",
        &format!("/v1.23/containers/{linker}/alias/exec"),
        &serde_json::json!({ "Cmd": ["id"], "Privileged": true }),
    );
    let answer = raw_request(shim.socket_path(), &exec);
    assert_eq!(answer.status, 403, "{}", answer.body_text());

    // And a start with a HostConfig body (API 1.23 applied it) is refused.
    let start = json_request(
        "POST",
        &format!("/v1.23/containers/{linker}/alias/start"),
        &serde_json::json!({ "Privileged": true }),
    );
    let answer = raw_request(shim.socket_path(), &start);
    assert_eq!(answer.status, 400, "{}", answer.body_text());
    assert_eq!(inspect_direct(&target, "{{.HostConfig.Privileged}}"), "false");
}

// ---------------------------------------------------------------------------
// build and plugins

#[test]
fn builds_get_no_host_network_and_keep_their_limits() {
    require_dockerd();
    let shim = Shim::start(STANDARDS);
    let names = Names::new("build");
    let context = shim.dir().join("context");
    std::fs::create_dir_all(&context).unwrap();
    // The step prints its own memory limit (cgroup v1, and v2 as fallback).
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {BUSYBOX}\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null \
             || cat /sys/fs/cgroup/memory.max; echo built\n"
        ),
    )
    .unwrap();
    let context = context.to_str().unwrap();
    let tag = names.image("built");
    let denied = shim
        .docker_command(&["build", "--network", "host", "-t", &tag, context])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(!denied.status.success(), "a host-network build went through");
    assert!(
        denied.stderr_text().contains("standards.deny.host_network"),
        "{}",
        denied.stderr_text()
    );
    assert!(
        !direct_docker(&["image", "inspect", &tag]).status.success(),
        "no image was built"
    );

    names.track_image(&tag);
    let built = shim
        .docker_command(&["build", "--no-cache", "-t", &tag, context])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    built.assert_success("docker build (classic builder)");
    let log = built.stdout_text();
    // limits.memory in the embedded config: 4G.
    assert!(
        log.contains(&(4u64 << 30).to_string()),
        "the step ran without the limit:\n{log}"
    );
}

#[test]
fn plugins_cannot_be_installed() {
    require_dockerd();
    let shim = Shim::start(STANDARDS);
    let out = shim.docker(&["plugin", "install", "--grant-all-permissions", "forge-test/plugin"]);
    assert!(!out.status.success());
    assert!(
        out.stderr_text().contains("standards.deny.plugins"),
        "{}",
        out.stderr_text()
    );
    let answer = raw_request(
        shim.socket_path(),
        &bodyless_request("POST", "/v1.41/plugins/some/name/enable"),
    );
    assert_eq!(answer.status, 403, "{}", answer.body_text());
}

// ---------------------------------------------------------------------------
// security options the shim cannot read

#[test]
fn a_seccomp_profile_the_shim_cannot_read_is_denied() {
    require_dockerd();
    let shim = Shim::start(STANDARDS);
    let names = Names::new("seccomp");
    let dir = tempfile::tempdir().unwrap();
    // An allow-all profile spelled two ways Go reads and serde_json does not.
    let surrogate = r#"{"defaultAction":"SCMP_ACT_ALLOW","x":"\ud800"}"#.to_string();
    let deep = format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","x":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    for (what, profile) in [("surrogate", surrogate), ("deep", deep)] {
        let path = dir.path().join(format!("{what}.json"));
        std::fs::write(&path, profile).unwrap();
        let name = names.name(what);
        let opt = format!("seccomp={}", path.display());
        let out = shim.docker(&["create", "--name", &name, "--security-opt", &opt, BUSYBOX, "true"]);
        assert!(!out.status.success(), "{what}: created");
        assert!(
            out.stderr_text().contains("cannot be checked") && out.stderr_text().contains("seccomp"),
            "{what}: {}",
            out.stderr_text()
        );
        let inspect = direct_docker(&["inspect", &name]);
        assert!(!inspect.status.success(), "{what}: the container exists on dockerd");
        // dockerd itself takes the profile: the denial is the shim's.
        let direct = names.name(&format!("{what}-direct"));
        direct_docker(&["create", "--name", &direct, "--security-opt", &opt, BUSYBOX, "true"])
            .assert_success(&format!("{what}: dockerd accepts the profile"));
    }
}

#[test]
fn unlimited_swap_is_refused_on_create_and_update() {
    require_dockerd();
    let shim = Shim::start(STANDARDS);
    let names = Names::new("swap");
    let name = names.name("c");
    let out = shim.docker(&[
        "create",
        "--name",
        &name,
        "--memory",
        "256m",
        "--memory-swap",
        "-1",
        BUSYBOX,
        "true",
    ]);
    assert!(!out.status.success(), "created with unlimited swap");
    assert!(out.stderr_text().contains("unlimited swap"), "{}", out.stderr_text());
    assert!(
        !direct_docker(&["inspect", &name]).status.success(),
        "exists on dockerd"
    );

    let mut args = vec!["run", "-d", "--name", &name, "--memory", "256m"];
    args.extend_from_slice(&NO_SLEEP);
    args.extend_from_slice(&[BUSYBOX, "sleep", "3600"]);
    shim.docker(&args).assert_success("docker run");
    let before = inspect_direct(&name, "{{.HostConfig.MemorySwap}}");
    let out = shim.docker(&["update", "--memory-swap", "-1", &name]);
    assert!(!out.status.success(), "update to unlimited swap went through");
    assert!(out.stderr_text().contains("unlimited swap"), "{}", out.stderr_text());
    assert_eq!(inspect_direct(&name, "{{.HostConfig.MemorySwap}}"), before);
    // A bounded swap is still the user's to set.
    shim.docker(&["update", "--memory", "256m", "--memory-swap", "512m", &name])
        .assert_success("a bounded swap");
}

// ---------------------------------------------------------------------------
// floods

#[test]
fn a_flood_of_idle_connections_does_not_keep_docker_out() {
    require_dockerd();
    let shim = Shim::start(&format!("{PASSTHROUGH_CONFIG}max_connections: 100\n"));
    // Five times the limit, none of which ever sends a byte.
    let mut flood = Vec::new();
    for _ in 0..500 {
        match UnixStream::connect(shim.socket_path()) {
            Ok(stream) => flood.push(stream),
            Err(e) => panic!("connect failed after {}: {e}", flood.len()),
        }
    }
    shim.docker(&["ps", "-q"]).assert_success("docker ps during the flood");
    let health = shim.health();
    assert!(
        health.connections_open <= 110,
        "the limit holds: {} open",
        health.connections_open
    );
    drop(flood);
}

#[test]
fn busy_connections_are_never_cut_and_the_next_one_is_told_why() {
    require_dockerd();
    let shim = Shim::start(&format!("{PASSTHROUGH_CONFIG}max_connections: 3\n"));
    // Three event streams: busy, not idle.
    let mut streams: Vec<RawConnection> = (0..3)
        .map(|_| {
            let mut connection = RawConnection::connect(shim.socket_path());
            connection.send(&bodyless_request("GET", "/v1.41/events"));
            let head = connection.read_head();
            assert_eq!(head.status, 200);
            connection
        })
        .collect();
    let refused = shim.docker(&["ps"]);
    assert!(!refused.status.success(), "a fourth connection got through");
    assert!(
        refused.stderr_text().contains("forge-shim: too many connections"),
        "{}",
        refused.stderr_text()
    );
    for stream in &mut streams {
        assert!(
            !stream.closed_within(Duration::from_millis(300)),
            "a busy stream was cut"
        );
    }
    drop(streams);
    wait_until("a slot is free again", Duration::from_secs(30), || {
        shim.docker(&["ps", "-q"]).status.success()
    });
}

#[test]
fn an_idle_connection_is_closed_and_a_streaming_one_is_not() {
    require_dockerd();
    let shim = Shim::start(&format!("{PASSTHROUGH_CONFIG}timeouts: {{ client_idle: 1s }}\n"));
    let mut idle = RawConnection::connect(shim.socket_path());
    idle.send(&bodyless_request("GET", "/_ping"));
    assert_eq!(idle.read_response(false).status, 200);
    let mut streaming = RawConnection::connect(shim.socket_path());
    streaming.send(&bodyless_request("GET", "/v1.41/events"));
    assert_eq!(streaming.read_head().status, 200);
    assert!(
        idle.closed_within(Duration::from_secs(30)),
        "an idle connection stays open"
    );
    assert!(
        !streaming.closed_within(Duration::from_secs(3)),
        "a streaming response was cut as idle"
    );
}

#[test]
fn a_judged_body_that_dribbles_is_answered_408() {
    require_dockerd();
    let shim = Shim::start(&format!("{STANDARDS}timeouts: {{ body_read: 1s }}\n"));
    let mut connection = RawConnection::connect(shim.socket_path());
    connection.send(
        b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    );
    let answer = connection.read_response(false);
    assert_eq!(answer.status, 408, "{}", answer.body_text());
    assert!(
        answer.body_text().contains("forge-shim: request body not received"),
        "{}",
        answer.body_text()
    );
}

// ---------------------------------------------------------------------------
// top-level HostConfig fields, as dockerd reads them

/// docker-py (`pip install docker`) creating through the shim, from a
/// Python script given on stdin; prints the create answer.
fn docker_py(shim: &Shim, script: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-").arg(shim.docker_host()).args(args);
    cmd.stdin(std::process::Stdio::piped());
    run_with_input(cmd, script.as_bytes(), Duration::from_secs(120))
}

#[test]
fn docker_py_create_with_runtime_gets_the_standards() {
    require_dockerd();
    let shim = Shim::start(STANDARDS);
    let names = Names::new("docker-py");
    let name = names.name("runtime");
    // docker-py puts `Runtime` at the top level of the body, beside
    // `"HostConfig": null` (its own integration test test_create_with_runtime).
    let script = "import docker, json, sys\n\
        c = docker.APIClient(base_url=sys.argv[1], version='auto')\n\
        r = c.create_container(sys.argv[3], 'true', name=sys.argv[2], runtime='runc')\n\
        print(json.dumps(r))\n";
    let out = docker_py(&shim, script, &[&name, BUSYBOX]);
    out.assert_success("docker-py create_container(runtime='runc')");
    assert!(out.stdout_text().contains("\"Id\""), "{}", out.stdout_text());
    assert_eq!(inspect_direct(&name, "{{.HostConfig.Runtime}}"), "runc");
    // And the standards, as for any create.
    assert_ne!(inspect_direct(&name, "{{.HostConfig.Memory}}"), "0");
    assert_eq!(inspect_direct(&name, "{{.HostConfig.ReadonlyRootfs}}"), "true");
    assert_eq!(inspect_direct(&name, "{{.Config.User}}"), "65534:65534");

    // The never-test: docker-py asking for privileged beside runtime= is
    // denied, and nothing is created.
    let denied = names.name("privileged");
    let script = "import docker, sys\n\
        c = docker.APIClient(base_url=sys.argv[1], version='auto')\n\
        hc = c.create_host_config(privileged=True)\n\
        try:\n    c.create_container(sys.argv[3], 'true', name=sys.argv[2], runtime='runc', host_config=hc)\n\
        except docker.errors.APIError as e:\n    print(e.status_code, e.explanation)\n    sys.exit(3)\n";
    let out = docker_py(&shim, script, &[&denied, BUSYBOX]);
    assert_eq!(out.status.code(), Some(3), "{}{}", out.stdout_text(), out.stderr_text());
    assert!(
        out.stdout_text().starts_with("403 forge-shim:"),
        "{}",
        out.stdout_text()
    );
    assert!(
        direct_docker(&["inspect", &denied]).status.code() != Some(0),
        "a denied create made a container"
    );
}

#[test]
fn top_level_host_config_fields_are_judged_as_dockerd_uses_them() {
    require_dockerd();
    let shim = Shim::start(STANDARDS);
    let names = Names::new("top-level");

    // No HostConfig: dockerd would make this privileged. Denied.
    let privileged = names.name("privileged");
    let request = json_request(
        "POST",
        &format!("/v1.41/containers/create?name={privileged}"),
        &serde_json::json!({ "Image": BUSYBOX, "privileged": true }),
    );
    let answer = raw_request(shim.socket_path(), &request);
    assert_eq!(answer.status, 403, "{}", answer.body_text());
    assert!(answer.body_text().contains("forge-shim:"), "{}", answer.body_text());
    assert!(direct_docker(&["inspect", &privileged]).status.code() != Some(0));

    // Beside a HostConfig, dockerd ignores it: created, not privileged, and
    // the standards applied to the HostConfig dockerd used.
    let beside = names.name("beside");
    let request = json_request(
        "POST",
        &format!("/v1.41/containers/create?name={beside}"),
        &serde_json::json!({ "Image": BUSYBOX, "Privileged": true, "Memory": 64 << 20, "HostConfig": {} }),
    );
    let answer = raw_request(shim.socket_path(), &request);
    assert_eq!(answer.status, 201, "{}", answer.body_text());
    assert_eq!(inspect_direct(&beside, "{{.HostConfig.Privileged}}"), "false");
    // `Memory` is one of the five dockerd copies into a zero HostConfig.
    assert_eq!(
        inspect_direct(&beside, "{{.HostConfig.Memory}}"),
        (64 << 20).to_string()
    );
    assert_eq!(inspect_direct(&beside, "{{.HostConfig.ReadonlyRootfs}}"), "true");
}
