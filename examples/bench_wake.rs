//! The sleep/wake benchmark: what sleeping costs the next caller, what it
//! saves, and what the shim costs while it holds many sleepers. One run, a
//! release `forge-shim` in front of the local dockerd, each figure printed
//! with its baseline, then a Markdown table for README's Performance section.
//!
//! 1. `docker exec C true` through the shim on a sleeping container vs on a
//!    running one: added p50 and p99 (the container is put back to sleep
//!    through the shim's API between runs, which is quicker than waiting).
//! 2. HTTP GET to a sleeping container's published port vs a running one:
//!    added time to first byte, p50 and p99 (a plain TCP client here).
//! 3. Memory of a container holding 200 MiB (shmem: swap-backed) running vs
//!    asleep, with a swap file and without; and of a container holding
//!    200 MiB of page cache, without swap.
//! 4. 200 sleeping containers: the shim's CPU (utime + stime from
//!    `/proc/PID/stat`, its `conntrack` child separately) over a window, and
//!    its RSS.
//! 5. 1,000 sleep/wake cycles (the API) of one container while two loops
//!    run `docker exec` and HTTP GETs against it: failures.
//! 6. Wake from deep sleep (stopped by the shim; the API wake, which starts
//!    it) vs a plain `POST /containers/{id}/start` of the same container
//!    straight to dockerd, alternating: the ratio of the medians.
//!
//! Run it with `scripts/bench-wake.sh`, or:
//!
//! ```text
//! cargo build --release
//! cargo run --release --example bench_wake -- [--shim-bin PATH] [--runs N]
//!     [--sleepers N] [--cpu-window SECS] [--cycles N] [--deep-runs N] [--quick]
//! ```
//!
//! It needs root (cgroup files, a swap file), a running dockerd on
//! /var/run/docker.sock and the local test images (scripts/test-images.sh).
//! Everything it creates is named `fs-bench-wake-<pid>-…` and removed at the
//! end, even on error; the swap file is its own (`FORGE_SWAPFILE`) and is
//! switched off at the end.

mod common;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::http::{bodyless_request, try_raw_request, RawResponse};
use common::{default_bin, docker, host, percentile, Shim};
use forge_shim::{State, StatusRow};

const DOCKERD_SOCKET: &str = "/var/run/docker.sock";
const BUSYBOX: &str = "forge-test/busybox:latest";
const HTTPD: &str = "forge-test/httpd:latest";
const MIB: f64 = 1024.0 * 1024.0;
const MB: f64 = 1_000_000.0;

struct Options {
    shim_bin: PathBuf,
    runs: usize,
    sleepers: usize,
    cpu_window: Duration,
    cycles: usize,
    deep_runs: usize,
    hold_mib: usize,
    /// Sections to run (`exec`, `http`, `memory`, `many`, `deep`); all when
    /// empty. `http` includes the sleep/wake cycles, which load it.
    only: Vec<String>,
}

impl Options {
    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

fn parse_options() -> Result<Options> {
    let mut options = Options {
        shim_bin: default_bin(),
        runs: 50,
        sleepers: 200,
        cpu_window: Duration::from_secs(60),
        cycles: 1000,
        deep_runs: 20,
        hold_mib: 200,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--shim-bin" => options.shim_bin = PathBuf::from(value()?),
            "--runs" => options.runs = value()?.parse()?,
            "--sleepers" => options.sleepers = value()?.parse()?,
            "--cpu-window" => options.cpu_window = Duration::from_secs_f64(value()?.parse()?),
            "--cycles" => options.cycles = value()?.parse()?,
            "--deep-runs" => options.deep_runs = value()?.parse()?,
            "--only" => {
                options.only = value()?.split(',').map(str::to_string).collect();
                let known = ["exec", "http", "memory", "many", "deep"];
                if let Some(bad) = options.only.iter().find(|s| !known.contains(&s.as_str())) {
                    bail!("--only: unknown section {bad:?} (exec, http, memory, many, deep)");
                }
            }
            "--quick" => {
                options.runs = 10;
                options.sleepers = 20;
                options.cpu_window = Duration::from_secs(10);
                options.cycles = 100;
                options.deep_runs = 4;
            }
            other => bail!("unknown option {other}"),
        }
    }
    if options.runs < 2 || options.deep_runs < 2 {
        bail!("--runs and --deep-runs must be at least 2");
    }
    Ok(options)
}

/// `fs-bench-wake-<pid>`: every container of this run starts with it.
fn run_prefix() -> String {
    format!("fs-bench-wake-{}", std::process::id())
}

// ---------------------------------------------------------------------------
// the shim under test

/// Starts `bin serve` with `config` (plus a `state_dir` of its own) and
/// waits for `/_forge/v1/health`.
fn start_shim(bin: &Path, config: &str) -> Shim {
    // FORGE_BENCH_RUST_LOG: the shim's log filter, for a run that looks
    // into a failure (with FORGE_BENCH_KEEP_LOG, where its log is copied).
    let filter = std::env::var("FORGE_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into());
    Shim::builder(config).bin(bin).rust_log(&filter).start()
}

/// Now, in nanoseconds since the epoch (as `docker events` stamps events),
/// to set a failure beside dockerd's events.
fn unix_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// What the bench asks of the shim under test, on top of its API calls.
impl Shim {
    fn socket_str(&self) -> &str {
        self.socket_path().to_str().expect("a UTF-8 socket path")
    }

    /// Puts `name` to sleep through the API, retrying while it is still in
    /// use (the last exec's stream may close a moment after the CLI exits).
    fn sleep_now(&self, name: &str) -> Result<()> {
        for _ in 0..200 {
            if self.try_sleep_container(name)?.changed {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(10));
        }
        bail!("{name} would not go to sleep: {:?}", self.row(name)?)
    }

    fn row(&self, name: &str) -> Result<StatusRow> {
        self.try_container(name)?
            .with_context(|| format!("the shim does not track {name}"))
    }

    fn wait_state(&self, name: &str, state: State, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.row(name).is_ok_and(|r| r.state == state) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{name} not {state:?} within {timeout:?}: {:?}", self.row(name).ok());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The rows of this run's containers among `names`.
    fn rows_of(&self, names: &[String]) -> Result<Vec<StatusRow>> {
        Ok(self
            .try_containers()?
            .into_iter()
            .filter(|r| names.contains(&r.name))
            .collect())
    }

    /// (utime + stime) in clock ticks of the shim and of its children.
    fn cpu_ticks(&self) -> (u64, u64) {
        let own = proc_cpu_ticks(self.pid()).unwrap_or(0);
        let children: u64 = child_pids(self.pid()).into_iter().filter_map(proc_cpu_ticks).sum();
        (own, children)
    }
}

/// `utime + stime` of a process, from `/proc/PID/stat`.
fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command: state (3), ppid (4), … utime (14), stime (15).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------
// HTTP

/// `POST PATH` without a body straight to dockerd, on a fresh connection.
fn dockerd_post(path: &str) -> Result<RawResponse> {
    try_raw_request(Path::new(DOCKERD_SOCKET), &bodyless_request("POST", path))
        .with_context(|| format!("POST {path} to dockerd"))
}

/// GET `/` at `address` over a fresh TCP connection: milliseconds to the
/// first byte of the answer, and whether the whole answer was the page.
fn http_ttfb(address: &str) -> Result<(f64, bool)> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")?;
    let mut first = [0u8; 1];
    stream.read_exact(&mut first)?;
    let ttfb = start.elapsed().as_secs_f64() * 1e3;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest)?;
    let ok = first[0] == b'H' && String::from_utf8_lossy(&rest).contains("forge-test-ok");
    Ok((ttfb, ok))
}

// ---------------------------------------------------------------------------
// docker

/// Runs a command; its stdout, or an error with its stderr.
fn run_ok(mut cmd: Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Milliseconds a successful command took.
fn timed_ms(cmd: Command) -> Result<f64> {
    let start = Instant::now();
    run_ok(cmd)?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

fn direct(args: &[&str]) -> Result<String> {
    run_ok(docker(DOCKERD_SOCKET, args))
}

/// `docker run -d --init --name NAME EXTRA… IMAGE COMMAND…`, straight to
/// dockerd; the shims learn of it from dockerd's events.
fn run_container(name: &str, extra: &[&str], image: &str, command: &[&str]) -> Result<String> {
    let mut args = vec!["run", "-d", "--init", "--name", name];
    args.extend_from_slice(extra);
    args.push(image);
    args.extend_from_slice(command);
    direct(&args)
}

/// Removes every container of this run on drop (straight to dockerd).
struct Cleanup;

impl Cleanup {
    fn now(&self) {
        let names = direct(&["ps", "-aq", "--filter", &format!("name={}", run_prefix())]).unwrap_or_default();
        let ids: Vec<&str> = names.split_whitespace().collect();
        for chunk in ids.chunks(50) {
            let mut args = vec!["rm", "-f"];
            args.extend_from_slice(chunk);
            let _ = docker(DOCKERD_SOCKET, &args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.now();
    }
}

/// A container's memory use from its cgroup (v1, else v2), in bytes.
fn cgroup_memory(id: &str) -> Option<u64> {
    [
        format!("/sys/fs/cgroup/memory/docker/{id}/memory.usage_in_bytes"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.current"),
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok()?.trim().parse().ok())
}

// ---------------------------------------------------------------------------
// swap

/// This run's own swap file (`scripts/with-swap.sh` with `FORGE_SWAPFILE`),
/// switched off and removed when dropped.
struct Swap {
    file: String,
}

impl Swap {
    fn script(file: &str, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("bash");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/with-swap.sh"))
            .args(args)
            .env("FORGE_SWAPFILE", file)
            .stdin(Stdio::null());
        run_ok(cmd)
    }

    fn on(size: &str) -> Result<Swap> {
        let file = std::env::var("FORGE_SWAPFILE")
            .unwrap_or_else(|_| format!("/var/tmp/forge-shim-bench-wake-{}.swap", std::process::id()));
        Swap::script(&file, &["on", size])?;
        Ok(Swap { file })
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        if let Err(e) = Swap::script(&self.file, &["off"]) {
            eprintln!("WARNING: swap off failed: {e:#}");
        }
    }
}

fn swap_total_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("SwapTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// figures

/// (p50, p99) of unsorted values.
fn p50_p99(values: &[f64]) -> (f64, f64) {
    (percentile(values, 0.5), percentile(values, 0.99))
}

struct Row {
    measurement: String,
    baseline: String,
    value: String,
    difference: String,
    target: String,
}

fn row(
    measurement: impl Into<String>,
    baseline: String,
    value: String,
    difference: String,
    target: Option<(&str, bool)>,
) -> Row {
    Row {
        measurement: measurement.into(),
        baseline,
        value,
        difference,
        target: match target {
            Some((text, true)) => format!("{text}: met"),
            Some((text, false)) => format!("{text}: **missed**"),
            None => String::new(),
        },
    }
}

fn machine() -> String {
    let dockerd = direct(&[
        "version",
        "--format",
        "{{.Server.Version}} (API {{.Server.APIVersion}})",
    ])
    .unwrap_or_default();
    let cgroup = direct(&["info", "--format", "cgroup v{{.CgroupVersion}}"]).unwrap_or_default();
    format!("{}, dockerd {dockerd}, {cgroup}", host())
}

// ---------------------------------------------------------------------------
// the measurements

/// 1. `docker exec C true` on a sleeping vs a running container.
fn bench_exec(shim: &Shim, options: &Options, rows: &mut Vec<Row>) -> Result<()> {
    let name = format!("{}-m-exec", run_prefix());
    run_container(&name, &[], BUSYBOX, &["sleep", "3600"])?;
    shim.wait_state(&name, State::Running, Duration::from_secs(30))?;
    let exec = |socket: &str| docker(socket, &["exec", &name, "true"]);
    for _ in 0..3 {
        timed_ms(exec(shim.socket_str()))?;
        timed_ms(exec(DOCKERD_SOCKET))?;
    }
    let (mut asleep, mut awake, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    let mut shim_wakes = Vec::new();
    for _ in 0..options.runs {
        shim.sleep_now(&name)?;
        asleep.push(timed_ms(exec(shim.socket_str()))?);
        if let Some(ms) = shim.row(&name)?.last_wake.map(|wake| wake.latency_ms) {
            shim_wakes.push(ms);
        }
        awake.push(timed_ms(exec(shim.socket_str()))?);
        plain.push(timed_ms(exec(DOCKERD_SOCKET))?);
    }
    // The floor: dockerd's own unpause of a paused container, in the same
    // minutes, called straight on its socket.
    let floor_name = format!("{}-m-unpause", run_prefix());
    run_container(&floor_name, &[], BUSYBOX, &["sleep", "3600"])?;
    let mut unpauses = Vec::new();
    let post = |action: &str| -> Result<()> {
        let response = dockerd_post(&format!("/containers/{floor_name}/{action}"))?;
        if response.status != 204 {
            bail!("{action} {floor_name}: {} {}", response.status, response.body_text());
        }
        Ok(())
    };
    // And what a client that unpaused by hand before its exec would see,
    // straight to dockerd: unpause, then `docker exec`, vs a plain exec.
    let (mut by_hand, mut by_hand_running) = (Vec::new(), Vec::new());
    for _ in 0..options.runs {
        post("pause")?;
        let start = Instant::now();
        post("unpause")?;
        let unpaused = start.elapsed().as_secs_f64() * 1e3;
        unpauses.push(unpaused);
        by_hand.push(unpaused + timed_ms(docker(DOCKERD_SOCKET, &["exec", &floor_name, "true"]))?);
        by_hand_running.push(timed_ms(docker(DOCKERD_SOCKET, &["exec", &floor_name, "true"]))?);
    }
    let (h50, _) = p50_p99(&by_hand);
    let (hr50, _) = p50_p99(&by_hand_running);
    let (u50, _) = p50_p99(&unpauses);
    let w50 = if shim_wakes.is_empty() {
        f64::NAN
    } else {
        p50_p99(&shim_wakes).0
    };
    println!(
        "1. dockerd's own unpause p50 {u50:.1} ms; the shim's wake (its unpause call included) p50 {w50:.1} ms; \
         straight to dockerd, unpause then exec p50 {h50:.1} ms vs exec {hr50:.1} ms"
    );
    let wakes = shim.row(&name)?.wakes;
    let (s50, s99) = p50_p99(&asleep);
    let (r50, r99) = p50_p99(&awake);
    let (d50, d99) = p50_p99(&plain);
    println!(
        "1. docker exec, {} runs each: sleeping p50 {s50:.1} ms p99 {s99:.1} ms | running p50 {r50:.1} ms p99 {r99:.1} ms | direct to dockerd p50 {d50:.1} ms p99 {d99:.1} ms | wakes {wakes}",
        options.runs
    );
    rows.push(row(
        format!(
            "`docker exec C true` p50, sleeping vs running ({} runs each), ms",
            options.runs
        ),
        format!("{r50:.1}"),
        format!("{s50:.1}"),
        format!("+{:.1}", s50 - r50),
        Some(("added ≤ 15 ms", s50 - r50 <= 15.0)),
    ));
    rows.push(row(
        "`docker exec C true` p99, sleeping vs running, ms",
        format!("{r99:.1}"),
        format!("{s99:.1}"),
        format!("{:+.1}", s99 - r99),
        Some(("added ≤ 50 ms", s99 - r99 <= 50.0)),
    ));
    rows.push(row(
        "the floor, straight to dockerd: `POST /unpause` then `docker exec C true` vs the exec alone, p50, ms",
        format!("{hr50:.1}"),
        format!("{h50:.1}"),
        format!("+{:.1}", h50 - hr50),
        None,
    ));
    rows.push(row(
        "wake inside that exec (the shim's `last_wake`) vs dockerd's own `POST /unpause`, p50, ms",
        format!("{u50:.1}"),
        format!("{w50:.1}"),
        format!("{:+.1}", w50 - u50),
        None,
    ));
    rows.push(row(
        "`docker exec C true` p50, running: through the shim vs straight to dockerd, ms",
        format!("{d50:.1}"),
        format!("{r50:.1}"),
        format!("{:+.1}", r50 - d50),
        None,
    ));
    Ok(())
}

/// 2. HTTP time to first byte, sleeping vs running.
fn bench_http(shim: &Shim, options: &Options, rows: &mut Vec<Row>) -> Result<String> {
    let name = format!("{}-m-web", run_prefix());
    run_container(&name, &["-p", "127.0.0.1::8080"], HTTPD, &[])?;
    shim.wait_state(&name, State::Running, Duration::from_secs(30))?;
    let address = direct(&["port", &name, "8080"])?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_ttfb(&address).is_ok_and(|(_, ok)| ok) {
        if Instant::now() > deadline {
            bail!("httpd does not answer on {address}");
        }
        thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        http_ttfb(&address)?;
    }
    let (mut asleep, mut awake) = (Vec::new(), Vec::new());
    let mut failures = 0;
    for _ in 0..options.runs {
        shim.sleep_now(&name)?;
        let (ms, ok) = http_ttfb(&address)?;
        asleep.push(ms);
        failures += usize::from(!ok);
        // The wake and the answer may race the next sleep: let it be running.
        shim.wait_state(&name, State::Running, Duration::from_secs(30))?;
        let (ms, ok) = http_ttfb(&address)?;
        awake.push(ms);
        failures += usize::from(!ok);
    }
    let trigger = shim
        .row(&name)?
        .last_wake
        .map_or_else(|| "-".to_string(), |wake| wake.trigger);
    let (s50, s99) = p50_p99(&asleep);
    let (r50, r99) = p50_p99(&awake);
    println!(
        "2. HTTP GET time to first byte, {} runs each: sleeping p50 {s50:.2} ms p99 {s99:.2} ms | running p50 {r50:.2} ms p99 {r99:.2} ms | bad answers {failures} | woken by {trigger}",
        options.runs
    );
    if failures > 0 {
        bail!("{failures} HTTP answers were not the page");
    }
    rows.push(row(
        format!(
            "HTTP GET time to first byte p50, sleeping vs running ({} runs each), ms",
            options.runs
        ),
        format!("{r50:.2}"),
        format!("{s50:.2}"),
        format!("+{:.2}", s50 - r50),
        Some(("added ≤ 25 ms", s50 - r50 <= 25.0)),
    ));
    rows.push(row(
        "HTTP GET time to first byte p99, sleeping vs running, ms",
        format!("{r99:.2}"),
        format!("{s99:.2}"),
        format!("{:+.2}", s99 - r99),
        Some(("added ≤ 100 ms", s99 - r99 <= 100.0)),
    ));
    Ok(name)
}

/// 5. Sleep/wake cycles under concurrent exec and HTTP load.
fn bench_cycles(shim: &Shim, options: &Options, web: &str, rows: &mut Vec<Row>) -> Result<()> {
    let address = direct(&["port", web, "8080"])?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let (exec_ok, exec_failed, http_ok, http_failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let exec_loop = {
        let (stop, errors, ok, failed) = (stop.clone(), errors.clone(), exec_ok.clone(), exec_failed.clone());
        let socket = shim.socket_str().to_string();
        let web = web.to_string();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match run_ok(docker(&socket, &["exec", &web, "true"])) {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        errors.lock().unwrap().push(format!("{} exec: {e:#}", unix_ns()));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };
    let http_loop = {
        let (stop, errors, ok, failed) = (stop.clone(), errors.clone(), http_ok.clone(), http_failed.clone());
        let address = address.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match http_ttfb(&address) {
                    Ok((_, true)) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok((_, false)) => {
                        errors.lock().unwrap().push("http: not the page".into());
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        errors.lock().unwrap().push(format!("http: {e:#}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                thread::sleep(Duration::from_millis(2));
            }
        })
    };
    // Which wakes the loops' requests made, from the shim's event stream.
    let triggers: Arc<Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let watcher = {
        let (stop, triggers) = (stop.clone(), triggers.clone());
        let mut events = shim.try_events()?;
        // Short reads, to see `stop` soon; a timeout loses nothing.
        events.set_read_timeout(Duration::from_millis(200))?;
        let web = web.to_string();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match events.try_next() {
                    Ok(Some(t)) if t.name == web && t.transition == "wake" => {
                        *triggers.lock().unwrap().entry(t.trigger).or_default() += 1;
                    }
                    Ok(Some(_)) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        })
    };
    let started = Instant::now();
    let (mut slept, mut api_failed, mut refused) = (0usize, 0usize, 0u64);
    let mut jitter: u64 = 0x9e37_79b9 ^ u64::from(std::process::id());
    for _ in 0..options.cycles {
        // A sleep is refused while an exec is in flight (never paused under
        // a live request): try again until it pauses, for a while.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match shim.try_sleep_container(web).map(|answer| answer.changed) {
                Ok(true) => {
                    slept += 1;
                    break;
                }
                Ok(false) if Instant::now() < deadline => {
                    refused += 1;
                    thread::sleep(Duration::from_millis(1));
                }
                Ok(false) => break,
                Err(e) => {
                    api_failed += 1;
                    errors.lock().unwrap().push(format!("api sleep: {e:#}"));
                    break;
                }
            }
        }
        // Asleep for 0-15 ms, so that the loops' requests often find it
        // asleep (and wake it) before the API does.
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        thread::sleep(Duration::from_millis(jitter % 16));
        if let Err(e) = shim.try_wake_container(web) {
            api_failed += 1;
            errors.lock().unwrap().push(format!("api wake: {e:#}"));
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = exec_loop.join();
    let _ = http_loop.join();
    let _ = watcher.join();
    let failures = api_failed as u64 + exec_failed.load(Ordering::Relaxed) + http_failed.load(Ordering::Relaxed);
    println!(
        "5. {} sleep/wake cycles in {:.1} s: {slept} paused ({refused} sleep calls refused: an exec in flight); \
         exec {} ok / {} failed, HTTP {} ok / {} failed, API calls failed {api_failed}",
        options.cycles,
        elapsed.as_secs_f64(),
        exec_ok.load(Ordering::Relaxed),
        exec_failed.load(Ordering::Relaxed),
        http_ok.load(Ordering::Relaxed),
        http_failed.load(Ordering::Relaxed),
    );
    println!("   wakes by trigger: {:?}", triggers.lock().unwrap());
    if let Ok(path) = std::env::var("FORGE_BENCH_KEEP_LOG") {
        std::fs::write(&path, shim.log()).with_context(|| format!("writing the shim's log to {path}"))?;
        println!("   the shim's log: {path}");
    }
    for error in errors.lock().unwrap().iter().take(5) {
        println!("   {error}");
    }
    rows.push(row(
        format!(
            "{} sleep/wake cycles under concurrent `docker exec` and HTTP load: failures ({slept} paused; {} execs, {} GETs)",
            options.cycles,
            exec_ok.load(Ordering::Relaxed) + exec_failed.load(Ordering::Relaxed),
            http_ok.load(Ordering::Relaxed) + http_failed.load(Ordering::Relaxed),
        ),
        "—".into(),
        failures.to_string(),
        "—".into(),
        Some(("0", failures == 0)),
    ));
    Ok(())
}

/// Memory running vs asleep of one container: (running, asleep) bytes,
/// from its cgroup; woken again afterwards.
fn memory_cycle(shim: &Shim, name: &str, id: &str) -> Result<(u64, u64)> {
    thread::sleep(Duration::from_secs(1));
    let running = cgroup_memory(id).context("cgroup memory of the holder")?;
    shim.sleep_now(name)?;
    let asleep = cgroup_memory(id).context("cgroup memory of the holder")?;
    shim.try_wake_container(name)?;
    Ok((running, asleep))
}

/// 3. Memory of a container holding 200 MiB, asleep with and without swap.
fn bench_memory(shim: &Shim, options: &Options, rows: &mut Vec<Row>) -> Result<()> {
    if swap_total_kib() > 0 {
        println!("3. NOTE: the host already has swap; the no-swap figures below are with it");
    }
    let mib = options.hold_mib.to_string();
    let shm_size = format!("{}m", options.hold_mib + 64);
    let shm = format!("{}-m-shm", run_prefix());
    let hold_shm = format!(
        "dd if=/dev/urandom of=/dev/shm/blob bs=1M count={mib} 2>/dev/null && sha256sum /dev/shm/blob > /sum && touch /ready && exec sleep 3600"
    );
    run_container(&shm, &["--shm-size", &shm_size], BUSYBOX, &["sh", "-c", &hold_shm])?;
    let cache = format!("{}-m-cache", run_prefix());
    let hold_cache =
        format!("dd if=/dev/urandom of=/blob bs=1M count={mib} 2>/dev/null && sync && touch /ready && exec sleep 3600");
    run_container(&cache, &[], BUSYBOX, &["sh", "-c", &hold_cache])?;
    for name in [&shm, &cache] {
        let deadline = Instant::now() + Duration::from_secs(120);
        while direct(&["exec", name, "test", "-f", "/ready"]).is_err() {
            if Instant::now() > deadline {
                bail!("{name} did not fill its memory");
            }
            thread::sleep(Duration::from_millis(200));
        }
        shim.wait_state(name, State::Running, Duration::from_secs(30))?;
    }
    let shm_id = direct(&["inspect", "-f", "{{.Id}}", &shm])?;
    let cache_id = direct(&["inspect", "-f", "{{.Id}}", &cache])?;

    let (shm_run, shm_nosw) = memory_cycle(shim, &shm, &shm_id)?;
    let (cache_run, cache_nosw) = memory_cycle(shim, &cache, &cache_id)?;
    let (shm_run_sw, shm_sw) = {
        let _swap = Swap::on("1G")?;
        let figures = memory_cycle(shim, &shm, &shm_id)?;
        // Data intact after the trip through swap.
        let sums = run_ok(docker(
            shim.socket_str(),
            &["exec", &shm, "sh", "-c", "sha256sum /dev/shm/blob; cat /sum"],
        ))?;
        let words: Vec<&str> = sums.lines().filter_map(|l| l.split_whitespace().next()).collect();
        if words.len() != 2 || words[0] != words[1] {
            bail!("checksum changed after the squeeze: {sums}");
        }
        figures
    };
    let pct = |asleep: u64, running: u64| 100.0 * asleep as f64 / running as f64;
    println!(
        "3. memory ({} MiB held): shmem running {:.1} MiB, asleep without swap {:.1} MiB ({:.0}%), \
         running {:.1} MiB, asleep with swap {:.1} MiB ({:.1}%); page cache running {:.1} MiB, asleep without swap {:.1} MiB ({:.1}%); checksum intact",
        options.hold_mib,
        shm_run as f64 / MIB,
        shm_nosw as f64 / MIB,
        pct(shm_nosw, shm_run),
        shm_run_sw as f64 / MIB,
        shm_sw as f64 / MIB,
        pct(shm_sw, shm_run_sw),
        cache_run as f64 / MIB,
        cache_nosw as f64 / MIB,
        pct(cache_nosw, cache_run),
    );
    rows.push(row(
        format!(
            "memory of a container holding {} MiB (shmem), asleep with swap, MiB",
            options.hold_mib
        ),
        format!("{:.1}", shm_run_sw as f64 / MIB),
        format!("{:.1}", shm_sw as f64 / MIB),
        format!("{:.1}% of running", pct(shm_sw, shm_run_sw)),
        Some(("≤ 10% of running", pct(shm_sw, shm_run_sw) <= 10.0)),
    ));
    rows.push(row(
        "… same, without swap (shmem cannot leave RAM), MiB",
        format!("{:.1}", shm_run as f64 / MIB),
        format!("{:.1}", shm_nosw as f64 / MIB),
        format!("{:.1}% of running", pct(shm_nosw, shm_run)),
        None,
    ));
    rows.push(row(
        format!(
            "memory of a container holding {} MiB of page cache, asleep without swap, MiB",
            options.hold_mib
        ),
        format!("{:.1}", cache_run as f64 / MIB),
        format!("{:.1}", cache_nosw as f64 / MIB),
        format!("{:.1}% of running", pct(cache_nosw, cache_run)),
        None,
    ));
    direct(&["rm", "-f", &shm, &cache])?;
    Ok(())
}

/// 4. The shim's CPU and RSS while it holds many sleepers.
fn bench_many(shim: &Shim, options: &Options, rows: &mut Vec<Row>) -> Result<()> {
    let names: Vec<String> = (0..options.sleepers)
        .map(|i| format!("{}-s-{i:03}", run_prefix()))
        .collect();
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let failed: Arc<Mutex<Option<String>>> = Arc::default();
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (names, next, failed) = (names.clone(), next.clone(), failed.clone());
            thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(name) = names.get(i) else { break };
                if let Err(e) = run_container(name, &[], BUSYBOX, &["sleep", "3600"]) {
                    *failed.lock().unwrap() = Some(format!("{e:#}"));
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    if let Some(e) = failed.lock().unwrap().take() {
        bail!("creating the sleepers: {e}");
    }
    println!(
        "4. {} containers started in {:.0} s",
        names.len(),
        started.elapsed().as_secs_f64()
    );
    for name in &names {
        shim.wait_state(name, State::Running, Duration::from_secs(60))?;
        shim.sleep_now(name)?;
    }
    let mine = shim.rows_of(&names)?;
    let awake: Vec<&StatusRow> = mine.iter().filter(|r| r.state != State::Sleeping).collect();
    if !awake.is_empty() {
        println!(
            "4. WARNING: {} of {} sleepers are not asleep:",
            awake.len(),
            names.len()
        );
        for r in awake.iter().take(5) {
            println!("   {} {:?} last wake {:?}", r.name, r.state, r.last_wake);
        }
    }
    thread::sleep(Duration::from_secs(5));
    let ticks_per_second = clock_ticks_per_second();
    let (own_before, children_before) = shim.cpu_ticks();
    let window_start = Instant::now();
    thread::sleep(options.cpu_window);
    let (own_after, children_after) = shim.cpu_ticks();
    let window = window_start.elapsed().as_secs_f64();
    let rss = shim.memory_kib().0 * 1024;
    let woken_in_window = shim
        .rows_of(&names)?
        .iter()
        .filter(|r| r.state != State::Sleeping)
        .count();
    if woken_in_window > 0 {
        println!("4. WARNING: {woken_in_window} sleepers woke during the window (nothing used them)");
    }
    let own_pct = 100.0 * (own_after - own_before) as f64 / ticks_per_second / window;
    let children_pct = 100.0 * children_after.saturating_sub(children_before) as f64 / ticks_per_second / window;
    println!(
        "4. {} sleepers, {window:.0} s window: shim CPU {own_pct:.2}% of one core (its conntrack child {children_pct:.2}%), RSS {:.1} MB",
        names.len(),
        rss as f64 / MB
    );
    rows.push(row(
        format!(
            "{} sleeping containers: shim CPU over {window:.0} s, % of one core",
            names.len()
        ),
        "—".into(),
        format!("{own_pct:.2}"),
        format!("+ conntrack child {children_pct:.2}"),
        Some(("≤ 1%", own_pct + children_pct <= 1.0)),
    ));
    rows.push(row(
        format!("{} sleeping containers: shim RSS, MB", names.len()),
        "—".into(),
        format!("{:.1}", rss as f64 / MB),
        "—".into(),
        Some(("≤ 50 MB", (rss as f64) <= 50.0 * MB)),
    ));
    for chunk in names.chunks(50) {
        let mut args = vec!["rm", "-f"];
        args.extend(chunk.iter().map(String::as_str));
        direct(&args)?;
    }
    Ok(())
}

/// 6. Wake from deep sleep vs a plain start, alternating on one container.
fn bench_deep(options: &Options, rows: &mut Vec<Row>) -> Result<()> {
    let prefix = run_prefix();
    let shim = start_shim(
        &options.shim_bin,
        &format!(
            "standards: {{ mode: off }}\n\
             default_class: high\n\
             auto_sleep: {{ enabled: true, check_interval: 250ms, min_uptime: 0, max_sleep_time: 1s }}\n\
             classes:\n  deep:\n    sleep_policy: {{ enabled: true, idle_timeout: 1s, deep_sleep: true }}\n\
             classify:\n  - match: {{ name: \"{prefix}-d-*\" }}\n    class: deep\n"
        ),
    );
    let name = format!("{prefix}-d-deep");
    let id = run_container(&name, &[], BUSYBOX, &["sleep", "3600"])?;
    let (mut woken, mut started) = (Vec::new(), Vec::new());
    for i in 0..options.deep_runs {
        shim.wait_state(&name, State::DeepSleep, Duration::from_secs(90))?;
        if direct(&["inspect", "-f", "{{.State.Status}}", &name])? != "exited" {
            bail!("{name} is in deep sleep but not exited");
        }
        let start = Instant::now();
        if i % 2 == 0 {
            if !shim.try_wake_container(&name)?.changed {
                bail!("the wake of {name} changed nothing");
            }
            woken.push(start.elapsed().as_secs_f64() * 1e3);
        } else {
            let response = dockerd_post(&format!("/containers/{id}/start"))?;
            if response.status != 204 {
                bail!("start {name}: {} {}", response.status, response.body_text());
            }
            started.push(start.elapsed().as_secs_f64() * 1e3);
        }
        if direct(&["inspect", "-f", "{{.State.Running}}", &name])? != "true" {
            bail!("{name} is not running after the wake or start");
        }
        shim.wait_state(&name, State::Running, Duration::from_secs(30))?;
    }
    let (w50, _) = p50_p99(&woken);
    let (s50, _) = p50_p99(&started);
    println!(
        "6. deep sleep, {} runs each: wake (API, starts it) p50 {w50:.1} ms | plain start straight to dockerd p50 {s50:.1} ms | ratio {:.2}",
        woken.len(),
        w50 / s50
    );
    rows.push(row(
        format!(
            "wake from deep sleep (stopped) vs plain `docker start`, p50 of {} each, ms",
            woken.len()
        ),
        format!("{s50:.1}"),
        format!("{w50:.1}"),
        format!("{:.2}×", w50 / s50),
        Some(("≤ 1.1×", w50 / s50 <= 1.1)),
    ));
    if shim.log().contains("panicked") {
        bail!("the deep-sleep shim panicked:\n{}", shim.log());
    }
    Ok(())
}

fn main() -> Result<()> {
    let options = parse_options()?;
    if !options.shim_bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release`",
            options.shim_bin.display()
        );
    }
    direct(&["image", "inspect", BUSYBOX]).context("forge-test/busybox is missing: run scripts/test-images.sh")?;
    direct(&["image", "inspect", HTTPD]).context("forge-test/httpd is missing: run scripts/test-images.sh")?;
    let _cleanup = Cleanup;
    let prefix = run_prefix();
    // Only this run's `-m-` and `-s-` containers sleep, never by themselves
    // (1 h): the API puts them to sleep. Defaults otherwise (check_interval
    // 30 s), so the idle cost in 4 is the shipped one.
    let shim = start_shim(
        &options.shim_bin,
        &format!(
            "standards: {{ mode: off }}\n\
             default_class: high\n\
             auto_sleep: {{ enabled: true, min_uptime: 0 }}\n\
             classes:\n  bench:\n    sleep_policy: {{ enabled: true, idle_timeout: 1h, memory_reservation: 16M }}\n\
             classify:\n  - match: {{ name: \"{prefix}-m-*\" }}\n    class: bench\n  - match: {{ name: \"{prefix}-s-*\" }}\n    class: bench\n"
        ),
    );
    let machine = machine();
    println!("# forge-shim sleep/wake benchmark");
    println!("machine: {machine}");
    println!("shim: {} (pid {})", options.shim_bin.display(), shim.pid());

    let mut rows = Vec::new();
    if options.wants("exec") {
        bench_exec(&shim, &options, &mut rows)?;
    }
    if options.wants("http") {
        let web = bench_http(&shim, &options, &mut rows)?;
        bench_cycles(&shim, &options, &web, &mut rows)?;
    }
    if options.wants("memory") {
        bench_memory(&shim, &options, &mut rows)?;
    }
    if options.wants("many") {
        bench_many(&shim, &options, &mut rows)?;
    }
    if options.wants("deep") {
        bench_deep(&options, &mut rows)?;
    }
    if shim.log().contains("panicked") {
        bail!("the shim panicked:\n{}", shim.log());
    }

    println!();
    println!("Machine: {machine}.");
    println!(
        "Command: `scripts/bench-wake.sh` ({} runs per latency figure; p99 of {} runs is close to the maximum).",
        options.runs, options.runs
    );
    println!();
    println!("| measurement | baseline | measured | difference | target |");
    println!("|---|---:|---:|---:|---|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.measurement, row.baseline, row.value, row.difference, row.target
        );
    }
    Ok(())
}
