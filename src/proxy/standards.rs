//! The standards phase: for the requests the standards cover, read the body
//! (bounded), let [`crate::standards`] judge it, forward the result and
//! report every change as a create warning.
//!
//! This is the only place that buffers a request body; every other body is
//! streamed. The pure rules live in `crate::standards` and do no I/O: the
//! image's configured user is looked up here (cached, invalidated on image
//! events) and handed in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response};
use parking_lot::Mutex;
use serde_json::Value;

use super::{resolve, ConnState, Proxy};
use crate::body::ProxyBody;
use crate::body::{full_body, read_limited, read_limited_within, set_exact_length};
use crate::config::{LoadedConfig, StandardsMode, WarningStyle};
use crate::docker::{EventKind, ImageInfo};
use crate::error::ShimError;
use crate::route::{query_value, ContainerAction, Endpoint, Judge, Route};
use crate::standards::user::{self, Passwd};
use crate::standards::{self, Change, CreateContext, Rejection};

/// The default cap on a body the standards read.
const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// Responses we rewrite (create answers) are small; anything bigger is
/// passed on untouched.
const MAX_RESPONSE_BODY: u64 = 1 << 20;

/// The most images (and image `/etc/passwd` files) the caches hold; past
/// it they start over.
const MAX_CACHED_IMAGES: usize = 512;

/// Caches the standards phase keeps between requests.
#[derive(Default)]
pub struct StandardsState {
    /// Image reference → what its inspect says (`None`: no such image).
    images: Mutex<HashMap<String, Option<ImageInfo>>>,
    /// Image id → its `/etc/passwd`. Ids are content: never invalidated.
    passwds: Mutex<HashMap<String, Passwd>>,
    /// The cache is only trusted while the image-event watcher runs; without
    /// it a retagged image could keep a stale user.
    events_live: AtomicBool,
    /// Bumped on every image event, so a lookup that raced with one is not
    /// cached.
    generation: AtomicU64,
}

impl StandardsState {
    fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.images.lock().clear();
    }
}

/// Whether the standards phase handles this endpoint: the ones whose
/// phases say so ([`Endpoint::phases`]), unless standards are off.
pub fn intercepts(proxy: &Proxy, endpoint: &Endpoint) -> bool {
    proxy.config().config.standards.mode != StandardsMode::Off && endpoint.phases().judged()
}

pub async fn handle(
    proxy: &Proxy,
    conn: &ConnState,
    route: &Route,
    request: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, ShimError> {
    if route.endpoint.phases().standards == Judge::Head {
        return judge_head(proxy, conn, route, request).await;
    }
    let (mut parts, body) = request.into_parts();
    let max_body = proxy
        .config()
        .config
        .standards
        .max_body
        .map(|b| b.bytes())
        .unwrap_or(DEFAULT_MAX_BODY);
    let bytes = read_limited_within(body, max_body, proxy.inner.body_read).await?;
    let query = parts.uri.query().map(str::to_string);
    let snapshot = proxy.config();
    let loaded = &*snapshot;

    // An empty body is dockerd's to reject; there is nothing to judge.
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        return forward_bytes(proxy, conn, parts, bytes).await;
    } else {
        standards::parse_body(&bytes).map_err(|e| ShimError::BadRequest(e.to_string()))?
    };

    // dockerd before API 1.24 applies a HostConfig sent with `start`, which
    // would bypass every create rule; from 1.24 it refuses it. Refuse it for
    // every version.
    if let Endpoint::ContainerUse {
        action: ContainerAction::Start,
        ..
    } = route.endpoint
    {
        let empty = value.is_null() || value.as_object().is_some_and(|o| o.is_empty());
        if !empty {
            return Err(ShimError::BadRequest(
                "a HostConfig on container start is not accepted; set it when creating the container".into(),
            ));
        }
        return forward_bytes(proxy, conn, parts, bytes).await;
    }

    // The create's context, kept for the backstop on dockerd's record.
    let mut judged_create = None;
    let outcome = match &route.endpoint {
        Endpoint::ContainerCreate => {
            // Canonical keys first, so `"image"` finds the image's user.
            let mut value = standards::canonicalize_create(value).map_err(|e| ShimError::BadRequest(e.to_string()))?;
            let name = query_value(query.as_deref(), "name");
            let context = proxy.create_context(name, value.get("Image"), value.get("User")).await;
            let inherited = resolve::create_sources(proxy, loaded, &context, &mut value).await?;
            let outcome = match inherited {
                Ok(changes) => standards::apply_create(loaded, &context, value).map(|mut outcome| {
                    outcome.changes.extend(changes);
                    outcome
                }),
                Err(rejection) => Err(rejection),
            };
            judged_create = Some(context);
            outcome
        }
        Endpoint::ContainerUpdate { id } | Endpoint::ExecCreate { id } => {
            let info = match resolve::target(proxy, id).await? {
                resolve::Target::Found(info) => info,
                resolve::Target::Missing(answer) => return Ok(answer),
            };
            resolve::pin_target(&mut parts, route, &info.id)?;
            let image = match &info.image_id {
                Some(id) => proxy.image_info(id).await,
                None => None,
            };
            let identity = info.identity(image.as_ref().map_or(&[], |image| &image.repo_digests[..]));
            if matches!(route.endpoint, Endpoint::ContainerUpdate { .. }) {
                standards::check_update(loaded, &identity, info.host_config.as_ref(), value)
            } else {
                let spec = value
                    .get("User")
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty())
                    .or(info.user.as_deref());
                let passwd = match spec.and_then(user::lookup_name) {
                    Some(_) => Some(proxy.container_passwd(&info.id).await),
                    None => None,
                };
                standards::check_exec(loaded, &identity, info.user.as_deref(), passwd.as_ref(), value)
            }
        }
        Endpoint::ServiceCreate | Endpoint::ServiceUpdate { .. } => {
            let spec = value.pointer("/TaskTemplate/ContainerSpec");
            let image = spec
                .and_then(|s| s.get("Image"))
                .and_then(Value::as_str)
                .map(|image| Value::String(image.split('@').next().unwrap_or(image).to_string()));
            let context = proxy
                .create_context(None, image.as_ref(), spec.and_then(|s| s.get("User")))
                .await;
            standards::apply_service_spec(loaded, &context, value)
        }
        Endpoint::VolumeCreate => match resolve::volume_paths(proxy, loaded, &value).await? {
            Ok(changes) => standards::check_volume_create(loaded, value).map(|mut outcome| {
                outcome.changes.extend(changes);
                outcome
            }),
            Err(rejection) => Err(rejection),
        },
        _ => return forward_bytes(proxy, conn, parts, bytes).await,
    };

    let mut outcome = match outcome {
        Ok(outcome) => outcome,
        Err(Rejection::BadRequest(e)) => return Err(ShimError::BadRequest(e.to_string())),
        Err(Rejection::Denied(denial)) => {
            crate::metrics::Metrics::rule(&proxy.inner.metrics.standards_denials, &denial.rule);
            tracing::warn!(endpoint = ?route.endpoint, rule = %denial.rule, "denied: {denial}");
            return Err(ShimError::Denied(denial.to_string()));
        }
    };
    for change in &outcome.changes {
        crate::metrics::Metrics::rule(&proxy.inner.metrics.standards_changes, change.rule);
        tracing::info!(endpoint = ?route.endpoint, rule = %change.rule, "{}", change.warning());
    }
    let body = serde_json::to_vec(&outcome.body).map_err(|e| ShimError::Internal(e.to_string()))?;
    // A container create is in flight from here until its id is recorded
    // as the shim's (`super::created`), before the backstop may remove it.
    let ticket = (route.endpoint == Endpoint::ContainerCreate).then(|| proxy.inner.origins.begin_create());
    let backstop = judged_create.filter(|_| loaded.config.standards.mode == StandardsMode::Enforce);
    // The backstop's check begins before dockerd can make the container:
    // from here, anything that could use it waits (`super::checks`).
    let check = backstop.as_ref().map(|_| proxy.inner.checks.begin());
    let warns =
        !outcome.changes.is_empty() && matches!(route.endpoint, Endpoint::ContainerCreate | Endpoint::ServiceCreate);
    if backstop.is_none() && !warns && ticket.is_none() {
        return forward_bytes(proxy, conn, parts, Bytes::from(body)).await;
    }
    // From here the create runs to its end in a task of its own, on an
    // upstream connection of its own: a client that hangs up once its
    // create is sent must not leave a container dockerd made unrecorded
    // (a false bypass) and unchecked by the backstop (a way around it).
    set_exact_length(&mut parts.headers, body.len());
    let request = Request::from_parts(parts, full_body(Bytes::from(body)));
    let forwarded = std::mem::take(&mut outcome.body);
    let (task_proxy, task_loaded) = (proxy.clone(), snapshot.clone());
    let create = proxy.inner.tasks.spawn(async move {
        let proxy = task_proxy;
        let response = proxy.forward_detached(request).await?;
        // Only a create's answer is read: small, and there is nothing to
        // read in an error (404 for a missing image, which makes the CLI
        // pull).
        if !super::created::made(response.status()) {
            return Ok(Err(response));
        }
        let (parts, body) = response.into_parts();
        let bytes = read_limited(body, MAX_RESPONSE_BODY)
            .await
            .map_err(|e| ShimError::Internal(format!("reading dockerd's create response: {e}")))?;
        if ticket.is_some() {
            super::created::record(&proxy, &bytes).await;
        }
        drop(ticket);
        if let (Some(context), Some(check)) = (backstop, check) {
            // Judged after the answer; the gate holds every use of the new
            // container until it is done.
            let answer = bytes.clone();
            proxy.inner.tasks.clone().spawn(async move {
                check_record(&proxy, &task_loaded, &context, &forwarded, &answer).await;
                drop(check);
            });
        }
        Ok(Ok((parts, bytes)))
    });
    let (parts, bytes) = match create.await {
        Ok(Ok(Ok(answer))) => answer,
        Ok(Ok(Err(response))) => return Ok(response),
        Ok(Err(e)) => return Err(e),
        Err(e) => return Err(ShimError::Internal(format!("the create's task ended: {e}"))),
    };
    let mut warnings: Vec<String> = match loaded.config.standards.warnings {
        WarningStyle::Each => outcome.changes.iter().map(Change::warning).collect(),
        WarningStyle::Summary => standards::summary_warning(&outcome.changes).into_iter().collect(),
    };
    // A hardening rule held back is a line of its own: it says what the
    // container does not have, and why.
    warnings.extend(outcome.notes.iter().map(Change::warning));
    Ok(with_warnings(parts, bytes, &warnings))
}

/// The backstop after a create: dockerd's inspect of the new container,
/// judged again ([`standards::check_recorded_create`]). A breach, or a
/// record that cannot be read, removes the container; the request that
/// would use it is then refused with the reason (`super::checks`).
async fn check_record(proxy: &Proxy, loaded: &LoadedConfig, context: &CreateContext, forwarded: &Value, answer: &[u8]) {
    let id = serde_json::from_slice::<Value>(answer)
        .ok()
        .and_then(|answer| answer["Id"].as_str().map(str::to_string));
    let Some(id) = id else {
        tracing::error!("dockerd's answer to a create names no container Id; its record cannot be checked");
        return;
    };
    let mut name = context.name.clone();
    let refusal = match proxy.inner.docker.inspect_container_json(&id).await {
        Ok(record) => {
            if let Some(recorded) = record["Name"].as_str() {
                name = Some(recorded.to_string());
            }
            let breaches = standards::check_recorded_create(loaded, context, forwarded, &record);
            if breaches.is_empty() {
                return;
            }
            crate::metrics::Metrics::rule(&proxy.inner.metrics.standards_denials, "backstop");
            tracing::warn!(container = %id, breaches = ?breaches, "dockerd's record of a create breaks the standards; removing it");
            ShimError::Denied(format!(
                "standards: backstop: {}; the container was removed",
                breaches.join("; ")
            ))
        }
        Err(e) => ShimError::Unchecked {
            what: format!("the created container {id}"),
            message: format!("{e}; it was removed"),
        },
    };
    let message = refusal.to_string();
    proxy.inner.checks.remember_removed(&id, name.as_deref(), &message);
    if let Err(e) = proxy.inner.docker.remove_container(&id).await {
        tracing::error!(container = %id, error = %e, "cannot remove a container that breaks the standards");
    }
}

/// The endpoints judged on their route and query alone (`build`, plugin
/// installs): a denial answers, a rewritten query is forwarded, the body
/// streams as it came.
async fn judge_head(
    proxy: &Proxy,
    conn: &ConnState,
    route: &Route,
    mut request: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, ShimError> {
    let snapshot = proxy.config();
    let loaded = &*snapshot;
    let query = request.uri().query();
    let judged = match &route.endpoint {
        Endpoint::Build => standards::check_build(loaded, query),
        _ => standards::check_plugin_install(loaded, request.uri().path()),
    };
    let refusal = match judged {
        Ok(outcome) => Ok(outcome),
        Err(Rejection::BadRequest(e)) => Err(ShimError::BadRequest(e.to_string())),
        Err(Rejection::Denied(denial)) => {
            crate::metrics::Metrics::rule(&proxy.inner.metrics.standards_denials, &denial.rule);
            tracing::warn!(rule = %denial.rule, endpoint = ?route.endpoint, "{denial}");
            Err(ShimError::Denied(denial.to_string()))
        }
    };
    let outcome = match refusal {
        Ok(outcome) => outcome,
        Err(e) => {
            // The client is still sending its body (a build context): take
            // it, within bounds, so that it reads the answer instead of
            // failing on a closed connection.
            drain(request.into_body(), proxy.inner.body_read).await;
            return Err(e);
        }
    };
    for change in &outcome.changes {
        crate::metrics::Metrics::rule(&proxy.inner.metrics.standards_changes, change.rule);
        tracing::info!(rule = change.rule, endpoint = ?route.endpoint, "{change}");
    }
    if outcome.query.as_deref() != query {
        let path = request.uri().path();
        let target = match &outcome.query {
            Some(query) if !query.is_empty() => format!("{path}?{query}"),
            _ => path.to_string(),
        };
        *request.uri_mut() = target
            .parse()
            .map_err(|e| ShimError::Internal(format!("rewritten query {target:?}: {e}")))?;
    }
    proxy.forward(conn, request).await
}

/// The most of a refused request's body the shim reads and drops.
const MAX_DRAIN: u64 = 256 << 20;

/// Reads and drops `body`, up to [`MAX_DRAIN`] bytes and `within`.
async fn drain(mut body: ProxyBody, within: Duration) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(within, async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |data| data.len() as u64);
            if read > MAX_DRAIN {
                break;
            }
        }
    })
    .await;
}

/// Forwards a request whose body the shim holds, with an exact length.
async fn forward_bytes(
    proxy: &Proxy,
    conn: &ConnState,
    mut parts: http::request::Parts,
    body: Bytes,
) -> Result<Response<ProxyBody>, ShimError> {
    set_exact_length(&mut parts.headers, body.len());
    proxy.forward(conn, Request::from_parts(parts, full_body(body))).await
}

/// Appends each change to the create answer's `Warnings` (which older
/// daemons send as `null`) and recomputes `Content-Length`. An answer that
/// is not a JSON object is handed over as it came.
fn with_warnings(mut parts: http::response::Parts, bytes: Bytes, warnings_to_add: &[String]) -> Response<ProxyBody> {
    if warnings_to_add.is_empty() {
        return Response::from_parts(parts, full_body(bytes));
    }
    let mut value: Value = match serde_json::from_slice(&bytes) {
        Ok(value @ Value::Object(_)) => value,
        _ => return Response::from_parts(parts, full_body(bytes)),
    };
    let warnings = value
        .as_object_mut()
        .expect("checked above")
        .entry("Warnings")
        .or_insert(Value::Null);
    if !warnings.is_array() {
        *warnings = Value::Array(Vec::new());
    }
    if let Value::Array(list) = warnings {
        list.extend(warnings_to_add.iter().cloned().map(Value::String));
    }
    let Ok(mut out) = serde_json::to_vec(&value) else {
        return Response::from_parts(parts, full_body(bytes));
    };
    out.push(b'\n');
    set_exact_length(&mut parts.headers, out.len());
    Response::from_parts(parts, full_body(out))
}

impl Proxy {
    /// What the rules need to know of a create beyond its body: the image's
    /// id, repo digests and configured user (`None` when unknown: treated as
    /// root) and, when the user that applies (the request's `user`, else the
    /// image's) is a name, the image's `/etc/passwd`.
    async fn create_context(&self, name: Option<String>, image: Option<&Value>, user: Option<&Value>) -> CreateContext {
        let info = match image.and_then(Value::as_str) {
            Some(image) => self.image_info(image).await,
            None => None,
        };
        let requested = user.and_then(Value::as_str).filter(|u| !u.is_empty());
        let spec = requested.or(info.as_ref().map(|i| i.user.as_str()));
        let passwd = match (spec.and_then(user::lookup_name), &info) {
            (Some(_), Some(info)) => Some(self.image_passwd(&info.id).await),
            _ => None,
        };
        let profile = info.as_ref().and_then(|info| self.inner.profiles.get(&info.id));
        let (image_id, image_user, repo_digests) = match info {
            Some(info) => (Some(info.id), Some(info.user), info.repo_digests),
            None => (None, None, Vec::new()),
        };
        CreateContext {
            name,
            image_user,
            passwd,
            image_id,
            repo_digests,
            profile,
        }
    }

    /// What `image`'s inspect says, cached while the image-event watcher
    /// runs. `None` when the image does not exist or dockerd cannot say:
    /// the rules then assume root, the safe side.
    pub async fn image_info(&self, image: &str) -> Option<ImageInfo> {
        let state = &self.inner.standards;
        if state.events_live.load(Ordering::Acquire) {
            if let Some(cached) = state.images.lock().get(image) {
                return cached.clone();
            }
        }
        let generation = state.generation.load(Ordering::Acquire);
        match self.inner.docker.image_info(image).await {
            Ok(info) => {
                let unchanged = state.generation.load(Ordering::Acquire) == generation;
                if unchanged && state.events_live.load(Ordering::Acquire) && info.is_some() {
                    let mut images = state.images.lock();
                    if images.len() >= MAX_CACHED_IMAGES {
                        images.clear();
                    }
                    images.insert(image.to_string(), info.clone());
                }
                info
            }
            Err(e) => {
                tracing::warn!(image, error = %e, "cannot inspect image; assuming it runs as root");
                None
            }
        }
    }

    /// An image's `/etc/passwd`, read through a probe container and cached
    /// by image id (content: it cannot change under the id).
    async fn image_passwd(&self, image_id: &str) -> Passwd {
        let state = &self.inner.standards;
        if let Some(cached) = state.passwds.lock().get(image_id) {
            return cached.clone();
        }
        let passwd = crate::docker::passwd_from(self.inner.docker.image_file(image_id, "/etc/passwd").await);
        if !matches!(passwd, Passwd::Unreadable(_)) {
            let mut passwds = state.passwds.lock();
            if passwds.len() >= MAX_CACHED_IMAGES {
                passwds.clear();
            }
            passwds.insert(image_id.to_string(), passwd.clone());
        } else {
            tracing::warn!(image = image_id, "cannot read the image's /etc/passwd: {passwd:?}");
        }
        passwd
    }

    /// A container's `/etc/passwd` as it is now (it is writable: never cached).
    async fn container_passwd(&self, id: &str) -> Passwd {
        crate::docker::passwd_from(self.inner.docker.container_file(id, "/etc/passwd").await)
    }

    /// Starts this shim's image-event watcher (on its task tracker, until
    /// shutdown), which clears the image-user cache on every image event
    /// (tag, untag, delete, load, import, pull) and restarts itself after
    /// dockerd goes away. Until it runs, image users are not cached. Nothing
    /// to watch when the standards are off.
    pub fn start_image_watcher(&self) {
        if self.config().config.standards.mode == StandardsMode::Off {
            return;
        }
        let proxy = self.clone();
        self.inner.tasks.spawn(async move { proxy.watch_image_events().await });
    }

    async fn watch_image_events(self) {
        let state = &self.inner.standards;
        let token = self.inner.shutdown.token.clone();
        loop {
            // dockerd is asked when the stream is first polled, below; an
            // image event from then on clears the cache.
            let mut events = self.inner.docker.events(EventKind::Image, None);
            state.invalidate();
            state.events_live.store(true, Ordering::Release);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    event = events.next() => match event {
                        Some(Ok(_)) => state.invalidate(),
                        _ => break,
                    },
                }
            }
            state.events_live.store(false, Ordering::Release);
            state.invalidate();
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}
