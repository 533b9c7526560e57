//! Which of dockerd's `pause` and `unpause` events are the shim's own.
//!
//! dockerd's events come late, sometimes by hundreds of milliseconds on a
//! busy host, and an event says only what happened, not who asked. Read as
//! "someone else did this", a late `unpause` of the shim's own wake, landing
//! after the next sleep had paused the container again, marked a frozen
//! sleeper running: requests then went straight to it and were refused 409
//! "is paused". A late `pause` of its own sleep, landing after the wake,
//! marked a running container paused by a user, which the shim never
//! sleeps again. So the shim counts the pauses and unpauses it asked for
//! whose events have not come yet, and an event is its own while one is
//! owed.
//!
//! A count is taken before the call (the event may come before the answer)
//! and given back when the call fails (then no event comes). When the event
//! stream breaks, what is owed is forgotten: the events are lost, and the
//! reconcile that follows reads dockerd's truth.

use std::collections::HashMap;

/// An action the shim asks dockerd for and then sees as an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Own {
    Pause,
    Unpause,
}

/// Events owed, per container.
#[derive(Debug, Default)]
pub(super) struct Owed {
    by_container: HashMap<String, [u32; 2]>,
}

fn slot(action: Own) -> usize {
    match action {
        Own::Pause => 0,
        Own::Unpause => 1,
    }
}

impl Owed {
    /// The shim is about to ask for `action` on `id`.
    pub(super) fn asked(&mut self, id: &str, action: Own) {
        self.by_container.entry(id.to_string()).or_default()[slot(action)] += 1;
    }

    /// The call failed: no event will come for it.
    pub(super) fn failed(&mut self, id: &str, action: Own) {
        self.take(id, action);
    }

    /// An event of `action` on `id` came: whether it is the shim's own.
    pub(super) fn take(&mut self, id: &str, action: Own) -> bool {
        let Some(counts) = self.by_container.get_mut(id) else {
            return false;
        };
        let owed = &mut counts[slot(action)];
        let own = *owed > 0;
        *owed = owed.saturating_sub(1);
        if *counts == [0, 0] {
            self.by_container.remove(id);
        }
        own
    }

    /// How many events of `action` on `id` are still owed.
    pub(super) fn owed(&self, id: &str, action: Own) -> u32 {
        self.by_container.get(id).map_or(0, |c| c[slot(action)])
    }

    /// The container is gone.
    pub(super) fn forget(&mut self, id: &str) {
        self.by_container.remove(id);
    }

    /// The event stream broke: whatever was owed is lost with it.
    pub(super) fn clear(&mut self) {
        self.by_container.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_the_shims_own_while_one_is_owed() {
        let mut owed = Owed::default();
        // Nothing asked: every event is someone else's.
        assert!(!owed.take("a", Own::Unpause));
        owed.asked("a", Own::Unpause);
        owed.asked("a", Own::Unpause);
        owed.asked("a", Own::Pause);
        assert_eq!(owed.owed("a", Own::Unpause), 2);
        // Per action and per container.
        assert!(!owed.take("b", Own::Unpause));
        assert!(owed.take("a", Own::Pause));
        assert!(!owed.take("a", Own::Pause), "one pause owed, two came");
        assert!(owed.take("a", Own::Unpause));
        assert!(owed.take("a", Own::Unpause));
        assert!(!owed.take("a", Own::Unpause));
        assert_eq!(owed.owed("a", Own::Unpause), 0);
        assert!(owed.by_container.is_empty(), "nothing kept once nothing is owed");
    }

    #[test]
    fn a_failed_call_owes_nothing_and_a_broken_stream_forgets_all() {
        let mut owed = Owed::default();
        owed.asked("a", Own::Pause);
        owed.failed("a", Own::Pause);
        assert!(!owed.take("a", Own::Pause));
        owed.failed("a", Own::Pause);
        assert_eq!(owed.owed("a", Own::Pause), 0, "never below zero");
        owed.asked("a", Own::Unpause);
        owed.asked("b", Own::Pause);
        owed.forget("a");
        assert_eq!(owed.owed("a", Own::Unpause), 0);
        assert_eq!(owed.owed("b", Own::Pause), 1);
        owed.clear();
        assert!(!owed.take("b", Own::Pause));
    }
}
