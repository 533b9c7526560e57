//! The shim's own API under `/_forge/v1/`, on the same socket as the Docker
//! API. One routing table; each endpoint is one function.

use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::StreamBody;
use tokio::sync::broadcast;

use crate::error::{json_response, ShimError};
use crate::lifecycle::Lifecycle;
use crate::proxy::{BoxError, ProxyBody, Shim};

pub async fn handle(shim: &Shim, rest: &str, request: Request<ProxyBody>) -> Result<Response<ProxyBody>, ShimError> {
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match (request.method(), segments.as_slice()) {
        (&Method::GET, ["health"]) => health(shim).await,
        (&Method::GET, ["containers"]) => containers(shim),
        (&Method::GET, ["events"]) => events(shim),
        (&Method::GET, ["metrics"]) => Ok(metrics(shim)),
        (&Method::POST, ["containers", reference, "sleep"]) => sleep(shim, reference).await,
        (&Method::POST, ["containers", reference, "wake"]) => wake(shim, reference).await,
        (_, ["health" | "containers" | "events" | "metrics"]) | (_, ["containers", _, "sleep" | "wake"]) => {
            Err(ShimError::MethodNotAllowed(request.method().to_string()))
        }
        _ => Err(ShimError::NotFound(format!("/_forge/v1/{rest}"))),
    }
}

fn lifecycle(shim: &Shim) -> Result<&Lifecycle, ShimError> {
    shim.inner
        .lifecycle
        .as_ref()
        .ok_or_else(|| ShimError::NotFound("sleep and wake are off (auto_sleep.enabled: false)".into()))
}

/// `GET /_forge/v1/metrics`: Prometheus text exposition.
fn metrics(shim: &Shim) -> Response<ProxyBody> {
    let rows = shim.inner.lifecycle.as_ref().map(Lifecycle::status).unwrap_or_default();
    let text = shim.inner.metrics.render(&rows, &shim.inner.stats);
    Response::builder()
        .status(StatusCode::OK)
        .header(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .header(http::header::CONTENT_LENGTH, text.len())
        .body(crate::error::full_body(text))
        .expect("static response parts are valid")
}

/// `GET /_forge/v1/containers`: every tracked container and its state.
fn containers(shim: &Shim) -> Result<Response<ProxyBody>, ShimError> {
    let rows = lifecycle(shim)?.status();
    let value = serde_json::to_value(rows).map_err(|e| ShimError::Internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, &value))
}

/// `GET /_forge/v1/events`: transitions as they happen, one JSON object per
/// line, until the client goes away.
fn events(shim: &Shim) -> Result<Response<ProxyBody>, ShimError> {
    let receiver = lifecycle(shim)?.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(transition) => {
                    let mut line = serde_json::to_vec(&transition).unwrap_or_default();
                    line.push(b'\n');
                    return Some((Ok::<_, BoxError>(Frame::data(Bytes::from(line))), receiver));
                }
                // A slow reader skips what it missed rather than stall others.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/x-ndjson")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("static response parts are valid"))
}

async fn sleep(shim: &Shim, reference: &str) -> Result<Response<ProxyBody>, ShimError> {
    let lifecycle = lifecycle(shim)?;
    let id = resolve(lifecycle, reference)?;
    let slept = lifecycle.sleep(&id, "api", true).await?;
    let row = lifecycle.status().into_iter().find(|r| r.id == id);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "changed": slept, "container": row }),
    ))
}

async fn wake(shim: &Shim, reference: &str) -> Result<Response<ProxyBody>, ShimError> {
    let lifecycle = lifecycle(shim)?;
    let id = resolve(lifecycle, reference)?;
    let was_asleep = lifecycle.is_asleep(&id);
    lifecycle.wake(&id, "api").await?;
    let row = lifecycle.status().into_iter().find(|r| r.id == id);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "changed": was_asleep, "container": row }),
    ))
}

fn resolve(lifecycle: &Lifecycle, reference: &str) -> Result<String, ShimError> {
    lifecycle
        .resolve(reference)
        .ok_or_else(|| ShimError::NotFound(format!("no such container: {reference}")))
}

/// `GET /_forge/v1/health`: 200 with whether dockerd answers `/_ping`.
async fn health(shim: &Shim) -> Result<Response<ProxyBody>, ShimError> {
    let dockerd = match ping_dockerd(shim).await {
        Ok(()) => json!({ "reachable": true }),
        Err(e) => json!({ "reachable": false, "error": e.to_string() }),
    };
    let stats = &shim.inner.stats;
    let body = json!({
        "status": "ok",
        "version": crate::VERSION,
        "upstream": shim.inner.upstream_path.display().to_string(),
        "dockerd": dockerd,
        "connections_open": stats.connections_open.load(Ordering::Relaxed),
        "connections_total": stats.connections_total.load(Ordering::Relaxed),
        "requests_total": stats.requests_total.load(Ordering::Relaxed),
        "requests_fast_path": stats.requests_fast_path.load(Ordering::Relaxed),
    });
    Ok(json_response(StatusCode::OK, &body))
}

async fn ping_dockerd(shim: &Shim) -> Result<(), crate::docker::DockerError> {
    shim.inner.docker.ping().await
}
