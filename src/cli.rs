//! The operator's commands that talk to a running shim through its socket:
//! `status`, `sleep`, `wake`, `reload`. They use the shim's own API under
//! `/_forge/v1/`, so they work wherever the socket is reachable.
//!
//! Which socket ([`find_socket`]): `--socket`, then `FORGE_SHIM_SOCKET`,
//! then `DOCKER_HOST` and then the current docker context when what they
//! name answers `/_forge/v1/health` (so a `DOCKER_HOST` at plain dockerd is
//! passed over), then, when neither is set, `/var/run/docker.sock` on the
//! same condition (the shim after `install --takeover`), then the config's
//! `listen`.

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
    let rows = match call(socket, Method::GET, "/_forge/v1/containers").await {
        Ok(rows) => rows,
        // Sleep and wake off: no table, but bypasses and hardening still.
        Err(e) if !json && e.to_string().contains("auto_sleep.enabled: false") => {
            println!("sleep and wake are off (auto_sleep.enabled: false): no containers tracked");
            print_after_table(socket).await;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
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
    print_after_table(socket).await;
    Ok(())
}

/// Bypasses and hardening failures, after the table. A shim without one of
/// them has no such endpoint: nothing to add.
async fn print_after_table(socket: &Path) {
    if let Ok(bypasses) = call(socket, Method::GET, "/_forge/v1/bypasses").await {
        print_bypasses(&bypasses);
    }
    if let Ok(failures) = call(socket, Method::GET, "/_forge/v1/hardening").await {
        print_hardening_failures(&failures);
    }
}

/// The hardened containers that failed because of a fitted rule.
fn print_hardening_failures(failures: &Value) {
    let list: Vec<&Value> = failures["failures"].as_array().into_iter().flatten().collect();
    if list.is_empty() {
        return;
    }
    println!();
    println!(
        "{} hardened container(s) failed because of a fitted rule (their images' next creates go without it):",
        list.len()
    );
    for failure in list {
        let text = |key: &str| failure[key].as_str().unwrap_or("-").to_string();
        println!(
            "  {} ({}): {}: {}",
            text("name"),
            text("image"),
            text("rule"),
            text("evidence")
        );
    }
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

/// Where a socket to try came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    DockerHost,
    Context,
    /// `/var/run/docker.sock`, where the docker CLI goes with no
    /// `DOCKER_HOST` and no context: the shim after `install --takeover`.
    DockerDefault,
    Listen,
}

impl Source {
    /// Whether the socket is taken as named, or only once it answers as a
    /// shim (`DOCKER_HOST` and a docker context may name dockerd itself).
    fn probed(self) -> bool {
        matches!(self, Source::DockerHost | Source::Context | Source::DockerDefault)
    }
}

/// What the environment says, read once (pure input to [`candidates`]).
#[derive(Debug, Default)]
pub struct Hints {
    pub flag: Option<PathBuf>,
    pub env_socket: Option<PathBuf>,
    pub docker_host: Option<String>,
    /// The current docker context's docker endpoint, when one is set.
    pub context_host: Option<String>,
    pub listen: PathBuf,
}

impl Hints {
    /// Reads `FORGE_SHIM_SOCKET`, `DOCKER_HOST` and the docker CLI's
    /// current context (`DOCKER_CONTEXT`, else `currentContext` in
    /// `$DOCKER_CONFIG/config.json`, default `~/.docker`).
    pub fn from_env(flag: Option<PathBuf>, listen: &Path) -> Hints {
        let docker_config = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")));
        let context_host = docker_config.and_then(|dir| {
            let name = std::env::var("DOCKER_CONTEXT")
                .ok()
                .or_else(|| current_context(&std::fs::read_to_string(dir.join("config.json")).ok()?))?;
            context_endpoint(&dir.join("contexts").join("meta"), &name)
        });
        Hints {
            flag,
            env_socket: std::env::var_os("FORGE_SHIM_SOCKET").map(PathBuf::from),
            docker_host: std::env::var("DOCKER_HOST").ok(),
            context_host,
            listen: listen.to_path_buf(),
        }
    }
}

/// The docker CLI's socket when nothing names another.
pub const DOCKER_DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The sockets to try, in order. The first two are final: a socket named
/// by the operator is used as named, answering or not.
pub fn candidates(hints: &Hints) -> Vec<(PathBuf, Source)> {
    if let Some(flag) = &hints.flag {
        return vec![(flag.clone(), Source::Flag)];
    }
    if let Some(env) = &hints.env_socket {
        return vec![(env.clone(), Source::Env)];
    }
    let mut out = Vec::new();
    if let Some(path) = hints.docker_host.as_deref().and_then(unix_path) {
        out.push((path, Source::DockerHost));
    }
    if let Some(path) = hints.context_host.as_deref().and_then(unix_path) {
        if !out.iter().any(|(p, _)| *p == path) {
            out.push((path, Source::Context));
        }
    }
    if hints.docker_host.is_none() && hints.context_host.is_none() {
        out.push((PathBuf::from(DOCKER_DEFAULT_SOCKET), Source::DockerDefault));
    }
    out.push((hints.listen.clone(), Source::Listen));
    out
}

/// The path of a `unix://` Docker host; `None` for tcp, ssh and the rest.
fn unix_path(host: &str) -> Option<PathBuf> {
    let path = host.strip_prefix("unix://")?;
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// `currentContext` of the docker CLI's `config.json`; `default` (or none)
/// means no context is in use.
fn current_context(config_json: &str) -> Option<String> {
    let value: Value = serde_json::from_str(config_json).ok()?;
    let name = value.get("currentContext")?.as_str()?;
    (!name.is_empty() && name != "default").then(|| name.to_string())
}

/// The docker endpoint of context `name`, from the CLI's context store:
/// one `meta.json` per context under `meta_dir` (its folder is a hash of
/// the name; the name is read from the file).
fn context_endpoint(meta_dir: &Path, name: &str) -> Option<String> {
    std::fs::read_dir(meta_dir).ok()?.flatten().find_map(|entry| {
        let text = std::fs::read_to_string(entry.path().join("meta.json")).ok()?;
        let meta: Value = serde_json::from_str(&text).ok()?;
        (meta.get("Name")?.as_str()? == name)
            .then(|| meta.pointer("/Endpoints/docker/Host")?.as_str().map(str::to_string))
            .flatten()
    })
}

/// The shim's socket: the first of [`candidates`] that is final or answers
/// `/_forge/v1/health` as a shim; the config's `listen` when none does.
pub async fn find_socket(hints: &Hints) -> PathBuf {
    for (path, source) in candidates(hints) {
        if !source.probed() || is_shim(&path).await {
            return path;
        }
    }
    hints.listen.clone()
}

/// Whether a shim answers on `socket` (dockerd answers 404 to
/// `/_forge/v1/health`).
async fn is_shim(socket: &Path) -> bool {
    let probe = call(socket, Method::GET, "/_forge/v1/health");
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), probe).await,
        Ok(Ok(value)) if value.get("version").is_some()
    )
}

/// `forge-shim reload`: the running shim reads its config file again.
pub async fn reload(socket: &Path) -> anyhow::Result<()> {
    let value = call(socket, Method::POST, "/_forge/v1/reload").await?;
    let report: crate::ReloadReport = serde_json::from_value(value).context("forge-shim's reload answer")?;
    println!("reloaded {}", report.source);
    if report.refitted > 0 || report.woken > 0 {
        println!(
            "containers given their new policy: {} (idle timeout changed), sleepers woken: {}",
            report.refitted, report.woken
        );
    }
    if !report.restart_needed.is_empty() {
        println!(
            "not applied until a restart (running values kept): {}",
            report.restart_needed.join(", ")
        );
    }
    Ok(())
}

/// `forge-shim profile IMAGE [--seconds N]`: the running shim learns
/// `image` from a throwaway container and prints what it learned and what
/// the image's next create gets.
pub async fn profile(socket: &Path, image: &str, seconds: u64, json: bool) -> anyhow::Result<()> {
    let image_query: String =
        percent_encoding::utf8_percent_encode(image, percent_encoding::NON_ALPHANUMERIC).to_string();
    let path = format!("/_forge/v1/profile?image={image_query}&seconds={seconds}");
    let value = call(socket, Method::POST, &path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_profile(&value);
    }
    Ok(())
}

/// A profile (as `/_forge/v1/profile` answers) as text.
pub fn print_profile(value: &Value) {
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    println!(
        "{} ({}): watched {}s over {} run(s){}",
        text(&value["image"]),
        text(&value["image_id"]).chars().take(19).collect::<String>(),
        value["observed_seconds"],
        value["runs"],
        if value["ready"].as_bool() == Some(true) {
            ""
        } else {
            ", still learning"
        }
    );
    if let Some(paths) = value["paths"].as_object() {
        for (path, learned) in paths {
            println!(
                "  writes {path}: {} ({})",
                text(&learned["kind"]),
                text(&learned["why"])
            );
        }
    }
    println!("  runs as: {}", value["user"]);
    println!("  listens on: {}", value["ports"]);
    if let Some(peak) = value["memory_peak"].as_u64() {
        let recommended = value["recommended_memory"].as_u64().unwrap_or(0);
        println!(
            "  peak memory: {} MiB (recommended limit {} MiB)",
            peak >> 20,
            recommended >> 20
        );
    }
    if let Some(millicores) = value["cpu_millicores"].as_u64() {
        println!("  CPU: {millicores} millicores on average");
    }
    println!("next create of the image:");
    for rule in ["read_only_rootfs", "non_root", "cap_drop"] {
        let fit = &value["next_create"][rule];
        println!(
            "  {rule}: {} {}",
            text(&fit["state"]),
            if fit["detail"].is_null() {
                String::new()
            } else {
                text(&fit["detail"])
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints() -> Hints {
        Hints {
            listen: PathBuf::from("/run/forge-shim/docker.sock"),
            ..Default::default()
        }
    }

    #[test]
    fn the_flag_and_the_variable_are_final() {
        let mut h = hints();
        h.docker_host = Some("unix:///tmp/shim.sock".into());
        h.env_socket = Some("/tmp/env.sock".into());
        assert_eq!(candidates(&h), vec![(PathBuf::from("/tmp/env.sock"), Source::Env)]);
        h.flag = Some("/tmp/flag.sock".into());
        assert_eq!(candidates(&h), vec![(PathBuf::from("/tmp/flag.sock"), Source::Flag)]);
    }

    #[test]
    fn docker_host_then_context_then_listen() {
        let mut h = hints();
        h.docker_host = Some("unix:///tmp/a.sock".into());
        h.context_host = Some("unix:///tmp/b.sock".into());
        assert_eq!(
            candidates(&h),
            vec![
                (PathBuf::from("/tmp/a.sock"), Source::DockerHost),
                (PathBuf::from("/tmp/b.sock"), Source::Context),
                (PathBuf::from("/run/forge-shim/docker.sock"), Source::Listen),
            ]
        );
        // A tcp host, or a context on the same socket, adds nothing.
        h.docker_host = Some("tcp://127.0.0.1:2375".into());
        h.context_host = Some("ssh://host".into());
        assert_eq!(
            candidates(&h),
            vec![(PathBuf::from("/run/forge-shim/docker.sock"), Source::Listen)]
        );
        h.docker_host = Some("unix:///tmp/a.sock".into());
        h.context_host = Some("unix:///tmp/a.sock".into());
        assert_eq!(candidates(&h).len(), 2);
        assert!(Source::DockerHost.probed() && Source::Context.probed() && !Source::Listen.probed());
    }

    #[test]
    fn with_nothing_set_the_docker_default_is_tried_as_the_cli_would() {
        assert_eq!(
            candidates(&hints()),
            vec![
                (PathBuf::from("/var/run/docker.sock"), Source::DockerDefault),
                (PathBuf::from("/run/forge-shim/docker.sock"), Source::Listen),
            ]
        );
        assert!(Source::DockerDefault.probed(), "dockerd itself is passed over");
    }

    #[test]
    fn the_context_store_is_read_as_the_docker_cli_writes_it() {
        assert_eq!(current_context(r#"{"currentContext":"forge"}"#), Some("forge".into()));
        assert_eq!(current_context(r#"{"currentContext":"default"}"#), None);
        assert_eq!(current_context(r#"{"auths":{}}"#), None);
        assert_eq!(current_context("not json"), None);
        let dir = tempfile::tempdir().unwrap();
        for (folder, name, host) in [
            ("aaa", "other", "unix:///x.sock"),
            ("bbb", "forge", "unix:///shim.sock"),
        ] {
            std::fs::create_dir_all(dir.path().join(folder)).unwrap();
            let meta = serde_json::json!({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host}}});
            std::fs::write(dir.path().join(folder).join("meta.json"), meta.to_string()).unwrap();
        }
        assert_eq!(context_endpoint(dir.path(), "forge"), Some("unix:///shim.sock".into()));
        assert_eq!(context_endpoint(dir.path(), "missing"), None);
        assert_eq!(context_endpoint(&dir.path().join("nope"), "forge"), None);
    }
}
