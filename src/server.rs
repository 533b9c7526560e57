//! The composition root: builds the shim's parts from the config, accepts
//! client connections, dispatches each request to the proxy or to the
//! shim's own API, and drains on shutdown.
//!
//! Every connection starts on the proxy's fast path; the first request that
//! needs more hands the connection to hyper, whose service is
//! [`Shim::handle`]: classify once, then `/_forge/v1/` to [`crate::api`] and
//! everything else to [`Proxy::proxy_request`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::Api;
use crate::body::ProxyBody;
use crate::config::LoadedConfig;
use crate::docker::Docker;
use crate::error::ShimError;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::proxy::{forward, passthrough, ConnState, Proxy, ProxyParts};
use crate::route::{Endpoint, Route};

/// The shim: the proxy, the shim's API and the lifecycle over one dockerd
/// client, one metrics registry and one task tracker.
#[derive(Clone)]
pub struct Shim {
    pub proxy: Proxy,
    pub api: Api,
    pub lifecycle: Option<Lifecycle>,
    pub metrics: Arc<Metrics>,
    /// Every task the shim spawns, so shutdown can wait for them.
    pub tasks: TaskTracker,
    pub token: CancellationToken,
    fast_path: bool,
}

impl Shim {
    pub fn new(config: LoadedConfig, token: CancellationToken) -> Shim {
        let upstream_path = config.config.upstream_path();
        let docker = Arc::new(Docker::new(&upstream_path));
        let metrics = Arc::new(Metrics::new());
        let tasks = TaskTracker::new();
        let lifecycle = config
            .config
            .auto_sleep
            .enabled
            .then(|| Lifecycle::new(docker.clone(), config.clone(), token.clone(), metrics.clone()));
        let fast_path = config.config.fast_path;
        let api = Api::new(upstream_path, docker.clone(), lifecycle.clone(), metrics.clone());
        let proxy = Proxy::new(ProxyParts {
            config,
            docker,
            lifecycle: lifecycle.clone(),
            metrics: metrics.clone(),
            tasks: tasks.clone(),
            token: token.clone(),
        });
        Shim {
            proxy,
            api,
            lifecycle,
            metrics,
            tasks,
            token,
            fast_path,
        }
    }

    pub fn config(&self) -> &LoadedConfig {
        self.proxy.config()
    }

    /// The grace period connections and streams get at shutdown.
    pub fn grace(&self) -> Duration {
        self.proxy.inner.shutdown.grace
    }

    /// Accepts connections until shutdown starts.
    pub async fn serve(&self, listener: UnixListener) {
        loop {
            let accepted = tokio::select! {
                _ = self.token.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let shim = self.clone();
                    self.tasks.spawn(async move { shim.serve_connection(stream).await });
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
        self.tasks.close();
        if tokio::time::timeout(self.grace(), self.tasks.wait()).await.is_ok() {
            return 0;
        }
        self.tasks.len()
    }

    async fn serve_connection(self, stream: UnixStream) {
        self.metrics.connections.inc();
        self.metrics.connections_open.inc();
        let _open = OpenConnection(self.metrics.clone());
        let (client, pending, upstream) = if self.fast_path {
            match self.proxy.serve_passthrough(stream).await {
                passthrough::Outcome::Closed => return,
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
            if let Err(e) = self.proxy.adopt_upstream(&conn_state, upstream).await {
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
            .header_read_timeout(self.proxy.inner.header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(passthrough::Replay::new(pending, client)), service)
            .with_upgrades();
        tokio::pin!(connection);
        let cancelled = self.token.cancelled();
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
    }

    /// Classifies the request and dispatches it: the shim's API, or the
    /// proxy's phases.
    async fn handle(&self, conn: &ConnState, request: Request<Incoming>) -> Response<ProxyBody> {
        self.metrics.requests.inc();
        let method = request.method().clone();
        let route = match Route::classify(&method, request.uri().path()) {
            Ok(route) => route,
            Err(e) => return ShimError::BadRequest(e.to_string()).into_response(),
        };
        let request = match crate::proxy::rewrite_path(request, &route) {
            Ok(request) => request.map(forward::box_incoming),
            Err(e) => return e.into_response(),
        };
        let result = match &route.endpoint {
            Endpoint::Forge(rest) => self.api.handle(rest, request).await,
            _ => self.proxy.proxy_request(conn, &route, request).await,
        };
        match result {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(%method, endpoint = ?route.endpoint, error = %e, "request failed");
                e.into_response()
            }
        }
    }
}

/// Counts a connection open for as long as it lives, whichever way it ends.
struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}
