//! The shim's own API under `/_forge/v1/`, read into the crate's own types:
//! `health`, `containers` ([`StatusRow`]), `events` ([`Transition`]),
//! `containers/{ref}/sleep` and `wake`.
//!
//! Each call comes twice: `try_…` returns an [`ApiError`] (a bench counts
//! or reports it), the plain form panics with it (a test fails on it).
//!
//! Shared by the real tests and the benches (`examples/common` includes
//! this file with `#[path]`): it uses only `http.rs` and `shim.rs`.

use std::fmt;
use std::io::ErrorKind;
use std::time::Duration;

use forge_shim::{StatusRow, Transition};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::http::{bodyless_request, try_raw_request, RawConnection, RawResponse};
use super::shim::Shim;

/// `GET /_forge/v1/health`. The shim writes this body field by field; the
/// crate has no type for it, so this one is the harness's.
#[derive(Clone, Debug, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub upstream: String,
    pub dockerd: DockerdHealth,
    pub connections_open: u64,
    pub connections_total: u64,
    pub requests_total: u64,
    pub requests_fast_path: u64,
}

/// Whether dockerd answered the shim's `/_ping`.
#[derive(Clone, Debug, Deserialize)]
pub struct DockerdHealth {
    pub reachable: bool,
    pub error: Option<String>,
}

/// The answer to `POST /_forge/v1/containers/{ref}/sleep` and `wake`.
#[derive(Clone, Debug, Deserialize)]
pub struct Changed {
    /// Whether the call changed anything: `false` when the container was
    /// already asleep (or awake), or a sleep was refused because it is in
    /// use.
    pub changed: bool,
    /// Its row after the call.
    pub container: Option<StatusRow>,
}

/// A call to the shim's API that failed.
#[derive(Debug)]
pub enum ApiError {
    /// No answer: connecting, writing or reading failed.
    Io { path: String, error: std::io::Error },
    /// An answer other than 200.
    Status { path: String, status: u16, body: String },
    /// A 200 whose body is not what the crate's type says.
    Body {
        path: String,
        error: serde_json::Error,
        body: String,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Io { path, error } => write!(f, "{path}: {error}"),
            ApiError::Status { path, status, body } => write!(f, "{path} answered {status}: {body}"),
            ApiError::Body { path, error, body } => write!(f, "{path}: unexpected body ({error}): {body}"),
        }
    }
}

impl std::error::Error for ApiError {}

fn or_panic<T>(result: Result<T, ApiError>) -> T {
    result.unwrap_or_else(|e| panic!("the shim's API: {e}"))
}

impl Shim {
    /// `METHOD /_forge/v1/PATH` on a fresh connection; the 200 body as `T`.
    fn api_call<T: DeserializeOwned>(&self, method: &str, path: &str) -> Result<T, ApiError> {
        let path = format!("/_forge/v1/{path}");
        let response =
            try_raw_request(self.socket_path(), &bodyless_request(method, &path)).map_err(|error| ApiError::Io {
                path: path.clone(),
                error,
            })?;
        if response.status != 200 {
            return Err(ApiError::Status {
                path,
                status: response.status,
                body: response.body_text(),
            });
        }
        serde_json::from_slice(&response.body).map_err(|error| ApiError::Body {
            path,
            error,
            body: response.body_text(),
        })
    }

    /// `GET /_forge/v1/health`.
    pub fn try_health(&self) -> Result<Health, ApiError> {
        self.api_call("GET", "health")
    }

    /// `GET /_forge/v1/health`; panics unless it answers 200 with a health
    /// body.
    pub fn health(&self) -> Health {
        or_panic(self.try_health())
    }

    /// `GET /_forge/v1/containers`: every container the shim tracks.
    pub fn try_containers(&self) -> Result<Vec<StatusRow>, ApiError> {
        self.api_call("GET", "containers")
    }

    pub fn containers(&self) -> Vec<StatusRow> {
        or_panic(self.try_containers())
    }

    /// The row of the container named `name`, if the shim tracks it.
    pub fn try_container(&self, name: &str) -> Result<Option<StatusRow>, ApiError> {
        Ok(self.try_containers()?.into_iter().find(|row| row.name == name))
    }

    pub fn container(&self, name: &str) -> Option<StatusRow> {
        or_panic(self.try_container(name))
    }

    /// `POST /_forge/v1/containers/REFERENCE/sleep` (a name or an id, as
    /// is: test names need no escaping).
    pub fn try_sleep_container(&self, reference: &str) -> Result<Changed, ApiError> {
        self.api_call("POST", &format!("containers/{reference}/sleep"))
    }

    pub fn sleep_container(&self, reference: &str) -> Changed {
        or_panic(self.try_sleep_container(reference))
    }

    /// `POST /_forge/v1/containers/REFERENCE/wake`.
    pub fn try_wake_container(&self, reference: &str) -> Result<Changed, ApiError> {
        self.api_call("POST", &format!("containers/{reference}/wake"))
    }

    pub fn wake_container(&self, reference: &str) -> Changed {
        or_panic(self.try_wake_container(reference))
    }

    /// `GET /_forge/v1/events`, its head read: a 200 or an error.
    pub fn try_events(&self) -> Result<Events, ApiError> {
        let path = "/_forge/v1/events".to_string();
        let io = |error| ApiError::Io {
            path: path.clone(),
            error,
        };
        let mut connection = RawConnection::try_connect(self.socket_path()).map_err(io)?;
        connection
            .try_send(format!("GET {path} HTTP/1.1\r\nHost: forge\r\n\r\n").as_bytes())
            .map_err(io)?;
        let head = connection.try_read_head().map_err(io)?;
        if head.status != 200 {
            let body = connection.try_read_body(&head, false).unwrap_or_default();
            return Err(ApiError::Status {
                path,
                status: head.status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(Events {
            connection,
            head,
            pending: Vec::new(),
        })
    }

    pub fn events(&self) -> Events {
        or_panic(self.try_events())
    }
}

/// The shim's event stream: one [`Transition`] per line, in a chunked body
/// that lasts as long as the connection.
pub struct Events {
    connection: RawConnection,
    head: RawResponse,
    /// Body bytes not yet split into lines.
    pending: Vec<u8>,
}

impl Events {
    /// The response head (status 200).
    pub fn head(&self) -> &RawResponse {
        &self.head
    }

    /// How long [`Events::try_next`] waits for a line before it fails with
    /// `WouldBlock` or `TimedOut` (nothing is lost: call it again).
    pub fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.connection.set_read_timeout(timeout)
    }

    /// The next transition; `None` when the stream has ended.
    pub fn try_next(&mut self) -> std::io::Result<Option<Transition>> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line).trim().to_string();
                if line.is_empty() {
                    continue;
                }
                return parse_transition(line).map(Some);
            }
            match self.connection.try_read_chunk()? {
                Some(chunk) => self.pending.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }

    /// Reads transitions until one satisfies `pred` and returns it; panics
    /// when the stream ends or goes quiet for longer than the read timeout.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Transition) -> bool) -> Transition {
        let mut seen = Vec::new();
        loop {
            match self.try_next() {
                Ok(Some(transition)) if pred(&transition) => return transition,
                Ok(Some(transition)) => seen.push(transition),
                Ok(None) => panic!("the event stream ended before {what}; seen: {seen:#?}"),
                Err(e) => panic!("reading the event stream for {what}: {e}; seen: {seen:#?}"),
            }
        }
    }
}

/// One line of the event stream as a [`Transition`].
///
/// `Transition::transition` is a `&'static str` in the crate (its values
/// are the shim's constants), so it deserializes only from `'static` text:
/// the line is leaked. A test or a bench reads a few thousand lines at
/// most, and each process is short-lived.
fn parse_transition(line: String) -> std::io::Result<Transition> {
    let line: &'static str = Box::leak(line.into_boxed_str());
    serde_json::from_str(line)
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, format!("event line {line:?}: {e}")))
}
