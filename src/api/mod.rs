//! The shim's own API under `/_forge/v1/`, on the same socket as the Docker
//! API. One routing table; each endpoint is one function. [`prometheus`]
//! serves the metrics endpoint and the [`dashboard`] over TCP
//! (`metrics.listen`).

pub mod dashboard;
mod hardening;
pub mod prometheus;

mod reload;

pub use hardening::HardeningApi;

pub use reload::{ReloadReport, Reloader};

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::json;
use tokio::sync::broadcast;

use crate::body::{bytes_response, json_response, BoxError, ProxyBody};
use crate::config::BypassAction;
use crate::docker::DockerApi;
use crate::error::ShimError;
use crate::lifecycle::{Lifecycle, Origins};
use crate::metrics::Metrics;

/// What the shim's API reads and acts on: not the proxy, nor the whole
/// shim.
#[derive(Clone)]
pub struct Api {
    upstream_path: PathBuf,
    docker: Arc<dyn DockerApi>,
    lifecycle: Option<Lifecycle>,
    metrics: Arc<Metrics>,
    reloader: Reloader,
    /// Which containers the shim created; `None` until [`Api::with_origins`].
    origins: Option<(Origins, BypassAction)>,
    /// Fitted hardening's profiles and failures; `None` until
    /// [`Api::with_hardening`].
    hardening: Option<HardeningApi>,
}

impl Api {
    pub fn new(
        upstream_path: PathBuf,
        docker: Arc<dyn DockerApi>,
        lifecycle: Option<Lifecycle>,
        metrics: Arc<Metrics>,
        reloader: Reloader,
    ) -> Api {
        Api {
            upstream_path,
            docker,
            lifecycle,
            metrics,
            reloader,
            origins: None,
            hardening: None,
        }
    }

    /// The shim's record of which containers it created, for the `origin`
    /// of status rows and `/_forge/v1/bypasses`.
    pub fn with_origins(mut self, origins: Origins, action: BypassAction) -> Api {
        self.origins = Some((origins, action));
        self
    }

    pub fn with_hardening(mut self, hardening: HardeningApi) -> Api {
        self.hardening = Some(hardening);
        self
    }

    fn hardening(&self) -> Result<&HardeningApi, ShimError> {
        self.hardening
            .as_ref()
            .ok_or_else(|| ShimError::NotFound("fitted hardening is not running".into()))
    }

    /// Serves `/_forge/v1/<rest>`.
    pub async fn handle(&self, rest: &str, request: Request<ProxyBody>) -> Result<Response<ProxyBody>, ShimError> {
        let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        match (request.method(), segments.as_slice()) {
            (&Method::GET, ["health"]) => self.health().await,
            (&Method::GET, ["containers"]) => self.containers(),
            (&Method::GET, ["events"]) => self.events(),
            (&Method::GET, ["metrics"]) => Ok(self.metrics().await),
            (&Method::POST, ["containers", reference, "sleep"]) => self.sleep(reference).await,
            (&Method::POST, ["containers", reference, "wake"]) => self.wake(reference).await,
            (&Method::GET, ["bypasses"]) => self.bypasses(),
            (&Method::POST, ["reload"]) => self.reload().await,
            (&Method::GET, ["profiles"]) => Ok(self.hardening()?.profiles()),
            (&Method::GET, ["hardening"]) => Ok(self.hardening()?.failures()),
            (&Method::POST, ["profile"]) => self.hardening()?.probe(request.uri().query()).await,
            (
                _,
                ["health" | "containers" | "events" | "metrics" | "reload" | "bypasses" | "profiles" | "hardening"
                | "profile"],
            )
            | (_, ["containers", _, "sleep" | "wake"]) => {
                Err(ShimError::MethodNotAllowed(request.method().to_string()))
            }
            _ => Err(ShimError::NotFound(format!("/_forge/v1/{rest}"))),
        }
    }

    /// `POST /_forge/v1/reload`: the config file read again, as on SIGHUP.
    /// A file that does not load is a 400 naming its problems; the running
    /// config is kept.
    async fn reload(&self) -> Result<Response<ProxyBody>, ShimError> {
        let report = self.reloader.reload().await.map_err(|problems| {
            ShimError::BadRequest(format!("config not reloaded, the running config is kept:\n{problems}"))
        })?;
        let value = serde_json::to_value(report).map_err(|e| ShimError::Internal(e.to_string()))?;
        Ok(json_response(StatusCode::OK, &value))
    }

    /// The reload SIGHUP runs.
    pub fn reloader(&self) -> &Reloader {
        &self.reloader
    }

    fn lifecycle(&self) -> Result<&Lifecycle, ShimError> {
        self.lifecycle
            .as_ref()
            .ok_or_else(|| ShimError::NotFound("sleep and wake are off (auto_sleep.enabled: false)".into()))
    }

    /// `GET /_forge/v1/metrics` (and `GET /metrics` on the metrics
    /// listener): Prometheus text exposition.
    pub async fn metrics(&self) -> Response<ProxyBody> {
        let (samples, host) = match &self.lifecycle {
            Some(lifecycle) => lifecycle.metric_samples().await,
            None => Default::default(),
        };
        let text = self.metrics.render(&samples, &host);
        bytes_response(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Bytes::from(text),
        )
    }

    /// `GET /_forge/v1/containers`: every tracked container and its state.
    fn containers(&self) -> Result<Response<ProxyBody>, ShimError> {
        let mut rows = self.lifecycle()?.status();
        if let Some((origins, _)) = &self.origins {
            for row in &mut rows {
                row.origin = origins.get(&row.id);
            }
        }
        let value = serde_json::to_value(rows).map_err(|e| ShimError::Internal(e.to_string()))?;
        Ok(json_response(StatusCode::OK, &value))
    }

    /// `GET /_forge/v1/bypasses`: the containers created straight on
    /// dockerd, around the shim, oldest first (lifecycle or not).
    fn bypasses(&self) -> Result<Response<ProxyBody>, ShimError> {
        let (containers, first_start, action) = match &self.origins {
            Some((origins, action)) => (origins.bypasses(), origins.first_start_unix_ms(), *action),
            None => (Vec::new(), 0, BypassAction::Report),
        };
        let body = json!({
            "action": action,
            "first_start_unix_ms": first_start,
            "unmanaged_creates_total": self.metrics.unmanaged_creates.get(),
            "containers": containers,
        });
        Ok(json_response(StatusCode::OK, &body))
    }

    /// `GET /_forge/v1/events`: transitions as they happen, one JSON object
    /// per line, until the client goes away.
    fn events(&self) -> Result<Response<ProxyBody>, ShimError> {
        let receiver = self.lifecycle()?.subscribe();
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

    async fn sleep(&self, reference: &str) -> Result<Response<ProxyBody>, ShimError> {
        let lifecycle = self.lifecycle()?;
        let id = resolve(lifecycle, reference)?;
        let slept = lifecycle.sleep(&id, "api", true).await?;
        let row = lifecycle.status().into_iter().find(|r| r.id == id);
        Ok(json_response(
            StatusCode::OK,
            &json!({ "changed": slept, "container": row }),
        ))
    }

    async fn wake(&self, reference: &str) -> Result<Response<ProxyBody>, ShimError> {
        let lifecycle = self.lifecycle()?;
        let id = resolve(lifecycle, reference)?;
        let was_asleep = lifecycle.is_asleep(&id);
        lifecycle.wake(&id, "api").await?;
        let row = lifecycle.status().into_iter().find(|r| r.id == id);
        Ok(json_response(
            StatusCode::OK,
            &json!({ "changed": was_asleep, "container": row }),
        ))
    }

    /// `GET /_forge/v1/health`: 200 with whether dockerd answers `/_ping`.
    async fn health(&self) -> Result<Response<ProxyBody>, ShimError> {
        let dockerd = match self.docker.ping().await {
            Ok(()) => json!({ "reachable": true }),
            Err(e) => json!({ "reachable": false, "error": e.to_string() }),
        };
        let metrics = &self.metrics;
        let body = json!({
            "status": "ok",
            "version": crate::VERSION,
            "upstream": self.upstream_path.display().to_string(),
            "dockerd": dockerd,
            "connections_open": metrics.connections_open.get(),
            "connections_total": metrics.connections.get(),
            "requests_total": metrics.requests.get(),
            "requests_fast_path": metrics.requests_fast_path.get(),
        });
        Ok(json_response(StatusCode::OK, &body))
    }
}

fn resolve(lifecycle: &Lifecycle, reference: &str) -> Result<String, ShimError> {
    lifecycle
        .resolve(reference)
        .ok_or_else(|| ShimError::NotFound(format!("no such container: {reference}")))
}
