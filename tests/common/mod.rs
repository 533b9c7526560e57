//! The harness shared by every real-dockerd test file (`tests/*.rs` that say
//! `mod common;`): the built `forge-shim` binary in front of the machine's
//! real dockerd, driven by the real `docker` CLI, `docker compose`, bollard
//! and hand-made HTTP.
//!
//! What it gives a test, by module:
//! - [`shim`]: [`Shim`], the binary on a socket in its own temporary
//!   folder, with its log captured; started, killed with `SIGKILL`,
//!   restarted on the same socket, stopped with `SIGTERM` when dropped. The
//!   log is printed when the test fails, and a `panicked` line in it fails
//!   the test.
//! - [`api`]: the shim's own API under `/_forge/v1/` (health, the
//!   container table, the event stream, sleep and wake), read into the
//!   crate's own types (`StatusRow`, `Transition`, `State`).
//! - [`http`]: [`raw_request`] and [`RawConnection`], hand-made HTTP over a
//!   Unix socket, for malformed requests, chunked bodies, case-variant JSON
//!   keys, upgrades and streams.
//! - [`docker`]: [`require_dockerd`] fails the test (never skips it) when
//!   dockerd or the local test images are missing; `docker` commands aimed
//!   at dockerd or at a [`Shim`], and a bollard client; [`Names`], a unique
//!   name prefix per test and a cleanup guard that removes every container,
//!   image, network, volume and compose project carrying that prefix,
//!   through dockerd directly, even when the test fails.
//! - [`faulty`]: [`FaultyDockerd`], a stand-in in front of dockerd that
//!   answers chosen requests itself or holds an answer back.
//! - [`process`]: [`run_with_timeout`] and friends: every process a test
//!   spawns has a deadline, so no test can hang; [`run_in_pty`] runs a
//!   command under a pseudo-terminal (`script`).
//! - here: [`wait_until`] (poll with a deadline instead of sleeping) and
//!   small file helpers.
//!
//! `shim`, `api` and `http` are also the benches' (`examples/common`
//! includes them with `#[path]`), so they use only each other, and each call
//! that can fail has a `try_` form returning the error. `tests/harness.rs`
//! tests the HTTP client and the benches' percentiles without dockerd.
//!
//! Conventions: tests never use fixed host ports (publish `127.0.0.1::PORT`
//! and ask `docker port`), never assert on timings, and give every process
//! a generous deadline (the CI machine has 2 noisy cores).

#![allow(dead_code)]

mod api;
mod docker;
mod faulty;
mod http;
mod process;
mod shim;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// Every test file sees the whole harness as `common::*`; each uses a part.
#[allow(unused_imports)]
pub use {api::*, docker::*, faulty::*, http::*, process::*, shim::*};

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

// ---------------------------------------------------------------------------
// misc

/// `forge-shim ARGS --socket <the shim's socket>`: the operator's
/// commands against `shim`.
pub fn forge_cli(shim: &Shim, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(SHIM_BIN);
    cmd.args(args)
        .arg("--socket")
        .arg(shim.socket_path())
        .stdin(Stdio::null());
    run_with_timeout(cmd, Duration::from_secs(60))
}

/// `forge-shim audit --json --config <shim's config>`: the audit of every
/// container, from `shim`'s state_dir.
pub fn forge_audit_json(shim: &Shim) -> serde_json::Value {
    let audit = Command::new(SHIM_BIN)
        .args(["audit", "--json", "--config"])
        .arg(shim.config_path())
        .env("DOCKER_HOST", DOCKERD_HOST)
        .stdin(Stdio::null())
        .output()
        .expect("forge-shim audit");
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stderr));
    serde_json::from_slice(&audit.stdout).expect("audit JSON")
}

/// Container `name`'s report in an audit.
pub fn audit_report(audit: &serde_json::Value, name: &str) -> serde_json::Value {
    audit["containers"]
        .as_array()
        .expect("the audit's containers")
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in the audit"))
}

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
