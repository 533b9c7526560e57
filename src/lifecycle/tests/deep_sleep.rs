//! Deep sleep: a long sleeper of a class that allows it is stopped, and
//! started again on use.

use std::time::Duration;

use tokio::time::Instant;

use super::{Harness, IDLE};
use crate::docker::fake::{Call, FakeContainer};
use crate::lifecycle::State;

/// `max_sleep_time` in the test config.
const MAX_SLEEP: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn a_long_sleeper_is_stopped_when_its_class_allows_and_a_request_starts_it() {
    let deep = FakeContainer::running(1, "deep-web");
    let shallow = FakeContainer::running(2, "web");
    let mut h = Harness::new([deep.clone(), shallow.clone()]);
    h.start().await;
    h.asleep(&deep.id).await;
    let asleep = Instant::now();
    h.until("the deep sleeper is stopped", || h.state(&deep.id) == State::DeepSleep)
        .await;
    assert!(
        asleep.elapsed() >= MAX_SLEEP,
        "stopped {:?} after its pause",
        asleep.elapsed()
    );
    let stopped = h.docker.container(&deep.id);
    assert!(!stopped.running && !stopped.paused);
    assert_eq!(h.count(Call::Stop(deep.id.clone())), 1);
    assert!(h.lifecycle.is_asleep(&deep.id));
    // The other class only pauses, however long it sleeps.
    assert_eq!(h.state(&shallow.id), State::Sleeping);
    assert_eq!(h.count(Call::Stop(shallow.id.clone())), 0);

    // A request starts it (not an unpause) and finds it running.
    let guard = h.lifecycle.use_container("deep-web", "exec", true).await.unwrap();
    assert!(guard.is_some());
    assert_eq!(h.count(Call::Start(deep.id.clone())), 1);
    assert_eq!(h.count(Call::Unpause(deep.id.clone())), 0);
    assert!(h.docker.container(&deep.id).running);
    let row = h.row(&deep.id);
    assert_eq!((row.state, row.wakes), (State::Running, 1));
    drop(guard);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_sleeper_in_use_is_not_stopped() {
    let deep = FakeContainer::running(1, "deep-web");
    let mut h = Harness::new([deep.clone()]);
    h.start().await;
    h.asleep(&deep.id).await;
    // `docker logs` (not following) marks it without waking it.
    let guard = h.lifecycle.use_container("deep-web", "logs", false).await.unwrap();
    h.stays("paused, not stopped, while in use", MAX_SLEEP + IDLE, || {
        h.state(&deep.id) == State::Sleeping
    })
    .await;
    assert_eq!(h.count(Call::Stop(deep.id.clone())), 0);
    drop(guard);
    h.until("stopped once nothing uses it", || h.state(&deep.id) == State::DeepSleep)
        .await;
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_container_a_stop_would_delete_is_never_deep_slept() {
    let mut removed_on_stop = FakeContainer::running(1, "deep-web");
    removed_on_stop.extra = serde_json::json!({"HostConfig": {"AutoRemove": true}});
    let mut h = Harness::new([removed_on_stop.clone()]);
    h.start().await;
    h.asleep(&removed_on_stop.id).await;
    h.stays("paused, never stopped", MAX_SLEEP * 3, || {
        h.state(&removed_on_stop.id) == State::Sleeping
    })
    .await;
    assert_eq!(h.count(Call::Stop(removed_on_stop.id.clone())), 0);
    let why = h.row(&removed_on_stop.id).deep_sleep_blocked;
    assert!(why.as_deref().is_some_and(|w| w.contains("AutoRemove")), "{why:?}");
    h.shut_down().await;
}

#[test]
fn stop_hazards_read_auto_remove_and_every_tmpfs() {
    use crate::lifecycle::sleep::stop_hazards;
    use serde_json::json;
    let (hazard, tmpfs) = stop_hazards(Some(&json!({"AutoRemove": true, "Tmpfs": {"/tmp": ""}})));
    assert!(hazard.unwrap().contains("--rm"));
    assert!(tmpfs.is_empty());
    let host = json!({
        "AutoRemove": false,
        "Tmpfs": {"/tmp": "", "/run": "size=1m"},
        "Mounts": [{"Type": "tmpfs", "Target": "/cache"}, {"Type": "volume", "Target": "/data"}, {"Type": "tmpfs", "Target": "/tmp"}]
    });
    assert_eq!(
        stop_hazards(Some(&host)),
        (None, vec!["/cache".into(), "/run".into(), "/tmp".into()])
    );
    assert!(stop_hazards(None).0.is_some(), "an unreadable HostConfig is a hazard");
    assert_eq!(stop_hazards(Some(&json!({}))), (None, Vec::<String>::new()));
}
