//! The lifecycle's reads and writes of the host's kernel state, under the
//! roots of [`HostPaths`]: a container's cgroup and network counters.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{activity, cgroup, Lifecycle};

/// Where the lifecycle finds the host's kernel state. The real roots by
/// default; tests point them into a temporary directory.
#[derive(Clone, Debug)]
pub struct HostPaths {
    /// procfs: containers' `<pid>/net/dev` and `<pid>/cgroup`, the host's
    /// `self/net/dev`, `meminfo`, `swaps`.
    pub proc: PathBuf,
    /// sysfs: the host ends of veth pairs are in `class/net`.
    pub sys: PathBuf,
    /// The cgroup hierarchy (v1 or v2).
    pub cgroup: PathBuf,
    /// The `conntrack` program (looked up on `PATH` when bare).
    pub conntrack: PathBuf,
}

impl Default for HostPaths {
    fn default() -> HostPaths {
        HostPaths {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
            cgroup: PathBuf::from("/sys/fs/cgroup"),
            conntrack: PathBuf::from("conntrack"),
        }
    }
}

impl HostPaths {
    /// The shim's `/sys/class/net`, where the host ends of veths are.
    fn sys_class_net(&self) -> PathBuf {
        self.sys.join("class").join("net")
    }
}

impl Lifecycle {
    pub(super) fn restore_limits(&self, id: &str, pid: u32, limits: &cgroup::SavedLimits) {
        match self.cgroup(id, Some(pid)) {
            Some(cg) => {
                if let Err(e) = cg.restore(limits) {
                    tracing::warn!(id, error = %e, "could not restore memory limits");
                }
            }
            None => tracing::warn!(id, "cgroup not found; memory limits not restored"),
        }
    }

    /// The container's cgroup, checked against its id so a reused pid can
    /// never point at another container's.
    pub(super) fn cgroup(&self, id: &str, pid: Option<u32>) -> Option<cgroup::ContainerCgroup> {
        cgroup::ContainerCgroup::resolve(&self.inner.host.cgroup, &self.inner.host.proc, pid, id).ok()
    }

    pub(super) fn net_bytes(&self, pid: u32) -> Option<u64> {
        activity::net_bytes(&self.inner.host.proc, pid).ok()
    }

    /// [`Lifecycle::sleep_counters`] on the blocking pool: finding the veth
    /// peers reads two files per host interface, which with hundreds of
    /// containers must not stall the thread that serves requests.
    pub(super) async fn sleep_counters_off_thread(&self, pid: u32) -> (Option<Arc<[String]>>, Option<u64>) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.sleep_counters(pid))
            .await
            .unwrap_or((None, None))
    }

    /// Where a container falling asleep has its traffic counted, and the
    /// count now: the host ends of its veth pairs when they can be found,
    /// else its own namespace's table.
    pub(super) fn sleep_counters(&self, pid: u32) -> (Option<Arc<[String]>>, Option<u64>) {
        let host = &self.inner.host;
        if let Some(peers) = activity::host_peers(&host.proc, &host.sys_class_net(), pid) {
            if let Some(bytes) = activity::host_net_dev(&host.proc)
                .ok()
                .and_then(|table| sum_peers(&table, &peers))
            {
                return (Some(peers.into()), Some(bytes));
            }
        }
        (None, self.net_bytes(pid))
    }
}

/// The bytes of `peers` in a host interface table; `None` when one is gone.
pub(super) fn sum_peers(table: &HashMap<String, u64>, peers: &[String]) -> Option<u64> {
    peers
        .iter()
        .try_fold(0u64, |total, peer| Some(total.saturating_add(*table.get(peer)?)))
}
