//! The operator's commands that talk to a running shim through its socket:
//! `status`, `sleep`, `wake`. They use the shim's own API under
//! `/_forge/v1/`, so they work wherever the socket is reachable.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::{UnixConnector, Uri};
use serde_json::Value;

/// Calls `method path` on the shim at `socket` and returns the JSON answer,
/// or the shim's `message` as an error.
pub async fn call(socket: &Path, method: Method, path: &str) -> anyhow::Result<Value> {
    let client: Client<UnixConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(UnixConnector);
    let uri: http::Uri = Uri::new(socket, path).into();
    let request = Request::builder().method(method).uri(uri).body(Empty::new())?;
    let response = client
        .request(request)
        .await
        .with_context(|| format!("cannot reach forge-shim at {}", socket.display()))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let value: Value =
        serde_json::from_slice(&body).with_context(|| format!("forge-shim answered {status} with no JSON"))?;
    if !status.is_success() {
        let message = value.get("message").and_then(Value::as_str).unwrap_or("(no message)");
        bail!("{message}");
    }
    Ok(value)
}

pub async fn status(socket: &Path, json: bool) -> anyhow::Result<()> {
    let rows = call(socket, Method::GET, "/_forge/v1/containers").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<28} {:<10} {:<12} {:>9} {:>10} {:>10} {:>6} {:>10}  ORIGIN",
        "NAME", "CLASS", "STATE", "IDLE", "MEM RUN", "MEM SLEEP", "WAKES", "LAST WAKE"
    );
    for row in rows.as_array().into_iter().flatten() {
        let text = |key: &str| row.get(key).and_then(Value::as_str).unwrap_or("-").to_string();
        let mib = |key: &str| {
            row.get(key)
                .and_then(Value::as_u64)
                .map(|b| format!("{:.1}M", b as f64 / (1 << 20) as f64))
                .unwrap_or_else(|| "-".into())
        };
        let idle = row.get("idle_for_s").and_then(Value::as_f64).unwrap_or(0.0);
        let last_wake = row
            .pointer("/last_wake/latency_ms")
            .and_then(Value::as_f64)
            .map(|ms| format!("{ms:.1}ms"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<28} {:<10} {:<12} {:>8.0}s {:>10} {:>10} {:>6} {:>10}  {}",
            truncate(&text("name"), 28),
            text("class"),
            text("state"),
            idle,
            mib("memory_running"),
            mib("memory_asleep"),
            row.get("wakes").and_then(Value::as_u64).unwrap_or(0),
            last_wake,
            origin_marker(row.get("origin").and_then(Value::as_str))
        );
        if let Some(why) = row.get("deep_sleep_blocked").and_then(Value::as_str) {
            println!("  not deep-slept: {why}");
        }
    }
    // A shim without bypass detection has no such endpoint: nothing to add.
    if let Ok(bypasses) = call(socket, Method::GET, "/_forge/v1/bypasses").await {
        print_bypasses(&bypasses);
    }
    Ok(())
}

/// The ORIGIN column: `BYPASS` stands out; the rest is quiet.
fn origin_marker(origin: Option<&str>) -> &str {
    match origin {
        Some("bypass") => "BYPASS",
        Some("shim") => "shim",
        Some("pre_existing") => "before",
        Some("out_of_scope") => "other",
        _ => "-",
    }
}

/// The containers created around the shim, after the table.
fn print_bypasses(bypasses: &Value) {
    let list: Vec<&Value> = bypasses["containers"].as_array().into_iter().flatten().collect();
    if list.is_empty() {
        return;
    }
    println!();
    println!(
        "{} container(s) created straight on dockerd, around the shim (bypass.action: {}):",
        list.len(),
        bypasses["action"].as_str().unwrap_or("report")
    );
    for record in list {
        let text = |key: &str| record[key].as_str().unwrap_or("-").to_string();
        let id: String = text("id").chars().take(12).collect();
        println!("  BYPASS {} ({id}, {}): {}", text("name"), text("image"), text("note"));
    }
}

/// `forge-shim sleep|wake NAME…`: one call per container; every failure is
/// reported, and the command fails if any did.
pub async fn transition(socket: &Path, verb: &str, names: &[String]) -> anyhow::Result<()> {
    let mut failed = 0;
    for name in names {
        let path = format!("/_forge/v1/containers/{}/{verb}", encode(name));
        match call(socket, Method::POST, &path).await {
            Ok(value) => {
                let state = value.pointer("/container/state").and_then(Value::as_str).unwrap_or("?");
                let changed = value.get("changed").and_then(Value::as_bool).unwrap_or(false);
                println!("{name}: {state}{}", if changed { "" } else { " (unchanged)" });
            }
            Err(e) => {
                eprintln!("{name}: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} failed", names.len());
    }
    Ok(())
}

fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        text.chars().take(width - 1).chain(std::iter::once('…')).collect()
    }
}

/// The shim's socket: `--socket`, else `FORGE_SHIM_SOCKET`, else the
/// config's `listen`.
pub fn socket_path(flag: Option<PathBuf>, config_listen: &Path) -> PathBuf {
    flag.or_else(|| std::env::var_os("FORGE_SHIM_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| config_listen.to_path_buf())
}
