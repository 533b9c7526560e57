//! What the bench programs share. Each bench uses part of it.
//!
//! The shim under test as a child process ([`Shim`]), the raw HTTP/1.1
//! client ([`http::RawConnection`]) and the shim's API read into the crate's
//! types ([`api`]) are the real tests' own, included from `tests/common/`:
//! one copy for tests and benches. This folder adds percentiles
//! ([`stats`]), the host's facts and `docker` commands.
#![allow(dead_code)]

#[path = "../../tests/common/api.rs"]
pub mod api;
#[path = "../../tests/common/http.rs"]
pub mod http;
#[path = "../../tests/common/shim.rs"]
pub mod shim;
pub mod stats;

use std::process::{Command, Stdio};

// Each bench uses part of these.
#[allow(unused_imports)]
pub use {
    shim::{default_bin, Shim},
    stats::{median, percentile},
};

/// A `docker` command for the daemon (or shim) on `socket`, stdin from
/// `/dev/null`, with nothing in the environment pointing it elsewhere.
pub fn docker(socket: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .env("DOCKER_HOST", format!("unix://{socket}"))
        .env_remove("DOCKER_CONTEXT")
        .env("DOCKER_CLI_HINTS", "false")
        .stdin(Stdio::null());
    cmd
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
