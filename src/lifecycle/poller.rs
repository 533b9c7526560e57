//! The wake poller: sleepers that see network traffic are woken, on a
//! conntrack event or on their byte counters.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::AbortOnDropHandle;

use super::host::sum_peers;
use super::{activity, conntrack, HostPaths, Lifecycle, State};

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
        // Aborted with the poller, however the poller ends: the conntrack
        // process is killed when its task is dropped.
        let _follower = AbortOnDropHandle::new(self.inner.tasks.spawn(async move {
            if let Err(e) = conntrack::follow(&program, sender).await {
                tracing::warn!(error = %e, "conntrack events unavailable; waking on byte counters only");
            }
        }));
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
                _ = ticker.tick() => self.poll_counters().await,
            }
        }
    }

    /// Reads every sleeper's counters (on the blocking pool, in one go)
    /// and wakes those that saw traffic.
    pub(super) async fn poll_counters(&self) {
        let sleepers: Vec<Sleeper> = {
            let table = self.inner.table.lock();
            table
                .values()
                .filter(|e| e.state == State::Sleeping && e.own_network)
                .filter_map(|e| {
                    Some(Sleeper {
                        id: e.id.clone(),
                        pid: e.pid?,
                        baseline: e.net_bytes_at_sleep?,
                        peers: e.net_peers.clone(),
                    })
                })
                .collect()
        };
        if sleepers.is_empty() {
            return;
        }
        let Some(counts) = self.on_host(move |host| count(host, sleepers)).await else {
            return;
        };
        for (id, baseline, count) in counts {
            let now = match count {
                Count::Bytes(bytes) => bytes,
                Count::PeerGone { own } => {
                    // Its network changed under it: count its own table
                    // from here on.
                    if let Some(entry) = self.inner.table.lock().get_mut(&id) {
                        entry.net_peers = None;
                        entry.net_bytes_at_sleep = own;
                    }
                    continue;
                }
                Count::Unreadable => continue,
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

/// A sleeper whose traffic is counted.
struct Sleeper {
    id: String,
    pid: u32,
    /// The bytes counted when it fell asleep (or at the last chatter).
    baseline: u64,
    /// The host ends of its veth pairs; `None`: its own namespace's table.
    peers: Option<Arc<[String]>>,
}

/// One sleeper's bytes now.
enum Count {
    Bytes(u64),
    /// A veth peer is gone; `own` is its own table's count.
    PeerGone {
        own: Option<u64>,
    },
    /// Nothing could be read this time.
    Unreadable,
}

/// Counts each sleeper's bytes, with one read of the host's table for every
/// sleeper with veth peers (blocking).
fn count(host: &HostPaths, sleepers: Vec<Sleeper>) -> Vec<(String, u64, Count)> {
    let table = sleepers
        .iter()
        .any(|s| s.peers.is_some())
        .then(|| activity::host_net_dev(&host.proc).ok())
        .flatten();
    sleepers
        .into_iter()
        .map(|sleeper| {
            let count = match (&sleeper.peers, &table) {
                (Some(peers), Some(table)) => match sum_peers(table, peers) {
                    Some(bytes) => Count::Bytes(bytes),
                    None => Count::PeerGone {
                        own: host.net_bytes(sleeper.pid),
                    },
                },
                // The host table could not be read this time.
                (Some(_), None) => Count::Unreadable,
                (None, _) => host.net_bytes(sleeper.pid).map_or(Count::Unreadable, Count::Bytes),
            };
            (sleeper.id, sleeper.baseline, count)
        })
        .collect()
}
