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
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

use crate::api::{Api, Reloader};
use crate::body::ProxyBody;
use crate::config::{ConfigSource, LoadedConfig, SharedConfig};
use crate::docker::{Docker, DockerApi};
use crate::error::ShimError;
use crate::lifecycle::{Learner, Lifecycle, Origins, Profiles};
use crate::metrics::Metrics;
use crate::proxy::admission::{Admission, Admit, IdleGuard, Slot};
use crate::proxy::{forward, passthrough, ConnState, Proxy, ProxyParts};
use crate::route::{Endpoint, Route};

/// The shim: the proxy, the shim's API and the lifecycle over one dockerd
/// client, one metrics registry and one task tracker.
#[derive(Clone)]
pub struct Shim {
    /// The running config; [`Reloader`] swaps it.
    pub config: SharedConfig,
    pub proxy: Proxy,
    pub api: Api,
    pub lifecycle: Option<Lifecycle>,
    /// Fitted hardening's learner (profiles, failures).
    pub learner: Learner,
    pub metrics: Arc<Metrics>,
    /// Every task the shim spawns, so shutdown can wait for them.
    pub tasks: TaskTracker,
    pub token: CancellationToken,
    /// How many client connections are open, and which gives way.
    admission: Arc<Admission>,
    fast_path: bool,
}

impl Shim {
    /// `source` is what a reload reads again.
    pub fn new(loaded: LoadedConfig, source: ConfigSource, token: CancellationToken) -> Shim {
        let config = loaded.config.clone();
        let shared = SharedConfig::new(loaded);
        let upstream_path = config.upstream_path();
        let docker: Arc<dyn DockerApi> = Arc::new(Docker::new(
            &upstream_path,
            config.timeouts.upstream_connect.as_duration(),
        ));
        let metrics = Arc::new(Metrics::new());
        let tasks = TaskTracker::new();
        let lifecycle = config.auto_sleep.enabled.then(|| {
            Lifecycle::new(
                docker.clone(),
                shared.clone(),
                token.clone(),
                metrics.clone(),
                tasks.clone(),
            )
        });
        let fast_path = config.fast_path;
        let admission = Admission::new(config.max_connections);
        let reloader = Reloader::new(shared.clone(), source, lifecycle.clone());
        let origins = Origins::open(&config.state_dir);
        let profiles = Profiles::open(&config.state_dir);
        let api = Api::new(
            upstream_path,
            docker.clone(),
            lifecycle.clone(),
            metrics.clone(),
            reloader,
        )
        .with_origins(origins.clone(), config.bypass.action);
        let learner = Learner::new(
            docker.clone(),
            shared.clone(),
            profiles.clone(),
            metrics.clone(),
            tasks.clone(),
            token.clone(),
        );
        let api = api.with_hardening(crate::api::HardeningApi {
            learner: learner.clone(),
            config: shared.clone(),
        });
        let proxy = Proxy::new(ProxyParts {
            origins,
            profiles: profiles.clone(),
            config: shared.clone(),
            docker,
            lifecycle: lifecycle.clone(),
            metrics: metrics.clone(),
            tasks: tasks.clone(),
            token: token.clone(),
        });
        Shim {
            learner,
            config: shared,
            proxy,
            api,
            lifecycle,
            metrics,
            tasks,
            token,
            admission,
            fast_path,
        }
    }

    /// Starts the check of started containers' users
    /// ([`crate::lifecycle::RootCheck`]), lifecycle or not.
    pub fn start_root_check(&self) {
        let check = crate::lifecycle::RootCheck::new(
            self.proxy.inner.docker.clone(),
            self.config.clone(),
            self.metrics.clone(),
            self.tasks.clone(),
            self.token.clone(),
            self.lifecycle.clone(),
        );
        self.tasks.spawn(check.run());
    }

    /// Starts fitted hardening's learner ([`Learner`]): profiles from
    /// learning containers, failures of hardened ones.
    pub fn start_learner(&self) {
        self.tasks.spawn(self.learner.clone().run());
    }

    /// Starts bypass detection ([`crate::lifecycle::BypassWatch`]): every
    /// container created around the shim is reported.
    pub fn start_bypass_watch(&self) {
        let watch = crate::lifecycle::BypassWatch::new(
            self.proxy.inner.docker.clone(),
            self.config.clone(),
            self.metrics.clone(),
            self.proxy.inner.origins.clone(),
            self.tasks.clone(),
            self.token.clone(),
            self.lifecycle.clone(),
        );
        self.tasks.spawn(watch.run());
    }

    /// The grace period connections and streams get at shutdown.
    pub fn grace(&self) -> Duration {
        self.proxy.inner.shutdown.grace
    }

    /// Accepts connections until shutdown starts. Past `max_connections`,
    /// the connection idle longest gives way; when none is idle, the new
    /// one is answered 503 and closed.
    pub async fn serve(&self, listener: UnixListener) {
        tracing::info!(max_connections = self.admission.limit(), "accepting connections");
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            let accepted = tokio::select! {
                _ = self.token.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    stream
                }
                Err(e) => {
                    // EMFILE and friends: back off, longer each time, instead
                    // of spinning; idle connections closing free descriptors.
                    tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::select! {
                        _ = self.token.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            };
            match self.admission.admit() {
                Admit::Yes(slot) => {
                    let shim = self.clone();
                    self.tasks
                        .spawn(async move { shim.serve_connection(stream, slot).await });
                }
                Admit::Full { limit } => {
                    self.metrics.connections_refused.inc();
                    tracing::warn!(limit, "too many connections, none idle; refusing one");
                    let message = format!("too many connections: {limit} are open and busy (max_connections)");
                    self.tasks
                        .spawn(async move { passthrough::refuse(stream, 503, &message).await });
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

    async fn serve_connection(self, stream: UnixStream, slot: Slot) {
        self.metrics.connections.inc();
        self.metrics.connections_open.inc();
        let _open = OpenConnection(self.metrics.clone());
        let (client, pending, upstream) = if self.fast_path {
            match self.proxy.serve_passthrough(stream, &slot).await {
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
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service_in_flight = in_flight.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let shim = shim.clone();
            let conn_state = service_state.clone();
            let in_flight = InFlight::start(&service_in_flight);
            async move {
                let response = shim.handle(&conn_state, request).await;
                Ok::<_, Infallible>(response.map(|body| {
                    InFlightBody {
                        body,
                        _in_flight: in_flight,
                    }
                    .boxed_unsync()
                }))
            }
        });
        let client_idle = self.proxy.inner.client_idle;
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
        let mut idle: Option<IdleWait<'_>> = None;
        // One task drives the client connection and its upstream connection
        // (see `ConnState`).
        let result = std::future::poll_fn(|cx| {
            if !shutting_down && cancelled.as_mut().poll(cx).is_ready() {
                connection.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            let result = connection.as_mut().poll(cx);
            conn_state.poll_driver(cx);
            // With nothing in flight the connection is idle: it closes after
            // `client_idle`, or when a new connection needs its slot.
            if in_flight.load(Ordering::Acquire) == 0 {
                let wait = idle.get_or_insert_with(|| IdleWait {
                    _guard: slot.idle(),
                    timer: Box::pin(tokio::time::sleep(client_idle)),
                    evicted: Box::pin(slot.evicted_owned()),
                });
                let over = wait.timer.as_mut().poll(cx).is_ready() | wait.evicted.as_mut().poll(cx).is_ready();
                if over && !shutting_down {
                    tracing::debug!("idle client connection closed");
                    connection.as_mut().graceful_shutdown();
                    shutting_down = true;
                    cx.waker().wake_by_ref();
                }
            } else {
                idle = None;
            }
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
        let started = std::time::Instant::now();
        let response = self.dispatch(conn, request).await;
        self.metrics
            .response("full", response.status().as_u16(), started.elapsed());
        response
    }

    async fn dispatch(&self, conn: &ConnState, request: Request<Incoming>) -> Response<ProxyBody> {
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

/// First and last: how long `accept` waits after it failed.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A hyper connection between two requests.
struct IdleWait<'a> {
    _guard: IdleGuard<'a>,
    timer: Pin<Box<tokio::time::Sleep>>,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
}

/// One request in flight on a hyper connection, until its response body
/// has been sent or dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight.
struct InFlightBody {
    body: ProxyBody,
    _in_flight: InFlight,
}

impl http_body::Body for InFlightBody {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Counts a connection open for as long as it lives, whichever way it ends.
struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}
