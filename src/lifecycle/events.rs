//! The event watcher: dockerd's container events keep the view true when
//! anyone creates, starts, pauses or removes a container.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::time::Instant;

use super::own::Own;
use super::{Entry, Lifecycle, State};
use crate::docker::EventKind;

impl Lifecycle {
    /// Follows dockerd's container events so the view stays true when
    /// containers are created, started, paused or removed by anyone.
    pub(super) async fn watch_events(self) {
        loop {
            // The stream is only requested when first polled, after the
            // reconcile below: ask dockerd to replay from before it, so
            // that nothing that happens while we list is missed.
            let mut events = self.inner.docker.events(EventKind::Container, Some(SystemTime::now()));
            // Events missed while disconnected: resynchronise. The events
            // the shim was owed are lost with them.
            self.inner.owed.lock().clear();
            self.inner.own_event_seen.notify_waiters();
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

    /// Whether this event of `action` on `id` is one of the shim's own
    /// ([`super::own`]); a wake waiting for it is told.
    fn own_event(&self, id: &str, action: Own) -> bool {
        let own = self.inner.owed.lock().take(id, action);
        if own {
            self.inner.own_event_seen.notify_waiters();
        }
        own
    }

    pub(super) async fn on_event(&self, id: &str, action: &str) {
        // exec_start: "exec_start: sh -c ..." and similar carry a suffix.
        let action = action.split(':').next().unwrap_or(action).trim();
        tracing::trace!(container = %id, action, "dockerd event");
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
                        table.insert(id.to_string(), Entry::new(&info, &self.config(), now));
                    }
                }
            }
            "pause" => {
                if self.own_event(id, Own::Pause) {
                    return;
                }
                if let Some(entry) = self.inner.table.lock().get_mut(id) {
                    if entry.state == State::Running {
                        entry.set_state(State::UserPaused);
                    }
                }
            }
            "unpause" => {
                if self.own_event(id, Own::Unpause) {
                    return;
                }
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
                    self.restore_limits(id, pid, limits).await;
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
                self.inner.owed.lock().forget(id);
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
}
