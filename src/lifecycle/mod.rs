//! Sleep and wake: pause idle containers, wake them before anyone notices.
//!
//! Pure parts:
//! - [`state`]: a container's state and the pure decisions on it;
//! - [`activity`]: sampling network and CPU use, and the idle judgement;
//! - [`cgroup`]: the cgroup v1/v2 seam (usage, memory squeeze, restore);
//! - [`store`]: which containers the shim put to sleep, persisted atomically;
//! - [`origins`]: which containers the shim created (or found at its first
//!   start), persisted atomically, and the creates in flight through it.
//!
//! The runtime, one concern a file, each an `impl Lifecycle`: this file
//! (the handle, its table, in-use marks), `reconcile` (the view rebuilt from
//! dockerd and the state file), `events` (dockerd's events), `persist`
//! (when records are written), `sleep` and `wake` (the transitions),
//! `sampler` (idle detection), `poller` (wake on traffic, with
//! [`conntrack`] and [`ports`]), `host` (reads of /proc, /sys and cgroups
//! under [`HostPaths`]) and `status` (the table and transitions as told).
//! Every call to dockerd goes through [`DockerApi`].
//!
//! **Only this module pauses, unpauses, stops or starts containers on its own
//! initiative.** Transitions of one container are serialised by a per-container
//! lock; a request marks its container in use *before* it looks at its state,
//! and a sleep re-checks "nothing in use" under the same table lock right
//! before it pauses, so a container is never paused under a live request.

pub mod activity;
pub mod bypass;
pub mod cgroup;
pub mod conntrack;
mod events;
mod host;
pub mod learn;
pub mod origins;
mod own;
mod persist;
mod poller;
pub mod ports;
pub mod profiles;
mod reconcile;
pub mod rootcheck;
mod sampler;
mod sleep;
pub mod state;
mod status;
pub mod store;
#[cfg(test)]
mod tests;
mod wake;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{LoadedConfig, SharedConfig};
use crate::docker::{DockerApi, DockerError};
pub use bypass::BypassWatch;
pub use host::HostPaths;
pub use learn::Learner;
pub use origins::{Origin, OriginRecord, Origins};
pub use profiles::Profiles;
pub use rootcheck::RootCheck;
pub use state::{Entry, State, WakeRecord};
pub use status::{StatusRow, Transition};

/// Why a lifecycle call failed. `crate::error` turns it into the shim's
/// answer (a failed wake is a 503).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Another transition of the container held its lock for longer than
    /// `transition_timeout`.
    #[error("container {container}: timed out waiting for another transition")]
    WakeTimedOut { container: String },
    /// dockerd refused or did not answer the unpause (or start).
    #[error("container {container}: wake failed: {message}")]
    WakeFailed { container: String, message: String },
    /// dockerd refused or did not answer the pause; the container runs on.
    #[error("container {container}: pause failed: {message}")]
    PauseFailed { container: String, message: String },
    #[error(transparent)]
    Docker(#[from] DockerError),
}

#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Arc<dyn DockerApi>,
    /// Read per tick and per container; a reload swaps it ([`Lifecycle::refit`]).
    loaded: SharedConfig,
    table: Mutex<HashMap<String, Entry>>,
    /// Serialises the transitions of each container.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Exec id → container id, learnt on exec start.
    exec_owner: Mutex<HashMap<String, String>>,
    /// Set by a wake to cut short a squeeze in progress.
    squeeze_cancel: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// The shim's own pauses and unpauses whose events have not come yet
    /// ([`own`]), and the signal that one came
    /// (`Lifecycle::until_unpause_seen`).
    owed: Mutex<own::Owed>,
    own_event_seen: tokio::sync::Notify,
    /// Published ports held for deep sleepers.
    port_holds: Mutex<HashMap<String, ports::PortHold>>,
    store: store::Store,
    /// Serialises snapshot-and-save of the sleep records, so that an older
    /// snapshot never lands after a newer one.
    records_write: Mutex<()>,
    events: broadcast::Sender<Transition>,
    persist_requested: tokio::sync::Notify,
    metrics: Arc<crate::metrics::Metrics>,
    token: CancellationToken,
    /// Every task the lifecycle starts (loops, sleeps, wakes, blocking host
    /// reads), so that shutdown can wait for them.
    tasks: TaskTracker,
    host: HostPaths,
}

/// A container the shim holds asleep, as clients of the shim are shown it
/// (`proxy::disguise`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sleeper {
    /// Its `State.Health` right before the pause (dockerd turns a frozen
    /// container `unhealthy`).
    pub health: Option<serde_json::Value>,
    /// Set while a deep sleep stops it or holds it stopped: dockerd then
    /// shows it exited, with no ports.
    pub deep: Option<Deep>,
}

/// What a deep sleeper looked like before its stop.
#[derive(Clone, Debug, PartialEq)]
pub struct Deep {
    /// How long it has been up, as a client that never saw it stop counts:
    /// since its last start.
    pub up: Duration,
    /// The TCP ports published on the host, which the shim holds for it.
    pub ports: Vec<crate::docker::PublishedPort>,
}

/// Marks a container in use for as long as it lives: a request in flight, or
/// an exec/attach/logs stream still open. Dropping it records activity.
pub struct InUse {
    lifecycle: Lifecycle,
    id: String,
}

/// How long after the shim's own wake dockerd may still call a container
/// paused ([`InUse::lately_woken`]).
const STALE_PAUSE_WINDOW: Duration = Duration::from_secs(2);

/// The longest [`InUse::until_unpaused_on_dockerd`] waits.
const STALE_PAUSE_WAIT: Duration = Duration::from_millis(500);

impl InUse {
    /// The container marked in use.
    pub fn container(&self) -> &str {
        &self.id
    }

    /// Whether the shim woke this container a moment ago, so that dockerd
    /// may still call it paused. dockerd 20.10 takes containerd's "paused"
    /// event for its own state when it comes: one that comes late, after
    /// the shim's unpause, sets dockerd's paused flag again (it emits a
    /// `pause` event nobody asked for, then an `unpause` when the late
    /// "resumed" follows) while the container runs. An exec or attach in
    /// between is refused 409 "is paused" (seen in the soak: a `pause` and
    /// an `unpause` event 7 ms apart, no pause asked, an exec refused in
    /// between). The proxy sends such a request again (`proxy::forward`).
    pub fn lately_woken(&self) -> bool {
        let now = unix_ms(SystemTime::now());
        let window = STALE_PAUSE_WINDOW.as_millis() as u64;
        let table = self.lifecycle.inner.table.lock();
        table
            .get(&self.id)
            .and_then(|e| e.last_wake.as_ref())
            .is_some_and(|wake| now.saturating_sub(wake.at_unix_ms) <= window)
    }

    /// Waits until dockerd's inspect calls the container not paused,
    /// [`STALE_PAUSE_WAIT`] at most; whether it does. A container someone
    /// really paused stays paused, and the 409 then stands.
    pub async fn until_unpaused_on_dockerd(&self) -> bool {
        let deadline = Instant::now() + STALE_PAUSE_WAIT;
        loop {
            match self.lifecycle.inner.docker.inspect_container(&self.id).await {
                Ok(info) if info.running && !info.paused => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut table = self.lifecycle.inner.table.lock();
        if let Some(entry) = table.get_mut(&self.id) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.last_activity = Instant::now();
        }
    }
}

impl Lifecycle {
    /// The lifecycle of the real host. Its tasks go through `tasks`, and
    /// its loops end when `token` is cancelled.
    pub fn new(
        docker: Arc<dyn DockerApi>,
        loaded: SharedConfig,
        token: CancellationToken,
        metrics: Arc<crate::metrics::Metrics>,
        tasks: TaskTracker,
    ) -> Lifecycle {
        Lifecycle::with_host(docker, loaded, token, metrics, tasks, HostPaths::default())
    }

    /// [`Lifecycle::new`] over other host roots (tests).
    pub fn with_host(
        docker: Arc<dyn DockerApi>,
        loaded: SharedConfig,
        token: CancellationToken,
        metrics: Arc<crate::metrics::Metrics>,
        tasks: TaskTracker,
        host: HostPaths,
    ) -> Lifecycle {
        let store = store::Store::open(&loaded.current().config.state_dir);
        let (events, _) = broadcast::channel(1024);
        Lifecycle {
            inner: Arc::new(Inner {
                docker,
                loaded,
                table: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
                exec_owner: Mutex::new(HashMap::new()),
                squeeze_cancel: Mutex::new(HashMap::new()),
                owed: Mutex::new(own::Owed::default()),
                own_event_seen: tokio::sync::Notify::new(),
                port_holds: Mutex::new(HashMap::new()),
                store,
                records_write: Mutex::new(()),
                events,
                persist_requested: tokio::sync::Notify::new(),
                metrics,
                token,
                tasks,
                host,
            }),
        }
    }

    /// The config as it is now.
    fn config(&self) -> Arc<LoadedConfig> {
        self.inner.loaded.current()
    }

    /// `auto_sleep` as it is now (a copy: a reload may replace it).
    fn auto_sleep(&self) -> crate::config::AutoSleep {
        self.config().config.auto_sleep.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.inner.events.subscribe()
    }

    /// Rebuilds the view from dockerd and the state file, then runs the
    /// event watcher, the idle sampler and the wake poller until shutdown.
    pub async fn run(self) {
        // dockerd may not be up yet; keep trying without blocking the proxy.
        loop {
            match self.reconcile().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "lifecycle: cannot list containers yet; retrying");
                    tokio::select! {
                        _ = self.inner.token.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        let tasks = &self.inner.tasks;
        let watcher = tasks.spawn(self.clone().watch_events());
        let persister = tasks.spawn(self.clone().persister());
        let poller = tasks.spawn(self.clone().wake_poller());
        if self.auto_sleep().enabled {
            self.clone().sampler().await;
        } else {
            self.inner.token.cancelled().await;
        }
        watcher.abort();
        poller.abort();
        persister.abort();
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner.locks.lock().entry(id.to_string()).or_default().clone()
    }

    /// Finds a tracked container by full id, name or unique id prefix.
    pub fn resolve(&self, reference: &str) -> Option<String> {
        let reference = reference.trim_start_matches('/');
        if reference.is_empty() {
            return None;
        }
        let table = self.inner.table.lock();
        if table.contains_key(reference) {
            return Some(reference.to_string());
        }
        if let Some(entry) = table.values().find(|e| e.name == reference) {
            return Some(entry.id.clone());
        }
        let mut matches = table.keys().filter(|id| id.starts_with(reference));
        match (matches.next(), matches.next()) {
            (Some(id), None) => Some(id.clone()),
            _ => None,
        }
    }

    /// Marks the container in use, then wakes it if the shim put it to
    /// sleep. The returned guard keeps it awake until dropped.
    pub async fn use_container(
        &self,
        reference: &str,
        trigger: &str,
        wake: bool,
    ) -> Result<Option<InUse>, LifecycleError> {
        let id = match self.resolve(reference) {
            Some(id) => id,
            None => match self.track_now(reference).await {
                Some(id) => id,
                None => return Ok(None),
            },
        };
        let asleep = {
            let mut table = self.inner.table.lock();
            let Some(entry) = table.get_mut(&id) else {
                return Ok(None);
            };
            entry.in_flight += 1;
            entry.last_activity = Instant::now();
            tracing::trace!(container = %id, trigger, state = ?entry.state, in_flight = entry.in_flight, "in use");
            entry.state.is_asleep()
        };
        let guard = InUse {
            lifecycle: self.clone(),
            id: id.clone(),
        };
        if asleep && wake && self.auto_sleep().wake_on_request {
            self.wake(&id, trigger).await?;
        }
        Ok(Some(guard))
    }

    /// Adds a container the event watcher has not reported yet, from
    /// dockerd's inspect: its events arrive a moment after `docker run`
    /// returns, and a session opened at once must count as use.
    async fn track_now(&self, reference: &str) -> Option<String> {
        if reference.is_empty() {
            return None;
        }
        let info = self.inner.docker.inspect_container(reference).await.ok()?;
        let id = info.id.clone();
        let entry = Entry::new(&info, &self.config(), Instant::now());
        self.inner.table.lock().entry(id.clone()).or_insert(entry);
        Some(id)
    }

    /// The container an exec belongs to, asked of dockerd once per exec.
    pub async fn exec_container(&self, exec_id: &str) -> Option<String> {
        if let Some(id) = self.inner.exec_owner.lock().get(exec_id) {
            return Some(id.clone());
        }
        let container = self.inner.docker.exec_container(exec_id).await.ok()?;
        let mut owners = self.inner.exec_owner.lock();
        // Exec ids are never reused; keep the map from growing without bound.
        if owners.len() > 10_000 {
            owners.clear();
        }
        owners.insert(exec_id.to_string(), container.clone());
        Some(container)
    }

    /// Gives every tracked container its policy under the config as it is
    /// now (after a reload): class, sleep settings and idle timeout are
    /// resolved again. A sleeper whose new policy does not let it sleep is
    /// woken; one still allowed to keeps sleeping. Returns how many
    /// containers changed idle timeout, and how many sleepers are woken.
    pub fn refit(&self) -> (usize, usize) {
        let loaded = self.config();
        let mut changed = 0;
        let mut to_wake = Vec::new();
        {
            let mut table = self.inner.table.lock();
            for entry in table.values_mut() {
                if entry.refit(&loaded) {
                    changed += 1;
                }
                if entry.idle_timeout.is_none() && matches!(entry.state, State::Sleeping | State::DeepSleep) {
                    to_wake.push(entry.id.clone());
                }
            }
        }
        let woken = to_wake.len();
        for id in to_wake {
            let this = self.clone();
            self.inner.tasks.spawn(async move {
                if let Err(e) = this.wake(&id, "reload").await {
                    tracing::warn!(container = %id, error = %e, "cannot wake a sleeper its new policy keeps awake");
                }
            });
        }
        (changed, woken)
    }

    /// Whether the shim holds any container paused now (cheap: one pass
    /// over the table, no call to dockerd).
    pub fn has_sleepers(&self) -> bool {
        self.inner.table.lock().values().any(|e| e.state.is_disguised())
    }

    /// The containers the shim holds asleep now (paused, or stopped by a
    /// deep sleep), by full id, as the proxy's disguise needs them.
    pub fn sleepers(&self) -> HashMap<String, Sleeper> {
        let now = Instant::now();
        self.inner
            .table
            .lock()
            .values()
            .filter(|e| e.state.is_disguised())
            .map(|e| {
                let deep = matches!(e.state, State::Stopping | State::DeepSleep).then(|| Deep {
                    up: now.saturating_duration_since(e.running_since),
                    ports: e.published.clone(),
                });
                let sleeper = Sleeper {
                    health: e.health_at_sleep.clone(),
                    deep,
                };
                (e.id.clone(), sleeper)
            })
            .collect()
    }

    /// Whether the shim holds this container asleep.
    pub fn is_asleep(&self, id: &str) -> bool {
        self.inner.table.lock().get(id).is_some_and(|e| e.state.is_asleep())
    }

    /// The compose services `id` depends on that are asleep, as ids.
    pub fn sleeping_dependencies(&self, id: &str) -> Vec<String> {
        let table = self.inner.table.lock();
        let Some(entry) = table.get(id) else { return Vec::new() };
        let Some(project) = &entry.project else {
            return Vec::new();
        };
        table
            .values()
            .filter(|other| {
                other.project.as_ref() == Some(project)
                    && other.service.as_ref().is_some_and(|s| entry.depends_on.contains(s))
                    && other.state.is_asleep()
            })
            .map(|other| other.id.clone())
            .collect()
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
