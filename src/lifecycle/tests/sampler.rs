//! Idle detection over the fake host's counters.

use std::time::Duration;

use super::{Harness, IDLE};
use crate::docker::fake::{Call, FakeContainer};
use crate::lifecycle::State;

#[tokio::test(start_paused = true)]
async fn a_container_whose_counters_cannot_be_read_is_never_put_to_sleep() {
    let readable = FakeContainer::running(1, "readable");
    let unreadable = FakeContainer::running(2, "unreadable");
    let mut h = Harness::new([readable.clone(), unreadable.clone()]);
    // Its cgroup is gone (or was never visible to the shim).
    std::fs::remove_dir_all(h.host.root.join("cgroup/docker").join(&unreadable.id)).unwrap();
    h.start().await;
    h.asleep(&readable.id).await;
    h.stays("the unreadable one stays awake", IDLE * 5, || {
        h.state(&unreadable.id) == State::Running
    })
    .await;
    assert_eq!(h.count(Call::Pause(unreadable.id.clone())), 0);

    // Readable again: it is judged, and idle, like any other.
    h.host.add(&unreadable.id, unreadable.pid);
    h.asleep(&unreadable.id).await;
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_busy_container_stays_awake() {
    let busy = FakeContainer::running(1, "busy");
    let mut h = Harness::new([busy.clone()]);
    h.start().await;
    // Half a core, all along.
    let mut usec = 0;
    for _ in 0..(IDLE.as_secs() * 4) {
        usec += 500_000;
        h.host.set_cpu(&busy.id, usec);
        h.stays("busy, awake", Duration::from_secs(1), || {
            h.state(&busy.id) == State::Running
        })
        .await;
    }
    assert_eq!(h.count(Call::Pause(busy.id.clone())), 0);
    // Quiet from here: asleep after the idle timeout.
    h.asleep(&busy.id).await;
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_container_labelled_out_of_sleep_never_sleeps() {
    let out = FakeContainer::running(1, "out").label("forge.sleep", "false");
    let quick = FakeContainer::running(2, "quick").label("forge.sleep.idle-timeout", "3s");
    let mut h = Harness::new([out.clone(), quick.clone()]);
    h.start().await;
    assert!(!h.row(&out.id).sleeps);
    h.asleep(&quick.id).await;
    assert_eq!(h.row(&quick.id).idle_timeout_s, Some(3.0));
    h.stays("opted out", IDLE * 3, || h.state(&out.id) == State::Running)
        .await;
    assert_eq!(h.count(Call::Pause(out.id.clone())), 0);
    h.shut_down().await;
}
