//! The shim dying and starting again, and stopping on purpose.

use std::time::Duration;

use super::Harness;
use crate::docker::fake::{Call, FakeContainer, Op};
use crate::lifecycle::State;

#[tokio::test(start_paused = true)]
async fn after_kill_9_the_next_shim_adopts_its_sleepers_from_the_state_file() {
    let web = FakeContainer::running(1, "web");
    let mut other = FakeContainer::running(2, "other");
    other.paused = true;
    let mut first = Harness::new([web.clone(), other.clone()]);
    first.start().await;
    first.asleep(&web.id).await;
    assert_eq!(first.state(&other.id), State::UserPaused);
    let record = std::fs::read_to_string(first.state_file()).unwrap();
    assert!(record.contains(&web.id), "{record}");
    assert!(!record.contains(&other.id), "{record}");

    let mut second = first.restarted();
    first.kill();
    second.start().await;
    // Its own sleeper is still its own; the user's pause is still the user's.
    assert_eq!(second.state(&web.id), State::Sleeping);
    assert!(second.lifecycle.is_asleep(&web.id));
    assert_eq!(second.state(&other.id), State::UserPaused);

    let guard = second.lifecycle.use_container("web", "exec", true).await.unwrap();
    assert!(guard.is_some());
    assert_eq!(second.count(Call::Unpause(web.id.clone())), 1);
    assert_eq!(second.state(&web.id), State::Running);
    let guard_other = second.lifecycle.use_container("other", "exec", true).await.unwrap();
    assert!(guard_other.is_some());
    assert_eq!(second.count(Call::Unpause(other.id.clone())), 0);
    assert!(second.docker.container(&other.id).paused);
    drop((guard, guard_other));
    second.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_record_of_a_container_woken_behind_the_shims_back_is_dropped() {
    let web = FakeContainer::running(1, "web");
    let mut first = Harness::new([web.clone()]);
    first.start().await;
    first.asleep(&web.id).await;
    let mut second = first.restarted();
    first.kill();
    // While no shim ran, someone unpaused it.
    let mut unpaused = second.docker.container(&web.id);
    unpaused.paused = false;
    second.docker.put(unpaused);
    second.start().await;
    assert_eq!(second.state(&web.id), State::Running);
    let record = std::fs::read_to_string(second.state_file()).unwrap();
    assert!(!record.contains(&web.id), "{record}");
    second.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn wake_all_on_shutdown_wakes_a_container_caught_mid_pause() {
    let web = FakeContainer::running(1, "web");
    let asleep = FakeContainer::running(2, "asleep");
    let mut h = Harness::new([web.clone(), asleep.clone()]);
    h.start().await;
    // One container asleep already, then the other's pause held at dockerd.
    h.asleep(&web.id).await;
    h.asleep(&asleep.id).await;
    let unpause_before = h.count(Call::Unpause(web.id.clone()));
    h.lifecycle.wake(&web.id, "api").await.unwrap();
    assert_eq!(h.count(Call::Unpause(web.id.clone())), unpause_before + 1);
    let pause = h.docker.hold(Op::Pause);
    pause.arrived().await;
    assert_eq!(h.state(&web.id), State::Pausing);

    let docker = h.docker.clone();
    let lifecycle = h.lifecycle.clone();
    let shutdown = tokio::spawn(h.shut_down());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!shutdown.is_finished(), "shutdown waits for the pause in flight");
    pause.release_one();
    shutdown.await.unwrap();

    // Both woken: the sleeper, and the one whose pause was in flight.
    assert_eq!(docker.count(&Call::Pause(web.id.clone())), 2);
    assert_eq!(docker.count(&Call::Unpause(web.id.clone())), unpause_before + 2);
    assert!(!docker.container(&web.id).paused);
    assert!(!docker.container(&asleep.id).paused);
    assert_eq!(lifecycle.status().iter().filter(|r| r.state.is_asleep()).count(), 0);
}

#[tokio::test(start_paused = true)]
async fn leave_on_shutdown_keeps_sleepers_asleep_and_recorded() {
    let web = FakeContainer::running(1, "web");
    let mut h = Harness::new([web.clone()]).on_shutdown("leave");
    h.start().await;
    h.asleep(&web.id).await;
    let docker = h.docker.clone();
    let file = h.state_file();
    let _dir = h.shut_down().await;
    assert_eq!(docker.count(&Call::Unpause(web.id.clone())), 0);
    assert!(docker.container(&web.id).paused);
    assert!(std::fs::read_to_string(file).unwrap().contains(&web.id));
}
