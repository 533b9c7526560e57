//! The Prometheus listener (`metrics.listen`): `GET /metrics` over plain
//! TCP, the same text as `/_forge/v1/metrics` on the shim's socket, and the
//! dashboard ([`super::dashboard`]: the page at `/`, its files, and
//! `/dashboard.json`).
//!
//! Read-only by construction: it serves a fixed list of paths and never
//! forwards anything, so the Docker API is not reachable through it (any
//! other path is 404, any method but `GET` and `HEAD` on a known path 405).
//! A TCP port is open to every local user, unlike the socket's mode and
//! group; that is why it is off by default and shows only what the metrics
//! (and, on the dashboard, the status rows' idle times and wakes) show. It
//! holds at most [`MAX_CONNECTIONS`] connections, each for one request and a
//! bounded time, so it cannot use up the descriptors the Docker socket's
//! clients need.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dashboard::{self, Page};
use super::Api;
use crate::body::ProxyBody;
use crate::error::ShimError;

/// A scraper must send its request head within this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection serves one request (no keep-alive) and lives at most this
/// long, a reader that never reads its answer included.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Connections open at once; past it a new one is closed unanswered. The
/// listener shares the process's file descriptors with the Docker socket's
/// clients, so anyone who can reach the port must not be able to use them
/// up. A Prometheus server needs one.
pub const MAX_CONNECTIONS: usize = 16;

/// Accepts scrapes until `token` is cancelled; each connection gets
/// hyper's graceful shutdown then.
pub async fn serve(listener: TcpListener, api: Api, token: CancellationToken, tasks: TaskTracker) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(
                limit = MAX_CONNECTIONS,
                "metrics listener: too many connections; closing one"
            );
            drop(stream);
            continue;
        };
        let api = api.clone();
        let token = token.clone();
        tasks.spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request: Request<Incoming>| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(answer(&api, &request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => Some(result),
                _ = token.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    tokio::time::timeout(CONNECTION_LIFETIME, connection).await.ok()
                }
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => None,
            };
            match result {
                Some(Ok(())) => {}
                Some(Err(e)) => tracing::debug!(error = %e, "metrics connection ended with an error"),
                None => tracing::debug!("metrics connection cut after {CONNECTION_LIFETIME:?}"),
            }
        });
    }
    tracing::info!("metrics listener stopped");
}

/// The one routing decision: `/metrics`, a dashboard page
/// ([`super::dashboard::Page`]), or nothing. The request body, if any, is
/// never read.
async fn answer(api: &Api, request: &Request<Incoming>) -> Response<ProxyBody> {
    let path = request.uri().path();
    let page = match path {
        "/metrics" => None,
        _ => match Page::at(path) {
            Some(page) => Some(page),
            None => {
                return ShimError::NotFound(format!(
                    "{path} (this listener serves only GET /metrics and the dashboard's {}; the Docker API is on the shim's socket)",
                    Page::PATHS.join(" ")
                ))
                .into_response()
            }
        },
    };
    match (request.method(), page) {
        (&Method::GET | &Method::HEAD, None) => api.metrics().await,
        (&Method::GET | &Method::HEAD, Some(page)) => dashboard::serve(api, page).await,
        (other, _) => {
            let mut response = ShimError::MethodNotAllowed(other.to_string()).into_response();
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
    }
}
