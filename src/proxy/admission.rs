//! Admission: how many client connections the shim holds at once, and which
//! one gives way when that many are open.
//!
//! Every client connection takes a [`Slot`]. While it has no request in
//! flight it is *idle* ([`Slot::idle`]): it waits at most
//! `timeouts.client_idle` for its next request, and is the first to be
//! asked to close ([`Slot::evicted`]) when a new connection arrives and all
//! slots are taken (the one idle longest goes first). Only when no
//! connection is idle is the new one refused. So a flood of connections
//! that send nothing can neither exhaust the shim's descriptors nor keep a
//! `docker ps` out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Descriptors kept free for dockerd calls, the state file, the listener.
const RESERVED_FDS: usize = 64;
/// A client connection may hold three: its own, its upstream connection,
/// and a hijacked stream's hang-up watch.
const FDS_PER_CONNECTION: usize = 3;

#[derive(Default)]
pub struct Admission {
    limit: usize,
    open: AtomicUsize,
    next_id: AtomicU64,
    /// Idle connections by when they went idle: how to ask each to close.
    idle: Mutex<BTreeMap<(Instant, u64), CancellationToken>>,
}

/// What [`Admission::admit`] decided.
pub enum Admit {
    Yes(Slot),
    /// Every slot is taken by a connection with a request in flight.
    Full {
        limit: usize,
    },
}

impl Admission {
    /// `limit` connections at once; 0 derives it from the open-file limit.
    pub fn new(limit: usize) -> Arc<Admission> {
        let limit = if limit > 0 { limit } else { limit_from_open_files() };
        Arc::new(Admission {
            limit,
            ..Admission::default()
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A slot for a new connection: a free one, or the one of the
    /// connection idle longest, which is asked to close.
    pub fn admit(self: &Arc<Self>) -> Admit {
        if self.open.load(Ordering::Relaxed) >= self.limit {
            let oldest = self.idle.lock().pop_first();
            match oldest {
                Some((_, evict)) => evict.cancel(),
                None => return Admit::Full { limit: self.limit },
            }
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Admit::Yes(Slot {
            admission: self.clone(),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            evict: CancellationToken::new(),
        })
    }
}

/// One admitted connection; its slot is free again when this drops.
pub struct Slot {
    admission: Arc<Admission>,
    id: u64,
    evict: CancellationToken,
}

impl Slot {
    /// Marks the connection idle until the guard drops.
    pub fn idle(&self) -> IdleGuard<'_> {
        let since = Instant::now();
        self.admission.idle.lock().insert((since, self.id), self.evict.clone());
        IdleGuard { slot: self, since }
    }

    /// Resolves once a newer connection needs this one's slot.
    pub async fn evicted(&self) {
        self.evict.cancelled().await
    }

    pub fn is_evicted(&self) -> bool {
        self.evict.is_cancelled()
    }

    /// An owned future of [`Slot::evicted`], for poll loops.
    pub fn evicted_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.evict.clone().cancelled_owned()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct IdleGuard<'a> {
    slot: &'a Slot,
    since: Instant,
}

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        self.slot.admission.idle.lock().remove(&(self.since, self.slot.id));
    }
}

fn limit_from_open_files() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    (soft.saturating_sub(RESERVED_FDS) / FDS_PER_CONNECTION).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_connection_idle_longest_gives_way() {
        let admission = Admission::new(2);
        let Admit::Yes(first) = admission.admit() else {
            panic!("a free slot")
        };
        let Admit::Yes(second) = admission.admit() else {
            panic!("a free slot")
        };
        let _first_idle = first.idle();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let _second_idle = second.idle();
        let Admit::Yes(third) = admission.admit() else {
            panic!("an idle one gives way")
        };
        assert!(first.is_evicted(), "the one idle longest is asked to close");
        assert!(!second.is_evicted());
        assert!(!third.is_evicted());
        drop(_first_idle);
        drop(first);
        assert_eq!(admission.open(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn busy_connections_are_never_evicted() {
        let admission = Admission::new(1);
        let Admit::Yes(busy) = admission.admit() else {
            panic!("a free slot")
        };
        assert!(matches!(admission.admit(), Admit::Full { limit: 1 }));
        assert!(!busy.is_evicted());
        // Idle, then busy again: no longer a candidate.
        drop(busy.idle());
        assert!(matches!(admission.admit(), Admit::Full { limit: 1 }));
        drop(busy);
        assert!(matches!(admission.admit(), Admit::Yes(_)));
    }

    #[test]
    fn the_default_limit_leaves_descriptors_for_each_connection() {
        let admission = Admission::new(0);
        assert!(admission.limit() >= 16);
        let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert!((admission.limit() as u64) * 3 <= soft.max(16 * 3 + 64));
    }
}
