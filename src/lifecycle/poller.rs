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
                        unicast: e.net_unicast_at_sleep,
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
        for (id, baseline, unicast_at_sleep, count) in counts {
            let (now, unicast_now) = match count {
                Count::Bytes { bytes, unicast } => (bytes, unicast),
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
            match counter_verdict(baseline, now, unicast_at_sleep, unicast_now) {
                CounterVerdict::Quiet => {}
                CounterVerdict::Wake => self.spawn_wake(id, "network"),
                CounterVerdict::Chatter => {
                    // Chatter: move the baselines so it never adds up to a wake.
                    if let Some(entry) = self.inner.table.lock().get_mut(&id) {
                        entry.net_bytes_at_sleep = Some(now);
                        if unicast_now.is_some() {
                            entry.net_unicast_at_sleep = unicast_now;
                        }
                    }
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
    /// Its unicast IP bytes when it fell asleep (or at the last chatter).
    unicast: Option<u64>,
}

/// What one counter interval says about a sleeper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CounterVerdict {
    /// Nothing arrived.
    Quiet,
    /// Something arrived that no client sent, or too little to matter.
    Chatter,
    /// A client's traffic: wake it.
    Wake,
}

/// The bytes towards a sleeper (its veth peers' or its own table's:
/// everything the bridge delivered, multicast and broadcast included) wake
/// it when [`COUNTER_WAKE_BYTES`] or more arrived since `baseline` **and**
/// its unicast IP bytes grew: a bridge floods a new neighbour's neighbour
/// discovery, router solicitations and MLD reports to every port, and those
/// add bytes but no unicast. When the unicast count cannot be read, the
/// bytes alone decide (waking is the safe side).
fn counter_verdict(baseline: u64, now: u64, unicast_at_sleep: Option<u64>, unicast_now: Option<u64>) -> CounterVerdict {
    if now == baseline {
        return CounterVerdict::Quiet;
    }
    if now < baseline.saturating_add(COUNTER_WAKE_BYTES) {
        return CounterVerdict::Chatter;
    }
    match (unicast_at_sleep, unicast_now) {
        (Some(before), Some(after)) if after <= before => CounterVerdict::Chatter,
        _ => CounterVerdict::Wake,
    }
}

/// One sleeper's bytes now.
enum Count {
    /// Its bytes, and its unicast IP bytes when the bytes moved.
    Bytes { bytes: u64, unicast: Option<u64> },
    /// A veth peer is gone; `own` is its own table's count.
    PeerGone { own: Option<u64> },
    /// Nothing could be read this time.
    Unreadable,
}

/// Counts each sleeper's bytes, with one read of the host's table for every
/// sleeper with veth peers (blocking).
fn count(host: &HostPaths, sleepers: Vec<Sleeper>) -> Vec<(String, u64, Option<u64>, Count)> {
    let table = sleepers
        .iter()
        .any(|s| s.peers.is_some())
        .then(|| activity::host_net_dev(&host.proc).ok())
        .flatten();
    sleepers
        .into_iter()
        .map(|sleeper| {
            // Its own unicast count is read only when its bytes moved: one
            // more read per sleeper that saw anything at all.
            let bytes = |bytes: u64| Count::Bytes {
                bytes,
                unicast: (bytes != sleeper.baseline)
                    .then(|| host.unicast_bytes(sleeper.pid))
                    .flatten(),
            };
            let count = match (&sleeper.peers, &table) {
                (Some(peers), Some(table)) => match sum_peers(table, peers) {
                    Some(total) => bytes(total),
                    None => Count::PeerGone {
                        own: host.net_bytes(sleeper.pid),
                    },
                },
                // The host table could not be read this time.
                (Some(_), None) => Count::Unreadable,
                (None, _) => host.net_bytes(sleeper.pid).map_or(Count::Unreadable, bytes),
            };
            (sleeper.id, sleeper.baseline, sleeper.unicast, count)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_new_is_quiet_and_a_little_is_chatter() {
        assert_eq!(counter_verdict(1000, 1000, Some(5), Some(5)), CounterVerdict::Quiet);
        assert_eq!(
            counter_verdict(1000, 1000 + COUNTER_WAKE_BYTES - 1, Some(5), Some(90)),
            CounterVerdict::Chatter
        );
        // A counter that went backwards (a new interface) is re-based, not a wake.
        assert_eq!(counter_verdict(1000, 10, Some(5), Some(5)), CounterVerdict::Chatter);
    }

    #[test]
    fn flooded_multicast_never_wakes() {
        // A new neighbour's router solicitation and MLD reports: bytes on
        // the veth, no unicast in the sleeper's namespace.
        assert_eq!(counter_verdict(1000, 1400, Some(5), Some(5)), CounterVerdict::Chatter);
        assert_eq!(
            counter_verdict(1000, 1_000_000, Some(5), Some(5)),
            CounterVerdict::Chatter
        );
    }

    #[test]
    fn unicast_towards_it_wakes() {
        assert_eq!(
            counter_verdict(1000, 1000 + COUNTER_WAKE_BYTES, Some(5), Some(6)),
            CounterVerdict::Wake
        );
        assert_eq!(counter_verdict(1000, 4000, Some(5), Some(2900)), CounterVerdict::Wake);
    }

    #[test]
    fn an_unreadable_unicast_count_leaves_the_bytes_to_decide() {
        assert_eq!(counter_verdict(1000, 1400, None, Some(5)), CounterVerdict::Wake);
        assert_eq!(counter_verdict(1000, 1400, Some(5), None), CounterVerdict::Wake);
        assert_eq!(counter_verdict(1000, 1100, None, None), CounterVerdict::Chatter);
    }
}
