//! A reloaded config reaches the containers already tracked.

use super::{Harness, IDLE};
use crate::docker::fake::{Call, FakeContainer};
use crate::lifecycle::State;

const SLEEPY: &str = "sleep_policy: { enabled: true, idle_timeout: 10s }";

#[tokio::test(start_paused = true)]
async fn a_reload_gives_tracked_containers_their_new_policy() {
    let app = FakeContainer::running(1, "app");
    let mut h = Harness::new([app.clone()]);
    h.start().await;
    assert_eq!(h.row(&app.id).idle_timeout_s, Some(IDLE.as_secs_f64()));

    // Sleep turned off for its class: it no longer sleeps, however idle.
    assert_eq!(h.reload(SLEEPY, "sleep_policy: { enabled: false }"), (1, 0));
    assert!(!h.row(&app.id).sleeps);
    h.stays("kept awake by the new policy", IDLE * 3, || {
        h.state(&app.id) == State::Running
    })
    .await;
    assert_eq!(h.count(Call::Pause(app.id.clone())), 0);

    // A shorter timeout: it sleeps under it.
    h.reload(SLEEPY, "sleep_policy: { enabled: true, idle_timeout: 3s }");
    assert_eq!(h.row(&app.id).idle_timeout_s, Some(3.0));
    h.asleep(&app.id).await;
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_sleeper_the_new_policy_keeps_awake_is_woken_and_no_other() {
    let app = FakeContainer::running(1, "app");
    let other = FakeContainer::running(2, "deep-other");
    let mut h = Harness::new([app.clone(), other.clone()]);
    h.start().await;
    h.asleep(&app.id).await;
    h.asleep(&other.id).await;

    // Only the `sleepy` class loses sleep; `deep` keeps it.
    assert_eq!(h.reload(SLEEPY, "sleep_policy: { enabled: false }"), (1, 1));
    let docker = h.docker.clone();
    h.until("the sleeper of the changed class is woken", || {
        h.state(&app.id) == State::Running && !docker.container(&app.id).paused
    })
    .await;
    assert_eq!(h.count(Call::Unpause(app.id.clone())), 1);
    assert_eq!(h.state(&other.id), State::Sleeping);
    assert_eq!(h.count(Call::Unpause(other.id.clone())), 0);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn the_same_config_again_changes_nothing() {
    let app = FakeContainer::running(1, "app");
    let mut h = Harness::new([app.clone()]);
    h.start().await;
    h.asleep(&app.id).await;
    assert_eq!(h.reload(SLEEPY, SLEEPY), (0, 0));
    h.stays("still asleep", IDLE, || h.state(&app.id) == State::Sleeping)
        .await;
    assert_eq!(h.count(Call::Unpause(app.id.clone())), 0);
    h.shut_down().await;
}
