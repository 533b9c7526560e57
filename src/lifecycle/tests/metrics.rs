//! What the lifecycle gives the metrics: transitions labelled with the
//! container's class and priority, and the samples read from its cgroup
//! and the host at scrape time.

use super::Harness;
use crate::docker::fake::FakeContainer;
use crate::metrics::StateLabel;

#[tokio::test(start_paused = true)]
async fn transitions_carry_the_class_and_samples_read_the_cgroup() {
    let web = FakeContainer::running(1, "web");
    let id = web.id.clone();
    let mut h = Harness::new([web]);
    h.start().await;
    h.asleep(&id).await;

    // Asleep: its cgroup's memory, and what the sleep saved since the pause
    // (the fake cgroup held 1 MiB then; a squeeze leaves 256 KiB).
    let cgroup = h.host.root.join("cgroup/docker").join(&id);
    std::fs::write(cgroup.join("memory.current"), "262144\n").unwrap();
    std::fs::write(cgroup.join("memory.max"), "4194304\n").unwrap();
    h.host.set_cpu(&id, 1_500_000);
    let (samples, host) = h.lifecycle.metric_samples().await;
    let sample = samples.iter().find(|s| s.name == "web").expect("web is sampled");
    assert_eq!(sample.state, StateLabel::Sleeping);
    assert_eq!(sample.class, "sleepy");
    assert_eq!(sample.memory_bytes, Some(262_144));
    assert_eq!(sample.memory_limit_bytes, Some(4_194_304));
    assert_eq!(sample.cpu_seconds, Some(1.5));
    assert_eq!(sample.cpu_limit_cores, None, "no NanoCpus, no limit shown");
    assert_eq!(sample.memory_saved_bytes, Some(1_048_576 - 262_144));
    // The fake /proc has only SwapFree: the rest is unknown, not zero.
    assert_eq!(host.swap_free_bytes, Some(0));
    assert_eq!((host.memory_total_bytes, host.load1, host.cpus), (None, None, None));

    h.lifecycle.use_container(&id, "exec", true).await.unwrap();
    let text = h.lifecycle.inner.metrics.render(&samples, &host);
    for expected in [
        "forge_shim_sleep_seconds_count{class=\"sleepy\",priority=\"unset\"} 1",
        "forge_shim_wake_seconds_count{class=\"sleepy\",priority=\"unset\",from=\"sleeping\"} 1",
        "forge_shim_asleep_seconds_count{class=\"sleepy\",priority=\"unset\"} 1",
        "forge_shim_memory_saved_bytes 786432",
    ] {
        assert!(text.contains(expected), "no {expected} in\n{text}");
    }
    // Awake again: nothing is counted as saved.
    let (samples, _) = h.lifecycle.metric_samples().await;
    let sample = samples.iter().find(|s| s.name == "web").unwrap();
    assert_eq!((sample.state, sample.memory_saved_bytes), (StateLabel::Running, None));
    h.shut_down().await;
}
