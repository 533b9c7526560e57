//! Putting to sleep: pause an idle container, squeeze its memory, and stop a
//! long sleeper whose class allows deep sleep.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::own::Own;
use super::{cgroup, Lifecycle, LifecycleError, State};
use crate::docker::DockerError;

/// Why stopping the container with this `HostConfig` would lose it or its
/// files, as far as the config alone tells: `AutoRemove` deletes it on
/// stop. The tmpfs paths are returned to be looked into.
pub(super) fn stop_hazards(host_config: Option<&serde_json::Value>) -> (Option<String>, Vec<String>) {
    let Some(host) = host_config else {
        return (Some("its HostConfig cannot be read".into()), Vec::new());
    };
    if host["AutoRemove"].as_bool() == Some(true) {
        return (
            Some("AutoRemove is set (docker run --rm): a stop would delete it".into()),
            Vec::new(),
        );
    }
    let mut tmpfs: Vec<String> = host["Tmpfs"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(path, _)| path.clone())
        .collect();
    tmpfs.extend(
        host["Mounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["Type"].as_str() == Some("tmpfs"))
            .filter_map(|m| m["Target"].as_str().map(str::to_string)),
    );
    tmpfs.sort();
    tmpfs.dedup();
    (None, tmpfs)
}

/// Upper bound on one memory squeeze.
const SQUEEZE_TIMEOUT: Duration = Duration::from_secs(2);

impl Lifecycle {
    /// Puts a container to sleep if it is still idle: pause, then squeeze its
    /// memory when the policy and swap allow. `force` skips the idle check
    /// (an operator's `forge-shim sleep`), never the live-session check.
    ///
    /// Like a wake, the sleep runs as a task of its own, which goes on to
    /// its end when the caller goes away.
    pub async fn sleep(&self, id: &str, trigger: &str, force: bool) -> Result<bool, LifecycleError> {
        let (this, id, trigger) = (self.clone(), id.to_string(), trigger.to_string());
        let name = self.name_of(&id);
        let task = self
            .inner
            .tasks
            .spawn(async move { this.sleep_now(&id, &trigger, force).await });
        task.await.unwrap_or_else(|e| {
            Err(LifecycleError::PauseFailed {
                container: name,
                message: format!("the sleep's task ended: {e}"),
            })
        })
    }

    /// [`Lifecycle::sleep`], in the caller's task.
    pub(super) async fn sleep_now(&self, id: &str, trigger: &str, force: bool) -> Result<bool, LifecycleError> {
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
        let memory_before = {
            let id = id.to_string();
            self.on_host(move |host| host.cgroup(&id, pid).ok()?.memory_usage().ok())
                .await
                .flatten()
        };
        // Its health as dockerd tells it now: dockerd will call the frozen
        // container unhealthy, and clients of the shim are shown this one.
        let health = match tokio::time::timeout(timeout, self.inner.docker.inspect_container_json(id)).await {
            Ok(Ok(info)) => info.pointer("/State/Health").filter(|h| !h.is_null()).cloned(),
            _ => None,
        };
        if let Some(entry) = self.inner.table.lock().get_mut(id) {
            entry.health_at_sleep = health;
        }
        // Someone else paused it (and the event has not reached us yet):
        // it is theirs, and trying again would fail the same way.
        let mut paused_by_someone_else = false;
        self.inner.owed.lock().asked(id, Own::Pause);
        let paused = match tokio::time::timeout(timeout, self.inner.docker.pause(id)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                paused_by_someone_else = matches!(e, DockerError::AlreadyPaused(_));
                Err(e.to_string())
            }
            Err(_) => Err(format!("no answer within {timeout:?} (runc freezer stuck?)")),
        };
        if let Err(message) = paused {
            self.inner.owed.lock().failed(id, Own::Pause);
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
        let (net_peers, net_bytes, net_unicast) = match pid.filter(|_| own_network) {
            Some(pid) => self.sleep_counters(pid).await,
            None => (None, None, None),
        };
        {
            let mut table = self.inner.table.lock();
            if let Some(entry) = table.get_mut(id) {
                entry.set_state(State::Sleeping);
                entry.asleep_since = Some(Instant::now());
                entry.net_bytes_at_sleep = net_bytes;
                entry.net_peers = net_peers;
                entry.net_unicast_at_sleep = net_unicast;
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
    pub(super) async fn squeeze(&self, id: &str, pid: u32, target: u64) {
        let cancel = Arc::new(AtomicBool::new(false));
        self.inner.squeeze_cancel.lock().insert(id.to_string(), cancel.clone());
        let squeezed = {
            let id = id.to_string();
            self.on_host(move |host| {
                if !cgroup::swap_available(&host.proc) {
                    tracing::debug!(id, "no swap: only page cache can be reclaimed");
                }
                let cg = match host.cgroup(&id, Some(pid)) {
                    Ok(cg) => cg,
                    Err(e) => return Err(std::io::Error::other(e)),
                };
                let report = cg.squeeze_cancellable(target, SQUEEZE_TIMEOUT, &cancel);
                if let Ok(report) = &report {
                    cg.restore(&report.saved)?;
                }
                report
            })
            .await
        };
        self.inner.squeeze_cancel.lock().remove(id);
        match squeezed {
            Some(Ok(report)) => {
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
            Some(Err(e)) => tracing::warn!(id, error = %e, "memory squeeze failed"),
            None => {}
        }
    }

    /// Stops a long sleeper whose class allows deep sleep.
    /// Why a deep sleep of `id` would lose something, or `None` when it
    /// would not: `AutoRemove`, a tmpfs that holds files, or anything the
    /// shim cannot read (then it is not stopped).
    async fn deep_sleep_hazard(&self, id: &str) -> Option<String> {
        let info = match self.inner.docker.inspect_container(id).await {
            Ok(info) => info,
            Err(e) => return Some(format!("cannot inspect it: {e}")),
        };
        let (hazard, tmpfs) = stop_hazards(info.host_config.as_ref());
        if hazard.is_some() || tmpfs.is_empty() {
            return hazard;
        }
        let Some(pid) = info.pid.and_then(|p| u32::try_from(p).ok()).filter(|p| *p > 0) else {
            return Some("its tmpfs cannot be looked into: no process".into());
        };
        let holding = self.on_host(move |host| host.tmpfs_holding_files(pid, &tmpfs)).await;
        match holding {
            Some(Ok(holding)) if holding.is_empty() => None,
            Some(Ok(holding)) => Some(format!(
                "its tmpfs {} holds files a stop would lose",
                holding.join(", ")
            )),
            Some(Err(e)) => Some(format!("its tmpfs cannot be looked into: {e}")),
            None => Some("its tmpfs cannot be looked into".into()),
        }
    }

    pub(super) async fn deep_sleep(&self, id: &str) {
        let lock = self.lock_for(id);
        let Ok(_held) = lock.try_lock() else { return };
        // A deep sleep is a stop: never one that would lose the container
        // or its files. The container is frozen, so what is read here is
        // what the stop would lose.
        if let Some(why) = self.deep_sleep_hazard(id).await {
            tracing::info!(container = %id, "not deep-sleeping: {why}");
            if let Some(entry) = self.inner.table.lock().get_mut(id) {
                entry.deep_sleep_blocked = Some(why);
            }
            return;
        }
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
        if let (Some(limits), Some(pid)) = (saved, pid) {
            self.restore_limits(id, pid, limits).await;
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
}
