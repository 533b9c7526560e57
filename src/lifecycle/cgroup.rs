//! The cgroup v1/v2 seam: find a container's cgroup, read its memory and CPU
//! counters, and squeeze a frozen container's memory out to swap.
//!
//! Every entry point takes the cgroup root (normally `/sys/fs/cgroup`) and the
//! proc root (normally `/proc`) as paths, so the tests run against a fake
//! sysfs in a temporary directory.
//!
//! Layouts this module knows:
//! - **v1**, one hierarchy per controller (Docker's cgroupfs driver, also on
//!   hybrid systems): `<root>/memory/docker/<id>/memory.limit_in_bytes`,
//!   `<root>/cpuacct/docker/<id>/cpuacct.usage` (or `cpu,cpuacct`),
//!   `<root>/freezer/docker/<id>/freezer.state`; with the systemd driver the
//!   leaf is `system.slice/docker-<id>.scope` instead of `docker/<id>`.
//! - **v2**, one unified tree: `<root>/system.slice/docker-<id>.scope/` with
//!   the systemd driver, `<root>/docker/<id>/` with cgroupfs; `memory.current`,
//!   `memory.high`, `memory.reclaim` (kernel ≥ 5.19), `cpu.stat`.
//!
//! Everything here is blocking file I/O on a pseudo-filesystem. A squeeze
//! blocks for as long as the kernel takes to reclaim (tens of milliseconds per
//! 100 MiB), so async callers run it under `spawn_blocking`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How many limit writes (v1, v2 `memory.high`) or reclaim requests (v2
/// `memory.reclaim`) a squeeze takes to get from the usage to the target. Each
/// step is one bounded chunk of kernel reclaim, and the time limit is checked
/// between steps.
const SQUEEZE_STEPS: u64 = 8;
/// The smallest step, so that squeezing a few MiB is not eight tiny writes.
const SQUEEZE_MIN_STEP: u64 = 4 << 20;
/// Limits are rounded up to this before writing: the kernel rounds a limit
/// down to whole pages, and 64 KiB is a multiple of every common page size.
const LIMIT_GRANULARITY: u64 = 64 << 10;
/// How many times a squeeze retries a step the kernel refused. Pages still
/// being written to swap cannot be freed until the write completes, so the
/// kernel can refuse a step and accept it a moment later: measured here, a
/// 200 MiB squeeze was refused at 16 MiB and went to 8 MiB on a second try.
const SQUEEZE_RETRIES: u32 = 3;
/// The pause before retrying a refused step, for that writeback to finish.
const SQUEEZE_RETRY_PAUSE: Duration = Duration::from_millis(10);

const V1_LIMIT: &str = "memory.limit_in_bytes";
const V1_MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";
const V1_USAGE: &str = "memory.usage_in_bytes";
const V2_CURRENT: &str = "memory.current";
const V2_HIGH: &str = "memory.high";
const V2_RECLAIM: &str = "memory.reclaim";
#[cfg(test)]
const V2_SWAP_CURRENT: &str = "memory.swap.current";

/// Which cgroup hierarchy the host runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    V1,
    V2,
}

impl CgroupVersion {
    /// `<root>/cgroup.controllers` exists only when the unified hierarchy is
    /// mounted at the root. A hybrid system mounts an empty v2 tree at
    /// `<root>/unified` and keeps every controller on v1, so it counts as v1.
    pub fn detect(root: &Path) -> CgroupVersion {
        if root.join("cgroup.controllers").exists() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        }
    }
}

/// Why a container's cgroup could not be found.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: no {controller} entry")]
    NoEntry { path: PathBuf, controller: &'static str },
    /// The process sits in a root cgroup: it is not a container, or we see it
    /// through a cgroup namespace. Never squeeze what that would resolve to.
    #[error("process {pid} is in the root {controller} cgroup, not a container's")]
    RootCgroup { pid: u32, controller: &'static str },
    #[error("not a full container id: {0:?}")]
    InvalidId(String),
    #[error("no cgroup directory for {what} (tried {tried})")]
    NotFound { what: String, tried: String },
}

/// The limits a squeeze changed, to be put back with
/// [`ContainerCgroup::restore`] before the container is thawed. Persisted in
/// the sleep records so that a restarted shim can still restore them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cgroup", rename_all = "snake_case")]
pub enum SavedLimits {
    /// `memory.limit_in_bytes` and, when swap accounting is on,
    /// `memory.memsw.limit_in_bytes`. "Unlimited" reads as
    /// 9223372036854771712, which the kernel accepts back as is.
    V1 {
        memory_limit: u64,
        memsw_limit: Option<u64>,
    },
    /// `memory.high`; `None` is `max`.
    V2 { memory_high: Option<u64> },
}

/// How a squeeze went about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqueezeMethod {
    /// Usage was already at or below the target; nothing was written.
    NotNeeded,
    /// v1: `memory.limit_in_bytes` lowered step by step. `lowest_limit` is the
    /// lowest value the kernel accepted (`None`: it refused even the first).
    V1Limit { lowest_limit: Option<u64> },
    /// v2: `memory.reclaim` asked for `requested` bytes in total.
    V2Reclaim { requested: u64 },
    /// v2 without `memory.reclaim` (kernel < 5.19): `memory.high` lowered step
    /// by step; `lowest_high` is the last value written.
    V2High { lowest_high: Option<u64> },
}

/// Why a squeeze stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqueezeStop {
    /// Every step was accepted: the limit is at the target, or the whole
    /// amount was reclaimed.
    Completed,
    /// The kernel could reclaim no more (v1 `EBUSY`, v2 `EAGAIN`); usually
    /// there is no swap, or the container may not use it.
    KernelRefused,
    /// The time limit ran out between two steps.
    OutOfTime,
    /// The caller asked it to stop (a wake arrived) between two steps.
    Cancelled,
}

/// What a squeeze did, for the logs, the status and the sleep record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqueezeReport {
    /// Put these back with [`ContainerCgroup::restore`] before thawing.
    pub saved: SavedLimits,
    pub method: SqueezeMethod,
    pub stop: SqueezeStop,
    /// Memory usage in bytes before and after (v1 `memory.usage_in_bytes`,
    /// v2 `memory.current`).
    pub before: u64,
    pub after: u64,
    pub reached_target: bool,
    pub elapsed: Duration,
}

/// A breakdown of a cgroup's memory, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg(test)]
pub struct MemoryStat {
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    pub anon: u64,
    /// Page cache, shmem included (v1 `total_cache`, v2 `file`).
    pub file: u64,
    /// Shared memory and tmpfs, also counted in `file`.
    pub shmem: u64,
    /// Swapped out (v1 `total_swap`, v2 `memory.swap.current`); 0 when swap
    /// accounting is off.
    pub swap: u64,
}

/// A freezer's state. `Freezing` that lasts is runc's stuck freeze
/// (runc#2774): time out and report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg(test)]
pub enum FreezerState {
    Thawed,
    Freezing,
    Frozen,
}

/// One container's cgroup directories.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerCgroup {
    version: CgroupVersion,
    /// v1: in the memory hierarchy; v2: the unified directory.
    memory_dir: PathBuf,
    /// v1: in the cpuacct hierarchy; v2: the unified directory.
    cpu_dir: PathBuf,
    /// v1: in the freezer hierarchy; v2: the unified directory.
    freezer_dir: PathBuf,
}

impl ContainerCgroup {
    /// Resolves the cgroup of a container's init process from
    /// `<proc_root>/<pid>/cgroup`. A paused container's init process still
    /// exists, so this works for sleepers too.
    ///
    /// A pid can be reused once its container is gone: prefer
    /// [`ContainerCgroup::resolve`], which checks the result names the
    /// container.
    pub fn for_pid(root: &Path, proc_root: &Path, pid: u32) -> Result<ContainerCgroup, CgroupError> {
        let path = proc_root.join(pid.to_string()).join("cgroup");
        let text = fs::read_to_string(&path).map_err(|source| CgroupError::Read {
            path: path.clone(),
            source,
        })?;
        let entries: Vec<ProcCgroupEntry> = text.lines().filter_map(ProcCgroupEntry::parse).collect();
        let find = |controller: &'static str| -> Result<&ProcCgroupEntry, CgroupError> {
            let entry = entries
                .iter()
                .find(|entry| entry.has_controller(controller))
                .ok_or_else(|| CgroupError::NoEntry {
                    path: path.clone(),
                    controller,
                })?;
            if entry.relative_path().is_empty() {
                return Err(CgroupError::RootCgroup { pid, controller });
            }
            Ok(entry)
        };
        let cgroup = match CgroupVersion::detect(root) {
            CgroupVersion::V2 => {
                // The unified hierarchy's line has id 0 and no controllers.
                let entry = find("")?;
                ContainerCgroup::unified(root.join(entry.relative_path()))
            }
            CgroupVersion::V1 => {
                let memory = find("memory")?;
                let cpuacct = find("cpuacct")?;
                let freezer = find("freezer")?;
                ContainerCgroup {
                    version: CgroupVersion::V1,
                    memory_dir: root.join("memory").join(memory.relative_path()),
                    // `cpu,cpuacct` is the real mount on systemd hosts, with
                    // `cpuacct` a symlink to it; some hosts have only one.
                    cpu_dir: first_existing([
                        root.join(&cpuacct.controllers).join(cpuacct.relative_path()),
                        root.join("cpuacct").join(cpuacct.relative_path()),
                    ]),
                    freezer_dir: root.join("freezer").join(freezer.relative_path()),
                }
            }
        };
        if !cgroup.memory_dir.is_dir() {
            return Err(CgroupError::NotFound {
                what: format!("process {pid}"),
                tried: cgroup.memory_dir.display().to_string(),
            });
        }
        Ok(cgroup)
    }

    /// Finds a container's cgroup from its full 64-character id by trying the
    /// cgroupfs (`docker/<id>`) and systemd (`system.slice/docker-<id>.scope`)
    /// layouts.
    pub fn for_id(root: &Path, id: &str) -> Result<ContainerCgroup, CgroupError> {
        // The id becomes part of a path: refuse anything that is not one.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CgroupError::InvalidId(id.to_string()));
        }
        let version = CgroupVersion::detect(root);
        let leaves = [
            PathBuf::from("docker").join(id),
            PathBuf::from("system.slice").join(format!("docker-{id}.scope")),
        ];
        let mut tried = Vec::new();
        for leaf in &leaves {
            let cgroup = match version {
                CgroupVersion::V2 => ContainerCgroup::unified(root.join(leaf)),
                CgroupVersion::V1 => ContainerCgroup {
                    version,
                    memory_dir: root.join("memory").join(leaf),
                    cpu_dir: first_existing([root.join("cpuacct").join(leaf), root.join("cpu,cpuacct").join(leaf)]),
                    freezer_dir: root.join("freezer").join(leaf),
                },
            };
            if cgroup.memory_dir.is_dir() {
                return Ok(cgroup);
            }
            tried.push(cgroup.memory_dir.display().to_string());
        }
        Err(CgroupError::NotFound {
            what: format!("container {id}"),
            tried: tried.join(", "),
        })
    }

    /// The cgroup of container `id`: from its init process when `pid` is
    /// known and its cgroup path names the container (a reused pid does not),
    /// else from the id alone.
    pub fn resolve(root: &Path, proc_root: &Path, pid: Option<u32>, id: &str) -> Result<ContainerCgroup, CgroupError> {
        if let Some(pid) = pid {
            if let Ok(cgroup) = ContainerCgroup::for_pid(root, proc_root, pid) {
                let names_container = cgroup
                    .memory_dir
                    .file_name()
                    .is_some_and(|leaf| leaf.to_string_lossy().contains(id));
                if !id.is_empty() && names_container {
                    return Ok(cgroup);
                }
            }
        }
        ContainerCgroup::for_id(root, id)
    }

    fn unified(dir: PathBuf) -> ContainerCgroup {
        ContainerCgroup {
            version: CgroupVersion::V2,
            memory_dir: dir.clone(),
            cpu_dir: dir.clone(),
            freezer_dir: dir,
        }
    }

    #[cfg(test)]
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The directory holding the memory controller's files.
    #[cfg(test)]
    pub fn memory_dir(&self) -> &Path {
        &self.memory_dir
    }

    /// Every process in the container's cgroup and the cgroups below it (a
    /// container may make its own): `cgroup.procs` of the memory hierarchy
    /// (v1) or of the unified tree (v2), sorted, without duplicates.
    pub fn procs(&self) -> io::Result<Vec<u32>> {
        let mut pids = Vec::new();
        let mut dirs = vec![self.memory_dir.clone()];
        while let Some(dir) = dirs.pop() {
            let text = match fs::read_to_string(dir.join("cgroup.procs")) {
                Ok(text) => text,
                // A child cgroup removed while we walk.
                Err(e) if e.kind() == io::ErrorKind::NotFound && dir != self.memory_dir => continue,
                Err(e) => return Err(e),
            };
            pids.extend(text.lines().filter_map(|line| line.trim().parse::<u32>().ok()));
            for entry in fs::read_dir(&dir)?.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(entry.path());
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Memory charged to the container, page cache included (v1
    /// `memory.usage_in_bytes`, v2 `memory.current`).
    pub fn memory_usage(&self) -> io::Result<u64> {
        let name = match self.version {
            CgroupVersion::V1 => V1_USAGE,
            CgroupVersion::V2 => V2_CURRENT,
        };
        read_u64(&self.memory_dir.join(name))
    }

    /// The most memory charged at once since the container started (v1
    /// `memory.max_usage_in_bytes`, v2 `memory.peak`, which kernels before
    /// 5.19 lack: then the current use, the best lower bound).
    pub fn memory_peak(&self) -> io::Result<u64> {
        match self.version {
            CgroupVersion::V1 => read_u64(&self.memory_dir.join("memory.max_usage_in_bytes")),
            CgroupVersion::V2 => {
                read_u64(&self.memory_dir.join("memory.peak")).or_else(|_| read_u64(&self.memory_dir.join(V2_CURRENT)))
            }
        }
    }

    /// The memory limit (v1 `memory.limit_in_bytes`, v2 `memory.max`);
    /// `None` when unlimited. A squeeze lowers it for a moment while the
    /// container is frozen.
    pub fn memory_limit(&self) -> io::Result<Option<u64>> {
        match self.version {
            // v1 reads "unlimited" as the page counter's maximum, about 2^63.
            CgroupVersion::V1 => Ok(Some(read_u64(&self.memory_dir.join(V1_LIMIT))?).filter(|v| *v < 1 << 62)),
            CgroupVersion::V2 => {
                let path = self.memory_dir.join("memory.max");
                let text = read_text(&path)?;
                match text.trim() {
                    "max" => Ok(None),
                    value => value
                        .parse()
                        .map(Some)
                        .map_err(|_| invalid_data(&path, "not a number or max")),
                }
            }
        }
    }

    /// Anonymous, file, shmem and swap bytes of the container.
    #[cfg(test)]
    pub fn memory_stat(&self) -> io::Result<MemoryStat> {
        let path = self.memory_dir.join("memory.stat");
        let text = read_text(&path)?;
        let value = |key: &str| flat_keyed_value(&text, key).unwrap_or(0);
        Ok(match self.version {
            CgroupVersion::V1 => MemoryStat {
                anon: value("total_rss"),
                file: value("total_cache"),
                shmem: value("total_shmem"),
                swap: value("total_swap"),
            },
            CgroupVersion::V2 => {
                let swap_path = self.memory_dir.join(V2_SWAP_CURRENT);
                MemoryStat {
                    anon: value("anon"),
                    file: value("file"),
                    shmem: value("shmem"),
                    // Absent when the kernel has no swap accounting.
                    swap: if swap_path.exists() { read_u64(&swap_path)? } else { 0 },
                }
            }
        })
    }

    /// CPU time used by the container's tasks, in nanoseconds (v1
    /// `cpuacct.usage`, v2 `cpu.stat` `usage_usec` × 1000).
    pub fn cpu_usage_nanos(&self) -> io::Result<u64> {
        match self.version {
            CgroupVersion::V1 => read_u64(&self.cpu_dir.join("cpuacct.usage")),
            CgroupVersion::V2 => {
                let path = self.cpu_dir.join("cpu.stat");
                let text = read_text(&path)?;
                flat_keyed_value(&text, "usage_usec")
                    .map(|usec| usec.saturating_mul(1000))
                    .ok_or_else(|| invalid_data(&path, "no usage_usec"))
            }
        }
    }

    /// The freezer's state (v1 `freezer.state`; v2 `cgroup.freeze` for what
    /// was asked and `cgroup.events` `frozen` for what is done).
    #[cfg(test)]
    pub fn freezer_state(&self) -> io::Result<FreezerState> {
        match self.version {
            CgroupVersion::V1 => {
                let path = self.freezer_dir.join("freezer.state");
                match read_text(&path)?.trim() {
                    "THAWED" => Ok(FreezerState::Thawed),
                    "FREEZING" => Ok(FreezerState::Freezing),
                    "FROZEN" => Ok(FreezerState::Frozen),
                    other => Err(invalid_data(&path, &format!("unknown state {other:?}"))),
                }
            }
            CgroupVersion::V2 => {
                let events = read_text(&self.freezer_dir.join("cgroup.events"))?;
                if flat_keyed_value(&events, "frozen") == Some(1) {
                    return Ok(FreezerState::Frozen);
                }
                let asked = read_text(&self.freezer_dir.join("cgroup.freeze"))?;
                Ok(if asked.trim() == "1" {
                    FreezerState::Freezing
                } else {
                    FreezerState::Thawed
                })
            }
        }
    }

    /// Pushes the container's memory out (to swap, or by dropping page cache)
    /// until its usage is at most `target` bytes, the kernel can reclaim no
    /// more, or `timeout` runs out (checked between steps; one step can take
    /// a little longer).
    ///
    /// - v1: lowers `memory.limit_in_bytes` step by step; the kernel reclaims
    ///   down to each new limit before it accepts it, and answers `EBUSY` when
    ///   it cannot. The limit then sits at the lowest value accepted.
    /// - v2: asks `memory.reclaim` for the difference, chunk by chunk;
    ///   without it (kernel < 5.19), lowers `memory.high` step by step.
    ///
    /// **Call it only on a frozen (paused) container.** Frozen tasks cannot
    /// touch memory, so nothing faults the reclaimed pages back in, and a
    /// lowered limit cannot make a running task thrash or be OOM-killed. For
    /// the same reason, [`ContainerCgroup::restore`] the returned
    /// [`SqueezeReport::saved`] limits *before* the container is thawed.
    ///
    /// On an unexpected error (the cgroup vanished, say), the limits are put
    /// back as well as possible and the error is returned.
    #[cfg(test)]
    pub fn squeeze(&self, target: u64, timeout: Duration) -> io::Result<SqueezeReport> {
        self.squeeze_cancellable(target, timeout, &AtomicBool::new(false))
    }

    /// [`ContainerCgroup::squeeze`] that also stops between two steps once
    /// `cancel` is set, so that a wake arriving mid-squeeze waits for one step
    /// (a few tens of ms) rather than the whole squeeze. The report then says
    /// [`SqueezeStop::Cancelled`]; restore its limits as usual.
    pub fn squeeze_cancellable(
        &self,
        target: u64,
        timeout: Duration,
        cancel: &AtomicBool,
    ) -> io::Result<SqueezeReport> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut stop_now = || cancel.load(Ordering::Acquire) || Instant::now() >= deadline;
        let mut files = Dir(&self.memory_dir);
        let mut report = squeeze_files(&mut files, self.version, target, &mut stop_now)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: squeeze: {e}", self.memory_dir.display())))?;
        if report.stop == SqueezeStop::OutOfTime && cancel.load(Ordering::Acquire) {
            report.stop = SqueezeStop::Cancelled;
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// Puts back the limits a squeeze saved. On v1, `memory.limit_in_bytes`
    /// must never exceed `memory.memsw.limit_in_bytes`, so when raising the
    /// memory limit memsw goes first, and when lowering it memory goes first.
    pub fn restore(&self, saved: &SavedLimits) -> io::Result<()> {
        restore_files(&mut Dir(&self.memory_dir), saved)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: restore: {e}", self.memory_dir.display())))
    }
}

/// Whether the host has free swap (`SwapFree` in `<proc_root>/meminfo`, or
/// any entry in `<proc_root>/swaps`). Without swap a squeeze can only drop
/// page cache.
pub fn swap_available(proc_root: &Path) -> bool {
    match swap_free_bytes(proc_root) {
        Ok(free) => free > 0,
        Err(_) => fs::read_to_string(proc_root.join("swaps"))
            .map(|text| text.lines().skip(1).any(|line| !line.trim().is_empty()))
            .unwrap_or(false),
    }
}

/// `SwapFree` from `<proc_root>/meminfo`, in bytes.
pub fn swap_free_bytes(proc_root: &Path) -> io::Result<u64> {
    let path = proc_root.join("meminfo");
    let text = read_text(&path)?;
    text.lines()
        .find_map(|line| line.strip_prefix("SwapFree:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib.saturating_mul(1024))
        .ok_or_else(|| invalid_data(&path, "no SwapFree line"))
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controllers:path`.
struct ProcCgroupEntry {
    hierarchy_id: u32,
    controllers: String,
    path: String,
}

impl ProcCgroupEntry {
    fn parse(line: &str) -> Option<ProcCgroupEntry> {
        let mut fields = line.splitn(3, ':');
        Some(ProcCgroupEntry {
            hierarchy_id: fields.next()?.trim().parse().ok()?,
            controllers: fields.next()?.to_string(),
            path: fields.next()?.trim().to_string(),
        })
    }

    /// `""` asks for the unified (v2) line: id 0, no controllers.
    fn has_controller(&self, controller: &str) -> bool {
        if controller.is_empty() {
            return self.hierarchy_id == 0 && self.controllers.is_empty();
        }
        self.controllers.split(',').any(|c| c == controller)
    }

    /// The path without its leading `/`; empty for the root cgroup.
    fn relative_path(&self) -> &str {
        self.path.trim_start_matches('/')
    }
}

fn first_existing<const N: usize>(candidates: [PathBuf; N]) -> PathBuf {
    let first = candidates[0].clone();
    candidates.into_iter().find(|p| p.is_dir()).unwrap_or(first)
}

/// The control files of one cgroup directory. Squeeze and restore go through
/// this so that tests can answer writes the way the kernel does (`EBUSY` for
/// a limit below what can be reclaimed, `EINVAL` for memory above memsw),
/// which files in a tmpfs cannot.
trait ControlFiles {
    fn read(&self, name: &str) -> io::Result<String>;
    fn write(&mut self, name: &str, value: &str) -> io::Result<()>;
    fn exists(&self, name: &str) -> bool;
}

/// The real files.
struct Dir<'a>(&'a Path);

impl ControlFiles for Dir<'_> {
    fn read(&self, name: &str) -> io::Result<String> {
        fs::read_to_string(self.0.join(name))
    }

    /// One `write(2)` of the whole value, as kernfs wants, with no `O_CREAT`:
    /// a missing control file is an error, not a new file.
    fn write(&mut self, name: &str, value: &str) -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.0.join(name))?;
        file.write_all(value.as_bytes())
    }

    fn exists(&self, name: &str) -> bool {
        self.0.join(name).exists()
    }
}

fn squeeze_files(
    files: &mut dyn ControlFiles,
    version: CgroupVersion,
    target: u64,
    out_of_time: &mut dyn FnMut() -> bool,
) -> io::Result<SqueezeReport> {
    let saved = save_limits(files, version)?;
    let usage_file = match version {
        CgroupVersion::V1 => V1_USAGE,
        CgroupVersion::V2 => V2_CURRENT,
    };
    let before = read_u64_file(files, usage_file)?;
    if before <= target {
        return Ok(SqueezeReport {
            saved,
            method: SqueezeMethod::NotNeeded,
            stop: SqueezeStop::Completed,
            before,
            after: before,
            reached_target: true,
            elapsed: Duration::ZERO,
        });
    }
    let result = match version {
        CgroupVersion::V1 => step_down(files, V1_LIMIT, usage_file, before, target, out_of_time)
            .map(|(lowest_limit, stop)| (SqueezeMethod::V1Limit { lowest_limit }, stop)),
        CgroupVersion::V2 if files.exists(V2_RECLAIM) => reclaim(files, before, target, out_of_time)
            .map(|(requested, stop)| (SqueezeMethod::V2Reclaim { requested }, stop)),
        CgroupVersion::V2 => step_down(files, V2_HIGH, usage_file, before, target, out_of_time)
            .map(|(lowest_high, stop)| (SqueezeMethod::V2High { lowest_high }, stop)),
    };
    let (method, stop) = match result {
        Ok(done) => done,
        Err(error) => {
            // Best effort: a half-squeezed container must not keep a tiny limit.
            let _ = restore_files(files, &saved);
            return Err(error);
        }
    };
    let after = read_u64_file(files, usage_file)?;
    Ok(SqueezeReport {
        saved,
        method,
        stop,
        before,
        after,
        reached_target: after <= target,
        elapsed: Duration::ZERO,
    })
}

fn save_limits(files: &dyn ControlFiles, version: CgroupVersion) -> io::Result<SavedLimits> {
    Ok(match version {
        CgroupVersion::V1 => SavedLimits::V1 {
            memory_limit: read_u64_file(files, V1_LIMIT)?,
            // Absent when the kernel runs without swap accounting.
            memsw_limit: if files.exists(V1_MEMSW_LIMIT) {
                Some(read_u64_file(files, V1_MEMSW_LIMIT)?)
            } else {
                None
            },
        },
        CgroupVersion::V2 => SavedLimits::V2 {
            memory_high: read_max_or_u64(files, V2_HIGH)?,
        },
    })
}

/// Lowers a limit file from `before` to `target` in steps. The kernel
/// reclaims down to each new limit before accepting it, and answers `EBUSY`
/// when a reclaim pass frees nothing. A refused step is retried after a pause;
/// when it is still refused, usage is at its floor and the limit is settled
/// just above it. Returns the lowest limit accepted and why it stopped.
fn step_down(
    files: &mut dyn ControlFiles,
    limit_file: &str,
    usage_file: &str,
    before: u64,
    target: u64,
    out_of_time: &mut dyn FnMut() -> bool,
) -> io::Result<(Option<u64>, SqueezeStop)> {
    let step = ((before - target) / SQUEEZE_STEPS).max(SQUEEZE_MIN_STEP);
    let mut lowest = None;
    let mut limit = before;
    let mut refusals = 0;
    loop {
        if out_of_time() {
            return Ok((lowest, SqueezeStop::OutOfTime));
        }
        let next = limit.saturating_sub(step).max(target);
        match write_u64_raw(files, limit_file, next) {
            Ok(()) => {
                lowest = Some(next);
                limit = next;
                if next == target {
                    return Ok((lowest, SqueezeStop::Completed));
                }
            }
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) => {
                refusals += 1;
                if refusals <= SQUEEZE_RETRIES {
                    std::thread::sleep(SQUEEZE_RETRY_PAUSE);
                    continue;
                }
                let floor = round_up(read_u64_file(files, usage_file)?, LIMIT_GRANULARITY);
                if floor < limit && !out_of_time() && write_u64_raw(files, limit_file, floor).is_ok() {
                    lowest = Some(floor);
                }
                return Ok((lowest, SqueezeStop::KernelRefused));
            }
            Err(error) => return Err(named(limit_file, error)),
        }
    }
}

/// Asks v2 `memory.reclaim` for `before - target` bytes in chunks. `EAGAIN`
/// means the kernel reclaimed less than a chunk; it is retried after a pause,
/// as [`step_down`] does. Returns the bytes asked for, refused asks included,
/// and why it stopped.
fn reclaim(
    files: &mut dyn ControlFiles,
    before: u64,
    target: u64,
    out_of_time: &mut dyn FnMut() -> bool,
) -> io::Result<(u64, SqueezeStop)> {
    let wanted = before - target;
    let chunk = (wanted / SQUEEZE_STEPS).max(SQUEEZE_MIN_STEP);
    let mut requested = 0;
    let mut served = 0;
    let mut refusals = 0;
    // Bounded by `wanted` even if usage never moves (new charges, a fake).
    while served < wanted {
        let usage = read_u64_file(files, V2_CURRENT)?;
        if usage <= target {
            break;
        }
        if out_of_time() {
            return Ok((requested, SqueezeStop::OutOfTime));
        }
        let amount = chunk.min(usage - target).min(wanted - served);
        requested += amount;
        match write_u64_raw(files, V2_RECLAIM, amount) {
            Ok(()) => served += amount,
            Err(error) if error.raw_os_error() == Some(libc::EAGAIN) => {
                refusals += 1;
                if refusals > SQUEEZE_RETRIES {
                    return Ok((requested, SqueezeStop::KernelRefused));
                }
                std::thread::sleep(SQUEEZE_RETRY_PAUSE);
            }
            Err(error) => return Err(named(V2_RECLAIM, error)),
        }
    }
    Ok((requested, SqueezeStop::Completed))
}

fn restore_files(files: &mut dyn ControlFiles, saved: &SavedLimits) -> io::Result<()> {
    match saved {
        SavedLimits::V1 {
            memory_limit,
            memsw_limit: None,
        } => write_u64_file(files, V1_LIMIT, *memory_limit),
        SavedLimits::V1 {
            memory_limit,
            memsw_limit: Some(memsw_limit),
        } => {
            // memory ≤ memsw must hold after every single write.
            let current = read_u64_file(files, V1_LIMIT)?;
            if *memory_limit > current {
                write_u64_file(files, V1_MEMSW_LIMIT, *memsw_limit)?;
                write_u64_file(files, V1_LIMIT, *memory_limit)
            } else {
                write_u64_file(files, V1_LIMIT, *memory_limit)?;
                write_u64_file(files, V1_MEMSW_LIMIT, *memsw_limit)
            }
        }
        SavedLimits::V2 { memory_high } => {
            let value = memory_high.map_or_else(|| "max".to_string(), |bytes| bytes.to_string());
            files.write(V2_HIGH, &value).map_err(|e| named(V2_HIGH, e))
        }
    }
}

fn read_u64_file(files: &dyn ControlFiles, name: &str) -> io::Result<u64> {
    let text = files.read(name).map_err(|e| named(name, e))?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name}: not a number: {:?}", text.trim()),
        )
    })
}

/// A v2 limit: `max` or bytes.
fn read_max_or_u64(files: &dyn ControlFiles, name: &str) -> io::Result<Option<u64>> {
    let text = files.read(name).map_err(|e| named(name, e))?;
    match text.trim() {
        "max" => Ok(None),
        number => number
            .parse()
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: not a limit: {number:?}"))),
    }
}

/// Writes a number. The error keeps its raw OS code, for callers that test
/// it for `EBUSY`/`EAGAIN`; they name the file when they pass it on.
fn write_u64_raw(files: &mut dyn ControlFiles, name: &str, value: u64) -> io::Result<()> {
    files.write(name, &value.to_string())
}

fn write_u64_file(files: &mut dyn ControlFiles, name: &str, value: u64) -> io::Result<()> {
    write_u64_raw(files, name, value).map_err(|e| named(name, e))
}

fn named(name: &str, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{name}: {error}"))
}

fn round_up(value: u64, granularity: u64) -> u64 {
    value.div_ceil(granularity).saturating_mul(granularity)
}

/// The value of `key` in a flat-keyed file (`memory.stat`, `cpu.stat`,
/// `cgroup.events`): lines of `key value`.
fn flat_keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn read_text(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn read_u64(path: &Path) -> io::Result<u64> {
    let text = read_text(path)?;
    text.trim()
        .parse()
        .map_err(|_| invalid_data(path, &format!("not a number: {:?}", text.trim())))
}

fn invalid_data(path: &Path, message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {message}", path.display()))
}

#[cfg(test)]
mod tests;
