//! Bodies: the one body type every response (and forwarded request) has,
//! and the few ways the shim builds or reads one. Leaf vocabulary: this
//! module knows HTTP, not the shim.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the shim sends: dockerd's, streamed, or its own.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Why a whole body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body too large: the limit is {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the request body: {0}")]
    Read(String),
    #[error("request body not received within {}s", within.as_secs_f64())]
    TimedOut { within: std::time::Duration },
}

/// A body of exactly these bytes.
pub fn full_body(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A body of no bytes.
pub fn empty_body() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Reads a whole body of at most `limit` bytes: the standards and the wake
/// phase read small JSON bodies; anything larger is refused.
pub async fn read_limited(mut body: ProxyBody, limit: u64) -> Result<Bytes, BodyError> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if (buffer.len() + data.len()) as u64 > limit {
                return Err(BodyError::TooLarge { limit });
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// [`read_limited`], within `within`: a body that dribbles in is cut.
pub async fn read_limited_within(body: ProxyBody, limit: u64, within: std::time::Duration) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(within, read_limited(body, limit)).await {
        Ok(read) => read,
        Err(_) => Err(BodyError::TimedOut { within }),
    }
}

/// Frames a message whose body the shim has replaced by `len` bytes: one
/// exact `Content-Length`, no `Transfer-Encoding`.
pub fn set_exact_length(headers: &mut HeaderMap, len: usize) {
    headers.remove(header::TRANSFER_ENCODING);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
}

/// `value` as JSON with a trailing newline, as dockerd writes its own.
pub fn json_bytes(value: &serde_json::Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// A JSON response with an exact `Content-Length`.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ProxyBody> {
    bytes_response(status, "application/json", json_bytes(value))
}

/// A response of `bytes` with an exact `Content-Length`.
pub fn bytes_response(status: StatusCode, content_type: &'static str, bytes: impl Into<Bytes>) -> Response<ProxyBody> {
    let bytes = bytes.into();
    let mut response = Response::new(full_body(bytes.clone()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    set_exact_length(headers, bytes.len());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        assert_eq!(&read_limited(full_body("abc"), 3).await.unwrap()[..], b"abc");
        assert!(matches!(
            read_limited(full_body("abcd"), 3).await,
            Err(BodyError::TooLarge { limit: 3 })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_dribbles_is_cut_in_time() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(1);
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|frame| (frame, receiver))
        });
        let body = http_body_util::StreamBody::new(stream).boxed_unsync();
        sender
            .send(Ok(http_body::Frame::data(Bytes::from_static(b"{"))))
            .await
            .unwrap();
        let within = std::time::Duration::from_secs(30);
        let read = read_limited_within(body, 1024, within).await;
        assert!(matches!(read, Err(BodyError::TimedOut { .. })), "{read:?}");
        drop(sender);
    }

    #[test]
    fn exact_length_replaces_chunked_framing() {
        let mut headers = HeaderMap::new();
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        set_exact_length(&mut headers, 12);
        assert_eq!(headers.get(header::TRANSFER_ENCODING), None);
        assert_eq!(headers[header::CONTENT_LENGTH], "12");
    }
}
