//! Transparency of the proxy core, through the real binary in front of the
//! real dockerd: every test drives the shim with the `docker` CLI, `docker
//! compose`, bollard or hand-made HTTP, checks outputs and exit codes, and
//! removes what it created (see `tests/common`).
//!
//! The shim runs with `standards: { mode: off }` and `auto_sleep: { enabled:
//! false }`: here it must behave exactly like dockerd.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// Starts a pass-through shim, after checking that dockerd is there.
fn shim() -> Shim {
    require_dockerd();
    Shim::start(PASSTHROUGH_CONFIG)
}

/// `docker run -d` a long-running busybox container named `names.name(what)`
/// through the shim; returns its name.
fn run_detached(shim: &Shim, names: &Names, what: &str, command: &[&str]) -> String {
    let name = names.name(what);
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend_from_slice(&NO_SLEEP);
    args.push(BUSYBOX);
    args.extend_from_slice(command);
    shim.docker(&args).assert_success("docker run -d");
    name
}

fn sleeper(shim: &Shim, names: &Names, what: &str) -> String {
    run_detached(shim, names, what, &["sleep", "3600"])
}

// ---------------------------------------------------------------------------
// ping, version, plain requests

#[test]
fn ping_head_and_get_carry_the_docker_headers() {
    let shim = shim();
    for path in ["/_ping", "/v1.41/_ping"] {
        for method in ["HEAD", "GET"] {
            let request = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n");
            let direct = raw_request(DOCKERD_SOCKET, request.as_bytes());
            let proxied = raw_request(shim.socket_path(), request.as_bytes());
            assert_eq!(proxied.status, 200, "{method} {path}: {proxied:?}");
            assert_eq!(proxied.status, direct.status);
            for header in ["Api-Version", "Ostype", "Docker-Experimental", "Server"] {
                let value = proxied.header(header);
                assert!(value.is_some(), "{method} {path}: no {header}: {proxied:?}");
                assert_eq!(value, direct.header(header), "{method} {path}: {header}");
            }
            if method == "GET" {
                assert_eq!(proxied.body_text(), "OK");
            } else {
                assert!(proxied.body.is_empty());
            }
        }
    }
}

/// Header names of a response, as sent and in order.
fn header_names(response: &RawResponse) -> Vec<String> {
    response.headers.iter().map(|(name, _)| name.clone()).collect()
}

#[test]
fn fast_path_answers_as_dockerd_sent_and_hands_a_phased_request_to_the_full_proxy() {
    require_dockerd();
    let names = Names::new("fastpath");
    let shim = Shim::start("auto_sleep: { enabled: false }\n");
    let ping = b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\n\r\n";
    let mut to_dockerd = RawConnection::connect(DOCKERD_SOCKET);
    to_dockerd.send(ping);
    let direct = to_dockerd.read_response(false);

    // One keep-alive connection: a ping (fast path: dockerd's own header
    // names, in its order), a create the standards deny (the full proxy
    // takes the connection over), and a ping again.
    let mut connection = RawConnection::connect(shim.socket_path());
    connection.send(ping);
    let first = connection.read_response(false);
    assert_eq!((first.status, first.body_text().as_str()), (200, "OK"));
    assert_eq!(header_names(&first), header_names(&direct), "{first:?}");
    assert!(header_names(&first).iter().any(|n| n == "Api-Version"), "{first:?}");
    let health = shim.health();
    assert!(health.requests_fast_path >= 1, "{health:?}");
    let metrics = shim.get("/_forge/v1/metrics").body_text();
    let fast: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("forge_shim_requests_fast_path_total "))
        .unwrap_or_else(|| panic!("no fast-path counter in the metrics:\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(fast >= 1, "{metrics}");

    let denied = names.name("denied");
    connection.send(privileged_create(&denied).as_bytes());
    let refused = connection.read_response(false);
    assert_eq!(refused.status, 403, "{refused:?}");
    let message = refused.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("standards.deny.privileged"), "{message}");

    connection.send(ping);
    let third = connection.read_response(false);
    assert_eq!((third.status, third.body_text().as_str()), (200, "OK"));

    // Pipelined in one write: two fast requests, a denied create (which
    // hands the rest over), then a fast one again; answered in order.
    let mut pipelined = RawConnection::connect(shim.socket_path());
    let mut bytes = ping.to_vec();
    bytes.extend_from_slice(b"GET /v1.41/version HTTP/1.1\r\nHost: docker\r\n\r\n");
    bytes.extend_from_slice(privileged_create(&denied).as_bytes());
    bytes.extend_from_slice(b"GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n");
    pipelined.send(&bytes);
    assert_eq!(pipelined.read_response(false).body_text(), "OK");
    let version = pipelined.read_response(false);
    assert!(version.json()["ApiVersion"].is_string(), "{version:?}");
    assert_eq!(pipelined.read_response(false).status, 403);
    let list = pipelined.read_response(false);
    assert!(list.json().is_array(), "{list:?}");
    assert!(
        pipelined.closed_within(Duration::from_secs(30)),
        "Connection: close was not honoured"
    );
    assert_eq!(
        direct_docker(&["ps", "-aq", "--filter", &format!("name=^/{denied}$")])
            .stdout_text()
            .trim(),
        "",
        "the denied create reached dockerd"
    );

    // A client that shuts its write half after its requests still gets
    // every answer.
    let mut half_closed = RawConnection::connect(shim.socket_path());
    let mut bytes = ping.to_vec();
    bytes.extend_from_slice(ping);
    half_closed.send(&bytes);
    half_closed.shutdown_write();
    assert_eq!(half_closed.read_response(false).body_text(), "OK");
    assert_eq!(half_closed.read_response(false).body_text(), "OK");
    assert!(half_closed.closed_within(Duration::from_secs(30)));

    // With `fast_path: false` every request is re-encoded by hyper, which
    // writes header names in lower case.
    let hyper_only = Shim::start("auto_sleep: { enabled: false }\nfast_path: false\n");
    let mut connection = RawConnection::connect(hyper_only.socket_path());
    connection.send(ping);
    let response = connection.read_response(false);
    assert_eq!((response.status, response.body_text().as_str()), (200, "OK"));
    assert!(
        header_names(&response).iter().any(|n| n == "api-version"),
        "{response:?}"
    );
    names.cleanup();
}

#[test]
fn version_and_info_come_from_the_same_dockerd() {
    let shim = shim();
    let format = "{{.Server.Version}} {{.Server.APIVersion}}";
    let proxied = shim.docker(&["version", "--format", format]);
    proxied.assert_success("docker version through the shim");
    let direct = direct_docker(&["version", "--format", format]);
    assert_eq!(proxied.stdout_text(), direct.stdout_text());

    let proxied = shim.docker(&["info", "--format", "{{.ID}}"]);
    proxied.assert_success("docker info");
    assert_eq!(
        proxied.stdout_text(),
        direct_docker(&["info", "--format", "{{.ID}}"]).stdout_text()
    );

    // With and without the version prefix.
    for path in ["/version", "/v1.41/version"] {
        let response = shim.get(path);
        assert_eq!(response.status, 200, "{path}");
        assert!(response.json()["ApiVersion"].is_string(), "{path}");
    }
}

#[test]
fn keep_alive_connection_serves_many_requests() {
    let shim = shim();
    let mut connection = RawConnection::connect(shim.socket_path());
    for i in 0..20 {
        let path = if i % 2 == 0 { "/_ping" } else { "/v1.41/version" };
        connection.send(format!("GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n").as_bytes());
        let response = connection.read_response(false);
        assert_eq!(response.status, 200, "request {i} ({path})");
    }
    let health = shim.health();
    assert!(health.requests_total >= 20, "{health:?}");
}

#[test]
fn chunked_create_body_is_forwarded() {
    let shim = shim();
    let names = Names::new("chunked_create");
    let name = names.name("c");
    let body = serde_json::json!({ "Image": BUSYBOX, "Cmd": ["true"] });
    let body = chunked(&serde_json::to_vec(&body).unwrap(), 7);
    let mut request = format!(
        "POST /v1.41/containers/create?name={name} HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let response = raw_request(shim.socket_path(), &request);
    assert_eq!(response.status, 201, "{}", response.body_text());
    let id = response.json()["Id"].as_str().unwrap().to_string();
    let inspect = direct_docker(&["inspect", "--format", "{{.Name}} {{.Config.Image}}", &id]);
    inspect.assert_success("inspect");
    assert_eq!(inspect.stdout_text().trim(), format!("/{name} {BUSYBOX}"));
}

// ---------------------------------------------------------------------------
// run, exec, attach: hijacked streams

#[test]
fn run_prints_output_and_propagates_the_exit_code() {
    let shim = shim();
    let names = Names::new("run_output");
    let name = names.name("c");
    let out = shim.docker(&[
        "run",
        "--rm",
        "--name",
        &name,
        BUSYBOX,
        "sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; exit 3",
    ]);
    out.assert_code(3, "docker run");
    assert_eq!(out.stdout_text(), "to-stdout\n");
    assert!(out.stderr_text().contains("to-stderr"), "{}", out.stderr_text());
}

#[test]
fn run_interactive_round_trips_stdin_from_a_file() {
    let shim = shim();
    let names = Names::new("run_stdin");
    let input = shim.dir().join("input.bin");
    write_random_file(&input, 3 << 20);
    let mut cmd = shim.docker_command(&["run", "-i", "--rm", "--name", &names.name("c"), BUSYBOX, "cat"]);
    cmd.stdin(std::fs::File::open(&input).unwrap());
    let out = run_with_timeout(cmd, DOCKER_TIMEOUT);
    out.assert_success("docker run -i cat < file");
    assert!(
        out.stdout == std::fs::read(&input).unwrap(),
        "stdout ({} bytes) differs from the input file",
        out.stdout.len()
    );
}

#[test]
fn exec_interactive_sees_stdin_eof_and_exits() {
    let shim = shim();
    let names = Names::new("exec_stdin");
    let c = sleeper(&shim, &names, "c");
    let out = shim.docker_with_input(&["exec", "-i", &c, "cat"], b"hi\n");
    out.assert_success("echo hi | docker exec -i C cat");
    assert_eq!(out.stdout_text(), "hi\n");

    // A bigger stdin, counted on the other side.
    let big = vec![b'x'; 1 << 20];
    let out = shim.docker_with_input(&["exec", "-i", &c, "wc", "-c"], &big);
    out.assert_success("docker exec -i C wc -c");
    assert_eq!(out.stdout_text().trim(), (1 << 20).to_string());
}

#[test]
fn a_multi_threaded_shim_serves_the_same_calls() {
    // `worker_threads: 2` runs the work-stealing runtime instead of the
    // default single thread: requests, hijacked streams and plain bodies
    // must behave the same.
    require_dockerd();
    let shim = Shim::start(&format!("{PASSTHROUGH_CONFIG}worker_threads: 2\n"));
    let names = Names::new("multi_thread");
    let c = sleeper(&shim, &names, "c");
    let out = shim.docker_with_input(&["exec", "-i", &c, "cat"], b"hi\n");
    out.assert_success("echo hi | docker exec -i C cat");
    assert_eq!(out.stdout_text(), "hi\n");
    let out = shim.docker(&["ps", "--filter", &format!("name={c}"), "--format", "{{.Names}}"]);
    out.assert_success("docker ps");
    assert_eq!(out.stdout_text().trim(), c);
}

#[test]
fn exec_without_stdin_returns_with_the_exit_code() {
    let shim = shim();
    let names = Names::new("exec_nostdin");
    let c = sleeper(&shim, &names, "c");
    let out = shim.docker(&["exec", &c, "true"]);
    out.assert_success("docker exec C true");
    assert_eq!(out.stdout_text(), "");
    let out = shim.docker(&["exec", &c, "sh", "-c", "echo out; echo err >&2; exit 7"]);
    out.assert_code(7, "docker exec C sh -c 'exit 7'");
    assert_eq!(out.stdout_text(), "out\n");
    assert!(out.stderr_text().contains("err"));
}

#[test]
fn run_tty_in_a_pseudo_terminal() {
    let shim = shim();
    let names = Names::new("run_tty");
    let out = shim.docker_in_pty(
        &[
            "run",
            "-it",
            "--rm",
            "--name",
            &names.name("c"),
            BUSYBOX,
            "sh",
            "-c",
            "tty; exit 5",
        ],
        DOCKER_TIMEOUT,
    );
    out.assert_code(5, "docker run -it under script");
    assert!(out.stdout_text().contains("/dev/pts/"), "{}", out.stdout_text());
}

#[test]
fn exec_tty_in_a_pseudo_terminal() {
    let shim = shim();
    let names = Names::new("exec_tty");
    let c = sleeper(&shim, &names, "c");
    let out = shim.docker_in_pty(&["exec", "-it", &c, "sh", "-c", "tty; exit 4"], DOCKER_TIMEOUT);
    out.assert_code(4, "docker exec -it under script");
    assert!(out.stdout_text().contains("/dev/pts/"), "{}", out.stdout_text());
}

#[test]
fn attach_and_start_attach_stream_both_ways() {
    let shim = shim();
    let names = Names::new("attach");

    // `docker start -ai`: attach before start, stdin included.
    let created = names.name("created");
    shim.docker(&[
        "create",
        "-i",
        "--label",
        "forge.sleep=false",
        "--name",
        &created,
        BUSYBOX,
        "sh",
        "-c",
        "read line; echo got:$line; exit 3",
    ])
    .assert_success("docker create -i");
    let out = shim.docker_with_input(&["start", "-ai", &created], b"hello\n");
    out.assert_code(3, "docker start -ai");
    assert_eq!(out.stdout_text(), "got:hello\n");

    // `docker attach` to a running container: its output flows until it
    // exits, and the exit code comes back. (Stdin is not used here: after
    // stdin EOF dockerd ends a non-`StdinOnce` attach, racing the output,
    // with or without the shim.)
    let running = run_detached(
        &shim,
        &names,
        "running",
        &[
            "sh",
            "-c",
            "while [ ! -f /tmp/stop ]; do echo tick; sleep 0.2; done; echo bye; exit 4",
        ],
    );
    let mut attach = spawn_streaming(shim.docker_command(&["attach", &running]));
    attach.wait_for_line("tick", DOCKER_TIMEOUT, |l| l == "tick");
    shim.docker(&["exec", &running, "touch", "/tmp/stop"])
        .assert_success("docker exec touch");
    attach.wait_for_line("bye", DOCKER_TIMEOUT, |l| l == "bye");
    let status = attach
        .wait_exit(DOCKER_TIMEOUT)
        .expect("docker attach did not exit after the container did");
    assert_eq!(status.code(), Some(4), "docker attach exit status");
}

#[test]
fn exec_start_without_upgrade_streams_until_close() {
    // The older hijack: no Upgrade header, 200 raw-stream with no length.
    let shim = shim();
    let names = Names::new("exec_noupgrade");
    let c = sleeper(&shim, &names, "c");
    let create = raw_request(
        shim.socket_path(),
        &json_request(
            "POST",
            &format!("/v1.41/containers/{c}/exec"),
            &serde_json::json!({
                "AttachStdout": true, "AttachStderr": true, "Tty": true,
                "Cmd": ["sh", "-c", "echo legacy-one; sleep 1; echo legacy-two"],
            }),
        ),
    );
    assert_eq!(create.status, 201, "{}", create.body_text());
    let exec_id = create.json()["Id"].as_str().unwrap().to_string();
    let mut connection = RawConnection::connect(shim.socket_path());
    let body = br#"{"Detach":false,"Tty":true}"#;
    connection.send(
        format!(
            "POST /v1.41/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    connection.send(body);
    let head = connection.read_head();
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("Content-Type"), Some("application/vnd.docker.raw-stream"));
    let output = String::from_utf8_lossy(&connection.read_to_end()).into_owned();
    assert!(output.contains("legacy-one"), "{output:?}");
    assert!(output.contains("legacy-two"), "{output:?}");
}

#[test]
fn attach_errors_written_raw_reach_the_client() {
    let shim = shim();
    let names = Names::new("attach_errors");
    let attach = |target: &str| {
        raw_request(
            shim.socket_path(),
            format!(
                "POST /v1.41/containers/{target}/attach?stream=1&stdout=1 HTTP/1.1\r\n\
                 Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    let missing = attach(&names.name("missing"));
    assert_eq!(missing.status, 404, "{missing:?}");
    assert!(missing.body_text().contains("No such container"), "{missing:?}");

    let c = sleeper(&shim, &names, "paused");
    shim.docker(&["pause", &c]).assert_success("docker pause");
    let paused = attach(&c);
    assert_eq!(paused.status, 409, "{paused:?}");
    assert!(paused.body_text().contains("paused"), "{paused:?}");
    shim.docker(&["unpause", &c]).assert_success("docker unpause");
}

#[test]
fn websocket_attach_streams_output() {
    let shim = shim();
    let names = Names::new("attach_ws");
    let c = run_detached(
        &shim,
        &names,
        "c",
        &["sh", "-c", "while true; do echo ws-tick; sleep 0.2; done"],
    );
    let mut connection = RawConnection::connect(shim.socket_path());
    connection.send(
        format!(
            "GET /v1.41/containers/{c}/attach/ws?stream=1&stdout=1 HTTP/1.1\r\nHost: docker\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nOrigin: http://localhost\r\n\r\n"
        )
        .as_bytes(),
    );
    let head = connection.read_head();
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(
        head.header("Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    // Frames carry the output; the text is enough to see it flowing.
    let frames = connection.read_until_contains(b"ws-tick\n");
    assert!(frames.len() >= 2 + 8, "{frames:?}");
}

#[test]
fn logs_follow_until_the_container_exits() {
    let shim = shim();
    let names = Names::new("logs_follow");
    let c = run_detached(
        &shim,
        &names,
        "c",
        &[
            "sh",
            "-c",
            "sleep 1; for i in 1 2 3 4 5; do echo line$i; sleep 0.3; done",
        ],
    );
    let out = shim.docker(&["logs", "-f", &c]);
    out.assert_success("docker logs -f");
    assert_eq!(out.stdout_text(), "line1\nline2\nline3\nline4\nline5\n");
}

#[test]
fn wait_returns_the_exit_code() {
    let shim = shim();
    let names = Names::new("wait");
    let c = run_detached(&shim, &names, "c", &["sh", "-c", "sleep 1; exit 9"]);
    let out = shim.docker(&["wait", &c]);
    out.assert_success("docker wait");
    assert_eq!(out.stdout_text().trim(), "9");
}

// ---------------------------------------------------------------------------
// large bodies: cp, build, save/load, import

#[test]
fn cp_of_64_mib_both_ways_keeps_the_checksum() {
    let shim = shim();
    let names = Names::new("cp_large");
    let c = sleeper(&shim, &names, "c");
    let input = shim.dir().join("big.bin");
    write_random_file(&input, 64 << 20);
    let want = sha256_file(&input);

    shim.docker_timeout(
        &["cp", input.to_str().unwrap(), &format!("{c}:/tmp/big.bin")],
        Duration::from_secs(600),
    )
    .assert_success("docker cp into the container");
    let inside = shim.docker(&["exec", &c, "sha256sum", "/tmp/big.bin"]);
    inside.assert_success("sha256sum in the container");
    assert_eq!(first_word(&inside.stdout_text()), want, "checksum inside");

    let out_dir = shim.dir().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    shim.docker_timeout(
        &["cp", &format!("{c}:/tmp/big.bin"), out_dir.to_str().unwrap()],
        Duration::from_secs(600),
    )
    .assert_success("docker cp out of the container");
    assert_eq!(
        sha256_file(&out_dir.join("big.bin")),
        want,
        "checksum after the round trip"
    );
}

#[test]
fn cp_of_a_directory_into_a_container_extracts_it() {
    // PUT /containers/{id}/archive: without its Content-Type dockerd answers
    // 200 and extracts nothing.
    let shim = shim();
    let names = Names::new("cp_dir");
    let c = sleeper(&shim, &names, "c");
    let dir = shim.dir().join("tree");
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(dir.join("sub/b.txt"), "beta\n").unwrap();
    std::fs::write(dir.join("sub/deeper/c.txt"), "gamma\n").unwrap();
    shim.docker(&["cp", dir.to_str().unwrap(), &format!("{c}:/tmp/")])
        .assert_success("docker cp DIR C:/tmp/");
    let out = shim.docker(&[
        "exec",
        &c,
        "sh",
        "-c",
        "cd /tmp/tree && find . -type f | sort && cat a.txt sub/b.txt sub/deeper/c.txt",
    ]);
    out.assert_success("list the copied tree");
    assert_eq!(
        out.stdout_text(),
        "./a.txt\n./sub/b.txt\n./sub/deeper/c.txt\nalpha\nbeta\ngamma\n"
    );

    // `docker cp -`: a tar stream on stdin.
    let mut tar = std::process::Command::new("tar");
    tar.args(["-C", dir.to_str().unwrap(), "-cf", "-", "a.txt"]);
    let tarball = run_with_timeout(tar, Duration::from_secs(60));
    tarball.assert_success("tar");
    shim.docker(&["exec", &c, "mkdir", "/tmp/from-stdin"])
        .assert_success("mkdir");
    shim.docker_with_input(&["cp", "-", &format!("{c}:/tmp/from-stdin")], &tarball.stdout)
        .assert_success("docker cp - C:/tmp/from-stdin");
    let out = shim.docker(&["exec", &c, "cat", "/tmp/from-stdin/a.txt"]);
    out.assert_success("cat the file from the tar stream");
    assert_eq!(out.stdout_text(), "alpha\n");
}

/// A build context with an 8 MiB payload; returns the payload's checksum.
fn build_context(dir: &Path, dockerfile: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    write_random_file(&dir.join("payload.bin"), 8 << 20);
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    sha256_file(&dir.join("payload.bin"))
}

#[test]
fn classic_build_with_a_context() {
    let shim = shim();
    let names = Names::new("build_classic");
    let ctx = shim.dir().join("ctx");
    let want = build_context(
        &ctx,
        &format!(
            "FROM {BUSYBOX}\nCOPY payload.bin /payload.bin\nRUN sha256sum /payload.bin > /payload.sum\n\
             CMD [\"cat\", \"/payload.sum\"]\n"
        ),
    );
    let image = names.image("classic");
    let mut cmd = shim.docker_command(&["build", "-t", &image, ctx.to_str().unwrap()]);
    cmd.env("DOCKER_BUILDKIT", "0");
    let out = run_with_timeout(cmd, Duration::from_secs(600));
    out.assert_success("DOCKER_BUILDKIT=0 docker build");
    let out = shim.docker(&["run", "--rm", "--name", &names.name("run"), &image]);
    out.assert_success("run the built image");
    assert_eq!(first_word(&out.stdout_text()), want);
}

#[test]
fn buildkit_build_through_compose_session_and_grpc() {
    // `docker compose build` talks BuildKit through POST /session and
    // POST /grpc (h2c upgrades); `RUN --mount` only exists in BuildKit, so
    // a success proves that path worked.
    let shim = shim();
    let names = Names::new("build_buildkit");
    let ctx = shim.dir().join("bk");
    let want = build_context(
        &ctx,
        &format!(
            "FROM {BUSYBOX}\nCOPY payload.bin /payload.bin\n\
             RUN --mount=type=cache,target=/cache sha256sum /payload.bin > /payload.sum && echo cached > /cache/mark\n\
             CMD [\"cat\", \"/payload.sum\"]\n"
        ),
    );
    let image = names.image("bk");
    std::fs::write(
        ctx.join("compose.yaml"),
        format!("services:\n  app:\n    build: .\n    image: {image}\n    pull_policy: never\n"),
    )
    .unwrap();
    let project = names.project("bk");
    let compose_file = ctx.join("compose.yaml");
    let out = shim.docker_timeout(
        &["compose", "-p", &project, "-f", compose_file.to_str().unwrap(), "build"],
        Duration::from_secs(600),
    );
    out.assert_success("docker compose build");
    let out = shim.docker(&["run", "--rm", "--name", &names.name("run"), &image]);
    out.assert_success("run the BuildKit-built image");
    assert_eq!(first_word(&out.stdout_text()), want);
}

#[test]
fn save_and_load_round_trip_an_image() {
    let shim = shim();
    let names = Names::new("save_load");
    let tag = names.image("saved");
    shim.docker(&["tag", BUSYBOX, &tag]).assert_success("docker tag");
    let id = shim.docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    id.assert_success("inspect");
    let archive = shim.dir().join("image.tar");
    shim.docker(&["save", "-o", archive.to_str().unwrap(), &tag])
        .assert_success("docker save");
    assert!(
        std::fs::metadata(&archive).unwrap().len() > 1 << 20,
        "archive too small"
    );
    shim.docker(&["image", "rm", &tag]).assert_success("docker image rm");

    // Load from stdin: a streamed request body.
    let mut cmd = shim.docker_command(&["load"]);
    cmd.stdin(std::fs::File::open(&archive).unwrap());
    let out = run_with_timeout(cmd, DOCKER_TIMEOUT);
    out.assert_success("docker load < archive");
    assert!(
        out.stdout_text().contains(&format!("Loaded image: {tag}")),
        "{}",
        out.stdout_text()
    );
    let again = shim.docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    again.assert_success("inspect after load");
    assert_eq!(again.stdout_text(), id.stdout_text());
}

#[test]
fn export_and_import_from_stdin() {
    let shim = shim();
    let names = Names::new("import");
    let c = names.name("src");
    shim.docker(&["create", "--name", &c, BUSYBOX, "true"])
        .assert_success("docker create");
    let tarball = shim.dir().join("rootfs.tar");
    shim.docker(&["export", "-o", tarball.to_str().unwrap(), &c])
        .assert_success("docker export");
    let image = names.image("imported");
    let mut cmd = shim.docker_command(&["import", "-", &image]);
    cmd.stdin(std::fs::File::open(&tarball).unwrap());
    let out = run_with_timeout(cmd, DOCKER_TIMEOUT);
    out.assert_success("docker import - < rootfs.tar");
    assert!(out.stdout_text().starts_with("sha256:"), "{}", out.stdout_text());
    let out = shim.docker(&[
        "run",
        "--rm",
        "--name",
        &names.name("run"),
        &image,
        "/bin/busybox",
        "echo",
        "imported-ok",
    ]);
    out.assert_success("run the imported image");
    assert_eq!(out.stdout_text(), "imported-ok\n");
}

// ---------------------------------------------------------------------------
// long streams: events, stats

#[test]
fn events_stream_shows_create_start_die() {
    let shim = shim();
    let names = Names::new("events");
    let c = names.name("c");
    let since = (unix_now() - 2).to_string();
    // A live stream (no --until) that replays from `since`: no race with
    // the container below.
    let mut events = spawn_streaming(shim.docker_command(&[
        "events",
        "--since",
        &since,
        "--filter",
        &format!("container={c}"),
        "--format",
        "{{.Action}}",
    ]));
    shim.docker(&["run", "--name", &c, BUSYBOX, "true"])
        .assert_success("docker run");
    events.wait_for_line("die", DOCKER_TIMEOUT, |l| l == "die");
    let lines = events.lines();
    for action in ["create", "start", "die"] {
        assert!(lines.iter().any(|l| l == action), "no {action} in {lines:?}");
    }
    events.kill();

    // A bounded query, --since/--until, ends by itself.
    let until = (unix_now() + 1).to_string();
    let out = shim.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        &format!("container={c}"),
        "--format",
        "{{.Action}}",
    ]);
    out.assert_success("docker events --until");
    let text = out.stdout_text();
    for action in ["create", "start", "die"] {
        assert!(text.lines().any(|l| l == action), "no {action} in {text:?}");
    }
}

#[test]
fn stats_once_and_streaming() {
    let shim = shim();
    let names = Names::new("stats");
    let c = sleeper(&shim, &names, "c");
    let out = shim.docker(&["stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}", &c]);
    out.assert_success("docker stats --no-stream");
    assert!(out.stdout_text().starts_with(&format!("{c}|")), "{}", out.stdout_text());

    // The stream: headers at once, then one JSON document per second.
    let mut connection = RawConnection::connect(shim.socket_path());
    connection.send(format!("GET /v1.41/containers/{c}/stats?stream=1 HTTP/1.1\r\nHost: docker\r\n\r\n").as_bytes());
    let head = connection.read_head();
    assert_eq!(head.status, 200, "{head:?}");
    let mut seen = Vec::new();
    while seen.iter().filter(|&&b| b == b'\n').count() < 2 {
        seen.extend(connection.read_until_contains(b"\n"));
    }
    assert!(String::from_utf8_lossy(&seen).contains("\"memory_stats\""), "{seen:?}");
}

// ---------------------------------------------------------------------------
// compose

#[test]
fn compose_up_ps_logs_exec_down() {
    let shim = shim();
    let names = Names::new("compose");
    let project = names.project("basic");
    let file = repo_path("examples/compose-basic/compose.yaml");
    let file = file.to_str().unwrap();
    // Keep the services awake whatever other shim runs on the machine.
    let no_sleep = shim.dir().join("no-sleep.yaml");
    std::fs::write(
        &no_sleep,
        "services:\n  web:\n    labels: { forge.sleep: \"false\" }\n  worker:\n    labels: { forge.sleep: \"false\" }\n",
    )
    .unwrap();
    let no_sleep = no_sleep.to_str().unwrap();
    let compose = |args: &[&str]| {
        let mut all = vec!["compose", "-p", project.as_str(), "-f", file, "-f", no_sleep];
        all.extend_from_slice(args);
        shim.docker_timeout(&all, Duration::from_secs(300))
    };

    compose(&["up", "-d"]).assert_success("compose up -d");
    let out = compose(&["ps", "--services", "--status", "running"]);
    out.assert_success("compose ps");
    let mut services: Vec<String> = out.stdout_text().lines().map(String::from).collect();
    services.sort();
    assert_eq!(services, ["web", "worker"]);

    // The published port answers from the host.
    let out = compose(&["port", "web", "8080"]);
    out.assert_success("compose port");
    let address = out.stdout_text().trim().to_string();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    let mut page = String::new();
    wait_until(
        "the web service answers on its published port",
        Duration::from_secs(60),
        || {
            page = http_get_tcp(&address).unwrap_or_default();
            page.contains("forge-test-ok")
        },
    );

    // The worker reaches `web` by name; its logs show it.
    wait_until("worker logs show the fetched page", Duration::from_secs(90), || {
        let out = compose(&["logs", "--no-color", "worker"]);
        out.status.success() && out.stdout_text().contains("forge-test-ok")
    });

    let out = compose(&["exec", "-T", "web", "cat", "/www/index.html"]);
    out.assert_success("compose exec -T");
    assert_eq!(out.stdout_text(), "forge-test-ok\n");
    let out = compose(&["exec", "-T", "worker", "sh", "-c", "exit 6"]);
    out.assert_code(6, "compose exec exit code");

    compose(&["down", "-v", "--timeout", "2"]).assert_success("compose down");
    let left = direct_docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    assert_eq!(left.stdout_text().trim(), "", "containers left after down");
    let networks = direct_docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!networks.stdout_text().contains(&project), "network left after down");
}

/// `GET /` over TCP to `host:port`, the whole response as text.
fn http_get_tcp(address: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

// ---------------------------------------------------------------------------
// bollard

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bollard_create_start_wait_logs_and_exec() {
    use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder};
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    let shim = shim();
    let names = Names::new("bollard");
    let docker = shim.bollard().await;
    let version = docker.version().await.expect("version");
    assert!(version.api_version.is_some(), "{version:?}");
    assert_eq!(docker.ping().await.expect("ping"), "OK");

    let name = names.name("c");
    let body = bollard::models::ContainerCreateBody {
        image: Some(BUSYBOX.to_string()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo bollard-out; echo bollard-err >&2; exit 4".into(),
        ]),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(CreateContainerOptionsBuilder::new().name(&name).build()), body)
        .await
        .expect("create");
    docker
        .start_container(&created.id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .expect("start");
    let waited: Vec<_> = docker
        .wait_container(&created.id, None::<bollard::query_parameters::WaitContainerOptions>)
        .collect()
        .await;
    match waited.as_slice() {
        [Err(bollard::errors::Error::DockerContainerWaitError { code, .. })] => assert_eq!(*code, 4),
        other => panic!("wait: {other:?}"),
    }
    let logs: Vec<String> = docker
        .logs(
            &created.id,
            Some(LogsOptionsBuilder::new().stdout(true).stderr(true).build()),
        )
        .map(|item| item.expect("log line").to_string())
        .collect()
        .await;
    assert!(logs.contains(&"bollard-out\n".to_string()), "{logs:?}");
    assert!(logs.contains(&"bollard-err\n".to_string()), "{logs:?}");
    docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .expect("remove");

    // Exec with stdin through an upgraded connection: write, half-close,
    // read the answer.
    let c = sleeper(&shim, &names, "exec");
    let exec = docker
        .create_exec(
            &c,
            bollard::exec::CreateExecOptions {
                cmd: Some(vec!["sh", "-c", "cat; echo done"]),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("create exec");
    let bollard::exec::StartExecResults::Attached { mut output, mut input } =
        docker.start_exec(&exec.id, None).await.expect("start exec")
    else {
        panic!("exec started detached");
    };
    input.write_all(b"from-bollard\n").await.expect("write stdin");
    input.shutdown().await.expect("half-close stdin");
    let mut text = String::new();
    let read_all = async {
        while let Some(item) = output.next().await {
            text.push_str(&item.expect("exec output").to_string());
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read_all)
        .await
        .expect("exec output ends after stdin EOF");
    assert_eq!(text, "from-bollard\ndone\n");
    let inspect = docker.inspect_exec(&exec.id).await.expect("inspect exec");
    assert_eq!(inspect.exit_code, Some(0));
}

// ---------------------------------------------------------------------------
// the shim's own API and errors

#[test]
fn health_reports_dockerd_and_version() {
    let shim = shim();
    let response = shim.get("/_forge/v1/health");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let health: Health = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not a health body ({e}): {}", response.body_text()));
    assert_eq!(health.status, "ok", "{health:?}");
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"), "{health:?}");
    assert!(health.dockerd.reachable, "{health:?}");
    assert_eq!(health.upstream, DOCKERD_SOCKET, "{health:?}");
}

#[test]
fn unknown_forge_endpoint_is_a_json_404() {
    let shim = shim();
    let response = shim.get("/_forge/v1/nope");
    assert_eq!(response.status, 404);
    let message = response.json()["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("forge-shim: "), "{message}");
    assert!(message.contains("/_forge/v1/nope"), "{message}");

    let post = raw_request(
        shim.socket_path(),
        b"POST /_forge/v1/health HTTP/1.1\r\nHost: forge\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(post.status, 405, "{post:?}");
}

#[test]
fn unreachable_dockerd_gives_502_then_recovers_without_restart() {
    require_dockerd();
    let upstream_dir = tempfile::tempdir().unwrap();
    let upstream = upstream_dir.path().join("docker.sock");
    let shim = Shim::builder(PASSTHROUGH_CONFIG)
        .upstream(upstream.to_str().unwrap())
        .start();

    let out = shim.docker(&["ps"]);
    assert_ne!(out.code(), 0, "docker ps without dockerd succeeded");
    assert!(
        out.stderr_text().contains("forge-shim: cannot reach dockerd at"),
        "{}",
        out.stderr_text()
    );
    let response = shim.get("/v1.41/containers/json");
    assert_eq!(response.status, 502);
    let message = response.json()["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("forge-shim: cannot reach dockerd at "), "{message}");
    assert!(!shim.health().dockerd.reachable);

    // dockerd "comes back" at the configured path.
    std::os::unix::fs::symlink(DOCKERD_SOCKET, &upstream).unwrap();
    shim.docker(&["ps"])
        .assert_success("docker ps once dockerd is reachable");
    assert!(shim.health().dockerd.reachable);
}

#[test]
fn malformed_http_gets_400_and_the_connection_closed() {
    let shim = shim();
    for request in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /_ping HTTP/1.1\r\nHost: docker\r\nBad Header Line\r\n\r\n",
        b"GET /_ping HTTP/9.9\r\nHost: docker\r\n\r\n",
        b"POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: abc\r\n\r\n",
    ] {
        let mut connection = RawConnection::connect(shim.socket_path());
        connection.send(request);
        let response = connection.read_head();
        assert!(
            (400..500).contains(&response.status),
            "{:?} → {response:?}",
            String::from_utf8_lossy(request)
        );
        assert!(
            connection.closed_within(Duration::from_secs(30)),
            "connection left open after {:?}",
            String::from_utf8_lossy(request)
        );
    }
    // A path that does not decode is the shim's own 400, in Docker's shape.
    let response = raw_request(
        shim.socket_path(),
        b"GET /%ff/containers/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 400);
    assert!(response.json()["message"].as_str().unwrap().starts_with("forge-shim: "));
    shim.docker(&["version"]).assert_success("the shim still serves");
}

#[test]
fn slow_headers_are_cut_after_the_header_read_timeout() {
    require_dockerd();
    let shim = Shim::start(&format!("{PASSTHROUGH_CONFIG}timeouts: {{ header_read: 1s }}\n"));
    let mut connection = RawConnection::connect(shim.socket_path());
    connection.send(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n");
    assert!(
        connection.closed_within(Duration::from_secs(60)),
        "a client that never finished its headers is still connected"
    );
    shim.get("/_ping");
}

#[test]
fn hostile_input_never_takes_the_shim_down() {
    let shim = shim();
    let big_header = format!(
        "GET /_ping HTTP/1.1\r\nHost: docker\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let requests: Vec<Vec<u8>> = vec![
        big_header.into_bytes(),
        b"\x00\x01\x02\x03\r\n\r\n".to_vec(),
        b"GET /_ping HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 100\r\n\r\n{\"Im".to_vec(),
        b"GET /v1.41/containers/%00/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /_forge/v1/../../_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET http://x/_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /containers/x/attach HTTP/1.1\r\nHost: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n".to_vec(),
    ];
    for request in &requests {
        if let Ok(mut connection) = RawConnection::try_connect(shim.socket_path()) {
            let _ = connection.try_send(request);
            connection.shutdown_write();
            // Whatever the answer, the connection must end.
            assert!(
                connection.closed_within(Duration::from_secs(60)),
                "connection left open after {:?}",
                String::from_utf8_lossy(&request[..request.len().min(80)])
            );
        }
    }
    shim.docker(&["version"]).assert_success("the shim still serves");
    shim.assert_no_panic();
}

// ---------------------------------------------------------------------------
// socket life cycle and shutdown

#[test]
fn sigterm_with_an_open_events_stream_exits_within_the_grace_period() {
    require_dockerd();
    let names = Names::new("shutdown");
    let mut shim = Shim::start(&format!("{PASSTHROUGH_CONFIG}timeouts: {{ shutdown_grace: 2s }}\n"));
    let c = names.name("c");
    let since = (unix_now() - 2).to_string();
    let mut events = spawn_streaming(shim.docker_command(&[
        "events",
        "--since",
        &since,
        "--filter",
        &format!("container={c}"),
        "--format",
        "{{.Action}}",
    ]));
    shim.docker(&["run", "--name", &c, BUSYBOX, "true"])
        .assert_success("docker run");
    events.wait_for_line("die", DOCKER_TIMEOUT, |l| l == "die");

    // The stream is live. SIGTERM: the shim must not wait for it forever.
    shim.signal(nix::sys::signal::Signal::SIGTERM);
    let status = shim
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the shim did not exit after SIGTERM; log:\n{}", shim.log()));
    assert!(status.success(), "exit status {status}; log:\n{}", shim.log());
    assert!(!shim.socket_path().exists(), "socket file left behind");
    let log = shim.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        log.contains("grace period over"),
        "the open stream was not cut by the grace period:\n{log}"
    );
    assert!(
        events.wait_exit(Duration::from_secs(60)).is_some(),
        "docker events still running after the shim exited"
    );
}

#[test]
fn a_second_shim_refuses_a_live_socket() {
    let mut shim = shim();
    let out = run_with_timeout(shim.serve_command(), Duration::from_secs(60));
    assert_ne!(out.code(), 0, "a second shim started on a live socket");
    assert!(out.stderr_text().contains("already listening"), "{}", out.stderr_text());
    assert!(shim.socket_path().exists(), "the live socket was removed");
    shim.health();
    assert!(shim.is_running());
}

#[test]
fn stale_socket_after_kill_9_is_replaced() {
    let mut shim = shim();
    shim.docker(&["version"]).assert_success("before the crash");
    shim.kill9();
    assert!(shim.socket_path().exists(), "kill -9 leaves the socket file behind");
    assert!(
        std::os::unix::net::UnixStream::connect(shim.socket_path()).is_err(),
        "nobody should answer on a stale socket"
    );
    shim.respawn();
    shim.docker(&["version"])
        .assert_success("after the restart on the stale socket");
    assert!(shim.log().contains("replacing stale socket"), "{}", shim.log());
}

#[test]
fn check_rejects_a_bad_config_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "standards:\n  mode: off\n  bogus_key: 1\n").unwrap();
    let mut cmd = std::process::Command::new(SHIM_BIN);
    cmd.args(["check", "--config", bad.to_str().unwrap()])
        .stdin(Stdio::null());
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    out.assert_code(64, "forge-shim check on a bad config");
    let location = format!("{}:3:", bad.display());
    assert!(
        out.stderr_text().contains(&location),
        "no {location} in {}",
        out.stderr_text()
    );
    assert!(out.stderr_text().contains("bogus_key"), "{}", out.stderr_text());

    // `serve` refuses it the same way.
    let mut cmd = std::process::Command::new(SHIM_BIN);
    cmd.args(["serve", "--config", bad.to_str().unwrap(), "--listen"])
        .arg(dir.path().join("s.sock"))
        .stdin(Stdio::null());
    run_with_timeout(cmd, Duration::from_secs(60)).assert_code(64, "forge-shim serve on a bad config");

    let good = dir.path().join("good.yml");
    std::fs::write(&good, PASSTHROUGH_CONFIG).unwrap();
    let mut cmd = std::process::Command::new(SHIM_BIN);
    cmd.args(["check", "--config", good.to_str().unwrap()])
        .stdin(Stdio::null());
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    out.assert_success("forge-shim check on a good config");
    assert!(out.stdout_text().contains("mode: off"), "{}", out.stdout_text());
}

// ---------------------------------------------------------------------------
// client disconnects

/// The shim's socket count once it is quiet: the least seen over a second.
/// A background task's short request to dockerd can only add to a sample,
/// so the least is what the shim holds for its listeners and its long
/// event streams.
fn quiet_sockets(shim: &Shim) -> usize {
    let mut least = usize::MAX;
    for _ in 0..20 {
        least = least.min(shim.open_sockets());
        std::thread::sleep(Duration::from_millis(50));
    }
    least
}

/// Waits until the shim holds no more sockets than `baseline`.
fn wait_for_sockets(shim: &Shim, baseline: usize, what: &str) {
    wait_until(what, Duration::from_secs(60), || shim.open_sockets() <= baseline);
}

/// Waits until a live stream shows as (at least) a client and an upstream
/// socket over `baseline`.
fn wait_for_live_stream(shim: &Shim, baseline: usize, what: &str) {
    wait_until(what, Duration::from_secs(10), || shim.open_sockets() >= baseline + 2);
}

#[test]
fn client_disconnect_mid_stream_closes_the_upstream_side() {
    let shim = shim();
    let names = Names::new("disconnect");
    let c = run_detached(
        &shim,
        &names,
        "c",
        &["sh", "-c", "while true; do echo tick; sleep 0.1; done"],
    );
    let baseline = quiet_sockets(&shim);

    // logs -f: a streamed response body.
    let mut logs = spawn_streaming(shim.docker_command(&["logs", "-f", "--tail", "1", &c]));
    logs.wait_for_line("tick", DOCKER_TIMEOUT, |l| l == "tick");
    wait_for_live_stream(
        &shim,
        baseline,
        "a live logs -f should hold a client and an upstream connection",
    );
    logs.kill();
    wait_for_sockets(&shim, baseline, "the shim closes both sides of the cut logs -f");

    // exec with output: a hijacked (upgraded) stream.
    let mut exec = spawn_streaming(shim.docker_command(&[
        "exec",
        &c,
        "sh",
        "-c",
        "while true; do echo exec-tick; sleep 0.1; done",
    ]));
    exec.wait_for_line("exec-tick", DOCKER_TIMEOUT, |l| l == "exec-tick");
    exec.kill();
    wait_for_sockets(&shim, baseline, "the shim closes both sides of the cut exec");

    // A silent exec: nothing flows either way once the client is gone, so
    // only its hang-up can tell the shim (its stdin EOF alone is a
    // half-close, which must keep the stream open).
    let mut silent = spawn_streaming(shim.docker_command(&["exec", &c, "sh", "-c", "echo ready; exec sleep 300"]));
    silent.wait_for_line("ready", DOCKER_TIMEOUT, |l| l == "ready");
    wait_for_live_stream(
        &shim,
        baseline,
        "a live exec should hold a client and an upstream connection",
    );
    silent.kill();
    wait_for_sockets(
        &shim,
        baseline,
        "the shim closes both sides of a silent exec whose client was killed",
    );

    // A `wait` on the fast path: dockerd sends its head at once and its
    // body when the container exits; a client that leaves before that
    // must not leave dockerd's side open.
    let mut wait = RawConnection::connect(shim.socket_path());
    wait.send(format!("POST /v1.41/containers/{c}/wait HTTP/1.1\r\nHost: docker\r\n\r\n").as_bytes());
    assert_eq!(wait.read_head().status, 200);
    wait_for_live_stream(
        &shim,
        baseline,
        "a live wait should hold a client and an upstream connection",
    );
    drop(wait);
    wait_for_sockets(
        &shim,
        baseline,
        "the shim closes dockerd's side of a wait whose client left",
    );

    let health = shim.health();
    assert_eq!(health.connections_open, 1, "{health:?}");
}
