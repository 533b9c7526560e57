//! `forge-shim install [--takeover]` and `uninstall`, through the real
//! binary, on made-up roots (`--root`): the layouts, `--dry-run`, every
//! refusal leaving the root as it was, uninstall restoring it byte for byte;
//! the generated units checked by `systemd-analyze verify`; and the takeover
//! layout itself with the real dockerd and the plain docker CLI.
//!
//! These machines have no systemd, and dockerd's `/var/run/docker.sock` is
//! shared with other tests, so the layout is made in a mount namespace of
//! the test's own (`unshare -m`): there `/run` is a fresh tmpfs, dockerd's
//! socket is bound at the private path install chose, and the shim runs the
//! generated unit's `ExecStart` and listens on `/var/run/docker.sock`. The
//! docker CLI run in that namespace (`nsenter`) has no `DOCKER_HOST`, no
//! context and no config: it uses the default socket, which is the shim.
//! Nothing outside the namespace sees any of it (asserted).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// Debian's docker.io units, as far as install reads them.
/// (`systemd-analyze verify` wants ExecStart's program to exist: the
/// fixtures name the dockerd on PATH, see [`dockerd_path`].)
const DEBIAN_SERVICE: &str = "[Unit]\nDescription=Docker Application Container Engine\nAfter=network-online.target docker.socket firewalld.service containerd.service\nWants=network-online.target containerd.service\nRequires=docker.socket\n\n[Service]\nType=notify\nEnvironmentFile=-/etc/default/docker\nExecStart=DOCKERD -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\nExecReload=/bin/kill -s HUP $MAINPID\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n";
const DEBIAN_SOCKET: &str = "[Unit]\nDescription=Docker Socket for the API\n\n[Socket]\nListenStream=/run/docker.sock\nSocketMode=0660\nSocketUser=root\nSocketGroup=docker\n\n[Install]\nWantedBy=sockets.target\n";
/// A dockerd started with no -H (its sockets come from daemon.json).
const PLAIN_SERVICE: &str = "[Unit]\nDescription=Docker\n\n[Service]\nType=notify\nExecStart=DOCKERD --containerd=/run/containerd/containerd.sock\n\n[Install]\nWantedBy=multi-user.target\n";
/// A daemon.json with its own spacing, to be restored byte for byte.
const DAEMON_JSON: &[u8] = b"{\n    \"log-level\" : \"warn\",\n\n    \"live-restore\": true\n}\n  \n";

const PRIVATE_SOCKET: &str = "/run/forge-shim/dockerd/docker.sock";

/// The dockerd on PATH (Debian's docker.io: /usr/sbin/dockerd).
fn dockerd_path() -> String {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "command -v dockerd"]);
    let out = run_with_timeout(cmd, Duration::from_secs(10));
    let path = out.stdout_text().trim().to_string();
    if path.is_empty() {
        "/usr/sbin/dockerd".into()
    } else {
        path
    }
}

/// A made-up root holding `files`; `DOCKERD` in them names [`dockerd_path`].
fn root_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let dockerd = dockerd_path();
    for (path, content) in files {
        let p = dir.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let text = String::from_utf8_lossy(content).replace("DOCKERD", &dockerd);
        fs::write(p, text).unwrap();
    }
    dir
}

fn debian_root() -> tempfile::TempDir {
    root_with(&[
        ("lib/systemd/system/docker.service", DEBIAN_SERVICE.as_bytes()),
        ("lib/systemd/system/docker.socket", DEBIAN_SOCKET.as_bytes()),
    ])
}

/// Everything under `root`: each path's kind, mode and bytes (or link).
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let mode = meta.permissions().mode() & 0o7777;
            let what = if meta.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else {
                format!("file {mode:o} {:?}", String::from_utf8_lossy(&fs::read(&path).unwrap()))
            };
            out.insert(rel, what);
        }
    }
    out
}

fn forge(args: &[&str]) -> Output {
    let mut cmd = Command::new(SHIM_BIN);
    cmd.args(args).stdin(Stdio::null());
    run_with_timeout(cmd, Duration::from_secs(60))
}

fn root_arg(root: &Path) -> String {
    root.to_str().unwrap().to_string()
}

/// The words of the one `ExecStart=` in a unit's text.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in\n{unit}"));
    line.split_whitespace().map(String::from).collect()
}

fn assert_refused(out: &Output, want: &str) {
    assert!(!out.status.success(), "install went ahead:\n{}", out.stdout_text());
    let err = out.stderr_text();
    assert!(err.contains("refused, nothing changed"), "{err}");
    assert!(err.contains(want), "wanted {want:?} in {err}");
}

#[test]
fn dry_run_prints_every_file_and_writes_none() {
    let root = debian_root();
    let before = snapshot(root.path());
    let r = root_arg(root.path());
    let out = forge(&["install", "--takeover", "--dry-run", "--root", &r]);
    out.assert_success("install --dry-run");
    let text = out.stdout_text();
    for path in [
        "etc/systemd/system/forge-shim.service",
        "etc/systemd/system/multi-user.target.wants/forge-shim.service",
        "etc/systemd/system/docker.socket.d/forge-shim.conf",
        "etc/tmpfiles.d/forge-shim.conf",
        "run/forge-shim/dockerd",
        "var/lib/forge-shim/install/manifest.json",
    ] {
        assert!(text.contains(&format!("{r}/{path}")), "{path} not named in\n{text}");
    }
    assert!(text.contains(&format!("ListenStream={PRIVATE_SOCKET}")), "{text}");
    assert!(text.contains("--listen /var/run/docker.sock"), "{text}");
    assert_eq!(snapshot(root.path()), before, "--dry-run changed the root");
}

#[test]
fn refusals_change_nothing() {
    let tcp_hosts = br#"{"hosts": ["unix:///var/run/docker.sock", "tcp://127.0.0.1:2375"]}"#;
    let cases: Vec<(tempfile::TempDir, &str)> = vec![
        // daemon.json already has hosts the shim would not cover.
        (
            root_with(&[
                ("lib/systemd/system/docker.service", PLAIN_SERVICE.as_bytes()),
                ("etc/docker/daemon.json", tcp_hosts),
            ]),
            "already sets hosts",
        ),
        // dockerd started with -H flags.
        (
            root_with(&[(
                "lib/systemd/system/docker.service",
                b"[Service]\nExecStart=/usr/sbin/dockerd -H unix:///var/run/docker.sock -H tcp://127.0.0.1:2375\n",
            )]),
            "-H flags",
        ),
        // The same through /etc/default/docker's DOCKER_OPTS.
        (
            root_with(&[
                ("lib/systemd/system/docker.service", DEBIAN_SERVICE.as_bytes()),
                ("lib/systemd/system/docker.socket", DEBIAN_SOCKET.as_bytes()),
                ("etc/default/docker", b"DOCKER_OPTS=\"-H tcp://127.0.0.1:2375\"\n"),
            ]),
            "-H flags",
        ),
        // dockerd not run by systemd at all.
        (
            root_with(&[("etc/docker/daemon.json", DAEMON_JSON)]),
            "no docker.service",
        ),
        // The private socket's folder cannot be made: /run/forge-shim is a file.
        (
            root_with(&[
                ("lib/systemd/system/docker.service", PLAIN_SERVICE.as_bytes()),
                ("run/forge-shim", b"not a folder"),
            ]),
            "is not a directory",
        ),
    ];
    for (root, want) in &cases {
        let before = snapshot(root.path());
        let out = forge(&["install", "--takeover", "--root", &root_arg(root.path())]);
        assert_refused(&out, want);
        assert_eq!(
            snapshot(root.path()),
            before,
            "a refused install ({want}) changed the root"
        );
    }

    // On this machine without --root: no systemd runs here, so install
    // refuses. Only ever --dry-run: a test never writes the real /etc.
    if Path::new("/run/systemd/system").exists() {
        eprintln!("SKIPPED part: systemd runs on this machine, so the no-systemd refusal cannot be seen here");
    } else {
        for args in [
            &["install", "--dry-run"][..],
            &["install", "--takeover", "--dry-run"][..],
        ] {
            assert_refused(&forge(args), "systemd is not running");
        }
        assert_refused(&forge(&["uninstall", "--dry-run"]), "not installed");
    }
}

#[test]
fn daemon_json_layout_and_uninstall_restores_it_byte_for_byte() {
    let root = root_with(&[
        ("lib/systemd/system/docker.service", PLAIN_SERVICE.as_bytes()),
        ("etc/docker/daemon.json", DAEMON_JSON),
    ]);
    let daemon = root.path().join("etc/docker/daemon.json");
    fs::set_permissions(&daemon, fs::Permissions::from_mode(0o640)).unwrap();
    let before = snapshot(root.path());
    let r = root_arg(root.path());

    forge(&["install", "--takeover", "--root", &r]).assert_success("install --takeover");
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&daemon).unwrap()).unwrap();
    assert_eq!(json["hosts"], serde_json::json!([format!("unix://{PRIVATE_SOCKET}")]));
    assert_eq!(json["log-level"], "warn");
    assert_eq!(json["live-restore"], true);
    let unit = fs::read_to_string(root.path().join("etc/systemd/system/forge-shim.service")).unwrap();
    let words = exec_start(&unit);
    assert_eq!(
        &words[1..],
        [
            "serve",
            "--listen",
            "/var/run/docker.sock",
            "--upstream",
            &format!("unix://{PRIVATE_SOCKET}")
        ]
    );
    let dir = fs::metadata(root.path().join("run/forge-shim/dockerd")).unwrap();
    assert_eq!(
        dir.permissions().mode() & 0o777,
        0o700,
        "the private folder is root's alone"
    );

    // A second install is refused while the first stands, and changes nothing.
    let installed = snapshot(root.path());
    assert_refused(&forge(&["install", "--takeover", "--root", &r]), "already installed");
    assert_eq!(snapshot(root.path()), installed);

    // uninstall --dry-run names what it would do and does nothing.
    let out = forge(&["uninstall", "--dry-run", "--root", &r]);
    out.assert_success("uninstall --dry-run");
    assert!(
        out.stdout_text()
            .contains(&format!("restore {r}/etc/docker/daemon.json")),
        "{}",
        out.stdout_text()
    );
    assert_eq!(snapshot(root.path()), installed);

    forge(&["uninstall", "--root", &r]).assert_success("uninstall");
    assert_eq!(
        fs::read(&daemon).unwrap(),
        DAEMON_JSON,
        "daemon.json is not byte for byte what it was"
    );
    assert_eq!(snapshot(root.path()), before, "uninstall left something behind");
}

#[test]
fn daemon_json_made_when_missing_and_removed_with_its_folder() {
    let root = root_with(&[("lib/systemd/system/docker.service", PLAIN_SERVICE.as_bytes())]);
    let r = root_arg(root.path());
    let before = snapshot(root.path());
    forge(&["install", "--takeover", "--root", &r]).assert_success("install --takeover");
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(root.path().join("etc/docker/daemon.json")).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({ "hosts": [format!("unix://{PRIVATE_SOCKET}")] })
    );
    forge(&["uninstall", "--root", &r]).assert_success("uninstall");
    assert!(
        !root.path().join("etc/docker").exists(),
        "the folder install made is left"
    );
    assert_eq!(snapshot(root.path()), before);
}

/// Uninstall never removes what it did not write: a file dockerd (or
/// anyone) put in a folder install made keeps that folder, and is named.
#[test]
fn uninstall_leaves_what_others_put_in_its_folders() {
    let root = debian_root();
    let r = root_arg(root.path());
    forge(&["install", "--takeover", "--root", &r]).assert_success("install --takeover");
    let stray = root.path().join("run/forge-shim/dockerd/docker.sock");
    fs::write(&stray, b"dockerd's socket stands in here").unwrap();
    let out = forge(&["uninstall", "--root", &r]);
    out.assert_success("uninstall");
    assert!(out.stdout_text().contains("left in place"), "{}", out.stdout_text());
    assert_eq!(fs::read(&stray).unwrap(), b"dockerd's socket stands in here");
    assert!(!root.path().join("etc/systemd/system/forge-shim.service").exists());
    assert!(!root.path().join("var/lib/forge-shim/install").exists());
}

#[test]
fn uninstall_refuses_when_a_file_changed_since_install() {
    let root = debian_root();
    let r = root_arg(root.path());
    let before = snapshot(root.path());
    forge(&["install", "--takeover", "--root", &r]).assert_success("install --takeover");
    let dropin = root.path().join("etc/systemd/system/docker.socket.d/forge-shim.conf");
    fs::write(&dropin, "[Socket]\nListenStream=/run/other.sock\n").unwrap();
    let edited = snapshot(root.path());
    let out = forge(&["uninstall", "--root", &r]);
    assert_refused(&out, "was changed since install");
    assert_eq!(snapshot(root.path()), edited, "a refused uninstall changed the root");
    forge(&["uninstall", "--force", "--root", &r]).assert_success("uninstall --force");
    assert_eq!(snapshot(root.path()), before);
}

/// `systemd-analyze verify` on the units install wrote (both layouts), with
/// the root's unit folders first on the search path and the host's after
/// (for `multi-user.target` and friends). It must print nothing.
#[test]
fn generated_units_pass_systemd_analyze_verify() {
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        eprintln!(
            "SKIPPED: systemd-analyze is not installed (Debian package `systemd`; `make setup` installs it), so the units were not verified"
        );
        return;
    }
    let verify = |root: &Path, units: &[&str]| -> Output {
        let path = format!(
            "{}:{}:",
            root.join("etc/systemd/system").display(),
            root.join("lib/systemd/system").display()
        );
        let mut cmd = Command::new("systemd-analyze");
        cmd.arg("verify")
            .args(units)
            .env("SYSTEMD_UNIT_PATH", path)
            .stdin(Stdio::null());
        run_with_timeout(cmd, Duration::from_secs(60))
    };
    // The check is not vacuous: a unit with an unknown key is reported.
    let bad = root_with(&[(
        "etc/systemd/system/forge-shim.service",
        b"[Service]\nExecStart=/bin/true\nNoSuchKey=1\n",
    )]);
    let out = verify(bad.path(), &["forge-shim.service"]);
    assert!(
        out.stderr_text().contains("NoSuchKey"),
        "verify missed a bad key: {}",
        out.stderr_text()
    );

    for (root, units) in [
        (
            debian_root(),
            &["forge-shim.service", "docker.socket", "docker.service"][..],
        ),
        (
            root_with(&[("lib/systemd/system/docker.service", PLAIN_SERVICE.as_bytes())]),
            &["forge-shim.service", "docker.service"][..],
        ),
    ] {
        forge(&["install", "--takeover", "--root", &root_arg(root.path())]).assert_success("install --takeover");
        let out = verify(root.path(), units);
        assert!(
            out.status.success() && out.stderr_text().trim().is_empty(),
            "systemd-analyze verify {units:?}: {}\n{}",
            out.status,
            out.stderr_text()
        );
    }
    // The plain install's unit too.
    let plain = debian_root();
    forge(&["install", "--root", &root_arg(plain.path())]).assert_success("install");
    let out = verify(plain.path(), &["forge-shim.service"]);
    assert!(
        out.status.success() && out.stderr_text().trim().is_empty(),
        "{}",
        out.stderr_text()
    );

    // systemd-tmpfiles makes the private folder from the file install wrote.
    let tmp = debian_root();
    forge(&["install", "--takeover", "--root", &root_arg(tmp.path())]).assert_success("install --takeover");
    let private = tmp.path().join("run/forge-shim/dockerd");
    fs::remove_dir(&private).unwrap();
    let mut cmd = Command::new("systemd-tmpfiles");
    cmd.arg(format!("--root={}", tmp.path().display()))
        .arg("--create")
        .arg(tmp.path().join("etc/tmpfiles.d/forge-shim.conf"));
    run_with_timeout(cmd, Duration::from_secs(60)).assert_success("systemd-tmpfiles --create");
    assert_eq!(fs::metadata(&private).unwrap().permissions().mode() & 0o7777, 0o700);
}

/// The shim started from the generated unit's `ExecStart`, in a mount
/// namespace of its own where `/run` is a new tmpfs and dockerd's socket
/// is bound at the private path. Killed (and the namespace gone) on drop.
struct NamespacedShim {
    child: Child,
    log: PathBuf,
}

impl NamespacedShim {
    fn start(exec: &[String], dir: &Path) -> NamespacedShim {
        // A file outside /run to hold dockerd's socket while /run is covered.
        let holder = dir.join("dockerd.sock");
        fs::write(&holder, b"").unwrap();
        let script = format!(
            "set -e\n\
             mount --bind /run/docker.sock {holder}\n\
             mount -t tmpfs -o mode=0755 forge-shim-takeover-test /run\n\
             mkdir -p /run/forge-shim\n\
             mkdir -m 0700 /run/forge-shim/dockerd\n\
             touch {PRIVATE_SOCKET}\n\
             mount --bind {holder} {PRIVATE_SOCKET}\n\
             exec \"$@\"\n",
            holder = holder.display()
        );
        let log = dir.join("shim.log");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c", &script, "sh"])
            .args(exec)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("shim.out")).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .process_group(0);
        // unshare and sh exec: the child's pid is the shim's.
        let child = cmd.spawn().expect("start unshare");
        NamespacedShim { child, log }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A command run in the shim's mount namespace.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["--mount", "--target", &self.pid(), "--", program]).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// The plain docker CLI in the namespace: no DOCKER_HOST, no context,
    /// an empty config folder.
    fn plain_docker(&self, config: &Path, args: &[&str]) -> Output {
        let mut cmd = self.command("docker", args);
        for var in [
            "DOCKER_HOST",
            "DOCKER_CONTEXT",
            "DOCKER_TLS_VERIFY",
            "DOCKER_CERT_PATH",
            "DOCKER_API_VERSION",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("DOCKER_CONFIG", config).env("DOCKER_CLI_HINTS", "false");
        run_with_timeout(cmd, DOCKER_TIMEOUT)
    }
}

impl Drop for NamespacedShim {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn takeover_layout_with_the_plain_docker_cli() {
    require_dockerd();
    let names = Names::new("takeover_layout");
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let config = work.path().join("shim.yml");
    fs::write(
        &config,
        format!("state_dir: {}\nauto_sleep: {{ enabled: false }}\n", state.display()),
    )
    .unwrap();
    let root = debian_root();
    let before = snapshot(root.path());
    let r = root_arg(root.path());
    forge(&[
        "install",
        "--takeover",
        "--root",
        &r,
        "--config",
        config.to_str().unwrap(),
    ])
    .assert_success("install --takeover");

    // The layout install wrote: dockerd's socket at the private path, the
    // shim on /var/run/docker.sock in front of it.
    let dropin = fs::read_to_string(root.path().join("etc/systemd/system/docker.socket.d/forge-shim.conf")).unwrap();
    let listens: Vec<&str> = dropin.lines().filter_map(|l| l.strip_prefix("ListenStream=")).collect();
    assert_eq!(listens, ["", PRIVATE_SOCKET], "{dropin}");
    let unit = fs::read_to_string(root.path().join("etc/systemd/system/forge-shim.service")).unwrap();
    let exec = exec_start(&unit);
    assert_eq!(exec[0], SHIM_BIN);
    assert_eq!(
        &exec[1..],
        [
            "serve",
            "--listen",
            "/var/run/docker.sock",
            "--upstream",
            &format!("unix://{PRIVATE_SOCKET}"),
            "--config",
            config.to_str().unwrap()
        ]
    );

    let host_socket = fs::metadata(DOCKERD_SOCKET).unwrap();
    let shim = NamespacedShim::start(&exec, work.path());
    let ns_socket_ready = || {
        shim.command("test", &["-S", "/var/run/docker.sock"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "the shim listens on /var/run/docker.sock in its namespace",
            Duration::from_secs(60),
            || ns_socket_ready() && shim.log().contains("forge-shim listening"),
        )
    }));
    if started.is_err() {
        panic!("the shim did not start; its log:\n{}", shim.log());
    }

    // The plain docker CLI in the namespace reaches dockerd through the shim.
    let docker_config = work.path().join("docker-config");
    fs::create_dir(&docker_config).unwrap();
    let name = names.name("plain-cli");
    let out = shim.plain_docker(
        &docker_config,
        &["create", "--name", &name, NO_SLEEP[0], NO_SLEEP[1], BUSYBOX, "true"],
    );
    out.assert_success("docker create in the namespace");
    let warnings: Vec<String> = out
        .stderr_text()
        .lines()
        .filter(|l| l.starts_with("WARNING: forge-shim: "))
        .map(String::from)
        .collect();
    assert!(
        !warnings.is_empty(),
        "no forge-shim warning: {}\nlog:\n{}",
        out.stderr_text(),
        shim.log()
    );
    // dockerd itself holds the standards' values.
    let inspect = direct_docker(&["inspect", "--format", "{{.HostConfig.Memory}}", &name]);
    inspect.assert_success("inspect on dockerd");
    assert_eq!(
        inspect.stdout_text().trim(),
        "536870912",
        "the create did not get the standards"
    );
    // What answers on /var/run/docker.sock there is the shim (its own
    // API), and the operator's CLI finds it there with nothing set.
    let mut cmd = shim.command(SHIM_BIN, &["reload"]);
    for var in ["DOCKER_HOST", "DOCKER_CONTEXT", "FORGE_SHIM_SOCKET"] {
        cmd.env_remove(var);
    }
    cmd.env("DOCKER_CONFIG", &docker_config);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    out.assert_success("forge-shim reload in the namespace, no --socket");
    assert!(out.stdout_text().contains("reloaded"), "{}", out.stdout_text());

    // Never: outside the namespace /var/run/docker.sock is dockerd's, the
    // same file as before, and a create there gets no standards.
    let after = fs::metadata(DOCKERD_SOCKET).unwrap();
    assert_eq!((after.dev(), after.ino()), (host_socket.dev(), host_socket.ino()));
    let direct = names.name("direct");
    let out = direct_docker(&["create", "--name", &direct, NO_SLEEP[0], NO_SLEEP[1], BUSYBOX, "true"]);
    out.assert_success("docker create on dockerd");
    assert!(!out.stderr_text().contains("forge-shim"), "{}", out.stderr_text());
    let inspect = direct_docker(&["inspect", "--format", "{{.HostConfig.Memory}}", &direct]);
    assert_eq!(inspect.stdout_text().trim(), "0");
    assert!(
        !Path::new(PRIVATE_SOCKET).exists(),
        "the private socket leaked out of the namespace"
    );

    drop(shim);
    forge(&["uninstall", "--root", &r]).assert_success("uninstall");
    assert_eq!(snapshot(root.path()), before, "uninstall left something behind");
}
