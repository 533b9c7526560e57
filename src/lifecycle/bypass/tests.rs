//! The bypass watch in process: [`FakeDocker`] behind `DockerApi`, tokio's
//! clock paused. The race of the create event with the create answer is
//! played out with a create ticket held open, as the proxy holds it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::docker::fake::{Call, FakeContainer, FakeDocker};

const PATIENCE: Duration = Duration::from_secs(600);

struct Watch {
    docker: Arc<FakeDocker>,
    origins: Origins,
    metrics: Arc<Metrics>,
    token: CancellationToken,
    dir: tempfile::TempDir,
}

impl Watch {
    /// The watch over `docker`, with `bypass_yaml` as its `bypass:` block,
    /// followed until its first list is judged.
    async fn start(docker: Arc<FakeDocker>, bypass_yaml: &str) -> Watch {
        let dir = tempfile::tempdir().unwrap();
        Watch::start_in(docker, bypass_yaml, dir).await
    }

    async fn start_in(docker: Arc<FakeDocker>, bypass_yaml: &str, dir: tempfile::TempDir) -> Watch {
        let yaml = format!("state_dir: {}\nbypass: {bypass_yaml}\n", dir.path().display());
        let loaded = crate::config::Config::from_yaml_over_default(&yaml, "test.yml").expect("valid");
        let origins = Origins::open(dir.path());
        let metrics = Arc::new(Metrics::new());
        let token = CancellationToken::new();
        let watch = BypassWatch::new(
            docker.clone(),
            crate::config::SharedConfig::new(loaded),
            metrics.clone(),
            origins.clone(),
            TaskTracker::new(),
            token.clone(),
            None,
        );
        let lists = docker.count(&Call::List);
        tokio::spawn(watch.run());
        let w = Watch {
            docker,
            origins,
            metrics,
            token,
            dir,
        };
        let docker = w.docker.clone();
        w.until("the first list", || docker.count(&Call::List) > lists).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        w
    }

    async fn until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A container created straight on dockerd: there, then its event.
    fn create_outside(&self, container: FakeContainer) -> String {
        let id = container.id.clone();
        self.docker.put(container);
        self.docker.emit(EventKind::Container, &id, "create");
        id
    }

    fn counted(&self) -> u64 {
        self.metrics.unmanaged_creates.get()
    }

    /// Stops as the shim does: the watch ends, and what is pending is saved.
    async fn stop(self) -> tempfile::TempDir {
        self.token.cancel();
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.origins.save().await;
        self.dir
    }
}

#[test]
fn probes_never_count_and_the_first_start_knows_no_bypass() {
    assert_eq!(verdict(true, false, true), None);
    assert_eq!(verdict(true, true, true), None);
    assert_eq!(verdict(false, true, true), Some(Origin::PreExisting));
    assert_eq!(verdict(false, false, true), Some(Origin::Bypass));
    assert_eq!(verdict(false, false, false), Some(Origin::OutOfScope));
}

#[tokio::test(start_paused = true)]
async fn a_create_straight_on_dockerd_is_a_bypass_and_pre_existing_ones_are_not() {
    let before = FakeContainer::running(1, "before");
    let w = Watch::start(FakeDocker::new([before.clone()]), "{}").await;
    assert_eq!(w.origins.get(&before.id), Some(Origin::PreExisting));

    let id = w.create_outside(FakeContainer::running(2, "sneaky"));
    w.until("the bypass is recorded", || w.origins.get(&id).is_some()).await;
    assert_eq!(w.origins.get(&id), Some(Origin::Bypass));
    assert_eq!(w.counted(), 1);
    let bypasses = w.origins.bypasses();
    assert_eq!(bypasses.len(), 1);
    assert_eq!(bypasses[0].name.as_deref(), Some("sneaky"));
    assert_eq!(bypasses[0].image.as_deref(), Some("forge-test/busybox"));

    // Its start is not counted again.
    w.docker.outside(&id, "start");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.counted(), 1);
    // Nor is anything about a pre-existing one.
    w.docker.outside(&before.id, "start");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.counted(), 1);

    // Removed: forgotten.
    w.docker.emit(EventKind::Container, &id, "destroy");
    w.until("the record is dropped", || w.origins.get(&id).is_none()).await;
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_shim_s_own_probe_never_counts() {
    let w = Watch::start(FakeDocker::new([]), "{}").await;
    let probe = FakeContainer::running(3, "probe").label(LABEL_PROBE, "1");
    let id = w.create_outside(probe);
    // Removed at once, as the probes are: judged from the event alone.
    let _ = w.docker.remove_container(&id).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(w.counted(), 0);
    assert_eq!(w.origins.get(&id), None);
    assert!(w.origins.bypasses().is_empty());
    w.stop().await;
}

/// The race: dockerd's create event arrives while the create through the
/// shim is still in flight (its answer not read yet). The watch waits for
/// it, and the container is the shim's; never a bypass.
#[tokio::test(start_paused = true)]
async fn a_create_event_before_the_create_answer_is_never_a_bypass() {
    let w = Watch::start(FakeDocker::new([]), "{}").await;
    let ticket = w.origins.begin_create();
    let id = w.create_outside(FakeContainer::running(5, "mine"));
    // A bypass made while the shim's create is in flight waits too...
    let sneaky = w.create_outside(FakeContainer::running(6, "sneaky"));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(w.origins.get(&id), None, "judged before the create in flight ended");
    assert_eq!(w.origins.get(&sneaky), None);
    assert_eq!(w.counted(), 0);
    // ...and the answer names the shim's container, then the create ends.
    w.origins.record_created(&id);
    drop(ticket);
    w.until("the other is judged", || w.origins.get(&sneaky).is_some())
        .await;
    assert_eq!(w.origins.get(&id), Some(Origin::Shim));
    assert_eq!(w.origins.get(&sneaky), Some(Origin::Bypass), "still reported");
    assert_eq!(w.counted(), 1);
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_create_that_begins_after_the_event_is_not_waited_for() {
    let w = Watch::start(FakeDocker::new([]), "{}").await;
    let id = w.create_outside(FakeContainer::running(7, "sneaky"));
    tokio::task::yield_now().await;
    let _later = w.origins.begin_create();
    w.until("judged", || w.origins.get(&id).is_some()).await;
    assert_eq!(w.origins.get(&id), Some(Origin::Bypass));
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_shim_knows_its_own_and_finds_what_was_created_while_it_was_down() {
    let docker = FakeDocker::new([FakeContainer::running(1, "before")]);
    let w = Watch::start(docker.clone(), "{}").await;
    let mine = FakeContainer::running(2, "mine");
    {
        let _ticket = w.origins.begin_create();
        docker.put(mine.clone());
        w.origins.record_created(&mine.id);
    }
    let dir = w.stop().await;
    let while_down = FakeContainer::running(3, "while-down");
    docker.put(while_down.clone());

    let w = Watch::start_in(docker, "{}", dir).await;
    w.until("found at start", || w.origins.get(&while_down.id).is_some())
        .await;
    assert_eq!(w.origins.get(&mine.id), Some(Origin::Shim));
    assert_eq!(
        w.origins.get(&FakeContainer::running(1, "").id),
        Some(Origin::PreExisting)
    );
    assert_eq!(w.origins.get(&while_down.id), Some(Origin::Bypass));
    assert_eq!(w.counted(), 1);
    assert!(w.origins.bypasses()[0]
        .note
        .as_deref()
        .unwrap()
        .contains("not watching"));
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn outside_the_scope_nothing_is_reported() {
    let w = Watch::start(FakeDocker::new([]), "{ scope: [ { name: \"ci-*\" } ] }").await;
    let other = w.create_outside(FakeContainer::running(8, "other"));
    let ci = w.create_outside(FakeContainer::running(9, "ci-job"));
    w.until("both judged", || {
        w.origins.get(&other).is_some() && w.origins.get(&ci).is_some()
    })
    .await;
    assert_eq!(w.origins.get(&other), Some(Origin::OutOfScope));
    assert_eq!(w.origins.get(&ci), Some(Origin::Bypass));
    assert_eq!(w.counted(), 1);
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn with_action_stop_a_breaching_bypass_is_stopped_at_start_never_removed() {
    let w = Watch::start(FakeDocker::new([]), "{ action: stop }").await;
    let mut privileged = FakeContainer::running(10, "privileged");
    privileged.running = false;
    privileged.extra = json!({ "HostConfig": { "Privileged": true } });
    let mut plain = FakeContainer::running(11, "plain");
    plain.running = false;
    let bad = w.create_outside(privileged);
    let good = w.create_outside(plain);
    w.until("judged", || {
        w.origins.get(&bad).is_some() && w.origins.get(&good).is_some()
    })
    .await;
    w.docker.outside(&bad, "start");
    w.docker.outside(&good, "start");
    w.until("the privileged one is stopped", || {
        w.docker.count(&Call::Stop(bad.clone())) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        w.docker.count(&Call::Stop(good.clone())),
        0,
        "a bypass that meets the standards runs on"
    );
    assert_eq!(w.docker.count(&Call::Remove(bad.clone())), 0, "never removed");
    let record = w.origins.bypasses().into_iter().find(|r| r.id == bad).unwrap();
    assert!(record.note.unwrap().contains("privileged"), "the reason is kept");
    w.stop().await;
}

#[tokio::test(start_paused = true)]
async fn with_action_report_nothing_is_stopped() {
    let w = Watch::start(FakeDocker::new([]), "{ action: report }").await;
    let mut privileged = FakeContainer::running(12, "privileged");
    privileged.running = false;
    privileged.extra = json!({ "HostConfig": { "Privileged": true } });
    let bad = w.create_outside(privileged);
    w.until("judged", || w.origins.get(&bad).is_some()).await;
    w.docker.outside(&bad, "start");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(w.docker.count(&Call::Stop(bad.clone())), 0);
    w.stop().await;
}
