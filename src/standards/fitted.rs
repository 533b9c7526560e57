//! Fitted hardening: what an image's containers were seen to do (its
//! *profile*), and the tightest hardening that profile says the image
//! survives. Pure: observations in, judgements and plans out; the lifecycle
//! gathers the observations and keeps the profiles.
//!
//! How paths are judged (from dockerd's `GET /containers/{id}/changes`,
//! which lists what a container wrote to its own layer: volumes, binds and
//! tmpfs are not in it):
//! - a **new directory** (added, not in the image) is *ephemeral* when it
//!   lies under a runtime-state prefix (`/tmp`, `/run`, `/var/cache`,
//!   `/var/log`, …) or one of its names says cache, temp, log or run
//!   (`/app/cache`); a tmpfs at it holds it. Any other new directory is
//!   *data* (`/app/uploads`, `/data`): a tmpfs would lose it at every
//!   restart, so the root stays writable and `audit` names the volume the
//!   container needs;
//! - a **file** written, changed or deleted in a directory of the image,
//!   and a directory of the image whose owner or mode changed, make that
//!   directory the write point. It is ephemeral only under the prefixes, or
//!   when its own name says cache, temp, log or run: a tmpfs there hides
//!   what the image put in it, which only such a directory can spare;
//! - writes under a path the container already had mounted (or that the
//!   defaults mount as tmpfs) need nothing.
//!
//! How the user is judged (from the uids of the container's processes,
//! seen while it ran with the user the image asks for):
//! - every process root: the image *runs as root*, and fits
//!   `defaults.user` once its writes have tmpfs owned by that user;
//! - the image starts as root and some or all of its processes run as
//!   another user: it *drops root itself* (postgres, redis, nginx's
//!   workers). It starts as root, with only the capabilities such an
//!   entrypoint needs, from `cap_add_allowed`;
//! - the image's own user is not root: nothing to do.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::{Hardening, HardeningMode};

/// The label the shim puts on every create a fitted rule decided: the
/// fitted rules applied (comma-separated), or [`LEARNING`]. The shim sets
/// it and overwrites any value a client gives.
pub const LABEL_HARDENING: &str = "forge-shim.hardening";

/// [`LABEL_HARDENING`]'s value on a create whose image is still learned.
pub const LEARNING: &str = "learning";

/// Directories whose contents are runtime state by convention.
pub const EPHEMERAL_PREFIXES: &[&str] = &[
    "/tmp",
    "/var/tmp",
    "/run",
    "/var/run",
    "/var/cache",
    "/var/log",
    "/var/lib/nginx",
    "/dev/shm",
];

/// Directory names that say "cache, temp, log or run".
pub const EPHEMERAL_NAMES: &[&str] = &[
    "cache", ".cache", "caches", "tmp", "temp", ".tmp", "log", "logs", "run", "pids", "sessions",
];

/// Capabilities an entrypoint that drops root itself uses: `chown` of its
/// data directory, `gosu`/`su-exec` (setuid, setgid), writes to files of its
/// own user, signals to its workers.
pub const DROP_ROOT_CAPS: &[&str] = &["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "KILL"];

/// dockerd's `Kind` in a `changes` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Modified,
    Added,
    Deleted,
}

impl ChangeKind {
    /// dockerd's number: 0 modified, 1 added, 2 deleted.
    pub fn from_docker(kind: u64) -> Option<ChangeKind> {
        match kind {
            0 => Some(ChangeKind::Modified),
            1 => Some(ChangeKind::Added),
            2 => Some(ChangeKind::Deleted),
            _ => None,
        }
    }
}

/// One entry of `GET /containers/{id}/changes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsChange {
    pub path: String,
    pub kind: ChangeKind,
}

/// One look at one container of an image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub changes: Vec<FsChange>,
    /// Paths among the changes known to be directories (the rest may be
    /// files; an added path with children is a directory anyway).
    pub dirs: BTreeSet<String>,
    /// Where the container had volumes, binds or tmpfs, and the defaults'
    /// tmpfs: writes there are not the root filesystem's.
    pub mounted: Vec<String>,
    /// `(uid, gid)` of each of its processes, when they could be read.
    pub processes: Option<Vec<(u32, u32)>>,
    /// Whether it was started as root (the image's user, no override).
    pub started_as_root: bool,
    /// TCP ports it listened on, when they could be read.
    pub listening: Option<Vec<u16>>,
    /// Its peak memory use in bytes, when known.
    pub memory_peak: Option<u64>,
    /// CPU time it had used when looked at, in nanoseconds, when known.
    pub cpu_nanos: Option<u64>,
    /// How long it had run when looked at.
    pub seconds: u64,
}

/// What a learned path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Runtime state: a tmpfs holds it.
    Ephemeral,
    /// Data: it needs a volume, and the root stays writable until it has one.
    Data,
}

/// One path a container wrote, judged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedPath {
    pub kind: PathKind,
    /// Why it was judged so, for `audit` and the profile command.
    pub why: String,
}

/// Who an image's processes run as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunUser {
    /// Every process root.
    Root,
    /// The image's own user, not root.
    NonRoot { uid: u32, gid: u32 },
    /// Started as root; its processes (or some) then run as this user.
    DropsRoot { uid: u32, gid: u32 },
}

/// A hardened run that failed because of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The rule's name (`defaults.read_only_rootfs`, `non_root`, `defaults.cap_drop`).
    pub rule: String,
    pub container: String,
    /// The log line (or state) that showed it.
    pub evidence: String,
    /// Seconds since the epoch.
    pub at: u64,
}

/// What was learned of one image, keyed by its content id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub image_id: String,
    /// A name the image was seen by (for people).
    pub image: String,
    /// Seconds its learning containers ran, summed.
    pub observed_seconds: u64,
    /// Learning containers seen.
    pub runs: u32,
    #[serde(default)]
    pub paths: BTreeMap<String, LearnedPath>,
    #[serde(default)]
    pub user: Option<RunUser>,
    #[serde(default)]
    pub ports: BTreeSet<u16>,
    #[serde(default)]
    pub memory_peak: Option<u64>,
    /// The highest average CPU use of a look, in millicores (CPU time over
    /// the time it ran).
    #[serde(default)]
    pub cpu_millicores: Option<u64>,
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// Seconds since the epoch.
    #[serde(default)]
    pub updated: u64,
    /// The memory limit (bytes) a run of the image was OOM-killed under,
    /// when the shim had set it: its next creates get twice that.
    #[serde(default)]
    pub oom_limit: Option<u64>,
    /// Learned on purpose (`forge-shim profile`): ready however short the
    /// watch was.
    #[serde(default)]
    pub probed: bool,
}

impl Profile {
    pub fn new(image_id: &str, image: &str) -> Profile {
        Profile {
            image_id: image_id.to_string(),
            image: image.to_string(),
            ..Profile::default()
        }
    }

    /// Whether it has been watched long enough to be used.
    pub fn ready(&self, hardening: &Hardening) -> bool {
        self.runs > 0 && (self.probed || self.observed_seconds >= hardening.learn_for.as_duration().as_secs())
    }

    /// Adds one look at a container. `new_run`: the first look at this
    /// container (a container looked at again adds its further seconds
    /// only: `seconds` is then the time since the last look).
    pub fn learn(&mut self, obs: &Observation, new_run: bool, now: u64) {
        if new_run {
            self.runs += 1;
        }
        self.observed_seconds += obs.seconds;
        for (path, learned) in judge_paths(obs) {
            match self.paths.get(&path) {
                // Data wins: one run that keeps something there is enough.
                Some(known) if known.kind == PathKind::Data => {}
                _ => {
                    self.paths.insert(path, learned);
                }
            }
        }
        // A tmpfs under another one is not needed.
        let ephemeral: Vec<String> = self
            .paths
            .iter()
            .filter(|(_, l)| l.kind == PathKind::Ephemeral)
            .map(|(p, _)| p.clone())
            .collect();
        self.paths
            .retain(|p, l| l.kind == PathKind::Data || !ephemeral.iter().any(|outer| outer != p && is_under(p, outer)));
        if let Some(user) = judge_user(obs) {
            self.user = Some(user);
        }
        if let Some(ports) = &obs.listening {
            self.ports.extend(ports.iter().copied());
        }
        if let Some(peak) = obs.memory_peak {
            self.memory_peak = Some(self.memory_peak.map_or(peak, |p| p.max(peak)));
        }
        if let (Some(nanos), true, true) = (obs.cpu_nanos, new_run, obs.seconds > 0) {
            let millicores = nanos / 1_000_000 / obs.seconds;
            self.cpu_millicores = Some(self.cpu_millicores.map_or(millicores, |m| m.max(millicores)));
        }
        self.updated = now;
    }

    /// Records a failed hardened run (a rule is failed once: the first
    /// evidence is kept).
    pub fn fail(&mut self, failure: Failure) {
        if !self.failures.iter().any(|f| f.rule == failure.rule) {
            self.updated = failure.at;
            self.failures.push(failure);
        }
    }

    pub fn failure(&self, rule: &str) -> Option<&Failure> {
        self.failures.iter().find(|f| f.rule == rule)
    }

    /// The paths that need a volume.
    pub fn data_paths(&self) -> Vec<&str> {
        self.paths
            .iter()
            .filter(|(_, l)| l.kind == PathKind::Data)
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// The paths a tmpfs holds.
    pub fn ephemeral_paths(&self) -> Vec<&str> {
        self.paths
            .iter()
            .filter(|(_, l)| l.kind == PathKind::Ephemeral)
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// A memory limit sized from the observed peak: 1.5 × the peak, rounded
    /// up to 16 MiB, at least 32 MiB.
    pub fn recommended_memory(&self) -> Option<u64> {
        const STEP: u64 = 16 * 1024 * 1024;
        let peak = self.memory_peak?;
        let sized = (peak.saturating_mul(3) / 2).div_ceil(STEP) * STEP;
        Some(sized.max(2 * STEP))
    }
}

/// Whether `path` is `dir` or inside it.
pub fn is_under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    dir.is_empty() || path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn ephemeral_prefix(path: &str) -> Option<&'static str> {
    EPHEMERAL_PREFIXES.iter().copied().find(|prefix| is_under(path, prefix))
}

fn ephemeral_name(segment: &str) -> bool {
    EPHEMERAL_NAMES.iter().any(|name| segment.eq_ignore_ascii_case(name))
}

/// Each write point of one observation, judged: a map from the directory a
/// tmpfs would be mounted at (or that needs a volume) to the judgement.
pub fn judge_paths(obs: &Observation) -> BTreeMap<String, LearnedPath> {
    let mounted = |path: &str| obs.mounted.iter().any(|m| is_under(path, m));
    let changes: Vec<&FsChange> = obs
        .changes
        .iter()
        .filter(|c| c.path.starts_with('/') && c.path != "/" && !mounted(&c.path))
        .collect();
    // Every listed path, mounted ones too: a directory listed because a
    // mount point was made in it is a directory with a child.
    let paths: BTreeSet<&str> = obs.changes.iter().map(|c| c.path.as_str()).collect();
    let added: BTreeSet<&str> = changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Added)
        .map(|c| c.path.as_str())
        .collect();
    let has_child = |path: &str| paths.iter().any(|p| *p != path && is_under(p, path));
    let is_dir = |path: &str| obs.dirs.contains(path) || has_child(path);

    let mut out = BTreeMap::new();
    for change in &changes {
        let path = change.path.as_str();
        let (point, new_dir) = match change.kind {
            ChangeKind::Added => {
                // Under a new directory: that directory is the write point.
                if added.iter().any(|a| *a != path && is_under(path, a)) {
                    continue;
                }
                if is_dir(path) {
                    (path, true)
                } else {
                    (parent(path), false)
                }
            }
            // A directory listed because something under it changed: its
            // children are judged instead.
            ChangeKind::Modified if has_child(path) => continue,
            ChangeKind::Modified if is_dir(path) => (path, false),
            ChangeKind::Modified | ChangeKind::Deleted => (parent(path), false),
        };
        if point == "/" {
            out.insert(
                path.to_string(),
                LearnedPath {
                    kind: PathKind::Data,
                    why: format!("{path} is written at the top of the filesystem"),
                },
            );
            continue;
        }
        if mounted(point) {
            continue;
        }
        out.insert(point.to_string(), judge_point(point, new_dir));
    }
    out
}

fn judge_point(point: &str, new_dir: bool) -> LearnedPath {
    if let Some(prefix) = ephemeral_prefix(point) {
        return LearnedPath {
            kind: PathKind::Ephemeral,
            why: format!("runtime state (under {prefix})"),
        };
    }
    let named = if new_dir {
        point.split('/').find(|s| ephemeral_name(s))
    } else {
        point.rsplit('/').next().filter(|s| ephemeral_name(s))
    };
    match (named, new_dir) {
        (Some(name), true) => LearnedPath {
            kind: PathKind::Ephemeral,
            why: format!("a directory it makes, named {name:?}"),
        },
        (Some(name), false) => LearnedPath {
            kind: PathKind::Ephemeral,
            why: format!("an image directory named {name:?}"),
        },
        (None, true) => LearnedPath {
            kind: PathKind::Data,
            why: "a directory it makes and fills: data a tmpfs would lose".to_string(),
        },
        (None, false) => LearnedPath {
            kind: PathKind::Data,
            why: "it changes files the image ships there".to_string(),
        },
    }
}

/// Who the processes of one observation ran as; `None` when unknown.
pub fn judge_user(obs: &Observation) -> Option<RunUser> {
    let processes = obs.processes.as_ref().filter(|p| !p.is_empty())?;
    let mut others: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for &(uid, gid) in processes {
        if uid != 0 {
            *others.entry((uid, gid)).or_default() += 1;
        }
    }
    // The most common non-root user (the lowest uid on a tie).
    let Some((&(uid, gid), _)) = others.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) else {
        return Some(RunUser::Root);
    };
    Some(if obs.started_as_root {
        RunUser::DropsRoot { uid, gid }
    } else {
        RunUser::NonRoot { uid, gid }
    })
}

/// Whether a fitted rule applies to a create, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fit<T> {
    /// Apply it, so.
    Apply(T),
    /// No profile yet (or not watched long enough).
    Learning,
    /// A hardened run failed with it: the evidence.
    Failed(String),
    /// The profile says the image does not survive it: why.
    Unfit(String),
}

/// What the user rule does for an image that runs as root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserFit {
    /// Set `defaults.user`.
    SetDefault,
    /// Keep root at start: the image drops to this user itself.
    StartAsRoot { uid: u32, gid: u32 },
}

/// The fitted rules' answers for one create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitPlan {
    /// The tmpfs paths beyond the defaults', each with its owner.
    pub read_only: Fit<Vec<String>>,
    pub user: Fit<UserFit>,
    /// Capabilities to add back after dropping `defaults.cap_drop`.
    pub caps: Fit<Vec<String>>,
    /// Owner of the learned tmpfs: the user the container will write as.
    pub tmpfs_owner: Option<(u32, u32)>,
}

/// What the profile (if any) says for a create of its image. `default_user`
/// is `defaults.user` read as numbers, when it is numeric.
pub fn plan(
    profile: Option<&Profile>,
    hardening: &Hardening,
    cap_add_allowed: &[String],
    default_user: Option<(u32, u32)>,
) -> FitPlan {
    let Some(profile) = profile.filter(|p| p.ready(hardening)) else {
        return FitPlan {
            read_only: Fit::Learning,
            user: Fit::Learning,
            caps: Fit::Learning,
            tmpfs_owner: None,
        };
    };
    fn failed<T>(profile: &Profile, rule: &str) -> Option<Fit<T>> {
        profile.failure(rule).map(|f| Fit::Failed(f.evidence.clone()))
    }

    let user = match (failed(profile, super::rule::NON_ROOT), profile.user) {
        (Some(failed), _) => failed,
        (None, None) => Fit::Unfit("its processes' users could not be read".to_string()),
        (None, Some(RunUser::Root)) => Fit::Apply(UserFit::SetDefault),
        (None, Some(RunUser::DropsRoot { uid, gid })) => Fit::Apply(UserFit::StartAsRoot { uid, gid }),
        // The image's own user is not root: the rule has nothing to do.
        (None, Some(RunUser::NonRoot { .. })) => Fit::Unfit("it runs as its own non-root user".to_string()),
    };
    // Who the container will write as.
    let writer = match (&user, hardening.non_root, profile.user) {
        (_, _, Some(RunUser::NonRoot { uid, gid })) => Some((uid, gid)),
        (Fit::Apply(UserFit::SetDefault), _, _) if hardening.non_root != HardeningMode::Never => default_user,
        (&Fit::Apply(UserFit::StartAsRoot { uid, gid }), _, _) => Some((uid, gid)),
        (_, _, Some(RunUser::DropsRoot { uid, gid })) => Some((uid, gid)),
        _ => None,
    };
    let runs_as_root_with_caps = matches!(profile.user, Some(RunUser::DropsRoot { .. }))
        || (matches!(profile.user, Some(RunUser::Root)) && !matches!(user, Fit::Apply(UserFit::SetDefault)))
        || hardening.non_root == HardeningMode::Never;

    let read_only = match failed(profile, super::rule::DEFAULTS_READ_ONLY_ROOTFS) {
        Some(failed) => failed,
        None => match profile.data_paths().as_slice() {
            [] => Fit::Apply(profile.ephemeral_paths().into_iter().map(str::to_string).collect()),
            data => Fit::Unfit(format!(
                "it keeps data in {} (a volume there would let the root be read-only)",
                data.join(", ")
            )),
        },
    };

    let caps = match failed(profile, super::rule::DEFAULTS_CAP_DROP) {
        Some(failed) => failed,
        None => {
            let mut wanted: Vec<&str> = Vec::new();
            if matches!(profile.user, Some(RunUser::DropsRoot { .. })) {
                wanted.extend(DROP_ROOT_CAPS);
            }
            let low_port = profile.ports.iter().any(|&p| p < 1024);
            if runs_as_root_with_caps && (low_port || profile.ports.is_empty()) {
                wanted.push("NET_BIND_SERVICE");
            }
            let allowed = |cap: &&str| {
                cap_add_allowed
                    .iter()
                    .any(|a| a.trim_start_matches("CAP_").eq_ignore_ascii_case(cap))
            };
            Fit::Apply(wanted.into_iter().filter(allowed).map(str::to_string).collect())
        }
    };
    FitPlan {
        read_only,
        user,
        caps,
        tmpfs_owner: writer,
    }
}

/// The tmpfs options for a learned path: owned by the writer, bounded.
pub fn tmpfs_options(owner: Option<(u32, u32)>, size: u64) -> String {
    let size = format!("size={}k", size.div_ceil(1024).max(1));
    match owner {
        Some((uid, gid)) => format!("uid={uid},gid={gid},mode=0755,{size}"),
        None => format!("mode=0755,{size}"),
    }
}

/// A `uid:gid` (or `uid`) spelling read as numbers.
pub fn numeric_user(spec: &str) -> Option<(u32, u32)> {
    let mut parts = spec.split(':');
    let uid = parts.next()?.parse().ok()?;
    let gid = match parts.next() {
        Some(gid) => gid.parse().ok()?,
        None => uid,
    };
    Some((uid, gid))
}

/// Which fitted rule a failed hardened run points at, from its last log
/// lines and the rules applied to it; the rule and the line.
pub fn failure_sign<'l>(log: &'l str, applied: &[&str]) -> Option<(&'static str, &'l str)> {
    use super::rule::{DEFAULTS_CAP_DROP, DEFAULTS_READ_ONLY_ROOTFS, NON_ROOT};
    let has = |rule: &str| applied.contains(&rule);
    // The newest line first: the one closest to the exit.
    for line in log.lines().rev() {
        let lower = line.to_ascii_lowercase();
        let erofs = lower.contains("read-only file system") || lower.contains("erofs");
        let eacces = lower.contains("permission denied") || lower.contains("eacces");
        let eperm = lower.contains("operation not permitted") || lower.contains("eperm");
        let line = line.trim();
        if erofs && has(DEFAULTS_READ_ONLY_ROOTFS) {
            return Some((DEFAULTS_READ_ONLY_ROOTFS, line));
        }
        if eacces {
            if has(NON_ROOT) {
                return Some((NON_ROOT, line));
            }
            if has(DEFAULTS_READ_ONLY_ROOTFS) {
                return Some((DEFAULTS_READ_ONLY_ROOTFS, line));
            }
            if has(DEFAULTS_CAP_DROP) {
                return Some((DEFAULTS_CAP_DROP, line));
            }
        }
        if eperm {
            if has(DEFAULTS_CAP_DROP) {
                return Some((DEFAULTS_CAP_DROP, line));
            }
            if has(NON_ROOT) {
                return Some((NON_ROOT, line));
            }
        }
    }
    None
}
