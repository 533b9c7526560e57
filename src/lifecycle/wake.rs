//! Waking: unpause (or start, from deep sleep) a container the shim put to
//! sleep, hand a sleeper to its user, wake everything on shutdown.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use tokio::time::Instant;

use super::own::Own;
use super::{ports, unix_ms, Lifecycle, LifecycleError, State, WakeRecord};
use crate::config::OnShutdown;
use crate::docker::DockerError;

/// How many times a wake asks dockerd before it fails, when dockerd's
/// errors are transient ([`transient`]); all within `transition_timeout`.
const WAKE_ATTEMPTS: u32 = 4;
/// The wait before the second attempt; doubled before each later one
/// (25, 50, 100 ms: 175 ms in all at most).
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(25);

/// The longest a wake waits for dockerd's `unpause` event
/// ([`Lifecycle::until_unpause_seen`]); it comes within a millisecond or
/// two, so this is reached only when the event stream is down.
const UNPAUSE_SEEN_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Whether another try may succeed: dockerd did not answer, or answered
/// 5xx (a runtime or containerd call that failed for a moment). A 4xx is
/// dockerd's judgement of the container's state, and final.
fn transient(error: &DockerError) -> bool {
    match error {
        DockerError::Unreachable { .. } => true,
        DockerError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

impl Lifecycle {
    /// Wakes a container the shim put to sleep: unpause (or start, from deep
    /// sleep), limits restored first. Concurrent callers share one wake.
    ///
    /// The wake runs as a task of its own, which goes on to its end when
    /// the caller goes away (a client hangs up, a timeout drops the
    /// request): dropped half-way, a wake would leave the container
    /// `Waking`, never to sleep again, and maybe still paused.
    pub async fn wake(&self, id: &str, trigger: &str) -> Result<(), LifecycleError> {
        let (this, id, trigger) = (self.clone(), id.to_string(), trigger.to_string());
        let name = self.name_of(&id);
        let task = self
            .inner
            .tasks
            .spawn(async move { this.wake_now(&id, &trigger).await });
        task.await.unwrap_or_else(|e| {
            Err(LifecycleError::WakeFailed {
                container: name,
                message: format!("the wake's task ended: {e}"),
            })
        })
    }

    /// [`Lifecycle::wake`], in the caller's task.
    pub(super) async fn wake_now(&self, id: &str, trigger: &str) -> Result<(), LifecycleError> {
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
            self.restore_limits(id, pid, limits.clone()).await;
        }
        // dockerd needs the published ports back to start it.
        let held = match self.inner.port_holds.lock().remove(id) {
            Some(hold) if from == State::DeepSleep => hold.release(),
            _ => Vec::new(),
        };
        let docker = &self.inner.docker;
        let call = async {
            let mut backoff = FIRST_BACKOFF;
            let mut attempt = 1;
            loop {
                let answer = if from == State::DeepSleep {
                    docker.start(id).await
                } else {
                    self.inner.owed.lock().asked(id, Own::Unpause);
                    let answer = docker.unpause(id).await;
                    if answer.is_err() {
                        self.inner.owed.lock().failed(id, Own::Unpause);
                    }
                    answer
                };
                match answer {
                    Err(e) if transient(&e) && attempt < WAKE_ATTEMPTS => {
                        tracing::warn!(container = %name, attempt, error = %e, "wake: dockerd failed for a moment; trying again");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                        attempt += 1;
                    }
                    answer => return answer,
                }
            }
        };
        let mut thawed = false;
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(())) => {
                thawed = true;
                Ok(())
            }
            // Someone unpaused or started it behind our back: fine.
            Ok(Err(DockerError::NotModified | DockerError::Conflict(_))) if self.is_running_now(id).await => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        if thawed && from == State::Sleeping {
            self.until_unpause_seen(id).await;
        }
        let elapsed = started.elapsed();
        let now = Instant::now();
        let to = {
            let mut table = self.inner.table.lock();
            let Some(entry) = table.get_mut(id) else { return Ok(()) };
            match &result {
                Ok(()) => {
                    if let Some(asleep_since) = entry.asleep_since {
                        let slept = now.saturating_duration_since(asleep_since);
                        entry.record_sleep(slept);
                        self.inner
                            .metrics
                            .asleep_seconds
                            .get_or_create(&super::status::policy_labels(&entry.policy))
                            .observe(slept.as_secs_f64());
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

    /// Waits, at most [`UNPAUSE_SEEN_WAIT`], until every `unpause` event
    /// the shim is owed for `id` has come ([`super::own`]). dockerd may
    /// answer an unpause before its own paused flag is cleared (it clears
    /// it, then emits `unpause`, on containerd's resume event in some
    /// versions), and an exec sent in between is refused 409 "is paused".
    /// Waiting for all that are owed, not for the next one, keeps a late
    /// event of an earlier wake from ending this wait early.
    async fn until_unpause_seen(&self, id: &str) {
        let deadline = Instant::now() + UNPAUSE_SEEN_WAIT;
        loop {
            let seen = self.inner.own_event_seen.notified();
            tokio::pin!(seen);
            seen.as_mut().enable();
            if self.inner.owed.lock().owed(id, Own::Unpause) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, seen).await.is_err() {
                tracing::debug!(container = %id, "no unpause event from dockerd yet; going on");
                return;
            }
        }
    }

    /// The container's name for messages; its id when it has none.
    pub(super) fn name_of(&self, id: &str) -> String {
        self.inner
            .table
            .lock()
            .get(id)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    pub(super) async fn is_running_now(&self, id: &str) -> bool {
        self.inner
            .docker
            .inspect_container(id)
            .await
            .is_ok_and(|i| i.running && !i.paused)
    }

    pub(super) async fn refresh_pid(&self, id: &str) {
        if let Ok(info) = self.inner.docker.inspect_container(id).await {
            if let Some(entry) = self.inner.table.lock().get_mut(id) {
                entry.pid = info.pid.filter(|p| *p > 0).map(|p| p as u32);
                entry.addresses = info.addresses;
                entry.published = info.published;
            }
        }
    }

    pub(super) fn spawn_wake(&self, id: String, trigger: &'static str) {
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            if let Err(e) = this.wake_now(&id, trigger).await {
                tracing::warn!(error = %e, trigger, "wake failed");
            }
        });
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
            self.restore_limits(id, pid, limits).await;
        }
        self.persist();
        Ok(())
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

    /// `on_shutdown: wake_all` wakes every container the shim paused,
    /// including one it is pausing right now (the wake waits for that
    /// transition's lock, then finds it asleep); `leave` keeps them asleep
    /// (the state file lets the next start pick them up).
    pub async fn shutdown(&self) {
        if self.config().config.on_shutdown == OnShutdown::Leave {
            self.persist_now().await;
            return;
        }
        let asleep: Vec<String> = {
            let table = self.inner.table.lock();
            table
                .values()
                .filter(|e| matches!(e.state, State::Pausing | State::Sleeping))
                .map(|e| e.id.clone())
                .collect()
        };
        let wakes = asleep.iter().map(|id| self.wake(id, "shutdown"));
        for result in futures_util::future::join_all(wakes).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "wake on shutdown failed");
            }
        }
        self.persist_now().await;
    }
}
