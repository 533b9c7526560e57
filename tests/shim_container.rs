//! The shim as a container: `scripts/build-shim-image.sh` builds the image
//! from the binary under test (no registry), `examples/shim-container/`'s
//! compose file runs it straight on dockerd with dockerd's socket mounted
//! and the shim's socket in a host folder, and both the host's docker CLI
//! and another container use that socket: their creates get the standards,
//! read back from dockerd directly.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// `docker compose` on the example's file, straight on dockerd.
fn compose(project: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let file = repo_path("examples/shim-container/compose.yaml");
    let mut full = vec!["compose", "-p", project, "-f", file.to_str().unwrap()];
    full.extend_from_slice(args);
    let mut cmd = direct_docker_command(&full);
    cmd.envs(env.iter().copied());
    run_with_timeout(cmd, Duration::from_secs(180))
}

fn forge_warnings(out: &Output) -> Vec<String> {
    out.stderr_text()
        .lines()
        .filter(|l| l.starts_with("WARNING: forge-shim: "))
        .map(String::from)
        .collect()
}

fn memory_on_dockerd(name: &str) -> String {
    let out = direct_docker(&["inspect", "--format", "{{.HostConfig.Memory}}", name]);
    out.assert_success("inspect on dockerd");
    out.stdout_text().trim().to_string()
}

#[test]
fn shim_image_in_compose_serves_the_host_and_other_containers() {
    require_dockerd();
    let names = Names::new("shim_container");
    let image = names.image("shim");
    names.track_image(&image);
    let mut build = Command::new("bash");
    build
        .arg(repo_path("scripts/build-shim-image.sh"))
        .args(["--bin", SHIM_BIN, "--tag", &image])
        .env("DOCKER_HOST", DOCKERD_HOST)
        .stdin(std::process::Stdio::null());
    run_with_timeout(build, Duration::from_secs(300)).assert_success("build-shim-image.sh");

    // Minimal: no shell in it, only the shim.
    let out = direct_docker(&["run", "--rm", "--entrypoint", "/bin/sh", &image, "-c", "true"]);
    assert!(!out.status.success(), "the image has a shell");
    let out = direct_docker(&["run", "--rm", &image, "--version"]);
    out.assert_success("forge-shim --version in the image");
    assert!(out.stdout_text().starts_with("forge-shim "), "{}", out.stdout_text());

    let work = tempfile::tempdir().unwrap();
    let sockets = work.path().join("sockets");
    fs::create_dir(&sockets).unwrap();
    // The example's shim.yml with sleep off: other tests' containers share
    // this dockerd and must not be put to sleep by this shim.
    let config = work.path().join("shim.yml");
    let example = fs::read_to_string(repo_path("examples/shim-container/shim.yml")).unwrap();
    fs::write(&config, format!("{example}auto_sleep: {{ enabled: false }}\n")).unwrap();
    let project = names.project("shimc");
    let env = [
        ("FORGE_SHIM_IMAGE", image.as_str()),
        ("FORGE_SHIM_SOCKET_DIR", sockets.to_str().unwrap()),
        ("FORGE_SHIM_CONFIG", config.to_str().unwrap()),
    ];
    compose(&project, &env, &["up", "-d"]).assert_success("compose up");
    let socket = sockets.join("docker.sock");
    let host = format!("unix://{}", socket.display());
    wait_until(
        "the shim's socket answers in the shared folder",
        Duration::from_secs(60),
        || {
            socket.exists()
                && try_run_with_timeout(docker_command_for(&host, &["version"]), Duration::from_secs(30))
                    .is_ok_and(|o| o.status.success())
        },
    );
    let logs = || compose(&project, &env, &["logs", "--no-color"]).stdout_text();

    // The shim's own container carries the no-sleep label.
    let ps = compose(&project, &env, &["ps", "-q"]);
    let shim_id = ps.stdout_text().trim().to_string();
    let label = direct_docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"forge.sleep\"}}",
        &shim_id,
    ]);
    assert_eq!(label.stdout_text().trim(), "false");

    // The host's docker CLI through the shared socket.
    let from_host = names.name("from-host");
    let out = run_with_timeout(
        docker_command_for(
            &host,
            &[
                "create",
                "--name",
                &from_host,
                NO_SLEEP[0],
                NO_SLEEP[1],
                BUSYBOX,
                "true",
            ],
        ),
        DOCKER_TIMEOUT,
    );
    out.assert_success("docker create through the containerised shim");
    assert!(
        !forge_warnings(&out).is_empty(),
        "no warning: {}\nlogs:\n{}",
        out.stderr_text(),
        logs()
    );
    assert_eq!(memory_on_dockerd(&from_host), "536870912");

    // Another container, given the same folder, with the host's docker CLI
    // (dynamically linked against glibc only) mounted in.
    let from_container = names.name("from-container");
    let client = names.name("client");
    let socket_mount = format!("{}:/run/forge-shim", sockets.display());
    let mut which = Command::new("sh");
    which.args(["-c", "command -v docker"]);
    let docker_cli = run_with_timeout(which, Duration::from_secs(10))
        .stdout_text()
        .trim()
        .to_string();
    let cli_mount = format!("{docker_cli}:/usr/local/bin/docker:ro");
    let out = direct_docker(&[
        "run",
        "--rm",
        "--name",
        &client,
        NO_SLEEP[0],
        NO_SLEEP[1],
        "-e",
        "HOME=/tmp",
        "-v",
        &socket_mount,
        "-v",
        &cli_mount,
        "-v",
        "/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro",
        "-v",
        "/lib64:/lib64:ro",
        BUSYBOX,
        "/usr/local/bin/docker",
        "-H",
        "unix:///run/forge-shim/docker.sock",
        "create",
        "--name",
        &from_container,
        NO_SLEEP[0],
        NO_SLEEP[1],
        BUSYBOX,
        "true",
    ]);
    out.assert_success("docker create from another container through the shared socket");
    assert!(
        !forge_warnings(&out).is_empty(),
        "no warning: {}\nlogs:\n{}",
        out.stderr_text(),
        logs()
    );
    assert_eq!(memory_on_dockerd(&from_container), "536870912");

    // A create the standards deny is denied from a container too.
    let denied = names.name("denied");
    let out = run_with_timeout(
        docker_command_for(&host, &["create", "--name", &denied, "--privileged", BUSYBOX, "true"]),
        DOCKER_TIMEOUT,
    );
    assert!(!out.status.success(), "a privileged create went through");
    assert!(out.stderr_text().contains("forge-shim: "), "{}", out.stderr_text());
    let exists = direct_docker(&["inspect", &denied]);
    assert!(!exists.status.success(), "the denied container exists on dockerd");

    // Down: the shim removes its socket, nothing stale is left to share.
    compose(&project, &env, &["down", "-v"]).assert_success("compose down");
    assert!(!Path::new(&socket).exists(), "the shim left its socket behind");
}
