//! A container someone else paused is theirs.

use std::time::Duration;

use super::{Harness, IDLE};
use crate::docker::fake::{Call, FakeContainer};
use crate::lifecycle::State;

#[tokio::test(start_paused = true)]
async fn a_user_paused_container_is_never_woken_and_unpause_hands_it_back() {
    let c = FakeContainer::running(1, "web");
    let mut h = Harness::new([c.clone()]);
    h.start().await;
    // `docker pause` straight to dockerd: the shim learns it from the event.
    h.docker.outside(&c.id, "pause");
    h.until("the shim sees it paused by its user", || {
        h.state(&c.id) == State::UserPaused
    })
    .await;

    // A request marks it but does not wake it: dockerd answers (409).
    let guard = h.lifecycle.use_container("web", "exec", true).await.unwrap();
    assert!(guard.is_some());
    drop(guard);
    assert!(!h.lifecycle.is_asleep(&c.id));
    h.stays("the user's, for several idle timeouts", IDLE * 3, || {
        h.state(&c.id) == State::UserPaused
    })
    .await;
    assert_eq!(h.count(Call::Unpause(c.id.clone())), 0);
    assert_eq!(h.count(Call::Pause(c.id.clone())), 0);

    // `docker unpause` hands it back: it runs, then sleeps as usual.
    h.docker.outside(&c.id, "unpause");
    h.until("running again", || h.state(&c.id) == State::Running).await;
    h.asleep(&c.id).await;
    assert_eq!(h.count(Call::Pause(c.id.clone())), 1);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn pausing_a_sleeper_makes_it_the_users() {
    let c = FakeContainer::running(1, "web");
    let mut h = Harness::new([c.clone()]);
    h.start().await;
    h.asleep(&c.id).await;
    // `docker pause` through the shim of a container it holds asleep.
    h.lifecycle.hand_to_user(&c.id).await.unwrap();
    assert_eq!(h.state(&c.id), State::UserPaused);
    assert!(!h.lifecycle.is_asleep(&c.id));
    // Traffic and requests no longer wake it.
    h.host.set_net(c.pid, 10_000);
    let guard = h.lifecycle.use_container("web", "exec", true).await.unwrap();
    h.stays("the user's", Duration::from_secs(5), || {
        h.state(&c.id) == State::UserPaused && h.docker.container(&c.id).paused
    })
    .await;
    drop(guard);
    assert_eq!(h.count(Call::Unpause(c.id.clone())), 0);
    // Not the shim's to wake on shutdown either.
    let docker = h.docker.clone();
    h.shut_down().await;
    assert_eq!(docker.count(&Call::Unpause(c.id.clone())), 0);
    assert!(docker.container(&c.id).paused);
}
