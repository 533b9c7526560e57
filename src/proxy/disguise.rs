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
use crate::route::{query_value, Endpoint, Route};

/// The largest answer rewritten: a `ps -a` of tens of thousands of
/// containers.
pub const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// Sleepers by full id, each with its `State.Health` from before the pause.
pub type Sleepers = HashMap<String, Option<Value>>;

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
    let (request, wanted) = if list {
        widen_status_filter(request)?
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

/// A list whose filters ask for `running` but not `paused` is sent to
/// dockerd asking for `paused` too (a sleeper is paused there); the states
/// the client asked for are returned, to filter the answer by.
fn widen_status_filter(mut request: Request<ProxyBody>) -> Result<(Request<ProxyBody>, Option<Wanted>), ShimError> {
    let Some(query) = request.uri().query().map(str::to_string) else {
        return Ok((request, None));
    };
    let Some((wanted, widened)) = query_value(Some(&query), "filters").and_then(|f| widen_filters(&f)) else {
        return Ok((request, None));
    };
    if let Some(filters) = widened {
        *request.uri_mut() = with_filters(request.uri(), &filters)?;
    }
    Ok((request, Some(wanted)))
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

/// From a `filters` JSON (either spelling): the `health` values asked for
/// and the filters without them. `None`: no `health` filter (or one
/// dockerd will refuse anyway).
pub fn split_health(filters: &str) -> Option<(Wanted, String)> {
    let mut value: Value = serde_json::from_str(filters).ok()?;
    let object = value.as_object_mut()?;
    let health: Wanted = match object.get("health")? {
        Value::Array(values) => values.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Value::Object(values) => values
            .iter()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .map(|(k, _)| k.clone())
            .collect(),
        _ => return None,
    };
    if health.is_empty() {
        return None;
    }
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
    let held = |entry: &Value| {
        entry.get("State").and_then(Value::as_str) == Some("paused")
            && sleeper(sleepers, entry.get("Id").and_then(Value::as_str)).is_some()
    };
    let health_shown = |entry: &Value| {
        let before = sleeper(sleepers, entry.get("Id").and_then(Value::as_str))
            .cloned()
            .flatten();
        before
            .as_ref()
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
/// asked without `paused`. `None`: no `status` filter (or one dockerd will
/// refuse anyway).
pub fn widen_filters(filters: &str) -> Option<(Wanted, Option<String>)> {
    let mut value: Value = serde_json::from_str(filters).ok()?;
    let status = value.as_object_mut()?.get_mut("status")?;
    let wanted: Wanted = match &*status {
        Value::Array(values) => values.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Value::Object(values) => values
            .iter()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .map(|(k, _)| k.clone())
            .collect(),
        _ => return None,
    };
    if wanted.is_empty() {
        return None;
    }
    let has = |s: &str| wanted.iter().any(|w| w == s);
    if !has("running") || has("paused") {
        return Some((wanted, None));
    }
    match status {
        Value::Array(values) => values.push(Value::from("paused")),
        Value::Object(values) => {
            values.insert("paused".into(), Value::Bool(true));
        }
        _ => return None,
    }
    Some((wanted, Some(value.to_string())))
}

/// Whether a container of the list or inspect is a sleeper dockerd shows
/// paused.
fn sleeper<'a>(sleepers: &'a Sleepers, id: Option<&str>) -> Option<&'a Option<Value>> {
    sleepers.get(id?)
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
        if let Some(object) = entry.as_object_mut() {
            let paused = object.get("State").and_then(Value::as_str) == Some("paused");
            let id = object.get("Id").and_then(Value::as_str);
            if let (true, Some(health)) = (paused, sleeper(sleepers, id)) {
                disguise_summary(object, health.as_ref());
                changed = true;
            }
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

/// One list entry of a sleeper, as a running container's.
fn disguise_summary(entry: &mut Map<String, Value>, health: Option<&Value>) {
    entry.insert("State".into(), Value::from("running"));
    let status = health.and_then(|h| h.get("Status")).and_then(Value::as_str);
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
    let health = sleeper(sleepers, id.as_deref())?.clone();
    let state = value.get_mut("State")?.as_object_mut()?;
    if state.get("Paused").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    state.insert("Status".into(), Value::from("running"));
    state.insert("Paused".into(), Value::Bool(false));
    state.insert("Running".into(), Value::Bool(true));
    if let Some(health) = health {
        state.insert("Health".into(), health);
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
        HashMap::from([(SLEEPER.to_string(), health)])
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
        let (wanted, widened) = widen_filters(r#"{"status":["running"],"label":["a=b"]}"#).unwrap();
        assert_eq!(wanted, ["running"]);
        assert_eq!(
            parse(widened.unwrap().as_bytes()),
            json!({"status": ["running", "paused"], "label": ["a=b"]})
        );
        let (_, widened) = widen_filters(r#"{"status":{"running":true}}"#).unwrap();
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
        let (paused, widened) = widen_filters(r#"{"status":["paused"]}"#).unwrap();
        assert_eq!(widened, None);
        let out = rewrite_list(&list(), &sleepers(None), Some(&paused)).unwrap();
        let names: Vec<_> = parse(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Id"].clone())
            .collect();
        assert_eq!(names, [json!(USER)]);
        assert_eq!(widen_filters(r#"{"label":["a"]}"#), None);
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
}
