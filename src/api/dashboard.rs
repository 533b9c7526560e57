//! The dashboard on the metrics listener (`metrics.listen`): a page at `/`
//! with the seed's five views (service states, resource trends,
//! performance, cost, health), its script and style, the charting library
//! it draws with (Chart.js, vendored under `assets/dashboard/vendor/`), and
//! `GET /dashboard.json`, the snapshot the page polls.
//!
//! Everything is embedded in the binary: an operator's browser needs no
//! network beyond the listener. The snapshot is built from the very text
//! `/metrics` serves (rendered, then read back by [`parse_exposition`]) and
//! from the rows of `/_forge/v1/containers`, so the page can never show a
//! figure Prometheus would not. Read-only: nothing here changes a container
//! or reaches dockerd beyond a `/_ping`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::Api;
use crate::body::{bytes_response, ProxyBody};
use crate::lifecycle::StatusRow;
use crate::metrics::{ContainerSample, StateLabel};

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("../../assets/dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../../assets/dashboard/dashboard.css");
/// Chart.js 4.6.1 (MIT), the npm package's `dist/chart.umd.min.js` as
/// published; README "Dashboard" records its checksum.
const CHART_JS: &str = include_str!("../../assets/dashboard/vendor/chart.umd.min.js");
const CHART_JS_LICENSE: &str = include_str!("../../assets/dashboard/vendor/chart.js-LICENSE.md");

/// How long the snapshot waits for dockerd's `/_ping` before it says
/// "unreachable": a hung dockerd must not hang the page.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The pages the listener serves besides `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Index,
    Snapshot,
    Script,
    Style,
    ChartJs,
    ChartJsLicense,
}

impl Page {
    /// Every path, for the listener's 404 message and the tests.
    pub const PATHS: [&'static str; 6] = [
        "/",
        "/dashboard.json",
        "/assets/dashboard.js",
        "/assets/dashboard.css",
        "/assets/chart.umd.min.js",
        "/assets/chart.js-LICENSE.md",
    ];

    /// The page at exactly `path`, or none: no prefix, no index fallback.
    pub fn at(path: &str) -> Option<Page> {
        Some(match path {
            "/" => Page::Index,
            "/dashboard.json" => Page::Snapshot,
            "/assets/dashboard.js" => Page::Script,
            "/assets/dashboard.css" => Page::Style,
            "/assets/chart.umd.min.js" => Page::ChartJs,
            "/assets/chart.js-LICENSE.md" => Page::ChartJsLicense,
            _ => return None,
        })
    }
}

/// The answer to a `GET` (or `HEAD`) of `page`.
pub async fn serve(api: &Api, page: Page) -> Response<ProxyBody> {
    let (content_type, body): (&'static str, Bytes) = match page {
        Page::Index => ("text/html; charset=utf-8", Bytes::from_static(INDEX_HTML.as_bytes())),
        Page::Script => (
            "text/javascript; charset=utf-8",
            Bytes::from_static(DASHBOARD_JS.as_bytes()),
        ),
        Page::Style => ("text/css; charset=utf-8", Bytes::from_static(DASHBOARD_CSS.as_bytes())),
        Page::ChartJs => (
            "text/javascript; charset=utf-8",
            Bytes::from_static(CHART_JS.as_bytes()),
        ),
        Page::ChartJsLicense => (
            "text/plain; charset=utf-8",
            Bytes::from_static(CHART_JS_LICENSE.as_bytes()),
        ),
        Page::Snapshot => {
            let value = snapshot(api).await;
            (
                "application/json",
                Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
            )
        }
    };
    let mut response = bytes_response(StatusCode::OK, content_type, body);
    let headers = response.headers_mut();
    // The page runs only its own files: no inline script, no other origin,
    // no framing by another site.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(match page {
            Page::Snapshot | Page::Index => "no-store",
            _ => "max-age=300",
        }),
    );
    response
}

/// `GET /dashboard.json`: what the page draws, one poll's worth.
async fn snapshot(api: &Api) -> Value {
    let (samples, host) = match &api.lifecycle {
        Some(lifecycle) => lifecycle.metric_samples().await,
        None => Default::default(),
    };
    let text = api.metrics.render(&samples, &host);
    let series = parse_exposition(&text);
    let rows = api.lifecycle.as_ref().map(|l| l.status()).unwrap_or_default();
    let dockerd = match tokio::time::timeout(PING_TIMEOUT, api.docker.ping()).await {
        Ok(Ok(())) => json!({ "reachable": true }),
        Ok(Err(e)) => json!({ "reachable": false, "error": e.to_string() }),
        Err(_) => json!({ "reachable": false, "error": format!("no answer to /_ping within {PING_TIMEOUT:?}") }),
    };
    build_snapshot(&series, &rows, &samples, dockerd, unix_ms_now())
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The snapshot from its parts (pure): the series of the exposition but the
/// per-container families (those are in `containers`, one object each), the
/// counts by state as `forge_shim_containers` gives them, and each tracked
/// container's row joined with its sample.
fn build_snapshot(
    series: &[Sample],
    rows: &[StatusRow],
    samples: &[ContainerSample],
    dockerd: Value,
    at_unix_ms: u64,
) -> Value {
    let mut counts = Map::new();
    for sample in series.iter().filter(|s| s.name == "forge_shim_containers") {
        if let Some(state) = sample.labels.get("state") {
            // A count: an integer in JSON, as it is in the exposition.
            counts.insert(state.clone(), json!(sample.value.max(0.0) as u64));
        }
    }
    let containers: Vec<Value> = rows
        .iter()
        .map(|row| {
            let sample = samples.iter().find(|s| s.name == row.name);
            json!({
                "name": row.name,
                "class": row.class,
                "state": row.state,
                "counted_as": sample.map(|s| state_name(s.state)),
                "sleeps": row.sleeps,
                "idle_timeout_s": row.idle_timeout_s,
                "idle_for_s": row.idle_for_s,
                "since_unix_ms": row.since_unix_ms,
                "in_use": row.in_use,
                "wakes": row.wakes,
                "last_wake_ms": row.last_wake.as_ref().map(|w| w.latency_ms),
                "memory_bytes": sample.and_then(|s| s.memory_bytes),
                "memory_limit_bytes": sample.and_then(|s| s.memory_limit_bytes),
                "memory_running_bytes": row.memory_running,
                "memory_saved_bytes": sample.and_then(|s| s.memory_saved_bytes),
                "cpu_seconds": sample.and_then(|s| s.cpu_seconds),
                "cpu_limit_cores": sample.and_then(|s| s.cpu_limit_cores),
            })
        })
        .collect();
    let series: Vec<Value> = series
        .iter()
        .filter(|s| !s.name.starts_with("forge_shim_container_"))
        .map(|s| json!({ "name": s.name, "labels": s.labels, "value": finite(s.value) }))
        .collect();
    json!({
        "version": crate::VERSION,
        "at_unix_ms": at_unix_ms,
        "dockerd": dockerd,
        "counts": counts,
        "containers": containers,
        "series": series,
    })
}

/// The `state` label `forge_shim_containers` counts a sample under.
fn state_name(state: StateLabel) -> &'static str {
    match state {
        StateLabel::Running => "running",
        StateLabel::Sleeping => "sleeping",
        StateLabel::DeepSleep => "deep_sleep",
        StateLabel::UserPaused => "user_paused",
        StateLabel::Stopped => "stopped",
    }
}

/// JSON has no infinities or NaN: they are `null`.
fn finite(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

/// One sample line of a text exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a Prometheus or OpenMetrics text exposition: `# ` lines
/// skipped, label values unescaped (`\\`, `\"`, `\n`), a timestamp after
/// the value ignored. A line that does not parse is left out.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(parse_sample)
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let closed_at = loop {
            let (at, c) = chars.next()?;
            match c {
                '}' if key.is_empty() => break at,
                ',' | ' ' if key.is_empty() => continue,
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        };
        rest = &inner[closed_at + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample { name, labels, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{HostSample, Metrics, WakeLabels};

    #[test]
    fn every_path_is_a_page_and_nothing_else_is() {
        for path in Page::PATHS {
            assert!(Page::at(path).is_some(), "{path}");
        }
        for path in [
            "",
            "/index.html",
            "/dashboard.json/",
            "/assets/",
            "/assets/../metrics",
            "/containers/json",
            "/_forge/v1/health",
            "//",
        ] {
            assert_eq!(Page::at(path), None, "{path}");
        }
    }

    #[test]
    fn the_page_loads_only_embedded_files() {
        // Every script and style the page names is one the listener serves,
        // and it names no other origin (no CDN).
        for needle in ["src=\"", "href=\""] {
            for (at, _) in INDEX_HTML.match_indices(needle) {
                let target: String = INDEX_HTML[at + needle.len()..]
                    .chars()
                    .take_while(|c| *c != '"')
                    .collect();
                assert!(
                    target == "/metrics" || Page::at(&target).is_some(),
                    "the page loads {target}, which is not served"
                );
            }
        }
        assert!(!INDEX_HTML.contains("//"), "the page names another origin");
        assert!(
            CHART_JS.starts_with("/*!\n * Chart.js v4.6.1"),
            "vendored Chart.js version"
        );
        assert!(CHART_JS_LICENSE.contains("MIT License"));
    }

    #[test]
    fn parses_the_shims_own_exposition() {
        let metrics = Metrics::new();
        metrics
            .wake_seconds
            .get_or_create(&WakeLabels {
                class: "we\"ird\\class".into(),
                priority: "normal".into(),
                from: "sleeping".into(),
            })
            .observe(0.03);
        let sample = |name: &str, state| ContainerSample {
            name: name.into(),
            class: "sleepy".into(),
            state,
            memory_bytes: Some(4096),
            memory_limit_bytes: None,
            cpu_seconds: Some(0.25),
            cpu_limit_cores: None,
            memory_saved_bytes: Some(100),
        };
        let samples = vec![sample("a", StateLabel::Sleeping), sample("b", StateLabel::Running)];
        let text = metrics.render(&samples, &HostSample::default());
        let parsed = parse_exposition(&text);
        let find = |name: &str, label: (&str, &str)| {
            parsed
                .iter()
                .find(|s| s.name == name && s.labels.get(label.0).map(String::as_str) == Some(label.1))
                .unwrap_or_else(|| panic!("no {name} {label:?} in {parsed:?}"))
                .value
        };
        assert_eq!(find("forge_shim_containers", ("state", "sleeping")), 1.0);
        assert_eq!(find("forge_shim_containers", ("state", "stopped")), 0.0);
        assert_eq!(find("forge_shim_wake_seconds_bucket", ("le", "0.05")), 1.0);
        assert_eq!(find("forge_shim_wake_seconds_bucket", ("le", "0.025")), 0.0);
        assert_eq!(find("forge_shim_wake_seconds_bucket", ("le", "+Inf")), 1.0);
        assert_eq!(find("forge_shim_wake_seconds_count", ("class", "we\"ird\\class")), 1.0);
        assert_eq!(find("forge_shim_container_cpu_seconds_total", ("name", "a")), 0.25);
        assert!(parsed
            .iter()
            .all(|s| !s.name.is_empty() && !s.name.contains(['{', ' '])));
        // Every sample line of the text is read.
        let lines = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(parsed.len(), lines, "{text}");

        let snapshot = build_snapshot(&parsed, &[], &samples, json!({"reachable": true}), 1);
        assert_eq!(snapshot["counts"]["sleeping"], 1);
        assert_eq!(snapshot["counts"]["running"], 1);
        assert_eq!(snapshot["counts"]["deep_sleep"], 0);
        let series = snapshot["series"].as_array().unwrap();
        assert!(series
            .iter()
            .all(|s| !s["name"].as_str().unwrap().starts_with("forge_shim_container_")));
        assert!(series
            .iter()
            .any(|s| s["name"] == "forge_shim_wake_seconds_bucket" && s["labels"]["le"] == "+Inf"));
    }

    /// A dashboard poll and a scrape at once (`worker_threads: 0`) each
    /// see whole gauges, never the other's half-filled families.
    #[test]
    fn renders_at_once_each_see_every_container_once() {
        let metrics = std::sync::Arc::new(Metrics::new());
        let samples: Vec<ContainerSample> = (0..3)
            .map(|i| ContainerSample {
                name: format!("c{i}"),
                class: "normal".into(),
                state: StateLabel::Running,
                memory_bytes: Some(10),
                memory_limit_bytes: None,
                cpu_seconds: None,
                cpu_limit_cores: None,
                memory_saved_bytes: None,
            })
            .collect();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (metrics, samples) = (metrics.clone(), samples.clone());
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        let parsed = parse_exposition(&metrics.render(&samples, &HostSample::default()));
                        let running = parsed
                            .iter()
                            .find(|s| {
                                s.name == "forge_shim_containers"
                                    && s.labels.get("state").map(String::as_str) == Some("running")
                            })
                            .map(|s| s.value);
                        assert_eq!(running, Some(3.0));
                        let memory = parsed
                            .iter()
                            .filter(|s| s.name == "forge_shim_container_memory_bytes")
                            .count();
                        assert_eq!(memory, 3);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("a render saw another's half-filled gauges");
        }
    }

    #[test]
    fn odd_lines_are_left_out() {
        assert_eq!(
            parse_exposition("# EOF\n\nx{a=\"1\" 2\ny{a=1} 2\nz notanumber\n"),
            vec![]
        );
        assert_eq!(
            parse_exposition("up 1 1700000000\n"),
            vec![Sample {
                name: "up".into(),
                labels: BTreeMap::new(),
                value: 1.0
            }]
        );
    }
}
