//! Live reload and finding the shim, through the real binary in front of
//! the real dockerd: SIGHUP and `forge-shim reload` with a good file and a
//! bad one (what a create gets is read back from dockerd), keys that need a
//! restart, and the operator's commands finding the shim from `DOCKER_HOST`
//! or a docker context made by the real docker CLI.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

/// The shim's config with `memory` as the `normal` class's memory limit
/// (what a busybox container gets); sleeping on (the operator's commands
/// need the lifecycle), but nothing idles long enough to sleep in a test.
fn config(memory: &str) -> String {
    format!(
        "standards:\n  mode: enforce\nclasses:\n  normal:\n    resources: {{ memory: {memory} }}\n\
         auto_sleep:\n  enabled: true\n  min_uptime: 1h\n"
    )
}

/// Rewrites the shim's config file, keeping the harness's `state_dir`.
fn rewrite(shim: &Shim, text: &str) {
    let old = std::fs::read_to_string(shim.config_path()).expect("read the shim config");
    let state_dir = old
        .lines()
        .find(|line| line.starts_with("state_dir:"))
        .expect("the harness wrote state_dir");
    std::fs::write(shim.config_path(), format!("{text}{state_dir}\n")).expect("rewrite the shim config");
}

/// The memory limit dockerd recorded for a busybox container created
/// through the shim now.
fn memory_of_a_new_container(shim: &Shim, names: &Names, what: &str) -> i64 {
    let name = names.name(what);
    shim.docker(&["create", "--name", &name, BUSYBOX, "true"])
        .assert_success("docker create through the shim");
    let out = direct_docker(&["inspect", "--format", "{{.HostConfig.Memory}}", &name]);
    out.assert_success("docker inspect");
    out.stdout_text().trim().parse().expect("a memory limit")
}

/// `forge-shim ARGS` with `env` set and `DOCKER_HOST`, `DOCKER_CONTEXT`,
/// `FORGE_SHIM_SOCKET` and `DOCKER_CONFIG` removed unless given.
fn forge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(SHIM_BIN);
    cmd.args(args).stdin(Stdio::null());
    for key in ["DOCKER_HOST", "DOCKER_CONTEXT", "FORGE_SHIM_SOCKET", "DOCKER_CONFIG"] {
        cmd.env_remove(key);
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    run_with_timeout(cmd, Duration::from_secs(60))
}

/// Waits until the shim's log has `count` lines containing `needle`.
fn wait_for_log(shim: &Shim, needle: &str, count: usize) {
    wait_until(
        &format!("{count} log line(s) with {needle:?}"),
        Duration::from_secs(30),
        || shim.log().matches(needle).count() >= count,
    );
}

const MIB: i64 = 1 << 20;

#[test]
fn sighup_reloads_the_config_and_a_bad_file_keeps_the_running_one() {
    require_dockerd();
    let names = Names::new("reload-sighup");
    let mut shim = Shim::start(&config("200M"));
    assert_eq!(memory_of_a_new_container(&shim, &names, "first"), 200 * MIB);

    rewrite(&shim, &config("300M"));
    shim.signal(Signal::SIGHUP);
    wait_for_log(&shim, "config reloaded", 1);
    assert!(shim.is_running(), "SIGHUP ended the shim:\n{}", shim.log());
    assert_eq!(memory_of_a_new_container(&shim, &names, "second"), 300 * MIB);

    // A file that does not parse: the log names the file, line and column,
    // and creates keep the running config.
    rewrite(&shim, "classes:\n  normal:\n    resources: { memory: [oops\n");
    shim.signal(Signal::SIGHUP);
    wait_for_log(&shim, "config not reloaded", 1);
    assert!(shim.is_running(), "a bad file ended the shim:\n{}", shim.log());
    let log = shim.log();
    let line = log
        .lines()
        .find(|l| l.contains("config not reloaded"))
        .expect("the refusal is logged");
    let file = shim.config_path().display().to_string();
    assert!(line.contains(&format!("{file}:")), "no file:line:column in {line}");
    assert_eq!(memory_of_a_new_container(&shim, &names, "third"), 300 * MIB);

    // A schema error (a key that does not exist) is refused the same way.
    rewrite(&shim, &format!("{}  check_intervall: 5s\n", config("400M")));
    shim.signal(Signal::SIGHUP);
    wait_for_log(&shim, "config not reloaded", 2);
    assert_eq!(memory_of_a_new_container(&shim, &names, "fourth"), 300 * MIB);

    // Many hang-ups in a row: the shim stays up and serves.
    for _ in 0..5 {
        shim.signal(Signal::SIGHUP);
    }
    wait_for_log(&shim, "config not reloaded", 3);
    shim.docker(&["version"])
        .assert_success("docker version after hang-ups");
    assert!(shim.is_running());
}

#[test]
fn forge_shim_reload_applies_what_it_can_and_names_what_needs_a_restart() {
    require_dockerd();
    let names = Names::new("reload-cli");
    let shim = Shim::start(&config("200M"));
    let socket = shim.socket_path().display().to_string();

    rewrite(&shim, &format!("{}max_connections: 7\n", config("250M")));
    let out = forge(&["reload", "--socket", &socket], &[]);
    out.assert_success("forge-shim reload");
    let text = out.stdout_text();
    assert!(text.contains("reloaded"), "{text}");
    assert!(
        text.contains("not applied until a restart") && text.contains("max_connections"),
        "{text}"
    );
    // `--listen` on the command line still names the socket: not reported.
    assert!(!text.contains("listen"), "{text}");
    assert_eq!(memory_of_a_new_container(&shim, &names, "after"), 250 * MIB);

    rewrite(&shim, "auto_sleep: [not, a, mapping]\n");
    let out = forge(&["reload", "--socket", &socket], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout_text());
    let err = out.stderr_text();
    assert!(
        err.contains("config not reloaded") && err.contains("auto_sleep"),
        "{err}"
    );
    assert_eq!(memory_of_a_new_container(&shim, &names, "kept"), 250 * MIB);
}

#[test]
fn the_cli_finds_the_shim_from_docker_host_and_the_docker_context() {
    require_dockerd();
    let shim = Shim::start(&config("200M"));
    let dir = tempfile::tempdir().expect("temp dir");
    // A config whose `listen` is nowhere: only the environment can lead to
    // the shim.
    let nowhere = dir.path().join("nowhere.sock");
    let fallback = dir.path().join("fallback.yml");
    std::fs::write(&fallback, format!("listen: {}\n", nowhere.display())).unwrap();
    let fallback = fallback.display().to_string();
    let docker_host = format!("unix://{}", shim.socket_path().display());

    let out = forge(&["status", "--config", &fallback], &[("DOCKER_HOST", &docker_host)]);
    out.assert_success("forge-shim status with DOCKER_HOST at the shim");
    assert!(out.stdout_text().starts_with("NAME"), "{}", out.stdout_text());

    // DOCKER_HOST at dockerd itself is passed over, never taken for a shim.
    let dockerd = format!("unix://{DOCKERD_SOCKET}");
    let out = forge(&["status", "--config", &fallback], &[("DOCKER_HOST", &dockerd)]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout_text());
    assert!(
        out.stderr_text().contains(&nowhere.display().to_string()),
        "{}",
        out.stderr_text()
    );

    // A docker context made and selected by the docker CLI.
    let docker_config = dir.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    let docker_config = docker_config.display().to_string();
    let cli = |args: &[&str]| {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_CONFIG", &docker_config)
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null());
        run_with_timeout(cmd, Duration::from_secs(60))
    };
    cli(&["context", "create", "forge", "--docker", &format!("host={docker_host}")])
        .assert_success("docker context create");
    cli(&["context", "use", "forge"]).assert_success("docker context use");
    let out = forge(&["status", "--config", &fallback], &[("DOCKER_CONFIG", &docker_config)]);
    out.assert_success("forge-shim status with the docker context at the shim");
    assert!(out.stdout_text().starts_with("NAME"), "{}", out.stdout_text());

    // FORGE_SHIM_SOCKET wins over both, answering or not.
    let out = forge(
        &["status", "--config", &fallback],
        &[
            ("DOCKER_CONFIG", &docker_config),
            ("FORGE_SHIM_SOCKET", &nowhere.display().to_string()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout_text());
    assert!(Path::new(&docker_config).join("config.json").exists());
}
