//! The proxy benchmark: the same measurements, in one run, straight to
//! dockerd and through a release `forge-shim` (standards off, sleeping off),
//! each figure printed with the ratio, then a Markdown table.
//!
//! 1. `GET /_ping` on one keep-alive connection: p50 and p99 latency;
//!    requests/s at 1 and at 32 concurrent connections (hyper client over
//!    Unix sockets, in this process).
//! 2. A 1 GiB stream out of a container (`docker exec C dd if=/dev/zero
//!    bs=1M count=1024`, read to the end), and a 256 MiB `docker cp` in and
//!    out: MB/s.
//! 3. The shim's RSS: idle, peak (VmHWM) over the run, and with 1,000 idle
//!    client connections open.
//!
//! Each measurement alternates direct and shim runs (`--rounds`, default 3)
//! and reports the median. Run it with `scripts/bench-proxy.sh`, or:
//!
//! ```text
//! cargo build --release
//! cargo run --release --example bench_proxy -- [--shim-bin PATH] [--rounds N]
//!     [--requests N] [--duration SECS] [--quick]
//! ```
//!
//! It needs a running dockerd on /var/run/docker.sock and the local test
//! image `forge-test/busybox` (scripts/test-images.sh). It only talks to
//! local Unix sockets.

mod common;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use common::http::RawConnection;
use common::{default_bin, docker, host, median, percentile, Shim};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;

const DOCKERD_SOCKET: &str = "/var/run/docker.sock";
const IMAGE: &str = "forge-test/busybox:latest";
const MIB: f64 = 1024.0 * 1024.0;
const MB: f64 = 1_000_000.0;

struct Options {
    shim_bin: PathBuf,
    rounds: usize,
    requests: usize,
    duration: Duration,
    stream_mib: usize,
    cp_mib: usize,
    idle_connections: usize,
    /// Sections to run (`ping`, `stream`, `memory`); all when empty.
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
        rounds: 3,
        requests: 20_000,
        duration: Duration::from_secs(3),
        stream_mib: 1024,
        cp_mib: 256,
        idle_connections: 1000,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--shim-bin" => options.shim_bin = PathBuf::from(value()?),
            "--rounds" => options.rounds = value()?.parse()?,
            "--requests" => options.requests = value()?.parse()?,
            "--duration" => options.duration = Duration::from_secs_f64(value()?.parse()?),
            "--only" => {
                options.only = value()?.split(',').map(str::to_string).collect();
                if let Some(bad) = options
                    .only
                    .iter()
                    .find(|s| !["ping", "stream", "memory"].contains(&s.as_str()))
                {
                    bail!("--only: unknown section {bad:?} (ping, stream, memory)");
                }
            }
            "--quick" => {
                options.rounds = 1;
                options.requests = 2_000;
                options.duration = Duration::from_secs(1);
                options.stream_mib = 128;
                options.cp_mib = 32;
            }
            "-h" | "--help" => {
                println!("bench_proxy [--shim-bin PATH] [--rounds N] [--requests N] [--duration SECS] [--quick] [--only ping,stream,memory]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

// ---------------------------------------------------------------------------
// the shim under test

/// The shim under test: standards and sleep off, so what is measured is
/// the proxy.
fn start_shim(bin: &Path) -> Shim {
    Shim::builder("standards: { mode: off }\nauto_sleep: { enabled: false }\n")
        .bin(bin)
        .start()
}

/// The container the streaming runs use; removed on drop.
struct Container {
    name: String,
}

impl Container {
    fn start() -> Result<Container> {
        let name = format!("fs-bench-{}", std::process::id());
        let out = docker(DOCKERD_SOCKET, &["run", "-d", "--name", &name, IMAGE, "sleep", "3600"]).output()?;
        if !out.status.success() {
            bail!(
                "docker run {IMAGE}: {} (build the image with scripts/test-images.sh)",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Container { name })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(DOCKERD_SOCKET, &["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------
// ping: latency and throughput

async fn connect(socket: &Path) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connect {}", socket.display()))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn ping(sender: &mut SendRequest<Empty<Bytes>>) -> Result<()> {
    sender.ready().await?;
    let request = Request::get("/_ping")
        .header(hyper::header::HOST, "docker")
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != 200 || &body[..] != b"OK" {
        bail!("/_ping answered {status} {body:?}");
    }
    Ok(())
}

/// `n` ping latencies (µs) on one keep-alive connection to each of
/// `sockets`, taken in turn in blocks of [`PING_BLOCK`] (a block to each,
/// then again): every socket sees the same minutes of a noisy machine, and
/// within a block each path stays as warm as a client pinging in a loop
/// keeps it. (Alternating every single request instead lets every process
/// on the path go idle between two requests: about 20 µs more on each hop
/// here, for the splice and the shim alike.)
const PING_BLOCK: usize = 500;

async fn ping_latencies(sockets: &[&Path], n: usize) -> Result<Vec<Vec<f64>>> {
    let mut senders = Vec::with_capacity(sockets.len());
    for socket in sockets {
        let mut sender = connect(socket).await?;
        for _ in 0..(n / 20).max(100) {
            ping(&mut sender).await?;
        }
        senders.push(sender);
    }
    let mut latencies = vec![Vec::with_capacity(n); sockets.len()];
    for _ in 0..n.div_ceil(PING_BLOCK) {
        for (sender, latencies) in senders.iter_mut().zip(&mut latencies) {
            for _ in 0..PING_BLOCK {
                let start = Instant::now();
                ping(sender).await?;
                latencies.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    Ok(latencies)
}

/// Requests per second with `connections` connections pinging for
/// `duration`.
async fn ping_throughput(socket: &Path, connections: usize, duration: Duration) -> Result<f64> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut sender = connect(socket).await?;
        ping(&mut sender).await?;
        senders.push(sender);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut sender in senders {
        let stop = stop.clone();
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                ping(&mut sender).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------
// streaming

/// Seconds to read `mib` MiB out of `docker exec C dd`; checks the count.
fn exec_stream_seconds(socket: &str, container: &str, mib: usize) -> Result<f64> {
    let count = format!("count={mib}");
    let start = Instant::now();
    let mut child = docker(socket, &["exec", container, "dd", "if=/dev/zero", "bs=1M", &count])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        let n = stdout.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        total += n;
    }
    let status = child.wait()?;
    let seconds = start.elapsed().as_secs_f64();
    if !status.success() || total != mib << 20 {
        bail!("docker exec dd: {status}, {total} bytes instead of {}", mib << 20);
    }
    Ok(seconds)
}

fn timed(mut cmd: Command) -> Result<f64> {
    let start = Instant::now();
    let out = cmd.output()?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("{:?}: {}", cmd, String::from_utf8_lossy(&out.stderr));
    }
    Ok(seconds)
}

fn cp_in_seconds(socket: &str, container: &str, file: &Path) -> Result<f64> {
    timed(docker(
        socket,
        &["cp", file.to_str().unwrap(), &format!("{container}:/tmp/bench.bin")],
    ))
}

fn cp_out_seconds(socket: &str, container: &str, dir: &Path) -> Result<f64> {
    let target = dir.join("bench.bin");
    let _ = std::fs::remove_file(&target);
    let seconds = timed(docker(
        socket,
        &["cp", &format!("{container}:/tmp/bench.bin"), dir.to_str().unwrap()],
    ))?;
    std::fs::remove_file(&target).context("docker cp out produced no file")?;
    Ok(seconds)
}

fn write_random_file(path: &Path, size: usize) -> Result<()> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..size.div_ceil(block.len()) {
        for word in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&block)?;
    }
    file.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// idle connections

/// Opens `n` connections to the shim, each after one `GET /_ping`, and
/// holds them.
fn open_idle_connections(socket: &Path, n: usize) -> Result<Vec<RawConnection>> {
    let mut connections = Vec::with_capacity(n);
    for i in 0..n {
        let mut connection = RawConnection::try_connect(socket).with_context(|| format!("connection {i}"))?;
        connection.try_send(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")?;
        let response = connection
            .try_read_response(false)
            .with_context(|| format!("connection {i}"))?;
        if response.status != 200 || response.body != b"OK" {
            bail!(
                "connection {i}: /_ping answered {} {:?}",
                response.status,
                response.body_text()
            );
        }
        connections.push(connection);
    }
    Ok(connections)
}

// ---------------------------------------------------------------------------
// reference: a bare byte splice

/// Starts the least a Unix-socket proxy can do (accept, connect to dockerd,
/// `copy_bidirectional` with 64 KiB buffers, one thread) as a process of
/// its own, like the shim: this program again, with `--bare-splice`. Its
/// added latency and throughput are the floor an HTTP-aware proxy is
/// compared with on this machine.
fn start_bare_splice(dir: &Path) -> Result<BareSplice> {
    let socket = dir.join("splice.sock");
    let child = Command::new(std::env::current_exe()?)
        .arg("--bare-splice")
        .arg(&socket)
        .stdin(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if Instant::now() > deadline {
            bail!("the bare splice did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(BareSplice { child, socket })
}

struct BareSplice {
    child: std::process::Child,
    socket: PathBuf,
}

impl Drop for BareSplice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of the `--bare-splice SOCKET` process.
fn serve_bare_splice(socket: &Path) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::UnixListener::bind(socket)?;
        loop {
            let (mut client, _) = listener.accept().await?;
            tokio::spawn(async move {
                if let Ok(mut upstream) = tokio::net::UnixStream::connect(DOCKERD_SOCKET).await {
                    let _ =
                        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, 64 << 10, 64 << 10).await;
                }
            });
        }
    })
}

// ---------------------------------------------------------------------------
// report

struct Row {
    metric: String,
    direct: Option<f64>,
    shim: f64,
    /// How to show the ratio: `shim / direct` for rates and latencies.
    ratio: bool,
    target: Option<(String, bool)>,
    decimals: usize,
}

fn machine() -> String {
    let dockerd = docker(
        DOCKERD_SOCKET,
        &[
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ],
    )
    .output()
    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    .unwrap_or_default();
    format!("{}, dockerd {dockerd}", host())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--bare-splice") {
        let socket = args.next().context("--bare-splice needs a socket path")?;
        return serve_bare_splice(Path::new(&socket));
    }
    let options = parse_options()?;
    if !options.shim_bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release`",
            options.shim_bin.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let shim = start_shim(&options.shim_bin);
    let shim_socket = shim.socket_path().to_path_buf();
    let shim_socket_str = shim_socket.to_str().unwrap().to_string();
    let direct = Path::new(DOCKERD_SOCKET);
    let machine = machine();
    println!("# forge-shim proxy benchmark");
    println!("machine: {machine}");
    println!("shim: {} (pid {})", options.shim_bin.display(), shim.pid());
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = shim.memory_kib().0 * 1024;
    println!("shim RSS idle: {:.1} MB", idle_rss as f64 / MB);

    let mut rows = Vec::new();

    if options.wants("ping") {
        // 1. ping latency: direct, shim and a bare splice in turn.
        let reference = tempfile::Builder::new().prefix("fs-bench-splice-").tempdir()?;
        let splice_process = start_bare_splice(reference.path())?;
        let splice = splice_process.socket.clone();
        let (mut d50, mut d99, mut s50, mut s99, mut b50) = (vec![], vec![], vec![], vec![], vec![]);
        for round in 0..options.rounds {
            let all = runtime.block_on(ping_latencies(&[direct, &shim_socket, &splice], options.requests))?;
            let (d, s, b) = (&all[0], &all[1], &all[2]);
            println!(
                "ping latency round {}: direct p50 {:.1} µs p99 {:.1} µs | shim p50 {:.1} µs p99 {:.1} µs | bare splice p50 {:.1} µs",
                round + 1,
                percentile(d, 0.5),
                percentile(d, 0.99),
                percentile(s, 0.5),
                percentile(s, 0.99),
                percentile(b, 0.5)
            );
            d50.push(percentile(d, 0.5));
            d99.push(percentile(d, 0.99));
            s50.push(percentile(s, 0.5));
            s99.push(percentile(s, 0.99));
            b50.push(percentile(b, 0.5));
        }
        let (d50, d99, s50, s99, b50) = (median(&d50), median(&d99), median(&s50), median(&s99), median(&b50));
        rows.push(Row {
            metric: format!(
                "`GET /_ping` p50 latency, 1 keep-alive connection ({} requests), µs",
                options.requests
            ),
            direct: Some(d50),
            shim: s50,
            ratio: true,
            target: None,
            decimals: 1,
        });
        rows.push(Row {
            metric: "`GET /_ping` p99 latency, µs".into(),
            direct: Some(d99),
            shim: s99,
            ratio: true,
            target: None,
            decimals: 1,
        });
        rows.push(Row {
            metric: "added p50 latency, µs".into(),
            direct: None,
            shim: s50 - d50,
            ratio: false,
            target: Some(("≤ 30 µs".into(), s50 - d50 <= 30.0)),
            decimals: 1,
        });
        rows.push(Row {
            metric: "reference: added p50 latency of a bare byte splice (a process running tokio `copy_bidirectional`, no HTTP), µs"
                .into(),
            direct: None,
            shim: b50 - d50,
            ratio: false,
            target: None,
            decimals: 1,
        });

        let mut splice_32 = vec![];
        for _ in 0..options.rounds {
            splice_32.push(runtime.block_on(ping_throughput(&splice, 32, options.duration))?);
        }
        let splice_32 = median(&splice_32);
        println!("reference, a bare copy_bidirectional splice: {splice_32:.0} req/s on 32 connections");

        // 1b. throughput.
        for connections in [1usize, 32] {
            let (mut ds, mut ss) = (vec![], vec![]);
            for round in 0..options.rounds {
                let d = runtime.block_on(ping_throughput(direct, connections, options.duration))?;
                let s = runtime.block_on(ping_throughput(&shim_socket, connections, options.duration))?;
                println!(
                    "ping throughput, {connections} connection(s), round {}: direct {d:.0} req/s | shim {s:.0} req/s ({:.1}%)",
                    round + 1,
                    100.0 * s / d
                );
                ds.push(d);
                ss.push(s);
            }
            let (d, s) = (median(&ds), median(&ss));
            rows.push(Row {
                metric: format!("`GET /_ping` requests/s, {connections} connection(s)"),
                direct: Some(d),
                shim: s,
                ratio: true,
                target: (connections == 32).then(|| ("≥ 85% of direct".to_string(), s >= 0.85 * d)),
                decimals: 0,
            });
            if connections == 32 {
                rows.push(Row {
                    metric: "reference: a bare byte splice, requests/s, 32 connections".into(),
                    direct: Some(d),
                    shim: splice_32,
                    ratio: true,
                    target: None,
                    decimals: 0,
                });
            }
        }
    }

    if options.wants("stream") {
        // 2. streaming.
        let container = Container::start()?;
        let work = tempfile::Builder::new().prefix("fs-bench-data-").tempdir()?;
        let (mut ds, mut ss) = (vec![], vec![]);
        for round in 0..options.rounds {
            let d = exec_stream_seconds(DOCKERD_SOCKET, &container.name, options.stream_mib)?;
            let s = exec_stream_seconds(&shim_socket_str, &container.name, options.stream_mib)?;
            let (d, s) = (
                options.stream_mib as f64 * MIB / MB / d,
                options.stream_mib as f64 * MIB / MB / s,
            );
            println!(
                "exec stream {} MiB round {}: direct {d:.0} MB/s | shim {s:.0} MB/s ({:.1}%)",
                options.stream_mib,
                round + 1,
                100.0 * s / d
            );
            ds.push(d);
            ss.push(s);
        }
        let (d, s) = (median(&ds), median(&ss));
        rows.push(Row {
            metric: format!(
                "{} MiB out of `docker exec C dd if=/dev/zero bs=1M`, MB/s",
                options.stream_mib
            ),
            direct: Some(d),
            shim: s,
            ratio: true,
            target: Some(("≥ 95% of direct".into(), s >= 0.95 * d)),
            decimals: 0,
        });

        let file = work.path().join("cp.bin");
        write_random_file(&file, options.cp_mib << 20)?;
        let out_dir = work.path().join("out");
        std::fs::create_dir(&out_dir)?;
        let mib = options.cp_mib as f64 * MIB / MB;
        // The same copies through a bare byte splice: what any user-space
        // proxy costs here, copying every byte in and out of its memory.
        let reference = tempfile::Builder::new().prefix("fs-bench-splice-").tempdir()?;
        let splice_process = start_bare_splice(reference.path())?;
        let splice = splice_process.socket.to_str().unwrap();
        let (mut din, mut sin, mut dout, mut sout) = (vec![], vec![], vec![], vec![]);
        let (mut bin, mut bout) = (vec![], vec![]);
        for round in 0..options.rounds {
            let d = mib / cp_in_seconds(DOCKERD_SOCKET, &container.name, &file)?;
            let s = mib / cp_in_seconds(&shim_socket_str, &container.name, &file)?;
            let b = mib / cp_in_seconds(splice, &container.name, &file)?;
            let d_out = mib / cp_out_seconds(DOCKERD_SOCKET, &container.name, &out_dir)?;
            let s_out = mib / cp_out_seconds(&shim_socket_str, &container.name, &out_dir)?;
            let b_out = mib / cp_out_seconds(splice, &container.name, &out_dir)?;
            println!(
                "docker cp {} MiB round {}: in direct {d:.0} MB/s | shim {s:.0} MB/s | splice {b:.0} MB/s; out direct {d_out:.0} MB/s | shim {s_out:.0} MB/s | splice {b_out:.0} MB/s",
                options.cp_mib,
                round + 1
            );
            din.push(d);
            sin.push(s);
            bin.push(b);
            dout.push(d_out);
            sout.push(s_out);
            bout.push(b_out);
        }
        let (din, dout) = (median(&din), median(&dout));
        for (direction, d, b) in [("in", din, median(&bin)), ("out", dout, median(&bout))] {
            rows.push(Row {
                metric: format!(
                    "reference: `docker cp` {} MiB {direction} through a bare byte splice, MB/s",
                    options.cp_mib
                ),
                direct: Some(d),
                shim: b,
                ratio: true,
                target: None,
                decimals: 0,
            });
        }
        for (direction, d, s) in [("in", din, median(&sin)), ("out", dout, median(&sout))] {
            rows.push(Row {
                metric: format!("`docker cp` {} MiB {direction}, MB/s", options.cp_mib),
                direct: Some(d),
                shim: s,
                ratio: true,
                target: Some(("≥ 95% of direct".into(), s >= 0.95 * d)),
                decimals: 0,
            });
        }
        drop(container);
    }

    if options.wants("memory") {
        // 3. memory.
        let peak = shim.memory_kib().1 * 1024;
        println!("shim peak RSS (VmHWM) over the run: {:.1} MB", peak as f64 / MB);
        let before_idle = shim.memory_kib().0 * 1024;
        let idle_streams = open_idle_connections(&shim_socket, options.idle_connections)?;
        std::thread::sleep(Duration::from_secs(1));
        let with_idle = shim.memory_kib().0 * 1024;
        let open = shim.try_health().map_or(0, |health| health.connections_open);
        println!(
            "shim RSS with {} idle connections: {:.1} MB (health connections_open {open})",
            idle_streams.len(),
            with_idle as f64 / MB
        );
        if open < options.idle_connections as u64 {
            println!(
                "WARNING: only {open} of {} idle connections were still open",
                options.idle_connections
            );
        }
        drop(idle_streams);
        std::thread::sleep(Duration::from_secs(2));
        let after_idle = shim.memory_kib().0 * 1024;
        println!("shim RSS after closing them: {:.1} MB", after_idle as f64 / MB);
        rows.push(Row {
            metric: "shim RSS idle, MB".into(),
            direct: None,
            shim: idle_rss as f64 / MB,
            ratio: false,
            target: Some(("≤ 30 MB".into(), (idle_rss as f64) <= 30.0 * MB)),
            decimals: 1,
        });
        rows.push(Row {
            metric: "shim peak RSS (VmHWM) over the run, MB".into(),
            direct: None,
            shim: peak as f64 / MB,
            ratio: false,
            target: None,
            decimals: 1,
        });
        let per_connection_kib =
            (with_idle.saturating_sub(before_idle)) as f64 / 1024.0 / options.idle_connections as f64;
        rows.push(Row {
            metric: format!(
                "shim RSS with {} idle client connections, MB ({per_connection_kib:.1} KiB each)",
                options.idle_connections
            ),
            direct: None,
            shim: with_idle as f64 / MB,
            ratio: false,
            target: None,
            decimals: 1,
        });
        rows.push(Row {
            metric: "shim RSS after closing them, MB".into(),
            direct: None,
            shim: after_idle as f64 / MB,
            ratio: false,
            target: None,
            decimals: 1,
        });
    }

    // The table.
    println!();
    println!("Machine: {machine}.");
    println!(
        "Command: `scripts/bench-proxy.sh` (median of {} rounds, direct and shim alternating).",
        options.rounds
    );
    println!();
    println!("| measurement | direct to dockerd | through forge-shim | shim / direct | target |");
    println!("|---|---:|---:|---:|---|");
    for row in &rows {
        let fmt = |v: f64| format!("{v:.*}", row.decimals);
        let direct = row.direct.map(fmt).unwrap_or_else(|| "—".into());
        let ratio = match (row.ratio, row.direct) {
            (true, Some(d)) if d > 0.0 => format!("{:.1}%", 100.0 * row.shim / d),
            _ => "—".into(),
        };
        let target = match &row.target {
            Some((text, true)) => format!("{text}: met"),
            Some((text, false)) => format!("{text}: **missed**"),
            None => String::new(),
        };
        println!("| {} | {direct} | {} | {ratio} | {target} |", row.metric, fmt(row.shim));
    }
    if shim.log().contains("panicked") {
        bail!("the shim panicked:\n{}", shim.log());
    }
    Ok(())
}
