//! The proxy's phases: a Docker API request, classified once, goes through
//! the wake phase (mark in use, wake a sleeper), then the standards phase
//! (rewrite or deny) when its endpoint has one, then is forwarded untouched
//! and unbuffered. Which phases an endpoint gets is decided in one place,
//! [`crate::route::Endpoint::phases`]; the fast path ([`passthrough`]) and
//! this module both follow it.
//!
//! The proxy knows nothing of the shim's own API or of how connections are
//! accepted: the composition root ([`crate::server`]) does that and calls
//! [`Proxy::serve_passthrough`] and [`Proxy::proxy_request`].

pub mod admission;
pub mod checks;
pub mod created;
pub mod disguise;
pub mod forward;
pub mod hostpath;
pub mod listener;
pub mod passthrough;
pub mod resolve;
pub mod standards;
pub mod wake;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, Uri};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::ProxyBody;
use crate::config::{LoadedConfig, SharedConfig};
use crate::docker::DockerApi;
use crate::error::ShimError;
use crate::lifecycle::{Lifecycle, Origins, Profiles};
use crate::metrics::Metrics;
use crate::route::{query_value, Route};
pub use forward::ConnState;

/// The proxy's state, shared by every connection.
#[derive(Clone)]
pub struct Proxy {
    pub inner: Arc<ProxyInner>,
}

pub struct ProxyInner {
    /// Read once per request ([`Proxy::config`]); a reload swaps it.
    pub config: SharedConfig,
    pub upstream_path: PathBuf,
    pub upstream_connect_timeout: Duration,
    pub header_read_timeout: Duration,
    /// An idle keep-alive client connection is closed after this.
    pub client_idle: Duration,
    /// A judged body must arrive whole within this.
    pub body_read: Duration,
    pub shutdown: Shutdown,
    /// Connections, hijacked streams and background tasks, so shutdown can
    /// wait for them.
    pub tasks: TaskTracker,
    pub docker: Arc<dyn DockerApi>,
    /// `None` when `auto_sleep` is off and nothing is tracked.
    pub lifecycle: Option<Lifecycle>,
    pub standards: standards::StandardsState,
    pub host_paths: hostpath::HostPathState,
    pub metrics: Arc<Metrics>,
    /// The containers the shim created; every create through it records one.
    pub origins: Origins,
    /// What fitted hardening learned of each image.
    pub profiles: Profiles,
    /// Create backstops in flight, and the gate on what could use their
    /// containers.
    pub checks: checks::CreateChecks,
}

#[derive(Clone)]
pub struct Shutdown {
    pub token: CancellationToken,
    pub grace: Duration,
}

/// What the proxy is built from: the parts it shares with the rest of the
/// shim.
pub struct ProxyParts {
    pub config: SharedConfig,
    pub docker: Arc<dyn DockerApi>,
    pub lifecycle: Option<Lifecycle>,
    pub metrics: Arc<Metrics>,
    pub tasks: TaskTracker,
    pub token: CancellationToken,
    pub origins: Origins,
    pub profiles: Profiles,
}

impl Proxy {
    pub fn new(parts: ProxyParts) -> Proxy {
        let config = parts.config;
        let (timeouts, upstream_path) = {
            let current = config.current();
            (current.config.timeouts.clone(), current.config.upstream_path())
        };
        Proxy {
            inner: Arc::new(ProxyInner {
                upstream_path,
                upstream_connect_timeout: timeouts.upstream_connect.as_duration(),
                header_read_timeout: timeouts.header_read.as_duration(),
                client_idle: timeouts.client_idle.as_duration(),
                body_read: timeouts.body_read.as_duration(),
                shutdown: Shutdown {
                    token: parts.token,
                    grace: timeouts.shutdown_grace.as_duration(),
                },
                tasks: parts.tasks,
                docker: parts.docker,
                lifecycle: parts.lifecycle,
                standards: standards::StandardsState::default(),
                host_paths: hostpath::HostPathState::default(),
                metrics: parts.metrics,
                origins: parts.origins,
                profiles: parts.profiles,
                checks: checks::CreateChecks::default(),
                config,
            }),
        }
    }

    /// The config as it is now: one snapshot serves a whole request.
    pub fn config(&self) -> Arc<LoadedConfig> {
        self.inner.config.current()
    }

    /// The Docker API phases: wake (mark in use, wake a sleeper), then
    /// standards (rewrite or deny), then forward.
    pub async fn proxy_request(
        &self,
        conn: &ConnState,
        route: &Route,
        request: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, ShimError> {
        if route.endpoint.phases().after_checks {
            let query = request.uri().query().map(str::to_string);
            self.after_checks(route, query.as_deref()).await?;
        }
        let request = match wake::before_forward(self, route, request).await? {
            wake::WakeOutcome::Answer(response) => return Ok(response),
            wake::WakeOutcome::Forward(mut request, guard) => {
                if let Some(guard) = guard {
                    request.extensions_mut().insert(Arc::new(guard));
                }
                request
            }
        };
        if route.endpoint.phases().disguise {
            return disguise::handle(self, conn, route, request).await;
        }
        if standards::intercepts(self, &route.endpoint) {
            return standards::handle(self, conn, route, request).await;
        }
        if route.endpoint == crate::route::Endpoint::ContainerCreate {
            return created::forward_create(self, request).await;
        }
        self.forward(conn, request).await
    }
}

impl Proxy {
    /// Holds a request that could use a container until the create checks
    /// begun before it have ended ([`checks`]); refuses it when the
    /// container it names is one a check removed.
    async fn after_checks(&self, route: &Route, query: Option<&str>) -> Result<(), ShimError> {
        use crate::route::{ContainerAction, Endpoint};
        let named = match &route.endpoint {
            Endpoint::ContainerUse {
                action: ContainerAction::Commit,
                ..
            } => query_value(query, "container"),
            Endpoint::ContainerUse { id, .. } | Endpoint::ExecCreate { id } | Endpoint::Attach { id } => {
                Some(id.clone())
            }
            _ => None,
        };
        match self.inner.checks.settled(named.as_deref(), checks::GATE_WAIT).await {
            Ok(()) => Ok(()),
            Err(checks::Gate::Removed(message)) => Err(ShimError::Denied(message)),
            Err(checks::Gate::TimedOut) => Err(ShimError::Unchecked {
                what: "a container created just before this request".into(),
                message: "dockerd's record of it was not read in time; this request was not forwarded, try again"
                    .into(),
            }),
        }
    }
}

/// Replaces the path with the normalised one when classification changed it,
/// so dockerd routes exactly what the shim classified.
pub fn rewrite_path<B>(mut request: Request<B>, route: &Route) -> Result<Request<B>, ShimError> {
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
