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

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The directory holding the memory controller's files.
    pub fn memory_dir(&self) -> &Path {
        &self.memory_dir
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

    /// Anonymous, file, shmem and swap bytes of the container.
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
mod tests {
    use super::*;

    const ID: &str = "b7f0f468feb61f36c3e40ac7b8dd69da797edacb089aa43162daabebc0532170";
    const OTHER_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UNLIMITED: u64 = 9_223_372_036_854_771_712;
    const MIB: u64 = 1 << 20;

    fn put(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    /// A v1 container as the cgroupfs driver lays it out on this host: cpu
    /// and cpuacct mounted separately, swap accounting on.
    fn fake_v1(root: &Path, leaf: &str) {
        let memory = root.join("memory").join(leaf);
        put(&memory.join(V1_LIMIT), &format!("{UNLIMITED}\n"));
        put(&memory.join(V1_MEMSW_LIMIT), &format!("{UNLIMITED}\n"));
        put(&memory.join(V1_USAGE), &format!("{}\n", 100 * MIB));
        put(
            &memory.join("memory.stat"),
            "cache 67375104\nrss 49152\nshmem 67108864\ntotal_cache 67375104\n\
             total_rss 49152\ntotal_shmem 67108864\ntotal_swap 4096\n",
        );
        put(&root.join("cpuacct").join(leaf).join("cpuacct.usage"), "412784374\n");
        put(&root.join("freezer").join(leaf).join("freezer.state"), "FROZEN\n");
    }

    fn fake_v2(root: &Path, leaf: &str) {
        put(&root.join("cgroup.controllers"), "cpuset cpu io memory pids\n");
        let dir = root.join(leaf);
        put(&dir.join(V2_CURRENT), &format!("{}\n", 100 * MIB));
        put(&dir.join(V2_HIGH), "max\n");
        put(&dir.join(V2_RECLAIM), "");
        put(&dir.join(V2_SWAP_CURRENT), "8192\n");
        put(
            &dir.join("memory.stat"),
            "anon 1048576\nfile 2097152\nkernel 4096\nshmem 65536\nfile_mapped 0\n",
        );
        put(
            &dir.join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
        );
        put(&dir.join("cgroup.freeze"), "1\n");
        put(&dir.join("cgroup.events"), "populated 1\nfrozen 1\n");
    }

    fn fake_proc(proc_root: &Path, pid: u32, cgroup: &str) {
        put(&proc_root.join(pid.to_string()).join("cgroup"), cgroup);
    }

    /// `/proc/<pid>/cgroup` of a container on this host (hybrid v1).
    fn v1_proc_lines(leaf: &str) -> String {
        [
            "9:name=systemd:/LEAF",
            "8:pids:/LEAF",
            "6:freezer:/LEAF",
            "4:memory:/LEAF",
            "2:cpuacct:/LEAF",
            "1:cpu:/LEAF",
            "0::/LEAF",
        ]
        .join("\n")
        .replace("LEAF", leaf)
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        proc_root: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cgroup");
        let proc_root = dir.path().join("proc");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&proc_root).unwrap();
        Fixture {
            _dir: dir,
            root,
            proc_root,
        }
    }

    #[test]
    fn detects_v2_only_at_the_root() {
        let f = fixture();
        assert_eq!(CgroupVersion::detect(&f.root), CgroupVersion::V1);
        // Hybrid: an empty v2 tree at unified/ is still a v1 host.
        put(&f.root.join("unified/cgroup.controllers"), "");
        assert_eq!(CgroupVersion::detect(&f.root), CgroupVersion::V1);
        put(&f.root.join("cgroup.controllers"), "memory\n");
        assert_eq!(CgroupVersion::detect(&f.root), CgroupVersion::V2);
    }

    #[test]
    fn for_pid_v1_cgroupfs() {
        let f = fixture();
        let leaf = format!("docker/{ID}");
        fake_v1(&f.root, &leaf);
        fake_proc(&f.proc_root, 42, &v1_proc_lines(&leaf));
        let cg = ContainerCgroup::for_pid(&f.root, &f.proc_root, 42).unwrap();
        assert_eq!(cg.version(), CgroupVersion::V1);
        assert_eq!(cg.memory_dir(), f.root.join("memory").join(&leaf));
        assert_eq!(cg.cpu_dir, f.root.join("cpuacct").join(&leaf));
        assert_eq!(cg.freezer_dir, f.root.join("freezer").join(&leaf));
    }

    #[test]
    fn for_pid_v1_with_combined_cpu_cpuacct_mount() {
        let f = fixture();
        let leaf = format!("system.slice/docker-{ID}.scope");
        fake_v1(&f.root, &leaf);
        fs::remove_dir_all(f.root.join("cpuacct")).unwrap();
        put(&f.root.join("cpu,cpuacct").join(&leaf).join("cpuacct.usage"), "7\n");
        let lines = format!("4:memory:/{leaf}\n3:cpu,cpuacct:/{leaf}\n2:freezer:/{leaf}\n");
        fake_proc(&f.proc_root, 42, &lines);
        let cg = ContainerCgroup::for_pid(&f.root, &f.proc_root, 42).unwrap();
        assert_eq!(cg.cpu_usage_nanos().unwrap(), 7);
    }

    #[test]
    fn for_pid_v2_systemd() {
        let f = fixture();
        let leaf = format!("system.slice/docker-{ID}.scope");
        fake_v2(&f.root, &leaf);
        fake_proc(&f.proc_root, 7, &format!("0::/{leaf}\n"));
        let cg = ContainerCgroup::for_pid(&f.root, &f.proc_root, 7).unwrap();
        assert_eq!(cg.version(), CgroupVersion::V2);
        assert_eq!(cg.memory_dir(), f.root.join(&leaf));
        assert_eq!(cg.cpu_dir, f.root.join(&leaf));
    }

    #[test]
    fn for_pid_refuses_root_cgroups() {
        // Seen through a cgroup namespace, or not a container at all:
        // resolving it would squeeze the whole host.
        let f = fixture();
        fake_v1(&f.root, &format!("docker/{ID}"));
        fake_proc(&f.proc_root, 1, "6:freezer:/\n4:memory:/\n2:cpuacct:/\n");
        let error = ContainerCgroup::for_pid(&f.root, &f.proc_root, 1).unwrap_err();
        assert!(matches!(error, CgroupError::RootCgroup { pid: 1, .. }), "{error}");

        let f = fixture();
        fake_v2(&f.root, &format!("docker/{ID}"));
        fake_proc(&f.proc_root, 1, "0::/\n");
        let error = ContainerCgroup::for_pid(&f.root, &f.proc_root, 1).unwrap_err();
        assert!(matches!(error, CgroupError::RootCgroup { pid: 1, .. }), "{error}");
    }

    #[test]
    fn for_pid_errors_name_what_is_missing() {
        let f = fixture();
        let error = ContainerCgroup::for_pid(&f.root, &f.proc_root, 99).unwrap_err();
        assert!(matches!(error, CgroupError::Read { .. }));
        assert!(error.to_string().contains("99/cgroup"), "{error}");

        fake_proc(
            &f.proc_root,
            5,
            "4:memory:/docker/gone\n2:cpuacct:/docker/gone\n1:freezer:/docker/gone\n",
        );
        let error = ContainerCgroup::for_pid(&f.root, &f.proc_root, 5).unwrap_err();
        assert!(matches!(error, CgroupError::NotFound { .. }), "{error}");

        fake_proc(&f.proc_root, 6, "2:cpuacct:/docker/x\n");
        let error = ContainerCgroup::for_pid(&f.root, &f.proc_root, 6).unwrap_err();
        assert!(
            matches!(
                error,
                CgroupError::NoEntry {
                    controller: "memory",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn for_id_tries_the_common_layouts() {
        for (v2, leaf) in [
            (false, format!("docker/{ID}")),
            (false, format!("system.slice/docker-{ID}.scope")),
            (true, format!("docker/{ID}")),
            (true, format!("system.slice/docker-{ID}.scope")),
        ] {
            let f = fixture();
            if v2 {
                fake_v2(&f.root, &leaf);
            } else {
                fake_v1(&f.root, &leaf);
            }
            let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
            let expected = if v2 {
                f.root.join(&leaf)
            } else {
                f.root.join("memory").join(&leaf)
            };
            assert_eq!(cg.memory_dir(), expected, "{leaf}");
        }
    }

    #[test]
    fn for_id_refuses_anything_but_a_full_id() {
        let f = fixture();
        for id in ["", "b7f0f468feb6", "../../../../etc", &format!("{}/x", &ID[..62])] {
            let error = ContainerCgroup::for_id(&f.root, id).unwrap_err();
            assert!(matches!(error, CgroupError::InvalidId(_)), "{id}: {error}");
        }
        let error = ContainerCgroup::for_id(&f.root, ID).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&format!("memory/docker/{ID}")), "{message}");
        assert!(message.contains("system.slice"), "{message}");
    }

    #[test]
    fn resolve_ignores_a_reused_pid() {
        let f = fixture();
        fake_v1(&f.root, &format!("docker/{ID}"));
        fake_v1(&f.root, &format!("docker/{OTHER_ID}"));
        // Pid 42 now belongs to another container.
        fake_proc(&f.proc_root, 42, &v1_proc_lines(&format!("docker/{OTHER_ID}")));
        let cg = ContainerCgroup::resolve(&f.root, &f.proc_root, Some(42), ID).unwrap();
        assert_eq!(cg.memory_dir(), f.root.join("memory/docker").join(ID));
        let cg = ContainerCgroup::resolve(&f.root, &f.proc_root, Some(42), OTHER_ID).unwrap();
        assert_eq!(cg.memory_dir(), f.root.join("memory/docker").join(OTHER_ID));
        let cg = ContainerCgroup::resolve(&f.root, &f.proc_root, None, ID).unwrap();
        assert_eq!(cg.memory_dir(), f.root.join("memory/docker").join(ID));
    }

    #[test]
    fn readings_v1() {
        let f = fixture();
        fake_v1(&f.root, &format!("docker/{ID}"));
        let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
        assert_eq!(cg.memory_usage().unwrap(), 100 * MIB);
        assert_eq!(
            cg.memory_stat().unwrap(),
            MemoryStat {
                anon: 49152,
                file: 67375104,
                shmem: 67108864,
                swap: 4096
            }
        );
        assert_eq!(cg.cpu_usage_nanos().unwrap(), 412784374);
        assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
        put(&cg.freezer_dir.join("freezer.state"), "FREEZING\n");
        assert_eq!(cg.freezer_state().unwrap(), FreezerState::Freezing);
        put(&cg.memory_dir.join(V1_USAGE), "lots\n");
        let error = cg.memory_usage().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains(V1_USAGE), "{error}");
    }

    #[test]
    fn readings_v2() {
        let f = fixture();
        fake_v2(&f.root, &format!("docker/{ID}"));
        let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
        assert_eq!(cg.memory_usage().unwrap(), 100 * MIB);
        assert_eq!(
            cg.memory_stat().unwrap(),
            MemoryStat {
                anon: 1048576,
                file: 2097152,
                shmem: 65536,
                swap: 8192
            }
        );
        assert_eq!(cg.cpu_usage_nanos().unwrap(), 1_500_000);
        assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
        put(&cg.freezer_dir.join("cgroup.events"), "populated 1\nfrozen 0\n");
        assert_eq!(cg.freezer_state().unwrap(), FreezerState::Freezing);
        put(&cg.freezer_dir.join("cgroup.freeze"), "0\n");
        assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
        // No swap accounting: no memory.swap.current.
        fs::remove_file(cg.memory_dir.join(V2_SWAP_CURRENT)).unwrap();
        assert_eq!(cg.memory_stat().unwrap().swap, 0);
    }

    #[test]
    fn squeeze_and_restore_on_v1_files() {
        let f = fixture();
        fake_v1(&f.root, &format!("docker/{ID}"));
        let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
        let report = cg.squeeze(8 * MIB, Duration::from_secs(5)).unwrap();
        assert_eq!(
            report.saved,
            SavedLimits::V1 {
                memory_limit: UNLIMITED,
                memsw_limit: Some(UNLIMITED)
            }
        );
        assert_eq!(
            report.method,
            SqueezeMethod::V1Limit {
                lowest_limit: Some(8 * MIB)
            }
        );
        assert_eq!(report.stop, SqueezeStop::Completed);
        // Plain files do not reclaim: usage stays where it was.
        assert_eq!((report.before, report.after), (100 * MIB, 100 * MIB));
        assert!(!report.reached_target);
        assert_eq!(read(&cg.memory_dir.join(V1_LIMIT)), (8 * MIB).to_string());

        cg.restore(&report.saved).unwrap();
        assert_eq!(read(&cg.memory_dir.join(V1_LIMIT)), UNLIMITED.to_string());
        assert_eq!(read(&cg.memory_dir.join(V1_MEMSW_LIMIT)), UNLIMITED.to_string());
    }

    #[test]
    fn squeeze_and_restore_on_v2_files() {
        let f = fixture();
        fake_v2(&f.root, &format!("docker/{ID}"));
        let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
        let report = cg.squeeze(20 * MIB, Duration::from_secs(5)).unwrap();
        assert_eq!(report.saved, SavedLimits::V2 { memory_high: None });
        // Usage never moves in a file, so it asks for the whole 80 MiB in
        // chunks of 10 MiB and stops there.
        assert_eq!(report.method, SqueezeMethod::V2Reclaim { requested: 80 * MIB });
        assert_eq!(read(&cg.memory_dir.join(V2_RECLAIM)), (10 * MIB).to_string());
        assert_eq!(read(&cg.memory_dir.join(V2_HIGH)), "max\n");
        cg.restore(&report.saved).unwrap();
        assert_eq!(read(&cg.memory_dir.join(V2_HIGH)), "max");

        // Before 5.19 there is no memory.reclaim: memory.high goes down instead.
        fs::remove_file(cg.memory_dir.join(V2_RECLAIM)).unwrap();
        let report = cg.squeeze(20 * MIB, Duration::from_secs(5)).unwrap();
        assert_eq!(
            report.method,
            SqueezeMethod::V2High {
                lowest_high: Some(20 * MIB)
            }
        );
        assert_eq!(read(&cg.memory_dir.join(V2_HIGH)), (20 * MIB).to_string());
        assert!(
            !cg.memory_dir.join(V2_RECLAIM).exists(),
            "a write must not create a control file"
        );
        cg.restore(&report.saved).unwrap();
        assert_eq!(read(&cg.memory_dir.join(V2_HIGH)), "max");
    }

    #[test]
    fn a_cancelled_squeeze_stops_before_the_next_step() {
        let f = fixture();
        fake_v1(&f.root, &format!("docker/{ID}"));
        let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
        let report = cg
            .squeeze_cancellable(8 * MIB, Duration::from_secs(5), &AtomicBool::new(true))
            .unwrap();
        assert_eq!(report.stop, SqueezeStop::Cancelled);
        assert_eq!(report.method, SqueezeMethod::V1Limit { lowest_limit: None });
        assert_eq!(
            read(&cg.memory_dir.join(V1_LIMIT)),
            format!("{UNLIMITED}\n"),
            "nothing written"
        );

        let report = cg.squeeze(8 * MIB, Duration::ZERO).unwrap();
        assert_eq!(report.stop, SqueezeStop::OutOfTime);
    }

    #[test]
    fn squeeze_errors_name_the_directory() {
        let f = fixture();
        fake_v1(&f.root, &format!("docker/{ID}"));
        let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
        fs::remove_file(cg.memory_dir.join(V1_USAGE)).unwrap();
        let error = cg.squeeze(MIB, Duration::from_secs(1)).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&cg.memory_dir.display().to_string()), "{message}");
        assert!(message.contains(V1_USAGE), "{message}");
    }

    #[test]
    fn swap_from_meminfo_or_swaps() {
        let f = fixture();
        assert!(!swap_available(&f.proc_root));
        put(&f.proc_root.join("swaps"), "Filename\tType\tSize\tUsed\tPriority\n");
        assert!(!swap_available(&f.proc_root));
        put(
            &f.proc_root.join("swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n/var/tmp/x.swap file 1048572 0 -2\n",
        );
        assert!(swap_available(&f.proc_root), "falls back to /proc/swaps");
        put(
            &f.proc_root.join("meminfo"),
            "MemTotal:       24684544 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n",
        );
        assert!(!swap_available(&f.proc_root), "meminfo wins");
        put(
            &f.proc_root.join("meminfo"),
            "SwapTotal:       1048572 kB\nSwapFree:         1048000 kB\n",
        );
        assert!(swap_available(&f.proc_root));
        assert_eq!(swap_free_bytes(&f.proc_root).unwrap(), 1048000 * 1024);
    }

    #[test]
    fn saved_limits_serialize_tagged() {
        let v1 = SavedLimits::V1 {
            memory_limit: 1,
            memsw_limit: None,
        };
        let json = serde_json::to_value(&v1).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"cgroup": "v1", "memory_limit": 1, "memsw_limit": null})
        );
        let v2: SavedLimits = serde_json::from_str(r#"{"cgroup":"v2","memory_high":null}"#).unwrap();
        assert_eq!(v2, SavedLimits::V2 { memory_high: None });
    }

    /// A memory cgroup that answers like the kernel: a limit below usage
    /// reclaims down to it, or down to `floor` (what cannot be reclaimed)
    /// and then fails with `EBUSY`; memory must stay ≤ memsw; v2
    /// `memory.reclaim` fails with `EAGAIN` when it got less than asked.
    struct FakeKernel {
        version: CgroupVersion,
        usage: u64,
        floor: u64,
        /// v1 memory limit, or v2 memory.high (`u64::MAX` is max).
        limit: u64,
        memsw: Option<u64>,
        has_reclaim: bool,
        writes: Vec<(String, String)>,
        /// Fail the nth write (0-based) with this errno.
        fail_write: Option<(usize, i32)>,
        /// After the first refusal the floor drops to this: the pages that
        /// were being written to swap can now be freed.
        floor_after_refusal: Option<u64>,
    }

    impl FakeKernel {
        fn v1(usage: u64, floor: u64) -> FakeKernel {
            FakeKernel {
                version: CgroupVersion::V1,
                usage,
                floor,
                limit: UNLIMITED,
                memsw: Some(UNLIMITED),
                has_reclaim: false,
                writes: Vec::new(),
                fail_write: None,
                floor_after_refusal: None,
            }
        }

        fn v2(usage: u64, floor: u64, has_reclaim: bool) -> FakeKernel {
            FakeKernel {
                version: CgroupVersion::V2,
                limit: u64::MAX,
                memsw: None,
                has_reclaim,
                ..FakeKernel::v1(usage, floor)
            }
        }

        fn limit_writes(&self, name: &str) -> Vec<u64> {
            self.writes
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.parse().unwrap())
                .collect()
        }

        /// Reclaims down to `wanted` if it can, else to the floor.
        fn reclaim_to(&mut self, wanted: u64) -> bool {
            self.usage = self.usage.min(wanted.max(self.floor));
            let reached = self.usage <= wanted;
            if !reached {
                if let Some(floor) = self.floor_after_refusal.take() {
                    self.floor = floor;
                }
            }
            reached
        }
    }

    fn errno(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    impl ControlFiles for FakeKernel {
        fn read(&self, name: &str) -> io::Result<String> {
            let value = match (self.version, name) {
                (CgroupVersion::V1, V1_LIMIT) => self.limit.to_string(),
                (CgroupVersion::V1, V1_MEMSW_LIMIT) => self.memsw.ok_or_else(|| errno(libc::ENOENT))?.to_string(),
                (CgroupVersion::V1, V1_USAGE) | (CgroupVersion::V2, V2_CURRENT) => self.usage.to_string(),
                (CgroupVersion::V2, V2_HIGH) if self.limit == u64::MAX => "max".to_string(),
                (CgroupVersion::V2, V2_HIGH) => self.limit.to_string(),
                _ => return Err(errno(libc::ENOENT)),
            };
            Ok(format!("{value}\n"))
        }

        fn write(&mut self, name: &str, value: &str) -> io::Result<()> {
            let nth = self.writes.len();
            self.writes.push((name.to_string(), value.to_string()));
            if let Some((n, code)) = self.fail_write {
                if n == nth {
                    return Err(errno(code));
                }
            }
            let bytes = || -> io::Result<u64> {
                match value {
                    "max" => Ok(u64::MAX),
                    v => v.parse().map_err(|_| errno(libc::EINVAL)),
                }
            };
            match (self.version, name) {
                (CgroupVersion::V1, V1_LIMIT) => {
                    let new = bytes()?;
                    if self.memsw.is_some_and(|memsw| new > memsw) {
                        return Err(errno(libc::EINVAL));
                    }
                    if !self.reclaim_to(new) {
                        return Err(errno(libc::EBUSY));
                    }
                    self.limit = new;
                }
                (CgroupVersion::V1, V1_MEMSW_LIMIT) => {
                    let new = bytes()?;
                    if new < self.limit {
                        return Err(errno(libc::EINVAL));
                    }
                    self.memsw = Some(new);
                }
                (CgroupVersion::V2, V2_HIGH) => {
                    // memory.high never fails; it reclaims what it can.
                    let new = bytes()?;
                    self.reclaim_to(new);
                    self.limit = new;
                }
                (CgroupVersion::V2, V2_RECLAIM) if self.has_reclaim => {
                    let wanted = self.usage.saturating_sub(bytes()?);
                    if !self.reclaim_to(wanted) {
                        return Err(errno(libc::EAGAIN));
                    }
                }
                _ => return Err(errno(libc::ENOENT)),
            }
            Ok(())
        }

        fn exists(&self, name: &str) -> bool {
            match name {
                V1_MEMSW_LIMIT => self.memsw.is_some(),
                V2_RECLAIM => self.has_reclaim,
                _ => true,
            }
        }
    }

    fn never() -> impl FnMut() -> bool {
        || false
    }

    /// Runs out of time after `n` checks.
    fn after_checks(n: usize) -> impl FnMut() -> bool {
        let mut checks = 0;
        move || {
            checks += 1;
            checks > n
        }
    }

    #[test]
    fn v1_steps_down_to_the_target() {
        let mut kernel = FakeKernel::v1(200 * MIB, 0);
        let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap();
        assert_eq!(report.stop, SqueezeStop::Completed);
        assert_eq!(
            report.method,
            SqueezeMethod::V1Limit {
                lowest_limit: Some(8 * MIB)
            }
        );
        assert_eq!((report.before, report.after), (200 * MIB, 8 * MIB));
        assert!(report.reached_target);
        let limits = kernel.limit_writes(V1_LIMIT);
        assert_eq!(limits.len(), SQUEEZE_STEPS as usize);
        assert!(limits.windows(2).all(|w| w[0] > w[1]), "{limits:?}");
        assert_eq!(*limits.last().unwrap(), 8 * MIB);
        // The squeeze leaves memsw alone.
        assert!(kernel.limit_writes(V1_MEMSW_LIMIT).is_empty());
    }

    #[test]
    fn v1_settles_just_above_the_floor_on_ebusy() {
        // No swap: 50 MiB of anonymous memory cannot go anywhere.
        let floor = 50 * MIB + 1000;
        let mut kernel = FakeKernel::v1(200 * MIB, floor);
        let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap();
        assert_eq!(report.stop, SqueezeStop::KernelRefused);
        let settled = round_up(floor, LIMIT_GRANULARITY);
        assert_eq!(
            report.method,
            SqueezeMethod::V1Limit {
                lowest_limit: Some(settled)
            }
        );
        assert_eq!(kernel.limit, settled);
        assert_eq!(report.after, floor);
        assert!(!report.reached_target);
    }

    #[test]
    fn a_refusal_is_retried() {
        let mut kernel = FakeKernel::v1(200 * MIB, 16 * MIB);
        kernel.floor_after_refusal = Some(0);
        let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap();
        assert_eq!(report.stop, SqueezeStop::Completed);
        assert_eq!(report.after, 8 * MIB);
        let limits = kernel.limit_writes(V1_LIMIT);
        assert_eq!(limits.len(), SQUEEZE_STEPS as usize + 1, "{limits:?}");
        assert_eq!(limits[limits.len() - 2..], [8 * MIB, 8 * MIB]);

        let mut kernel = FakeKernel::v2(200 * MIB, 16 * MIB, true);
        kernel.floor_after_refusal = Some(0);
        let report = squeeze_files(&mut kernel, CgroupVersion::V2, 8 * MIB, &mut never()).unwrap();
        assert_eq!(report.stop, SqueezeStop::Completed);
        assert_eq!(report.after, 8 * MIB);
    }

    #[test]
    fn v1_refused_at_the_first_step() {
        // Almost nothing reclaimable: the first step fails, and the settle
        // write lands just above the floor, still below the old usage.
        let mut kernel = FakeKernel::v1(100 * MIB, 99 * MIB);
        let report = squeeze_files(&mut kernel, CgroupVersion::V1, 0, &mut never()).unwrap();
        assert_eq!(report.stop, SqueezeStop::KernelRefused);
        assert_eq!(
            report.method,
            SqueezeMethod::V1Limit {
                lowest_limit: Some(99 * MIB)
            }
        );

        // Nothing reclaimable at all: no limit is accepted below usage.
        let mut kernel = FakeKernel::v1(100 * MIB, 100 * MIB);
        let report = squeeze_files(&mut kernel, CgroupVersion::V1, 0, &mut never()).unwrap();
        assert_eq!(report.method, SqueezeMethod::V1Limit { lowest_limit: None });
        assert_eq!(kernel.limit, UNLIMITED);
    }

    #[test]
    fn v1_stops_when_out_of_time() {
        let mut kernel = FakeKernel::v1(200 * MIB, 0);
        let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut after_checks(3)).unwrap();
        assert_eq!(report.stop, SqueezeStop::OutOfTime);
        assert_eq!(kernel.limit_writes(V1_LIMIT).len(), 3);
        assert_eq!(
            report.method,
            SqueezeMethod::V1Limit {
                lowest_limit: Some(kernel.limit)
            }
        );
        assert!(!report.reached_target);

        let mut kernel = FakeKernel::v1(200 * MIB, 0);
        let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut after_checks(0)).unwrap();
        assert_eq!(report.method, SqueezeMethod::V1Limit { lowest_limit: None });
        assert!(kernel.writes.is_empty());
    }

    #[test]
    fn v1_not_needed_writes_nothing() {
        let mut kernel = FakeKernel::v1(5 * MIB, 0);
        let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap();
        assert_eq!(report.method, SqueezeMethod::NotNeeded);
        assert!(report.reached_target);
        assert!(kernel.writes.is_empty());
    }

    #[test]
    fn v1_unexpected_error_restores_the_limit() {
        let mut kernel = FakeKernel::v1(200 * MIB, 0);
        kernel.fail_write = Some((2, libc::ENODEV));
        let error = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap_err();
        assert!(error.to_string().contains(V1_LIMIT), "{error}");
        assert_eq!(kernel.limit, UNLIMITED, "put back after the failure");
        assert_eq!(kernel.memsw, Some(UNLIMITED));
    }

    #[test]
    fn v1_restore_raises_memsw_first() {
        // Squeezed to 8 MiB under a memsw of 16 MiB; the saved limits are
        // higher than both, so memory first would be EINVAL.
        let mut kernel = FakeKernel::v1(8 * MIB, 0);
        kernel.limit = 8 * MIB;
        kernel.memsw = Some(16 * MIB);
        let saved = SavedLimits::V1 {
            memory_limit: 512 * MIB,
            memsw_limit: Some(1024 * MIB),
        };
        restore_files(&mut kernel, &saved).unwrap();
        assert_eq!((kernel.limit, kernel.memsw), (512 * MIB, Some(1024 * MIB)));
        assert_eq!(kernel.writes[0].0, V1_MEMSW_LIMIT);
    }

    #[test]
    fn v1_restore_lowers_memory_first() {
        let mut kernel = FakeKernel::v1(8 * MIB, 0);
        kernel.limit = 1024 * MIB;
        kernel.memsw = Some(2048 * MIB);
        let saved = SavedLimits::V1 {
            memory_limit: 256 * MIB,
            memsw_limit: Some(512 * MIB),
        };
        restore_files(&mut kernel, &saved).unwrap();
        assert_eq!((kernel.limit, kernel.memsw), (256 * MIB, Some(512 * MIB)));
        assert_eq!(kernel.writes[0].0, V1_LIMIT);
    }

    #[test]
    fn v1_without_swap_accounting() {
        let mut kernel = FakeKernel::v1(100 * MIB, 0);
        kernel.memsw = None;
        let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap();
        assert_eq!(
            report.saved,
            SavedLimits::V1 {
                memory_limit: UNLIMITED,
                memsw_limit: None
            }
        );
        restore_files(&mut kernel, &report.saved).unwrap();
        assert_eq!(kernel.limit, UNLIMITED);
    }

    #[test]
    fn v2_reclaims_in_chunks() {
        let mut kernel = FakeKernel::v2(200 * MIB, 0, true);
        let report = squeeze_files(&mut kernel, CgroupVersion::V2, 8 * MIB, &mut never()).unwrap();
        assert_eq!(report.stop, SqueezeStop::Completed);
        assert_eq!(report.method, SqueezeMethod::V2Reclaim { requested: 192 * MIB });
        assert_eq!(report.after, 8 * MIB);
        assert!(report.reached_target);
        assert_eq!(kernel.limit_writes(V2_RECLAIM), vec![24 * MIB; 8]);
        assert!(kernel.limit_writes(V2_HIGH).is_empty(), "memory.high untouched");
    }

    #[test]
    fn v2_reclaim_stops_on_eagain() {
        let mut kernel = FakeKernel::v2(200 * MIB, 150 * MIB, true);
        let report = squeeze_files(&mut kernel, CgroupVersion::V2, 8 * MIB, &mut never()).unwrap();
        assert_eq!(report.stop, SqueezeStop::KernelRefused);
        assert_eq!(report.after, 150 * MIB);
        // Two chunks served, then the refused one and its retries.
        let asks = kernel.limit_writes(V2_RECLAIM);
        assert_eq!(asks.len(), 2 + 1 + SQUEEZE_RETRIES as usize, "{asks:?}");
    }

    #[test]
    fn v2_reclaim_stops_when_out_of_time() {
        let mut kernel = FakeKernel::v2(200 * MIB, 0, true);
        let report = squeeze_files(&mut kernel, CgroupVersion::V2, 8 * MIB, &mut after_checks(2)).unwrap();
        assert_eq!(report.stop, SqueezeStop::OutOfTime);
        assert_eq!(report.method, SqueezeMethod::V2Reclaim { requested: 48 * MIB });
    }

    #[test]
    fn v2_falls_back_to_memory_high() {
        let mut kernel = FakeKernel::v2(200 * MIB, 0, false);
        kernel.limit = 1024 * MIB;
        let report = squeeze_files(&mut kernel, CgroupVersion::V2, 8 * MIB, &mut never()).unwrap();
        assert_eq!(
            report.method,
            SqueezeMethod::V2High {
                lowest_high: Some(8 * MIB)
            }
        );
        assert_eq!(
            report.saved,
            SavedLimits::V2 {
                memory_high: Some(1024 * MIB)
            }
        );
        assert!(report.reached_target);
        restore_files(&mut kernel, &report.saved).unwrap();
        assert_eq!(kernel.limit, 1024 * MIB);
    }

    #[test]
    fn parses_proc_cgroup_lines() {
        let entry = ProcCgroupEntry::parse("3:cpu,cpuacct:/docker/a:b").unwrap();
        assert!(entry.has_controller("cpuacct"));
        assert!(entry.has_controller("cpu"));
        assert!(!entry.has_controller("cpus"));
        assert!(!entry.has_controller(""));
        assert_eq!(entry.relative_path(), "docker/a:b");
        let unified = ProcCgroupEntry::parse("0::/system.slice/x.scope").unwrap();
        assert!(unified.has_controller(""));
        assert!(ProcCgroupEntry::parse("garbage").is_none());
        assert_eq!(round_up(1, LIMIT_GRANULARITY), LIMIT_GRANULARITY);
        assert_eq!(round_up(LIMIT_GRANULARITY, LIMIT_GRANULARITY), LIMIT_GRANULARITY);
    }
}
