//! The dashboard, for real: the built binary in front of the real dockerd
//! with `metrics.listen` on a free loopback port, containers started
//! through the shim and left to fall asleep, and the page loaded in a real
//! headless Chromium (Debian's `chromium` and `chromedriver`,
//! `scripts/setup-chromium.sh`) driven over the W3C WebDriver protocol. The
//! page must show the right counts and draw its charts; its screenshots are
//! kept under `target/test-artifacts/dashboard/`. And what the listener must
//! never do: take anything but `GET`/`HEAD` on its known paths, serve the
//! Docker API, or wake a sleeper because someone watches the page. The
//! Grafana dashboard in `examples/prometheus/` queries only series the shim
//! exposes.
//!
//! Every shim here sleeps only this test's containers (default class
//! `high`, a `classify:` rule for the test's prefix), as in
//! tests/prometheus.rs; other tests' containers on the shared dockerd are
//! in its table too, so running and stopped counts are checked against the
//! page's own table, and the sleeping count exactly.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use forge_shim::State;
use serde_json::{json, Value};

use common::*;

/// Deadline for an idle container to be paused, generous for 2 loaded cores.
const ASLEEP_WITHIN: Duration = Duration::from_secs(45);
/// Deadline for the page to show what the shim's table shows (it polls
/// every 2 s): a hang detector.
const PAGE_WITHIN: Duration = Duration::from_secs(60);
/// chromedriver and Chromium starting on a loaded machine.
const BROWSER_WITHIN: Duration = Duration::from_secs(60);

const GRAFANA: &str = "examples/prometheus/forge-shim.grafana.json";

/// Every path the listener serves besides `/metrics`, and its content type.
const PAGES: [(&str, &str); 6] = [
    ("/", "text/html; charset=utf-8"),
    ("/dashboard.json", "application/json"),
    ("/assets/dashboard.js", "text/javascript; charset=utf-8"),
    ("/assets/dashboard.css", "text/css; charset=utf-8"),
    ("/assets/chart.umd.min.js", "text/javascript; charset=utf-8"),
    ("/assets/chart.js-LICENSE.md", "text/plain; charset=utf-8"),
];

/// The charts the page draws, by canvas id.
const CHARTS: [&str; 8] = [
    "chart-states",
    "chart-memory",
    "chart-cpu",
    "chart-wake",
    "chart-availability",
    "chart-saved",
    "chart-cost",
    "chart-host",
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free loopback port")
        .port()
}

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// Standards in `mode` (`enforce`: the embedded defaults), `high` by
/// default, and class `sleepy` (normal priority, 2 s idle timeout) for this
/// test's names only, with the metrics listener on `metrics`.
fn shim_config(names: &Names, metrics: SocketAddr, mode: &str) -> String {
    let prefix = names.prefix();
    format!(
        "standards: {{ mode: {mode} }}\n\
         default_class: high\n\
         metrics:\n  listen: \"{metrics}\"\n\
         auto_sleep:\n  enabled: true\n  check_interval: 500ms\n  min_uptime: 0\n\
         classes:\n  sleepy:\n    sleep_policy: {{ enabled: true, idle_timeout: 2s, priority: normal }}\n\
         classify:\n  - match: {{ name: \"{prefix}-*\" }}\n    class: sleepy\n"
    )
}

/// Where this test's screenshots go: `target/test-artifacts/dashboard/`
/// (next to `target/tmp`, so a custom `CARGO_TARGET_DIR` is followed).
fn artifacts_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-artifacts").join("dashboard");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts/dashboard");
    dir
}

// ---------------------------------------------------------------------------
// HTTP over TCP

/// One HTTP/1.1 exchange on a new connection: the status, the head and the
/// body (framed by `Content-Length`, else by close).
fn http(addr: SocketAddr, method: &str, target: &str, body: Option<&Value>) -> (u16, String, Vec<u8>) {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if body.is_some() || method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&payload);
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut answer = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let (head, body_start) = loop {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
        assert!(n > 0, "{method} {target}: closed before a head: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&answer[..at]).into_owned(), at + 4);
        }
    };
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length = head_value(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
    let mut body = answer.split_off(body_start);
    match length {
        Some(length) if method != "HEAD" => {
            while body.len() < length {
                let n = stream.read(&mut buf).expect("read the body");
                assert!(n > 0, "{method} {target}: closed in the body");
                body.extend_from_slice(&buf[..n]);
            }
        }
        Some(_) => {}
        None => {
            stream.read_to_end(&mut body).expect("read the body");
        }
    }
    (status, head, body)
}

fn head_value(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
}

fn get_json(addr: SocketAddr, target: &str) -> Value {
    let (status, head, body) = http(addr, "GET", target, None);
    assert_eq!(status, 200, "GET {target}: {head}");
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

// ---------------------------------------------------------------------------
// headless Chromium over WebDriver

/// `chromedriver` on a free loopback port and one headless Chromium
/// session with a temporary profile; the session is deleted and the driver
/// killed on drop (its log printed when the test fails).
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        for program in ["chromium", "chromedriver"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                found,
                "{program} is not installed: run scripts/setup-chromium.sh (make setup)"
            );
        }
        let dir = tempfile::Builder::new().prefix("fs-chromium-").tempdir().unwrap();
        let log = dir.path().join("chromedriver.log");
        let out = std::fs::File::create(&log).unwrap();
        let addr: SocketAddr = free_addr();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start chromedriver");
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            log,
            _dir: dir,
        };
        wait_until("chromedriver to be ready", BROWSER_WITHIN, || {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                panic!("chromedriver exited ({status}):\n{}", browser.log_text());
            }
            TcpStream::connect(browser.addr).is_ok() && http(browser.addr, "GET", "/status", None).0 == 200
        });
        let profile = browser._dir.path().join("profile");
        let answer = browser.command(
            "POST",
            "/session",
            json!({
                "capabilities": { "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--no-first-run",
                            "--window-size=1400,2200",
                            format!("--user-data-dir={}", profile.display()),
                        ]
                    }
                }}
            }),
        );
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_string();
        browser
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A WebDriver command; its `value`. A WebDriver error fails the test.
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (method == "POST").then_some(&body);
        let (status, head, answer) = http(self.addr, method, path, body);
        let value: Value = serde_json::from_slice(&answer)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {head}\n{}", String::from_utf8_lossy(&answer)));
        assert_eq!(status, 200, "{method} {path}: {value}");
        value["value"].clone()
    }

    fn session_command(&self, method: &str, path: &str, body: Value) -> Value {
        self.command(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session_command("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page; what it returns.
    fn run(&self, script: &str) -> Value {
        self.session_command("POST", "/execute/sync", json!({ "script": script, "args": [] }))
    }

    /// A PNG of the window, written to `path`.
    fn screenshot(&self, path: &Path) {
        let encoded = self.session_command("GET", "/screenshot", Value::Null);
        let png = base64_decode(encoded.as_str().expect("a base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                http(self.addr, "DELETE", &format!("/session/{}", self.session), None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "----- chromedriver log (last lines) -----\n{}\n----- end -----",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// Standard base64 (RFC 4648, padded), as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            other => panic!("not base64: {other}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// What the page shows, read from its DOM in one go (one poll's rendering).
const READ_PAGE: &str = r#"
const states = ['running', 'sleeping', 'deep_sleep', 'user_paused', 'stopped'];
const counts = {};
for (const s of states) counts[s] = document.getElementById('count-' + s).textContent;
const rows = [...document.querySelectorAll('#containers tbody tr')].map(tr => ({
  name: tr.dataset.name,
  state: tr.dataset.state,
  counted_as: tr.dataset.countedAs,
  cells: [...tr.children].map(td => td.textContent),
}));
return {
  polls: Number(document.body.dataset.polls),
  status: document.body.dataset.status,
  error: document.getElementById('poll-error').textContent,
  counts,
  rows,
  wakes: document.getElementById('wake-count').textContent,
  availability: document.getElementById('availability-responses').textContent,
  dockerd: document.getElementById('health-dockerd').textContent,
  denials: document.getElementById('health-denials').textContent,
};
"#;

/// Each canvas: its size, how many of its pixels are painted, how many are
/// exactly the sleeping colour (#3b6fd8: the doughnut's sleeping slice, the
/// `normal` wake bars), and its Chart.js instance's type and data points.
const READ_CHARTS: &str = r#"
const out = { instances: Object.keys(Chart.instances).length, version: Chart.version, canvases: [] };
for (const canvas of document.querySelectorAll('canvas')) {
  const chart = Chart.getChart(canvas);
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0, blue = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i + 3] !== 0) painted++;
    if (pixels[i] === 59 && pixels[i + 1] === 111 && pixels[i + 2] === 216 && pixels[i + 3] === 255) blue++;
  }
  out.canvases.push({
    id: canvas.id,
    width: canvas.width,
    height: canvas.height,
    painted,
    blue,
    type: chart ? chart.config.type : null,
    points: chart ? chart.data.datasets.reduce((n, ds) => n + ds.data.filter(v => v !== null && v !== 0).length, 0) : 0,
  });
}
return out;
"#;

// ---------------------------------------------------------------------------
// tests

/// Two containers fall asleep (one is woken by an exec and falls asleep
/// again), one is kept awake, one is created and never started: the page
/// in headless Chromium shows two sleeping, counts that agree with its own
/// table row by row, each of this test's containers in its state, the
/// wake, and eight charts drawn by Chart.js with data in them. Watching
/// the page wakes nobody; when the shim goes, the page says it is not
/// updating. The Grafana dashboard is checked against this
/// shim's `/metrics` at the end ([`check_grafana_dashboard`]).
#[test]
fn the_dashboard_shows_sleepers_in_headless_chromium() {
    require_dockerd();
    let names = Names::new("dashboard-page");
    let metrics = free_addr();
    let mut shim = Shim::start(&shim_config(&names, metrics, "enforce"));

    let (woken, sleeper, awake, stopped) = (
        names.name("woken"),
        names.name("sleeper"),
        names.name("awake"),
        names.name("stopped"),
    );
    for name in [&woken, &sleeper] {
        shim.docker(&[
            "run", "-d", "--init", "--cpus", "0.5", "--memory", "64m", "--name", name, BUSYBOX, "sleep", "3600",
        ])
        .assert_success("docker run -d");
    }
    shim.docker(&[
        "run",
        "-d",
        "--init",
        "--label",
        "forge.sleep=false",
        "--name",
        &awake,
        BUSYBOX,
        "sleep",
        "3600",
    ])
    .assert_success("docker run -d (kept awake)");
    shim.docker(&["create", "--name", &stopped, BUSYBOX, "true"])
        .assert_success("docker create");
    // A denial, for the health view and the Grafana check.
    let denied = raw_request(
        shim.socket_path(),
        privileged_create(&names.name("privileged")).as_bytes(),
    );
    assert_eq!(denied.status, 403, "{}", denied.body_text());

    let asleep = |name: &str| shim.container(name).is_some_and(|row| row.state == State::Sleeping);
    wait_until("both sleepers to fall asleep", ASLEEP_WITHIN, || {
        asleep(&woken) && asleep(&sleeper)
    });
    // A wake for the performance view; then it sleeps again.
    shim.docker(&["exec", &woken, "true"]).assert_success("docker exec");
    wait_until(&format!("{woken} to fall asleep again"), ASLEEP_WITHIN, || {
        shim.container(&woken)
            .is_some_and(|row| row.state == State::Sleeping && row.wakes == 1)
    });
    let sleeper_wakes = shim.container(&sleeper).unwrap().wakes;
    assert_eq!(sleeper_wakes, 0);

    // The JSON the page polls says the same as the shim's table.
    let snapshot = get_json(metrics, "/dashboard.json");
    assert_eq!(snapshot["counts"]["sleeping"], 2, "{snapshot}");
    assert_eq!(snapshot["dockerd"]["reachable"], true, "{snapshot}");

    let browser = Browser::start();
    browser.open(&format!("http://{metrics}/"));
    let mine = [
        (&woken, "sleeping"),
        (&sleeper, "sleeping"),
        (&awake, "running"),
        (&stopped, "stopped"),
    ];
    let mut page = Value::Null;
    let shown = |page: &Value| {
        page["polls"].as_u64().unwrap_or(0) >= 3
            && page["counts"]["sleeping"] == "2"
            && mine.iter().all(|(name, state)| {
                page["rows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|row| row["name"] == name.as_str() && row["state"] == *state)
            })
    };
    let shots = artifacts_dir();
    let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("the page to show this test's containers", PAGE_WITHIN, || {
            page = browser.run(READ_PAGE);
            shown(&page)
        })
    }));
    if seen.is_err() {
        browser.screenshot(&shots.join("dashboard-failed.png"));
        panic!("the page never showed the shim's table; last read: {page:#}");
    }
    assert_eq!(page["status"], "ok", "{page:#}");
    assert_eq!(page["dockerd"], "reachable", "{page:#}");
    assert_eq!(page["denials"], "1", "{page:#}");

    // Counts and table come from one snapshot: each count is its rows.
    let rows = page["rows"].as_array().unwrap();
    for state in ["running", "sleeping", "deep_sleep", "user_paused", "stopped"] {
        let tally = rows.iter().filter(|row| row["counted_as"] == state).count();
        assert_eq!(
            page["counts"][state],
            tally.to_string(),
            "count of {state} against the table: {page:#}"
        );
    }
    assert_eq!(page["counts"]["deep_sleep"], "0", "{page:#}");
    let running: usize = page["counts"]["running"].as_str().unwrap().parse().unwrap();
    assert!(running >= 1, "{page:#}");
    let row = |name: &str| rows.iter().find(|row| row["name"] == name).unwrap();
    // The table's cells: name, class, state, idle for, wakes, ….
    assert_eq!(row(&woken)["cells"][1], "sleepy", "{page:#}");
    assert_eq!(row(&woken)["cells"][2], "sleeping", "{page:#}");
    assert_eq!(row(&woken)["cells"][4], "1", "{page:#}");
    assert_eq!(row(&sleeper)["cells"][4], "0", "{page:#}");
    assert_eq!(row(&sleeper)["cells"][7], "64.0 MiB", "the memory limit: {page:#}");
    let wakes: u64 = page["wakes"].as_str().unwrap().parse().unwrap();
    assert!(wakes >= 1, "{page:#}");

    // The charts: one Chart.js instance per canvas, each drawn.
    let charts = browser.run(READ_CHARTS);
    assert_eq!(charts["version"], "4.6.1", "{charts:#}");
    assert_eq!(charts["instances"], CHARTS.len(), "{charts:#}");
    let canvases = charts["canvases"].as_array().unwrap();
    let ids: BTreeSet<&str> = canvases.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, CHARTS.iter().copied().collect::<BTreeSet<&str>>(), "{charts:#}");
    let canvas = |id: &str| canvases.iter().find(|c| c["id"] == id).unwrap();
    for chart in canvases {
        let (width, height) = (chart["width"].as_u64().unwrap(), chart["height"].as_u64().unwrap());
        assert!(width >= 100 && height >= 100, "{chart}");
        assert!(chart["type"].is_string(), "no Chart.js chart on {chart}");
        // Axes, legends and lines: a blank canvas paints nothing.
        assert!(chart["painted"].as_u64().unwrap() > 500, "blank canvas: {chart}");
    }
    // The data is drawn, not only the axes.
    assert_eq!(canvas("chart-states")["type"], "doughnut");
    assert!(
        canvas("chart-states")["blue"].as_u64().unwrap() > 500,
        "no sleeping slice: {charts:#}"
    );
    assert_eq!(canvas("chart-wake")["type"], "bar");
    assert!(canvas("chart-wake")["points"].as_u64().unwrap() >= 1, "{charts:#}");
    // Its legend's box is 12 by 12 pixels of that colour; a bar is more.
    assert!(
        canvas("chart-wake")["blue"].as_u64().unwrap() > 600,
        "no wake bar drawn: {charts:#}"
    );
    assert!(canvas("chart-memory")["points"].as_u64().unwrap() >= 3, "{charts:#}");
    assert!(canvas("chart-host")["points"].as_u64().unwrap() >= 3, "{charts:#}");
    assert!(
        canvas("chart-availability")["points"].as_u64().unwrap() >= 3,
        "{charts:#}"
    );
    assert!(canvas("chart-cost")["points"].as_u64().unwrap() >= 2, "{charts:#}");
    browser.screenshot(&shots.join("dashboard-sleepers.png"));

    // Watching the page wakes nobody: the sleeper slept through every poll.
    let row = shim.container(&sleeper).unwrap();
    assert_eq!((row.state, row.wakes), (State::Sleeping, 0), "{row:?}");

    // Woken through the shim, the page follows.
    shim.docker(&["exec", &sleeper, "true"]).assert_success("docker exec");
    wait_until("the page to show the second wake", PAGE_WITHIN, || {
        page = browser.run(READ_PAGE);
        page["wakes"].as_str().and_then(|w| w.parse::<u64>().ok()) >= Some(2)
    });
    browser.screenshot(&shots.join("dashboard-woken.png"));

    let (status, _, text) = http(metrics, "GET", "/metrics", None);
    assert_eq!(status, 200);
    check_grafana_dashboard(&String::from_utf8(text).unwrap());
    shim.assert_no_panic();

    // The shim gone, the page says its figures are stale (and keeps trying).
    shim.terminate();
    wait_until("the page to say it is not updating", PAGE_WITHIN, || {
        page = browser.run(READ_PAGE);
        page["status"] == "error"
    });
    assert!(
        page["error"].as_str().unwrap_or_default().starts_with("not updating: "),
        "{page:#}"
    );
    browser.screenshot(&shots.join("dashboard-shim-gone.png"));
}

/// The listener takes `GET` and `HEAD` on its known paths only: every other
/// method is 405 with `Allow: GET, HEAD`, every other path (the Docker API
/// and the shim's own API among them) the shim's 404, and a create sent to
/// it creates nothing. Each page has its content type and the page's
/// content security policy allows only its own files.
#[test]
fn the_dashboard_listener_is_read_only() {
    require_dockerd();
    let names = Names::new("dashboard-never");
    let metrics = free_addr();
    let shim = Shim::start(&shim_config(&names, metrics, "off"));

    for (path, content_type) in PAGES {
        let (status, head, body) = http(metrics, "GET", path, None);
        assert_eq!(status, 200, "GET {path}: {head}");
        assert_eq!(
            head_value(&head, "content-type").as_deref(),
            Some(content_type),
            "{head}"
        );
        assert_eq!(head_value(&head, "x-content-type-options").as_deref(), Some("nosniff"));
        assert!(!body.is_empty(), "GET {path}");
        let (status, head, body) = http(metrics, "HEAD", path, None);
        assert_eq!(status, 200, "HEAD {path}: {head}");
        assert!(body.is_empty(), "HEAD {path} sent a body");
    }
    let (_, head, _) = http(metrics, "GET", "/", None);
    let csp = head_value(&head, "content-security-policy").unwrap_or_default();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let (_, _, script) = http(metrics, "GET", "/assets/chart.umd.min.js", None);
    assert!(script.starts_with(b"/*!\n * Chart.js v4.6.1"), "the vendored library");

    for (path, _) in PAGES.iter().chain(&[("/metrics", "")]) {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let (status, head, _) = http(metrics, method, path, Some(&json!({})));
            assert_eq!(status, 405, "{method} {path}: {head}");
            assert_eq!(head_value(&head, "allow").as_deref(), Some("GET, HEAD"), "{head}");
        }
    }
    for path in [
        "/index.html",
        "/dashboard.json/",
        "/assets/",
        "/assets/../metrics",
        "/containers/json",
        "/v1.41/containers/json",
        "/_ping",
        "/_forge/v1/containers",
        "/_forge/v1/health",
    ] {
        let (status, _, body) = http(metrics, "GET", path, None);
        assert_eq!(status, 404, "GET {path}");
        let message: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            message["message"].as_str().unwrap().starts_with("forge-shim: "),
            "GET {path}: {message}"
        );
    }

    // A create, a start and a sleep sent to the listener do nothing.
    let never = names.name("never");
    let (status, _, _) = http(
        metrics,
        "POST",
        &format!("/containers/create?name={never}"),
        Some(&json!({ "Image": BUSYBOX, "Cmd": ["true"] })),
    );
    assert_eq!(status, 404);
    let (status, _, _) = http(metrics, "POST", &format!("/containers/{never}/start"), None);
    assert_eq!(status, 404);
    let (status, _, _) = http(metrics, "POST", "/_forge/v1/reload", None);
    assert_eq!(status, 404);
    let inspect = direct_docker(&["inspect", &never]);
    assert!(!inspect.status.success(), "the listener created {never}");
    shim.assert_no_panic();
}

/// The Grafana dashboard is well-formed JSON with the seed's five views as
/// rows, and every `forge_shim_…` series its queries use is one `text` (a
/// shim's `/metrics` after sleeps, wakes, a standards change and a denial)
/// declares (a counter `x` as `x_total`, a histogram as
/// `x_bucket`, `x_sum`, `x_count`) and that `promtool` parses.
fn check_grafana_dashboard(text: &str) {
    let mut exposed = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#") || words.next() != Some("TYPE") {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                exposed.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exposed.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                exposed.insert(name.to_string());
            }
        }
    }
    assert!(exposed.contains("forge_shim_containers"), "{text}");

    let grafana: Value = serde_json::from_str(&std::fs::read_to_string(repo_path(GRAFANA)).unwrap())
        .unwrap_or_else(|e| panic!("{GRAFANA} is not JSON: {e}"));
    assert!(grafana["title"].is_string() && grafana["uid"].is_string(), "{GRAFANA}");
    let panels = grafana["panels"].as_array().expect("panels");
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(
        rows,
        ["Service states", "Resource trends", "Performance", "Cost", "Health"],
        "the seed's five views"
    );
    let mut exprs = Vec::new();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("no targets: {panel}"));
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            exprs.push(
                target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no expr: {panel}"))
                    .to_string(),
            );
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for (at, _) in expr.match_indices("forge_shim_") {
            let name: String = expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    let unknown: Vec<&String> = used.iter().filter(|name| !exposed.contains(*name)).collect();
    assert!(
        unknown.is_empty(),
        "{GRAFANA} queries series the shim does not expose: {unknown:?}; exposed: {exposed:?}"
    );
    assert!(used.len() >= 10, "{used:?}");

    // Each query is PromQL Prometheus parses: promtool checks them as
    // recording rules, with the `$job` variable as Grafana fills it for
    // "All".
    let dir = tempfile::Builder::new().prefix("fs-grafana-").tempdir().unwrap();
    let rules = dir.path().join("grafana-queries.yml");
    let mut yaml = String::from("groups:\n  - name: grafana\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let expr = Value::String(expr.replace("$job", ".*")).to_string();
        yaml.push_str(&format!("      - record: grafana_query_{i}\n        expr: {expr}\n"));
    }
    std::fs::write(&rules, yaml).unwrap();
    let mut promtool = Command::new("promtool");
    promtool.arg("check").arg("rules").arg(&rules).stdin(Stdio::null());
    run_with_timeout(promtool, Duration::from_secs(60))
        .assert_success("promtool check rules on the Grafana queries (scripts/setup-prometheus.sh installs it)");
}
