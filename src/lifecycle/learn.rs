//! Learning image profiles for fitted hardening, and noticing the hardened
//! runs that fail because of it.
//!
//! The shim labels every create a fitted rule decided
//! ([`fitted::LABEL_HARDENING`]): `learning` while the image has no ready
//! profile, else the fitted rules it applied. The [`Learner`] follows
//! dockerd's container events:
//! - a **learning** container is looked at once it has run
//!   `hardening.learn_for` (or when it dies, if that is sooner): what it wrote
//!   (`GET /containers/{id}/changes`), its processes' users (the host's
//!   `/proc`, by its cgroup), the TCP ports it listens on and its peak
//!   memory. Each look is added to the image's profile;
//! - a **hardened** container that dies within `hardening.failure_window`
//!   of its start with a non-zero code is judged by its last log lines
//!   ([`fitted::failure_sign`]): EROFS points at the read-only root, EACCES
//!   at the user (or the tmpfs owner), EPERM at the capabilities. The
//!   failure is logged, counted, kept with the container (for `status` and
//!   `audit`) and recorded in the profile, so the image's next create goes
//!   without that rule.
//!
//! [`probe`] is `forge-shim profile IMAGE`: a throwaway container of the
//! image, watched for a while, then removed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::SharedConfig;
use crate::docker::{DockerApi, EventKind, LABEL_PROBE};
use crate::metrics::Metrics;
use crate::standards::fitted::{self, ChangeKind, Failure, FsChange, Observation, Profile};
use crate::standards::rule;
use crate::standards::user::{self, Resolved};

use super::{HostPaths, Profiles};

/// How many log lines a failure is judged by.
const LOG_LINES: usize = 40;
/// At most this many failures are kept for `status` and `audit`.
const MAX_FAILURES: usize = 256;

/// A hardened container that failed because of a fitted rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HardeningFailure {
    pub container: String,
    pub name: String,
    pub image: String,
    pub rule: String,
    pub evidence: String,
    pub at: u64,
}

/// Follows dockerd's events to learn profiles and notice failures.
#[derive(Clone)]
pub struct Learner {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Arc<dyn DockerApi>,
    config: SharedConfig,
    profiles: Profiles,
    host: HostPaths,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    token: CancellationToken,
    /// Learning containers: when the shim saw them start, and whether
    /// (and when) they were looked at.
    watched: Mutex<HashMap<String, Watched>>,
    /// Hardened containers: when they started.
    started: Mutex<HashMap<String, Instant>>,
    failures: Mutex<Vec<HardeningFailure>>,
}

#[derive(Clone, Copy)]
struct Watched {
    started: Instant,
    looked: Option<Instant>,
}

impl Learner {
    pub fn new(
        docker: Arc<dyn DockerApi>,
        config: SharedConfig,
        profiles: Profiles,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        token: CancellationToken,
    ) -> Learner {
        Learner {
            inner: Arc::new(Inner {
                docker,
                config,
                profiles,
                host: HostPaths::default(),
                metrics,
                tasks,
                token,
                watched: Mutex::new(HashMap::new()),
                started: Mutex::new(HashMap::new()),
                failures: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn profiles(&self) -> &Profiles {
        &self.inner.profiles
    }

    pub fn docker(&self) -> Arc<dyn DockerApi> {
        self.inner.docker.clone()
    }

    /// The failures noticed since the shim started, newest last.
    pub fn failures(&self) -> Vec<HardeningFailure> {
        self.inner.failures.lock().clone()
    }

    /// Follows container events until shutdown, reconnecting after dockerd
    /// goes away.
    pub async fn run(self) {
        loop {
            let mut events = self.inner.docker.events(EventKind::Container, Some(SystemTime::now()));
            loop {
                let event = tokio::select! {
                    _ = self.inner.token.cancelled() => return,
                    event = events.next() => event,
                };
                let event = match event {
                    Some(Ok(event)) => event,
                    _ => break,
                };
                let Some(label) = event.attributes.get(fitted::LABEL_HARDENING).cloned() else {
                    continue;
                };
                let this = self.clone();
                let id = event.id.clone();
                match event.action.as_str() {
                    "start" if label == fitted::LEARNING => {
                        self.inner.watched.lock().insert(
                            id.clone(),
                            Watched {
                                started: Instant::now(),
                                looked: None,
                            },
                        );
                        self.inner.tasks.spawn(async move { this.look_later(&id).await });
                    }
                    "start" => {
                        self.inner.started.lock().insert(id, Instant::now());
                    }
                    // A learning container that dies before its first look is
                    // looked at now (its layer is still there until removed);
                    // one already looked at has told what it will.
                    "die" if label == fitted::LEARNING => {
                        let unlooked = self.inner.watched.lock().get(&id).is_some_and(|w| w.looked.is_none());
                        if unlooked {
                            self.inner.tasks.spawn(async move { this.look(&id).await });
                        }
                    }
                    "die" => {
                        let exit = event.attributes.get("exitCode").cloned().unwrap_or_default();
                        let name = event.attributes.get("name").cloned().unwrap_or_default();
                        self.inner
                            .tasks
                            .spawn(async move { this.judge_death(&id, &name, &label, &exit).await });
                    }
                    "destroy" => {
                        self.inner.watched.lock().remove(&id);
                        self.inner.started.lock().remove(&id);
                    }
                    _ => {}
                }
            }
            tokio::select! {
                _ = self.inner.token.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn look_later(&self, id: &str) {
        let wait = self
            .inner
            .config
            .current()
            .config
            .standards
            .hardening
            .learn_for
            .as_duration();
        tokio::select! {
            _ = self.inner.token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        self.look(id).await;
    }

    /// Looks at learning container `id` and adds what it shows to its
    /// image's profile.
    async fn look(&self, id: &str) {
        let (new_run, seconds) = {
            let mut watched = self.inner.watched.lock();
            let Some(w) = watched.get_mut(id) else { return };
            let now = Instant::now();
            let since = w.looked.unwrap_or(w.started);
            let new_run = w.looked.is_none();
            w.looked = Some(now);
            (new_run, now.duration_since(since).as_secs())
        };
        let config = self.inner.config.current();
        match observe(
            &*self.inner.docker,
            &self.inner.host,
            &config.config.standards.defaults.tmpfs,
            id,
        )
        .await
        {
            Some((image_id, image, mut obs)) => {
                obs.seconds = seconds;
                let updated = self
                    .inner
                    .profiles
                    .update(&image_id, &image, |p| p.learn(&obs, new_run, unix_now()));
                if let Some(profile) = updated {
                    let judged: Vec<String> = fitted::judge_paths(&obs)
                        .into_iter()
                        .map(|(path, learned)| format!("{path} ({:?}: {})", learned.kind, learned.why))
                        .collect();
                    tracing::info!(
                        container = id,
                        image = %profile.image,
                        changes = obs.changes.len(),
                        judged = %judged.join("; "),
                        user = ?profile.user,
                        observed_seconds = profile.observed_seconds,
                        ready = profile.ready(&config.config.standards.hardening),
                        "learned from a container of the image"
                    );
                }
            }
            None => tracing::debug!(
                container = id,
                "a learning container is gone before it could be looked at"
            ),
        }
    }

    async fn judge_death(&self, id: &str, name: &str, label: &str, exit: &str) {
        let started = self.inner.started.lock().remove(id);
        let config = self.inner.config.current();
        let window = config.config.standards.hardening.failure_window.as_duration();
        let Some(started) = started else { return };
        if started.elapsed() > window || exit == "0" || exit.is_empty() {
            return;
        }
        let applied: Vec<&str> = label.split(',').map(str::trim).collect();
        let inspect = self.inner.docker.inspect_container_json(id).await.ok();
        let oom = inspect
            .as_ref()
            .and_then(|i| i["State"]["OOMKilled"].as_bool())
            .unwrap_or(false);
        let image_id = inspect.as_ref().and_then(|i| i["Image"].as_str()).map(str::to_string);
        let image = inspect
            .as_ref()
            .and_then(|i| i["Config"]["Image"].as_str())
            .map(str::to_string)
            .unwrap_or_default();
        let limit = inspect
            .as_ref()
            .and_then(|i| i["HostConfig"]["Memory"].as_u64())
            .filter(|m| *m > 0);
        let sign = if oom && applied.contains(&rule::DEFAULTS_MEMORY) {
            Some((
                rule::DEFAULTS_MEMORY,
                format!(
                    "OOM-killed under the {}M memory limit the shim set",
                    limit.unwrap_or(0) >> 20
                ),
            ))
        } else {
            let log = self.inner.docker.logs_tail(id, LOG_LINES).await.unwrap_or_default();
            fitted::failure_sign(&log, &applied).map(|(rule, line)| (rule, line.to_string()))
        };
        let Some((rule, evidence)) = sign else {
            if oom {
                tracing::warn!(container = id, name, "a container was OOM-killed soon after start");
            }
            return;
        };
        let evidence: String = evidence.chars().take(300).collect();
        tracing::warn!(
            container = id,
            name,
            image = %image,
            rule,
            evidence = %evidence,
            "a hardened container failed because of a fitted rule; the image's next create goes without it"
        );
        self.inner.metrics.hardening_failure(rule);
        let at = unix_now();
        if let Some(image_id) = &image_id {
            self.inner.profiles.update(image_id, &image, |p| {
                if rule == rule::DEFAULTS_MEMORY {
                    p.oom_limit = limit.max(p.oom_limit);
                }
                p.fail(Failure {
                    rule: rule.to_string(),
                    container: id.to_string(),
                    evidence: evidence.clone(),
                    at,
                })
            });
        }
        let mut failures = self.inner.failures.lock();
        if failures.len() >= MAX_FAILURES {
            failures.remove(0);
        }
        failures.push(HardeningFailure {
            container: id.to_string(),
            name: name.trim_start_matches('/').to_string(),
            image,
            rule: rule.to_string(),
            evidence,
            at,
        });
    }
}

/// Looks at container `id`: its image id and name, and what it shows.
/// `None` when it cannot be inspected.
pub async fn observe(
    docker: &dyn DockerApi,
    host: &HostPaths,
    default_tmpfs: &[String],
    id: &str,
) -> Option<(String, String, Observation)> {
    let inspect = docker.inspect_container_json(id).await.ok()?;
    let image_id = inspect["Image"].as_str()?.to_string();
    let image = inspect["Config"]["Image"].as_str().unwrap_or(&image_id).to_string();
    let pid = inspect["State"]["Pid"].as_u64().filter(|p| *p > 0).map(|p| p as u32);
    let running = inspect["State"]["Running"].as_bool().unwrap_or(false);
    let spec = inspect["Config"]["User"].as_str().unwrap_or("");
    let started_as_root = match user::resolve(spec, None) {
        Resolved::Root(_) => true,
        Resolved::NonRoot { .. } => false,
        // A name: only `root` is root without the file, and that is caught
        // above; others are taken at their word.
        Resolved::Unknown(_) => false,
    };
    let mut mounted: Vec<String> = default_tmpfs.to_vec();
    if let Some(mounts) = inspect["Mounts"].as_array() {
        mounted.extend(
            mounts
                .iter()
                .filter_map(|m| m["Destination"].as_str())
                .map(str::to_string),
        );
    }
    if let Some(tmpfs) = inspect["HostConfig"]["Tmpfs"].as_object() {
        mounted.extend(tmpfs.keys().cloned());
    }
    let changes = docker
        .container_changes(id)
        .await
        .ok()
        .map(|v| parse_changes(&v))
        .unwrap_or_default();
    // A container being removed has its layer taken apart: dockerd's diff
    // of it then lists the whole image. Only a look at a container that is
    // still there afterwards counts.
    let after = docker.inspect_container_json(id).await.ok()?;
    if matches!(after["State"]["Status"].as_str(), Some("removing" | "dead")) {
        return None;
    }
    let (processes, listening, memory_peak, cpu_nanos) = match pid.filter(|_| running) {
        Some(pid) => {
            let host = host.clone();
            let id = id.to_string();
            tokio::task::spawn_blocking(move || {
                let processes = host
                    .processes(&id)
                    .ok()
                    .map(|procs| procs.iter().map(|p| (p.uids[1], p.egid)).collect::<Vec<_>>());
                let listening = host.listening_ports(pid);
                let cgroup = host.cgroup(&id, Some(pid)).ok();
                let peak = cgroup.as_ref().and_then(|c| c.memory_peak().ok());
                let cpu = cgroup.as_ref().and_then(|c| c.cpu_usage_nanos().ok());
                (processes, listening, peak, cpu)
            })
            .await
            .unwrap_or((None, None, None, None))
        }
        None => (None, None, None, None),
    };
    Some((
        image_id,
        image,
        Observation {
            changes,
            dirs: Default::default(),
            mounted,
            processes,
            started_as_root,
            listening,
            memory_peak,
            cpu_nanos,
            seconds: 0,
        },
    ))
}

/// dockerd's `changes` answer (`null` when there are none).
pub fn parse_changes(answer: &Value) -> Vec<FsChange> {
    answer
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|c| {
                    Some(FsChange {
                        path: c["Path"].as_str()?.to_string(),
                        kind: ChangeKind::from_docker(c["Kind"].as_u64()?)?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `forge-shim profile IMAGE`: runs a throwaway container of `image` (its
/// own command, no published ports, no mounts, a memory and pids bound,
/// no-new-privileges), looks at it after
/// `seconds`, removes it, and adds what it showed to the image's profile.
pub async fn probe(
    docker: &dyn DockerApi,
    profiles: &Profiles,
    default_tmpfs: &[String],
    image: &str,
    seconds: u64,
) -> Result<Arc<Profile>, String> {
    let info = docker
        .image_info(image)
        .await
        .map_err(|e| format!("cannot inspect image {image}: {e}"))?
        .ok_or_else(|| format!("no such image: {image}"))?;
    let body = json!({
        "Image": info.id,
        "Labels": { LABEL_PROBE: "profile" },
        // The always-rules a learning create gets: bounded, and no gain
        // of privileges (a probe is no way around the standards).
        "HostConfig": {
            "Memory": 1024u64 * 1024 * 1024,
            "PidsLimit": 4096,
            "SecurityOpt": ["no-new-privileges=true"],
        },
    });
    let id = docker
        .create_container(&body)
        .await
        .map_err(|e| format!("cannot create a probe of {image}: {e}"))?;
    let result = async {
        docker
            .start(&id)
            .await
            .map_err(|e| format!("cannot start a probe of {image}: {e}"))?;
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (image_id, _, mut obs) = observe(docker, &HostPaths::default(), default_tmpfs, &id)
            .await
            .ok_or_else(|| format!("the probe of {image} could not be looked at"))?;
        obs.seconds = started.elapsed().as_secs();
        let log = docker.logs_tail(&id, 5).await.unwrap_or_default();
        let running = docker
            .inspect_container_json(&id)
            .await
            .ok()
            .and_then(|i| i["State"]["Running"].as_bool())
            .unwrap_or(false);
        if !running && obs.processes.is_none() {
            return Err(format!(
                "the probe of {image} exited before {seconds}s; its last lines:\n{}",
                log.trim_end()
            ));
        }
        profiles
            .update(&image_id, image, |p| {
                p.learn(&obs, true, unix_now());
                p.probed = true;
            })
            .ok_or_else(|| format!("image {image} has no content id"))
    }
    .await;
    if let Err(e) = docker.remove_container(&id).await {
        tracing::warn!(container = %id, error = %e, "cannot remove a profile probe");
    }
    result
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_and_null_is_none() {
        let answer = json!([{"Path": "/app/cache", "Kind": 1}, {"Path": "/app", "Kind": 0}, {"Path": "/x", "Kind": 7}]);
        assert_eq!(
            parse_changes(&answer),
            vec![
                FsChange {
                    path: "/app/cache".into(),
                    kind: ChangeKind::Added
                },
                FsChange {
                    path: "/app".into(),
                    kind: ChangeKind::Modified
                },
            ]
        );
        assert!(parse_changes(&Value::Null).is_empty());
    }
}
