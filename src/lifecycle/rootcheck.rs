//! The backstop after start: a container whose recorded user the standards
//! read as non-root, but whose own processes run as uid 0, is stopped.
//!
//! It catches any difference between how the shim and the runtime read a
//! user (the judgement at create is the real guard). What it looks at:
//! - only containers the `non_root` rule covers (not exempt), in `enforce`
//!   mode (`audit` logs what it would do), whose `Config.User` the shim
//!   resolves to a non-root uid;
//! - only the container's init process and its descendants, read from the
//!   container's cgroup and `/proc/<pid>/status` once, at its `start` event.
//!   runc sets the user before the container's command is exec'd, so the
//!   init process already runs as its final user then. Processes of a
//!   `docker exec` are children of the runtime, not of the init process,
//!   and are judged by the exec rules instead.
//!
//! What it cannot see: a process that becomes root later (no-new-privileges
//! and the dropped capabilities are the guards there), and uids inside a
//! user namespace (with `userns-remap` the host sees the mapped uid, which
//! is not root on the host).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{SharedConfig, StandardsMode};
use crate::docker::{DockerApi, EventKind};
use crate::metrics::Metrics;
use crate::standards::{self, rule, user};

use super::{HostPaths, Lifecycle};

/// What `/proc/<pid>/status` says of one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ProcStatus {
    pub pid: u32,
    pub ppid: u32,
    /// Real, effective, saved and filesystem uid, as the host sees them.
    pub uids: [u32; 4],
    /// The effective gid (0 when the file gives none).
    pub egid: u32,
    /// The pid in the innermost pid namespace (`NSpid`'s last field).
    pub ns_pid: Option<u32>,
}

impl ProcStatus {
    /// Parses a `status` file; `None` when it has no `Uid:` or `PPid:` line.
    pub(super) fn parse(pid: u32, text: &str) -> Option<ProcStatus> {
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::split_whitespace)
        };
        let ppid = field("PPid")?.next()?.parse().ok()?;
        let uids: Vec<u32> = field("Uid")?.map(str::parse).collect::<Result<_, _>>().ok()?;
        let uids: [u32; 4] = uids.try_into().ok()?;
        let ns_pid = field("NSpid").and_then(|pids| pids.last()?.parse().ok());
        let egid = field("Gid").and_then(|mut gids| gids.nth(1)?.parse().ok()).unwrap_or(0);
        Some(ProcStatus {
            pid,
            ppid,
            uids,
            egid,
            ns_pid,
        })
    }

    /// Any of its uids is 0: a saved or filesystem uid of 0 is root too.
    pub(super) fn is_root(&self) -> bool {
        self.uids.contains(&0)
    }
}

/// The container's own processes: its init process and its descendants.
/// The init is `init` (dockerd's `State.Pid`) when it is among `procs`, else
/// the process that is pid 1 in its namespace; `None` when neither is there.
pub(super) fn init_tree(procs: &[ProcStatus], init: Option<u32>) -> Option<Vec<&ProcStatus>> {
    let root = init
        .and_then(|pid| procs.iter().find(|p| p.pid == pid))
        .or_else(|| procs.iter().find(|p| p.ns_pid == Some(1)))?;
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next].pid;
        tree.extend(procs.iter().filter(|p| p.ppid == parent && p.pid != parent));
        next += 1;
    }
    Some(tree)
}

/// The check after start (see the module docs). It follows dockerd's
/// container events on its own connection, so it runs whether or not the
/// lifecycle does; when the lifecycle runs, a stop is also one of its
/// transitions (`/_forge/v1/events`).
#[derive(Clone)]
pub struct RootCheck {
    inner: Arc<RootCheckInner>,
}

struct RootCheckInner {
    docker: Arc<dyn DockerApi>,
    loaded: SharedConfig,
    metrics: Arc<Metrics>,
    host: HostPaths,
    tasks: TaskTracker,
    token: CancellationToken,
    lifecycle: Option<Lifecycle>,
}

impl RootCheck {
    pub fn new(
        docker: Arc<dyn DockerApi>,
        loaded: SharedConfig,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        token: CancellationToken,
        lifecycle: Option<Lifecycle>,
    ) -> RootCheck {
        RootCheck {
            inner: Arc::new(RootCheckInner {
                docker,
                loaded,
                metrics,
                host: HostPaths::default(),
                tasks,
                token,
                lifecycle,
            }),
        }
    }

    /// Follows `start` events until shutdown; each start is checked on a
    /// task of its own (a start while the standards are off is not
    /// checked; a reload may turn them on).
    pub async fn run(self) {
        loop {
            let mut events = self.inner.docker.events(EventKind::Container, Some(SystemTime::now()));
            loop {
                let event = tokio::select! {
                    _ = self.inner.token.cancelled() => return,
                    event = events.next() => event,
                };
                match event {
                    Some(Ok(event)) if event.action == "start" && !event.id.is_empty() => {
                        let this = self.clone();
                        self.inner.tasks.spawn(async move { this.check(&event.id).await });
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            tokio::select! {
                _ = self.inner.token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Checks container `id`, just started, and stops it when its
    /// processes run as root where the standards said they would not.
    async fn check(&self, id: &str) {
        let inner = &*self.inner;
        let snapshot = inner.loaded.current();
        let loaded = &*snapshot;
        let mode = loaded.config.standards.mode;
        if mode == StandardsMode::Off {
            return;
        }
        let info = match inner.docker.inspect_container(id).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "cannot inspect a started container; its user is not checked");
                return;
            }
        };
        let Some(spec) = info.user.as_deref().filter(|u| !u.is_empty()) else {
            // Recorded as root: nothing was judged non-root.
            return;
        };
        let image = match info.image_id.as_deref() {
            Some(image_id) => inner.docker.image_info(image_id).await.ok().flatten(),
            None => None,
        };
        let identity = info.identity(image.as_ref().map_or(&[], |image| &image.repo_digests[..]));
        if !standards::rule_applies(loaded, &identity, rule::NON_ROOT) {
            return;
        }
        let passwd = match user::lookup_name(spec) {
            Some(_) => Some(crate::docker::passwd_from(
                inner.docker.container_file(&info.id, "/etc/passwd").await,
            )),
            None => None,
        };
        let user::Resolved::NonRoot { uid, .. } = user::resolve(spec, passwd.as_ref()) else {
            return;
        };

        let read = {
            let (host, id) = (inner.host.clone(), info.id.clone());
            inner.tasks.spawn_blocking(move || host.processes(&id)).await
        };
        let procs = match read {
            Ok(Ok(procs)) => procs,
            Ok(Err(e)) => {
                tracing::warn!(container = %info.id, error = %e, "cannot read the processes of a started container; its user is not checked");
                return;
            }
            Err(_) => return,
        };
        let init = info.pid.and_then(|pid| u32::try_from(pid).ok()).filter(|pid| *pid > 0);
        let Some(tree) = init_tree(&procs, init) else {
            // Exited already, or in a pid namespace the shim cannot tell apart.
            tracing::debug!(container = %info.id, "no init process found; its user is not checked");
            return;
        };
        let Some(root) = tree.iter().find(|p| p.is_root()) else {
            tracing::debug!(container = %info.id, uid, processes = tree.len(), "a started container runs as its user");
            return;
        };
        let name = info.name.clone().unwrap_or_default();
        let evidence = format!(
            "User {spec:?} is uid {uid}, but its process {} runs as root (uids real, effective, saved, filesystem: {:?})",
            root.pid, root.uids
        );
        if mode == StandardsMode::Audit {
            tracing::warn!(container = %info.id, name = %name, rule = rule::NON_ROOT, "would stop a container running as root: {evidence}");
            return;
        }
        Metrics::rule(&inner.metrics.standards_denials, "backstop");
        tracing::error!(container = %info.id, name = %name, rule = rule::NON_ROOT, "stopping a container running as root: {evidence}");
        let started = tokio::time::Instant::now();
        let error = inner
            .docker
            .stop(&info.id)
            .await
            .err()
            .map(|e| format!("cannot stop it: {e}"));
        if let Some(e) = &error {
            tracing::error!(container = %info.id, error = %e, "a container running as root could not be stopped");
        }
        if let Some(lifecycle) = &inner.lifecycle {
            lifecycle.report_standards_stop(&info.id, &name, &evidence, started.elapsed(), error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(ppid: u32, uid: &str, nspid: &str) -> String {
        format!("Name:\tsh\nPPid:\t{ppid}\nUid:\t{uid}\nGid:\t0\t0\t0\t0\nNSpid:\t{nspid}\n")
    }

    #[test]
    fn parses_uids_parent_and_namespace_pid() {
        let p = ProcStatus::parse(4242, &status(17, "1000\t1000\t0\t1000", "4242\t1")).unwrap();
        assert_eq!(p.ppid, 17);
        assert_eq!(p.uids, [1000, 1000, 0, 1000]);
        assert_eq!(p.ns_pid, Some(1));
        assert!(p.is_root(), "a saved uid of 0 can become root again");
        let p = ProcStatus::parse(5, &status(1, "65534\t65534\t65534\t65534", "5")).unwrap();
        assert!(!p.is_root());
        for broken in [
            "",
            "PPid:\t1\n",
            "PPid:\t1\nUid:\t0\t0\n",
            "PPid:\tx\nUid:\t0\t0\t0\t0\n",
        ] {
            assert_eq!(ProcStatus::parse(1, broken), None, "{broken:?}");
        }
    }

    fn proc(pid: u32, ppid: u32, uid: u32, ns_pid: u32) -> ProcStatus {
        ProcStatus {
            pid,
            ppid,
            egid: 0,
            uids: [uid; 4],
            ns_pid: Some(ns_pid),
        }
    }

    #[test]
    fn the_tree_is_init_and_its_descendants_never_an_exec() {
        // 100 is the init (pid 1 inside), 101 and 102 below it; 200 is a
        // `docker exec` as root, whose parent is the runtime outside.
        let procs = [
            proc(100, 90, 1000, 1),
            proc(101, 100, 1000, 2),
            proc(102, 101, 0, 3),
            proc(200, 91, 0, 7),
        ];
        let pids = |tree: Option<Vec<&ProcStatus>>| tree.unwrap().iter().map(|p| p.pid).collect::<Vec<_>>();
        assert_eq!(pids(init_tree(&procs, Some(100))), vec![100, 101, 102]);
        // dockerd's pid is stale (a lying or late inspect): pid 1 inside.
        assert_eq!(pids(init_tree(&procs, Some(5))), vec![100, 101, 102]);
        assert_eq!(pids(init_tree(&procs, None)), vec![100, 101, 102]);
        assert!(init_tree(&procs[3..], None).is_none());
        let exec_only: Vec<_> = init_tree(&procs, Some(100))
            .unwrap()
            .into_iter()
            .filter(|p| p.pid == 200)
            .collect();
        assert!(exec_only.is_empty());
    }
}
