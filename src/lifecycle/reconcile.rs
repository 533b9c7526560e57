//! Rebuilding the view from dockerd and the state file: at start, and after
//! the event stream was lost.

use std::collections::HashMap;
use std::time::SystemTime;

use tokio::time::Instant;

use super::{ports, store, Entry, Lifecycle, LifecycleError, State};

impl Lifecycle {
    /// Lists every container, restores what the shim put to sleep from the
    /// state file, and forgets records of containers that are gone or were
    /// woken behind its back.
    ///
    /// Listing takes a while, and requests, transitions and events go on
    /// meanwhile: an entry whose state changed after the listing began is
    /// newer than what was listed and is kept as it is; the others take the
    /// listed view but keep the shim's own bookkeeping (requests and
    /// sessions in flight, last activity, wakes).
    pub(super) async fn reconcile(&self) -> Result<(), LifecycleError> {
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
            let mut entry = Entry::new(&info, &self.config(), now);
            if let Some(record) = records.iter().find(|r| r.id == id) {
                match (record.state, info.paused, info.running) {
                    (store::SleptState::Paused, true, _) => {
                        entry.set_state(State::Sleeping);
                        entry.asleep_since = Some(now);
                        entry.saved_limits = record.saved_limits.clone();
                        entry.health_at_sleep = record.health.clone();
                        entry.memory_running = record.memory_before;
                        entry.memory_asleep = record.memory_after;
                        if let Some(pid) = entry.pid.filter(|_| entry.own_network) {
                            (entry.net_peers, entry.net_bytes_at_sleep, entry.net_unicast_at_sleep) =
                                self.sleep_counters(pid).await;
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
        self.persist_now().await;
        self.hold_deep_sleepers_ports().await;
        Ok(())
    }

    /// Holds the published ports of every deep sleeper that has no hold yet
    /// (after a restart of the shim), so connections wait instead of being
    /// refused.
    pub(super) async fn hold_deep_sleepers_ports(&self) {
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
    pub(super) async fn hold_ports(&self, id: &str, published: &[crate::docker::PublishedPort]) {
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
}
