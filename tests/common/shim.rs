//! The shim under test as a child process: the built binary on a socket in
//! a temporary folder of its own, its log captured.
//!
//! Shared by the real tests and the benches (`examples/common` includes
//! this file, `http.rs` and `api.rs` with `#[path]`): it uses only those
//! two siblings, never the rest of `tests/common`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::http::{bodyless_request, raw_request, RawResponse};

/// How long [`Shim::start`] waits for `/_forge/v1/health` to answer: a hang
/// detector (a shim that exits during startup fails at once).
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long dropping a [`Shim`] waits after `SIGTERM` before `SIGKILL`.
/// Above the default `shutdown_grace` (10 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The `forge-shim` binary a [`Shim`] runs unless told otherwise: in a test,
/// the one Cargo built for it; in a bench, the one next to the bench's own
/// folder (`target/release/forge-shim` for `target/release/examples/…`).
pub fn default_bin() -> PathBuf {
    if let Some(built) = option_env!("CARGO_BIN_EXE_forge-shim") {
        return PathBuf::from(built);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("forge-shim")))
        .unwrap_or_else(|| PathBuf::from("target/release/forge-shim"))
}

/// Options for starting a [`Shim`]; [`Shim::start`] uses the defaults.
pub struct ShimBuilder {
    bin: PathBuf,
    config_yaml: String,
    upstream: Option<String>,
    rust_log: String,
    env: Vec<(String, String)>,
}

impl ShimBuilder {
    /// The binary to run instead of [`default_bin`].
    pub fn bin(mut self, bin: impl Into<PathBuf>) -> Self {
        self.bin = bin.into();
        self
    }

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
        let mut config = with_hardening_always(&self.config_yaml);
        // Parallel shims must not share the default /var/lib/forge-shim.
        if !config.lines().any(|line| line.starts_with("state_dir:")) {
            if !config.is_empty() && !config.ends_with('\n') {
                config.push('\n');
            }
            config.push_str(&format!("state_dir: {}\n", dir.path().join("state").display()));
        }
        std::fs::write(&config_path, &config).expect("write the shim config");
        let mut shim = Shim {
            bin: self.bin,
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
    bin: PathBuf,
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
    /// A shim on `config_yaml` layered over the embedded default. Its
    /// hardening rules are `always` unless the config names `hardening`:
    /// most tests check what the rules do (tests/fitted.rs checks when).
    pub fn start(config_yaml: &str) -> Shim {
        Shim::builder(config_yaml).start()
    }

    /// For options: `Shim::builder(yaml).upstream(path).start()`.
    pub fn builder(config_yaml: &str) -> ShimBuilder {
        ShimBuilder {
            bin: default_bin(),
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
        let mut cmd = Command::new(&self.bin);
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
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
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
            if self.try_health().is_ok() {
                return;
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

    /// `GET PATH` over a fresh connection.
    pub fn get(&self, path: &str) -> RawResponse {
        raw_request(&self.socket, &bodyless_request("GET", path))
    }

    /// Number of open file descriptors of the shim process (client and
    /// upstream connections included).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    /// How many of the shim's descriptors are sockets: its clients and its
    /// connections to dockerd, not the cgroup and state files its
    /// background tasks open and close as they tick.
    pub fn open_sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|fd| {
                        std::fs::read_link(fd.path())
                            .map(|target| target.to_string_lossy().starts_with("socket:"))
                            .unwrap_or(false)
                    })
                    .count()
            })
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

/// `yaml` with `standards.hardening` set to `always` for every rule, unless
/// it names `hardening` itself.
pub fn with_hardening_always(yaml: &str) -> String {
    if yaml.contains("hardening") {
        return yaml.to_string();
    }
    let mut value: serde_norway::Value = if yaml.trim().is_empty() {
        serde_norway::Value::Mapping(Default::default())
    } else {
        serde_norway::from_str(yaml).expect("a test config parses as YAML")
    };
    let always: serde_norway::Value =
        serde_norway::from_str("{non_root: always, read_only_rootfs: always, cap_drop: always}").unwrap();
    let Some(root) = value.as_mapping_mut() else {
        return yaml.to_string();
    };
    let standards = root
        .entry("standards".into())
        .or_insert_with(|| serde_norway::Value::Mapping(Default::default()));
    if let Some(standards) = standards.as_mapping_mut() {
        standards.insert("hardening".into(), always);
    }
    serde_norway::to_string(&value).expect("a test config to YAML")
}
