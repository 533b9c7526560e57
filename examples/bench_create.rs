//! The create benchmark: what the standards phase adds to `POST
//! /containers/create`, measured straight to dockerd and through a running
//! `forge-shim` in the same run.
//!
//! For each of `--count` containers (default 200) on each side, alternating
//! direct and shim: `POST /v1.41/containers/create?name=…` with the body the
//! docker CLI 28 sends for `docker create forge-test/busybox true` (every
//! field, zero values included), then `DELETE /v1.41/containers/{id}?force=1`.
//! Only the create is timed: from writing the request to reading the whole
//! response, on one keep-alive connection per side (no connection set-up in
//! the figure). A few warm-up creates per side come first and are not
//! counted; they also fill the shim's image-user cache, as on any busy host.
//!
//! Prints p50/p90/p99/mean per side, the added median in ms and the ratio,
//! then checks the target: added median ≤ 2 ms.
//!
//! ```text
//! cargo run --release --example bench_create -- --shim SOCKET [--direct SOCKET]
//!     [--count N] [--warmup N] [--image REF]
//! ```
//!
//! `scripts/bench-create.sh` starts the release shim with the embedded
//! standards and runs this, then times the docker CLI the same way.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use common::http::{RawConnection, RawResponse};
use common::percentile;

const DOCKERD_SOCKET: &str = "/var/run/docker.sock";
const IMAGE: &str = "forge-test/busybox";
/// Added median the standards phase may cost, in ms (issue: ≤ 2 ms).
const TARGET_ADDED_MEDIAN_MS: f64 = 2.0;

/// What `docker create forge-test/busybox true` sends (docker CLI 28.2,
/// negotiated down to API 1.41), with `IMAGE_PLACEHOLDER` for the image.
const CLI_CREATE_BODY: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":["true"],"Image":"IMAGE_PLACEHOLDER","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}"#;

struct Options {
    direct: PathBuf,
    shim: PathBuf,
    count: usize,
    warmup: usize,
    image: String,
}

fn parse_options() -> Result<Options> {
    let mut options = Options {
        direct: PathBuf::from(DOCKERD_SOCKET),
        shim: PathBuf::new(),
        count: 200,
        warmup: 5,
        image: IMAGE.to_string(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--direct" => options.direct = PathBuf::from(value()?),
            "--shim" => options.shim = PathBuf::from(value()?),
            "--count" => options.count = value()?.parse()?,
            "--warmup" => options.warmup = value()?.parse()?,
            "--image" => options.image = value()?,
            "-h" | "--help" => {
                println!("usage: bench_create --shim SOCKET [--direct SOCKET] [--count N] [--warmup N] [--image REF]");
                std::process::exit(0);
            }
            other => bail!("unknown option {other}"),
        }
    }
    if options.shim.as_os_str().is_empty() {
        bail!("--shim SOCKET is required (scripts/bench-create.sh starts a shim and passes it)");
    }
    if options.count == 0 {
        bail!("--count must be at least 1");
    }
    Ok(options)
}

/// One keep-alive connection (the harness's raw HTTP/1.1 client) that sends
/// what the docker CLI sends: its `Host`, a length on every `POST`.
struct Connection(RawConnection);

impl Connection {
    fn open(path: &Path) -> Result<Connection> {
        let connection = RawConnection::try_connect(path).with_context(|| format!("connect {}", path.display()))?;
        Ok(Connection(connection))
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<RawResponse> {
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: bench-create\r\n");
        if !body.is_empty() || method == "POST" {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.0.try_send(&bytes)?;
        Ok(self.0.try_read_response(false)?)
    }
}

/// One side of the comparison: its connection and the create times.
struct Side {
    label: &'static str,
    connection: Connection,
    millis: Vec<f64>,
    warnings: usize,
}

impl Side {
    /// Creates container `name`, timing only the create, then removes it.
    fn create_and_remove(&mut self, body: &[u8], name: &str, record: bool) -> Result<()> {
        let path = format!("/v1.41/containers/create?name={name}");
        let started = Instant::now();
        let response = self.connection.request("POST", &path, body)?;
        let elapsed = started.elapsed();
        if response.status != 201 {
            bail!(
                "{}: create answered {}: {}",
                self.label,
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        let answer: serde_json::Value = serde_json::from_slice(&response.body)?;
        let id = answer["Id"].as_str().context("create answer without Id")?.to_string();
        if record {
            self.millis.push(elapsed.as_secs_f64() * 1000.0);
            self.warnings += answer["Warnings"].as_array().map_or(0, Vec::len);
        }
        let response = self
            .connection
            .request("DELETE", &format!("/v1.41/containers/{id}?force=1"), b"")?;
        if response.status != 204 {
            bail!("{}: remove {id} answered {}", self.label, response.status);
        }
        Ok(())
    }
}

struct Stats {
    p50: f64,
    p90: f64,
    p99: f64,
    mean: f64,
}

fn stats(samples: &[f64]) -> Stats {
    Stats {
        p50: percentile(samples, 0.50),
        p90: percentile(samples, 0.90),
        p99: percentile(samples, 0.99),
        mean: samples.iter().sum::<f64>() / samples.len() as f64,
    }
}

/// Removes what a failed run left behind (names `bench-create-<pid>-…`).
fn sweep(direct: &Path, prefix: &str) {
    let Ok(mut connection) = Connection::open(direct) else {
        return;
    };
    let filter = format!("{{\"name\":[\"{prefix}\"]}}");
    let query: String = filter
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let Ok(response) = connection.request("GET", &format!("/v1.41/containers/json?all=1&filters={query}"), b"") else {
        return;
    };
    let list: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    for item in list.as_array().into_iter().flatten() {
        if let Some(id) = item["Id"].as_str() {
            let _ = connection.request("DELETE", &format!("/v1.41/containers/{id}?force=1"), b"");
        }
    }
}

fn run(options: &Options, prefix: &str) -> Result<()> {
    let body = CLI_CREATE_BODY
        .replace("IMAGE_PLACEHOLDER", &options.image)
        .into_bytes();
    let mut direct = Side {
        label: "direct",
        connection: Connection::open(&options.direct)?,
        millis: Vec::with_capacity(options.count),
        warnings: 0,
    };
    let mut shim = Side {
        label: "shim",
        connection: Connection::open(&options.shim)?,
        millis: Vec::with_capacity(options.count),
        warnings: 0,
    };
    for i in 0..options.warmup {
        direct.create_and_remove(&body, &format!("{prefix}-warm-d{i}"), false)?;
        shim.create_and_remove(&body, &format!("{prefix}-warm-s{i}"), false)?;
    }
    for i in 0..options.count {
        // Alternate which side goes first, so drift on the host hits both.
        let (first, second) = if i % 2 == 0 {
            (&mut direct, &mut shim)
        } else {
            (&mut shim, &mut direct)
        };
        first.create_and_remove(&body, &format!("{prefix}-{}-{i}", first.label), true)?;
        second.create_and_remove(&body, &format!("{prefix}-{}-{i}", second.label), true)?;
    }
    if direct.warnings != 0 || shim.warnings == 0 {
        bail!(
            "expected warnings only through the shim (direct {}, shim {}): are the standards on?",
            direct.warnings,
            shim.warnings
        );
    }

    let d = stats(&direct.millis);
    let s = stats(&shim.millis);
    let added = s.p50 - d.p50;
    println!(
        "POST /containers/create, {} creates per side (+{} warm-up), one keep-alive connection each, ms:",
        options.count, options.warmup
    );
    println!();
    println!("| create latency | direct | shim | added | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for (label, direct, shim) in [
        ("p50", d.p50, s.p50),
        ("p90", d.p90, s.p90),
        ("p99", d.p99, s.p99),
        ("mean", d.mean, s.mean),
    ] {
        println!(
            "| {label} | {direct:.2} | {shim:.2} | {:+.2} | {:.2}x |",
            shim - direct,
            shim / direct
        );
    }
    println!();
    println!(
        "standards applied: {} warnings over {} shim creates ({} per create)",
        shim.warnings,
        options.count,
        shim.warnings / options.count
    );
    let verdict = if added <= TARGET_ADDED_MEDIAN_MS {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "added median per create: {added:.2} ms (target <= {TARGET_ADDED_MEDIAN_MS} ms: {verdict}); ratio {:.2}x",
        s.p50 / d.p50
    );
    Ok(())
}

fn main() -> Result<()> {
    let options = parse_options()?;
    let prefix = format!("bench-create-{}", std::process::id());
    let result = run(&options, &prefix);
    // Every create was followed by a remove; this catches a run cut short.
    sweep(&options.direct, &prefix);
    result
}
