//! Sleep and wake against each other and against requests: in-use marks,
//! the race between a sleep and a request, one unpause for many callers.

use std::time::Duration;

use tokio::time::Instant;

use super::{Harness, IDLE};
use crate::docker::fake::{Call, FakeContainer, Op};
use crate::docker::DockerError;
use crate::lifecycle::State;

fn web() -> FakeContainer {
    FakeContainer::running(1, "web")
}

#[tokio::test(start_paused = true)]
async fn an_idle_container_sleeps_after_its_idle_timeout_and_a_request_wakes_it() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    let started = Instant::now();
    h.start().await;
    h.asleep(&id).await;
    assert!(started.elapsed() >= IDLE, "asleep after {:?}", started.elapsed());
    assert_eq!(h.count(Call::Pause(id.clone())), 1);

    let guard = h.lifecycle.use_container("web", "exec", true).await.unwrap();
    assert!(guard.is_some(), "a tracked container gives a mark");
    assert_eq!(h.count(Call::Unpause(id.clone())), 1);
    assert!(!h.docker.container(&id).paused);
    let row = h.row(&id);
    assert_eq!((row.state, row.in_use, row.wakes), (State::Running, 1, 1));
    assert_eq!(row.last_wake.unwrap().trigger, "exec");
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_live_mark_blocks_sleep_and_its_drop_starts_the_idle_timeout() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    h.start().await;
    // A stream (`logs -f`, attach, exec) holds its mark while it is open.
    let stream = h.lifecycle.use_container(&id, "attach", true).await.unwrap().unwrap();
    h.stays("awake under a live stream", IDLE * 5, || h.state(&id) == State::Running)
        .await;
    // Even a forced sleep (the operator's) never pauses under a live mark.
    assert!(!h.lifecycle.sleep(&id, "api", true).await.unwrap());
    assert_eq!(h.count(Call::Pause(id.clone())), 0);
    assert_eq!(h.row(&id).in_use, 1);

    drop(stream);
    let dropped = Instant::now();
    assert_eq!(h.row(&id).in_use, 0);
    h.asleep(&id).await;
    // The drop counted as activity: a whole idle timeout passed since.
    assert!(
        dropped.elapsed() >= IDLE,
        "asleep {:?} after the drop",
        dropped.elapsed()
    );
    assert_eq!(h.count(Call::Pause(id.clone())), 1);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_request_during_a_pause_waits_for_it_and_finds_the_container_running() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    let pause = h.docker.hold(Op::Pause);
    h.start().await;
    // The sampler decided: the pause is at dockerd (held there).
    pause.arrived().await;
    assert_eq!(h.state(&id), State::Pausing);

    let lifecycle = h.lifecycle.clone();
    let request = tokio::spawn(async move { lifecycle.use_container("web", "exec", true).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!request.is_finished(), "the request waits for the transition");
    assert_eq!(h.row(&id).in_use, 1, "marked before it waits");
    pause.release_one();
    let guard = request.await.unwrap().unwrap().expect("a mark");

    // The pause went through, then the request's wake undid it.
    let transitions: Vec<Call> = h
        .docker
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Pause(_) | Call::Unpause(_)))
        .collect();
    assert_eq!(transitions, [Call::Pause(id.clone()), Call::Unpause(id.clone())]);
    assert!(!h.docker.container(&id).paused);
    assert_eq!(h.state(&id), State::Running);
    // Never paused again under the live mark.
    h.stays("awake under the mark", IDLE * 3, || {
        h.state(&id) == State::Running && !h.docker.container(&id).paused
    })
    .await;
    assert_eq!(h.count(Call::Pause(id.clone())), 1);
    drop(guard);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_mark_taken_before_the_sleep_decides_keeps_it_from_pausing() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    h.start().await;
    // Idle for longer than its timeout, but a request arrives first.
    tokio::time::sleep(IDLE - Duration::from_millis(500)).await;
    let guard = h.lifecycle.use_container("web", "top", true).await.unwrap();
    // Every sampler tick from here finds it in use.
    h.stays("awake under the mark", IDLE * 2, || h.state(&id) == State::Running)
        .await;
    assert!(!h.lifecycle.sleep(&id, "idle", false).await.unwrap());
    assert_eq!(h.count(Call::Pause(id.clone())), 0);
    drop(guard);
    h.asleep(&id).await;
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_wake_racing_a_pause_ends_running() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    let pause = h.docker.hold(Op::Pause);
    h.start().await;
    pause.arrived().await;
    // Traffic (conntrack, counters) or the API wakes it mid-pause.
    let lifecycle = h.lifecycle.clone();
    let wake_id = id.clone();
    let wake = tokio::spawn(async move { lifecycle.wake(&wake_id, "connection").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    pause.release_one();
    wake.await.unwrap().unwrap();
    assert_eq!(h.count(Call::Unpause(id.clone())), 1);
    assert!(!h.docker.container(&id).paused);
    assert_eq!(h.state(&id), State::Running);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn many_callers_on_a_sleeper_share_one_unpause() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    h.start().await;
    h.asleep(&id).await;
    let unpause = h.docker.hold(Op::Unpause);
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let lifecycle = h.lifecycle.clone();
            tokio::spawn(async move { lifecycle.use_container("web", "exec", true).await })
        })
        .collect();
    unpause.arrived().await;
    // Everyone is marked and waiting on the one wake in progress.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.row(&id).in_use, 20);
    unpause.release_one();
    let mut guards = Vec::new();
    for caller in callers {
        guards.push(caller.await.unwrap().unwrap().expect("a mark"));
    }
    assert_eq!(h.count(Call::Unpause(id.clone())), 1);
    let row = h.row(&id);
    assert_eq!((row.state, row.in_use, row.wakes), (State::Running, 20, 1));
    drop(guards);
    assert_eq!(h.row(&id).in_use, 0);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn traffic_to_a_sleeper_wakes_it_and_chatter_does_not() {
    let mut h = Harness::new([web()]);
    let c = web();
    h.start().await;
    h.asleep(&c.id).await;
    // A neighbour solicitation: below the wake threshold.
    h.host.set_net(c.pid, 90);
    h.stays("asleep through chatter", Duration::from_secs(2), || {
        h.state(&c.id) == State::Sleeping
    })
    .await;
    assert_eq!(h.count(Call::Unpause(c.id.clone())), 0);
    // A request's worth of bytes reaches its namespace.
    h.host.set_net(c.pid, 90 + 1500);
    h.until("traffic wakes it", || h.state(&c.id) == State::Running).await;
    assert_eq!(h.count(Call::Unpause(c.id.clone())), 1);
    assert_eq!(h.row(&c.id).last_wake.unwrap().trigger, "network");
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_wake_leaves_it_asleep_for_the_next_request_to_wake() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    h.start().await;
    h.asleep(&id).await;
    // A 500 every time: four attempts (the retry is bounded), then it fails.
    for _ in 0..4 {
        h.docker.fail_next(
            Op::Unpause,
            DockerError::Api {
                status: 500,
                message: "runc: freezer stuck".into(),
            },
        );
    }
    let error = h
        .lifecycle
        .use_container("web", "exec", true)
        .await
        .err()
        .expect("the wake fails");
    assert_eq!(
        error.to_string(),
        "container web: wake failed: dockerd answered 500: runc: freezer stuck"
    );
    assert_eq!(h.state(&id), State::Sleeping);
    assert_eq!(h.row(&id).in_use, 0, "the failed request's mark is gone");

    // dockerd that does not answer within transition_timeout (10 s).
    h.docker.delay(Op::Unpause, Duration::from_secs(30));
    let error = h.lifecycle.wake(&id, "api").await.unwrap_err();
    assert!(error.to_string().contains("no answer within 10s"), "{error}");
    assert_eq!(h.state(&id), State::Sleeping);

    h.docker.delay(Op::Unpause, Duration::ZERO);
    let guard = h.lifecycle.use_container("web", "exec", true).await.unwrap();
    assert!(guard.is_some());
    assert_eq!(h.count(Call::Unpause(id.clone())), 6);
    assert_eq!(h.state(&id), State::Running);
    assert_eq!(h.row(&id).wakes, 1);
    drop(guard);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_transient_dockerd_error_is_retried_and_a_final_one_is_not() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    h.start().await;
    h.asleep(&id).await;
    // A 503 once (the soak's "received 503"), then dockerd answers: the
    // request that needed the container gets it, awake.
    h.docker.fail_next(
        Op::Unpause,
        DockerError::Api {
            status: 503,
            message: "containerd: unavailable".into(),
        },
    );
    let guard = h.lifecycle.use_container("web", "exec", true).await.unwrap();
    assert!(guard.is_some());
    assert_eq!(h.count(Call::Unpause(id.clone())), 2);
    assert_eq!(h.state(&id), State::Running);
    drop(guard);

    // A 404 is dockerd's final word: asked once, not again.
    h.asleep(&id).await;
    h.docker
        .fail_next(Op::Unpause, DockerError::NotFound("No such container: web".into()));
    let error = h.lifecycle.wake(&id, "api").await.unwrap_err();
    assert!(error.to_string().contains("No such container"), "{error}");
    assert_eq!(h.count(Call::Unpause(id.clone())), 3);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_pause_leaves_it_running_and_a_pause_by_someone_else_makes_it_theirs() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    h.docker
        .fail_next(Op::Pause, DockerError::Conflict("Container web is restarting".into()));
    h.start().await;
    h.until("a pause is tried", || h.count(Call::Pause(id.clone())) == 1)
        .await;
    h.until("it runs on", || h.state(&id) == State::Running).await;
    assert!(!h.docker.container(&id).paused);
    // Tried again once idle again: this time someone paused it first.
    h.docker.fail_next(
        Op::Pause,
        DockerError::AlreadyPaused("Container web is already paused".into()),
    );
    h.until("paused by someone else", || h.state(&id) == State::UserPaused)
        .await;
    assert_eq!(h.count(Call::Pause(id.clone())), 2);
    h.stays("theirs", IDLE * 2, || h.state(&id) == State::UserPaused).await;
    assert_eq!(h.count(Call::Unpause(id.clone())), 0);
    h.shut_down().await;
}

/// dockerd answers an unpause before it clears its paused flag (it clears
/// it, then emits `unpause`, on containerd's resume event): a wake waits for
/// that event, so the request it wakes for is not refused 409 "is paused".
#[tokio::test(start_paused = true)]
async fn a_wake_returns_after_dockerds_unpause_event_and_waits_a_bounded_time_for_it() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    h.start().await;
    h.asleep(&id).await;
    h.docker.withhold_events("unpause");
    let wake = {
        let (lifecycle, id) = (h.lifecycle.clone(), id.clone());
        tokio::spawn(async move { lifecycle.wake(&id, "api").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!wake.is_finished(), "the wake returned before dockerd's unpause event");
    h.docker.emit(crate::docker::EventKind::Container, &id, "unpause");
    wake.await.unwrap().unwrap();
    assert_eq!(h.state(&id), State::Running);

    // No event at all (the stream is down): the wake goes on after 250 ms.
    h.asleep(&id).await;
    let started = Instant::now();
    h.lifecycle.wake(&id, "api").await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(h.state(&id), State::Running);
    h.shut_down().await;
}

/// dockerd's events can come late. An `unpause` event of the shim's own
/// wake that arrives after the next sleep has paused the container again is
/// the shim's own, not an unpause behind its back: the sleeper stays
/// asleep (and a request to it wakes it, instead of being sent on to a
/// frozen container and refused 409 "is paused": the soak's failures).
#[tokio::test(start_paused = true)]
async fn a_late_unpause_event_of_the_shims_own_wake_does_not_mark_the_next_sleeper_running() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    h.start().await;
    h.asleep(&id).await;
    h.docker.withhold_events("unpause");
    h.lifecycle.wake(&id, "api").await.unwrap();
    assert_eq!(h.state(&id), State::Running);
    h.asleep(&id).await;
    // The first wake's event, late.
    h.docker.emit(crate::docker::EventKind::Container, &id, "unpause");
    h.stays(
        "asleep after a late event of the shim's own wake",
        Duration::from_millis(500),
        || h.state(&id) == State::Sleeping && h.docker.container(&id).paused,
    )
    .await;
    // An unpause behind the shim's back is still seen as one.
    h.docker.outside(&id, "unpause");
    h.until("running after an unpause behind its back", || {
        h.state(&id) == State::Running
    })
    .await;
    h.shut_down().await;
}

/// A `pause` event of the shim's own sleep that arrives after the wake is
/// the shim's own: the container is running, not paused by someone else
/// (which would keep it awake for good: the shim never sleeps a container
/// it thinks a user paused).
#[tokio::test(start_paused = true)]
async fn a_late_pause_event_of_the_shims_own_sleep_does_not_make_the_container_user_paused() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    h.start().await;
    h.docker.withhold_events("pause");
    h.asleep(&id).await;
    h.lifecycle.wake(&id, "api").await.unwrap();
    assert_eq!(h.state(&id), State::Running);
    h.docker.emit(crate::docker::EventKind::Container, &id, "pause");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.state(&id), State::Running, "a late event of its own sleep");
    // And it goes on sleeping when idle.
    h.asleep(&id).await;
    h.shut_down().await;
}

/// A request that needs a sleeper can end while its wake is under way (the
/// client hangs up, a timeout fires): the wake goes on to its end all the
/// same. Dropped half-way, it left the container `Waking` for good (never
/// slept again) and, before the unpause, still paused while the next
/// request was sent on to it.
#[tokio::test(start_paused = true)]
async fn a_wake_whose_caller_goes_away_still_ends() {
    let mut h = Harness::new([web()]);
    let id = web().id;
    h.start().await;
    h.asleep(&id).await;
    let unpause = h.docker.hold(Op::Unpause);
    let caller = {
        let lifecycle = h.lifecycle.clone();
        tokio::spawn(async move { lifecycle.use_container("web", "exec", true).await.map(|_| ()) })
    };
    unpause.arrived().await;
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    unpause.release_one();
    h.until("the wake ends without its caller", || {
        h.state(&id) == State::Running && !h.docker.container(&id).paused
    })
    .await;
    // And it sleeps again when idle.
    h.asleep(&id).await;

    // Likewise a sleep asked through the API whose caller goes away.
    unpause.release_one();
    h.lifecycle.wake(&id, "api").await.unwrap();
    let pause = h.docker.hold(Op::Pause);
    let caller = {
        let lifecycle = h.lifecycle.clone();
        let id = id.clone();
        tokio::spawn(async move { lifecycle.sleep(&id, "api", true).await.map(|_| ()) })
    };
    pause.arrived().await;
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    pause.release_one();
    h.until("the sleep ends without its caller", || {
        h.state(&id) == State::Sleeping && h.docker.container(&id).paused
    })
    .await;
    h.shut_down().await;
}
