//! The create backstop off the create's answer, and the gate that keeps it
//! a backstop.
//!
//! In enforce mode dockerd's record of each new container is read back and
//! judged again ([`crate::standards::check_recorded_create`]). That read is
//! one inspect, about a millisecond, and a create's answer no longer waits
//! for it. What keeps the check sound is the gate: a create takes a
//! [`Check`] *before* it is forwarded, and every request that could run a
//! container or reach its mounts (start, restart, archive, export, commit,
//! exec, attach, and everything the router does not know,
//! [`crate::route::Phases::after_checks`]) waits, before it is forwarded,
//! until every check begun before it has ended. So a container dockerd
//! recorded differently is removed before any request can use it, whether
//! that request names it by id, by prefix or by name, and whether it was
//! sent before or after the create's answer.
//!
//! A container the check removed is remembered for a while, so that the
//! request that would have used it is refused with the reason rather than
//! dockerd's "No such container".

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// How long a gated request waits for earlier checks before it is refused.
/// A check ends within dockerd's answer to one inspect and one remove, so
/// this is only reached when dockerd has stopped answering.
pub const GATE_WAIT: Duration = Duration::from_secs(30);

/// How long, and how many, removed containers are remembered.
const REFUSALS_KEPT_FOR: Duration = Duration::from_secs(600);
const MAX_REFUSALS: usize = 64;

/// The checks in flight and the containers they removed.
#[derive(Clone, Default)]
pub struct CreateChecks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    /// Checks begun and not ended, by sequence number.
    pending: Mutex<BTreeSet<u64>>,
    /// `pending.len()`, read without the lock on every gated request.
    count: AtomicUsize,
    ended: Notify,
    refused: Mutex<VecDeque<Refusal>>,
}

struct Refusal {
    id: String,
    name: Option<String>,
    message: String,
    at: Instant,
}

/// One create's check, from before it is forwarded until its record has
/// been judged (or the create failed). Ends when dropped.
pub struct Check {
    inner: Arc<Inner>,
    seq: u64,
}

impl Drop for Check {
    fn drop(&mut self) {
        let mut pending = self.inner.pending.lock();
        pending.remove(&self.seq);
        self.inner.count.store(pending.len(), Ordering::Release);
        drop(pending);
        self.inner.ended.notify_waiters();
    }
}

/// Why a gated request was not forwarded.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// The container it names was removed by its create's check.
    Removed(String),
    /// Earlier checks did not end within [`GATE_WAIT`].
    TimedOut,
}

impl CreateChecks {
    /// Begins a create's check; call before the create is forwarded.
    pub fn begin(&self) -> Check {
        let seq = self.inner.next.fetch_add(1, Ordering::AcqRel);
        let mut pending = self.inner.pending.lock();
        pending.insert(seq);
        self.inner.count.store(pending.len(), Ordering::Release);
        Check {
            inner: self.inner.clone(),
            seq,
        }
    }

    /// Whether any check is in flight (cheap: the fast path asks it).
    pub fn any_pending(&self) -> bool {
        self.inner.count.load(Ordering::Acquire) > 0
    }

    /// Waits until every check begun before this call has ended (checks
    /// begun later are not waited for, so a stream of creates cannot hold a
    /// request back), then tells whether `container` (an id, id prefix or
    /// name, as the request gave it; `None` when it names none) is one a
    /// check removed.
    pub async fn settled(&self, container: Option<&str>, within: Duration) -> Result<(), Gate> {
        if self.any_pending() {
            let horizon = self.inner.next.load(Ordering::Acquire);
            let deadline = tokio::time::Instant::now() + within;
            loop {
                let ended = self.inner.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                let earliest = self.inner.pending.lock().first().copied();
                if earliest.is_none_or(|seq| seq >= horizon) {
                    break;
                }
                if tokio::time::timeout_at(deadline, ended).await.is_err() {
                    return Err(Gate::TimedOut);
                }
            }
        }
        match container {
            Some(container) => self.refusal_for(container).map_or(Ok(()), |m| Err(Gate::Removed(m))),
            None => Ok(()),
        }
    }

    /// Remembers that a check removed container `id` (named `name`).
    pub fn remember_removed(&self, id: &str, name: Option<&str>, message: &str) {
        let mut refused = self.inner.refused.lock();
        if refused.len() >= MAX_REFUSALS {
            refused.pop_front();
        }
        refused.push_back(Refusal {
            id: id.to_string(),
            name: name.map(|n| n.trim_start_matches('/').to_string()),
            message: message.to_string(),
            at: Instant::now(),
        });
    }

    /// The refusal for a container reference, as dockerd would resolve it:
    /// a full id, a name (with or without its `/`), or an id prefix.
    fn refusal_for(&self, reference: &str) -> Option<String> {
        let mut refused = self.inner.refused.lock();
        while refused.front().is_some_and(|r| r.at.elapsed() > REFUSALS_KEPT_FOR) {
            refused.pop_front();
        }
        if refused.is_empty() || reference.is_empty() {
            return None;
        }
        let name = reference.trim_start_matches('/');
        refused
            .iter()
            .rev()
            .find(|r| r.id == reference || r.name.as_deref() == Some(name) || r.id.starts_with(reference))
            .map(|r| r.message.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_waits_for_the_checks_begun_before_it() {
        let checks = CreateChecks::default();
        assert_eq!(checks.settled(None, Duration::from_millis(10)).await, Ok(()));
        let check = checks.begin();
        assert!(checks.any_pending());
        // Not settled while the earlier check runs: it times out.
        assert_eq!(
            checks.settled(None, Duration::from_millis(20)).await,
            Err(Gate::TimedOut)
        );
        let waiter = {
            let checks = checks.clone();
            tokio::spawn(async move { checks.settled(None, Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "a gated request went ahead of a check in flight");
        drop(check);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert!(!checks.any_pending());
    }

    #[tokio::test]
    async fn checks_begun_later_do_not_hold_a_request_back() {
        let checks = CreateChecks::default();
        let first = checks.begin();
        let waiter = {
            let checks = checks.clone();
            tokio::spawn(async move { checks.settled(None, Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let later = checks.begin();
        drop(first);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert!(checks.any_pending());
        drop(later);
    }

    #[tokio::test]
    async fn a_removed_container_is_refused_by_id_prefix_and_name() {
        let checks = CreateChecks::default();
        let id = "4f1c2d3e".repeat(8);
        checks.remember_removed(&id, Some("/web"), "standards: backstop: x; the container was removed");
        for reference in [id.as_str(), &id[..12], "web", "/web"] {
            assert!(
                matches!(checks.settled(Some(reference), Duration::from_millis(10)).await, Err(Gate::Removed(m)) if m.contains("backstop")),
                "{reference}"
            );
        }
        // Others are not (the must-not side).
        for reference in ["db", "5f1c", ""] {
            assert_eq!(
                checks.settled(Some(reference), Duration::from_millis(10)).await,
                Ok(()),
                "{reference}"
            );
        }
    }
}
