//! Forwarding to dockerd: one upstream connection per client connection,
//! reused across keep-alive requests, and a fresh one for every upgraded
//! (hijacked) request, spliced both ways with half-close preserved.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::os::fd::{AsFd, OwnedFd};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use super::{ProxyBody, Shim};
use crate::error::ShimError;
use crate::lifecycle::InUse;

/// The future that drives an upstream HTTP/1 connection.
type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Per client connection: the upstream connection its requests reuse.
///
/// The upstream connection is driven by the client connection's own task
/// ([`ConnState::poll_driver`], called from `serve_connection`) rather than
/// a task of its own: a request and its response then never hop between
/// tasks or threads, which is most of what a proxy adds to a short call.
/// hyper serves one request at a time per HTTP/1 connection, so the slots
/// are taken for the length of a request head and put back; they are never
/// contended.
#[derive(Default)]
pub struct ConnState {
    upstream: Mutex<Option<SendRequest<ProxyBody>>>,
    driver: Mutex<Option<Driver>>,
}

impl ConnState {
    /// Polls the upstream connection, if there is one, and forgets it once
    /// it has ended. Called on every wake of the client connection's task.
    pub fn poll_driver(&self, cx: &mut Context<'_>) {
        let mut slot = self.driver.lock();
        if let Some(driver) = slot.as_mut() {
            if driver.as_mut().poll(cx).is_ready() {
                *slot = None;
            }
        }
    }
}

/// Buffer for each direction of a hijacked stream. Larger than tokio's 8 KiB
/// default: `docker cp` and exec output move hundreds of MB through it.
const SPLICE_BUFFER: usize = 64 * 1024;

type UpstreamConnection = http1::Connection<TokioIo<UnixStream>, ProxyBody>;

impl Shim {
    /// A new HTTP/1 connection to dockerd; the caller drives the connection.
    async fn open_upstream(&self) -> Result<(SendRequest<ProxyBody>, UpstreamConnection), ShimError> {
        let path = &self.inner.upstream_path;
        let connect = UnixStream::connect(path);
        let stream = match tokio::time::timeout(self.inner.upstream_connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(ShimError::UpstreamConnect {
                    path: path.clone(),
                    source,
                })
            }
            Err(_) => return Err(ShimError::UpstreamTimeout { path: path.clone() }),
        };
        http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ShimError::Upstream {
                path: path.clone(),
                source,
            })
    }

    /// A new HTTP/1 connection to dockerd, driven by a task of its own: for
    /// upgraded requests, which outlive the client connection's request
    /// loop, and for the shim's own calls.
    pub async fn connect_upstream(&self, upgrades: bool) -> Result<SendRequest<ProxyBody>, ShimError> {
        let (sender, connection) = self.open_upstream().await?;
        if upgrades {
            tokio::spawn(async move {
                if let Err(e) = connection.with_upgrades().await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
        } else {
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "upstream connection ended");
                }
            });
        }
        Ok(sender)
    }

    /// A new upstream connection for `conn`, driven by `conn`'s task.
    async fn connect_for(&self, conn: &ConnState) -> Result<SendRequest<ProxyBody>, ShimError> {
        let (sender, connection) = self.open_upstream().await?;
        *conn.driver.lock() = Some(Box::pin(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        }));
        // The driver has not been polled yet; have the task polled again so
        // it registers its interest in the new socket.
        std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::Ready(())
        })
        .await;
        Ok(sender)
    }

    /// Forwards `request` on the client connection's upstream connection,
    /// opening one if there is none or it was closed.
    pub async fn forward(
        &self,
        conn: &ConnState,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, ShimError> {
        // The in-use mark of the wake phase lives as long as the response.
        let in_use = request.extensions_mut().remove::<Arc<InUse>>();
        if is_upgrade(&request) {
            return self.forward_upgrade(request, in_use).await;
        }
        let reusable = conn.upstream.lock().take().filter(|s| !s.is_closed());
        let mut sender = match reusable {
            Some(mut sender) => match sender.ready().await {
                Ok(()) => sender,
                Err(_) => self.connect_for(conn).await?,
            },
            None => self.connect_for(conn).await?,
        };
        sender.ready().await.map_err(|source| self.upstream_error(source))?;
        let response = sender.send_request(request).await;
        *conn.upstream.lock() = Some(sender);
        let response = response.map_err(|source| self.upstream_error(source))?;
        Ok(match in_use {
            Some(in_use) => response.map(|body| {
                GuardedBody {
                    body: box_incoming(body),
                    _in_use: in_use,
                }
                .boxed_unsync()
            }),
            None => response.map(box_incoming),
        })
    }

    /// An upgraded request (`Upgrade: tcp` for attach and exec start, `h2c`
    /// for BuildKit, `websocket` for attach/ws) gets its own upstream
    /// connection; on `101` both sides are spliced.
    async fn forward_upgrade(
        &self,
        mut request: Request<ProxyBody>,
        in_use: Option<Arc<InUse>>,
    ) -> Result<Response<ProxyBody>, ShimError> {
        let client_upgrade = hyper::upgrade::on(&mut request);
        let mut sender = self.connect_upstream(true).await?;
        sender.ready().await.map_err(|source| self.upstream_error(source))?;
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|source| self.upstream_error(source))?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(response.map(box_incoming));
        }
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            // Held until the stream closes: no sleep under a live session.
            let _in_use = in_use;
            let (client, upstream) = match tokio::join!(client_upgrade, upstream_upgrade) {
                (Ok(client), Ok(upstream)) => (client, upstream),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!(error = %e, "upgrade did not complete");
                    return;
                }
            };
            let mut upstream = TokioIo::new(upstream);
            let mut client = match ClientSide::unwrap(client, &mut upstream).await {
                Ok(client) => client,
                Err(e) => {
                    tracing::debug!(error = %e, "hijacked stream ended before it started");
                    return;
                }
            };
            let hangup = client.hangup();
            let splice = match &mut client {
                ClientSide::Unix(stream) => {
                    tokio::io::copy_bidirectional_with_sizes(stream, &mut upstream, SPLICE_BUFFER, SPLICE_BUFFER)
                        .boxed()
                }
                ClientSide::Other(io) => {
                    tokio::io::copy_bidirectional_with_sizes(io, &mut upstream, SPLICE_BUFFER, SPLICE_BUFFER).boxed()
                }
            };
            tokio::select! {
                result = splice => match result {
                    Ok((to_upstream, to_client)) => {
                        tracing::debug!(to_upstream, to_client, "hijacked stream closed");
                    }
                    Err(e) => tracing::debug!(error = %e, "hijacked stream ended with an error"),
                },
                // The client went away for good (killed, or closed both
                // ways). copy_bidirectional would take its EOF for a
                // half-close and wait for output that may never come.
                _ = hangup => {
                    tracing::debug!("client hung up on a hijacked stream; closing dockerd's side");
                }
                // Shutdown waits for streams during the grace period only.
                _ = shutdown_after_grace(shutdown) => {}
            }
            // Dropping both sides closes them: dockerd sees its client leave.
        });
        Ok(response.map(|_| crate::error::full_body(bytes::Bytes::new())))
    }

    fn upstream_error(&self, source: hyper::Error) -> ShimError {
        ShimError::Upstream {
            path: self.inner.upstream_path.clone(),
            source,
        }
    }
}

/// The client side of a hijacked stream: the shim's own Unix socket when
/// hyper hands it back, so its hang-up can be watched.
enum ClientSide {
    Unix(UnixStream),
    Other(TokioIo<hyper::upgrade::Upgraded>),
}

impl ClientSide {
    /// Takes the client's socket back from hyper; bytes hyper had already
    /// read past the request head go upstream first.
    async fn unwrap(
        client: hyper::upgrade::Upgraded,
        upstream: &mut TokioIo<hyper::upgrade::Upgraded>,
    ) -> std::io::Result<ClientSide> {
        match client.downcast::<TokioIo<UnixStream>>() {
            Ok(parts) => {
                if !parts.read_buf.is_empty() {
                    upstream.write_all(&parts.read_buf).await?;
                }
                Ok(ClientSide::Unix(parts.io.into_inner()))
            }
            Err(client) => Ok(ClientSide::Other(TokioIo::new(client))),
        }
    }

    /// Resolves when the client has closed its socket entirely; never when
    /// it has only shut its write half (`docker exec -i` at stdin EOF).
    fn hangup(&self) -> futures_util::future::BoxFuture<'static, ()> {
        let ClientSide::Unix(stream) = self else {
            return futures_util::future::pending().boxed();
        };
        match stream.as_fd().try_clone_to_owned() {
            Ok(fd) => async move {
                if let Err(e) = hung_up(fd).await {
                    tracing::debug!(error = %e, "cannot watch the client for a hang-up");
                    std::future::pending::<()>().await;
                }
            }
            .boxed(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot watch the client for a hang-up");
                futures_util::future::pending().boxed()
            }
        }
    }
}

/// Waits for `EPOLLHUP` on a duplicate of the client's socket. For a Unix
/// stream socket the kernel reports it once the peer has shut both ways
/// (closed, or killed); a half-close only reports `EPOLLRDHUP`. The
/// duplicate has its own epoll registration, so the splice's reads and
/// writes on the original are not disturbed.
async fn hung_up(fd: OwnedFd) -> std::io::Result<()> {
    let watch = std::os::unix::net::UnixStream::from(fd);
    watch.set_nonblocking(true)?;
    let watch = UnixStream::from_std(watch)?;
    loop {
        let ready = watch.ready(Interest::WRITABLE).await?;
        if ready.is_write_closed() {
            return Ok(());
        }
        // Writable but open: forget this edge and wait for the next one.
        let _ = watch.try_io(Interest::WRITABLE, || {
            Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
        });
    }
}

/// Resolves once shutdown has started and its grace period has passed.
async fn shutdown_after_grace(shutdown: super::Shutdown) {
    shutdown.token.cancelled().await;
    tokio::time::sleep(shutdown.grace).await;
}

fn is_upgrade<B>(request: &Request<B>) -> bool {
    request.headers().contains_key(header::UPGRADE)
}

/// A response body that keeps its container marked in use until it ends.
struct GuardedBody {
    body: ProxyBody,
    _in_use: Arc<InUse>,
}

impl hyper::body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

pub fn box_incoming(body: Incoming) -> ProxyBody {
    body.map_err(|e| -> super::BoxError { Box::new(e) }).boxed_unsync()
}
