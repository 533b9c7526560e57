//! The harness shared by every real-dockerd test file (`tests/*.rs` that say
//! `mod common;`): the built `forge-shim` binary in front of the machine's
//! real dockerd, driven by the real `docker` CLI, `docker compose`, bollard
//! and hand-made HTTP.
//!
//! What it gives a test:
//! - [`require_dockerd`]: fails the test (never skips it) when dockerd or the
//!   local test images are missing.
//! - [`Shim`]: the binary on a socket in its own temporary folder, with its
//!   log captured; started, killed with `SIGKILL`, restarted on the same
//!   socket, stopped with `SIGTERM` when dropped. The log is printed when the
//!   test fails, and a `panicked` line in it fails the test.
//! - [`Names`]: a unique name prefix per test and a cleanup guard that
//!   removes every container, image, network, volume and compose project
//!   carrying that prefix, through dockerd directly, even when the test
//!   fails.
//! - [`run_with_timeout`] and friends: every process a test spawns has a
//!   deadline, so no test can hang; [`run_in_pty`] runs a command under a
//!   pseudo-terminal (`script`).
//! - [`raw_request`] and [`RawConnection`]: hand-made HTTP over a Unix
//!   socket, for malformed requests, chunked bodies, case-variant JSON keys,
//!   upgrades and streams.
//! - [`wait_until`]: poll with a deadline instead of sleeping.
//!
//! Conventions: tests never use fixed host ports (publish `127.0.0.1::PORT`
//! and ask `docker port`), never assert on timings, and give every process
//! a generous deadline (the CI machine has 2 noisy cores).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// The built binary under test.
pub const SHIM_BIN: &str = env!("CARGO_BIN_EXE_forge-shim");
/// dockerd's own socket; cleanup and comparisons talk to it directly.
pub const DOCKERD_SOCKET: &str = "/var/run/docker.sock";
pub const DOCKERD_HOST: &str = "unix:///var/run/docker.sock";

/// The local test images built by `scripts/test-images.sh`.
pub const BUSYBOX: &str = "forge-test/busybox:latest";
pub const BUSYBOX_NONROOT: &str = "forge-test/busybox-nonroot:latest";
pub const HTTPD: &str = "forge-test/httpd:latest";

/// `docker run`/`create` flags that keep a container awake whatever other
/// shim runs on the machine: a developer's shim with `auto_sleep` on pauses
/// every idle container dockerd has, including other tests' containers, and
/// an exec into a container frozen mid-test hangs. Long-lived test
/// containers that are not about sleeping should carry it.
pub const NO_SLEEP: [&str; 2] = ["--label", "forge.sleep=false"];

/// A config that makes the shim a plain proxy: no standards, no sleeping.
pub const PASSTHROUGH_CONFIG: &str = "standards: { mode: off }\nauto_sleep: { enabled: false }\n";

/// Default deadline for one `docker` command. Generous: a 2-core machine
/// running several test binaries at once can be slow, and the deadline is a
/// hang detector, not a timing assertion.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(180);
/// How long [`Shim::start`] waits for `/_forge/v1/health` to answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long dropping a [`Shim`] waits after `SIGTERM` before `SIGKILL`.
/// Above the default `shutdown_grace` (10 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Read timeout of a [`RawConnection`]: a hang detector.
pub const RAW_READ_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// dockerd

/// Panics with a clear message unless dockerd answers on
/// `/var/run/docker.sock` and the local test images exist. Real-dockerd
/// tests call it first: they fail, never silently skip, without dockerd.
/// Checked once per test binary.
pub fn require_dockerd() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let version = try_run_with_timeout(
            direct_docker_command(&["version", "--format", "{{.Server.Version}}"]),
            Duration::from_secs(60),
        );
        match version {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(format!(
                    "dockerd does not answer at {DOCKERD_SOCKET} (`docker version` exited {:?}: {}).\n\
                     Start it with scripts/setup-docker.sh; the real-dockerd tests never skip.",
                    out.status.code(),
                    out.stderr_text().trim()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "dockerd does not answer at {DOCKERD_SOCKET}: {e}.\n\
                     Start it with scripts/setup-docker.sh; the real-dockerd tests never skip."
                ))
            }
        }
        for image in [BUSYBOX, BUSYBOX_NONROOT, HTTPD] {
            let out = run_with_timeout(
                direct_docker_command(&["image", "inspect", "--format", "{{.Id}}", image]),
                Duration::from_secs(60),
            );
            if !out.status.success() {
                return Err(format!(
                    "test image {image} is missing; build it with scripts/test-images.sh"
                ));
            }
        }
        sweep_leftovers_of_dead_runs();
        Ok(())
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// A `docker` command aimed at dockerd directly (not through a shim).
pub fn direct_docker_command(args: &[&str]) -> Command {
    docker_command_for(DOCKERD_HOST, args)
}

/// Runs `docker ARGS` against dockerd directly, with [`DOCKER_TIMEOUT`].
pub fn direct_docker(args: &[&str]) -> Output {
    run_with_timeout(direct_docker_command(args), DOCKER_TIMEOUT)
}

/// A `docker` command for `host` (`unix://...`), stdin from `/dev/null`,
/// with the environment cleared of anything that could point it elsewhere.
pub fn docker_command_for(host: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_API_VERSION")
        // No "What's next" hints on stdout.
        .env("DOCKER_CLI_HINTS", "false")
        .stdin(Stdio::null());
    cmd
}

// ---------------------------------------------------------------------------
// the shim

/// Options for starting a [`Shim`]; [`Shim::start`] uses the defaults.
pub struct ShimBuilder {
    config_yaml: String,
    upstream: Option<String>,
    rust_log: String,
    env: Vec<(String, String)>,
}

impl ShimBuilder {
    /// Overrides `upstream` with `--upstream` (a path or `unix://` URL).
    pub fn upstream(mut self, upstream: impl Into<String>) -> Self {
        self.upstream = Some(upstream.into());
        self
    }

    /// `RUST_LOG` for the shim; `info` by default.
    pub fn rust_log(mut self, filter: impl Into<String>) -> Self {
        self.rust_log = filter.into();
        self
    }

    /// An extra environment variable for the shim process.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Writes the config, starts the binary and waits until it answers.
    pub fn start(self) -> Shim {
        let dir = tempfile::Builder::new()
            .prefix("fs-shim-")
            .tempdir()
            .expect("create a temporary folder for the shim");
        let config_path = dir.path().join("shim.yml");
        let mut config = self.config_yaml.clone();
        // Parallel shims must not share the default /var/lib/forge-shim.
        if !config.lines().any(|line| line.starts_with("state_dir:")) {
            if !config.is_empty() && !config.ends_with('\n') {
                config.push('\n');
            }
            config.push_str(&format!("state_dir: {}\n", dir.path().join("state").display()));
        }
        std::fs::write(&config_path, &config).expect("write the shim config");
        let mut shim = Shim {
            socket: dir.path().join("docker.sock"),
            log_path: dir.path().join("shim.log"),
            config_path,
            upstream: self.upstream,
            rust_log: self.rust_log,
            env: self.env,
            child: None,
            starts: 0,
            dir,
        };
        shim.respawn();
        shim
    }
}

/// The `forge-shim` binary serving on a socket in its own temporary folder.
///
/// The config is written to `<dir>/shim.yml` (with `state_dir: <dir>/state`
/// added unless it sets one), the socket is `<dir>/docker.sock` (given with
/// `--listen`), and stdout and stderr go to `<dir>/shim.log` (appended
/// across restarts). Dropping it stops the shim with `SIGTERM`, then
/// `SIGKILL` after [`STOP_TIMEOUT`]; when the test is failing the log is
/// printed, and a log that shows a panic fails the test.
pub struct Shim {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    socket: PathBuf,
    log_path: PathBuf,
    upstream: Option<String>,
    rust_log: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
    starts: usize,
}

impl Shim {
    /// Starts the shim with `config_yaml` and waits until it answers
    /// `GET /_forge/v1/health` (at most [`READY_TIMEOUT`]).
    pub fn start(config_yaml: &str) -> Shim {
        Shim::builder(config_yaml).start()
    }

    /// For options: `Shim::builder(yaml).upstream(path).start()`.
    pub fn builder(config_yaml: &str) -> ShimBuilder {
        ShimBuilder {
            config_yaml: config_yaml.to_string(),
            upstream: None,
            rust_log: "info".to_string(),
            env: Vec::new(),
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// `unix://<socket>`, for `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The shim's temporary folder; tests may put their own files there.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the shim wrote so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The running process's id. Panics when it is not running.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the shim is not running").id()
    }

    /// A `serve` command with this shim's config, socket and upstream, not
    /// started: e.g. to check that a second shim refuses the live socket.
    pub fn serve_command(&self) -> Command {
        let mut cmd = Command::new(SHIM_BIN);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--listen")
            .arg(&self.socket);
        if let Some(upstream) = &self.upstream {
            cmd.arg("--upstream").arg(upstream);
        }
        cmd.env("RUST_LOG", &self.rust_log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Starts the binary again on the same socket and config (after
    /// [`Shim::kill9`] or [`Shim::terminate`]) and waits until it answers.
    pub fn respawn(&mut self) {
        assert!(
            !self.is_running(),
            "respawn: the shim (pid {}) is still running",
            self.pid()
        );
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the shim log");
        writeln!(log, "----- forge-shim start #{} -----", self.starts).ok();
        let log_err = log.try_clone().expect("clone the shim log handle");
        let mut cmd = self.serve_command();
        cmd.stdout(log).stderr(log_err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {SHIM_BIN}: {e}"));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Polls `GET /_forge/v1/health` until it answers 200, at most
    /// [`READY_TIMEOUT`]; panics with the log if the shim exits first.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                panic!("forge-shim exited during startup ({status}); its log:\n{}", self.log());
            }
            if let Ok(response) = try_raw_request(
                &self.socket,
                b"GET /_forge/v1/health HTTP/1.1\r\nHost: forge\r\nConnection: close\r\n\r\n",
            ) {
                if response.status == 200 {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "forge-shim did not answer /_forge/v1/health on {} within {:?}; its log:\n{}",
                    self.socket.display(),
                    READY_TIMEOUT,
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    /// The exit status if the process has exited; `None` while it runs.
    fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().expect("wait for the shim")
    }

    /// Sends `signal` to the shim process.
    pub fn signal(&self, signal: Signal) {
        signal::kill(Pid::from_raw(self.pid() as i32), signal)
            .unwrap_or_else(|e| panic!("cannot send {signal} to the shim: {e}"));
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `SIGTERM`, then waits (at most [`STOP_TIMEOUT`]) for the exit.
    /// Panics with the log if it does not exit in time (after `SIGKILL`).
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        match self.wait_exit(STOP_TIMEOUT) {
            Some(status) => status,
            None => {
                self.kill9();
                panic!(
                    "forge-shim did not exit within {STOP_TIMEOUT:?} of SIGTERM; its log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// `SIGKILL` and reap: the socket file stays behind, stale, as after a
    /// crash. [`Shim::respawn`] starts it again on the same socket.
    pub fn kill9(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `SIGTERM`, wait, start again on the same socket.
    pub fn restart(&mut self) {
        self.terminate();
        self.respawn();
    }

    /// Fails the test when the log shows a panic.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(!log.contains("panicked"), "forge-shim panicked; its log:\n{log}");
    }

    /// A `docker` command aimed at this shim (stdin `/dev/null`).
    pub fn docker_command(&self, args: &[&str]) -> Command {
        docker_command_for(&self.docker_host(), args)
    }

    /// Runs `docker ARGS` through the shim, with [`DOCKER_TIMEOUT`].
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_timeout(args, DOCKER_TIMEOUT)
    }

    pub fn docker_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        run_with_timeout(self.docker_command(args), timeout)
    }

    /// Runs `docker ARGS` through the shim with `input` on its stdin
    /// (closed after it, so the CLI sees EOF).
    pub fn docker_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_input(self.docker_command(args), input, DOCKER_TIMEOUT)
    }

    /// Runs `docker ARGS` through the shim under a pseudo-terminal.
    pub fn docker_in_pty(&self, args: &[&str], timeout: Duration) -> Output {
        let mut line = String::from("docker");
        for arg in args {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        run_in_pty(
            &line,
            &[
                ("DOCKER_HOST", self.docker_host().as_str()),
                ("DOCKER_CLI_HINTS", "false"),
            ],
            timeout,
        )
    }

    /// `GET PATH` over a fresh connection.
    pub fn get(&self, path: &str) -> RawResponse {
        raw_request(
            &self.socket,
            format!("GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// `GET /_forge/v1/health`, parsed; panics unless it answers 200.
    pub fn health(&self) -> serde_json::Value {
        let response = self.get("/_forge/v1/health");
        assert_eq!(response.status, 200, "health: {}", response.body_text());
        response.json()
    }

    /// A bollard client on the shim's socket, API version negotiated.
    pub async fn bollard(&self) -> bollard::Docker {
        bollard::Docker::connect_with_unix(&self.socket.to_string_lossy(), 120, bollard::API_DEFAULT_VERSION)
            .expect("bollard client")
            .negotiate_version()
            .await
            .expect("bollard: negotiate the API version through the shim")
    }

    /// Number of open file descriptors of the shim process (client and
    /// upstream connections included).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// `VmRSS` and `VmHWM` of the shim process, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc/PID/status");
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = signal::kill(Pid::from_raw(self.pid() as i32), Signal::SIGTERM);
            if self.wait_exit(STOP_TIMEOUT).is_none() {
                eprintln!("forge-shim did not stop within {STOP_TIMEOUT:?} of SIGTERM; killing it");
                self.kill9();
            }
        }
        let log = self.log();
        if thread::panicking() {
            eprintln!(
                "----- forge-shim log ({}) -----\n{log}----- end of forge-shim log -----",
                self.log_path.display()
            );
        } else if log.contains("panicked") {
            panic!("forge-shim panicked; its log:\n{log}");
        }
    }
}

// ---------------------------------------------------------------------------
// names and cleanup

/// A unique name prefix for one test, `fs-test-<test>-<pid>-<n>`, and the
/// guard that removes what carries it.
///
/// Give every container, image, network, volume and compose project a name
/// from [`Names::name`] (or [`Names::image`], [`Names::project`]). On drop,
/// even when the test panicked, everything whose name starts with the
/// prefix is removed through dockerd directly (`/var/run/docker.sock`):
/// compose projects (by their label), containers (with anonymous volumes),
/// networks, volumes and images. Things whose names you cannot choose
/// (e.g. an image tag from `docker load`) can be added with
/// [`Names::track_image`] and friends.
pub struct Names {
    prefix: String,
    tracked: Mutex<Tracked>,
}

#[derive(Default)]
struct Tracked {
    containers: BTreeSet<String>,
    images: BTreeSet<String>,
    networks: BTreeSet<String>,
    volumes: BTreeSet<String>,
}

static NAMES_COUNTER: AtomicUsize = AtomicUsize::new(0);
const NAME_ROOT: &str = "fs-test-";

impl Names {
    /// `test` is the test's name; anything but `[a-z0-9]` becomes `-`.
    pub fn new(test: &str) -> Names {
        let mut slug: String = test
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        slug.truncate(40);
        let n = NAMES_COUNTER.fetch_add(1, Ordering::Relaxed);
        Names {
            prefix: format!("{NAME_ROOT}{slug}-{}-{n}", std::process::id()),
            tracked: Mutex::new(Tracked::default()),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>-<what>`: for containers, networks, volumes.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// `<prefix>-<what>:latest`: an image reference (lowercase, as Docker
    /// requires).
    pub fn image(&self, what: &str) -> String {
        format!("{}-{}:latest", self.prefix, what.to_ascii_lowercase())
    }

    /// A compose project name (`docker compose -p`).
    pub fn project(&self, what: &str) -> String {
        self.name(&what.to_ascii_lowercase())
    }

    pub fn track_container(&self, id: &str) {
        self.tracked.lock().unwrap().containers.insert(id.to_string());
    }

    pub fn track_image(&self, reference: &str) {
        self.tracked.lock().unwrap().images.insert(reference.to_string());
    }

    pub fn track_network(&self, name: &str) {
        self.tracked.lock().unwrap().networks.insert(name.to_string());
    }

    pub fn track_volume(&self, name: &str) {
        self.tracked.lock().unwrap().volumes.insert(name.to_string());
    }

    /// Removes everything now (also done on drop).
    pub fn cleanup(&self) {
        let tracked = std::mem::take(&mut *self.tracked.lock().unwrap());
        let prefix = format!("{}-", self.prefix);
        cleanup_matching(&|name: &str| name.starts_with(&prefix), &tracked);
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Lines of a direct `docker` listing, or nothing if it fails.
fn direct_lines(args: &[&str]) -> Vec<String> {
    match try_run_with_timeout(direct_docker_command(args), Duration::from_secs(120)) {
        Ok(out) if out.status.success() => out
            .stdout_text()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        Ok(out) => {
            eprintln!("cleanup: docker {args:?} failed: {}", out.stderr_text());
            Vec::new()
        }
        Err(e) => {
            eprintln!("cleanup: {e}");
            Vec::new()
        }
    }
}

/// Runs a direct removal; failures are reported, never fatal.
fn direct_remove(args: &[&str], items: &[String]) {
    if items.is_empty() {
        return;
    }
    let mut all: Vec<&str> = args.to_vec();
    all.extend(items.iter().map(String::as_str));
    match try_run_with_timeout(direct_docker_command(&all), Duration::from_secs(180)) {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            // "No such ..." is fine: compose or --rm removed it already.
            let stderr = out.stderr_text();
            if !stderr.lines().all(|l| l.contains("No such") || l.trim().is_empty()) {
                eprintln!("cleanup: docker {all:?}: {stderr}");
            }
        }
        Err(e) => eprintln!("cleanup: {e}"),
    }
}

fn cleanup_matching(matches: &dyn Fn(&str) -> bool, tracked: &Tracked) {
    // Containers first (by name or compose project), then what they used.
    let mut containers: Vec<String> = tracked.containers.iter().cloned().collect();
    for line in direct_lines(&[
        "ps",
        "-a",
        "--format",
        "{{.ID}}\t{{.Names}}\t{{.Label \"com.docker.compose.project\"}}",
    ]) {
        let mut fields = line.split('\t');
        let id = fields.next().unwrap_or_default();
        let names = fields.next().unwrap_or_default();
        let project = fields.next().unwrap_or_default();
        if names.split(',').any(matches) || (!project.is_empty() && matches(project)) {
            containers.push(id.to_string());
        }
    }
    direct_remove(&["rm", "-f", "-v"], &containers);

    let mut networks: Vec<String> = tracked.networks.iter().cloned().collect();
    networks.extend(
        direct_lines(&["network", "ls", "--format", "{{.Name}}"])
            .into_iter()
            .filter(|n| matches(n)),
    );
    direct_remove(&["network", "rm"], &networks);

    let mut volumes: Vec<String> = tracked.volumes.iter().cloned().collect();
    volumes.extend(
        direct_lines(&["volume", "ls", "--format", "{{.Name}}"])
            .into_iter()
            .filter(|n| matches(n)),
    );
    direct_remove(&["volume", "rm", "-f"], &volumes);

    let mut images: Vec<String> = tracked.images.iter().cloned().collect();
    images.extend(
        direct_lines(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .into_iter()
            .filter(|reference| {
                // `docker.io/library/x` and `x` name the same local image.
                let short = reference.strip_prefix("docker.io/library/").unwrap_or(reference);
                matches(short)
            }),
    );
    direct_remove(&["image", "rm", "-f"], &images);
}

/// Removes what earlier, killed test runs left behind: names under
/// `fs-test-` whose pid (`fs-test-<test>-<pid>-<n>-...`) is no longer a
/// live process. Runs once per test binary, from [`require_dockerd`].
fn sweep_leftovers_of_dead_runs() {
    let is_dead_run = |name: &str| -> bool {
        let name = name.strip_prefix("docker.io/library/").unwrap_or(name);
        let Some(rest) = name.strip_prefix(NAME_ROOT) else {
            return false;
        };
        // The pid is the first all-digit field followed by another all-digit
        // field (the counter); test slugs may contain digits too, so try
        // every such position and require all candidates to be dead.
        let fields: Vec<&str> = rest.split(['-', ':', '_']).collect();
        let mut candidates = fields
            .windows(2)
            .filter(|w| is_number(w[0]) && is_number(w[1]))
            .map(|w| w[0].parse::<i32>().unwrap_or(0))
            .peekable();
        if candidates.peek().is_none() {
            return false;
        }
        candidates.all(|pid| pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists())
    };
    cleanup_matching(&is_dead_run, &Tracked::default());
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------
// processes with deadlines

/// A command that did not finish in time; it was killed (its whole process
/// group) and `partial` holds what it printed.
#[derive(Debug)]
pub struct TimedOut {
    pub command: String,
    pub after: Duration,
    pub partial: Output,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} did not finish within {:?} and was killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.after,
            self.partial.stdout_text(),
            self.partial.stderr_text()
        )
    }
}

/// Runs `cmd` to completion with stdout and stderr captured; panics (with
/// the partial output) if it takes longer than `timeout`. Stdin is whatever
/// the caller set (the `docker` helpers set `/dev/null`).
pub fn run_with_timeout(cmd: Command, timeout: Duration) -> Output {
    try_run_with_timeout(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`run_with_timeout`] with `input` written to the command's stdin,
/// which is then closed.
pub fn run_with_input(mut cmd: Command, input: &[u8], timeout: Duration) -> Output {
    cmd.stdin(Stdio::piped());
    let input = input.to_vec();
    try_run_inner(cmd, timeout, Some(input)).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`run_with_timeout`], returning the timeout instead of panicking.
pub fn try_run_with_timeout(cmd: Command, timeout: Duration) -> Result<Output, TimedOut> {
    try_run_inner(cmd, timeout, None)
}

fn try_run_inner(mut cmd: Command, timeout: Duration, input: Option<Vec<u8>>) -> Result<Output, TimedOut> {
    let description = describe(&cmd);
    // Its own process group, so that a timeout kills helpers it started
    // (the compose plugin, `script`'s child) along with it.
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let pgid = Pid::from_raw(child.id() as i32);
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin was piped");
        thread::spawn(move || {
            // The command may exit without reading it all: ignore EPIPE.
            let _ = stdin.write_all(&input);
        });
    }
    let stdout = spawn_reader(child.stdout.take());
    let stderr = spawn_reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {description}: {e}"),
        }
    };
    let status = match status {
        Some(status) => status,
        None => {
            let _ = signal::killpg(pgid, Signal::SIGKILL);
            let status = child.wait().unwrap_or(ExitStatus::from_raw(9));
            let partial = Output {
                status,
                stdout: collect_reader(stdout, Duration::from_secs(5)),
                stderr: collect_reader(stderr, Duration::from_secs(5)),
            };
            return Err(TimedOut {
                command: description,
                after: timeout,
                partial,
            });
        }
    };
    // A helper the command left behind may hold the pipes open: wait a
    // little for EOF, then kill the group.
    let pipes_deadline = Duration::from_secs(10);
    let finish = |reader: &Reader| match reader.1.recv_timeout(pipes_deadline) {
        Ok(bytes) => bytes,
        Err(_) => {
            let _ = signal::killpg(pgid, Signal::SIGKILL);
            reader.1.recv_timeout(pipes_deadline).unwrap_or_default()
        }
    };
    let stdout_bytes = finish(&stdout);
    let stderr_bytes = finish(&stderr);
    Ok(Output {
        status,
        stdout: stdout_bytes,
        stderr: stderr_bytes,
    })
}

type Reader = (thread::JoinHandle<()>, mpsc::Receiver<Vec<u8>>);

fn spawn_reader<R: Read + Send + 'static>(pipe: Option<R>) -> Reader {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    (handle, rx)
}

fn collect_reader(reader: Reader, timeout: Duration) -> Vec<u8> {
    reader.1.recv_timeout(timeout).unwrap_or_default()
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    text
}

/// Quotes `arg` for `sh` when it needs it.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Runs the shell command line `command_line` under a pseudo-terminal with
/// `script -qec CMD /dev/null` (stdin `/dev/null`), with extra `env`; the
/// exit status is the command's own. Output has `\r\n` line ends.
pub fn run_in_pty(command_line: &str, env: &[(&str, &str)], timeout: Duration) -> Output {
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", command_line, "/dev/null"])
        .stdin(Stdio::null());
    for (key, value) in env {
        cmd.env(key, value);
    }
    run_with_timeout(cmd, timeout)
}

/// A child started with [`spawn_streaming`]: its stdout lines arrive as they
/// are printed. Dropping it kills its process group.
pub struct StreamingChild {
    pub child: Child,
    description: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<Reader>,
}

/// Starts `cmd` (its own process group) with stdout read line by line, for
/// long-lived commands such as `docker events` or `docker logs -f`.
pub fn spawn_streaming(mut cmd: Command) -> StreamingChild {
    let description = describe(&cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let stdout = child.stdout.take().expect("stdout was piped");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = Some(spawn_reader(child.stderr.take()));
    StreamingChild {
        child,
        description,
        lines,
        seen: Vec::new(),
        stderr,
    }
}

impl StreamingChild {
    /// Reads lines until one satisfies `pred`, at most `timeout`; panics
    /// with everything seen so far otherwise. Returns that line.
    pub fn wait_for_line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(line) = self.seen.iter().find(|l| pred(l)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "{}: no line matching {what} within {timeout:?}; lines so far:\n{}",
                    self.description,
                    self.seen.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let stderr = self.stderr_text();
                    panic!(
                        "{}: output ended before a line matching {what}; lines:\n{}\nstderr:\n{stderr}",
                        self.description,
                        self.seen.join("\n"),
                    )
                }
            }
        }
    }

    /// Every line seen so far (those read by `wait_for_line`, plus any
    /// that are already waiting).
    pub fn lines(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `SIGKILL` to the process group, and reap.
    pub fn kill(&mut self) {
        let _ = signal::killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// The process's stderr; only complete after it exited.
    pub fn stderr_text(&mut self) -> String {
        match self.stderr.take() {
            Some(reader) => String::from_utf8_lossy(&collect_reader(reader, Duration::from_secs(5))).into_owned(),
            None => String::new(),
        }
    }
}

impl Drop for StreamingChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

// ---------------------------------------------------------------------------
// output helpers

pub trait OutputExt {
    fn stdout_text(&self) -> String;
    fn stderr_text(&self) -> String;
    /// The exit code; panics when the process was killed by a signal.
    fn code(&self) -> i32;
    /// Panics with stdout and stderr unless the exit code is 0.
    fn assert_success(&self, what: &str) -> &Self;
    /// Panics with stdout and stderr unless the exit code is `code`.
    fn assert_code(&self, code: i32, what: &str) -> &Self;
}

impl OutputExt for Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {:?}", self.status.signal()))
    }

    fn assert_success(&self, what: &str) -> &Self {
        self.assert_code(0, what)
    }

    fn assert_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "{what}: expected exit code {code}, got {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout_text(),
            self.stderr_text()
        );
        self
    }
}

// ---------------------------------------------------------------------------
// raw HTTP over a Unix socket

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub reason: String,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header line named `name`, as separate values.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response {} is not JSON ({e}): {:?}", self.status, self.body_text()))
    }
}

/// One client connection for hand-made HTTP: send bytes, read responses,
/// streams and upgraded connections. Reads time out after
/// [`RAW_READ_TIMEOUT`] (a panic), so nothing hangs.
pub struct RawConnection {
    stream: UnixStream,
    /// Bytes read but not yet consumed.
    buffer: Vec<u8>,
}

impl RawConnection {
    pub fn connect(socket: impl AsRef<Path>) -> RawConnection {
        Self::try_connect(socket.as_ref()).unwrap_or_else(|e| panic!("connect {}: {e}", socket.as_ref().display()))
    }

    pub fn try_connect(socket: &Path) -> std::io::Result<RawConnection> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(RAW_READ_TIMEOUT))?;
        stream.set_write_timeout(Some(RAW_READ_TIMEOUT))?;
        Ok(RawConnection {
            stream,
            buffer: Vec::new(),
        })
    }

    /// The socket, e.g. to `shutdown(Write)` for a half-close.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the socket");
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends `bytes` unless the peer has closed the connection: `false`
    /// when the write fails with `EPIPE` or `ECONNRESET` (the shim closes a
    /// connection whose head it refuses, and a write racing that close gets
    /// one or the other), `true` when everything was written. Any other
    /// error panics. What the peer answered before closing is still there
    /// to read.
    pub fn send_unless_closed(&mut self, bytes: &[u8]) -> bool {
        match self.stream.write_all(bytes) {
            Ok(()) => true,
            Err(e) if is_closed_by_peer(&e) => false,
            Err(e) => panic!("write to the socket: {e}"),
        }
    }

    /// Closes the write side (the peer reads EOF).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Reads more into the buffer; `Ok(0)` at EOF. A reset counts as EOF.
    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn fill_or_panic(&mut self, what: &str) -> usize {
        self.fill().unwrap_or_else(|e| {
            panic!(
                "reading {what}: {e}; read so far: {:?}",
                String::from_utf8_lossy(&self.buffer)
            )
        })
    }

    /// Reads a response head: status line and headers, no body.
    pub fn read_head(&mut self) -> RawResponse {
        self.try_read_head()
            .unwrap_or_else(|e| panic!("reading a response head: {e}"))
    }

    fn try_read_head(&mut self) -> std::io::Result<RawResponse> {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let head: Vec<u8> = self.buffer.drain(..end + 4).collect();
                return parse_head(&head);
            }
            if self.fill()? == 0 {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a full response head; got {:?}",
                        String::from_utf8_lossy(&self.buffer)
                    ),
                ));
            }
        }
    }

    /// Reads one full response. `head_request`: the request was `HEAD`, so
    /// there is no body whatever the headers say.
    pub fn read_response(&mut self, head_request: bool) -> RawResponse {
        self.try_read_response(head_request)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    fn try_read_response(&mut self, head_request: bool) -> std::io::Result<RawResponse> {
        let mut response = self.try_read_head()?;
        let no_body =
            head_request || (100..200).contains(&response.status) || response.status == 204 || response.status == 304;
        if no_body {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            response.body = self.try_read_chunked()?;
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length
                .trim()
                .parse()
                .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "bad content-length"))?;
            while self.buffer.len() < length {
                if self.fill()? == 0 {
                    return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "body cut short"));
                }
            }
            response.body = self.buffer.drain(..length).collect();
        } else {
            while self.fill()? > 0 {}
            response.body = std::mem::take(&mut self.buffer);
        }
        Ok(response)
    }

    fn try_read_chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buffer, b"\r\n") {
                    break i;
                }
                if self.fill()? == 0 {
                    return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "chunk size cut short"));
                }
            };
            let line: Vec<u8> = self.buffer.drain(..line_end + 2).collect();
            let size_text = String::from_utf8_lossy(&line[..line_end]);
            let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
            let size = usize::from_str_radix(&size_text, 16)
                .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers, then an empty line.
                loop {
                    if let Some(i) = find(&self.buffer, b"\r\n") {
                        let trailer: Vec<u8> = self.buffer.drain(..i + 2).collect();
                        if trailer.len() == 2 {
                            return Ok(body);
                        }
                    } else if self.fill()? == 0 {
                        return Ok(body);
                    }
                }
            }
            while self.buffer.len() < size + 2 {
                if self.fill()? == 0 {
                    return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "chunk cut short"));
                }
            }
            body.extend(self.buffer.drain(..size));
            self.buffer.drain(..2);
        }
    }

    /// Reads until the bytes received (buffer included) contain `needle`;
    /// returns everything read so far and consumes it. Panics at EOF or
    /// after [`RAW_READ_TIMEOUT`].
    pub fn read_until_contains(&mut self, needle: &[u8]) -> Vec<u8> {
        loop {
            if find(&self.buffer, needle).is_some() {
                return std::mem::take(&mut self.buffer);
            }
            if self.fill_or_panic("a stream") == 0 {
                panic!(
                    "connection closed before {:?} arrived; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.buffer)
                );
            }
        }
    }

    /// Reads until EOF; returns everything not yet consumed.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill_or_panic("until EOF") > 0 {}
        std::mem::take(&mut self.buffer)
    }

    /// Whether the peer closes the connection within `timeout`; anything
    /// it sends meanwhile is discarded.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).expect("set read timeout");
            let result = self.fill();
            self.stream
                .set_read_timeout(Some(RAW_READ_TIMEOUT))
                .expect("set read timeout");
            match result {
                Ok(0) => return true,
                Ok(_) => self.buffer.clear(),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
                Err(_) => return true,
            }
        }
    }
}

/// Sends `request` on a new connection to `socket` and reads one response
/// (no body when the request is a `HEAD`). Send `Connection: close` unless
/// the response has a length or is chunked.
pub fn raw_request(socket: impl AsRef<Path>, request: &[u8]) -> RawResponse {
    try_raw_request(socket.as_ref(), request).unwrap_or_else(|e| {
        panic!(
            "raw request to {} failed: {e}\nrequest: {:?}",
            socket.as_ref().display(),
            String::from_utf8_lossy(request)
        )
    })
}

pub fn try_raw_request(socket: &Path, request: &[u8]) -> std::io::Result<RawResponse> {
    let mut connection = RawConnection::try_connect(socket)?;
    connection.try_send(request)?;
    connection.try_read_response(request.starts_with(b"HEAD "))
}

/// A keep-alive `POST /containers/create?name=NAME` of a privileged
/// busybox, as bytes: what `standards.deny.privileged` refuses.
pub fn privileged_create(name: &str) -> String {
    let body = format!(r#"{{"Image":"{BUSYBOX}","Cmd":["true"],"HostConfig":{{"Privileged":true}}}}"#);
    format!(
        "POST /v1.41/containers/create?name={name} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A request with a JSON body and `Content-Length`, as bytes.
pub fn json_request(method: &str, path: &str, body: &serde_json::Value) -> Vec<u8> {
    let body = serde_json::to_vec(body).expect("serialise JSON");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}

/// `body` as a chunked request body (chunks of `chunk` bytes), terminator
/// included.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn parse_head(head: &[u8]) -> std::io::Result<RawResponse> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("not an HTTP response: {status_line:?}"),
        ));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, "bad status line"))?;
    let reason = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(RawResponse {
        status,
        reason,
        headers,
        body: Vec::new(),
    })
}

/// Whether `error` says the peer closed the connection: `EPIPE` on a
/// write, `ECONNRESET` on a write or a read.
pub fn is_closed_by_peer(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// misc

/// Polls `check` every 50 ms until it returns true; panics with `what`
/// after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Seconds since the epoch (dockerd runs on this machine: same clock).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Writes `size` bytes of incompressible pseudo-random data to `path`.
pub fn write_random_file(path: &Path, size: usize) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15
        ^ u64::from(std::process::id())
        ^ SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let mut file = std::io::BufWriter::new(File::create(path).expect("create the random file"));
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_mut(8) {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            word.copy_from_slice(&z.to_le_bytes()[..word.len()]);
        }
        let n = left.min(block.len());
        file.write_all(&block[..n]).expect("write the random file");
        left -= n;
    }
    file.flush().expect("flush the random file");
}

/// The SHA-256 of a file, hex, from `sha256sum`.
pub fn sha256_file(path: &Path) -> String {
    let mut cmd = Command::new("sha256sum");
    cmd.arg(path).stdin(Stdio::null());
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    out.assert_success("sha256sum");
    first_word(&out.stdout_text())
}

/// The first whitespace-separated word of `text`, e.g. a checksum.
pub fn first_word(text: &str) -> String {
    text.split_whitespace().next().unwrap_or_default().to_string()
}

/// A path under the manifest directory (the repository root).
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}
