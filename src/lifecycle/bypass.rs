//! Bypass detection: a container created straight on dockerd, around the
//! shim's socket, does not go unnoticed.
//!
//! [`BypassWatch`] follows dockerd's container events on its own connection
//! (lifecycle or not, as [`super::RootCheck`] does). On a `create` (or a
//! `start` of a container it has no origin for yet), it waits until the
//! creates in flight through the shim have ended ([`Origins::settle`]), then
//! asks [`Origins`]: a container the shim did not create, that was not there
//! at its first start and is not one of its own probes (`forge-shim.probe`,
//! never started) is a bypass: logged at warn with id, name and image,
//! counted in `forge_shim_unmanaged_creates_total`, recorded (shown by
//! `status`, `audit` and `/_forge/v1/bypasses`).
//!
//! Each time the event stream (re)connects, dockerd's list is compared with
//! the set: containers created while the shim was not watching are judged
//! the same way, and the records of removed ones are dropped.
//!
//! With `bypass.action: stop`, a bypassing container is judged when it
//! starts (or when it is found running) by the create backstop on dockerd's
//! record ([`standards::check_recorded_create`], `standards.mode: enforce`),
//! and stopped, never removed, on a breach.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::origins::{Origin, OriginRecord, Origins};
use super::{unix_ms, Lifecycle, State, Transition};
use crate::config::{BypassAction, CompiledSelector, ContainerIdentity, LoadedConfig, SharedConfig};
use crate::docker::{ContainerInfo, DockerApi, DockerError, Event, EventKind, LABEL_PROBE};
use crate::metrics::Metrics;
use crate::standards::{self, CreateContext};

/// Follows dockerd's events and judges every new container.
#[derive(Clone)]
pub struct BypassWatch {
    inner: Arc<WatchInner>,
}

struct WatchInner {
    docker: Arc<dyn DockerApi>,
    /// Read per event; a reload swaps it.
    loaded: SharedConfig,
    metrics: Arc<Metrics>,
    origins: Origins,
    tasks: TaskTracker,
    token: CancellationToken,
    lifecycle: Option<Lifecycle>,
}

/// What the shim knows of a container it is judging.
struct Seen {
    id: String,
    name: Option<String>,
    image: Option<String>,
    labels: Map<String, Value>,
    /// dockerd's inspect, when it could still be read.
    info: Option<ContainerInfo>,
    /// The inspect said there is no such container (any more).
    gone: bool,
}

impl Seen {
    fn probe(&self) -> bool {
        self.labels.contains_key(LABEL_PROBE)
    }
}

/// A new container's origin, from what is known of it (pure): `None` for
/// the shim's own probes, which never count.
fn verdict(probe: bool, baseline: bool, in_scope: bool) -> Option<Origin> {
    if probe {
        None
    } else if baseline {
        Some(Origin::PreExisting)
    } else if in_scope {
        Some(Origin::Bypass)
    } else {
        Some(Origin::OutOfScope)
    }
}

impl BypassWatch {
    pub fn new(
        docker: Arc<dyn DockerApi>,
        loaded: SharedConfig,
        metrics: Arc<Metrics>,
        origins: Origins,
        tasks: TaskTracker,
        token: CancellationToken,
        lifecycle: Option<Lifecycle>,
    ) -> BypassWatch {
        BypassWatch {
            inner: Arc::new(WatchInner {
                docker,
                loaded,
                metrics,
                origins,
                tasks,
                token,
                lifecycle,
            }),
        }
    }

    /// Follows container events until shutdown, resynchronising with
    /// dockerd's list each time the stream (re)connects.
    pub async fn run(self) {
        let loaded = self.inner.loaded.current();
        if loaded.config.bypass.action == BypassAction::Stop
            && loaded.config.standards.mode != crate::config::StandardsMode::Enforce
        {
            tracing::warn!("bypass.action: stop acts only with standards.mode: enforce; bypasses are reported");
        }
        loop {
            // Requested when first polled, after the list below: replayed
            // from before it, so nothing created meanwhile is missed.
            let mut events = self.inner.docker.events(EventKind::Container, Some(SystemTime::now()));
            self.reconcile().await;
            loop {
                let event = tokio::select! {
                    _ = self.inner.token.cancelled() => return,
                    event = events.next() => event,
                };
                match event {
                    Some(Ok(event)) if !event.id.is_empty() => self.on_event(event),
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            tokio::select! {
                _ = self.inner.token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    fn on_event(&self, event: Event) {
        let action = event.action.split(':').next().unwrap_or_default().trim().to_string();
        match action.as_str() {
            "create" | "start" => {
                let this = self.clone();
                self.inner.tasks.spawn(async move {
                    let origin = this.judge(&event, "create event").await;
                    if action == "start" && origin == Some(Origin::Bypass) {
                        this.check_started(&event.id).await;
                    }
                });
            }
            "destroy" if self.inner.origins.registry().forget(&event.id) => {
                self.inner.origins.save_soon();
            }
            _ => {}
        }
    }

    /// The origin of container `event.id`, judged now if the shim has none.
    async fn judge(&self, event: &Event, found: &str) -> Option<Origin> {
        let origins = &self.inner.origins;
        if let Some(origin) = origins.get(&event.id) {
            return Some(origin);
        }
        if !origins.settle().await {
            tracing::warn!(container = %event.id, "a create through the shim is taking long; judging without it");
        }
        if let Some(origin) = origins.get(&event.id) {
            return Some(origin);
        }
        let seen = self.look(&event.id, &event.attributes).await;
        self.record(seen, false, found).await
    }

    /// What dockerd says of `id` now, and what the event said of it.
    async fn look(&self, id: &str, attributes: &std::collections::BTreeMap<String, String>) -> Seen {
        let (info, gone) = match self.inner.docker.inspect_container(id).await {
            Ok(info) => (Some(info), false),
            Err(DockerError::NotFound(_)) => (None, true),
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "cannot inspect a new container; judging it from its event");
                (None, false)
            }
        };
        let mut labels: Map<String, Value> = attributes
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "name" | "image"))
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect();
        if let Some(own) = info.as_ref().and_then(|info| info.labels.clone()) {
            labels = own;
        }
        Seen {
            id: id.to_string(),
            name: info
                .as_ref()
                .and_then(|i| i.name.clone())
                .or_else(|| attributes.get("name").cloned()),
            image: info
                .as_ref()
                .and_then(|i| i.image.clone())
                .or_else(|| attributes.get("image").cloned()),
            labels,
            info,
            gone,
        }
    }

    /// Whether `seen` is one the bypass detection covers (`bypass.scope`).
    async fn in_scope(&self, seen: &Seen) -> bool {
        // Validated at load: a selector that does not compile is an error there.
        let scope: Vec<CompiledSelector> = self
            .inner
            .loaded
            .current()
            .config
            .bypass
            .scope
            .iter()
            .filter_map(|selector| CompiledSelector::compile(selector).ok())
            .collect();
        if scope.is_empty() {
            return true;
        }
        let repo_digests = match seen.info.as_ref().and_then(|i| i.image_id.as_deref()) {
            Some(image_id) => match self.inner.docker.image_info(image_id).await {
                Ok(Some(image)) => image.repo_digests,
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        let who = ContainerIdentity {
            name: seen.name.as_deref(),
            image: seen.image.as_deref(),
            labels: Some(&seen.labels),
            image_id: seen.info.as_ref().and_then(|i| i.image_id.as_deref()),
            repo_digests: &repo_digests,
        };
        scope.iter().any(|selector| selector.matches(&who))
    }

    /// Records the verdict on `seen` (unless another judgement came first),
    /// reports a bypass, and saves. Returns the container's origin.
    async fn record(&self, seen: Seen, baseline: bool, found: &str) -> Option<Origin> {
        let in_scope = baseline || seen.probe() || self.in_scope(&seen).await;
        let origin = verdict(seen.probe(), baseline, in_scope)?;
        let mut record = OriginRecord::new(&seen.id, origin);
        record.name = seen.name.clone();
        record.image = seen.image.clone();
        if origin == Origin::Bypass {
            record.note = Some(found.to_string());
        }
        let origins = &self.inner.origins;
        // A container already removed is reported, not kept.
        let new = if seen.gone {
            origins.get(&seen.id).is_none()
        } else {
            origins.registry().judged(record)
        };
        if !new {
            return origins.get(&seen.id);
        }
        if origin == Origin::Bypass {
            self.inner.metrics.unmanaged_creates.inc();
            tracing::warn!(
                container = %seen.id,
                name = seen.name.as_deref().unwrap_or(""),
                image = seen.image.as_deref().unwrap_or(""),
                found,
                "a container was created straight on dockerd, around the shim"
            );
        }
        if !seen.gone {
            origins.save().await;
        }
        Some(origin)
    }

    /// dockerd's list against the set: removed containers forgotten, unknown
    /// ones judged (on the first start, they are the pre-existing ones).
    async fn reconcile(&self) {
        let origins = &self.inner.origins;
        let before = origins.registry().seq();
        let ids = match self.inner.docker.list_containers().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list containers to look for bypasses");
                return;
            }
        };
        // Every listed container exists now: a create through the shim that
        // made one began before this.
        origins.settle().await;
        let listed: BTreeSet<String> = ids.iter().cloned().collect();
        let baseline = {
            let mut registry = origins.registry();
            registry.prune(&listed, before);
            registry.take_baseline()
        };
        if baseline {
            tracing::info!(
                containers = ids.len(),
                "first start: the containers there now are pre-existing, not bypasses"
            );
        }
        let mut running_bypasses = Vec::new();
        for id in ids {
            if origins.get(&id).is_some() {
                continue;
            }
            if baseline {
                origins.registry().judged(OriginRecord::new(&id, Origin::PreExisting));
                continue;
            }
            let seen = self.look(&id, &Default::default()).await;
            let running = seen.info.as_ref().is_some_and(|i| i.running);
            let origin = self
                .record(seen, false, "found at start: created while the shim was not watching")
                .await;
            if origin == Some(Origin::Bypass) && running {
                running_bypasses.push(id);
            }
        }
        origins.save().await;
        for id in running_bypasses {
            self.check_started(&id).await;
        }
    }

    /// With `bypass.action: stop`: judges bypassing container `id`, started,
    /// by the create backstop on dockerd's record, and stops it (never
    /// removes it) on a breach.
    async fn check_started(&self, id: &str) {
        let inner = &*self.inner;
        let loaded = inner.loaded.current();
        if loaded.config.bypass.action != BypassAction::Stop {
            return;
        }
        let record = match inner.docker.inspect_container_json(id).await {
            Ok(record) => record,
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "cannot inspect a started bypass; it is not judged");
                return;
            }
        };
        let Some(info) = ContainerInfo::from_inspect(&record) else {
            return;
        };
        let image = match info.image_id.as_deref() {
            Some(image_id) => inner.docker.image_info(image_id).await.ok().flatten(),
            None => None,
        };
        let breaches = judge_record(&loaded, &info, image.as_ref(), &record);
        let name = info.name.clone().unwrap_or_default();
        if breaches.is_empty() {
            tracing::info!(container = %id, name = %name, "a bypassing container meets the standards; it runs on");
            return;
        }
        let reason = breaches.join("; ");
        tracing::warn!(container = %id, name = %name, image = info.image.as_deref().unwrap_or(""), reason = %reason,
            "stopping a container created around the shim that breaks the standards (bypass.action: stop)");
        let started = tokio::time::Instant::now();
        let error = inner
            .docker
            .stop(id)
            .await
            .err()
            .map(|e| format!("cannot stop it: {e}"));
        let note = match &error {
            None => format!("stopped (not removed): {reason}"),
            Some(e) => {
                tracing::error!(container = %id, error = %e, "a bypassing container could not be stopped");
                format!("breaks the standards ({reason}), but {e}")
            }
        };
        inner.origins.registry().note(id, note);
        inner.origins.save().await;
        if let Some(lifecycle) = &inner.lifecycle {
            lifecycle.report_bypass_stop(id, &name, &reason, started.elapsed(), error);
        }
    }
}

/// The create backstop's breaches on dockerd's record of a container made
/// around the shim (pure). No body was forwarded: the user is taken as
/// recorded (the post-start check of users still applies), and what is
/// judged is the recorded `HostConfig`, the image and the labels.
fn judge_record(
    loaded: &LoadedConfig,
    info: &ContainerInfo,
    image: Option<&crate::docker::ImageInfo>,
    record: &Value,
) -> Vec<String> {
    let context = CreateContext {
        name: info.name.clone(),
        image_user: image.map(|i| i.user.clone()),
        passwd: None,
        image_id: info.image_id.clone(),
        repo_digests: image.map(|i| i.repo_digests.clone()).unwrap_or_default(),
        profile: None,
    };
    let forwarded = json!({ "User": record["Config"]["User"].clone() });
    standards::check_recorded_create(loaded, &context, &forwarded, record)
}

impl Lifecycle {
    /// A bypassing container the bypass watch stopped, as a transition.
    pub(super) fn report_bypass_stop(&self, id: &str, name: &str, reason: &str, took: Duration, error: Option<String>) {
        self.inner.metrics.transition("bypass_stop", "bypass", error.is_none());
        let _ = self.inner.events.send(Transition {
            id: id.to_string(),
            name: name.to_string(),
            transition: "bypass_stop",
            from: State::Running,
            to: State::Stopped,
            trigger: format!("bypass: {reason}"),
            duration_ms: took.as_secs_f64() * 1e3,
            at_unix_ms: unix_ms(SystemTime::now()),
            error,
        });
    }
}

#[cfg(test)]
mod tests;
