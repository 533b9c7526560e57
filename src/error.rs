//! Errors the shim itself answers with, turned into Docker-style JSON in one
//! place so that the `docker` CLI prints them (`Error response from daemon:
//! forge-shim: ...`).

use std::path::PathBuf;

use http::{Response, StatusCode};

use crate::body::{bytes_response, json_bytes, BodyError, ProxyBody};

/// Everything that can make the shim answer instead of dockerd.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("cannot reach dockerd at {path}: {source}")]
    UpstreamConnect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach dockerd at {path}: connect timed out")]
    UpstreamTimeout { path: PathBuf },
    #[error("dockerd at {path} failed: {source}")]
    Upstream {
        path: PathBuf,
        #[source]
        source: hyper::Error,
    },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A standards rule refused the request; the text is complete.
    #[error("{0}")]
    Denied(String),
    /// Something the standards need of dockerd (a container's or volume's
    /// inspect) could not be read, so the request is not forwarded unjudged.
    #[error("{what} cannot be checked: {message}")]
    Unchecked { what: String, message: String },
    #[error("container {container}: {message}")]
    Wake { container: String, message: String },
    #[error("no such forge-shim endpoint: {0}")]
    NotFound(String),
    #[error("method {0} not allowed here")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Internal(String),
}

impl ShimError {
    pub fn status(&self) -> StatusCode {
        match self {
            ShimError::UpstreamConnect { .. }
            | ShimError::UpstreamTimeout { .. }
            | ShimError::Upstream { .. }
            | ShimError::Unchecked { .. } => StatusCode::BAD_GATEWAY,
            ShimError::BadRequest(_) | ShimError::Body(BodyError::Read(_)) => StatusCode::BAD_REQUEST,
            ShimError::Body(BodyError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            ShimError::Body(BodyError::TimedOut { .. }) => StatusCode::REQUEST_TIMEOUT,
            ShimError::Denied(_) => StatusCode::FORBIDDEN,
            ShimError::Wake { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ShimError::NotFound(_) => StatusCode::NOT_FOUND,
            ShimError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ShimError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Docker-style response: `{"message":"forge-shim: ..."}`.
    pub fn into_response(self) -> Response<ProxyBody> {
        json_error(self.status(), &self.to_string())
    }
}

impl From<crate::lifecycle::LifecycleError> for ShimError {
    fn from(error: crate::lifecycle::LifecycleError) -> ShimError {
        use crate::lifecycle::LifecycleError as L;
        match error {
            L::WakeTimedOut { container } => ShimError::Wake {
                container,
                message: "timed out waiting for another transition".to_string(),
            },
            L::WakeFailed { container, message } => ShimError::Wake {
                container,
                message: format!("wake failed: {message}"),
            },
            other @ (L::PauseFailed { .. } | L::Docker(_)) => ShimError::Internal(other.to_string()),
        }
    }
}

/// A Docker-style error response with the `forge-shim: ` prefix.
pub fn json_error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    bytes_response(status, "application/json", json_error_body(message))
}

/// The body of every error the shim answers: `{"message":"forge-shim: …"}`
/// and a newline, as dockerd writes its own.
pub fn json_error_body(message: &str) -> Vec<u8> {
    json_bytes(&serde_json::json!({ "message": format!("forge-shim: {message}") }))
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::lifecycle::LifecycleError;

    #[test]
    fn lifecycle_errors_keep_their_status_and_text() {
        let cases = [
            (
                LifecycleError::WakeTimedOut {
                    container: "web".into(),
                },
                StatusCode::SERVICE_UNAVAILABLE,
                "container web: timed out waiting for another transition",
            ),
            (
                LifecycleError::WakeFailed {
                    container: "web".into(),
                    message: "no answer within 10s".into(),
                },
                StatusCode::SERVICE_UNAVAILABLE,
                "container web: wake failed: no answer within 10s",
            ),
            (
                LifecycleError::PauseFailed {
                    container: "web".into(),
                    message: "dockerd: Container web is not running".into(),
                },
                StatusCode::INTERNAL_SERVER_ERROR,
                "container web: pause failed: dockerd: Container web is not running",
            ),
        ];
        for (error, status, text) in cases {
            assert_eq!(error.to_string(), text);
            let shim = ShimError::from(error);
            assert_eq!(shim.status(), status, "{text}");
            assert_eq!(shim.to_string(), text);
        }
    }

    #[tokio::test]
    async fn errors_are_docker_style_json() {
        let response = ShimError::Denied("standards: privileged mode is not allowed".into()).into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value["message"],
            "forge-shim: standards: privileged mode is not allowed"
        );
    }
}
