//! Sleep and wake: pause idle containers, wake them before anyone notices.
//!
//! - [`state`]: a container's state and the pure decisions on it;
//! - [`activity`]: sampling network and CPU use for idle detection;
//! - [`cgroup`]: the cgroup v1/v2 seam (usage, memory squeeze, restore);
//! - [`store`]: which containers the shim put to sleep, persisted atomically.
//!
//! **Only this module pauses, unpauses, stops or starts containers on its own
//! initiative.** Transitions of one container are serialised by a per-container
//! lock; a request marks its container in use *before* it looks at its state,
//! and a sleep re-checks "nothing in use" under the same table lock right
//! before it pauses, so a container is never paused under a live request.

pub mod activity;
pub mod cgroup;
pub mod conntrack;
pub mod ports;
pub mod state;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{LoadedConfig, OnShutdown};
use crate::docker::{DockerApi, DockerError, EventKind};
pub use state::{Entry, State, WakeRecord};

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

/// One state transition, as streamed by `/_forge/v1/events`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Transition {
    pub id: String,
    pub name: String,
    /// `sleeping`, `waking`, `running`, `stopping`, `deep_sleep`, …
    pub transition: &'static str,
    pub from: State,
    pub to: State,
    pub trigger: String,
    pub duration_ms: f64,
    pub at_unix_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One row of `/_forge/v1/containers` and `forge-shim status`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct StatusRow {
    pub id: String,
    pub name: String,
    pub project: Option<String>,
    pub service: Option<String>,
    pub class: String,
    pub state: State,
    pub sleeps: bool,
    pub idle_timeout_s: Option<f64>,
    pub since_unix_ms: u64,
    pub idle_for_s: f64,
    pub in_use: u32,
    pub memory_running: Option<u64>,
    pub memory_asleep: Option<u64>,
    pub wakes: u64,
    pub last_wake: Option<WakeRecord>,
    /// Published TCP ports, `host_ip:host_port->container_port`.
    pub ports: Vec<String>,
}

#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Arc<dyn DockerApi>,
    loaded: LoadedConfig,
    table: Mutex<HashMap<String, Entry>>,
    /// Serialises the transitions of each container.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Exec id → container id, learnt on exec start.
    exec_owner: Mutex<HashMap<String, String>>,
    /// Set by a wake to cut short a squeeze in progress.
    squeeze_cancel: Mutex<HashMap<String, Arc<AtomicBool>>>,
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
    host: HostPaths,
}

/// Where the lifecycle finds the host's kernel state. The real roots by
/// default; tests point them into a temporary directory.
#[derive(Clone, Debug)]
pub struct HostPaths {
    /// procfs: containers' `<pid>/net/dev` and `<pid>/cgroup`, the host's
    /// `self/net/dev`, `meminfo`, `swaps`.
    pub proc: PathBuf,
    /// sysfs: the host ends of veth pairs are in `class/net`.
    pub sys: PathBuf,
    /// The cgroup hierarchy (v1 or v2).
    pub cgroup: PathBuf,
    /// The `conntrack` program (looked up on `PATH` when bare).
    pub conntrack: PathBuf,
}

impl Default for HostPaths {
    fn default() -> HostPaths {
        HostPaths {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
            cgroup: PathBuf::from("/sys/fs/cgroup"),
            conntrack: PathBuf::from("conntrack"),
        }
    }
}

impl HostPaths {
    /// The shim's `/sys/class/net`, where the host ends of veths are.
    fn sys_class_net(&self) -> PathBuf {
        self.sys.join("class").join("net")
    }
}

/// Marks a container in use for as long as it lives: a request in flight, or
/// an exec/attach/logs stream still open. Dropping it records activity.
pub struct InUse {
    lifecycle: Lifecycle,
    id: String,
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
    pub fn new(
        docker: Arc<dyn DockerApi>,
        loaded: LoadedConfig,
        token: CancellationToken,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Lifecycle {
        Lifecycle::with_host(docker, loaded, token, metrics, HostPaths::default())
    }

    /// [`Lifecycle::new`] over other host roots (tests).
    pub fn with_host(
        docker: Arc<dyn DockerApi>,
        loaded: LoadedConfig,
        token: CancellationToken,
        metrics: Arc<crate::metrics::Metrics>,
        host: HostPaths,
    ) -> Lifecycle {
        let store = store::Store::open(&loaded.config.state_dir);
        let (events, _) = broadcast::channel(1024);
        Lifecycle {
            inner: Arc::new(Inner {
                docker,
                loaded,
                table: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
                exec_owner: Mutex::new(HashMap::new()),
                squeeze_cancel: Mutex::new(HashMap::new()),
                port_holds: Mutex::new(HashMap::new()),
                store,
                records_write: Mutex::new(()),
                events,
                persist_requested: tokio::sync::Notify::new(),
                metrics,
                token,
                host,
            }),
        }
    }

    fn auto_sleep(&self) -> &crate::config::AutoSleep {
        &self.inner.loaded.config.auto_sleep
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
        let watcher = tokio::spawn(self.clone().watch_events());
        let persister = tokio::spawn(self.clone().persister());
        let poller = tokio::spawn(self.clone().wake_poller());
        if self.auto_sleep().enabled {
            self.clone().sampler().await;
        } else {
            self.inner.token.cancelled().await;
        }
        watcher.abort();
        poller.abort();
        persister.abort();
    }

    /// Lists every container, restores what the shim put to sleep from the
    /// state file, and forgets records of containers that are gone or were
    /// woken behind its back.
    ///
    /// Listing takes a while, and requests, transitions and events go on
    /// meanwhile: an entry whose state changed after the listing began is
    /// newer than what was listed and is kept as it is; the others take the
    /// listed view but keep the shim's own bookkeeping (requests and
    /// sessions in flight, last activity, wakes).
    async fn reconcile(&self) -> Result<(), LifecycleError> {
        let started = SystemTime::now();
        let listed = self.inner.docker.list_containers().await?;
        let records = self.inner.store.load_or_quarantine();
        let now = Instant::now();
        let mut entries = HashMap::new();
        for id in listed {
            // Removed since the list, or dockerd went away: the next event
            // or reconcile tells.
            let Ok(info) = self.inner.docker.inspect_container(&id).await else {
                continue;
            };
            let mut entry = Entry::new(&info, &self.inner.loaded, now);
            if let Some(record) = records.iter().find(|r| r.id == id) {
                match (record.state, info.paused, info.running) {
                    (store::SleptState::Paused, true, _) => {
                        entry.set_state(State::Sleeping);
                        entry.asleep_since = Some(now);
                        entry.saved_limits = record.saved_limits.clone();
                        entry.memory_running = record.memory_before;
                        entry.memory_asleep = record.memory_after;
                        if let Some(pid) = entry.pid.filter(|_| entry.own_network) {
                            (entry.net_peers, entry.net_bytes_at_sleep) = self.sleep_counters_off_thread(pid).await;
                        }
                    }
                    (store::SleptState::Stopped, false, false) => {
                        entry.set_state(State::DeepSleep);
                        entry.asleep_since = Some(now);
                        // A stopped container publishes nothing: the ports
                        // are the ones it had when it was put to sleep.
                        entry.published = record.published.clone();
                    }
                    _ => {}
                }
            }
            entries.insert(id, entry);
        }
        {
            let mut table = self.inner.table.lock();
            let mut merged = HashMap::with_capacity(entries.len());
            for (id, mut fresh) in entries {
                match table.remove(&id) {
                    Some(current) if current.since >= started => {
                        merged.insert(id, current);
                    }
                    Some(current) => {
                        fresh.in_flight = current.in_flight;
                        fresh.last_activity = current.last_activity;
                        fresh.running_since = current.running_since;
                        fresh.wakes = current.wakes;
                        fresh.short_naps = current.short_naps;
                        fresh.last_wake = current.last_wake;
                        if fresh.state.is_asleep() && current.state.is_asleep() {
                            fresh.asleep_since = current.asleep_since;
                        }
                        merged.insert(id, fresh);
                    }
                    None => {
                        merged.insert(id, fresh);
                    }
                }
            }
            // Created while we listed (the event watcher added them).
            merged.extend(table.drain().filter(|(_, entry)| entry.since >= started));
            let n_asleep = merged.values().filter(|e| e.state.is_asleep()).count();
            tracing::info!(containers = merged.len(), asleep = n_asleep, "lifecycle: view rebuilt");
            *table = merged;
        }
        self.write_records();
        self.hold_deep_sleepers_ports().await;
        Ok(())
    }

    /// Holds the published ports of every deep sleeper that has no hold yet
    /// (after a restart of the shim), so connections wait instead of being
    /// refused.
    async fn hold_deep_sleepers_ports(&self) {
        let unheld: Vec<(String, Vec<crate::docker::PublishedPort>)> = {
            let table = self.inner.table.lock();
            let holds = self.inner.port_holds.lock();
            table
                .values()
                .filter(|e| e.state == State::DeepSleep && !e.published.is_empty() && !holds.contains_key(&e.id))
                .map(|e| (e.id.clone(), e.published.clone()))
                .collect()
        };
        for (id, published) in unheld {
            // Under the container's lock: a wake must not start it while
            // the shim holds its ports.
            let lock = self.lock_for(&id);
            let _held = lock.lock().await;
            if !self.inner.port_holds.lock().contains_key(&id) {
                self.hold_ports(&id, &published).await;
            }
        }
    }

    /// Binds `published` for the deep sleeper `id`; a connection wakes it.
    /// The caller holds the container's lock.
    async fn hold_ports(&self, id: &str, published: &[crate::docker::PublishedPort]) {
        let this = self.clone();
        let waker_id = id.to_string();
        let hold = ports::PortHold::bind(published, move || this.spawn_wake(waker_id.clone(), "connection")).await;
        if hold.is_empty() {
            return;
        }
        // It may have been woken while the ports were being bound.
        let still_asleep = self
            .inner
            .table
            .lock()
            .get(id)
            .is_some_and(|e| e.state == State::DeepSleep);
        if still_asleep {
            self.inner.port_holds.lock().insert(id.to_string(), hold);
        }
    }

    /// Asks the persister to write the sleep records soon. Transitions never
    /// wait for the disk: if the shim dies before the write, the next start
    /// reconciles the file with what dockerd says.
    fn persist(&self) {
        self.inner.persist_requested.notify_one();
    }

    /// Writes the sleep records whenever asked, coalescing bursts.
    async fn persister(self) {
        loop {
            tokio::select! {
                _ = self.inner.token.cancelled() => break,
                _ = self.inner.persist_requested.notified() => {}
            }
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.write_records()).await;
        }
    }

    /// Writes the sleep records before a pause or a stop: a shim killed
    /// right after it then still knows the container is its own. Only the
    /// sleep waits for it; wakes never do (a stale record of a container
    /// that runs is dropped by the next reconcile).
    async fn persist_now(&self) {
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.write_records()).await;
    }

    /// Writes the sleep records now; a failure is logged, never fatal.
    fn write_records(&self) {
        let _serialised = self.inner.records_write.lock();
        let records: Vec<store::SleepRecord> = {
            let table = self.inner.table.lock();
            table
                .values()
                .filter_map(|entry| {
                    let state = match entry.state {
                        State::Pausing | State::Sleeping | State::Waking => store::SleptState::Paused,
                        State::Stopping | State::DeepSleep => store::SleptState::Stopped,
                        _ => return None,
                    };
                    Some(store::SleepRecord {
                        id: entry.id.clone(),
                        name: entry.name.clone(),
                        state,
                        since_unix_ms: unix_ms(entry.since),
                        saved_limits: entry.saved_limits.clone(),
                        memory_before: entry.memory_running,
                        memory_after: entry.memory_asleep,
                        published: match state {
                            store::SleptState::Stopped => entry.published.clone(),
                            store::SleptState::Paused => Vec::new(),
                        },
                    })
                })
                .collect()
        };
        if let Err(e) = self.inner.store.save(&records) {
            tracing::warn!(error = %e, "lifecycle: cannot persist sleep state");
        }
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
        let entry = Entry::new(&info, &self.inner.loaded, Instant::now());
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

    /// `stop`, `kill` or `rm` of a container the shim stopped: it is already
    /// stopped, so it is handed back (ports released) instead of started
    /// only to be stopped again. Returns whether it was a deep sleeper.
    pub fn release_deep_sleeper(&self, id: &str) -> bool {
        {
            let mut table = self.inner.table.lock();
            let Some(entry) = table.get_mut(id) else { return false };
            if entry.state != State::DeepSleep {
                return false;
            }
            entry.set_state(State::Stopped);
        }
        if let Some(hold) = self.inner.port_holds.lock().remove(id) {
            drop(hold.release());
        }
        self.persist();
        true
    }

    /// A user `docker pause` of a container the shim holds asleep: it becomes
    /// the user's (limits restored), and stays paused.
    pub async fn hand_to_user(&self, id: &str) -> Result<(), LifecycleError> {
        let lock = self.lock_for(id);
        let _held = lock.lock().await;
        let saved = {
            let mut table = self.inner.table.lock();
            let Some(entry) = table.get_mut(id) else { return Ok(()) };
            if entry.state != State::Sleeping {
                return Ok(());
            }
            entry.set_state(State::UserPaused);
            entry.saved_limits.take().zip(entry.pid)
        };
        if let Some((limits, pid)) = saved {
            self.restore_limits(id, pid, &limits);
        }
        self.persist();
        Ok(())
    }

    /// Wakes a container the shim put to sleep: unpause (or start, from deep
    /// sleep), limits restored first. Concurrent callers share one wake.
    pub async fn wake(&self, id: &str, trigger: &str) -> Result<(), LifecycleError> {
        let started = Instant::now();
        let timeout = self.auto_sleep().transition_timeout.as_duration();
        if let Some(cancel) = self.inner.squeeze_cancel.lock().get(id) {
            cancel.store(true, Ordering::Relaxed);
        }
        let lock = self.lock_for(id);
        let held = tokio::time::timeout(timeout, lock.lock()).await;
        let Ok(_held) = held else {
            return Err(LifecycleError::WakeTimedOut {
                container: self.name_of(id),
            });
        };
        let (from, name, saved, pid) = {
            let mut table = self.inner.table.lock();
            let Some(entry) = table.get_mut(id) else { return Ok(()) };
            let from = entry.state;
            if !matches!(from, State::Sleeping | State::DeepSleep) {
                return Ok(());
            }
            entry.set_state(State::Waking);
            (from, entry.name.clone(), entry.saved_limits.take(), entry.pid)
        };
        if let (Some(limits), Some(pid)) = (&saved, pid) {
            self.restore_limits(id, pid, limits);
        }
        // dockerd needs the published ports back to start it.
        let held = match self.inner.port_holds.lock().remove(id) {
            Some(hold) if from == State::DeepSleep => hold.release(),
            _ => Vec::new(),
        };
        let docker = &self.inner.docker;
        let call = if from == State::DeepSleep {
            docker.start(id)
        } else {
            docker.unpause(id)
        };
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(())) => Ok(()),
            // Someone unpaused or started it behind our back: fine.
            Ok(Err(DockerError::NotModified | DockerError::Conflict(_))) if self.is_running_now(id).await => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        let elapsed = started.elapsed();
        let now = Instant::now();
        let to = {
            let mut table = self.inner.table.lock();
            let Some(entry) = table.get_mut(id) else { return Ok(()) };
            match &result {
                Ok(()) => {
                    if let Some(asleep_since) = entry.asleep_since {
                        entry.record_sleep(now.saturating_duration_since(asleep_since));
                    }
                    entry.set_state(State::Running);
                    entry.asleep_since = None;
                    entry.last_activity = now;
                    entry.wakes += 1;
                    if from == State::DeepSleep {
                        entry.running_since = now;
                    }
                    entry.last_wake = Some(WakeRecord {
                        latency_ms: elapsed.as_secs_f64() * 1e3,
                        trigger: trigger.to_string(),
                        at_unix_ms: unix_ms(SystemTime::now()),
                    });
                }
                Err(_) => {
                    entry.set_state(from);
                    entry.saved_limits = saved;
                }
            }
            entry.state
        };
        // A start gives the container a new pid and maybe new addresses; an
        // unpause does not.
        if result.is_ok() && from == State::DeepSleep {
            self.refresh_pid(id).await;
            if !held.is_empty() {
                let addresses = self
                    .inner
                    .table
                    .lock()
                    .get(id)
                    .map(|e| e.addresses.clone())
                    .unwrap_or_default();
                ports::hand_over(held, &addresses);
            }
        }
        self.persist();
        self.emit(
            id,
            &name,
            "wake",
            from,
            to,
            trigger,
            elapsed,
            result.as_ref().err().cloned(),
        );
        match result {
            Ok(()) => {
                tracing::info!(container = %name, trigger, latency_ms = elapsed.as_secs_f64() * 1e3, "woke");
                Ok(())
            }
            Err(message) => Err(LifecycleError::WakeFailed {
                container: self.name_of(id),
                message,
            }),
        }
    }

    /// The container's name for messages; its id when it has none.
    fn name_of(&self, id: &str) -> String {
        self.inner
            .table
            .lock()
            .get(id)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    async fn is_running_now(&self, id: &str) -> bool {
        self.inner
            .docker
            .inspect_container(id)
            .await
            .is_ok_and(|i| i.running && !i.paused)
    }

    async fn refresh_pid(&self, id: &str) {
        if let Ok(info) = self.inner.docker.inspect_container(id).await {
            if let Some(entry) = self.inner.table.lock().get_mut(id) {
                entry.pid = info.pid.filter(|p| *p > 0).map(|p| p as u32);
                entry.addresses = info.addresses;
                entry.published = info.published;
            }
        }
    }

    /// Puts a container to sleep if it is still idle: pause, then squeeze its
    /// memory when the policy and swap allow. `force` skips the idle check
    /// (an operator's `forge-shim sleep`), never the live-session check.
    pub async fn sleep(&self, id: &str, trigger: &str, force: bool) -> Result<bool, LifecycleError> {
        let started = Instant::now();
        let timeout = self.auto_sleep().transition_timeout.as_duration();
        let min_uptime = self.auto_sleep().min_uptime.as_duration();
        let lock = self.lock_for(id);
        let Ok(_held) = lock.try_lock() else {
            return Ok(false);
        };
        let (name, pid, reservation, own_network) = {
            let mut table = self.inner.table.lock();
            let Some(entry) = table.get_mut(id) else {
                return Ok(false);
            };
            let eligible = if force {
                entry.state == State::Running && entry.in_flight == 0
            } else {
                entry.may_sleep(Instant::now(), min_uptime)
            };
            if !eligible {
                return Ok(false);
            }
            entry.set_state(State::Pausing);
            let reservation = entry.policy.sleep_policy.memory_reservation;
            (entry.name.clone(), entry.pid, reservation, entry.own_network)
        };
        self.persist_now().await;
        let memory_before = self.cgroup(id, pid).and_then(|cg| cg.memory_usage().ok());
        // Someone else paused it (and the event has not reached us yet):
        // it is theirs, and trying again would fail the same way.
        let mut paused_by_someone_else = false;
        let paused = match tokio::time::timeout(timeout, self.inner.docker.pause(id)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                paused_by_someone_else = matches!(e, DockerError::AlreadyPaused(_));
                Err(e.to_string())
            }
            Err(_) => Err(format!("no answer within {timeout:?} (runc freezer stuck?)")),
        };
        if let Err(message) = paused {
            if let Some(entry) = self.inner.table.lock().get_mut(id) {
                entry.set_state(if paused_by_someone_else {
                    State::UserPaused
                } else {
                    State::Running
                });
                entry.last_activity = Instant::now();
            }
            self.emit(
                id,
                &name,
                "sleep",
                State::Running,
                State::Running,
                trigger,
                started.elapsed(),
                Some(message.clone()),
            );
            return Err(LifecycleError::PauseFailed {
                container: name,
                message,
            });
        }
        // Counter wake needs counters of its own; conntrack still works.
        let (net_peers, net_bytes) = match pid.filter(|_| own_network) {
            Some(pid) => self.sleep_counters_off_thread(pid).await,
            None => (None, None),
        };
        {
            let mut table = self.inner.table.lock();
            if let Some(entry) = table.get_mut(id) {
                entry.set_state(State::Sleeping);
                entry.asleep_since = Some(Instant::now());
                entry.net_bytes_at_sleep = net_bytes;
                entry.net_peers = net_peers;
                entry.memory_running = memory_before;
                entry.memory_asleep = memory_before;
            }
        }
        self.persist();
        let paused_in = started.elapsed();
        // Squeeze while frozen: the tasks cannot fault pages back in.
        if let (Some(target), Some(pid)) = (reservation, pid) {
            if self.auto_sleep().memory_squeeze {
                self.squeeze(id, pid, target.bytes()).await;
            }
        }
        self.emit(
            id,
            &name,
            "sleep",
            State::Running,
            State::Sleeping,
            trigger,
            paused_in,
            None,
        );
        tracing::info!(container = %name, trigger, pause_ms = paused_in.as_secs_f64() * 1e3, "asleep");
        Ok(true)
    }

    /// Pushes a frozen container's memory out (to swap; without swap only
    /// page cache goes), then puts its limits straight back: frozen tasks
    /// cannot fault pages in, so memory stays out until the container runs
    /// and touches it, and a container unpaused behind the shim's back never
    /// runs with a squeezed limit. A wake cancels a squeeze in progress.
    async fn squeeze(&self, id: &str, pid: u32, target: u64) {
        if !cgroup::swap_available(&self.inner.host.proc) {
            tracing::debug!(id, "no swap: only page cache can be reclaimed");
        }
        let Some(cg) = self.cgroup(id, Some(pid)) else { return };
        let cancel = Arc::new(AtomicBool::new(false));
        self.inner.squeeze_cancel.lock().insert(id.to_string(), cancel.clone());
        let squeezed = tokio::task::spawn_blocking(move || {
            let report = cg.squeeze_cancellable(target, SQUEEZE_TIMEOUT, &cancel);
            if let Ok(report) = &report {
                cg.restore(&report.saved)?;
            }
            report
        })
        .await;
        self.inner.squeeze_cancel.lock().remove(id);
        match squeezed {
            Ok(Ok(report)) => {
                if let Some(entry) = self.inner.table.lock().get_mut(id) {
                    entry.memory_asleep = Some(report.after);
                }
                tracing::info!(
                    id,
                    before = report.before,
                    after = report.after,
                    ms = report.elapsed.as_secs_f64() * 1e3,
                    stop = ?report.stop,
                    "memory squeezed"
                );
                self.persist();
            }
            Ok(Err(e)) => tracing::warn!(id, error = %e, "memory squeeze failed"),
            Err(e) => tracing::warn!(id, error = %e, "memory squeeze task failed"),
        }
    }

    fn restore_limits(&self, id: &str, pid: u32, limits: &cgroup::SavedLimits) {
        match self.cgroup(id, Some(pid)) {
            Some(cg) => {
                if let Err(e) = cg.restore(limits) {
                    tracing::warn!(id, error = %e, "could not restore memory limits");
                }
            }
            None => tracing::warn!(id, "cgroup not found; memory limits not restored"),
        }
    }

    /// The container's cgroup, checked against its id so a reused pid can
    /// never point at another container's.
    fn cgroup(&self, id: &str, pid: Option<u32>) -> Option<cgroup::ContainerCgroup> {
        cgroup::ContainerCgroup::resolve(&self.inner.host.cgroup, &self.inner.host.proc, pid, id).ok()
    }

    fn net_bytes(&self, pid: u32) -> Option<u64> {
        activity::net_bytes(&self.inner.host.proc, pid).ok()
    }

    /// [`Lifecycle::sleep_counters`] on the blocking pool: finding the veth
    /// peers reads two files per host interface, which with hundreds of
    /// containers must not stall the thread that serves requests.
    async fn sleep_counters_off_thread(&self, pid: u32) -> (Option<Arc<[String]>>, Option<u64>) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.sleep_counters(pid))
            .await
            .unwrap_or((None, None))
    }

    /// Where a container falling asleep has its traffic counted, and the
    /// count now: the host ends of its veth pairs when they can be found,
    /// else its own namespace's table.
    fn sleep_counters(&self, pid: u32) -> (Option<Arc<[String]>>, Option<u64>) {
        let host = &self.inner.host;
        if let Some(peers) = activity::host_peers(&host.proc, &host.sys_class_net(), pid) {
            if let Some(bytes) = activity::host_net_dev(&host.proc)
                .ok()
                .and_then(|table| sum_peers(&table, &peers))
            {
                return (Some(peers.into()), Some(bytes));
            }
        }
        (None, self.net_bytes(pid))
    }

    /// Stops a long sleeper whose class allows deep sleep.
    async fn deep_sleep(&self, id: &str) {
        let lock = self.lock_for(id);
        let Ok(_held) = lock.try_lock() else { return };
        let (name, saved, pid, published) = {
            let mut table = self.inner.table.lock();
            let Some(entry) = table.get_mut(id) else { return };
            if entry.state != State::Sleeping || entry.in_flight > 0 {
                return;
            }
            entry.set_state(State::Stopping);
            (
                entry.name.clone(),
                entry.saved_limits.take(),
                entry.pid,
                entry.published.clone(),
            )
        };
        let started = Instant::now();
        self.persist_now().await;
        if let (Some(limits), Some(pid)) = (&saved, pid) {
            self.restore_limits(id, pid, limits);
        }
        // The container's own stop timeout (or dockerd's default).
        let result = self.inner.docker.stop(id).await.map_err(|e| e.to_string());
        let to = if result.is_ok() {
            State::DeepSleep
        } else {
            State::Sleeping
        };
        if let Some(entry) = self.inner.table.lock().get_mut(id) {
            entry.set_state(to);
            if result.is_ok() {
                entry.pid = None;
            }
        }
        if result.is_ok() && !published.is_empty() {
            // Connections to its published ports are held, not refused.
            self.hold_ports(id, &published).await;
        }
        self.persist();
        self.emit(
            id,
            &name,
            "deep_sleep",
            State::Sleeping,
            to,
            "max_sleep_time",
            started.elapsed(),
            result.err(),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        id: &str,
        name: &str,
        transition: &'static str,
        from: State,
        to: State,
        trigger: &str,
        duration: Duration,
        error: Option<String>,
    ) {
        let metrics = &self.inner.metrics;
        metrics.transition(transition, trigger, error.is_none());
        if error.is_none() {
            match transition {
                "wake" => metrics.wake_seconds.observe(duration.as_secs_f64()),
                "sleep" => metrics.sleep_seconds.observe(duration.as_secs_f64()),
                _ => {}
            }
        }
        let _ = self.inner.events.send(Transition {
            id: id.to_string(),
            name: name.to_string(),
            transition,
            from,
            to,
            trigger: trigger.to_string(),
            duration_ms: duration.as_secs_f64() * 1e3,
            at_unix_ms: unix_ms(SystemTime::now()),
            error,
        });
    }

    /// Samples every running sleep-enabled container each `check_interval`,
    /// records activity, and puts the idle ones to sleep; stops long
    /// sleepers whose class allows deep sleep.
    async fn sampler(self) {
        let interval = self.auto_sleep().check_interval.as_duration();
        let idle_threshold = self.auto_sleep().idle_threshold;
        let network_rate = self.auto_sleep().network_idle_rate.bytes();
        let max_sleep = self.auto_sleep().max_sleep_time.as_duration();
        let mut samples: HashMap<String, activity::Sample> = HashMap::new();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.inner.token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let candidates: Vec<(String, Option<u32>, f64, bool)> = {
                let table = self.inner.table.lock();
                table
                    .values()
                    .filter(|e| e.state == State::Running && e.idle_timeout.is_some())
                    .map(|e| (e.id.clone(), e.pid, e.cpu_limit, e.own_network))
                    .collect()
            };
            samples.retain(|id, _| candidates.iter().any(|(c, _, _, _)| c == id));
            let now = Instant::now();
            for (id, pid, cpu_limit, own_network) in &candidates {
                let Some(pid) = pid else { continue };
                let sample = activity::Sample {
                    at: now.into_std(),
                    // Host or shared network: the counters are not its own.
                    net_bytes: if *own_network {
                        self.net_bytes(*pid).unwrap_or(0)
                    } else {
                        0
                    },
                    cpu_nanos: self
                        .cgroup(id, Some(*pid))
                        .and_then(|cg| cg.cpu_usage_nanos().ok())
                        .unwrap_or(0),
                };
                if let Some(previous) = samples.insert(id.clone(), sample) {
                    let verdict = activity::judge(&previous, &sample, *cpu_limit, idle_threshold, network_rate);
                    if !matches!(verdict, activity::Activity::Idle) {
                        if let Some(entry) = self.inner.table.lock().get_mut(id) {
                            entry.last_activity = now;
                        }
                    }
                }
            }
            let (to_sleep, to_stop): (Vec<String>, Vec<String>) = {
                let table = self.inner.table.lock();
                let min_uptime = self.auto_sleep().min_uptime.as_duration();
                let to_sleep = table
                    .values()
                    .filter(|e| e.may_sleep(now, min_uptime))
                    .map(|e| e.id.clone())
                    .collect();
                let to_stop = table
                    .values()
                    .filter(|e| {
                        e.state == State::Sleeping
                            && e.policy.sleep_policy.deep_sleep == Some(true)
                            && e.asleep_since
                                .is_some_and(|t| now.saturating_duration_since(t) >= max_sleep)
                    })
                    .map(|e| e.id.clone())
                    .collect();
                (to_sleep, to_stop)
            };
            for id in to_sleep {
                let this = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = this.sleep(&id, "idle", false).await {
                        tracing::warn!(error = %e, "sleep failed");
                    }
                });
            }
            for id in to_stop {
                let this = self.clone();
                tokio::spawn(async move { this.deep_sleep(&id).await });
            }
        }
    }

    /// Wakes sleepers that see network traffic. New connections raise a
    /// conntrack event at once; data on a connection that was already open
    /// is caught by the sleepers' byte counters, read every
    /// [`COUNTER_POLL`]: a packet to a frozen container still lands in its
    /// network namespace's counters, and the kernel queues it until the
    /// container thaws. Counters only wake on [`COUNTER_WAKE_BYTES`] or more
    /// in one interval, so ARP and neighbour chatter does not.
    async fn wake_poller(self) {
        if !self.auto_sleep().wake_on_request {
            self.inner.token.cancelled().await;
            return;
        }
        let (sender, mut receiver) = tokio::sync::mpsc::channel(256);
        let program = self.inner.host.conntrack.clone();
        let follower = tokio::spawn(async move {
            if let Err(e) = conntrack::follow(&program, sender).await {
                tracing::warn!(error = %e, "conntrack events unavailable; waking on byte counters only");
            }
        });
        let mut ticker = tokio::time::interval(COUNTER_POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.inner.token.cancelled() => break,
                Some(addresses) = receiver.recv() => {
                    let ids: Vec<String> = {
                        let table = self.inner.table.lock();
                        table
                            .values()
                            .filter(|e| e.state == State::Sleeping || e.state == State::Pausing)
                            .filter(|e| e.addresses.iter().any(|a| addresses.contains(a)))
                            .map(|e| e.id.clone())
                            .collect()
                    };
                    for id in ids {
                        self.spawn_wake(id, "connection");
                    }
                }
                _ = ticker.tick() => self.poll_counters(),
            }
        }
        follower.abort();
    }

    fn poll_counters(&self) {
        type Sleeper = (String, u32, u64, Option<Arc<[String]>>);
        let sleepers: Vec<Sleeper> = {
            let table = self.inner.table.lock();
            table
                .values()
                .filter(|e| e.state == State::Sleeping && e.own_network)
                .filter_map(|e| Some((e.id.clone(), e.pid?, e.net_bytes_at_sleep?, e.net_peers.clone())))
                .collect()
        };
        // One read of the host's table for every sleeper with veth peers.
        let host = sleepers
            .iter()
            .any(|s| s.3.is_some())
            .then(|| activity::host_net_dev(&self.inner.host.proc).ok())
            .flatten();
        for (id, pid, baseline, peers) in sleepers {
            let now = match (&peers, &host) {
                (Some(peers), Some(table)) => match sum_peers(table, peers) {
                    Some(bytes) => bytes,
                    None => {
                        // A peer is gone: its network changed under it.
                        // Count its own table from here on.
                        let own = self.net_bytes(pid);
                        if let Some(entry) = self.inner.table.lock().get_mut(&id) {
                            entry.net_peers = None;
                            entry.net_bytes_at_sleep = own;
                        }
                        continue;
                    }
                },
                // The host table could not be read this time.
                (Some(_), None) => continue,
                (None, _) => match self.net_bytes(pid) {
                    Some(bytes) => bytes,
                    None => continue,
                },
            };
            if now >= baseline + COUNTER_WAKE_BYTES {
                self.spawn_wake(id, "network");
            } else if now != baseline {
                // Chatter below the threshold: move the baseline so it never
                // adds up to a wake.
                if let Some(entry) = self.inner.table.lock().get_mut(&id) {
                    entry.net_bytes_at_sleep = Some(now);
                }
            }
        }
    }

    fn spawn_wake(&self, id: String, trigger: &'static str) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.wake(&id, trigger).await {
                tracing::warn!(error = %e, trigger, "wake failed");
            }
        });
    }

    /// Follows dockerd's container events so the view stays true when
    /// containers are created, started, paused or removed by anyone.
    async fn watch_events(self) {
        loop {
            // The stream is only requested when first polled, after the
            // reconcile below: ask dockerd to replay from before it, so
            // that nothing that happens while we list is missed.
            let mut events = self.inner.docker.events(EventKind::Container, Some(SystemTime::now()));
            // Events missed while disconnected: resynchronise.
            let _ = self.reconcile().await;
            loop {
                let event = tokio::select! {
                    _ = self.inner.token.cancelled() => return,
                    event = events.next() => event,
                };
                match event {
                    Some(Ok(event)) if !event.id.is_empty() => self.on_event(&event.id, &event.action).await,
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

    async fn on_event(&self, id: &str, action: &str) {
        // exec_start: "exec_start: sh -c ..." and similar carry a suffix.
        let action = action.split(':').next().unwrap_or(action).trim();
        match action {
            "create" | "start" | "restart" => {
                let state_since = self.inner.table.lock().get(id).map(|e| e.since);
                let Ok(info) = self.inner.docker.inspect_container(id).await else {
                    return;
                };
                let now = Instant::now();
                let mut table = self.inner.table.lock();
                match table.get_mut(id) {
                    Some(entry) if action != "create" => {
                        entry.pid = info.pid.filter(|p| *p > 0).map(|p| p as u32);
                        entry.addresses = info.addresses.clone();
                        entry.published = info.published.clone();
                        // Events arrive late (and are replayed after a
                        // reconcile): believe dockerd's state now, and never
                        // undo a transition that ran since the event.
                        let running_now = info.running && !info.paused;
                        let unchanged = state_since == Some(entry.since);
                        if running_now
                            && unchanged
                            && !matches!(entry.state, State::Waking | State::Pausing | State::Stopping)
                        {
                            entry.set_state(State::Running);
                            entry.running_since = now;
                            entry.last_activity = now;
                        }
                    }
                    Some(_) => {}
                    None => {
                        table.insert(id.to_string(), Entry::new(&info, &self.inner.loaded, now));
                    }
                }
            }
            "pause" => {
                if let Some(entry) = self.inner.table.lock().get_mut(id) {
                    if entry.state == State::Running {
                        entry.set_state(State::UserPaused);
                    }
                }
            }
            "unpause" => {
                let restore = {
                    let mut table = self.inner.table.lock();
                    let Some(entry) = table.get_mut(id) else { return };
                    match entry.state {
                        State::UserPaused => {
                            entry.set_state(State::Running);
                            entry.last_activity = Instant::now();
                            None
                        }
                        // Unpaused behind the shim's back: it is running now,
                        // so its limits must come back at once.
                        State::Sleeping => {
                            entry.set_state(State::Running);
                            entry.last_activity = Instant::now();
                            entry.saved_limits.take().zip(entry.pid)
                        }
                        _ => None,
                    }
                };
                if let Some((limits, pid)) = restore {
                    self.restore_limits(id, pid, &limits);
                }
                self.persist();
            }
            "die" | "stop" | "kill" | "oom" => {
                if action != "die" {
                    return;
                }
                if let Some(entry) = self.inner.table.lock().get_mut(id) {
                    if !matches!(entry.state, State::Stopping | State::DeepSleep | State::Waking) {
                        entry.set_state(State::Stopped);
                    }
                }
                self.persist();
            }
            "destroy" => {
                if let Some(hold) = self.inner.port_holds.lock().remove(id) {
                    drop(hold.release());
                }
                self.inner.table.lock().remove(id);
                self.inner.locks.lock().remove(id);
                self.persist();
            }
            "rename" => {
                if let Ok(info) = self.inner.docker.inspect_container(id).await {
                    if let Some(entry) = self.inner.table.lock().get_mut(id) {
                        entry.name = info.name.unwrap_or_default();
                    }
                }
            }
            _ => {}
        }
    }

    /// `on_shutdown: wake_all` wakes every container the shim put to sleep;
    /// `leave` keeps them asleep (the state file lets the next start pick
    /// them up).
    pub async fn shutdown(&self) {
        if self.inner.loaded.config.on_shutdown == OnShutdown::Leave {
            self.write_records();
            return;
        }
        let asleep: Vec<String> = {
            let table = self.inner.table.lock();
            table
                .values()
                .filter(|e| e.state == State::Sleeping)
                .map(|e| e.id.clone())
                .collect()
        };
        let wakes = asleep.iter().map(|id| self.wake(id, "shutdown"));
        for result in futures_util::future::join_all(wakes).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "wake on shutdown failed");
            }
        }
        self.write_records();
    }

    pub fn status(&self) -> Vec<StatusRow> {
        let now = Instant::now();
        let table = self.inner.table.lock();
        let mut rows: Vec<StatusRow> = table
            .values()
            .map(|e| StatusRow {
                id: e.id.clone(),
                name: e.name.clone(),
                project: e.project.clone(),
                service: e.service.clone(),
                class: e.policy.class.clone(),
                state: e.state,
                sleeps: e.idle_timeout.is_some(),
                idle_timeout_s: e.effective_idle_timeout().map(|d| d.as_secs_f64()),
                since_unix_ms: unix_ms(e.since),
                idle_for_s: now.saturating_duration_since(e.last_activity).as_secs_f64(),
                in_use: e.in_flight,
                memory_running: e.memory_running,
                memory_asleep: e.memory_asleep,
                wakes: e.wakes,
                last_wake: e.last_wake.clone(),
                ports: e
                    .published
                    .iter()
                    .map(|p| format!("{}:{}->{}", p.host_ip, p.host_port, p.container_port))
                    .collect(),
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }
}

/// Upper bound on one memory squeeze.
const SQUEEZE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often sleepers' network counters are read.
const COUNTER_POLL: Duration = Duration::from_millis(250);
/// Bytes in one counter interval that wake a sleeper: more than an ARP or
/// neighbour solicitation, less than any real request.
const COUNTER_WAKE_BYTES: u64 = 128;

/// The bytes of `peers` in a host interface table; `None` when one is gone.
fn sum_peers(table: &HashMap<String, u64>, peers: &[String]) -> Option<u64> {
    peers
        .iter()
        .try_fold(0u64, |total, peer| Some(total.saturating_add(*table.get(peer)?)))
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
