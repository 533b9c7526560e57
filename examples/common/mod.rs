//! What the bench programs share: the shim under test as a child process,
//! the host's facts, and percentiles. Each bench uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// `target/release/forge-shim`, next to `target/release/examples/`.
pub fn default_shim_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("forge-shim")))
        .unwrap_or_else(|| PathBuf::from("target/release/forge-shim"))
}

/// The value at `p` (0..=1) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// `N cores (CPU model), kernel K`.
pub fn host() -> String {
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{nproc} cores ({cpu}), kernel {kernel}")
}

/// A release shim serving on a socket in a temporary folder of its own;
/// stopped with SIGTERM (then killed) when dropped.
pub struct ShimChild {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl ShimChild {
    /// Starts `bin serve` with `config` (plus a `state_dir` of its own) and
    /// returns once `ready(socket)` holds, failing after `timeout`.
    pub fn start(
        bin: &Path,
        config: &str,
        prefix: &str,
        env: &[(&str, &str)],
        ready: impl Fn(&Path) -> bool,
        timeout: Duration,
    ) -> Result<ShimChild> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let config_path = dir.path().join("shim.yml");
        std::fs::write(
            &config_path,
            format!("{config}state_dir: {}\n", dir.path().join("state").display()),
        )?;
        let socket = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("shim.log"))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(&socket)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let shim = ShimChild { child, dir, socket };
        let deadline = Instant::now() + timeout;
        while !ready(&shim.socket) {
            if Instant::now() > deadline {
                bail!("the shim was not ready within {timeout:?}; log:\n{}", shim.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(shim)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("shim.log")).unwrap_or_default()
    }

    pub fn socket_str(&self) -> &str {
        self.socket.to_str().expect("UTF-8 socket path")
    }

    /// (VmRSS, VmHWM) in bytes.
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for ShimChild {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
