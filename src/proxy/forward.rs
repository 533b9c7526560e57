//! Forwarding to dockerd: one upstream connection per client connection,
//! reused across keep-alive requests, and a fresh one for every upgraded
//! (hijacked) request, spliced both ways with half-close preserved.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::{ProxyBody, Shim};
use crate::error::ShimError;
use crate::lifecycle::InUse;

/// Per client connection: the upstream connection its requests reuse.
/// hyper serves one request at a time per HTTP/1 connection, so the slot is
/// taken for the length of a request head and put back; it is never
/// contended.
#[derive(Default)]
pub struct ConnState {
    upstream: Mutex<Option<SendRequest<ProxyBody>>>,
}

/// Buffer for each direction of a hijacked stream. Larger than tokio's 8 KiB
/// default: `docker cp` and exec output move hundreds of MB through it.
const SPLICE_BUFFER: usize = 64 * 1024;

impl Shim {
    /// A new HTTP/1 connection to dockerd, its driver task spawned.
    pub async fn connect_upstream(&self, upgrades: bool) -> Result<SendRequest<ProxyBody>, ShimError> {
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
        let (sender, connection) = http1::Builder::new()
            // dockerd sends raw-stream bodies with no length; keep them whole.
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ShimError::Upstream {
                path: path.clone(),
                source,
            })?;
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
                Err(_) => self.connect_upstream(false).await?,
            },
            None => self.connect_upstream(false).await?,
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
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            let splice =
                tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, SPLICE_BUFFER, SPLICE_BUFFER);
            tokio::select! {
                result = splice => match result {
                    Ok((to_upstream, to_client)) => {
                        tracing::debug!(to_upstream, to_client, "hijacked stream closed");
                    }
                    Err(e) => tracing::debug!(error = %e, "hijacked stream ended with an error"),
                },
                // Shutdown waits for streams during the grace period only.
                _ = shutdown_after_grace(shutdown) => {
                    let _ = client.shutdown().await;
                    let _ = upstream.shutdown().await;
                }
            }
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
