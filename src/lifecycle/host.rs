//! The lifecycle's reads and writes of the host's kernel state, under the
//! roots of [`HostPaths`]: a container's cgroup and network counters.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::metrics::HostSample;

use super::activity::{self, ActivityError, Sample};
use super::cgroup::{CgroupError, ContainerCgroup, SavedLimits};
use super::rootcheck::ProcStatus;
use super::Lifecycle;

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
    /// The host's memory, load and CPU count, for the metrics; what cannot
    /// be read is left `None`.
    pub(super) fn host_sample(&self) -> HostSample {
        let read = |name: &str| std::fs::read_to_string(self.proc.join(name)).ok();
        let mut sample = read("meminfo").map(|text| parse_meminfo(&text)).unwrap_or_default();
        sample.load1 = read("loadavg").and_then(|text| text.split_whitespace().next()?.parse().ok());
        sample.cpus = read("stat").map(|text| count_cpus(&text)).filter(|n| *n > 0);
        sample
    }

    /// The shim's `/sys/class/net`, where the host ends of veths are.
    fn sys_class_net(&self) -> PathBuf {
        self.sys.join("class").join("net")
    }

    /// The container's cgroup, checked against its id so a reused pid can
    /// never point at another container's.
    pub(super) fn cgroup(&self, id: &str, pid: Option<u32>) -> Result<ContainerCgroup, CgroupError> {
        ContainerCgroup::resolve(&self.cgroup, &self.proc, pid, id)
    }

    /// The processes in container `id`'s cgroup, each as its `status` says;
    /// one that exits while they are read is left out.
    pub(super) fn processes(&self, id: &str) -> Result<Vec<ProcStatus>, String> {
        let cgroup = ContainerCgroup::for_id(&self.cgroup, id).map_err(|e| e.to_string())?;
        let pids = cgroup.procs().map_err(|e| format!("cgroup.procs of {id}: {e}"))?;
        Ok(pids
            .into_iter()
            .filter_map(|pid| {
                let text = std::fs::read_to_string(self.proc.join(pid.to_string()).join("status")).ok()?;
                ProcStatus::parse(pid, &text)
            })
            .collect())
    }

    /// The TCP ports process `pid`'s network namespace listens on (its
    /// `net/tcp` and `net/tcp6`); `None` when neither can be read.
    pub(super) fn listening_ports(&self, pid: u32) -> Option<Vec<u16>> {
        let net = self.proc.join(pid.to_string()).join("net");
        let mut any = false;
        let mut ports = Vec::new();
        for table in ["tcp", "tcp6"] {
            if let Ok(text) = std::fs::read_to_string(net.join(table)) {
                any = true;
                ports.extend(parse_listening(&text));
            }
        }
        ports.sort_unstable();
        ports.dedup();
        any.then_some(ports)
    }

    /// Which of `paths` (tmpfs mount points in process `pid`'s mount
    /// namespace) hold any entry, read through `<proc>/<pid>/root`.
    pub(super) fn tmpfs_holding_files(&self, pid: u32, paths: &[String]) -> Result<Vec<String>, String> {
        let root = self.proc.join(pid.to_string()).join("root");
        let mut holding = Vec::new();
        for path in paths {
            let dir = root.join(path.trim_start_matches('/'));
            let mut entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            if entries.next().is_some() {
                holding.push(path.clone());
            }
        }
        Ok(holding)
    }

    /// A sleeper's count from its own namespace: the bytes received there
    /// (towards it; see [`activity::host_net_dev`]).
    pub(super) fn net_bytes(&self, pid: u32) -> Option<u64> {
        activity::net_bytes_received(&self.proc, pid).ok()
    }

    /// A running container's counters now: CPU from its cgroup, and network
    /// bytes when its network is its own (a host or shared network's
    /// counters are not, and count as 0). `at` is when it counts as taken.
    pub(super) fn sample(
        &self,
        id: &str,
        pid: Option<u32>,
        own_network: bool,
        at: std::time::Instant,
    ) -> Result<Sample, ActivityError> {
        let pid = pid.ok_or(ActivityError::NoProcess)?;
        let cgroup = self.cgroup(id, Some(pid)).map_err(ActivityError::Cgroup)?;
        if own_network {
            return Sample::read(&self.proc, pid, &cgroup, at);
        }
        Ok(Sample {
            at,
            net_bytes: 0,
            cpu_nanos: cgroup.cpu_usage_nanos().map_err(ActivityError::Cpu)?,
        })
    }

    /// A sleeper's unicast IP bytes received, from its own namespace (see
    /// [`activity::unicast_bytes_received`]).
    pub(super) fn unicast_bytes(&self, pid: u32) -> Option<u64> {
        activity::unicast_bytes_received(&self.proc, pid).ok()
    }

    /// Where a container falling asleep has its traffic counted, the count
    /// now, and its unicast bytes now: the host ends of its veth pairs when
    /// they can be found, else its own namespace's table.
    pub(super) fn sleep_counters(&self, pid: u32) -> SleepCounters {
        let unicast = self.unicast_bytes(pid);
        if let Some(peers) = activity::host_peers(&self.proc, &self.sys_class_net(), pid) {
            if let Some(bytes) = activity::host_net_dev(&self.proc)
                .ok()
                .and_then(|table| sum_peers(&table, &peers))
            {
                return (Some(peers.into()), Some(bytes), unicast);
            }
        }
        (None, self.net_bytes(pid), unicast)
    }

    /// Puts back the limits a squeeze saved; failures are logged.
    pub(super) fn restore_limits(&self, id: &str, pid: u32, limits: &SavedLimits) {
        match self.cgroup(id, Some(pid)) {
            Ok(cg) => {
                if let Err(e) = cg.restore(limits) {
                    tracing::warn!(id, error = %e, "could not restore memory limits");
                }
            }
            Err(e) => tracing::warn!(id, error = %e, "cgroup not found; memory limits not restored"),
        }
    }
}

impl Lifecycle {
    /// Runs `work` on the host's files on the blocking pool (tracked):
    /// procfs, sysfs and cgroupfs reads and writes are blocking system
    /// calls, and the runtime thread serves requests. `None` only when the
    /// work panicked.
    pub(super) async fn on_host<T: Send + 'static>(
        &self,
        work: impl FnOnce(&HostPaths) -> T + Send + 'static,
    ) -> Option<T> {
        let this = self.clone();
        let task = self.inner.tasks.spawn_blocking(move || work(&this.inner.host));
        match task.await {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::warn!(error = %e, "lifecycle: host read failed");
                None
            }
        }
    }

    /// [`HostPaths::restore_limits`] on the blocking pool.
    pub(super) async fn restore_limits(&self, id: &str, pid: u32, limits: SavedLimits) {
        let id = id.to_string();
        self.on_host(move |host| host.restore_limits(&id, pid, &limits)).await;
    }

    /// [`HostPaths::sleep_counters`] on the blocking pool: finding the veth
    /// peers reads two files per host interface, which with hundreds of
    /// containers must not stall the thread that serves requests.
    pub(super) async fn sleep_counters(&self, pid: u32) -> SleepCounters {
        self.on_host(move |host| host.sleep_counters(pid))
            .await
            .unwrap_or((None, None, None))
    }
}

/// A sleeper's counters: where its bytes are counted (veth peers, or
/// `None`: its own table), those bytes, and its unicast IP bytes.
pub(super) type SleepCounters = (Option<Arc<[String]>>, Option<u64>, Option<u64>);

/// The bytes of `peers` in a host interface table; `None` when one is gone.
pub(super) fn sum_peers(table: &HashMap<String, u64>, peers: &[String]) -> Option<u64> {
    peers
        .iter()
        .try_fold(0u64, |total, peer| Some(total.saturating_add(*table.get(peer)?)))
}

/// `MemTotal`, `MemAvailable`, `SwapTotal` and `SwapFree` of a
/// `/proc/meminfo` (kB there, bytes here).
/// The local ports of the sockets in state LISTEN (`0A`) in a `net/tcp`
/// or `net/tcp6` table.
pub(super) fn parse_listening(text: &str) -> Vec<u16> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            let (address, port) = local.rsplit_once(':')?;
            // Docker's embedded DNS (127.0.0.11) listens in every user
            // network's namespace: not the container's own.
            if state != "0A" || address == "0B00007F" {
                return None;
            }
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

fn parse_meminfo(text: &str) -> HostSample {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib.saturating_mul(1024))
        })
    };
    HostSample {
        memory_total_bytes: field("MemTotal"),
        memory_available_bytes: field("MemAvailable"),
        swap_total_bytes: field("SwapTotal"),
        swap_free_bytes: field("SwapFree"),
        load1: None,
        cpus: None,
    }
}

/// The `cpuN` lines of a `/proc/stat`: the CPUs online.
fn count_cpus(text: &str) -> u64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count() as u64
}

#[cfg(test)]
mod host_sample_tests {
    use super::*;

    #[test]
    fn listening_ports_are_the_listen_state_only() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n\
   2: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000    33        0 3 1 0 100 0 0 10 0\n\
   3: 0B00007F:A2BF 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0\n";
        assert_eq!(parse_listening(tcp), vec![80, 8000]);
        let tcp6 = "  sl  local_address                         remote_address                        st\n\
   0: 00000000000000000000000000000000:18EB 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(parse_listening(tcp6), vec![6379]);
        assert!(parse_listening("header only\n").is_empty());
    }

    #[test]
    fn meminfo_and_cpus() {
        let meminfo =
            "MemTotal:       24683584 kB\nMemFree:  1 kB\nMemAvailable:   23111708 kB\nSwapTotal:             0 kB\n";
        let sample = parse_meminfo(meminfo);
        assert_eq!(sample.memory_total_bytes, Some(24683584 * 1024));
        assert_eq!(sample.memory_available_bytes, Some(23111708 * 1024));
        assert_eq!(sample.swap_total_bytes, Some(0));
        assert_eq!(sample.swap_free_bytes, None);
        let stat = "cpu  1 2 3\ncpu0 1 2 3\ncpu1 1 2 3\nintr 5\ncpufreq x\n";
        assert_eq!(count_cpus(stat), 2);
    }
}
