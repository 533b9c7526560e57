//! Persistence glue: when the sleep records in `sleeping.json` are written
//! ([`store`](super::store) does the writing).

use super::{store, unix_ms, Lifecycle, State};

impl Lifecycle {
    /// Asks the persister to write the sleep records soon. Transitions never
    /// wait for the disk: if the shim dies before the write, the next start
    /// reconciles the file with what dockerd says.
    pub(super) fn persist(&self) {
        self.inner.persist_requested.notify_one();
    }

    /// Writes the sleep records whenever asked, coalescing bursts.
    pub(super) async fn persister(self) {
        loop {
            tokio::select! {
                _ = self.inner.token.cancelled() => break,
                _ = self.inner.persist_requested.notified() => {}
            }
            self.persist_now().await;
        }
    }

    /// Writes the sleep records before a pause or a stop: a shim killed
    /// right after it then still knows the container is its own. Only the
    /// sleep waits for it; wakes never do (a stale record of a container
    /// that runs is dropped by the next reconcile).
    pub(super) async fn persist_now(&self) {
        let this = self.clone();
        let _ = self.inner.tasks.spawn_blocking(move || this.write_records()).await;
    }

    /// Writes the sleep records now (blocking); a failure is logged, never
    /// fatal.
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
                        health: entry.health_at_sleep.clone(),
                    })
                })
                .collect()
        };
        if let Err(e) = self.inner.store.save(&records) {
            tracing::warn!(error = %e, "lifecycle: cannot persist sleep state");
        }
    }
}
