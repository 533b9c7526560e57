//! [`Docker`]: the real [`DockerApi`], and the only bollard client.
//!
//! Actions (pause, unpause, start, stop), the image and exec inspects and
//! the event streams go through bollard, which negotiates the API version.
//! Reads whose every field matters (container and volume inspects, the
//! container list, `/changes`, `/_ping`) are plain `GET`s on the same
//! socket, read as dockerd's JSON: bollard's typed models drop fields they
//! do not know and reject some they do not expect.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;
use tokio::net::UnixStream;

use super::{DockerApi, DockerError, Event, EventKind};

/// Characters escaped in one path segment of a raw request: a reference
/// taken from a client's request must not reach another endpoint.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// bollard's own timeout for one request.
const BOLLARD_TIMEOUT_SECS: u64 = 120;
/// The longest a raw read waits for its answer once connected.
const RAW_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A lazily connected bollard client. The API version is negotiated on first
/// use (dockerd 20.10 speaks 1.41, below bollard's default), and again after
/// an error, so a dockerd that restarts is picked up without a shim restart.
pub struct Docker {
    path: PathBuf,
    /// How long a raw read waits to connect.
    connect_timeout: Duration,
    client: Arc<Mutex<Option<bollard::Docker>>>,
}

impl Docker {
    pub fn new(path: &Path, connect_timeout: Duration) -> Docker {
        Docker {
            path: path.to_path_buf(),
            connect_timeout,
            client: Arc::new(Mutex::new(None)),
        }
    }

    async fn client(&self) -> Result<bollard::Docker, DockerError> {
        connect(&self.path, &self.client).await
    }

    /// Forgets the negotiated client, e.g. after dockerd went away.
    fn reset(&self) {
        self.client.lock().take();
    }

    /// Maps a bollard error, forgetting the client unless dockerd gave a
    /// plain answer about the object.
    fn error(&self, e: bollard::errors::Error) -> DockerError {
        let error = from_bollard(&self.path, e);
        if !matches!(
            error,
            DockerError::NotFound(_)
                | DockerError::NotModified
                | DockerError::AlreadyPaused(_)
                | DockerError::Conflict(_)
        ) {
            self.reset();
        }
        error
    }

    fn unreachable(&self, message: impl std::fmt::Display) -> DockerError {
        DockerError::Unreachable {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    /// `GET path` on dockerd's socket; the body of a 200 answer.
    async fn get(&self, path: &str) -> Result<Bytes, DockerError> {
        let stream = match tokio::time::timeout(self.connect_timeout, UnixStream::connect(&self.path)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(self.unreachable(e)),
            Err(_) => return Err(self.unreachable("connect timed out")),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(e))?;
        let request = Request::get(path)
            .header(http::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .map_err(|e| DockerError::Malformed(format!("request {path}: {e}")))?;
        let exchange = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        // The connection is driven here, next to its one request: it ends
        // with it, and no task outlives the call.
        let mut connection = std::pin::pin!(connection);
        let answered = tokio::time::timeout(RAW_READ_TIMEOUT, async {
            tokio::select! {
                biased;
                answered = exchange => answered.map_err(|e| self.unreachable(e)),
                closed = &mut connection => Err(match closed {
                    Ok(()) => self.unreachable("connection closed before the answer"),
                    Err(e) => self.unreachable(e),
                }),
            }
        })
        .await
        .map_err(|_| self.unreachable(format!("no answer to {path} within {RAW_READ_TIMEOUT:?}")))?;
        let (status, body) = answered?;
        if status == StatusCode::OK {
            return Ok(body);
        }
        Err(from_status(status.as_u16(), answer_message(&body)))
    }

    async fn get_json(&self, path: &str) -> Result<Value, DockerError> {
        let body = self.get(path).await?;
        serde_json::from_slice(&body).map_err(|e| DockerError::Malformed(format!("{path}: {e}")))
    }
}

impl DockerApi for Docker {
    fn ping(&self) -> BoxFuture<'_, Result<(), DockerError>> {
        Box::pin(async move { self.get("/_ping").await.map(drop) })
    }

    fn list_containers(&self) -> BoxFuture<'_, Result<Vec<String>, DockerError>> {
        Box::pin(async move {
            let list = self.get_json("/containers/json?all=1").await?;
            let list = list
                .as_array()
                .ok_or_else(|| DockerError::Malformed("/containers/json: not a list".into()))?;
            Ok(list
                .iter()
                .filter_map(|summary| summary["Id"].as_str().map(str::to_string))
                .collect())
        })
    }

    fn inspect_container_json<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Value, DockerError>> {
        Box::pin(async move { self.get_json(&format!("/containers/{}/json", segment(reference))).await })
    }

    fn container_changes<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Value, DockerError>> {
        Box::pin(async move { self.get_json(&format!("/containers/{}/changes", segment(id))).await })
    }

    fn image_user<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<String>, DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            match client.inspect_image(image).await {
                Ok(inspect) => Ok(Some(inspect.config.and_then(|config| config.user).unwrap_or_default())),
                Err(e) => match self.error(e) {
                    DockerError::NotFound(_) => Ok(None),
                    other => Err(other),
                },
            }
        })
    }

    fn inspect_volume_json<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Value, DockerError>> {
        Box::pin(async move { self.get_json(&format!("/volumes/{}", segment(name))).await })
    }

    fn data_root(&self) -> BoxFuture<'_, Result<String, DockerError>> {
        Box::pin(async move {
            let info = self.get_json("/info").await?;
            info["DockerRootDir"]
                .as_str()
                .filter(|root| !root.is_empty())
                .map(str::to_string)
                .ok_or_else(|| DockerError::Malformed("/info has no DockerRootDir".into()))
        })
    }

    fn exec_container<'a>(&'a self, exec_id: &'a str) -> BoxFuture<'a, Result<String, DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let inspect = client.inspect_exec(exec_id).await.map_err(|e| self.error(e))?;
            inspect
                .container_id
                .ok_or_else(|| DockerError::Malformed(format!("exec {exec_id} names no container")))
        })
    }

    fn pause<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client.pause_container(id).await.map_err(|e| self.error(e))
        })
    }

    fn unpause<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client.unpause_container(id).await.map_err(|e| self.error(e))
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
                .await
                .map_err(|e| self.error(e))
        })
    }

    fn stop<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .stop_container(id, None::<bollard::query_parameters::StopContainerOptions>)
                .await
                .map_err(|e| self.error(e))
        })
    }

    fn events(&self, kind: EventKind, since: Option<SystemTime>) -> BoxStream<'static, Result<Event, DockerError>> {
        let path = self.path.clone();
        let slot = self.client.clone();
        let kind = match kind {
            EventKind::Container => "container",
            EventKind::Image => "image",
        };
        let since = since.map(docker_timestamp);
        let events = futures_util::stream::once(async move {
            let client = connect(&path, &slot).await?;
            let mut filters = std::collections::HashMap::new();
            filters.insert("type".to_string(), vec![kind.to_string()]);
            let mut options = bollard::query_parameters::EventsOptionsBuilder::default().filters(&filters);
            if let Some(since) = &since {
                options = options.since(since);
            }
            let stream = client.events(Some(options.build())).map(move |event| match event {
                Ok(event) => Ok(Event {
                    action: event.action.unwrap_or_default(),
                    id: event.actor.and_then(|actor| actor.id).unwrap_or_default(),
                }),
                Err(e) => {
                    slot.lock().take();
                    Err(from_bollard(&path, e))
                }
            });
            Ok::<_, DockerError>(stream)
        })
        .try_flatten();
        let slot = self.client.clone();
        // However the stream ends, the next use negotiates again.
        let forget = futures_util::stream::once(async move {
            slot.lock().take();
            None
        })
        .filter_map(std::future::ready);
        events.chain(forget).boxed()
    }
}

/// The client in `slot`, connected and negotiated when there is none.
async fn connect(path: &Path, slot: &Mutex<Option<bollard::Docker>>) -> Result<bollard::Docker, DockerError> {
    if let Some(client) = slot.lock().clone() {
        return Ok(client);
    }
    let unreachable = |e: bollard::errors::Error| DockerError::Unreachable {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let client = bollard::Docker::connect_with_unix(
        &path.to_string_lossy(),
        BOLLARD_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(unreachable)?
    .negotiate_version()
    .await
    .map_err(unreachable)?;
    *slot.lock() = Some(client.clone());
    Ok(client)
}

fn from_bollard(path: &Path, e: bollard::errors::Error) -> DockerError {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError { status_code, message } => from_status(status_code, message),
        B::JsonDataError { message, .. } => DockerError::Malformed(message),
        B::JsonSerdeError { err } => DockerError::Malformed(err.to_string()),
        other => DockerError::Unreachable {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// An error answer by its status and dockerd's message.
fn from_status(status: u16, message: String) -> DockerError {
    match status {
        304 => DockerError::NotModified,
        404 => DockerError::NotFound(message),
        409 if message.contains("already paused") => DockerError::AlreadyPaused(message),
        409 => DockerError::Conflict(message),
        _ => DockerError::Api { status, message },
    }
}

/// dockerd's `{"message": "…"}`, else the body as text.
fn answer_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// `seconds.nanoseconds` since the epoch, as dockerd's `since` takes it.
fn docker_timestamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", since_epoch.as_secs(), since_epoch.subsec_nanos())
}
