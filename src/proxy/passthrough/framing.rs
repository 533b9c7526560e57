//! HTTP/1.1 framing for the fast path, pure: which request heads it takes,
//! where a response's head and body end, and the end of a chunked body found
//! without decoding it. No I/O here; `passthrough` does that.

/// The longest request head the fast path reads; longer ones go to hyper.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a head (hyper's default too).
const MAX_HEADERS: usize = 100;
/// The largest response head accepted from dockerd.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// What a request head allows.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestHead<'a> {
    /// More bytes are needed.
    Partial,
    /// Forwardable as read: `head_len` bytes of head, then the body.
    Simple {
        method: &'a str,
        /// The request target: path and query.
        target: &'a str,
        head_len: usize,
        body: RequestBody,
        close: bool,
    },
    /// hyper must serve it (and the rest of the connection); the reason is
    /// for debug logs.
    Complex(&'static str),
}

/// How a request body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody {
    Length(u64),
    Chunked,
}

/// Reads a request head from the start of `buf`.
pub fn parse_request(buf: &[u8]) -> RequestHead<'_> {
    if buf.first().is_some_and(|&b| b == b'\r' || b == b'\n') {
        return RequestHead::Complex("empty line before the request line");
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return RequestHead::Complex("long head"),
        Ok(httparse::Status::Partial) => return RequestHead::Partial,
        Err(_) => return RequestHead::Complex("head does not parse"),
    };
    if head_len > MAX_HEAD {
        return RequestHead::Complex("long head");
    }
    if !strict_line_ends(&buf[..head_len]) {
        return RequestHead::Complex("a line not ended by CRLF");
    }
    if request.version != Some(1) {
        return RequestHead::Complex("not HTTP/1.1");
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return RequestHead::Complex("no request line");
    };
    if !target.starts_with('/') || !target.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'#') {
        return RequestHead::Complex("not an origin-form target");
    }
    let mut body: Option<RequestBody> = None;
    let mut close = false;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            if body.is_some() {
                return RequestHead::Complex("Content-Length with another framing header");
            }
            match digits(header.value) {
                Some(n) => body = Some(RequestBody::Length(n)),
                None => return RequestHead::Complex("odd Content-Length"),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if body.is_some() || !header.value.eq_ignore_ascii_case(b"chunked") {
                return RequestHead::Complex("Transfer-Encoding other than one chunked");
            }
            body = Some(RequestBody::Chunked);
        } else if name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("expect") {
            return RequestHead::Complex("protocol header");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                    return RequestHead::Complex("Connection option");
                }
            }
        }
    }
    RequestHead::Simple {
        method,
        target,
        head_len,
        body: body.unwrap_or(RequestBody::Length(0)),
        close,
    }
}

/// Whether every LF is preceded by CR and every CR followed by LF.
fn strict_line_ends(head: &[u8]) -> bool {
    head.iter().enumerate().all(|(i, &b)| match b {
        b'\n' => i > 0 && head[i - 1] == b'\r',
        b'\r' => head.get(i + 1) == Some(&b'\n'),
        _ => true,
    })
}

/// A decimal of 1 to 18 digits and nothing else.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// How a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A response head: its length, how its body ends, and whether dockerd
/// closes the connection after it.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub head_len: usize,
    pub status: u16,
    pub framing: Framing,
    pub close: bool,
}

/// Reads a response head from the start of `buf`; `Ok(None)` when more
/// bytes are needed. `head_request` tells whether the request was `HEAD`.
pub fn parse_response(buf: &[u8], head_request: bool) -> Result<Option<ResponseHead>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => return Err("response head too long"),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("response head does not parse"),
    };
    let status = response.code.unwrap_or(0);
    let mut close = response.version != Some(1);
    let mut length: Option<u64> = None;
    let mut chunked: Option<bool> = None;
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = digits(header.value.trim_ascii()).ok_or("odd Content-Length in a response")?;
            if length.is_some_and(|m| m != n) {
                return Err("conflicting Content-Length in a response");
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides; `chunked` anywhere else is an error
            // dockerd never makes.
            let last = header.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            close |= header
                .value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    let framing = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(0)) => Framing::Empty,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    Ok(Some(ResponseHead {
        head_len,
        status,
        framing,
        close: close || framing == Framing::UntilClose,
    }))
}

/// Finds the end of a chunked body without decoding it.
#[derive(Debug, Default)]
pub struct ChunkedEnd {
    state: Chunk,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the hex size; `digits` read so far.
    #[default]
    Start,
    Size {
        size: u64,
        digits: u8,
    },
    Extension {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl ChunkedEnd {
    /// Consumes body bytes from `data`; returns how many belong to the body
    /// and whether the body ended there.
    pub fn advance(&mut self, data: &[u8]) -> Result<(usize, bool), &'static str> {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            self.state = match self.state {
                Chunk::Done => break,
                Chunk::Data { left } => {
                    let take = left.min((data.len() - i) as u64);
                    i += take as usize;
                    self.state = if take == left {
                        Chunk::DataCr
                    } else {
                        Chunk::Data { left: left - take }
                    };
                    continue;
                }
                Chunk::Start => match hex(b) {
                    Some(d) => Chunk::Size {
                        size: u64::from(d),
                        digits: 1,
                    },
                    None => return Err("bad chunk size"),
                },
                Chunk::Size { size, digits } => match (hex(b), b) {
                    (Some(_), _) if digits >= 15 => return Err("chunk too large"),
                    (Some(d), _) => Chunk::Size {
                        size: size << 4 | u64::from(d),
                        digits: digits + 1,
                    },
                    // Go cuts the extension at `;` and reads the size
                    // before it; whitespace there is its error, so ours.
                    (None, b';') => Chunk::Extension { size },
                    (None, b'\r') => Chunk::SizeLf { size },
                    _ => return Err("bad chunk size"),
                },
                Chunk::Extension { size } => match b {
                    b'\r' => Chunk::SizeLf { size },
                    b'\n' => return Err("bare LF in a chunk header"),
                    _ => Chunk::Extension { size },
                },
                Chunk::SizeLf { size } => match (b, size) {
                    (b'\n', 0) => Chunk::TrailerStart,
                    (b'\n', left) => Chunk::Data { left },
                    _ => return Err("chunk size line not ended by CRLF"),
                },
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Start,
                Chunk::DataCr | Chunk::DataLf => return Err("chunk not ended by CRLF"),
                Chunk::TrailerStart if b == b'\r' => Chunk::EndLf,
                Chunk::TrailerStart | Chunk::Trailer if b == b'\n' => return Err("bare LF in trailers"),
                Chunk::TrailerStart | Chunk::Trailer if b == b'\r' => Chunk::TrailerLf,
                Chunk::TrailerStart | Chunk::Trailer => Chunk::Trailer,
                Chunk::TrailerLf if b == b'\n' => Chunk::TrailerStart,
                Chunk::EndLf if b == b'\n' => Chunk::Done,
                Chunk::TrailerLf | Chunk::EndLf => return Err("trailer not ended by CRLF"),
            };
            i += 1;
            if self.state == Chunk::Done {
                break;
            }
        }
        Ok((i, self.state == Chunk::Done))
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Where a response body stands.
pub enum BodyLeft {
    Length(u64),
    Chunked(ChunkedEnd),
    UntilClose,
}

impl BodyLeft {
    /// How many of `data`'s bytes belong to the body, and whether it ended.
    pub fn take(&mut self, data: &[u8]) -> Result<(usize, bool), &'static str> {
        match self {
            BodyLeft::Length(left) => {
                let take = (*left).min(data.len() as u64);
                *left -= take;
                Ok((take as usize, *left == 0))
            }
            BodyLeft::Chunked(chunks) => chunks.advance(data),
            BodyLeft::UntilClose => Ok((data.len(), false)),
        }
    }
}

/// A complete Docker-style error response, for failures after the request
/// has been sent (when hyper is no longer an option).
pub fn error_response(status: u16, message: &str) -> Vec<u8> {
    let body = crate::error::json_error_body(message);
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests;
