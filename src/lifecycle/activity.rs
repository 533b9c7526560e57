//! Activity sampling for idle detection: a container's network bytes and CPU
//! time, sampled now and then, and a pure judgement on two samples.
//!
//! - **Network**: `/proc/<pid>/net/dev` of the container's init process shows
//!   the interfaces of its network namespace, which is the container's. We sum
//!   received and sent bytes over every interface but `lo`. It reads the same
//!   for a paused container. A container on the host network (`--network
//!   host`) shows the host's interfaces: callers should not sample those.
//! - **CPU**: the cgroup's CPU time, from [`ContainerCgroup::cpu_usage_nanos`].
//!
//! Steady chatter below `network_idle_rate_bytes_per_sec` and CPU below
//! `idle_threshold` of the limit count as idle, so that keep-alives and
//! housekeeping do not keep a container awake forever.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cgroup::ContainerCgroup;

/// Rates over an interval shorter than this are computed as if it were this
/// long, so that two samples taken at the same instant do not divide by zero.
const MIN_INTERVAL_SECS: f64 = 0.001;

/// Why a sample could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: line {line}: cannot parse {text:?}")]
    Parse { path: PathBuf, line: usize, text: String },
    #[error("cpu usage: {0}")]
    Cpu(#[source] io::Error),
}

/// A container's counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub at: Instant,
    /// Bytes received plus sent over every interface but `lo`.
    pub net_bytes: u64,
    /// CPU time used by the container's tasks since its cgroup was created.
    pub cpu_nanos: u64,
}

impl Sample {
    /// Reads both counters of the container whose init process is `pid`.
    pub fn read(proc_root: &Path, pid: u32, cgroup: &ContainerCgroup, at: Instant) -> Result<Sample, ActivityError> {
        Ok(Sample {
            at,
            net_bytes: net_bytes(proc_root, pid)?,
            cpu_nanos: cgroup.cpu_usage_nanos().map_err(ActivityError::Cpu)?,
        })
    }
}

/// What an interval between two samples looked like.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activity {
    Idle,
    Busy { reason: BusyReason },
}

impl Activity {
    pub fn is_busy(&self) -> bool {
        matches!(self, Activity::Busy { .. })
    }
}

/// Why an interval counts as busy. When several apply, the first in this
/// order is given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BusyReason {
    /// A counter went backwards: the container restarted (new cgroup, new
    /// network namespace). A restart is activity, and the next interval is
    /// judged from the new counters.
    CounterReset,
    /// Bytes in plus out per second, above the idle rate.
    Network { rate: u64 },
    /// CPU used as a fraction of the container's CPU limit, above the idle
    /// threshold.
    Cpu { fraction: f64 },
}

/// Judges the interval from `prev` to `now`.
///
/// - `cpu_limit_cores`: the container's CPU limit in cores, or the host's
///   core count when it has none; anything not positive counts as one core.
/// - `idle_threshold`: the CPU fraction of that limit at or below which the
///   container is idle (`0.1` = 10%).
/// - `network_idle_rate_bytes_per_sec`: traffic at or below this rate is
///   background chatter; `0` makes any byte activity.
pub fn judge(
    prev: &Sample,
    now: &Sample,
    cpu_limit_cores: f64,
    idle_threshold: f64,
    network_idle_rate_bytes_per_sec: u64,
) -> Activity {
    if now.net_bytes < prev.net_bytes || now.cpu_nanos < prev.cpu_nanos {
        return Activity::Busy {
            reason: BusyReason::CounterReset,
        };
    }
    let seconds = now
        .at
        .saturating_duration_since(prev.at)
        .as_secs_f64()
        .max(MIN_INTERVAL_SECS);

    let net_rate = (now.net_bytes - prev.net_bytes) as f64 / seconds;
    if net_rate > network_idle_rate_bytes_per_sec as f64 {
        return Activity::Busy {
            reason: BusyReason::Network {
                rate: net_rate.round() as u64,
            },
        };
    }

    let cores = if cpu_limit_cores.is_finite() && cpu_limit_cores > 0.0 {
        cpu_limit_cores
    } else {
        1.0
    };
    let cpu_seconds = (now.cpu_nanos - prev.cpu_nanos) as f64 / 1e9;
    let fraction = cpu_seconds / (seconds * cores);
    if fraction > idle_threshold {
        return Activity::Busy {
            reason: BusyReason::Cpu { fraction },
        };
    }
    Activity::Idle
}

/// Bytes received plus sent by the network namespace of process `pid`, over
/// every interface but `lo`.
pub fn net_bytes(proc_root: &Path, pid: u32) -> Result<u64, ActivityError> {
    Ok(total(&read_net_dev(
        &proc_root.join(pid.to_string()).join("net").join("dev"),
    )?))
}

/// The bytes of every interface listed, together.
fn total(interfaces: &[(String, u64)]) -> u64 {
    interfaces
        .iter()
        .fold(0u64, |total, (_, bytes)| total.saturating_add(*bytes))
}

/// Reads and parses a `/proc/net/dev` table; errors name the file.
fn read_net_dev(path: &Path) -> Result<Vec<(String, u64)>, ActivityError> {
    let text = std::fs::read_to_string(path).map_err(|source| ActivityError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_net_dev_interfaces(&text).map_err(|(line, text)| ActivityError::Parse {
        path: path.to_path_buf(),
        line,
        text,
    })
}

/// Sums the bytes columns of a `/proc/net/dev` table, skipping `lo`. On error,
/// returns the 1-based line number and the line.
///
/// ```text
/// Inter-|   Receive                                   |  Transmit
///  face |bytes    packets errs drop fifo frame compressed multicast|bytes ...
///   eth0:     806       9    0    0    0     0          0         0    1234 ...
/// ```
pub fn parse_net_dev(text: &str) -> Result<u64, (usize, String)> {
    Ok(total(&parse_net_dev_interfaces(text)?))
}

/// Each interface of a `/proc/net/dev` table but `lo`, with its bytes
/// received plus sent. Errors as [`parse_net_dev`].
pub fn parse_net_dev_interfaces(text: &str) -> Result<Vec<(String, u64)>, (usize, String)> {
    let mut interfaces = Vec::new();
    // Two header lines, then one line per interface.
    for (index, line) in text.lines().enumerate().skip(2) {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || (index + 1, line.to_string());
        // Old kernels print `eth0:123` with no space once the number is wide.
        let (interface, counters) = line.split_once(':').ok_or_else(bad)?;
        let interface = interface.trim();
        if interface == "lo" {
            continue;
        }
        let mut fields = counters.split_whitespace();
        // Receive has 8 columns; transmit bytes is the 9th.
        let (Some(received), Some(sent)) = (fields.next(), fields.nth(7)) else {
            return Err(bad());
        };
        let received: u64 = received.parse().map_err(|_| bad())?;
        let sent: u64 = sent.parse().map_err(|_| bad())?;
        interfaces.push((interface.to_string(), received.saturating_add(sent)));
    }
    Ok(interfaces)
}

/// The host's interface table (`<proc_root>/self/net/dev`: the shim's own
/// network namespace, where dockerd puts the host ends of its veth pairs),
/// as interface name → bytes received plus sent. One read serves every
/// sleeper, where reading each container's own table costs one read each.
pub fn host_net_dev(proc_root: &Path) -> Result<HashMap<String, u64>, ActivityError> {
    Ok(read_net_dev(&proc_root.join("self").join("net").join("dev"))?
        .into_iter()
        .collect())
}

/// The host-side names of a container's network interfaces: for each
/// interface in its namespace but `lo` (listed in the container's own
/// `/sys/class/net`, under `<proc_root>/<pid>/root`), the host interface
/// that is its veth peer, found in `host_sys_net` (`/sys/class/net`). A pair
/// is checked both ways (the host end's index is the container end's
/// `iflink` and the other way round), so a macvlan or ipvlan interface,
/// whose parent is a host NIC carrying everyone's traffic, is not taken for
/// one.
///
/// `None` when any interface has no such peer, or the files cannot be read:
/// the caller then reads the container's own table.
pub fn host_peers(proc_root: &Path, host_sys_net: &Path, pid: u32) -> Option<Vec<String>> {
    let container_net = proc_root.join(pid.to_string()).join("root/sys/class/net");
    let mut wanted = Vec::new();
    for entry in std::fs::read_dir(&container_net).ok()? {
        let entry = entry.ok()?;
        if entry.file_name() == "lo" {
            continue;
        }
        let (index, link) = link_pair(&entry.path())?;
        wanted.push((index, link));
    }
    let mut peers = Vec::with_capacity(wanted.len());
    if wanted.is_empty() {
        return Some(peers);
    }
    for entry in std::fs::read_dir(host_sys_net).ok()? {
        let Ok(entry) = entry else { continue };
        let Some((index, link)) = link_pair(&entry.path()) else {
            continue;
        };
        if wanted.contains(&(link, index)) {
            peers.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    (peers.len() == wanted.len()).then_some(peers)
}

/// An interface's `(ifindex, iflink)` from its `/sys/class/net` folder.
fn link_pair(dir: &Path) -> Option<(u64, u64)> {
    let read = |name: &str| -> Option<u64> { std::fs::read_to_string(dir.join(name)).ok()?.trim().parse().ok() };
    Some((read("ifindex")?, read("iflink")?))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n \
        face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

    #[test]
    fn sums_every_interface_but_lo() {
        let text = format!(
            "{HEADER}    lo:  999999      10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0\n  \
             eth0:     806       9    0    0    0     0          0         0     1234      12    0    0    0     0       0          0\n  \
             eth1:12345678901 9    0    0    0     0          0         0       10       1    0    0    0     0       0          0\n"
        );
        assert_eq!(parse_net_dev(&text), Ok(806 + 1234 + 12345678901 + 10));
    }

    #[test]
    fn no_interfaces_is_zero() {
        assert_eq!(parse_net_dev(HEADER), Ok(0));
        let only_lo = format!("{HEADER}    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n");
        assert_eq!(parse_net_dev(&only_lo), Ok(0));
    }

    #[test]
    fn bad_lines_are_named() {
        let text = format!("{HEADER}  eth0: 1 2 3\n");
        assert_eq!(parse_net_dev(&text), Err((3, "  eth0: 1 2 3".to_string())));
        let text = format!("{HEADER}  eth0 1 2 3 4 5 6 7 8 9\n");
        assert_eq!(parse_net_dev(&text).unwrap_err().0, 3);
        let text = format!("{HEADER}  eth0: x 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n");
        assert_eq!(parse_net_dev(&text).unwrap_err().0, 3);
    }

    #[test]
    fn interfaces_are_listed_with_their_bytes() {
        let text = format!(
            "{HEADER}    lo: 9 1 0 0 0 0 0 0 9 1 0 0 0 0 0 0\n  \
             veth1a2b: 100 1 0 0 0 0 0 0 50 1 0 0 0 0 0 0\n  \
             docker0:7 1 0 0 0 0 0 0 3 1 0 0 0 0 0 0\n"
        );
        assert_eq!(
            parse_net_dev_interfaces(&text),
            Ok(vec![("veth1a2b".to_string(), 150), ("docker0".to_string(), 10)])
        );
    }

    fn put_link(dir: &Path, name: &str, index: u64, link: u64) {
        let path = dir.join(name);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("ifindex"), format!("{index}\n")).unwrap();
        std::fs::write(path.join("iflink"), format!("{link}\n")).unwrap();
    }

    #[test]
    fn host_peers_pairs_veths_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path().join("proc");
        let inside = proc_root.join("42/root/sys/class/net");
        let host = dir.path().join("sys/class/net");
        put_link(&inside, "lo", 1, 1);
        put_link(&inside, "eth0", 3338, 3339);
        put_link(&inside, "eth1", 17, 18);
        put_link(&host, "lo", 1, 1);
        put_link(&host, "eth0", 4, 4);
        put_link(&host, "veth58038ce", 3339, 3338);
        put_link(&host, "vethb0b0", 18, 17);
        // Same host index, but its peer is some other container's end.
        put_link(&host, "vethother", 99, 3338);
        let mut peers = host_peers(&proc_root, &host, 42).unwrap();
        peers.sort();
        assert_eq!(peers, vec!["veth58038ce".to_string(), "vethb0b0".to_string()]);

        // A macvlan child: its parent is a NIC whose iflink is itself.
        let proc2 = dir.path().join("proc2");
        put_link(&proc2.join("7/root/sys/class/net"), "eth0", 2, 4);
        assert_eq!(host_peers(&proc2, &host, 7), None);

        // Only lo: nothing to watch, which is not a failure.
        let proc3 = dir.path().join("proc3");
        put_link(&proc3.join("8/root/sys/class/net"), "lo", 1, 1);
        assert_eq!(host_peers(&proc3, &host, 8), Some(vec![]));

        // No sysfs in the container: unknown.
        assert_eq!(host_peers(&proc_root, &host, 43), None);
    }

    #[test]
    fn host_net_dev_reads_the_shims_table() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("self/net");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(
            net.join("dev"),
            format!("{HEADER}  veth1: 100 0 0 0 0 0 0 0 50 0 0 0 0 0 0 0\n"),
        )
        .unwrap();
        let table = host_net_dev(dir.path()).unwrap();
        assert_eq!(table.get("veth1"), Some(&150));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn net_bytes_reads_the_pids_table() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("42/net");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(
            net.join("dev"),
            format!("{HEADER}  eth0: 100 0 0 0 0 0 0 0 50 0 0 0 0 0 0 0\n"),
        )
        .unwrap();
        assert_eq!(net_bytes(dir.path(), 42).unwrap(), 150);

        let error = net_bytes(dir.path(), 43).unwrap_err();
        assert!(matches!(error, ActivityError::Read { .. }));
        assert!(error.to_string().contains("43/net/dev"), "{error}");

        std::fs::write(net.join("dev"), format!("{HEADER}  eth0: 1\n")).unwrap();
        let error = net_bytes(dir.path(), 42).unwrap_err();
        assert!(error.to_string().contains("42/net/dev: line 3"), "{error}");
    }

    #[test]
    fn sample_reads_net_and_cpu() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let root = dir.path().join("cgroup");
        let memory = root.join("memory/docker").join(id);
        let cpuacct = root.join("cpuacct/docker").join(id);
        std::fs::create_dir_all(&memory).unwrap();
        std::fs::create_dir_all(&cpuacct).unwrap();
        std::fs::write(cpuacct.join("cpuacct.usage"), "777\n").unwrap();
        let net = dir.path().join("proc/42/net");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(
            net.join("dev"),
            format!("{HEADER}  eth0: 100 0 0 0 0 0 0 0 50 0 0 0 0 0 0 0\n"),
        )
        .unwrap();

        let cgroup = ContainerCgroup::for_id(&root, id).unwrap();
        let at = Instant::now();
        let sample = Sample::read(&dir.path().join("proc"), 42, &cgroup, at).unwrap();
        assert_eq!(
            sample,
            Sample {
                at,
                net_bytes: 150,
                cpu_nanos: 777
            }
        );
        std::fs::remove_file(cpuacct.join("cpuacct.usage")).unwrap();
        let error = Sample::read(&dir.path().join("proc"), 42, &cgroup, at).unwrap_err();
        assert!(matches!(error, ActivityError::Cpu(_)), "{error}");
    }

    /// One row: seconds between samples, net bytes and CPU ms in the
    /// interval, the CPU limit in cores, and the expected verdict.
    struct Case {
        name: &'static str,
        seconds: f64,
        net_delta: u64,
        cpu_ms: u64,
        cores: f64,
        expect: Activity,
    }

    const THRESHOLD: f64 = 0.1;
    const NET_IDLE_RATE: u64 = 1024;

    fn busy(reason: BusyReason) -> Activity {
        Activity::Busy { reason }
    }

    #[test]
    fn judge_table() {
        let cases = [
            Case {
                name: "nothing at all",
                seconds: 10.0,
                net_delta: 0,
                cpu_ms: 0,
                cores: 1.0,
                expect: Activity::Idle,
            },
            Case {
                name: "chatter at the idle rate",
                seconds: 10.0,
                net_delta: 10 * 1024,
                cpu_ms: 0,
                cores: 1.0,
                expect: Activity::Idle,
            },
            Case {
                name: "traffic just above the idle rate",
                seconds: 10.0,
                net_delta: 10 * 1024 + 10,
                cpu_ms: 0,
                cores: 1.0,
                expect: busy(BusyReason::Network { rate: 1025 }),
            },
            Case {
                name: "a download",
                seconds: 5.0,
                net_delta: 50 << 20,
                cpu_ms: 2000,
                cores: 1.0,
                expect: busy(BusyReason::Network { rate: 10 << 20 }),
            },
            Case {
                name: "cpu at the threshold",
                seconds: 10.0,
                net_delta: 0,
                cpu_ms: 1000,
                cores: 1.0,
                expect: Activity::Idle,
            },
            Case {
                name: "cpu above the threshold",
                seconds: 10.0,
                net_delta: 0,
                cpu_ms: 2500,
                cores: 1.0,
                expect: busy(BusyReason::Cpu { fraction: 0.25 }),
            },
            Case {
                name: "the same cpu is idle for a 4-core limit",
                seconds: 10.0,
                net_delta: 0,
                cpu_ms: 2500,
                cores: 4.0,
                expect: Activity::Idle,
            },
            Case {
                name: "a half-core limit doubles the fraction",
                seconds: 10.0,
                net_delta: 0,
                cpu_ms: 600,
                cores: 0.5,
                expect: busy(BusyReason::Cpu { fraction: 0.12 }),
            },
            Case {
                name: "no limit counts as one core",
                seconds: 10.0,
                net_delta: 0,
                cpu_ms: 2000,
                cores: 0.0,
                expect: busy(BusyReason::Cpu { fraction: 0.2 }),
            },
            Case {
                name: "a NaN limit counts as one core",
                seconds: 10.0,
                net_delta: 0,
                cpu_ms: 500,
                cores: f64::NAN,
                expect: Activity::Idle,
            },
            Case {
                name: "same instant, no change",
                seconds: 0.0,
                net_delta: 0,
                cpu_ms: 0,
                cores: 1.0,
                expect: Activity::Idle,
            },
            Case {
                name: "same instant, traffic",
                seconds: 0.0,
                net_delta: 2,
                cpu_ms: 0,
                cores: 1.0,
                expect: busy(BusyReason::Network { rate: 2000 }),
            },
        ];
        let start = Instant::now();
        for case in cases {
            let prev = Sample {
                at: start,
                net_bytes: 1_000_000,
                cpu_nanos: 5_000_000_000,
            };
            let now = Sample {
                at: start + Duration::from_secs_f64(case.seconds),
                net_bytes: prev.net_bytes + case.net_delta,
                cpu_nanos: prev.cpu_nanos + case.cpu_ms * 1_000_000,
            };
            let verdict = judge(&prev, &now, case.cores, THRESHOLD, NET_IDLE_RATE);
            match (verdict, case.expect) {
                (
                    Activity::Busy {
                        reason: BusyReason::Cpu { fraction: got },
                    },
                    Activity::Busy {
                        reason: BusyReason::Cpu { fraction: want },
                    },
                ) => assert!((got - want).abs() < 1e-9, "{}: {got} != {want}", case.name),
                (got, want) => assert_eq!(got, want, "{}", case.name),
            }
            assert_eq!(verdict.is_busy(), case.expect.is_busy(), "{}", case.name);
        }
    }

    #[test]
    fn counters_going_backwards_are_a_reset() {
        let start = Instant::now();
        let prev = Sample {
            at: start,
            net_bytes: 5000,
            cpu_nanos: 9_000_000_000,
        };
        let after = start + Duration::from_secs(10);
        for now in [
            Sample {
                at: after,
                net_bytes: 10,
                cpu_nanos: 9_000_000_000,
            },
            Sample {
                at: after,
                net_bytes: 5000,
                cpu_nanos: 1_000,
            },
        ] {
            assert_eq!(
                judge(&prev, &now, 1.0, THRESHOLD, NET_IDLE_RATE),
                busy(BusyReason::CounterReset)
            );
        }
    }

    #[test]
    fn zero_idle_rate_makes_any_byte_activity() {
        let start = Instant::now();
        let prev = Sample {
            at: start,
            net_bytes: 0,
            cpu_nanos: 0,
        };
        let now = Sample {
            at: start + Duration::from_secs(60),
            net_bytes: 1,
            cpu_nanos: 0,
        };
        assert!(judge(&prev, &now, 1.0, THRESHOLD, 0).is_busy());
        assert!(!judge(&prev, &now, 1.0, THRESHOLD, 1).is_busy());
    }

    #[test]
    fn network_is_reported_before_cpu() {
        let start = Instant::now();
        let prev = Sample {
            at: start,
            net_bytes: 0,
            cpu_nanos: 0,
        };
        let now = Sample {
            at: start + Duration::from_secs(1),
            net_bytes: 1 << 20,
            cpu_nanos: 1_000_000_000,
        };
        assert_eq!(
            judge(&prev, &now, 1.0, THRESHOLD, NET_IDLE_RATE),
            busy(BusyReason::Network { rate: 1 << 20 })
        );
    }
}
