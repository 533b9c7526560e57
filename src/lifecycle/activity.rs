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

use super::cgroup::{CgroupError, ContainerCgroup};

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
    #[error("cgroup: {0}")]
    Cgroup(#[source] CgroupError),
    #[error("no init process known")]
    NoProcess,
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
    /// The counters could not be read: a container is never judged idle
    /// (and put to sleep) on missing data.
    Unreadable,
}

/// The verdict on one tick of a container: from its previous sample and
/// the reading taken now (`None`: it could not be read). An unreadable
/// reading is busy; the first reading (no previous one) has no verdict.
/// Arguments as [`judge`].
pub fn verdict(
    prev: Option<&Sample>,
    now: Option<&Sample>,
    cpu_limit_cores: f64,
    idle_threshold: f64,
    network_idle_rate_bytes_per_sec: u64,
) -> Option<Activity> {
    let Some(now) = now else {
        return Some(Activity::Busy {
            reason: BusyReason::Unreadable,
        });
    };
    Some(judge(
        prev?,
        now,
        cpu_limit_cores,
        idle_threshold,
        network_idle_rate_bytes_per_sec,
    ))
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

/// Reads and parses a `/proc/net/dev` table, each interface's two
/// directions together; errors name the file.
fn read_net_dev(path: &Path) -> Result<Vec<(String, u64)>, ActivityError> {
    Ok(read_directions(path)?
        .into_iter()
        .map(|(name, received, sent)| (name, received.saturating_add(sent)))
        .collect())
}

/// Sums the bytes columns of a `/proc/net/dev` table, skipping `lo`. On error,
/// returns the 1-based line number and the line.
///
/// ```text
/// Inter-|   Receive                                   |  Transmit
///  face |bytes    packets errs drop fifo frame compressed multicast|bytes ...
///   eth0:     806       9    0    0    0     0          0         0    1234 ...
/// ```
#[cfg(test)]
pub fn parse_net_dev(text: &str) -> Result<u64, (usize, String)> {
    Ok(parse_net_dev_directions(text)?
        .iter()
        .fold(0u64, |total, (_, received, sent)| {
            total.saturating_add(*received).saturating_add(*sent)
        }))
}

/// Each interface of a `/proc/net/dev` table but `lo`, with its bytes
/// received plus sent. Errors as [`parse_net_dev`].
#[cfg(test)]
pub fn parse_net_dev_interfaces(text: &str) -> Result<Vec<(String, u64)>, (usize, String)> {
    Ok(parse_net_dev_directions(text)?
        .into_iter()
        .map(|(name, received, sent)| (name, received.saturating_add(sent)))
        .collect())
}

/// One interface's name, bytes received and bytes sent.
pub type Directions = (String, u64, u64);

/// Each interface of a `/proc/net/dev` table but `lo`, with its bytes
/// received and its bytes sent, apart. Errors as [`parse_net_dev`].
pub fn parse_net_dev_directions(text: &str) -> Result<Vec<Directions>, (usize, String)> {
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
        interfaces.push((interface.to_string(), received, sent));
    }
    Ok(interfaces)
}

/// The host's interface table (`<proc_root>/self/net/dev`: the shim's own
/// network namespace, where dockerd puts the host ends of its veth pairs),
/// as interface name → bytes **sent** by the host end, which is what
/// travels towards the container. One read serves every sleeper, where
/// reading each container's own table costs one read each.
///
/// Only that direction counts for a sleeper: a frozen container's kernel
/// still sends its own chatter (IPv6 duplicate address detection, router
/// solicitations, MLD reports, for seconds after its interface came up),
/// which a client never causes and which woke fresh sleepers.
pub fn host_net_dev(proc_root: &Path) -> Result<HashMap<String, u64>, ActivityError> {
    Ok(read_directions(&proc_root.join("self").join("net").join("dev"))?
        .into_iter()
        .map(|(name, _received, sent)| (name, sent))
        .collect())
}

/// Bytes **received** in the network namespace of process `pid` (every
/// interface but `lo`): what travelled towards the container, the one
/// direction that counts for a sleeper (see [`host_net_dev`]).
pub fn net_bytes_received(proc_root: &Path, pid: u32) -> Result<u64, ActivityError> {
    Ok(
        read_directions(&proc_root.join(pid.to_string()).join("net").join("dev"))?
            .iter()
            .fold(0u64, |total, (_, received, _)| total.saturating_add(*received)),
    )
}

/// Unicast IP bytes received in the network namespace of process `pid`:
/// what a client sends to the container, without the multicast and
/// broadcast a bridge floods to every port (IPv6 neighbour discovery,
/// router solicitations and MLD reports of a new neighbour, mDNS, DHCP).
/// Read from the namespace's own IP counters (`net/netstat` `IpExt`, and
/// `net/snmp6` when the kernel has IPv6). ARP is not IP and is never counted.
pub fn unicast_bytes_received(proc_root: &Path, pid: u32) -> Result<u64, ActivityError> {
    let net = proc_root.join(pid.to_string()).join("net");
    let read = |name: &str| {
        let path = net.join(name);
        std::fs::read_to_string(&path).map_err(|source| ActivityError::Read { path, source })
    };
    let netstat = read("netstat")?;
    // No `snmp6` when the kernel has no IPv6.
    let snmp6 = read("snmp6").ok();
    unicast_in_octets(&netstat, snmp6.as_deref()).ok_or_else(|| ActivityError::Parse {
        path: net.join("netstat"),
        line: 0,
        text: "no IpExt InOctets, InMcastOctets and InBcastOctets".to_string(),
    })
}

/// Unicast IP bytes received, from a namespace's `net/netstat` and
/// `net/snmp6` texts: IPv4 `InOctets - InMcastOctets - InBcastOctets`, plus
/// IPv6 `Ip6InOctets - Ip6InMcastOctets` unless the namespace discards every
/// IPv6 packet it receives (`disable_ipv6`: the kernel counts their bytes in
/// `Ip6InOctets` before it drops them, multicast included, and no client
/// can reach it over IPv6 then). `None` when the IPv4 counters are missing.
pub fn unicast_in_octets(netstat: &str, snmp6: Option<&str>) -> Option<u64> {
    let ip_ext = netstat_section(netstat, "IpExt")?;
    let v4 = ip_ext
        .get("InOctets")?
        .saturating_sub(*ip_ext.get("InMcastOctets")?)
        .saturating_sub(*ip_ext.get("InBcastOctets")?);
    let v6 = snmp6.map_or(0, |text| {
        let value = |key: &str| {
            text.lines().find_map(|line| {
                let (name, number) = line.split_once(char::is_whitespace)?;
                (name == key).then(|| number.trim().parse::<u64>().ok()).flatten()
            })
        };
        let all_discarded = value("Ip6InReceives").unwrap_or(0) <= value("Ip6InDiscards").unwrap_or(0);
        if all_discarded {
            0
        } else {
            value("Ip6InOctets")
                .unwrap_or(0)
                .saturating_sub(value("Ip6InMcastOctets").unwrap_or(0))
        }
    });
    Some(v4.saturating_add(v6))
}

/// One section of a `net/netstat` or `net/snmp` text (a line of names, then
/// a line of numbers, both starting `Section:`), as name → value.
fn netstat_section(text: &str, section: &str) -> Option<HashMap<String, u64>> {
    let prefix = format!("{section}:");
    let mut lines = text.lines().filter(|line| line.starts_with(&prefix));
    let names = lines.next()?[prefix.len()..].split_whitespace();
    let values = lines.next()?[prefix.len()..].split_whitespace();
    Some(
        names
            .zip(values)
            .filter_map(|(name, value)| Some((name.to_string(), value.parse().ok()?)))
            .collect(),
    )
}

/// [`read_net_dev`] with the two directions apart.
fn read_directions(path: &Path) -> Result<Vec<Directions>, ActivityError> {
    let text = std::fs::read_to_string(path).map_err(|source| ActivityError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_net_dev_directions(&text).map_err(|(line, text)| ActivityError::Parse {
        path: path.to_path_buf(),
        line,
        text,
    })
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
mod tests;
