//! The disguise: to clients of the shim, a container the lifecycle holds
//! paused reads as running. dockerd's own socket and `forge-shim status`
//! still tell the truth; only the two answers that tell a container's state
//! are rewritten, and only while the lifecycle holds at least one sleeper
//! (otherwise they take the fast path as dockerd's bytes):
//!
//! - `GET /containers/json` (`docker ps`, compose's convergence): a
//!   sleeper's `State` reads `running` (compose restarts a `paused` one on
//!   `up -d`), its `Status` `Up 5 minutes (asleep)` (with its pre-sleep
//!   health, `Up 5 minutes (healthy) (asleep)`), and a `Health` summary, if
//!   dockerd sent one, its pre-sleep health. A `status` filter is matched
//!   against the state shown: `status=running` lists sleepers (the shim asks
//!   dockerd for `paused` too, then drops the user's paused containers),
//!   `status=paused` does not. A `health` filter is matched against the
//!   health shown: dockerd's `unhealthy` for a frozen sleeper would match
//!   `health=unhealthy` and miss `health=healthy`, so while a sleeper is
//!   held such a list takes two asks of dockerd: the list as asked, without
//!   the sleepers, and the list without the `health` filter, of which only
//!   the sleepers whose pre-sleep health matches are kept.
//! - `GET /containers/{id}/json` (`docker inspect`, compose's health
//!   waits): `State.Status` `running`, `State.Paused` false, `State.Health`
//!   as it was right before the pause (dockerd makes a frozen container
//!   `unhealthy`, moby#46203).
//!
//! A container the user paused is not the shim's and stays `paused`. The
//! rewrite reads dockerd's answer whole (at most [`MAX_ANSWER`]), and sends
//! dockerd's bytes unchanged when no sleeper is in it.

use std::collections::HashMap;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use super::{ConnState, Proxy};
use crate::body::{full_body, read_limited, set_exact_length, ProxyBody};
use crate::error::ShimError;
pub use crate::lifecycle::Sleeper;
use crate::route::{query_value, Endpoint, Route};

/// The largest answer rewritten: a `ps -a` of tens of thousands of
/// containers.
pub const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// Sleepers by full id.
pub type Sleepers = HashMap<String, Sleeper>;

/// Forwards a `ps` or inspect and disguises the shim's sleepers in the
/// answer; without a sleeper, forwards it untouched.
pub async fn handle(
    proxy: &Proxy,
    conn: &ConnState,
    route: &Route,
    request: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, ShimError> {
    let sleepers = match proxy.inner.lifecycle.as_ref() {
        Some(lifecycle) if lifecycle.has_sleepers() => lifecycle.sleepers(),
        _ => return proxy.forward(conn, request).await,
    };
    let list = route.endpoint == Endpoint::ContainerList;
    let deep = sleepers.values().any(|s| s.deep.is_some());
    let (request, wanted) = if list {
        widen_list(request, deep)?
    } else {
        (request, None)
    };
    let health = match list {
        true => health_filter(&request)?,
        false => None,
    };
    let (unhealthy_view, health) = match health {
        Some((health, without)) => {
            let all = proxy.forward(conn, without).await?;
            if all.status() != StatusCode::OK {
                return Ok(all);
            }
            (Some(read_answer(all.into_body()).await?), Some(health))
        }
        None => (None, None),
    };
    let limit = query_value(request.uri().query(), "limit").and_then(|l| l.parse::<usize>().ok());
    let response = proxy.forward(conn, request).await?;
    if response.status() != StatusCode::OK {
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    let bytes = read_answer(body).await?;
    let rewritten = match (unhealthy_view, health) {
        (Some(all), Some(health)) => merge_health(&bytes, &all, &sleepers, wanted.as_ref(), &health, limit),
        _ if list => rewrite_list(&bytes, &sleepers, wanted.as_ref()),
        _ => rewrite_inspect(&bytes, &sleepers),
    };
    let bytes = match rewritten {
        Some(new) => {
            set_exact_length(&mut parts.headers, new.len());
            Bytes::from(new)
        }
        None => bytes,
    };
    Ok(Response::from_parts(parts, full_body(bytes)))
}

async fn read_answer(body: ProxyBody) -> Result<Bytes, ShimError> {
    read_limited(body, MAX_ANSWER).await.map_err(|e| ShimError::Unchecked {
        what: "dockerd's answer".into(),
        message: e.to_string(),
    })
}

/// The states a `status` filter asks for, as the client sent them.
pub type Wanted = Vec<String>;

/// The states dockerd lists when the client asks for neither `all` nor a
/// `status`: the running containers, paused and restarting ones included.
const RUNNING_STATES: [&str; 3] = ["running", "paused", "restarting"];

/// A list whose filters ask for `running` but not `paused` is sent to
/// dockerd asking for `paused` too (a sleeper is paused there), and, while
/// a deep sleeper is held, `exited` too (it is stopped there). A list of
/// running containers only (no `all`, no `status`, no `limit`) is sent as
/// `all=1` while a deep sleeper is held. The states the client asked for
/// are returned, to filter the answer by.
fn widen_list(mut request: Request<ProxyBody>, deep: bool) -> Result<(Request<ProxyBody>, Option<Wanted>), ShimError> {
    let query = request.uri().query().map(str::to_string);
    let filters = query_value(query.as_deref(), "filters");
    if let Some((wanted, widened)) = filters.as_deref().and_then(|f| widen_filters(f, deep)) {
        if let Some(filters) = widened {
            *request.uri_mut() = with_filters(request.uri(), &filters)?;
        }
        return Ok((request, Some(wanted)));
    }
    if deep && !lists_stopped(query.as_deref()) {
        *request.uri_mut() = with_all(request.uri())?;
        return Ok((request, Some(RUNNING_STATES.iter().map(|s| s.to_string()).collect())));
    }
    Ok((request, None))
}

/// Whether dockerd lists stopped containers for this query (a `status`
/// filter aside, handled by [`widen_filters`]): `all` set as dockerd reads
/// a boolean, or a `limit` above zero.
fn lists_stopped(query: Option<&str>) -> bool {
    let all = query_value(query, "all").is_some_and(|v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        )
    });
    let limit = query_value(query, "limit").and_then(|l| l.trim().parse::<i64>().ok());
    all || limit.is_some_and(|l| l > 0)
}

/// `uri` with `all=1` in place of any `all` it had.
fn with_all(uri: &Uri) -> Result<Uri, ShimError> {
    let mut query: Vec<String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && query_value(Some(pair), "all").is_none())
        .map(str::to_string)
        .collect();
    query.push("all=1".into());
    format!("{}?{}", uri.path(), query.join("&"))
        .parse()
        .map_err(|e| ShimError::BadRequest(format!("cannot forward the list's query: {e}")))
}

/// `uri` with its `filters` replaced by `filters`.
fn with_filters(uri: &Uri, filters: &str) -> Result<Uri, ShimError> {
    let encoded = utf8_percent_encode(filters, NON_ALPHANUMERIC).to_string();
    let query: Vec<String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if is_filters_key(key) {
                format!("filters={encoded}")
            } else {
                pair.to_string()
            }
        })
        .collect();
    format!("{}?{}", uri.path(), query.join("&"))
        .parse()
        .map_err(|e| ShimError::BadRequest(format!("cannot forward the list's filters: {e}")))
}

/// A list with a `health` filter: the health values asked for, and the
/// same list request without that filter.
fn health_filter(request: &Request<ProxyBody>) -> Result<Option<(Wanted, Request<ProxyBody>)>, ShimError> {
    let Some(filters) = query_value(request.uri().query(), "filters") else {
        return Ok(None);
    };
    let Some((health, without)) = split_health(&filters) else {
        return Ok(None);
    };
    let mut all = Request::new(crate::body::empty_body());
    *all.method_mut() = request.method().clone();
    *all.uri_mut() = with_filters(request.uri(), &without)?;
    *all.version_mut() = request.version();
    *all.headers_mut() = request.headers().clone();
    Ok(Some((health, all)))
}

/// The values of one filter in either of dockerd's spellings (`["a"]` or
/// `{"a": true}`); `None` when there are none or the shape is not one
/// dockerd takes.
fn filter_values(filter: &Value) -> Option<Wanted> {
    let values: Wanted = match filter {
        Value::Array(values) => values.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Value::Object(values) => values
            .iter()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .map(|(k, _)| k.clone())
            .collect(),
        _ => return None,
    };
    (!values.is_empty()).then_some(values)
}

/// From a `filters` JSON (either spelling): the `health` values asked for
/// and the filters without them. `None`: no `health` filter (or one
/// dockerd will refuse anyway).
pub fn split_health(filters: &str) -> Option<(Wanted, String)> {
    let mut value: Value = serde_json::from_str(filters).ok()?;
    let object = value.as_object_mut()?;
    let health = filter_values(object.get("health")?)?;
    object.remove("health");
    Some((health, value.to_string()))
}

/// A list asked with a `health` filter while sleepers are held: `asked`
/// is dockerd's answer to it, `all` its answer without the filter. The
/// sleepers come from `all`, kept when their pre-sleep health is asked
/// for; every other container from `asked`. Newest first, as dockerd
/// lists, at most `limit`.
pub fn merge_health(
    asked: &[u8],
    all: &[u8],
    sleepers: &Sleepers,
    wanted: Option<&Wanted>,
    health: &Wanted,
    limit: Option<usize>,
) -> Option<Vec<u8>> {
    let Value::Array(asked) = serde_json::from_slice(asked).ok()? else {
        return None;
    };
    let Value::Array(all) = serde_json::from_slice(all).ok()? else {
        return None;
    };
    let held = |entry: &Value| shown_in_list(sleepers, entry).is_some();
    let health_shown = |entry: &Value| {
        shown_in_list(sleepers, entry)
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.get("Status"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("none")
            .to_string()
    };
    let mut merged: Vec<Value> = asked.into_iter().filter(|e| !held(e)).collect();
    merged.extend(
        all.into_iter()
            .filter(|e| held(e) && health.iter().any(|h| *h == health_shown(e))),
    );
    let created = |e: &Value| e.get("Created").and_then(Value::as_i64).unwrap_or(0);
    merged.sort_by_key(|e| std::cmp::Reverse(created(e)));
    if let Some(limit) = limit.filter(|l| *l > 0) {
        merged.truncate(limit);
    }
    let mut bytes = serde_json::to_vec(&Value::Array(merged)).ok()?;
    bytes.push(b'\n');
    Some(rewrite_list(&bytes, sleepers, wanted).unwrap_or(bytes))
}

fn is_filters_key(key: &str) -> bool {
    percent_encoding::percent_decode_str(&key.replace('+', " "))
        .decode_utf8()
        .is_ok_and(|k| k == "filters")
}

/// From a `filters` JSON (either of dockerd's two spellings): the `status`
/// values asked for, and the filters to send instead when `running` is
/// asked without `paused` (or, with `deep` sleepers held, without
/// `exited`). `None`: no `status` filter (or one dockerd will refuse
/// anyway).
pub fn widen_filters(filters: &str, deep: bool) -> Option<(Wanted, Option<String>)> {
    let mut value: Value = serde_json::from_str(filters).ok()?;
    let status = value.as_object_mut()?.get_mut("status")?;
    let wanted = filter_values(status)?;
    let has = |s: &str| wanted.iter().any(|w| w == s);
    let mut add: Vec<&str> = Vec::new();
    if has("running") && !has("paused") {
        add.push("paused");
    }
    if has("running") && deep && !has("exited") {
        add.push("exited");
    }
    if add.is_empty() {
        return Some((wanted, None));
    }
    for state in add {
        match status {
            Value::Array(values) => values.push(Value::from(state)),
            Value::Object(values) => {
                values.insert(state.into(), Value::Bool(true));
            }
            _ => return None,
        }
    }
    Some((wanted, Some(value.to_string())))
}

/// The sleeper a list entry or inspect shows, if it shows one as dockerd
/// holds it asleep: paused, or (a deep sleeper) exited. A sleeper dockerd
/// shows otherwise (a wake just ended) is left as dockerd tells it.
fn shown<'a>(sleepers: &'a Sleepers, id: Option<&str>, state: Option<&str>) -> Option<&'a Sleeper> {
    let sleeper = sleepers.get(id?)?;
    match state? {
        "paused" => Some(sleeper),
        "exited" if sleeper.deep.is_some() => Some(sleeper),
        _ => None,
    }
}

/// An entry of `GET /containers/json`'s answer as a sleeper it shows.
fn shown_in_list<'a>(sleepers: &'a Sleepers, entry: &Value) -> Option<&'a Sleeper> {
    shown(
        sleepers,
        entry.get("Id").and_then(Value::as_str),
        entry.get("State").and_then(Value::as_str),
    )
}

/// A duration as dockerd words it in `Up …` (go-units' `HumanDuration`).
pub fn human_duration(d: std::time::Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    match () {
        _ if seconds < 1 => "Less than a second".into(),
        _ if seconds == 1 => "1 second".into(),
        _ if seconds < 60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// Rewrites a `GET /containers/json` answer; `None` when nothing in it
/// changes (dockerd's bytes go as they are).
pub fn rewrite_list(bytes: &[u8], sleepers: &Sleepers, wanted: Option<&Wanted>) -> Option<Vec<u8>> {
    let mentions = sleepers.keys().any(|id| contains(bytes, id.as_bytes()));
    if !mentions && wanted.is_none() {
        return None;
    }
    let Value::Array(entries) = serde_json::from_slice(bytes).ok()? else {
        return None;
    };
    let before = entries.len();
    let mut changed = false;
    let mut kept = Vec::with_capacity(before);
    for mut entry in entries {
        if let Some(sleeper) = shown_in_list(sleepers, &entry) {
            if let Some(object) = entry.as_object_mut() {
                disguise_summary(object, sleeper);
                changed = true;
            }
        }
        if let Some(object) = entry.as_object_mut() {
            if let Some(wanted) = wanted {
                let state = object.get("State").and_then(Value::as_str).unwrap_or("");
                if !wanted.iter().any(|w| w == state) {
                    continue;
                }
            }
        }
        kept.push(entry);
    }
    if !changed && kept.len() == before {
        return None;
    }
    let mut out = serde_json::to_vec(&Value::Array(kept)).ok()?;
    out.push(b'\n');
    Some(out)
}

/// One list entry of a sleeper, as a running container's. A deep
/// sleeper's `Up …` counts from its last start, and its `Ports` are the
/// ones the shim holds for it.
fn disguise_summary(entry: &mut Map<String, Value>, sleeper: &Sleeper) {
    let stopped = entry.get("State").and_then(Value::as_str) == Some("exited");
    entry.insert("State".into(), Value::from("running"));
    let health = sleeper.health.as_ref();
    let status = health.and_then(|h| h.get("Status")).and_then(Value::as_str);
    if let (true, Some(deep)) = (stopped, &sleeper.deep) {
        entry.insert("Status".into(), Value::from(format!("Up {}", human_duration(deep.up))));
        let no_ports = entry.get("Ports").and_then(Value::as_array).is_none_or(Vec::is_empty);
        if no_ports && !deep.ports.is_empty() {
            let ports: Vec<Value> = deep
                .ports
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "IP": p.host_ip.to_string(),
                        "PrivatePort": p.container_port,
                        "PublicPort": p.host_port,
                        "Type": "tcp",
                    })
                })
                .collect();
            entry.insert("Ports".into(), Value::Array(ports));
        }
    }
    if let Some(Value::String(text)) = entry.get_mut("Status") {
        let up = text.strip_suffix(" (Paused)").unwrap_or(text).to_string();
        *text = match status {
            Some("starting") => format!("{up} (health: starting) (asleep)"),
            Some(status) if !status.is_empty() && status != "none" => format!("{up} ({status}) (asleep)"),
            _ => format!("{up} (asleep)"),
        };
    }
    // API 1.52 summaries carry a health summary of their own.
    if let (Some(summary), Some(health)) = (entry.get_mut("Health"), health) {
        if let Some(summary) = summary.as_object_mut() {
            for key in ["Status", "FailingStreak"] {
                if let Some(value) = health.get(key) {
                    summary.insert(key.into(), value.clone());
                }
            }
        }
    }
}

/// Rewrites a `GET /containers/{id}/json` answer of a sleeper; `None` for
/// any other container.
pub fn rewrite_inspect(bytes: &[u8], sleepers: &Sleepers) -> Option<Vec<u8>> {
    if !sleepers.keys().any(|id| contains(bytes, id.as_bytes())) {
        return None;
    }
    let mut value: Value = serde_json::from_slice(bytes).ok()?;
    let id = value.get("Id").and_then(Value::as_str).map(str::to_string);
    let state = value.get_mut("State")?.as_object_mut()?;
    let status = match state.get("Paused").and_then(Value::as_bool) {
        Some(true) => Some("paused".to_string()),
        _ => state.get("Status").and_then(Value::as_str).map(str::to_string),
    };
    let sleeper = shown(sleepers, id.as_deref(), status.as_deref())?;
    if status.as_deref() == Some("exited") {
        // A deep sleeper: as a running container's state reads.
        state.insert("Restarting".into(), Value::Bool(false));
        state.insert("ExitCode".into(), Value::from(0));
        state.insert("Error".into(), Value::from(""));
        state.insert("FinishedAt".into(), Value::from("0001-01-01T00:00:00Z"));
    }
    state.insert("Status".into(), Value::from("running"));
    state.insert("Paused".into(), Value::Bool(false));
    state.insert("Running".into(), Value::Bool(true));
    if let Some(health) = &sleeper.health {
        state.insert("Health".into(), health.clone());
    }
    let mut out = serde_json::to_vec(&value).ok()?;
    out.push(b'\n');
    Some(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SLEEPER: &str = "aaaa000000000000000000000000000000000000000000000000000000000001";
    const USER: &str = "bbbb000000000000000000000000000000000000000000000000000000000002";
    const AWAKE: &str = "cccc000000000000000000000000000000000000000000000000000000000003";

    fn sleepers(health: Option<Value>) -> Sleepers {
        HashMap::from([(SLEEPER.to_string(), Sleeper { health, deep: None })])
    }

    fn list() -> Vec<u8> {
        serde_json::to_vec(&json!([
            {"Id": SLEEPER, "Names": ["/web"], "State": "paused", "Status": "Up 5 minutes (Paused)"},
            {"Id": USER, "Names": ["/mine"], "State": "paused", "Status": "Up 2 hours (Paused)"},
            {"Id": AWAKE, "Names": ["/db"], "State": "running", "Status": "Up 3 hours (healthy)"},
        ]))
        .unwrap()
    }

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_sleeper_in_the_list_reads_running_and_asleep_and_a_user_pause_stays_paused() {
        let out = parse(&rewrite_list(&list(), &sleepers(None), None).unwrap());
        assert_eq!(out[0]["State"], "running");
        assert_eq!(out[0]["Status"], "Up 5 minutes (asleep)");
        assert_eq!(out[1]["State"], "paused");
        assert_eq!(out[1]["Status"], "Up 2 hours (Paused)");
        assert_eq!(out[2], parse(&list())[2]);
        let healthy = sleepers(Some(json!({"Status": "healthy", "FailingStreak": 0})));
        let out = parse(&rewrite_list(&list(), &healthy, None).unwrap());
        assert_eq!(out[0]["Status"], "Up 5 minutes (healthy) (asleep)");
    }

    #[test]
    fn a_list_with_no_sleeper_is_not_rewritten() {
        let list = serde_json::to_vec(&json!([{"Id": AWAKE, "State": "running", "Status": "Up 1 second"}])).unwrap();
        assert_eq!(rewrite_list(&list, &sleepers(None), None), None);
        // A sleeper dockerd no longer shows paused (a wake just ended) is
        // left as dockerd tells it.
        let list = serde_json::to_vec(&json!([{"Id": SLEEPER, "State": "running", "Status": "Up 1 second"}])).unwrap();
        assert_eq!(rewrite_list(&list, &sleepers(None), None), None);
    }

    #[test]
    fn status_filters_match_the_state_shown() {
        let (wanted, widened) = widen_filters(r#"{"status":["running"],"label":["a=b"]}"#, false).unwrap();
        assert_eq!(wanted, ["running"]);
        assert_eq!(
            parse(widened.unwrap().as_bytes()),
            json!({"status": ["running", "paused"], "label": ["a=b"]})
        );
        let (_, widened) = widen_filters(r#"{"status":{"running":true}}"#, false).unwrap();
        assert_eq!(
            parse(widened.unwrap().as_bytes()),
            json!({"status": {"running": true, "paused": true}})
        );
        let running = rewrite_list(&list(), &sleepers(None), Some(&wanted)).unwrap();
        let names: Vec<_> = parse(&running)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Id"].clone())
            .collect();
        assert_eq!(names, [json!(SLEEPER), json!(AWAKE)]);
        let (paused, widened) = widen_filters(r#"{"status":["paused"]}"#, false).unwrap();
        assert_eq!(widened, None);
        let out = rewrite_list(&list(), &sleepers(None), Some(&paused)).unwrap();
        let names: Vec<_> = parse(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Id"].clone())
            .collect();
        assert_eq!(names, [json!(USER)]);
        assert_eq!(widen_filters(r#"{"label":["a"]}"#, false), None);
    }

    #[test]
    fn a_sleepers_inspect_reads_running_with_its_health_before_the_sleep() {
        let inspect = serde_json::to_vec(&json!({
            "Id": SLEEPER,
            "State": {"Status": "paused", "Running": true, "Paused": true,
                      "StartedAt": "2026-12-03T06:00:00Z",
                      "Health": {"Status": "unhealthy", "FailingStreak": 3, "Log": []}},
        }))
        .unwrap();
        let health = json!({"Status": "healthy", "FailingStreak": 0, "Log": []});
        let out = parse(&rewrite_inspect(&inspect, &sleepers(Some(health.clone()))).unwrap());
        assert_eq!(out["State"]["Status"], "running");
        assert_eq!(out["State"]["Paused"], false);
        assert_eq!(out["State"]["Running"], true);
        assert_eq!(out["State"]["Health"], health);
        assert_eq!(out["State"]["StartedAt"], "2026-12-03T06:00:00Z");
        // Another paused container is left alone.
        let other = serde_json::to_vec(&json!({"Id": USER, "State": {"Status": "paused", "Paused": true}})).unwrap();
        assert_eq!(rewrite_inspect(&other, &sleepers(None)), None);
    }

    #[test]
    fn a_health_filter_is_split_off_in_either_spelling() {
        let (health, rest) = split_health(r#"{"health":["healthy"],"label":["a=b"]}"#).unwrap();
        assert_eq!(health, vec!["healthy"]);
        assert_eq!(parse(rest.as_bytes()), json!({"label": ["a=b"]}));
        let (health, rest) = split_health(r#"{"health":{"unhealthy":true,"none":false}}"#).unwrap();
        assert_eq!(health, vec!["unhealthy"]);
        assert_eq!(parse(rest.as_bytes()), json!({}));
        for none in [
            r#"{"label":["a=b"]}"#,
            r#"{"health":[]}"#,
            r#"{"health":"healthy"}"#,
            "not json",
            "[]",
        ] {
            assert_eq!(split_health(none), None, "{none}");
        }
    }

    /// dockerd's answers for `health=healthy` while web (healthy before its
    /// pause, "unhealthy" to dockerd now) sleeps: the asked list lacks it,
    /// the list without the filter has everything.
    #[test]
    fn a_sleeper_matches_a_health_filter_by_its_health_before_the_pause() {
        let healthy = sleepers(Some(json!({"Status": "healthy", "FailingStreak": 0})));
        let entry = |id: &str, state: &str, status: &str, created: i64| json!({"Id": id, "State": state, "Status": status, "Created": created});
        let asked = serde_json::to_vec(&json!([entry(AWAKE, "running", "Up 3 hours (healthy)", 100)])).unwrap();
        let all = serde_json::to_vec(&json!([
            entry(SLEEPER, "paused", "Up 5 minutes (Paused)", 300),
            entry(USER, "paused", "Up 2 hours (Paused)", 200),
            entry(AWAKE, "running", "Up 3 hours (healthy)", 100),
        ]))
        .unwrap();
        let wanted = vec!["healthy".to_string()];
        let out = parse(&merge_health(&asked, &all, &healthy, None, &wanted, None).unwrap());
        let ids: Vec<&str> = out
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![SLEEPER, AWAKE], "newest first; the user's pause is not added");
        assert_eq!(out[0]["State"], "running");
        assert_eq!(out[0]["Status"], "Up 5 minutes (healthy) (asleep)");
        let out = parse(&merge_health(&asked, &all, &healthy, None, &wanted, Some(1)).unwrap());
        assert_eq!(out.as_array().unwrap().len(), 1, "limit");

        // `health=unhealthy`: dockerd lists the frozen sleeper; it is not.
        let asked = serde_json::to_vec(&json!([entry(SLEEPER, "paused", "Up 5 minutes (Paused)", 300)])).unwrap();
        let wanted = vec!["unhealthy".to_string()];
        let out = parse(&merge_health(&asked, &all, &healthy, None, &wanted, None).unwrap());
        assert_eq!(out, json!([]));
        // A sleeper with no health check matches `none`.
        let none = vec!["none".to_string()];
        let out = parse(&merge_health(b"[]", &all, &sleepers(None), None, &none, None).unwrap());
        assert_eq!(out[0]["Id"], SLEEPER);
        // With a `status` filter too.
        let running = vec!["running".to_string()];
        let paused = vec!["paused".to_string()];
        let out = parse(&merge_health(b"[]", &all, &sleepers(None), Some(&paused), &none, None).unwrap());
        assert_eq!(out, json!([]));
        let out = parse(&merge_health(b"[]", &all, &sleepers(None), Some(&running), &none, None).unwrap());
        assert_eq!(out[0]["Id"], SLEEPER);
    }

    fn deep_sleepers(health: Option<Value>) -> Sleepers {
        let deep = crate::lifecycle::Deep {
            up: std::time::Duration::from_secs(3 * 3600),
            ports: vec![crate::docker::PublishedPort {
                host_ip: "0.0.0.0".parse().unwrap(),
                host_port: 18080,
                container_port: 80,
            }],
        };
        HashMap::from([(
            SLEEPER.to_string(),
            Sleeper {
                health,
                deep: Some(deep),
            },
        )])
    }

    /// A deep sleeper is stopped on dockerd: it reads as up since its last
    /// start, with the ports the shim holds, and its pre-sleep health.
    #[test]
    fn a_deep_sleeper_reads_running_in_the_list_and_in_inspect() {
        let list = serde_json::to_vec(&json!([
            {"Id": SLEEPER, "State": "exited", "Status": "Exited (143) 2 minutes ago", "Ports": []},
            {"Id": AWAKE, "State": "exited", "Status": "Exited (0) 1 hour ago", "Ports": []},
        ]))
        .unwrap();
        let healthy = deep_sleepers(Some(json!({"Status": "healthy", "FailingStreak": 0})));
        let out = parse(&rewrite_list(&list, &healthy, None).unwrap());
        assert_eq!(out[0]["State"], "running");
        assert_eq!(out[0]["Status"], "Up 3 hours (healthy) (asleep)");
        assert_eq!(
            out[0]["Ports"],
            json!([{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"}])
        );
        assert_eq!(out[1], parse(&list)[1], "a container that really exited stays exited");
        // A paused-only sleeper that dockerd shows exited is not disguised.
        assert_eq!(rewrite_list(&list, &sleepers(None), None), None);

        let inspect = serde_json::to_vec(&json!({
            "Id": SLEEPER,
            "State": {"Status": "exited", "Running": false, "Paused": false, "Restarting": false,
                      "ExitCode": 143, "Error": "", "StartedAt": "2026-12-03T06:00:00Z",
                      "FinishedAt": "2026-12-03T09:00:00Z",
                      "Health": {"Status": "unhealthy", "FailingStreak": 0, "Log": []}},
        }))
        .unwrap();
        let out = parse(&rewrite_inspect(&inspect, &healthy).unwrap());
        let state = &out["State"];
        assert_eq!(state["Status"], "running");
        assert_eq!(state["Running"], true);
        assert_eq!(state["Paused"], false);
        assert_eq!(state["ExitCode"], 0);
        assert_eq!(state["FinishedAt"], "0001-01-01T00:00:00Z");
        assert_eq!(state["StartedAt"], "2026-12-03T06:00:00Z");
        assert_eq!(state["Health"]["Status"], "healthy");
        assert_eq!(rewrite_inspect(&inspect, &sleepers(None)), None);
    }

    #[test]
    fn with_a_deep_sleeper_held_lists_ask_dockerd_for_stopped_containers_too() {
        // `status=running` asks for `exited` too, and drops what really exited.
        let (wanted, widened) = widen_filters(r#"{"status":["running"]}"#, true).unwrap();
        assert_eq!(
            parse(widened.unwrap().as_bytes()),
            json!({"status": ["running", "paused", "exited"]})
        );
        let list = serde_json::to_vec(&json!([
            {"Id": SLEEPER, "State": "exited", "Status": "Exited (143) 2 minutes ago"},
            {"Id": AWAKE, "State": "exited", "Status": "Exited (0) 1 hour ago"},
        ]))
        .unwrap();
        let out = parse(&rewrite_list(&list, &deep_sleepers(None), Some(&wanted)).unwrap());
        assert_eq!(out.as_array().unwrap().len(), 1);
        assert_eq!(out[0]["Id"], SLEEPER);
        // `status=exited` no longer lists it.
        let (exited, widened) = widen_filters(r#"{"status":["exited"]}"#, true).unwrap();
        assert_eq!(widened, None);
        let out = parse(&rewrite_list(&list, &deep_sleepers(None), Some(&exited)).unwrap());
        assert_eq!(out[0]["Id"], AWAKE);
        assert_eq!(out.as_array().unwrap().len(), 1);

        // Plain `docker ps` lists stopped containers only with `all` or a limit.
        for (query, stopped) in [
            ("", false),
            ("all=0", false),
            ("all=false", false),
            ("all=1", true),
            ("all=true", true),
            ("limit=3", true),
            ("limit=0", false),
            ("limit=-1", false),
        ] {
            assert_eq!(lists_stopped(Some(query)), stopped, "{query}");
        }
        let uri: Uri = "/v1.41/containers/json?all=0&size=1".parse().unwrap();
        assert_eq!(with_all(&uri).unwrap(), "/v1.41/containers/json?size=1&all=1");
        let uri: Uri = "/containers/json".parse().unwrap();
        assert_eq!(with_all(&uri).unwrap(), "/containers/json?all=1");
    }

    #[test]
    fn durations_read_as_dockerd_words_them() {
        use std::time::Duration;
        for (seconds, text) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (59 * 60, "59 minutes"),
            (3600, "About an hour"),
            (5400, "2 hours"),
            (47 * 3600, "47 hours"),
            (48 * 3600, "2 days"),
            (14 * 24 * 3600, "2 weeks"),
            (60 * 24 * 3600, "2 months"),
            (730 * 24 * 3600, "2 years"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(seconds)), text, "{seconds} s");
        }
    }
}
