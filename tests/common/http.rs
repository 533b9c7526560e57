//! Hand-made HTTP/1.1 over a Unix socket: malformed requests, chunked
//! bodies, case-variant JSON keys, upgrades and streams for the tests; the
//! keep-alive creates and the idle connections of the benches.
//!
//! Shared by the real tests and the benches (`examples/common` includes
//! this file with `#[path]`): it uses nothing else of `tests/common`.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Read timeout of a [`RawConnection`]: a hang detector.
pub const RAW_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub reason: String,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header line named `name`, as separate values.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response {} is not JSON ({e}): {:?}", self.status, self.body_text()))
    }
}

/// One client connection for hand-made HTTP: send bytes, read responses,
/// streams and upgraded connections. Reads time out after
/// [`RAW_READ_TIMEOUT`] (a panic), so nothing hangs.
pub struct RawConnection {
    stream: UnixStream,
    /// Bytes read but not yet consumed.
    buffer: Vec<u8>,
}

impl RawConnection {
    pub fn connect(socket: impl AsRef<Path>) -> RawConnection {
        Self::try_connect(socket.as_ref()).unwrap_or_else(|e| panic!("connect {}: {e}", socket.as_ref().display()))
    }

    pub fn try_connect(socket: &Path) -> std::io::Result<RawConnection> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(RAW_READ_TIMEOUT))?;
        stream.set_write_timeout(Some(RAW_READ_TIMEOUT))?;
        Ok(RawConnection {
            stream,
            buffer: Vec::new(),
        })
    }

    /// Sets the read timeout (the default is [`RAW_READ_TIMEOUT`]); a read
    /// that times out fails with `WouldBlock` or `TimedOut`.
    pub fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    /// The socket, e.g. to `shutdown(Write)` for a half-close.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the socket");
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends `bytes` unless the peer has closed the connection: `false`
    /// when the write fails with `EPIPE` or `ECONNRESET` (the shim closes a
    /// connection whose head it refuses, and a write racing that close gets
    /// one or the other), `true` when everything was written. Any other
    /// error panics. What the peer answered before closing is still there
    /// to read.
    pub fn send_unless_closed(&mut self, bytes: &[u8]) -> bool {
        match self.stream.write_all(bytes) {
            Ok(()) => true,
            Err(e) if is_closed_by_peer(&e) => false,
            Err(e) => panic!("write to the socket: {e}"),
        }
    }

    /// Closes the write side (the peer reads EOF).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Reads more into the buffer; `Ok(0)` at EOF. A reset counts as EOF.
    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn fill_or_panic(&mut self, what: &str) -> usize {
        self.fill().unwrap_or_else(|e| {
            panic!(
                "reading {what}: {e}; read so far: {:?}",
                String::from_utf8_lossy(&self.buffer)
            )
        })
    }

    /// Reads a response head: status line and headers, no body.
    pub fn read_head(&mut self) -> RawResponse {
        self.try_read_head()
            .unwrap_or_else(|e| panic!("reading a response head: {e}"))
    }

    pub fn try_read_head(&mut self) -> std::io::Result<RawResponse> {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let head: Vec<u8> = self.buffer.drain(..end + 4).collect();
                return parse_head(&head);
            }
            if self.fill()? == 0 {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a full response head; got {:?}",
                        String::from_utf8_lossy(&self.buffer)
                    ),
                ));
            }
        }
    }

    /// Reads one full response. `head_request`: the request was `HEAD`, so
    /// there is no body whatever the headers say.
    pub fn read_response(&mut self, head_request: bool) -> RawResponse {
        self.try_read_response(head_request)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    pub fn try_read_response(&mut self, head_request: bool) -> std::io::Result<RawResponse> {
        let mut response = self.try_read_head()?;
        response.body = self.try_read_body(&response, head_request)?;
        Ok(response)
    }

    /// Reads the body that `head` (just read) announces: chunked, by
    /// length, or up to EOF. `head_request`: as for
    /// [`RawConnection::read_response`].
    pub fn try_read_body(&mut self, head: &RawResponse, head_request: bool) -> std::io::Result<Vec<u8>> {
        let no_body = head_request || (100..200).contains(&head.status) || head.status == 204 || head.status == 304;
        if no_body {
            return Ok(Vec::new());
        }
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            self.try_read_chunked()
        } else if let Some(length) = head.header("content-length") {
            let length: usize = length
                .trim()
                .parse()
                .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "bad content-length"))?;
            while self.buffer.len() < length {
                if self.fill()? == 0 {
                    return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "body cut short"));
                }
            }
            Ok(self.buffer.drain(..length).collect())
        } else {
            while self.fill()? > 0 {}
            Ok(std::mem::take(&mut self.buffer))
        }
    }

    fn try_read_chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(chunk) = self.try_read_chunk()? {
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Reads the next chunk of a chunked body whose head was read: its
    /// data, or `None` after the last chunk (and its trailers). Nothing is
    /// consumed before a whole chunk is in, so a read that times out loses
    /// nothing and the call can be made again, e.g. on an event stream read
    /// with a short timeout.
    pub fn try_read_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(line_end) = find(&self.buffer, b"\r\n") {
                let size_text = String::from_utf8_lossy(&self.buffer[..line_end]);
                let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
                let size = usize::from_str_radix(&size_text, 16).map_err(|_| {
                    std::io::Error::new(ErrorKind::InvalidData, format!("bad chunk size {size_text:?}"))
                })?;
                let data = line_end + 2;
                if size == 0 {
                    // Trailers, if any, then an empty line.
                    if self.buffer[data..].starts_with(b"\r\n") {
                        self.buffer.drain(..data + 2);
                        return Ok(None);
                    }
                    if let Some(end) = find(&self.buffer[data..], b"\r\n\r\n") {
                        self.buffer.drain(..data + end + 4);
                        return Ok(None);
                    }
                } else if self.buffer.len() >= data + size + 2 {
                    let chunk = self.buffer[data..data + size].to_vec();
                    self.buffer.drain(..data + size + 2);
                    return Ok(Some(chunk));
                }
                if self.fill()? == 0 {
                    if size == 0 {
                        // The peer closed in the trailers: the body is whole.
                        self.buffer.clear();
                        return Ok(None);
                    }
                    return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "chunk cut short"));
                }
            } else if self.fill()? == 0 {
                return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "chunk size cut short"));
            }
        }
    }

    /// Reads until the bytes received (buffer included) contain `needle`;
    /// returns everything read so far and consumes it. Panics at EOF or
    /// after [`RAW_READ_TIMEOUT`].
    pub fn read_until_contains(&mut self, needle: &[u8]) -> Vec<u8> {
        loop {
            if find(&self.buffer, needle).is_some() {
                return std::mem::take(&mut self.buffer);
            }
            if self.fill_or_panic("a stream") == 0 {
                panic!(
                    "connection closed before {:?} arrived; got {:?}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.buffer)
                );
            }
        }
    }

    /// Reads until EOF; returns everything not yet consumed.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill_or_panic("until EOF") > 0 {}
        std::mem::take(&mut self.buffer)
    }

    /// Whether the peer closes the connection within `timeout`; anything
    /// it sends meanwhile is discarded.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).expect("set read timeout");
            let result = self.fill();
            self.stream
                .set_read_timeout(Some(RAW_READ_TIMEOUT))
                .expect("set read timeout");
            match result {
                Ok(0) => return true,
                Ok(_) => self.buffer.clear(),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
                Err(_) => return true,
            }
        }
    }
}

/// Sends `request` on a new connection to `socket` and reads one response
/// (no body when the request is a `HEAD`). Send `Connection: close` unless
/// the response has a length or is chunked.
pub fn raw_request(socket: impl AsRef<Path>, request: &[u8]) -> RawResponse {
    try_raw_request(socket.as_ref(), request).unwrap_or_else(|e| {
        panic!(
            "raw request to {} failed: {e}\nrequest: {:?}",
            socket.as_ref().display(),
            String::from_utf8_lossy(request)
        )
    })
}

pub fn try_raw_request(socket: &Path, request: &[u8]) -> std::io::Result<RawResponse> {
    let mut connection = RawConnection::try_connect(socket)?;
    connection.try_send(request)?;
    connection.try_read_response(request.starts_with(b"HEAD "))
}

/// `METHOD PATH` without a body and with `Connection: close`, as bytes. A
/// `POST` says `Content-Length: 0`, which dockerd and the shim want.
pub fn bodyless_request(method: &str, path: &str) -> Vec<u8> {
    let length = if method == "POST" { "Content-Length: 0\r\n" } else { "" };
    format!("{method} {path} HTTP/1.1\r\nHost: docker\r\n{length}Connection: close\r\n\r\n").into_bytes()
}

/// A request with a JSON body and `Content-Length`, as bytes.
pub fn json_request(method: &str, path: &str, body: &serde_json::Value) -> Vec<u8> {
    let body = serde_json::to_vec(body).expect("serialise JSON");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}

/// `body` as a chunked request body (chunks of `chunk` bytes), terminator
/// included.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn parse_head(head: &[u8]) -> std::io::Result<RawResponse> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("not an HTTP response: {status_line:?}"),
        ));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, "bad status line"))?;
    let reason = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(RawResponse {
        status,
        reason,
        headers,
        body: Vec::new(),
    })
}

/// Whether `error` says the peer closed the connection: `EPIPE` on a
/// write, `ECONNRESET` on a write or a read.
pub fn is_closed_by_peer(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
