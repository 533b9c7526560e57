//! The fast path: a request the shim has nothing to do with (`/_ping`,
//! `version`, `ps`, `inspect`, `events`, image and network listings, …)
//! goes to dockerd as the bytes the client sent, and dockerd's response
//! comes back as the bytes dockerd sent. Nothing is decoded into header maps
//! or re-encoded, which is most of what a proxy costs on a short call.
//!
//! Only heads this module understands exactly as dockerd (Go's `net/http`)
//! will take the fast path; everything else goes to hyper, which re-encodes
//! what it forwards. This is what keeps the shim's view of where one request
//! ends and the next begins the same as dockerd's (no request smuggling past
//! the standards):
//!
//! - HTTP/1.1 only; every line ends in CRLF, none starts the head;
//! - an origin-form target of visible ASCII (no `#`);
//! - a body framed by one `Content-Length` of digits only, or by one
//!   `Transfer-Encoding: chunked` (and no length), whose chunks are scanned
//!   with a grammar stricter than Go's ([`ChunkedEnd`]: anything it accepts,
//!   Go reads to the same end; anything else closes the connection);
//! - no `Upgrade` or `Expect`, and a `Connection` of `keep-alive` and
//!   `close` only;
//! - a route with no phase but the wake phase ([`Proxy::fast_route`]), whose
//!   path dockerd routes as sent (no normalisation needed). The wake phase
//!   needs only the route and query; its in-use mark is held until the
//!   response ends.
//!
//! The first request that does not qualify hands the whole connection to
//! hyper (`Handoff`), with the bytes already read and the upstream
//! connection, which is at a message boundary. A connection never comes
//! back from hyper.
//!
//! Responses are framed by their `Content-Length`, by scanning their chunks
//! ([`ChunkedEnd`]), or by dockerd closing the connection (`framing`). While
//! a response streams (`events`, `wait`, `stats`), the client is watched: a
//! client that closes (or is killed) ends the stream and closes dockerd's
//! side; one that only shuts its write half still gets its answers.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::time::Instant;

use super::admission::Slot;
use super::Proxy;
use crate::route::{FastPath, Route};
use framing::{error_response, BodyLeft};
pub use framing::{parse_request, parse_response, ChunkedEnd, Framing, RequestBody, RequestHead};
use sock::{read_into, Buffer, Socket};

mod framing;
mod sock;

/// How much of a response is read from dockerd at once: its head (most
/// responses are whole in it), then its body.
const HEAD_CHUNK: usize = 8 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Buffer memory an idle connection keeps.
const KEEP_BUFFER: usize = 16 * 1024;
/// How much of a request body is read from the client at once.
const BODY_CHUNK: usize = 128 * 1024;
/// An idle client connection lets its upstream connection go after this;
/// its next request opens another.
const UPSTREAM_IDLE: std::time::Duration = std::time::Duration::from_secs(10);
/// Bytes of a client's next requests buffered while a response streams.
const MAX_PIPELINED: usize = 64 * 1024;

/// How a connection left the fast path.
pub enum Outcome {
    /// The connection is over.
    Closed,
    /// Serve the rest with hyper: `pending` was read from `client` and not
    /// forwarded; `upstream` is idle between two messages.
    Handoff {
        client: UnixStream,
        pending: BytesMut,
        upstream: Option<UnixStream>,
    },
}

/// Why an exchange ended the connection.
#[derive(Debug)]
enum Ended {
    /// The client went away (EOF or error).
    Client,
    /// The client's chunked body broke the grammar.
    BadBody(&'static str),
    /// dockerd closed or broke the connection, or sent what cannot be
    /// framed; `answered` tells whether the client got a response head.
    Upstream { answered: bool, reason: String },
}

/// One client connection on the fast path.
struct Conn<'a> {
    proxy: &'a Proxy,
    slot: &'a Slot,
    client: Socket,
    /// Bytes read from the client and not yet forwarded.
    pending: Buffer,
    upstream: Option<Socket>,
    /// dockerd's bytes not yet written to the client.
    response: Buffer,
    /// Set once the client has shut its write half: it still reads what
    /// it asked for, and this resolves if it closes entirely.
    hangup: Option<futures_util::future::BoxFuture<'static, ()>>,
    /// When the request being served had its head read (request latency).
    started: std::time::Instant,
}

impl Proxy {
    /// Serves `client` on the fast path for as long as its requests
    /// qualify.
    pub async fn serve_passthrough(&self, client: UnixStream, slot: &Slot) -> Outcome {
        let client = match Socket::new(client) {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take a client connection");
                return Outcome::Closed;
            }
        };
        let mut conn = Conn {
            proxy: self,
            slot,
            client,
            pending: Buffer::default(),
            upstream: None,
            response: Buffer::default(),
            hangup: None,
            started: std::time::Instant::now(),
        };
        loop {
            let request = match conn.read_head().await {
                None => return Outcome::Closed,
                Some(Next::Handoff(reason)) => return conn.handoff(reason),
                Some(Next::Forward(request)) => request,
            };
            self.inner.metrics.requests.inc();
            self.inner.metrics.requests_fast_path.inc();
            conn.started = std::time::Instant::now();
            // Held until the response has ended: no sleep under a request.
            let _in_use = match &request.claim {
                None => None,
                Some((route, query)) => match super::wake::claim(self, route, query.as_deref()).await {
                    Ok(super::wake::Claim::Use(guard)) => guard,
                    Ok(_) => {
                        // `fast_route` leaves out the endpoints that get an
                        // answer or need their body read.
                        let message = "internal error: the wake phase wanted more than the fast path gives";
                        return conn.answer(500, message).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "request failed");
                        return conn.answer(e.status().as_u16(), &e.to_string()).await;
                    }
                },
            };
            match conn.exchange(&request).await {
                Ok(true) if !request.close => continue,
                Ok(_) => {
                    conn.client.shutdown_write();
                    return Outcome::Closed;
                }
                Err(Handoff) => return conn.handoff("dockerd is not reachable"),
            }
        }
    }

    /// Whether a request may take the fast path, and whether it needs the
    /// wake phase first: as [`crate::route::Phases::fast_path`] says, for
    /// paths dockerd routes as sent.
    fn fast_route(&self, method: &str, target: &str) -> FastRoute {
        let lifecycle = self.inner.lifecycle.as_ref();
        let checks = self.inner.checks.any_pending();
        fast_route(method, target, lifecycle.is_some(), checks, || {
            lifecycle.is_some_and(|l| l.has_sleepers())
        })
    }
}

/// [`Proxy::fast_route`] for a shim whose lifecycle runs (`sleeping`) or
/// not; `sleepers` tells whether it holds a container asleep now, asked
/// only of the routes whose answer is disguised (`ps`, inspect). Never: a
/// path the shim would have to normalise (dockerd would not route it as
/// sent), a route whose phases say no, or one that waits for create checks
/// while `checks` are in flight (the full proxy waits for them).
fn fast_route(method: &str, target: &str, sleeping: bool, checks: bool, sleepers: impl FnOnce() -> bool) -> FastRoute {
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return FastRoute::No;
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let route = match Route::classify(&method, path) {
        Ok(route) if route.forward_path.is_none() => route,
        _ => return FastRoute::No,
    };
    let phases = route.endpoint.phases();
    if phases.after_checks && checks {
        return FastRoute::No;
    }
    let sleepers = phases.disguise && sleepers();
    match phases.fast_path(sleeping, sleepers) {
        FastPath::No => FastRoute::No,
        FastPath::Plain => FastRoute::Plain,
        FastPath::Claim => FastRoute::Claim(route, query.map(str::to_string)),
    }
}

/// Answers a connection the shim will not serve with a Docker-style error
/// and closes it. What the client sent meanwhile is read and dropped for a
/// moment, so that closing does not reset the connection before the client
/// has read the answer.
pub async fn refuse(mut client: UnixStream, status: u16, message: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let linger = std::time::Duration::from_secs(1);
    let answer = error_response(status, message);
    if tokio::time::timeout(linger, client.write_all(&answer)).await.is_err() {
        return;
    }
    let _ = client.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(linger, async {
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// What [`Proxy::fast_route`] decided.
enum FastRoute {
    No,
    Plain,
    /// Run the wake phase for this route and query first.
    Claim(Route, Option<String>),
}

/// The exchange could not start: give the connection to hyper, which
/// answers with the proper error.
struct Handoff;

/// A request at the head of `pending` that takes the fast path.
struct FastRequest {
    head_len: usize,
    body: RequestBody,
    head_request: bool,
    close: bool,
    claim: Option<(Route, Option<String>)>,
}

/// What to do with the request at the head of `pending`.
enum Next {
    Forward(FastRequest),
    Handoff(&'static str),
}

impl Conn<'_> {
    fn handoff(self, reason: &'static str) -> Outcome {
        tracing::trace!(reason, "connection handed to the full proxy");
        let client = match self.client.into_tokio() {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand a client connection over");
                return Outcome::Closed;
            }
        };
        Outcome::Handoff {
            client,
            pending: self.pending.into_bytes_mut(),
            upstream: self.upstream.and_then(|upstream| upstream.into_tokio().ok()),
        }
    }

    /// Answers the client with a Docker-style error and ends the connection.
    async fn answer(mut self, status: u16, message: &str) -> Outcome {
        self.proxy
            .inner
            .metrics
            .response("fast", status, self.started.elapsed());
        let _ = self.client.write_all(&error_response(status, message)).await;
        self.client.shutdown_write();
        Outcome::Closed
    }

    /// Waits until `pending` starts with a complete request head and says
    /// what to do with it; `None` when the client left, was too slow, or
    /// shutdown began while it was idle.
    async fn read_head(&mut self) -> Option<Next> {
        let timeout = self.proxy.inner.header_read_timeout;
        let token = self.proxy.inner.shutdown.token.clone();
        let mut deadline: Option<Instant> = None;
        // Between requests the connection is idle: it gives way to a new
        // connection when all slots are taken, closes after `client_idle`,
        // and lets its upstream connection go after `UPSTREAM_IDLE`.
        let mut idle = None;
        let mut idle_until = None;
        let mut upstream_until = None;
        loop {
            match parse_request(self.pending.as_slice()) {
                RequestHead::Partial => {}
                RequestHead::Simple {
                    method,
                    target,
                    head_len,
                    body,
                    close,
                } => {
                    let claim = match self.proxy.fast_route(method, target) {
                        FastRoute::No => return Some(Next::Handoff("the route has a phase")),
                        FastRoute::Plain => None,
                        FastRoute::Claim(route, query) => Some((route, query)),
                    };
                    return Some(Next::Forward(FastRequest {
                        head_len,
                        body,
                        head_request: method == "HEAD",
                        close,
                        claim,
                    }));
                }
                RequestHead::Complex(reason) => return Some(Next::Handoff(reason)),
            }
            if !self.pending.is_empty() && deadline.is_none() {
                deadline = Some(Instant::now() + timeout);
                idle = None;
            }
            let waiting = self.pending.is_empty();
            if waiting && idle.is_none() {
                if self.slot.is_evicted() {
                    return None;
                }
                let now = Instant::now();
                idle = Some(self.slot.idle());
                idle_until = Some(now + self.proxy.inner.client_idle);
                upstream_until = self.upstream.is_some().then(|| now + UPSTREAM_IDLE);
            }
            let read = tokio::select! {
                read = read_into(&self.client, &mut self.pending, 4 * 1024) => read,
                _ = sleep_until(deadline), if deadline.is_some() => {
                    tracing::debug!("client too slow sending a request head; closing");
                    return None;
                }
                _ = token.cancelled(), if waiting => return None,
                _ = self.slot.evicted(), if waiting => {
                    tracing::debug!("idle connection gives way to a new one");
                    return None;
                }
                _ = sleep_until(idle_until), if waiting => {
                    tracing::debug!("client connection idle too long; closing");
                    return None;
                }
                _ = sleep_until(upstream_until), if waiting && upstream_until.is_some() => {
                    self.upstream = None;
                    upstream_until = None;
                    continue;
                }
            };
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Forwards the request at the head of `pending`, its body as it comes,
    /// and dockerd's response. `Ok(true)`: the connection may serve another
    /// request.
    async fn exchange(&mut self, request: &FastRequest) -> Result<bool, Handoff> {
        let mut upstream = match self.upstream.take().filter(Socket::idle_and_open) {
            Some(upstream) => upstream,
            None => {
                let path = &self.proxy.inner.upstream_path;
                let connect = UnixStream::connect(path);
                match tokio::time::timeout(self.proxy.inner.upstream_connect_timeout, connect).await {
                    Ok(Ok(upstream)) => Socket::new(upstream).map_err(|_| Handoff)?,
                    _ => return Err(Handoff),
                }
            }
        };
        let result = match self.forward_request(&mut upstream, request).await {
            Ok(()) => self.forward_response(&mut upstream, request.head_request).await,
            Err(Ended::Upstream { reason, .. }) => {
                // dockerd may have answered before it read the whole body
                // (an error), then closed: that answer is the client's.
                match self.forward_response(&mut upstream, request.head_request).await {
                    Ok(_) => Ok(false),
                    Err(_) => Err(Ended::Upstream {
                        answered: false,
                        reason,
                    }),
                }
            }
            Err(ended) => Err(ended),
        };
        self.client.settle();
        upstream.settle();
        self.response.clear();
        self.response.shrink_if_empty(KEEP_BUFFER);
        self.pending.shrink_if_empty(KEEP_BUFFER);
        match result {
            Ok(keep) => {
                if keep {
                    self.upstream = Some(upstream);
                }
                Ok(keep)
            }
            Err(Ended::Client) => {
                tracing::debug!("client left during a request; closing dockerd's side");
                Ok(false)
            }
            Err(Ended::BadBody(reason)) => {
                tracing::debug!(reason, "malformed chunked request body; closing");
                let message = format!("bad request: {reason}");
                self.proxy.inner.metrics.response("fast", 400, self.started.elapsed());
                let _ = self.client.write_all(&error_response(400, &message)).await;
                Ok(false)
            }
            Err(Ended::Upstream { answered, reason }) => {
                tracing::warn!(%reason, "dockerd connection failed during a request");
                if !answered {
                    let message = format!(
                        "dockerd at {} failed: {reason}",
                        self.proxy.inner.upstream_path.display()
                    );
                    self.proxy.inner.metrics.response("fast", 502, self.started.elapsed());
                    let _ = self.client.write_all(&error_response(502, &message)).await;
                }
                Ok(false)
            }
        }
    }

    /// Sends the head and body at the start of `pending` upstream, reading
    /// the rest of the body from the client as it comes.
    async fn forward_request(&mut self, upstream: &mut Socket, request: &FastRequest) -> Result<(), Ended> {
        let mut body = match request.body {
            RequestBody::Length(n) => BodyLeft::Length(n),
            RequestBody::Chunked => BodyLeft::Chunked(ChunkedEnd::default()),
        };
        let mut ready = request.head_len;
        let mut done = matches!(body, BodyLeft::Length(0));
        loop {
            if !done {
                let (taken, ended) = body.take(&self.pending.as_slice()[ready..]).map_err(Ended::BadBody)?;
                ready += taken;
                done = ended;
            }
            if ready > 0 {
                upstream
                    .write_all(&self.pending.as_slice()[..ready])
                    .await
                    .map_err(|e| Ended::Upstream {
                        answered: false,
                        reason: format!("sending the request: {e}"),
                    })?;
                self.pending.consume(ready);
                ready = 0;
            }
            if done {
                return Ok(());
            }
            match read_into(&self.client, &mut self.pending, BODY_CHUNK).await {
                Ok(0) | Err(_) => return Err(Ended::Client),
                Ok(_) => {}
            }
        }
    }

    /// Copies one response from `upstream` to the client, watching the
    /// client meanwhile. `Ok(true)` when both sides may be reused.
    async fn forward_response(&mut self, upstream: &mut Socket, head_request: bool) -> Result<bool, Ended> {
        self.response.clear();
        let head = loop {
            let failed = |reason: &str| Ended::Upstream {
                answered: false,
                reason: reason.to_string(),
            };
            match parse_response(self.response.as_slice(), head_request) {
                Ok(Some(head)) if (100..200).contains(&head.status) => {
                    // No interim response is possible without `Expect` or
                    // `Upgrade`, which never take the fast path.
                    return Err(failed("unexpected interim response"));
                }
                Ok(Some(head)) => {
                    self.proxy
                        .inner
                        .metrics
                        .response("fast", head.status, self.started.elapsed());
                    break head;
                }
                Ok(None) => {}
                Err(reason) => return Err(failed(reason)),
            }
            if self.read_upstream(upstream, HEAD_CHUNK, false).await? == 0 {
                return Err(failed("connection closed before a response"));
            }
        };
        let mut body = match head.framing {
            Framing::Empty => BodyLeft::Length(0),
            Framing::Length(n) => BodyLeft::Length(n),
            Framing::Chunked => BodyLeft::Chunked(ChunkedEnd::default()),
            Framing::UntilClose => BodyLeft::UntilClose,
        };
        let failed = |reason: &str| Ended::Upstream {
            answered: true,
            reason: reason.to_string(),
        };
        // The head goes out with whatever of the body came with it.
        let mut ready = head.head_len;
        let mut done = matches!(body, BodyLeft::Length(0));
        loop {
            if !done {
                let (taken, ended) = body.take(&self.response.as_slice()[ready..]).map_err(failed)?;
                ready += taken;
                done = ended;
            }
            if ready > 0 {
                if self.client.write_all(&self.response.as_slice()[..ready]).await.is_err() {
                    return Err(Ended::Client);
                }
                self.response.consume(ready);
                ready = 0;
            }
            if done {
                // Anything dockerd sent past the response means the two
                // sides disagree on framing: the connection is not reused.
                return Ok(!head.close && self.response.is_empty());
            }
            if self.read_upstream(upstream, READ_CHUNK, true).await? == 0 {
                return match body {
                    BodyLeft::UntilClose => Ok(false),
                    _ => Err(failed("connection closed in the middle of a response")),
                };
            }
        }
    }

    /// Reads more of dockerd's response; meanwhile, reads what the client
    /// sends (its next requests) into `pending`, and ends the exchange if
    /// the client leaves. A client that only shuts its write half (all its
    /// requests sent) still gets its answers; one that closes entirely or
    /// is killed does not keep dockerd's side open. `answered`: whether the
    /// client has had the response head, for the error.
    async fn read_upstream(&mut self, upstream: &Socket, size: usize, answered: bool) -> Result<usize, Ended> {
        loop {
            let watch = self.hangup.is_none() && self.pending.len() < MAX_PIPELINED;
            let hangup = async {
                match self.hangup.as_mut() {
                    Some(hangup) => hangup.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                read = read_into(upstream, &mut self.response, size) => {
                    return read.map_err(|e| Ended::Upstream { answered, reason: e.to_string() });
                }
                read = read_into(&self.client, &mut self.pending, 4 * 1024), if watch => match read {
                    Ok(0) => self.hangup = Some(super::forward::hangup(&self.client)),
                    Err(_) => return Err(Ended::Client),
                    Ok(_) => {}
                },
                () = hangup => return Err(Ended::Client),
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The client's socket behind the bytes the fast path read and did not
/// forward: hyper reads those first. Hijacked streams take the socket back
/// with [`Replay::into_parts`].
pub struct Replay {
    pending: BytesMut,
    stream: UnixStream,
}

impl Replay {
    pub fn new(pending: BytesMut, stream: UnixStream) -> Replay {
        Replay { pending, stream }
    }

    /// Bytes not read yet, and the socket.
    pub fn into_parts(self) -> (BytesMut, UnixStream) {
        (self.pending, self.stream)
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            let n = this.pending.len().min(buf.remaining());
            buf.put_slice(&this.pending[..n]);
            this.pending.advance(n);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    use super::*;

    /// A shim (no standards, no sleep) in front of `upstream`.
    fn proxy_in_front_of(upstream: &Path) -> Proxy {
        let yaml = format!(
            "upstream: {}\nstandards: {{ mode: off }}\nauto_sleep: {{ enabled: false }}\n",
            upstream.display()
        );
        let config = crate::config::Config::from_yaml_over_default(&yaml, "test.yml").unwrap();
        Proxy::new(super::super::ProxyParts {
            docker: std::sync::Arc::new(crate::docker::Docker::new(
                &config.config.upstream_path(),
                std::time::Duration::from_secs(5),
            )),
            config: crate::config::SharedConfig::new(config),
            lifecycle: None,
            metrics: std::sync::Arc::new(crate::metrics::Metrics::new()),
            tasks: tokio_util::task::TaskTracker::new(),
            token: tokio_util::sync::CancellationToken::new(),
            origins: crate::lifecycle::Origins::in_memory(),
            profiles: crate::lifecycle::Profiles::in_memory(),
        })
    }

    /// A stand-in for dockerd: for each connection, reads one request head
    /// and runs `answer` on the socket.
    fn fake_dockerd<F>(dir: &Path, answer: F) -> std::path::PathBuf
    where
        F: Fn(usize, UnixStream) -> futures_util::future::BoxFuture<'static, ()> + Send + 'static,
    {
        let path = dir.join("dockerd.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let mut count = 0;
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                tokio::spawn(answer(count, stream));
                count += 1;
            }
        });
        path
    }

    fn slot() -> Slot {
        match super::super::admission::Admission::new(4).admit() {
            super::super::admission::Admit::Yes(slot) => slot,
            super::super::admission::Admit::Full { .. } => unreachable!("a new admission has room"),
        }
    }

    const PING: &[u8] = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n";

    async fn read_all(client: &mut UnixStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn dockerd_closing_before_it_answers_is_a_docker_style_502() {
        let dir = tempfile::tempdir().unwrap();
        let upstream = fake_dockerd(dir.path(), |_, stream| Box::pin(async move { drop(stream) }));
        let proxy = proxy_in_front_of(&upstream);
        let (mut client, server) = UnixStream::pair().unwrap();
        let serving =
            tokio::spawn(async move { matches!(proxy.serve_passthrough(server, &slot()).await, Outcome::Closed) });
        client.write_all(PING).await.unwrap();
        let answer = read_all(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 502 "), "{answer}");
        assert!(answer.contains(r#"{"message":"forge-shim: dockerd at "#), "{answer}");
        assert!(serving.await.unwrap());
    }

    #[tokio::test]
    async fn dockerd_closing_in_the_middle_of_a_response_closes_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let upstream = fake_dockerd(dir.path(), |_, mut stream| {
            Box::pin(async move {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
                    .await;
            })
        });
        let proxy = proxy_in_front_of(&upstream);
        let (mut client, server) = UnixStream::pair().unwrap();
        tokio::spawn(async move { proxy.serve_passthrough(server, &slot()).await });
        client.write_all(PING).await.unwrap();
        // What dockerd sent arrives, then the connection ends short.
        let answer = read_all(&mut client).await;
        assert_eq!(answer, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
    }

    #[tokio::test]
    async fn a_kept_upstream_connection_dockerd_closed_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        // Each connection answers one ping and closes, without saying so.
        let upstream = fake_dockerd(dir.path(), |n, mut stream| {
            Box::pin(async move {
                let body = format!("OK{n}");
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let _ = stream.write_all(answer.as_bytes()).await;
            })
        });
        let proxy = proxy_in_front_of(&upstream);
        let (mut client, server) = UnixStream::pair().unwrap();
        tokio::spawn(async move { proxy.serve_passthrough(server, &slot()).await });
        for n in 0..3 {
            client.write_all(PING).await.unwrap();
            let expected = format!("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nOK{n}");
            let mut answer = vec![0u8; expected.len()];
            tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut answer))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&answer), expected);
            // Give the fake time to close its side before the next ping.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[test]
    fn routes_held_for_create_checks_leave_the_fast_path_while_one_runs() {
        // Held back while a check runs: unknown routes, archive, export.
        for (method, path) in [
            ("GET", "/_ping"),
            ("GET", "/containers/web/checkpoints"),
            ("PUT", "/containers/web/archive?path=/"),
            ("GET", "/containers/web/export"),
            ("POST", "/containers/web/restart"),
        ] {
            assert!(
                matches!(fast_route(method, path, false, true, || false), FastRoute::No),
                "{path}"
            );
            assert!(
                !matches!(fast_route(method, path, false, false, || false), FastRoute::No),
                "{path}"
            );
        }
        // Reads of a container are not held (compose inspects right after a create).
        for (method, path) in [
            ("GET", "/containers/web/json"),
            ("GET", "/containers/json"),
            ("GET", "/containers/web/logs"),
        ] {
            assert!(
                !matches!(fast_route(method, path, false, true, || false), FastRoute::No),
                "{path}"
            );
        }
    }

    #[test]
    fn the_fast_path_takes_no_judged_body_no_hijack_and_no_shim_api() {
        for (method, path) in crate::route::tests::SAMPLES {
            let phases = Route::classify(&method.parse().unwrap(), path)
                .unwrap()
                .endpoint
                .phases();
            for sleeping in [false, true] {
                let fast = fast_route(method, path, sleeping, false, || false);
                if phases.judged() || phases.reads_body() || phases.upgrade || phases.shim_api {
                    assert!(matches!(fast, FastRoute::No), "{method} {path} took the fast path");
                }
                let claimed = matches!(fast, FastRoute::Claim(..));
                let must_claim = sleeping && phases.wake == crate::route::WakePhase::Use;
                assert!(
                    claimed == must_claim || matches!(fast, FastRoute::No),
                    "{method} {path}: the wake phase is skipped or run for nothing"
                );
            }
        }
        // What the fast path does take.
        assert!(matches!(
            fast_route("GET", "/_ping", true, false, || true),
            FastRoute::Plain
        ));
        assert!(matches!(
            fast_route("GET", "/v1.41/containers/web/top?ps_args=aux", true, false, || true),
            FastRoute::Claim(_, Some(query)) if query == "ps_args=aux"
        ));
        // `ps` and inspect go as dockerd's bytes while nothing sleeps, and
        // to the disguise (hyper) while something does.
        assert!(matches!(
            fast_route("GET", "/containers/json", true, false, || false),
            FastRoute::Plain
        ));
        assert!(matches!(
            fast_route("GET", "/containers/json?all=1", true, false, || true),
            FastRoute::No
        ));
        assert!(matches!(
            fast_route("GET", "/v1.41/containers/web/json", true, false, || true),
            FastRoute::No
        ));
        assert!(matches!(
            fast_route("GET", "/_ping", true, false, || true),
            FastRoute::Plain
        ));
        // A path dockerd would have to be sent cleaned goes to hyper.
        assert!(matches!(
            fast_route("GET", "//_ping", true, false, || true),
            FastRoute::No
        ));
        assert!(matches!(
            fast_route("POST", "/containers/%63reate", false, false, || false),
            FastRoute::No
        ));
    }

    #[tokio::test]
    async fn replay_reads_the_pending_bytes_first() {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b" world").await.unwrap();
        drop(b);
        let mut replay = Replay::new(BytesMut::from(&b"hello"[..]), a);
        let mut out = String::new();
        replay.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
