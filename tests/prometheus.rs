//! Prometheus and the shim, for real: the built binary in front of the real
//! dockerd with `metrics.listen` on a free loopback port, a real
//! `prometheus` server (Debian's package, `scripts/setup-prometheus.sh`)
//! scraping it every second, asserted through Prometheus's HTTP query API;
//! the alert rules loaded into that server, and checked and unit-tested by
//! `promtool`. And what the listener must never do: serve the Docker API,
//! or let the shim run without the listener it was asked for.
//!
//! Every shim here sleeps only this test's containers (default class
//! `high`, a `classify:` rule for the test's prefix), as in tests/sleep.rs.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use forge_shim::State;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use common::*;

/// Deadline for something Prometheus must have scraped or evaluated (it
/// scrapes and evaluates every second here): a hang detector.
const SEEN_WITHIN: Duration = Duration::from_secs(60);
/// Deadline for an idle container to be paused, generous for 2 loaded cores.
const ASLEEP_WITHIN: Duration = Duration::from_secs(45);

const RULES: &str = "examples/prometheus/forge-shim.rules.yml";
const RULES_TEST: &str = "examples/prometheus/forge-shim.rules.test.yml";

/// A loopback port nobody listens on now (the kernel's pick).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// The config: standards off, `high` by default, and class `sleepy`
/// (normal priority, 2 s idle timeout) for this test's names only, with the
/// metrics listener on `metrics`.
fn shim_config(names: &Names, metrics: SocketAddr) -> String {
    let prefix = names.prefix();
    format!(
        "standards: {{ mode: off }}\n\
         default_class: high\n\
         metrics:\n  listen: \"{metrics}\"\n\
         auto_sleep:\n  enabled: true\n  check_interval: 500ms\n  min_uptime: 0\n\
         classes:\n  sleepy:\n    sleep_policy: {{ enabled: true, idle_timeout: 2s, priority: normal }}\n\
         classify:\n  - match: {{ name: \"{prefix}-*\" }}\n    class: sleepy\n"
    )
}

// ---------------------------------------------------------------------------
// HTTP over TCP

/// One HTTP/1.0 exchange with `addr` (so the answer is framed by close,
/// never chunked): the status and the body.
fn http(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {answer:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

/// [`http`] that says `None` instead of panicking when the connection fails
/// or closes without an answer.
fn try_get(addr: SocketAddr, target: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    stream
        .write_all(format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    String::from_utf8_lossy(&answer).split_whitespace().nth(1)?.parse().ok()
}

fn get(addr: SocketAddr, target: &str) -> (u16, String, String) {
    http(addr, &format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n"))
}

// ---------------------------------------------------------------------------
// a real Prometheus server

/// `prometheus` on a free loopback port, with its config and storage in a
/// temporary folder; killed (and its log printed when the test fails) on
/// drop.
struct Prometheus {
    child: Child,
    web: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` every second as job `forge-shim`, and evaluates
    /// `rules` every second.
    fn start(target: SocketAddr, rules: &Path) -> Prometheus {
        let dir = tempfile::Builder::new().prefix("fs-prom-").tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: forge-shim\n    static_configs:\n      - targets: [\"{target}\"]\n",
                rules.display()
            ),
        )
        .unwrap();
        let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.path().join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={web}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start prometheus (scripts/setup-prometheus.sh installs it)");
        let mut prometheus = Prometheus {
            child,
            web,
            log,
            _dir: dir,
        };
        wait_until("prometheus to be ready", SEEN_WITHIN, || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", prometheus.log_text());
            }
            TcpStream::connect(prometheus.web).is_ok() && get(prometheus.web, "/-/ready").0 == 200
        });
        prometheus
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`, its `data`.
    fn api(&self, path: &str) -> serde_json::Value {
        let (status, _, body) = get(self.web, &format!("/api/v1/{path}"));
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(
            (status, value["status"].as_str()),
            (200, Some("success")),
            "{path}: {body}"
        );
        value["data"].clone()
    }

    /// An instant query's result vector.
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let encoded = utf8_percent_encode(promql, NON_ALPHANUMERIC);
        let data = self.api(&format!("query?query={encoded}"));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `promql` returns a sample whose value passes `check`;
    /// returns that sample.
    fn wait_for(&self, promql: &str, check: impl Fn(f64) -> bool) -> serde_json::Value {
        let mut found = None;
        wait_until(&format!("prometheus to return {promql}"), SEEN_WITHIN, || {
            found = self
                .query(promql)
                .into_iter()
                .find(|sample| check(sample_value(sample)));
            found.is_some()
        });
        found.unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- prometheus log -----\n{}----- end -----", self.log_text());
        }
    }
}

/// The `forge_shim_…` series named in the rules' expressions (comments
/// left out; recording rules' own `forge_shim:…` names are not series the
/// shim exposes).
fn series_in_rules() -> Vec<String> {
    let rules = std::fs::read_to_string(repo_path(RULES)).unwrap();
    let mut used = Vec::new();
    for line in rules.lines().filter(|line| !line.trim_start().starts_with('#')) {
        for (at, _) in line.match_indices("forge_shim_") {
            let name: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            used.push(name);
        }
    }
    used.sort();
    used.dedup();
    used
}

fn sample_value(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------
// tests

/// Prometheus scrapes the shim: `up` is 1, a sleeper is counted as
/// sleeping, its wake is in the wake histogram with its class and priority,
/// its memory is there by name, and every alert and recording rule of the
/// example file evaluates without error against the real series.
#[test]
fn prometheus_scrapes_the_shim() {
    require_dockerd();
    let names = Names::new("prometheus-scrape");
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let shim = Shim::start(&shim_config(&names, metrics));
    let prometheus = Prometheus::start(metrics, &repo_path(RULES));

    let up = prometheus.wait_for("up{job=\"forge-shim\"}", |v| v == 1.0);
    assert_eq!(up["metric"]["instance"], metrics.to_string(), "{up}");

    let name = names.name("sleeper");
    // Limits, so that the limit series exist as well.
    shim.docker(&[
        "run", "-d", "--init", "--cpus", "0.5", "--memory", "64m", "--name", &name, BUSYBOX, "sleep", "3600",
    ])
    .assert_success("docker run -d");
    wait_until(&format!("{name} to fall asleep"), ASLEEP_WITHIN, || {
        shim.container(&name).is_some_and(|row| row.state == State::Sleeping)
    });
    prometheus.wait_for("forge_shim_containers{job=\"forge-shim\",state=\"sleeping\"}", |v| {
        v >= 1.0
    });
    let memory = prometheus.wait_for(
        &format!("forge_shim_container_memory_bytes{{job=\"forge-shim\",name=\"{name}\",state=\"sleeping\"}}"),
        |v| v > 0.0,
    );
    assert_eq!(memory["metric"]["class"], "sleepy", "{memory}");
    let limit = prometheus.wait_for(
        &format!("forge_shim_container_memory_limit_bytes{{job=\"forge-shim\",name=\"{name}\"}}"),
        |v| v > 0.0,
    );
    assert_eq!(sample_value(&limit), 64.0 * 1024.0 * 1024.0, "{limit}");
    let cpus = prometheus.wait_for(
        &format!("forge_shim_container_cpu_limit_cores{{job=\"forge-shim\",name=\"{name}\"}}"),
        |v| v > 0.0,
    );
    assert_eq!(sample_value(&cpus), 0.5, "{cpus}");
    let sleeps = prometheus.wait_for(
        "forge_shim_sleep_seconds_count{job=\"forge-shim\",class=\"sleepy\",priority=\"normal\"}",
        |v| v >= 1.0,
    );
    assert_eq!(sleeps["metric"]["class"], "sleepy", "{sleeps}");

    // exec wakes it; the wake is counted under its class and priority.
    shim.docker(&["exec", &name, "true"]).assert_success("docker exec");
    let wake = prometheus.wait_for(
        "forge_shim_wake_seconds_count{job=\"forge-shim\",class=\"sleepy\",priority=\"normal\",from=\"sleeping\"}",
        |v| v >= 1.0,
    );
    assert_eq!(wake["metric"]["priority"], "normal", "{wake}");
    prometheus.wait_for(
        "forge_shim_asleep_seconds_count{job=\"forge-shim\",class=\"sleepy\"}",
        |v| v >= 1.0,
    );
    prometheus.wait_for(
        "sum(forge_shim_responses_total{job=\"forge-shim\",code=\"2xx\"})",
        |v| v >= 1.0,
    );
    prometheus.wait_for("forge_shim_host_memory_bytes{job=\"forge-shim\",kind=\"total\"}", |v| {
        v > 0.0
    });

    // Every forge_shim_ series the rules use is one Prometheus has scraped
    // from this shim.
    let scraped: Vec<String> = serde_json::from_value(prometheus.api("label/__name__/values")).unwrap();
    let used = series_in_rules();
    assert!(used.len() >= 8, "too few series found in the rules: {used:?}");
    let unknown: Vec<&String> = used.iter().filter(|name| !scraped.contains(name)).collect();
    assert!(
        unknown.is_empty(),
        "the rules use series the shim does not expose: {unknown:?}; scraped: {scraped:?}"
    );

    // The rules, loaded into this server, evaluate without error.
    let mut last = serde_json::Value::Null;
    wait_until("every rule to have been evaluated", SEEN_WITHIN, || {
        last = prometheus.api("rules");
        let rules: Vec<&serde_json::Value> = last["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().into_iter().flatten())
            .collect();
        if let Some(bad) = rules.iter().find(|r| r["health"] == "err") {
            panic!("a rule fails against the real series: {bad}");
        }
        rules.len() >= 14 && rules.iter().all(|r| r["health"] == "ok")
    });
    // The shim is up and nothing failed: no alert about the shim itself may
    // fire. (The host's alerts and the wake-time one depend on how loaded
    // this machine is, so they are not judged here.)
    let firing = prometheus.query("ALERTS{alertstate=\"firing\"}");
    for alert in &firing {
        let alertname = alert["metric"]["alertname"].as_str().unwrap_or_default();
        assert!(
            alertname.starts_with("ForgeShimHost") || alertname == "ForgeShimSlowWakeNormalPriority",
            "unexpected firing alert with a healthy shim: {alert}"
        );
    }
    shim.assert_no_panic();
}

/// The listener serves `GET /metrics` (and the dashboard's fixed paths,
/// tests/dashboard.rs) and nothing else: no Docker API path
/// (the answer is the shim's 404, and dockerd never sees the request), no
/// other method; and a port that cannot be bound stops the shim at start,
/// socket removed, instead of running without it.
#[test]
fn the_metrics_listener_never_serves_the_docker_api() {
    require_dockerd();
    let names = Names::new("prometheus-never");
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let shim = Shim::start(&shim_config(&names, metrics));

    let (status, head, body) = get(metrics, "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(body.contains("# TYPE forge_shim_containers gauge"), "{body}");

    for path in [
        "/containers/json",
        "/v1.41/containers/json",
        "/_ping",
        "/version",
        "/_forge/v1/health",
        "/index.html",
    ] {
        let (status, _, body) = get(metrics, path);
        assert_eq!(status, 404, "GET {path}: {body}");
        let message: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            message["message"].as_str().unwrap().starts_with("forge-shim: "),
            "GET {path}: {body}"
        );
    }
    for method in ["POST", "PUT", "DELETE"] {
        let (status, head, _) = http(
            metrics,
            &format!("{method} /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n"),
        );
        assert_eq!(status, 405, "{method} /metrics: {head}");
        assert!(head.to_ascii_lowercase().contains("allow: get, head"), "{head}");
    }
    // A create sent to the listener creates nothing.
    let never = names.name("never");
    let body = format!("{{\"Image\":\"{BUSYBOX}\",\"Cmd\":[\"true\"]}}");
    let (status, _, answer) = http(
        metrics,
        &format!(
            "POST /containers/create?name={never} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status, 404, "{answer}");
    let inspect = direct_docker(&["inspect", &never]);
    assert!(!inspect.status.success(), "the listener created {never}");

    // Idle connections cannot pile up: past the listener's cap
    // (MAX_CONNECTIONS, 16) they are closed at once, the others when no
    // request head came in time. The shim never holds more than the cap
    // (its descriptors are counted while they close), docker through the
    // shim works meanwhile, and scraping works after.
    let baseline = shim.open_fds();
    let idle: Vec<TcpStream> = (0..48)
        .map(|_| TcpStream::connect(metrics).expect("connect to the metrics listener"))
        .collect();
    for stream in &idle {
        stream.set_nonblocking(true).unwrap();
    }
    let mut closed = vec![false; idle.len()];
    let mut most_fds = 0;
    wait_until(
        "every idle connection to be closed by the shim",
        Duration::from_secs(60),
        || {
            most_fds = most_fds.max(shim.open_fds());
            for (i, mut stream) in idle.iter().enumerate() {
                let mut byte = [0u8; 1];
                match stream.read(&mut byte) {
                    Ok(0) => closed[i] = true,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed[i] = true,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Ok(_) => panic!("idle connection {i} got an answer to no request"),
                    Err(e) => panic!("idle connection {i}: {e}"),
                }
            }
            closed.iter().all(|c| *c)
        },
    );
    assert!(
        most_fds <= baseline + 16 + 8,
        "the shim held {most_fds} descriptors for 48 idle metrics connections (from {baseline})"
    );
    drop(idle);
    shim.docker(&["ps", "-q"])
        .assert_success("docker ps after the metrics listener was flooded");
    wait_until("a scrape to work again", Duration::from_secs(60), || {
        try_get(metrics, "/metrics") == Some(200)
    });

    // A second shim asked for the same (taken) port does not start.
    let socket = shim.dir().join("second.sock");
    let mut second = Command::new(SHIM_BIN);
    second
        .args(["serve", "--config"])
        .arg(shim.config_path())
        .arg("--listen")
        .arg(&socket)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    let out = run_with_timeout(second, Duration::from_secs(60));
    assert!(!out.status.success(), "a second shim started on a taken metrics port");
    let stderr = out.stderr_text();
    assert!(
        stderr.contains("metrics.listen") && stderr.contains(&metrics.to_string()),
        "{stderr}"
    );
    assert!(!socket.exists(), "the refused shim left its socket behind");
    shim.assert_no_panic();
}

/// `promtool check rules` and `promtool test rules` pass on the example
/// rules (that their series are real is checked against a live scrape in
/// `prometheus_scrapes_the_shim`).
#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let check = run_with_timeout(
        {
            let mut cmd = Command::new("promtool");
            cmd.args(["check", "rules"]).arg(repo_path(RULES)).stdin(Stdio::null());
            cmd
        },
        Duration::from_secs(60),
    );
    check.assert_success("promtool check rules");
    assert!(check.stdout_text().contains("SUCCESS"), "{}", check.stdout_text());
    let test = run_with_timeout(
        {
            let mut cmd = Command::new("promtool");
            cmd.args(["test", "rules"])
                .arg(repo_path(RULES_TEST))
                .stdin(Stdio::null());
            cmd
        },
        Duration::from_secs(60),
    );
    test.assert_success("promtool test rules");
    assert!(test.stdout_text().contains("SUCCESS"), "{}", test.stdout_text());
}
