//! The lifecycle in process: a [`FakeDocker`] behind `DockerApi`, a fake
//! /proc, /sys and cgroup v2 tree in a temporary directory behind
//! [`HostPaths`], and tokio's clock paused (it moves only when every task
//! waits, so idle timeouts pass at once and the order of events is the
//! runtime's, not the machine's load). Each test asserts on the calls the
//! fake received and on the lifecycle's table.

mod deep_sleep;
mod metrics;
mod reload;
mod restart;
mod sampler;
mod transitions;
mod user_pause;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{HostPaths, Lifecycle, State, StatusRow};
use crate::docker::fake::{Call, FakeContainer, FakeDocker};
use crate::docker::EventKind;

/// Containers named `deep-*` are of a class with deep sleep; every other
/// one sleeps after 10 s idle. The sampler looks every second.
const CONFIG: &str = "\
standards: { mode: off }
default_class: sleepy
on_shutdown: ON_SHUTDOWN
auto_sleep: { enabled: true, check_interval: 1s, min_uptime: 0, idle_threshold: 0.1, network_idle_rate: 1K, max_sleep_time: 1m, memory_squeeze: false, transition_timeout: 10s }
classes:
  sleepy:
    sleep_policy: { enabled: true, idle_timeout: 10s }
  deep:
    sleep_policy: { enabled: true, idle_timeout: 10s, deep_sleep: true }
classify:
  - match: { name: \"deep-*\" }
    class: deep
";

/// The idle timeout of both classes.
const IDLE: Duration = Duration::from_secs(10);
/// Longer than anything a test waits for, in paused (virtual) time.
const PATIENCE: Duration = Duration::from_secs(600);

/// A fake host's kernel state under one directory: procfs (each
/// container's `cgroup` and `net/dev`) and a cgroup v2 tree.
pub(super) struct FakeHost {
    root: PathBuf,
}

impl FakeHost {
    fn new(root: &Path) -> FakeHost {
        let host = FakeHost {
            root: root.to_path_buf(),
        };
        put(&host.root.join("cgroup/cgroup.controllers"), "cpu memory pids\n");
        put(&host.root.join("proc/meminfo"), "SwapFree: 0 kB\n");
        host
    }

    fn paths(&self) -> HostPaths {
        HostPaths {
            proc: self.root.join("proc"),
            sys: self.root.join("sys"),
            cgroup: self.root.join("cgroup"),
            // No conntrack: wake on traffic falls back to counters.
            conntrack: self.root.join("no-conntrack"),
        }
    }

    /// Makes the container's init process `pid` and its cgroup readable,
    /// with idle counters.
    pub fn add(&self, id: &str, pid: u32) {
        let cgroup = self.root.join("cgroup/docker").join(id);
        put(&cgroup.join("cpu.stat"), "usage_usec 0\n");
        put(&cgroup.join("memory.current"), "1048576\n");
        let process = self.root.join("proc").join(pid.to_string());
        put(&process.join("cgroup"), &format!("0::/docker/{id}\n"));
        self.set_net(pid, 0);
    }

    /// Sets the bytes the network namespace of `pid` has seen.
    pub fn set_net(&self, pid: u32, bytes: u64) {
        put(
            &self.root.join("proc").join(pid.to_string()).join("net/dev"),
            &format!(
                "Inter-|   Receive\n face |bytes\n    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n  \
                 eth0: {bytes} 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            ),
        );
    }

    /// Sets the CPU time the container has used.
    pub fn set_cpu(&self, id: &str, usec: u64) {
        put(
            &self.root.join("cgroup/docker").join(id).join("cpu.stat"),
            &format!("usage_usec {usec}\n"),
        );
    }
}

fn put(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// One lifecycle over a fake dockerd and a fake host.
pub(super) struct Harness {
    // Kept for the directory's life; `dir` is where everything is.
    _dir: Arc<tempfile::TempDir>,
    pub docker: Arc<FakeDocker>,
    pub host: FakeHost,
    pub lifecycle: Lifecycle,
    /// The config the lifecycle reads, and the text it was loaded from.
    config: crate::config::SharedConfig,
    yaml: String,
    token: CancellationToken,
    tasks: TaskTracker,
    run: Option<JoinHandle<()>>,
}

impl Harness {
    /// A lifecycle (not started) over `containers`, each with readable host
    /// files.
    pub fn new(containers: impl IntoIterator<Item = FakeContainer>) -> Harness {
        let containers: Vec<FakeContainer> = containers.into_iter().collect();
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let host = FakeHost::new(dir.path());
        for c in &containers {
            host.add(&c.id, c.pid);
        }
        Harness::over(dir, FakeDocker::new(containers), "wake_all")
    }

    /// A new lifecycle over the same state directory, host and dockerd: a
    /// shim started again after the last one died.
    pub fn restarted(&self) -> Harness {
        Harness::over(self._dir.clone(), self.docker.clone(), "wake_all")
    }

    /// This harness with another `on_shutdown`.
    pub fn on_shutdown(self, on_shutdown: &str) -> Harness {
        Harness::over(self._dir.clone(), self.docker.clone(), on_shutdown)
    }

    fn over(dir: Arc<tempfile::TempDir>, docker: Arc<FakeDocker>, on_shutdown: &str) -> Harness {
        let host = FakeHost {
            root: dir.path().to_path_buf(),
        };
        let state_dir = dir.path().join("state");
        let yaml = format!(
            "{}state_dir: {}\n",
            CONFIG.replace("ON_SHUTDOWN", on_shutdown),
            state_dir.display()
        );
        let loaded = crate::config::Config::from_yaml(&yaml, "test.yml").expect("the test config is valid");
        let token = CancellationToken::new();
        let tasks = TaskTracker::new();
        let config = crate::config::SharedConfig::new(loaded);
        let lifecycle = Lifecycle::with_host(
            docker.clone(),
            config.clone(),
            token.clone(),
            Arc::new(crate::metrics::Metrics::new()),
            tasks.clone(),
            host.paths(),
        );
        Harness {
            _dir: dir,
            docker,
            host,
            lifecycle,
            config,
            yaml,
            token,
            tasks,
            run: None,
        }
    }

    /// Reloads the config with `from` replaced by `to` in its text, as
    /// SIGHUP does: the new config is swapped in, then the table refitted.
    pub fn reload(&self, from: &str, to: &str) -> (usize, usize) {
        assert!(self.yaml.contains(from), "{from:?} is not in the test config");
        let yaml = self.yaml.replace(from, to);
        let fresh = crate::config::Config::from_yaml(&yaml, "reloaded.yml").expect("the reloaded config is valid");
        let restart = self.config.apply(fresh);
        assert!(restart.is_empty(), "{restart:?}");
        self.lifecycle.refit()
    }

    pub fn state_file(&self) -> PathBuf {
        self._dir.path().join("state").join(super::store::FILE_NAME)
    }

    /// Runs the lifecycle and waits until it has rebuilt its view and
    /// follows dockerd's events.
    pub async fn start(&mut self) {
        let docker = self.docker.clone();
        let lists = |calls: &[Call]| calls.iter().filter(|c| matches!(c, Call::List)).count();
        let streams = |calls: &[Call]| {
            calls
                .iter()
                .filter(|c| matches!(c, Call::Events(EventKind::Container)))
                .count()
        };
        let before = docker.calls();
        self.run = Some(tokio::spawn(self.lifecycle.clone().run()));
        // One reconcile at start, one by the watcher once it follows events.
        self.until("the view is rebuilt and events are followed", || {
            let calls = docker.calls();
            lists(&calls) >= lists(&before) + 2 && streams(&calls) > streams(&before)
        })
        .await;
        // The watcher's reconcile runs to its end.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// The table's row of container `id`.
    pub fn row(&self, id: &str) -> StatusRow {
        self.lifecycle
            .status()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{id} is not tracked"))
    }

    pub fn state(&self, id: &str) -> State {
        self.row(id).state
    }

    /// Lets virtual time pass until `done` holds; fails after [`PATIENCE`].
    pub async fn until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Lets `span` of virtual time pass, checking `holds` all along.
    pub async fn stays(&self, what: &str, span: Duration, mut holds: impl FnMut() -> bool) {
        let end = Instant::now() + span;
        while Instant::now() < end {
            assert!(holds(), "{what}: broken");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(holds(), "{what}: broken");
    }

    /// Waits until container `id` is asleep (paused by the shim).
    pub async fn asleep(&self, id: &str) {
        let docker = self.docker.clone();
        self.until(&format!("{id} falls asleep"), || {
            self.state(id) == State::Sleeping && docker.container(id).paused
        })
        .await;
    }

    /// How many times the fake was asked `call`.
    pub fn count(&self, call: Call) -> usize {
        self.docker.count(&call)
    }

    /// Shutdown as the shim does it: the loops stop, then `on_shutdown`,
    /// then every task the lifecycle started has ended. Returns the
    /// directory, to look at what was left in it.
    pub async fn shut_down(mut self) -> Arc<tempfile::TempDir> {
        self.token.cancel();
        if let Some(run) = self.run.take() {
            run.await.unwrap();
        }
        self.lifecycle.shutdown().await;
        self.tasks.close();
        self.tasks.wait().await;
        self._dir.clone()
    }

    /// The process dies (`kill -9`): its tasks end, nothing is written.
    pub fn kill(mut self) {
        if let Some(run) = self.run.take() {
            run.abort();
        }
        self.token.cancel();
    }
}
