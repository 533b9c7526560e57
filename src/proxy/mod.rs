//! The proxy: accept connections on the shim's socket, classify each request
//! once, run the phases that apply (standards, wake), and forward the rest
//! untouched and unbuffered.
//!
//! Shutdown: one [`CancellationToken`] stops the accept loop and asks every
//! connection to finish its current request; streams that are still open
//! after the grace period (`events`, `logs -f`, attach) are cut.

pub mod forward;
pub mod listener;
pub mod passthrough;
pub mod standards;
pub mod wake;

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::LoadedConfig;
use crate::error::ShimError;
use crate::route::{Endpoint, Route};
pub use forward::ConnState;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body the shim sends: dockerd's, streamed, or its own.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// The shared handle every connection holds.
#[derive(Clone)]
pub struct Shim {
    pub inner: Arc<ShimInner>,
}

pub struct ShimInner {
    pub config: LoadedConfig,
    pub upstream_path: PathBuf,
    pub upstream_connect_timeout: Duration,
    pub header_read_timeout: Duration,
    pub fast_path: bool,
    pub shutdown: Shutdown,
    /// Connections and hijacked streams, so shutdown can wait for them.
    pub tasks: TaskTracker,
    pub docker: Arc<dyn crate::docker::DockerApi>,
    /// `None` when `auto_sleep` is off and nothing is tracked.
    pub lifecycle: Option<crate::lifecycle::Lifecycle>,
    pub standards: standards::StandardsState,
    pub stats: ProxyStats,
    pub metrics: Arc<crate::metrics::Metrics>,
}

#[derive(Clone)]
pub struct Shutdown {
    pub token: CancellationToken,
    pub grace: Duration,
}

/// Counters for `/_forge/v1/health`.
#[derive(Default)]
pub struct ProxyStats {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub requests_total: AtomicU64,
    /// Of those, the requests forwarded as read (`passthrough`).
    pub requests_fast_path: AtomicU64,
}

impl Shim {
    pub fn new(config: LoadedConfig, token: CancellationToken) -> Shim {
        let upstream_path = config.config.upstream_path();
        let timeouts = config.config.timeouts.clone();
        let docker: Arc<dyn crate::docker::DockerApi> = Arc::new(crate::docker::Docker::new(
            &upstream_path,
            timeouts.upstream_connect.as_duration(),
        ));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let tasks = TaskTracker::new();
        let lifecycle = config.config.auto_sleep.enabled.then(|| {
            let (config, token, metrics) = (config.clone(), token.clone(), metrics.clone());
            crate::lifecycle::Lifecycle::new(docker.clone(), config, token, metrics, tasks.clone())
        });
        let standards = standards::StandardsState::default();
        Shim {
            inner: Arc::new(ShimInner {
                upstream_path,
                upstream_connect_timeout: timeouts.upstream_connect.as_duration(),
                header_read_timeout: timeouts.header_read.as_duration(),
                fast_path: config.config.fast_path,
                shutdown: Shutdown {
                    token,
                    grace: timeouts.shutdown_grace.as_duration(),
                },
                tasks,
                docker,
                lifecycle,
                standards,
                stats: ProxyStats::default(),
                metrics,
                config,
            }),
        }
    }

    pub fn config(&self) -> &LoadedConfig {
        &self.inner.config
    }

    /// Accepts connections until shutdown starts.
    pub async fn serve(&self, listener: UnixListener) {
        let token = self.inner.shutdown.token.clone();
        loop {
            let accepted = tokio::select! {
                _ = token.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let shim = self.clone();
                    self.inner
                        .tasks
                        .spawn(async move { shim.serve_connection(stream).await });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        tracing::info!("stopped accepting connections");
    }

    /// Waits for connections and streams to finish, at most the grace
    /// period; returns how many were cut.
    pub async fn drain(&self) -> usize {
        let tasks = &self.inner.tasks;
        tasks.close();
        let grace = self.inner.shutdown.grace;
        if tokio::time::timeout(grace, tasks.wait()).await.is_ok() {
            return 0;
        }
        tasks.len()
    }

    async fn serve_connection(self, stream: UnixStream) {
        let stats = &self.inner.stats;
        stats.connections_open.fetch_add(1, Ordering::Relaxed);
        stats.connections_total.fetch_add(1, Ordering::Relaxed);
        let (client, pending, upstream) = if self.inner.fast_path {
            match self.serve_passthrough(stream).await {
                passthrough::Outcome::Closed => {
                    stats.connections_open.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                passthrough::Outcome::Handoff {
                    client,
                    pending,
                    upstream,
                } => (client, pending, upstream),
            }
        } else {
            (stream, bytes::BytesMut::new(), None)
        };
        let conn_state = Arc::new(ConnState::default());
        if let Some(upstream) = upstream {
            if let Err(e) = self.adopt_upstream(&conn_state, upstream).await {
                tracing::debug!(error = %e, "could not reuse the fast path's upstream connection");
            }
        }
        let shim = self.clone();
        let service_state = conn_state.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let shim = shim.clone();
            let conn_state = service_state.clone();
            async move { Ok::<_, Infallible>(shim.handle(&conn_state, request).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.inner.header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(passthrough::Replay::new(pending, client)), service)
            .with_upgrades();
        tokio::pin!(connection);
        let cancelled = self.inner.shutdown.token.cancelled();
        tokio::pin!(cancelled);
        let mut shutting_down = false;
        // One task drives the client connection and its upstream connection
        // (see `ConnState`).
        let result = std::future::poll_fn(|cx| {
            if !shutting_down && cancelled.as_mut().poll(cx).is_ready() {
                connection.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            let result = connection.as_mut().poll(cx);
            conn_state.poll_driver(cx);
            result
        })
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "client connection ended with an error");
        }
        stats.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Classifies the request and runs it through its phases.
    async fn handle(&self, conn: &ConnState, request: Request<Incoming>) -> Response<ProxyBody> {
        self.inner.stats.requests_total.fetch_add(1, Ordering::Relaxed);
        let method = request.method().clone();
        let route = match Route::classify(&method, request.uri().path()) {
            Ok(route) => route,
            Err(e) => return ShimError::BadRequest(e.to_string()).into_response(),
        };
        let request = match rewrite_path(request, &route) {
            Ok(request) => request.map(forward::box_incoming),
            Err(e) => return e.into_response(),
        };
        let result = match &route.endpoint {
            Endpoint::Forge(rest) => crate::api::handle(self, rest, request).await,
            _ => self.proxy_request(conn, &route, request).await,
        };
        match result {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(%method, path = %route_path(&route), error = %e, "request failed");
                e.into_response()
            }
        }
    }
}

impl Shim {
    /// The Docker API phases: wake (mark in use, wake a sleeper), then
    /// standards (rewrite or deny), then forward.
    async fn proxy_request(
        &self,
        conn: &ConnState,
        route: &Route,
        request: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, ShimError> {
        let request = match wake::before_forward(self, route, request).await? {
            wake::WakeOutcome::Answer(response) => return Ok(response),
            wake::WakeOutcome::Forward(mut request, guard) => {
                if let Some(guard) = guard {
                    request.extensions_mut().insert(Arc::new(guard));
                }
                request
            }
        };
        if standards::intercepts(self, &route.endpoint) {
            return standards::handle(self, conn, route, request).await;
        }
        self.forward(conn, request).await
    }
}

/// Replaces the path with the normalised one when classification changed it,
/// so dockerd routes exactly what the shim classified.
fn rewrite_path(mut request: Request<Incoming>, route: &Route) -> Result<Request<Incoming>, ShimError> {
    let Some(path) = &route.forward_path else {
        return Ok(request);
    };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.clone(),
    };
    let uri: Uri = path_and_query
        .parse()
        .map_err(|e| ShimError::BadRequest(format!("cannot forward path {path:?}: {e}")))?;
    *request.uri_mut() = uri;
    Ok(request)
}

fn route_path(route: &Route) -> String {
    format!("{:?}", route.endpoint)
}

/// Reads a whole body of at most `limit` bytes: the standards and the wake
/// phase read small JSON bodies; anything larger is refused with 413.
pub async fn read_body_limited(mut body: ProxyBody, limit: u64) -> Result<Bytes, ShimError> {
    use http_body_util::BodyExt;
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ShimError::ClientBody(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if (buffer.len() + data.len()) as u64 > limit {
                return Err(ShimError::BodyTooLarge { limit });
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}
