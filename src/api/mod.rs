//! The shim's own API under `/_forge/v1/`, on the same socket as the Docker
//! API. One routing table; each endpoint is one function.

use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use serde_json::json;

use crate::error::{json_response, ShimError};
use crate::proxy::{ProxyBody, Shim};

pub async fn handle(
    shim: &Shim,
    rest: &str,
    request: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, ShimError> {
    match (request.method(), rest) {
        (&Method::GET, "health") => health(shim).await,
        (_, "health") => Err(ShimError::MethodNotAllowed(request.method().to_string())),
        _ => Err(ShimError::NotFound(format!("/_forge/v1/{rest}"))),
    }
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
    });
    Ok(json_response(StatusCode::OK, &body))
}

async fn ping_dockerd(shim: &Shim) -> Result<(), ShimError> {
    let mut sender = shim.connect_upstream(false).await?;
    let request = Request::get("/_ping")
        .header(http::header::HOST, "docker")
        .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
        .expect("static request is valid");
    let upstream_err = |source| ShimError::Upstream {
        path: shim.inner.upstream_path.clone(),
        source,
    };
    let response = sender.send_request(request).await.map_err(upstream_err)?;
    if response.status() != StatusCode::OK {
        return Err(ShimError::Internal(format!(
            "dockerd answered /_ping with {}",
            response.status()
        )));
    }
    Ok(())
}
