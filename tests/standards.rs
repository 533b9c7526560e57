//! The standards on container create, through the real binary in front of
//! the real dockerd: `docker run`/`create`, `docker compose up`, bollard and
//! hand-made HTTP. What a create gets is read back with `docker inspect`
//! straight from dockerd; every denial is checked for its message, its exit
//! code and for creating nothing. Every test cleans up what it made (see
//! `tests/common`), runs in parallel with the others and asserts no timings.
//!
//! The shim runs with the embedded `shim.yml` (the standards a new user gets)
//! with sleeping off, except where a test changes one key; the compose test
//! uses `examples/compose-standards/shim.yml`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// helpers

/// The embedded `shim.yml` as a JSON value, without `listen` and `state_dir`
/// (the harness gives each shim its own), with sleeping off and
/// `standards.mode` set to `mode`.
fn default_config(mode: &str) -> Value {
    let text = std::fs::read_to_string(repo_path("shim.yml")).expect("read shim.yml");
    let mut config: Value = serde_norway::from_str(&text).expect("shim.yml parses");
    let root = config.as_object_mut().expect("shim.yml is a mapping");
    root.remove("listen");
    root.remove("state_dir");
    root["standards"]["mode"] = json!(mode);
    // The tests read the changes one by one (the default sums them up in
    // one warning; `the_default_warning_is_one_line` tests that).
    root["standards"]["warnings"] = json!("each");
    root["auto_sleep"]["enabled"] = json!(false);
    // What the rules do, from the first create (tests/fitted.rs: when).
    root["standards"]["hardening"] = json!({"non_root": "always", "read_only_rootfs": "always", "cap_drop": "always"});
    config
}

fn to_yaml(config: &Value) -> String {
    serde_norway::to_string(config).expect("config to YAML")
}

/// A shim with the embedded standards in `mode`.
fn shim_in(mode: &str) -> Shim {
    require_dockerd();
    Shim::start(&to_yaml(&default_config(mode)))
}

/// A shim with the embedded standards in enforce mode.
fn enforcing_shim() -> Shim {
    shim_in("enforce")
}

/// `docker inspect NAME` straight from dockerd, the one object.
fn inspect(name: &str) -> Value {
    let out = direct_docker(&["inspect", "--type", "container", name]);
    out.assert_success(&format!("docker inspect {name}"));
    let list: Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    list[0].clone()
}

/// Fails unless no container named exactly `name` exists.
fn assert_not_created(name: &str) {
    let out = direct_docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("name=^/?{name}$"),
        "--format",
        "{{.Names}}",
    ]);
    out.assert_success("docker ps -a --filter name=...");
    assert_eq!(out.stdout_text().trim(), "", "a container named {name} was created");
}

/// The `WARNING: forge-shim: …` lines the CLI printed on stderr.
fn forge_warnings(out: &std::process::Output) -> Vec<String> {
    out.stderr_text()
        .lines()
        .filter(|line| line.starts_with("WARNING: forge-shim: "))
        .map(String::from)
        .collect()
}

/// What a plain create of a root image gets from the embedded `shim.yml`, as
/// the CLI prints it.
const DEFAULT_WARNINGS: &[&str] = &[
    "WARNING: forge-shim: set user 65534:65534 (the image runs as root) (standards.non_root)",
    "WARNING: forge-shim: set memory limit 512M for class normal (standards.defaults.memory)",
    "WARNING: forge-shim: set memory reservation 128M (standards.defaults.memory_reservation)",
    "WARNING: forge-shim: set CPU limit 1 for class normal (standards.defaults.cpus)",
    "WARNING: forge-shim: set PID limit 512 (standards.defaults.pids_limit)",
    "WARNING: forge-shim: made the root filesystem read-only, with tmpfs at /tmp, /run (standards.defaults.read_only_rootfs)",
    "WARNING: forge-shim: dropped capabilities ALL (standards.defaults.cap_drop)",
    "WARNING: forge-shim: set no-new-privileges (standards.defaults.no_new_privileges)",
];

const MIB: i64 = 1024 * 1024;

/// Fails unless `inspect` shows every default of the embedded `shim.yml`.
fn assert_defaults(inspect: &Value) {
    let host = &inspect["HostConfig"];
    assert_eq!(host["Memory"], json!(512 * MIB), "Memory: {host}");
    assert_eq!(host["MemoryReservation"], json!(128 * MIB), "MemoryReservation: {host}");
    assert_eq!(host["NanoCpus"], json!(1_000_000_000i64), "NanoCpus: {host}");
    assert_eq!(host["PidsLimit"], json!(512), "PidsLimit: {host}");
    assert_eq!(host["ReadonlyRootfs"], json!(true), "ReadonlyRootfs: {host}");
    assert_eq!(host["Tmpfs"], json!({"/tmp": "", "/run": ""}), "Tmpfs: {host}");
    assert_eq!(host["CapDrop"], json!(["ALL"]), "CapDrop: {host}");
    assert_eq!(
        host["SecurityOpt"],
        json!(["no-new-privileges=true"]),
        "SecurityOpt: {host}"
    );
    assert_eq!(host["Privileged"], json!(false), "Privileged: {host}");
    assert_eq!(inspect["Config"]["User"], json!("65534:65534"), "User");
}

/// Fails unless `inspect` shows none of the defaults: what dockerd alone
/// gives a plain create.
fn assert_no_defaults(inspect: &Value) {
    let host = &inspect["HostConfig"];
    assert_eq!(host["Memory"], json!(0), "Memory: {host}");
    assert_eq!(host["NanoCpus"], json!(0), "NanoCpus: {host}");
    assert!(
        matches!(host["PidsLimit"], Value::Null) || host["PidsLimit"] == json!(0),
        "PidsLimit: {host}"
    );
    assert_eq!(host["ReadonlyRootfs"], json!(false), "ReadonlyRootfs: {host}");
    assert!(host["Tmpfs"].is_null(), "Tmpfs: {host}");
    assert!(host["CapDrop"].is_null(), "CapDrop: {host}");
    assert!(host["SecurityOpt"].is_null(), "SecurityOpt: {host}");
    assert_eq!(inspect["Config"]["User"], json!(""), "User");
}

/// A `POST` with `body` as given (it may be anything, even invalid JSON),
/// `Content-Length` set, on a fresh connection.
fn post_raw(socket: &Path, path: &str, body: &[u8]) -> RawResponse {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw_request(socket, &request)
}

/// The `message` of a Docker-style JSON error.
fn message(response: &RawResponse) -> String {
    response.json()["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {}: {}", response.status, response.body_text()))
        .to_string()
}

// ---------------------------------------------------------------------------
// defaults and warnings

#[test]
fn defaults_appear_in_inspect_and_the_cli_prints_each_change() {
    let shim = enforcing_shim();
    let names = Names::new("std_defaults");
    let name = names.name("c");
    let out = shim.docker(&["create", "--name", &name, BUSYBOX, "sleep", "3600"]);
    out.assert_success("docker create");
    assert_eq!(forge_warnings(&out), DEFAULT_WARNINGS, "stderr:\n{}", out.stderr_text());
    assert_defaults(&inspect(&name));

    // `docker run` prints the same account, and the process runs as nobody.
    let out = shim.docker(&["run", "--rm", "--name", &names.name("run"), BUSYBOX, "id", "-u"]);
    out.assert_success("docker run id");
    assert_eq!(out.stdout_text().trim(), "65534");
    assert_eq!(forge_warnings(&out), DEFAULT_WARNINGS, "stderr:\n{}", out.stderr_text());
}

#[test]
fn explicit_values_are_kept() {
    let shim = enforcing_shim();
    let names = Names::new("std_explicit");
    let name = names.name("c");
    let out = shim.docker(&[
        "create",
        "--name",
        &name,
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "100",
        "--user",
        "1000",
        "--cap-drop",
        "NET_RAW",
        "--tmpfs",
        "/data",
        BUSYBOX,
        "sleep",
        "3600",
    ]);
    out.assert_success("docker create with explicit values");
    let inspect = inspect(&name);
    let host = &inspect["HostConfig"];
    assert_eq!(host["Memory"], json!(64 * MIB), "{host}");
    assert_eq!(host["NanoCpus"], json!(500_000_000), "{host}");
    assert_eq!(host["PidsLimit"], json!(100), "{host}");
    assert_eq!(inspect["Config"]["User"], json!("1000"));
    // The default reservation (128M) is kept under the explicit limit.
    assert_eq!(host["MemoryReservation"], json!(64 * MIB), "{host}");
    // What the request left unset still gets its default, next to what it
    // set (the CLI spells capabilities with `CAP_`).
    assert_eq!(host["CapDrop"], json!(["CAP_NET_RAW", "ALL"]), "{host}");
    assert_eq!(host["Tmpfs"], json!({"/data": "", "/tmp": "", "/run": ""}), "{host}");
    assert_eq!(host["ReadonlyRootfs"], json!(true), "{host}");

    let warnings = forge_warnings(&out);
    for kept in [
        "(standards.defaults.memory)",
        "(standards.defaults.cpus)",
        "(standards.defaults.pids_limit)",
        "(standards.non_root)",
    ] {
        assert!(
            !warnings.iter().any(|w| w.ends_with(kept)),
            "an explicit value was overridden ({kept}): {warnings:#?}"
        );
    }
    assert!(
        warnings.contains(
            &"WARNING: forge-shim: set memory reservation 64M, lowered to the memory limit (standards.defaults.memory_reservation)"
                .to_string()
        ),
        "{warnings:#?}"
    );
}

#[test]
fn non_root_image_keeps_its_user() {
    let shim = enforcing_shim();
    let names = Names::new("std_nonroot_image");
    let name = names.name("c");
    let out = shim.docker(&["create", "--name", &name, BUSYBOX_NONROOT, "sleep", "3600"]);
    out.assert_success("docker create of a non-root image");
    let warnings = forge_warnings(&out);
    assert!(
        !warnings.iter().any(|w| w.contains("standards.non_root")),
        "a non-root image got a user: {warnings:#?}"
    );
    // The request had no User; the image's own applies.
    assert_eq!(inspect(&name)["Config"]["User"], json!("1000:1000"));

    let out = shim.docker(&["run", "--rm", "--name", &names.name("run"), BUSYBOX_NONROOT, "id", "-u"]);
    out.assert_success("docker run id");
    assert_eq!(out.stdout_text().trim(), "1000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bollard_create_gets_defaults_warnings_and_denials() {
    use bollard::query_parameters::CreateContainerOptionsBuilder;

    let shim = enforcing_shim();
    let names = Names::new("std_bollard");
    let docker = shim.bollard().await;

    let name = names.name("c");
    let body = bollard::models::ContainerCreateBody {
        image: Some(BUSYBOX.to_string()),
        cmd: Some(vec!["true".into()]),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(CreateContainerOptionsBuilder::new().name(&name).build()), body)
        .await
        .expect("create through the shim");
    let expected: Vec<String> = DEFAULT_WARNINGS
        .iter()
        .map(|w| w.trim_start_matches("WARNING: ").to_string())
        .collect();
    assert_eq!(created.warnings, expected);
    let inspected = docker
        .inspect_container(&created.id, None::<bollard::query_parameters::InspectContainerOptions>)
        .await
        .expect("inspect");
    let host = inspected.host_config.expect("HostConfig");
    assert_eq!(host.memory, Some(512 * MIB));
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert_eq!(host.pids_limit, Some(512));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    assert_eq!(inspected.config.and_then(|c| c.user).as_deref(), Some("65534:65534"));

    let denied_name = names.name("privileged");
    let body = bollard::models::ContainerCreateBody {
        image: Some(BUSYBOX.to_string()),
        host_config: Some(bollard::models::HostConfig {
            privileged: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let result = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&denied_name).build()),
            body,
        )
        .await;
    match result {
        Err(bollard::errors::Error::DockerResponseServerError { status_code, message }) => {
            assert_eq!(status_code, 403, "{message}");
            assert!(message.contains("(rule standards.deny.privileged)"), "{message}");
        }
        other => panic!("a privileged create through bollard: {other:?}"),
    }
    assert_not_created(&denied_name);
}

// ---------------------------------------------------------------------------
// denials

#[test]
fn each_deny_rule_refuses_with_its_message_and_creates_nothing() {
    let shim = enforcing_shim();
    let names = Names::new("std_deny");
    // (flags, rule, what the message names)
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--privileged"],
            "deny.privileged",
            "privileged mode (HostConfig.Privileged)",
        ),
        (
            &["-v", "/var/run/docker.sock:/s"],
            "deny.docker_socket",
            "mounting /var/run/docker.sock (HostConfig.Binds)",
        ),
        (
            &["-v", "/var/run/../run/docker.sock:/s"],
            "deny.docker_socket",
            "mounting /var/run/../run/docker.sock (HostConfig.Binds)",
        ),
        (
            &["--mount", "type=bind,src=/run,dst=/h"],
            "deny.docker_socket",
            "mounting /run (HostConfig.Mounts[0].Source)",
        ),
        (&["--pid", "host"], "deny.host_pid", "the host PID namespace"),
        (&["--ipc", "host"], "deny.host_ipc", "the host IPC namespace"),
        (
            &["--network", "host"],
            "deny.host_network",
            "the host network namespace",
        ),
        (
            &["--cap-add", "SYS_ADMIN"],
            "deny.cap_add",
            "adding capability SYS_ADMIN",
        ),
        (
            &["--device", "/dev/null"],
            "deny.devices",
            "host devices (HostConfig.Devices)",
        ),
        (
            &["--security-opt", "seccomp=unconfined"],
            "deny.seccomp_unconfined",
            "seccomp=unconfined",
        ),
        (
            &["--user", "root"],
            "non_root",
            "running as root (User \"root\" is root)",
        ),
        (
            &["--memory", "8g"],
            "limits.memory",
            "a memory limit of 8G (HostConfig.Memory, above the maximum)",
        ),
    ];
    for (i, (flags, rule, what)) in cases.iter().enumerate() {
        let name = names.name(&format!("d{i}"));
        // `docker run` for some, `docker create` for the others: both go
        // through the same create.
        // `docker run` exits 125 when the create fails, `docker create` 1.
        let (verb, code) = if i % 2 == 0 { ("run", 125) } else { ("create", 1) };
        let mut args = vec![verb, "--name", name.as_str()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[BUSYBOX, "true"]);
        let out = shim.docker(&args);
        let stderr = out.stderr_text();
        out.assert_code(code, &format!("docker {verb} {flags:?}"));
        let expected = format!("Error response from daemon: forge-shim: standards: {what}");
        assert!(
            stderr.contains(&expected),
            "{flags:?}: expected {expected:?} in:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("is not allowed (rule standards.{rule}); ")),
            "{flags:?}: rule {rule} not named in:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("ask the operator to exempt this container from {rule}")),
            "{flags:?}: no hint in:\n{stderr}"
        );
        assert!(
            forge_warnings(&out).is_empty(),
            "{flags:?}: warnings on a denial:\n{stderr}"
        );
        assert_not_created(&name);
    }
    shim.assert_no_panic();
}

#[test]
fn a_volume_bound_to_the_socket_folder_is_refused() {
    let shim = enforcing_shim();
    let names = Names::new("std_socket_volume");
    let bind_opts = [
        "--driver",
        "local",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        "device=/var/run",
    ];

    // Created through the shim: refused at volume create.
    let volume = names.name("v");
    let mut args = vec!["volume", "create"];
    args.extend_from_slice(&bind_opts);
    args.push(&volume);
    let out = shim.docker(&args);
    out.assert_code(1, "docker volume create bound to /var/run");
    let stderr = out.stderr_text();
    assert!(
        stderr.contains("forge-shim: standards: a volume bound to /var/run (DriverOpts) is not allowed (rule standards.deny.docker_socket)"),
        "{stderr}"
    );
    let listed = direct_docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]);
    assert_eq!(listed.stdout_text().trim(), "", "the volume was created");

    // Inline in a create, as `--mount type=volume` with driver options.
    let name = names.name("inline");
    let out = shim.docker(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--mount",
        &format!("type=volume,src={},dst=/h,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/var/run", names.name("inline-v")),
        BUSYBOX,
        "true",
    ]);
    out.assert_code(125, "docker run --mount type=volume bound to /var/run");
    assert!(
        out.stderr_text().contains("(rule standards.deny.docker_socket)"),
        "{}",
        out.stderr_text()
    );
    assert_not_created(&name);

    // Made behind the shim's back (straight to dockerd), then used by name
    // through the shim, with `-v` and with `--mount`.
    let existing = names.name("existing");
    let mut args = vec!["volume", "create"];
    args.extend_from_slice(&bind_opts);
    args.push(&existing);
    direct_docker(&args).assert_success("docker volume create (direct)");
    for (i, flags) in [
        vec!["-v".to_string(), format!("{existing}:/h")],
        vec!["--mount".to_string(), format!("type=volume,src={existing},dst=/h")],
    ]
    .iter()
    .enumerate()
    {
        let name = names.name(&format!("by-name{i}"));
        let mut args = vec!["create", "--name", name.as_str()];
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(&[BUSYBOX, "true"]);
        let out = shim.docker(&args);
        out.assert_code(1, &format!("docker create {flags:?}"));
        let stderr = out.stderr_text();
        assert!(
            stderr.contains(&format!(
                "forge-shim: standards: volume {existing}, which is bound to /var/run (HostConfig.Binds or Mounts) is not allowed (rule standards.deny.docker_socket)"
            )),
            "{flags:?}: {stderr}"
        );
        assert_not_created(&name);
    }

    // A plain named volume is fine.
    let name = names.name("plain");
    shim.docker(&[
        "create",
        "--name",
        &name,
        "-v",
        &format!("{}:/data", names.name("plain-v")),
        BUSYBOX,
        "true",
    ])
    .assert_success("docker create with a plain named volume");
}

#[test]
fn image_user_lookup_follows_a_retag() {
    let shim = enforcing_shim();
    let names = Names::new("std_retag");
    let image = names.image("retag");
    direct_docker(&["tag", BUSYBOX, &image]).assert_success("docker tag busybox");
    names.track_image(&image);

    let name = names.name("root");
    let out = shim.docker(&["create", "--name", &name, &image, "true"]);
    out.assert_success("docker create of the root image");
    assert!(
        forge_warnings(&out).contains(&DEFAULT_WARNINGS[0].to_string()),
        "{}",
        out.stderr_text()
    );
    assert_eq!(inspect(&name)["Config"]["User"], json!("65534:65534"));
    // Once more, so the user is in the shim's cache.
    shim.docker(&["create", "--name", &names.name("root2"), &image, "true"])
        .assert_success("docker create of the root image, again");

    // The same tag now names a non-root image: the shim hears the tag event
    // and looks again (the event reaches it shortly after `docker tag`).
    direct_docker(&["tag", BUSYBOX_NONROOT, &image]).assert_success("docker tag busybox-nonroot");
    let mut attempt = 0;
    wait_until(
        "a create of the retagged image keeps its non-root user",
        Duration::from_secs(60),
        || {
            attempt += 1;
            let name = names.name(&format!("after{attempt}"));
            let out = shim.docker(&["create", "--name", &name, &image, "true"]);
            out.assert_success("docker create of the retagged image");
            inspect(&name)["Config"]["User"] == json!("1000:1000")
                && !forge_warnings(&out).iter().any(|w| w.contains("standards.non_root"))
        },
    );
}

#[test]
fn case_variant_and_duplicate_keys_are_caught() {
    let shim = enforcing_shim();
    let names = Names::new("std_case_keys");

    // dockerd would read `hostconfig.privileged` as HostConfig.Privileged.
    let name = names.name("lower");
    let body = format!(r#"{{"Image":"{BUSYBOX}","hostconfig":{{"privileged":true}}}}"#);
    let response = post_raw(
        shim.socket_path(),
        &format!("/v1.41/containers/create?name={name}"),
        body.as_bytes(),
    );
    assert_eq!(response.status, 403, "{}", response.body_text());
    let text = message(&response);
    assert!(text.starts_with("forge-shim: standards: privileged mode"), "{text}");
    assert!(text.contains("(rule standards.deny.privileged)"), "{text}");
    assert_not_created(&name);

    // The last of two case-folded keys would win in dockerd: refused.
    let name = names.name("dup");
    let body = format!(r#"{{"Image":"{BUSYBOX}","HostConfig":{{"Privileged":false,"privileged":true}}}}"#);
    let response = post_raw(
        shim.socket_path(),
        &format!("/v1.41/containers/create?name={name}"),
        body.as_bytes(),
    );
    assert_eq!(response.status, 400, "{}", response.body_text());
    let text = message(&response);
    assert!(text.starts_with("forge-shim: "), "{text}");
    assert!(text.to_ascii_lowercase().contains("privileged"), "{text}");
    assert_not_created(&name);

    // All lower case and harmless: the defaults land in dockerd's spelling.
    let name = names.name("ok");
    let body = format!(r#"{{"image":"{BUSYBOX}","cmd":["true"],"hostconfig":{{"memory":0}}}}"#);
    let response = post_raw(
        shim.socket_path(),
        &format!("/v1.41/containers/create?name={name}"),
        body.as_bytes(),
    );
    assert_eq!(response.status, 201, "{}", response.body_text());
    assert_defaults(&inspect(&name));
}

#[test]
fn percent_encoded_create_path_still_gets_the_rules() {
    let shim = enforcing_shim();
    let names = Names::new("std_encoded_path");
    let name = names.name("denied");
    let response = raw_request(
        shim.socket_path(),
        &json_request(
            "POST",
            &format!("/v1.41/containers/%63reate?name={name}"),
            &json!({"Image": BUSYBOX, "HostConfig": {"Privileged": true}}),
        ),
    );
    assert_eq!(response.status, 403, "{}", response.body_text());
    assert!(message(&response).contains("(rule standards.deny.privileged)"));
    assert_not_created(&name);

    let name = names.name("ok");
    let response = raw_request(
        shim.socket_path(),
        &json_request(
            "POST",
            &format!("/v1.41/containers/%63reate?name={name}"),
            &json!({"Image": BUSYBOX, "Cmd": ["true"]}),
        ),
    );
    assert_eq!(response.status, 201, "{}", response.body_text());
    assert_defaults(&inspect(&name));
}

#[test]
fn update_cannot_lift_the_memory_limit() {
    let shim = enforcing_shim();
    let names = Names::new("std_update");
    let name = names.name("c");
    shim.docker(&["run", "-d", "--name", &name, BUSYBOX, "sleep", "3600"])
        .assert_success("docker run -d");
    let out = shim.docker(&["update", "--memory", "16g", "--memory-swap", "32g", &name]);
    let stderr = out.stderr_text();
    assert_ne!(out.code(), 0, "docker update --memory 16g succeeded:\n{stderr}");
    assert!(
        stderr.contains("Error response from daemon: forge-shim: standards: raising the memory limit to 16G"),
        "{stderr}"
    );
    assert!(stderr.contains("(rule standards.limits.memory)"), "{stderr}");
    assert_eq!(inspect(&name)["HostConfig"]["Memory"], json!(512 * MIB));

    // Within the limits, update works as usual.
    shim.docker(&["update", "--memory", "256m", &name])
        .assert_success("docker update --memory 256m");
    assert_eq!(inspect(&name)["HostConfig"]["Memory"], json!(256 * MIB));
}

#[test]
fn privileged_exec_is_denied() {
    let shim = enforcing_shim();
    let names = Names::new("std_exec");
    let name = names.name("c");
    shim.docker(&["run", "-d", "--name", &name, BUSYBOX, "sleep", "3600"])
        .assert_success("docker run -d");
    let out = shim.docker(&["exec", "--privileged", &name, "true"]);
    let stderr = out.stderr_text();
    assert_ne!(out.code(), 0, "docker exec --privileged succeeded:\n{stderr}");
    assert!(
        stderr.contains("Error response from daemon: forge-shim: standards: a privileged exec (Privileged) is not allowed (rule standards.deny.privileged)"),
        "{stderr}"
    );
    let out = shim.docker(&["exec", &name, "id", "-u"]);
    out.assert_success("docker exec");
    assert_eq!(out.stdout_text().trim(), "65534");
}

#[test]
fn compose_up_of_a_privileged_service_fails_with_the_message() {
    let shim = enforcing_shim();
    let names = Names::new("std_compose_priv");
    let project = names.project("p");
    let file = shim.dir().join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "services:\n  bad:\n    image: {BUSYBOX}\n    pull_policy: never\n    privileged: true\n    command: [\"true\"]\n"
        ),
    )
    .expect("write compose.yaml");
    let out = shim.docker_timeout(
        &["compose", "-p", &project, "-f", file.to_str().unwrap(), "up", "-d"],
        Duration::from_secs(300),
    );
    let stderr = out.stderr_text();
    assert_ne!(out.code(), 0, "compose up of a privileged service succeeded:\n{stderr}");
    assert!(
        stderr.contains("forge-shim: standards: privileged mode (HostConfig.Privileged) is not allowed (rule standards.deny.privileged)"),
        "{stderr}"
    );
    let left = direct_docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    left.assert_success("docker ps");
    assert_eq!(left.stdout_text().trim(), "", "compose created a container");
}

// ---------------------------------------------------------------------------
// bodies

#[test]
fn chunked_create_body_gets_the_defaults() {
    let shim = enforcing_shim();
    let names = Names::new("std_chunked");
    let name = names.name("c");
    let body = serde_json::to_vec(&json!({"Image": BUSYBOX, "Cmd": ["true"]})).unwrap();
    let mut request = format!(
        "POST /v1.41/containers/create?name={name} HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&chunked(&body, 5));
    let response = raw_request(shim.socket_path(), &request);
    assert_eq!(response.status, 201, "{}", response.body_text());
    let answer = response.json();
    let warnings: Vec<&str> = answer["Warnings"]
        .as_array()
        .expect("Warnings is an array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings.contains(&"forge-shim: set memory limit 512M for class normal (standards.defaults.memory)"),
        "{answer}"
    );
    // The response length was recomputed: the parser read exactly the JSON.
    let length: usize = response
        .header("Content-Length")
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(length, response.body.len());
    assert_defaults(&inspect(&name));
}

#[test]
fn unknown_fields_survive() {
    let shim = enforcing_shim();
    let names = Names::new("std_unknown");
    let name = names.name("c");
    let body = json!({
        "Image": BUSYBOX,
        "Cmd": ["true"],
        "Labels": {"fs.test.kept": "yes", "fs.test.Case": "Mixed"},
        "XForgeUnknown": 1,
        "HostConfig": {"XForgeUnknownToo": {"a": [1, 2]}, "Init": true},
    });
    let response = raw_request(
        shim.socket_path(),
        &json_request("POST", &format!("/v1.41/containers/create?name={name}"), &body),
    );
    assert_eq!(response.status, 201, "{}", response.body_text());
    let inspect = inspect(&name);
    assert_eq!(
        inspect["Config"]["Labels"],
        json!({"fs.test.kept": "yes", "fs.test.Case": "Mixed"})
    );
    // A field the shim does not act on reaches dockerd as sent.
    assert_eq!(inspect["HostConfig"]["Init"], json!(true));
    assert_defaults(&inspect);
}

#[test]
fn oversized_and_invalid_bodies_are_refused() {
    require_dockerd();
    let mut config = default_config("enforce");
    config["standards"]["max_body"] = json!("4K");
    let shim = Shim::start(&to_yaml(&config));
    let names = Names::new("std_bodies");

    let name = names.name("big");
    let body = json!({"Image": BUSYBOX, "Labels": {"pad": "x".repeat(8 * 1024)}});
    let response = raw_request(
        shim.socket_path(),
        &json_request("POST", &format!("/v1.41/containers/create?name={name}"), &body),
    );
    assert_eq!(response.status, 413, "{}", response.body_text());
    assert!(message(&response).starts_with("forge-shim: request body too large"));
    assert_not_created(&name);

    let name = names.name("invalid");
    let response = post_raw(
        shim.socket_path(),
        &format!("/v1.41/containers/create?name={name}"),
        format!(r#"{{"Image": "{BUSYBOX}", "Cmd": ["true"]"#).as_bytes(),
    );
    assert_eq!(response.status, 400, "{}", response.body_text());
    assert!(message(&response).starts_with("forge-shim: bad request: invalid JSON body"));
    assert_not_created(&name);

    // Under the cap, the same shim creates as usual.
    let name = names.name("small");
    let response = raw_request(
        shim.socket_path(),
        &json_request(
            "POST",
            &format!("/v1.41/containers/create?name={name}"),
            &json!({"Image": BUSYBOX, "Labels": {"pad": "x".repeat(1024)}}),
        ),
    );
    assert_eq!(response.status, 201, "{}", response.body_text());
}

#[test]
fn host_config_on_start_is_refused() {
    let shim = enforcing_shim();
    let names = Names::new("std_start_body");
    let name = names.name("c");
    shim.docker(&["create", "--name", &name, BUSYBOX, "sleep", "3600"])
        .assert_success("docker create");
    // API 1.23 applied a HostConfig sent with start: a back door.
    let response = raw_request(
        shim.socket_path(),
        &json_request(
            "POST",
            &format!("/v1.23/containers/{name}/start"),
            &json!({"Privileged": true, "Binds": ["/var/run/docker.sock:/s"]}),
        ),
    );
    assert_eq!(response.status, 400, "{}", response.body_text());
    assert!(
        message(&response).contains("HostConfig on container start"),
        "{}",
        response.body_text()
    );
    assert_eq!(inspect(&name)["State"]["Running"], json!(false));

    // Start without a body works.
    let response = raw_request(
        shim.socket_path(),
        format!("POST /v1.41/containers/{name}/start HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(response.status, 204, "{}", response.body_text());
    let after = inspect(&name);
    assert_eq!(after["State"]["Running"], json!(true));
    assert_eq!(after["HostConfig"]["Privileged"], json!(false));
}

// ---------------------------------------------------------------------------
// modes and exemptions

#[test]
fn audit_mode_changes_nothing_but_says_what_it_would_do() {
    let shim = shim_in("audit");
    let names = Names::new("std_audit_mode");
    let name = names.name("plain");
    let out = shim.docker(&["create", "--name", &name, BUSYBOX, "true"]);
    out.assert_success("docker create in audit mode");
    let warnings = forge_warnings(&out);
    let expected: Vec<String> = DEFAULT_WARNINGS
        .iter()
        .map(|w| w.replacen("WARNING: forge-shim: ", "WARNING: forge-shim: would ", 1))
        .collect();
    assert_eq!(warnings, expected, "stderr:\n{}", out.stderr_text());
    assert_no_defaults(&inspect(&name));

    // Not denied either: created as asked, with the would-be denial shown.
    let name = names.name("privileged");
    let out = shim.docker(&["create", "--privileged", "--name", &name, BUSYBOX, "true"]);
    out.assert_success("docker create --privileged in audit mode");
    assert!(
        forge_warnings(&out).contains(
            &"WARNING: forge-shim: would deny privileged mode (HostConfig.Privileged) (standards.deny.privileged)"
                .to_string()
        ),
        "stderr:\n{}",
        out.stderr_text()
    );
    assert_eq!(inspect(&name)["HostConfig"]["Privileged"], json!(true));
}

#[test]
fn off_mode_changes_nothing_and_prints_nothing() {
    let shim = shim_in("off");
    let names = Names::new("std_off_mode");
    let name = names.name("plain");
    let out = shim.docker(&["create", "--name", &name, BUSYBOX, "true"]);
    out.assert_success("docker create in off mode");
    assert!(
        !out.stderr_text().contains("forge-shim"),
        "stderr:\n{}",
        out.stderr_text()
    );
    assert_no_defaults(&inspect(&name));

    let name = names.name("privileged");
    let out = shim.docker(&["create", "--privileged", "--name", &name, BUSYBOX, "true"]);
    out.assert_success("docker create --privileged in off mode");
    assert!(
        !out.stderr_text().contains("forge-shim"),
        "stderr:\n{}",
        out.stderr_text()
    );
    assert_eq!(inspect(&name)["HostConfig"]["Privileged"], json!(true));
}

#[test]
fn exemption_by_image_id_lets_privileged_through_only_for_that_image() {
    require_dockerd();
    let names = Names::new("std_exempt");
    // An image of its own content, so its id is the test's.
    let image = names.image("exempt");
    let out = run_with_input(
        direct_docker_command(&["build", "-q", "-t", &image, "-"]),
        format!("FROM {BUSYBOX}\nLABEL forge.test={}\n", names.prefix()).as_bytes(),
        DOCKER_TIMEOUT,
    );
    out.assert_success("docker build");
    names.track_image(&image);
    let id = direct_docker(&["image", "inspect", "--format", "{{.Id}}", &image]);
    id.assert_success("image inspect");
    let id = id.stdout_text().trim().to_string();
    let mut config = default_config("enforce");
    config["standards"]["exempt"]
        .as_array_mut()
        .expect("shim.yml has an exempt list")
        .push(json!({
            "match": {"image_id": id},
            "rules": ["deny.privileged"],
            "reason": "the test's exempt image",
        }));
    let shim = Shim::start(&to_yaml(&config));

    let name = names.name("exempt");
    let out = shim.docker(&["create", "--privileged", "--name", &name, &image, "true"]);
    out.assert_success("docker create --privileged of the exempt image");
    let inspected = inspect(&name);
    assert_eq!(inspected["HostConfig"]["Privileged"], json!(true));
    // Only the named rule is off: the defaults still apply.
    assert_eq!(inspected["HostConfig"]["Memory"], json!(512 * MIB));
    assert!(
        forge_warnings(&out).contains(&DEFAULT_WARNINGS[1].to_string()),
        "stderr:\n{}",
        out.stderr_text()
    );

    // Another image is not exempt, whatever its name.
    let name = names.name("other");
    let out = shim.docker(&["create", "--privileged", "--name", &name, BUSYBOX, "true"]);
    out.assert_code(1, "docker create --privileged of another image");
    assert!(
        out.stderr_text().contains("(rule standards.deny.privileged)"),
        "{}",
        out.stderr_text()
    );
    assert_not_created(&name);
}

#[test]
fn a_local_tag_named_like_an_official_database_gets_no_exemption() {
    require_dockerd();
    let names = Names::new("std_fake_pg");
    // The embedded config exempts images pulled from docker.io/library/postgres
    // (by their RepoDigests). A local tag has none.
    let fake = format!("postgres:{}", names.prefix());
    direct_docker(&["tag", BUSYBOX, &fake]).assert_success("docker tag");
    names.track_image(&fake);
    let shim = Shim::start(&to_yaml(&default_config("enforce")));
    let name = names.name("db");
    let out = shim.docker(&["create", "--name", &name, &fake, "true"]);
    out.assert_success("docker create of the local postgres tag");
    let inspected = inspect(&name);
    assert_eq!(
        inspected["Config"]["User"],
        json!("65534:65534"),
        "non_root was exempted"
    );
    assert_eq!(
        inspected["HostConfig"]["ReadonlyRootfs"],
        json!(true),
        "read-only root was exempted"
    );
    assert_eq!(
        inspected["HostConfig"]["CapDrop"],
        json!(["ALL"]),
        "cap_drop was exempted"
    );
    // And as root it is denied, as any other image.
    let out = shim.docker(&["create", "--name", &names.name("root"), "--user", "0", &fake, "true"]);
    out.assert_code(1, "docker create --user 0 of the local postgres tag");
    assert!(out.stderr_text().contains("non_root"), "{}", out.stderr_text());
}

// ---------------------------------------------------------------------------
// compose: classes and service entries

#[test]
fn compose_project_gets_service_entries_and_classes() {
    require_dockerd();
    let names = Names::new("std_compose_classes");
    let project = names.project("p");
    // The example's config, with its `services:` key aimed at this run's
    // project name.
    let example = std::fs::read_to_string(repo_path("examples/compose-standards/shim.yml")).expect("read example");
    assert!(
        example.contains("compose-standards/api:"),
        "the example's services entry moved"
    );
    let shim = Shim::start(&example.replace("compose-standards/api:", &format!("{project}/api:")));
    let file = repo_path("examples/compose-standards/compose.yaml");
    let file = file.to_str().unwrap();
    let compose = |args: &[&str]| {
        let mut all = vec!["compose", "-p", project.as_str(), "-f", file];
        all.extend_from_slice(args);
        shim.docker_timeout(&all, Duration::from_secs(300))
    };

    let out = compose(&["up", "-d"]);
    out.assert_success("compose up -d");
    // Compose shows each change as a warning event.
    let stderr = out.stderr_text();
    for line in [
        format!("forge-shim: set memory limit 256M for service entry {project}/api (standards.defaults.memory)"),
        "forge-shim: set memory limit 1G for class high (standards.defaults.memory)".to_string(),
        "forge-shim: set CPU limit 2 for class high (standards.defaults.cpus)".to_string(),
        "forge-shim: set memory limit 512M for class normal (standards.defaults.memory)".to_string(),
    ] {
        assert!(stderr.contains(&line), "{line:?} not in compose's output:\n{stderr}");
    }

    let out = compose(&["ps", "-a", "--format", "{{.Service}} {{.Name}}"]);
    out.assert_success("compose ps");
    let mut containers: Vec<(String, String)> = out
        .stdout_text()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(s, n)| (s.to_string(), n.to_string()))
        .collect();
    containers.sort();
    let services: Vec<&str> = containers.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(services, ["api", "web", "worker"], "{}", out.stdout_text());
    for (service, name) in &containers {
        let inspected = inspect(name);
        let host = &inspected["HostConfig"];
        let (memory, nano_cpus) = match service.as_str() {
            // services: entry (memory) over class normal (cpu).
            "api" => (256 * MIB, 1_000_000_000i64),
            // forge.class: high.
            "worker" => (1024 * MIB, 2_000_000_000),
            // Nothing said: the default class, normal.
            _ => (512 * MIB, 1_000_000_000),
        };
        assert_eq!(host["Memory"], json!(memory), "{service}: {host}");
        assert_eq!(host["NanoCpus"], json!(nano_cpus), "{service}: {host}");
        assert_eq!(host["ReadonlyRootfs"], json!(true), "{service}: {host}");
        assert_eq!(inspected["Config"]["User"], json!("65534:65534"), "{service}");
        assert_eq!(
            inspected["State"]["Running"],
            json!(true),
            "{service}: {}",
            inspected["State"]
        );
    }

    compose(&["down", "--timeout", "2"]).assert_success("compose down");
}

// ---------------------------------------------------------------------------
// read-only roots and `forge-shim audit`

/// Runs `forge-shim audit [--json]` (upstream: dockerd's socket).
fn run_audit(json: bool) -> std::process::Output {
    let mut cmd = std::process::Command::new(SHIM_BIN);
    cmd.arg("audit").stdin(std::process::Stdio::null());
    if json {
        cmd.arg("--json");
    }
    run_with_timeout(cmd, Duration::from_secs(180))
}

/// The report for container `name` in `forge-shim audit --json` output.
fn audit_entry(audit: &Value, name: &str) -> Value {
    audit["containers"]
        .as_array()
        .expect("containers is an array")
        .iter()
        .find(|c| c["name"] == json!(name))
        .unwrap_or_else(|| panic!("{name} is not in the audit:\n{audit:#}"))
        .clone()
}

fn rules_of(entry: &Value) -> Vec<String> {
    entry["findings"]
        .as_array()
        .expect("findings is an array")
        .iter()
        .map(|f| f["rule"].as_str().expect("rule").to_string())
        .collect()
}

/// The text report's block for `name`: its header line and the indented
/// lines under it.
fn audit_block(text: &str, name: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&format!("{name} (")));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("{name} is not in the audit:\n{text}"))
        .to_string();
    std::iter::once(header)
        .chain(lines.take_while(|l| l.starts_with("  ")).map(String::from))
        .collect()
}

#[test]
fn writes_outside_the_tmpfs_paths_are_explained() {
    let shim = enforcing_shim();
    let names = Names::new("std_read_only");

    // Under the default read-only root, a write to / fails with the
    // kernel's message, and the create's warnings said why.
    let out = shim.docker(&["run", "--rm", "--name", &names.name("touch"), BUSYBOX, "touch", "/x"]);
    out.assert_code(1, "touch /x under a read-only root");
    let stderr = out.stderr_text();
    assert!(stderr.contains("touch: /x: Read-only file system"), "{stderr}");
    assert!(
        forge_warnings(&out).contains(&DEFAULT_WARNINGS[5].to_string()),
        "{stderr}"
    );
    shim.docker(&["run", "--rm", "--name", &names.name("tmp"), BUSYBOX, "touch", "/tmp/x"])
        .assert_success("touch /tmp/x on the tmpfs");

    // A container that writes to /var, made with the standards off (straight
    // to dockerd): `forge-shim audit` names the path to make writable.
    let name = names.name("writer");
    direct_docker(&[
        "run",
        "-d",
        "--name",
        &name,
        BUSYBOX,
        "sh",
        "-c",
        "mkdir -p /var/cache/app && echo x > /var/cache/app/data && exec sleep 3600",
    ])
    .assert_success("docker run -d (direct)");
    wait_until(
        "the writer has written /var/cache/app/data",
        Duration::from_secs(60),
        || {
            let out = direct_docker(&["diff", &name]);
            out.status.success() && out.stdout_text().contains("/var/cache/app/data")
        },
    );

    let out = run_audit(false);
    out.assert_success("forge-shim audit");
    let block = audit_block(&out.stdout_text(), &name);
    assert!(
        block
            .iter()
            .any(|l| l == "  read-only root: needs a tmpfs or volume for /var/cache"),
        "{block:#?}"
    );
    assert!(
        block
            .iter()
            .any(|l| l == "  - read_only_rootfs: root filesystem is writable"),
        "{block:#?}"
    );

    let out = run_audit(true);
    out.assert_success("forge-shim audit --json");
    let audit: Value = serde_json::from_slice(&out.stdout).expect("audit --json prints JSON");
    let entry = audit_entry(&audit, &name);
    assert_eq!(
        entry["read_only"],
        json!({"possible": false, "needs_writable": ["/var/cache"]}),
        "{entry:#}"
    );
}

#[test]
fn audit_reports_a_known_mix() {
    let shim = enforcing_shim();
    let names = Names::new("std_audit_mix");
    let hardened = names.name("hardened");
    let bare = names.name("bare");
    let through_shim = names.name("shim");
    direct_docker(&[
        "create",
        "--name",
        &hardened,
        "--memory",
        "256m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "100",
        "--user",
        "65534:65534",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--health-cmd",
        "true",
        BUSYBOX,
        "sleep",
        "3600",
    ])
    .assert_success("docker create hardened (direct)");
    direct_docker(&["create", "--name", &bare, BUSYBOX, "sleep", "3600"]).assert_success("docker create bare (direct)");
    // Through the shim, every checklist item but the health check is met.
    shim.docker(&["create", "--name", &through_shim, BUSYBOX, "sleep", "3600"])
        .assert_success("docker create through the shim");

    let out = run_audit(true);
    out.assert_success("forge-shim audit --json");
    let audit: Value = serde_json::from_slice(&out.stdout).expect("audit --json prints JSON");
    let total = audit["total"].as_u64().expect("total");
    let compliant = audit["compliant"].as_u64().expect("compliant");
    assert!(total >= 3 && compliant >= 1 && compliant < total, "{compliant}/{total}");

    let entry = audit_entry(&audit, &hardened);
    assert_eq!(rules_of(&entry), Vec::<String>::new(), "{entry:#}");
    assert_eq!(entry["image"], json!(BUSYBOX));
    assert_eq!(entry["state"], json!("created"));

    let entry = audit_entry(&audit, &bare);
    assert_eq!(
        rules_of(&entry),
        [
            "cap_drop",
            "health_check",
            "limits.cpus",
            "limits.memory",
            "limits.pids_limit",
            "no_new_privileges",
            "non_root",
            "read_only_rootfs",
        ],
        "{entry:#}"
    );
    assert_eq!(rules_of(&audit_entry(&audit, &through_shim)), ["health_check"]);

    let out = run_audit(false);
    out.assert_success("forge-shim audit");
    let text = out.stdout_text();
    let header = &audit_block(&text, &hardened)[0];
    assert!(header.ends_with("): compliant"), "{header}");
    let block = audit_block(&text, &bare);
    assert!(block[0].ends_with("): NOT compliant"), "{block:#?}");
    assert!(block.iter().any(|l| l == "  - non_root: runs as root"), "{block:#?}");
    assert!(
        block.iter().any(|l| l == "  - limits.memory: no memory limit"),
        "{block:#?}"
    );
    let last = text.lines().last().unwrap_or_default();
    let (counts, rest) = last.split_once(' ').unwrap_or_default();
    assert_eq!(rest, "containers compliant", "{text}");
    let (n, m) = counts.split_once('/').unwrap_or_default();
    let (n, m): (u64, u64) = (n.parse().expect("N"), m.parse().expect("M"));
    assert!(n < m && m >= 3, "{last}");
}

// ---------------------------------------------------------------------------
// request smuggling

/// A create hidden behind a request the shim has no rule for, with every
/// framing trick whose reading could differ between the shim and dockerd,
/// must still meet the standards: no privileged container is created.
#[test]
fn a_create_smuggled_behind_a_plain_request_still_meets_the_standards() {
    let shim = enforcing_shim();
    let names = Names::new("smuggle");
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |what: &str, build: &dyn Fn(&str) -> String| {
        let name = names.name(what);
        cases.push((name.clone(), build(&privileged_create(&name)).into_bytes()));
    };
    // Positive control: plainly pipelined, the create is read as a request
    // and must be refused (were it forwarded as bytes, it would be created).
    add("pipelined", &|inner| {
        format!("GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n{inner}")
    });
    add("cl-te", &|inner| {
        format!(
            "POST /_ping HTTP/1.1\r\nHost: docker\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{inner}",
            5 + inner.len()
        )
    });
    add("te-cl", &|inner| {
        format!(
            "POST /_ping HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{inner}"
        )
    });
    add("two-lengths", &|inner| {
        format!(
            "POST /_ping HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{inner}",
            inner.len()
        )
    });
    add("signed-length", &|inner| {
        format!(
            "POST /_ping HTTP/1.1\r\nHost: docker\r\nContent-Length: +{}\r\n\r\n{inner}",
            inner.len()
        )
    });
    add("bare-lf", &|inner| {
        format!(
            "POST /_ping HTTP/1.1\nHost: docker\nContent-Length: {}\n\n{inner}",
            inner.len()
        )
    });
    add("folded-length", &|inner| {
        format!(
            "POST /_ping HTTP/1.1\r\nHost: docker\r\nX-Fold: a\r\n Content-Length: {}\r\n\r\n{inner}",
            inner.len()
        )
    });
    add("expect", &|inner| {
        format!(
            "POST /_ping HTTP/1.1\r\nHost: docker\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n{inner}",
            inner.len()
        )
    });
    // A method dockerd's router does not know must not be one the shim
    // waves through either.
    add("lowercase-method", &|inner| {
        format!("p{}", inner.strip_prefix("P").unwrap().replacen("OST", "ost", 1))
    });
    add("chunked-body", &|inner| {
        format!(
            "POST /_ping HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
            inner.len()
        )
    });
    for (name, bytes) in &cases {
        let mut connection = RawConnection::connect(shim.socket_path());
        // The shim answers a head it will not frame with an error and
        // closes the connection, maybe before these writes are done: a
        // write that finds the connection closed (EPIPE, ECONNRESET) is
        // the shim refusing, which is what it should do. What counts is
        // that no container got created.
        let sent_all = connection.send_unless_closed(bytes)
            // A last request that ends the connection, however the rest
            // was read.
            && connection.send_unless_closed(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n");
        // Reads until EOF (a reset counts as EOF): whatever the shim did
        // with the bytes, it is over once the connection is.
        let answer = connection.read_to_end();
        assert_not_created(name);
        if name.ends_with("pipelined") {
            // The positive control is well-formed: the shim must read it
            // all and refuse the create by its rule, not by closing.
            assert!(sent_all, "the shim closed the plainly pipelined connection");
            let text = String::from_utf8_lossy(&answer);
            assert!(text.contains("standards.deny.privileged"), "{text}");
        }
    }
    names.cleanup();
}

/// The embedded default, with the hardening rules `always` (the test
/// harness's default; tests/fitted.rs runs the embedded `fitted`): a
/// `docker run` that the standards change prints one warning line naming
/// every rule; the log has each change; a create the standards leave alone
/// prints none.
#[test]
fn the_default_warning_is_one_line() {
    require_dockerd();
    let shim = Shim::start("auto_sleep: { enabled: false }\n");
    let names = Names::new("one-warning");
    let name = names.name("c");
    let out = shim.docker(&["create", "--name", &name, BUSYBOX, "true"]);
    out.assert_success("docker create");
    let warnings = forge_warnings(&out);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let line = &warnings[0];
    assert!(
        line.starts_with(&format!(
            "WARNING: forge-shim: {} changes made by the standards (",
            DEFAULT_WARNINGS.len()
        )),
        "{line}"
    );
    for rule in [
        "non_root",
        "defaults.memory",
        "defaults.read_only_rootfs",
        "defaults.cap_drop",
    ] {
        assert!(line.contains(rule), "{rule} not named in {line}");
    }
    // Each change is in the log.
    let log = shim.log();
    assert!(log.contains("set memory limit 512M for class normal"), "{log}");
    // Every default was applied all the same.
    assert_eq!(inspect(&name)["HostConfig"]["ReadonlyRootfs"], json!(true));

    // Nothing to change, nothing printed: the create asks for all of it.
    let tidy = names.name("tidy");
    let out = shim.docker(&[
        "create",
        "--name",
        &tidy,
        "--user",
        "65534:65534",
        "--memory",
        "512m",
        "--memory-reservation",
        "128m",
        "--cpus",
        "1",
        "--pids-limit",
        "512",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/run",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        BUSYBOX,
        "true",
    ]);
    out.assert_success("docker create, already standard");
    assert_eq!(forge_warnings(&out), Vec::<String>::new());
}
