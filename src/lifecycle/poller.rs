//! The wake poller: sleepers that see network traffic are woken, on a
//! conntrack event or on their byte counters.

use std::sync::Arc;
use std::time::Duration;

use super::host::sum_peers;
use super::{activity, conntrack, Lifecycle, State};

/// How often sleepers' network counters are read.
const COUNTER_POLL: Duration = Duration::from_millis(250);
/// Bytes in one counter interval that wake a sleeper: more than an ARP or
/// neighbour solicitation, less than any real request.
const COUNTER_WAKE_BYTES: u64 = 128;

impl Lifecycle {
    /// Wakes sleepers that see network traffic. New connections raise a
    /// conntrack event at once; data on a connection that was already open
    /// is caught by the sleepers' byte counters, read every
    /// [`COUNTER_POLL`]: a packet to a frozen container still lands in its
    /// network namespace's counters, and the kernel queues it until the
    /// container thaws. Counters only wake on [`COUNTER_WAKE_BYTES`] or more
    /// in one interval, so ARP and neighbour chatter does not.
    pub(super) async fn wake_poller(self) {
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

    pub(super) fn poll_counters(&self) {
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
}
