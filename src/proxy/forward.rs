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
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::os::fd::{AsFd, OwnedFd};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use super::passthrough::Replay;
use super::Proxy;
use crate::body::{BoxError, ProxyBody};
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

impl Proxy {
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

    /// Forwards `request` on an upstream connection of its own, driven by a
    /// task of its own, so that the exchange goes on when the client
    /// connection ends: for creates, whose answer the shim must read.
    pub async fn forward_detached(&self, request: Request<ProxyBody>) -> Result<Response<ProxyBody>, ShimError> {
        let mut sender = self.connect_upstream(false).await?;
        sender.ready().await.map_err(|source| self.upstream_error(source))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|source| self.upstream_error(source))?;
        Ok(response.map(box_incoming))
    }

    /// Makes `stream`, a connection to dockerd that is idle between two
    /// messages, `conn`'s upstream connection.
    pub async fn adopt_upstream(&self, conn: &ConnState, stream: UnixStream) -> Result<(), ShimError> {
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| self.upstream_error(source))?;
        *conn.upstream.lock() = Some(sender);
        *conn.driver.lock() = Some(Box::pin(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        }));
        Ok(())
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
        let body = request.body();
        let small = body.is_end_stream() || body.size_hint().exact().is_some_and(|n| n <= 64 * 1024);
        if let Some(in_use) = in_use.as_ref().filter(|u| small && u.lately_woken()) {
            return self.forward_after_wake(conn, request, in_use.clone()).await;
        }
        let response = self.forward_plain(conn, request, small).await?;
        Ok(match in_use {
            Some(in_use) => guarded(response, in_use),
            None => response,
        })
    }

    /// [`Proxy::forward`] of a request that is not upgraded, once.
    async fn forward_plain(
        &self,
        conn: &ConnState,
        request: Request<ProxyBody>,
        small: bool,
    ) -> Result<Response<ProxyBody>, ShimError> {
        let request = if small {
            request
        } else {
            request.map(|body| CoalescingBody::new(body).boxed_unsync())
        };
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
        Ok(response.map(box_incoming))
    }

    /// A request for a container the shim woke a moment ago, whose body is
    /// small: sent again, once, if dockerd refuses it 409 "is paused" while
    /// the container runs (its paused flag is stale for a few milliseconds,
    /// [`InUse::lately_woken`]).
    async fn forward_after_wake(
        &self,
        conn: &ConnState,
        request: Request<ProxyBody>,
        in_use: Arc<InUse>,
    ) -> Result<Response<ProxyBody>, ShimError> {
        let (again, request) = Again::keep(request).await?;
        let response = self.forward_plain(conn, request, true).await?;
        let response = match self.paused_answer(response, &in_use).await? {
            Ok(response) => response,
            Err(()) => self.forward_plain(conn, again.request(), true).await?,
        };
        Ok(guarded(response, in_use))
    }

    /// `Ok(response)` unless it is dockerd's 409 "is paused" for the
    /// container in use and dockerd soon calls it not paused: then
    /// `Err(())`, send the request again.
    async fn paused_answer(
        &self,
        response: Response<ProxyBody>,
        in_use: &InUse,
    ) -> Result<Result<Response<ProxyBody>, ()>, ShimError> {
        if response.status() != StatusCode::CONFLICT {
            return Ok(Ok(response));
        }
        let (parts, body) = response.into_parts();
        let bytes = crate::body::read_limited(body, 64 * 1024)
            .await
            .map_err(|e| ShimError::Internal(format!("reading dockerd's answer: {e}")))?;
        // dockerd's words: "Container … is paused, unpause the container
        // before exec" (exec create, exec start), "You cannot attach to a
        // paused container, unpause it first" (attach).
        let says = |words: &[u8]| bytes.windows(words.len()).any(|w| w == words);
        let paused = says(b"is paused") || says(b"a paused container");
        if paused && in_use.until_unpaused_on_dockerd().await {
            tracing::debug!(
                container = in_use.container(),
                "dockerd called a container the shim had just woken paused; sending the request again"
            );
            return Ok(Err(()));
        }
        Ok(Ok(Response::from_parts(parts, crate::body::full_body(bytes))))
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
        let body = request.body();
        let small = body.is_end_stream() || body.size_hint().exact().is_some_and(|n| n <= 64 * 1024);
        let (again, request) = match in_use.as_ref().filter(|u| small && u.lately_woken()) {
            Some(_) => {
                let (again, request) = Again::keep(request).await?;
                (Some(again), request)
            }
            None => (None, request),
        };
        let mut response = self.send_upgrade(request).await?;
        if let (Some(again), Some(in_use)) = (again, in_use.as_ref()) {
            if response.status() == StatusCode::CONFLICT {
                match self.paused_answer(response.map(box_incoming), in_use).await? {
                    Ok(answer) => return Ok(answer),
                    Err(()) => response = self.send_upgrade(again.request()).await?,
                }
            }
        }
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
        Ok(response.map(|_| crate::body::full_body(bytes::Bytes::new())))
    }

    /// Sends an upgraded request on an upstream connection of its own.
    async fn send_upgrade(&self, request: Request<ProxyBody>) -> Result<Response<Incoming>, ShimError> {
        let mut sender = self.connect_upstream(true).await?;
        sender.ready().await.map_err(|source| self.upstream_error(source))?;
        sender
            .send_request(request)
            .await
            .map_err(|source| self.upstream_error(source))
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
        match client.downcast::<TokioIo<Replay>>() {
            Ok(parts) => {
                if !parts.read_buf.is_empty() {
                    upstream.write_all(&parts.read_buf).await?;
                }
                // Then what the fast path had read that hyper had not.
                let (pending, stream) = parts.io.into_inner().into_parts();
                if !pending.is_empty() {
                    upstream.write_all(&pending).await?;
                }
                Ok(ClientSide::Unix(stream))
            }
            Err(client) => Ok(ClientSide::Other(TokioIo::new(client))),
        }
    }

    /// Resolves when the client has closed its socket entirely; never when
    /// it has only shut its write half (`docker exec -i` at stdin EOF).
    fn hangup(&self) -> futures_util::future::BoxFuture<'static, ()> {
        match self {
            ClientSide::Unix(stream) => hangup(stream),
            ClientSide::Other(_) => futures_util::future::pending().boxed(),
        }
    }
}

/// Resolves when the peer of `stream` has closed it entirely (or been
/// killed); never for a half-close. Watches a duplicate descriptor, so
/// `stream` stays free for reads and writes.
pub(super) fn hangup(stream: &impl AsFd) -> futures_util::future::BoxFuture<'static, ()> {
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

/// A small request kept to be sent again: its head and its body.
struct Again {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    body: bytes::Bytes,
}

impl Again {
    /// Reads `request`'s (small) body; the request to send now, and what
    /// sends it again.
    async fn keep(request: Request<ProxyBody>) -> Result<(Again, Request<ProxyBody>), ShimError> {
        let (parts, body) = request.into_parts();
        let body = crate::body::read_limited(body, 64 * 1024)
            .await
            .map_err(|e| ShimError::BadRequest(format!("reading the request body: {e}")))?;
        let again = Again {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            body: body.clone(),
        };
        Ok((again, Request::from_parts(parts, crate::body::full_body(body))))
    }

    fn request(&self) -> Request<ProxyBody> {
        let mut request = Request::new(crate::body::full_body(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// `response` with its body keeping `in_use` marked until it ends.
fn guarded(response: Response<ProxyBody>, in_use: Arc<InUse>) -> Response<ProxyBody> {
    response.map(|body| GuardedBody { body, _in_use: in_use }.boxed_unsync())
}

/// A response body that keeps its container marked in use until it ends.
struct GuardedBody {
    body: ProxyBody,
    _in_use: Arc<InUse>,
}

impl hyper::body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

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

/// Polls of the task a coalescing body waits for more data, at most.
const COALESCE_YIELDS: u8 = 4;

/// Most a request body frame grows to by coalescing.
const COALESCE_LIMIT: usize = 256 * 1024;

/// A request body whose frames are joined while more are ready at once.
///
/// A client streaming a build context or a `docker cp` sends 32 KiB chunks;
/// hyper reads a few hundred KiB of them at once but hands them over one
/// chunk per poll, and its client would write each as a chunk of its own:
/// one system call, and one wake-up of dockerd, apiece. This body joins
/// what is already buffered, up to [`COALESCE_LIMIT`]: when the inner body
/// has nothing ready, it yields to the task once (which lets the client
/// connection decode its next buffered chunk) and sends what it has if
/// that brought nothing. Data never waits for the client.
pub struct CoalescingBody {
    inner: ProxyBody,
    buffer: bytes::BytesMut,
    /// Times it has yielded since the buffer last grew.
    yielded: u8,
    /// What ended the previous batch (trailers, the end, an error), to be
    /// returned after the buffer.
    held: Option<Option<Result<hyper::body::Frame<bytes::Bytes>, BoxError>>>,
}

impl CoalescingBody {
    pub fn new(inner: ProxyBody) -> CoalescingBody {
        CoalescingBody {
            inner,
            buffer: bytes::BytesMut::new(),
            yielded: 0,
            held: None,
        }
    }

    fn flush(&mut self) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, BoxError>>> {
        self.yielded = 0;
        Poll::Ready(Some(Ok(hyper::body::Frame::data(self.buffer.split().freeze()))))
    }
}

impl hyper::body::Body for CoalescingBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.buffer.is_empty() {
            if let Some(held) = this.held.take() {
                return Poll::Ready(held);
            }
        } else if this.held.is_some() {
            return this.flush();
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if this.buffer.is_empty() && data.len() >= COALESCE_LIMIT => {
                        return Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
                    }
                    Ok(data) => {
                        if this.buffer.capacity() == 0 {
                            this.buffer.reserve(COALESCE_LIMIT + 64 * 1024);
                        }
                        this.buffer.extend_from_slice(&data);
                        this.yielded = 0;
                        if this.buffer.len() >= COALESCE_LIMIT {
                            return this.flush();
                        }
                    }
                    Err(frame) if this.buffer.is_empty() => return Poll::Ready(Some(Ok(frame))),
                    Err(frame) => {
                        this.held = Some(Some(Ok(frame)));
                        return this.flush();
                    }
                },
                Poll::Ready(other) if this.buffer.is_empty() => return Poll::Ready(other),
                Poll::Ready(other) => {
                    this.held = Some(other);
                    return this.flush();
                }
                Poll::Pending if this.buffer.is_empty() => return Poll::Pending,
                Poll::Pending if this.yielded < COALESCE_YIELDS => {
                    this.yielded += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => return this.flush(),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.buffer.is_empty() && self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let buffered = self.buffer.len() as u64;
        if self.held.is_some() {
            // Only trailers, an error or the end are left after the buffer.
            return hyper::body::SizeHint::with_exact(buffered);
        }
        let inner = self.inner.size_hint();
        let mut hint = hyper::body::SizeHint::new();
        hint.set_lower(inner.lower() + buffered);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + buffered);
        }
        hint
    }
}

pub fn box_incoming(body: Incoming) -> ProxyBody {
    body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;
    use http::HeaderMap;
    use hyper::body::{Body, Frame};

    use super::*;

    /// A body that plays a script: frames, and `None` for "not ready yet"
    /// (it wakes the task and returns `Pending` once).
    struct Script(VecDeque<Option<Frame<Bytes>>>);

    impl Body for Script {
        type Data = Bytes;
        type Error = crate::body::BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.0.pop_front() {
                Some(Some(frame)) => Poll::Ready(Some(Ok(frame))),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(None),
            }
        }
    }

    fn data(n: usize, byte: u8) -> Option<Frame<Bytes>> {
        Some(Frame::data(Bytes::from(vec![byte; n])))
    }

    async fn frames(script: Vec<Option<Frame<Bytes>>>) -> Vec<Frame<Bytes>> {
        let mut body = CoalescingBody::new(Script(script.into()).boxed_unsync());
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            out.push(frame.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn ready_frames_are_joined_and_trailers_kept_in_order() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-end", "1".parse().unwrap());
        let out = frames(vec![data(10, b'a'), data(20, b'b'), Some(Frame::trailers(trailers))]).await;
        assert_eq!(out.len(), 2, "{out:?}");
        let joined = out[0].data_ref().unwrap();
        assert_eq!(&joined[..10], &[b'a'; 10]);
        assert_eq!(&joined[10..], &[b'b'; 20]);
        assert_eq!(out[1].trailers_ref().unwrap()["x-end"], "1");
    }

    #[tokio::test]
    async fn a_short_wait_is_bridged_a_long_one_is_not() {
        // Two polls without data are waited out; five are not.
        let out = frames(vec![data(1, b'a'), None, None, data(1, b'b')]).await;
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data_ref().unwrap().as_ref(), b"ab");
        let out = frames(vec![data(1, b'a'), None, None, None, None, None, data(1, b'b')]).await;
        let sizes: Vec<usize> = out.iter().map(|f| f.data_ref().unwrap().len()).collect();
        assert_eq!(sizes, vec![1, 1]);
    }

    #[tokio::test]
    async fn frames_stop_growing_at_the_limit_and_no_byte_is_lost() {
        let chunk = 32 * 1024;
        let script: Vec<_> = (0..20).map(|i| data(chunk, i as u8)).collect();
        let out = frames(script).await;
        let mut all = Vec::new();
        for frame in &out {
            let bytes = frame.data_ref().unwrap();
            assert!(bytes.len() <= COALESCE_LIMIT + chunk, "{}", bytes.len());
            all.extend_from_slice(bytes);
        }
        assert_eq!(out.len(), 3, "20 chunks of 32 KiB in 256 KiB frames");
        let expected: Vec<u8> = (0..20).flat_map(|i| vec![i as u8; chunk]).collect();
        assert_eq!(all, expected);
    }
}
