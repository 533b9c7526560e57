//! What the lifecycle tells: the status table and the transitions stream.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

use super::{unix_ms, Lifecycle, State, WakeRecord};
use crate::config::{Priority, ServicePolicy};
use crate::metrics::{ContainerSample, HostSample, PolicyLabels, StateLabel, WakeLabels};

/// One state transition, as streamed by `/_forge/v1/events`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Transition {
    pub id: String,
    pub name: String,
    /// `sleeping`, `waking`, `running`, `stopping`, `deep_sleep`, …
    pub transition: &'static str,
    pub from: State,
    pub to: State,
    pub trigger: String,
    pub duration_ms: f64,
    pub at_unix_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One row of `/_forge/v1/containers` and `forge-shim status`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct StatusRow {
    pub id: String,
    pub name: String,
    pub project: Option<String>,
    pub service: Option<String>,
    pub class: String,
    pub state: State,
    pub sleeps: bool,
    pub idle_timeout_s: Option<f64>,
    pub since_unix_ms: u64,
    pub idle_for_s: f64,
    pub in_use: u32,
    pub memory_running: Option<u64>,
    pub memory_asleep: Option<u64>,
    pub wakes: u64,
    pub last_wake: Option<WakeRecord>,
    /// Published TCP ports, `host_ip:host_port->container_port`.
    pub ports: Vec<String>,
    /// Why the shim does not deep-sleep it (see `deep_sleep_blocked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deep_sleep_blocked: Option<String>,
    /// Where it came from (`bypass`: created around the shim), filled by
    /// the shim's API from [`super::Origins`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<super::Origin>,
}

impl Lifecycle {
    pub fn status(&self) -> Vec<StatusRow> {
        let now = Instant::now();
        let table = self.inner.table.lock();
        let mut rows: Vec<StatusRow> = table
            .values()
            .map(|e| StatusRow {
                id: e.id.clone(),
                name: e.name.clone(),
                project: e.project.clone(),
                service: e.service.clone(),
                class: e.policy.class.clone(),
                state: e.state,
                sleeps: e.idle_timeout.is_some(),
                idle_timeout_s: e.effective_idle_timeout().map(|d| d.as_secs_f64()),
                since_unix_ms: unix_ms(e.since),
                idle_for_s: now.saturating_duration_since(e.last_activity).as_secs_f64(),
                in_use: e.in_flight,
                memory_running: e.memory_running,
                memory_asleep: e.memory_asleep,
                wakes: e.wakes,
                last_wake: e.last_wake.clone(),
                ports: e
                    .published
                    .iter()
                    .map(|p| format!("{}:{}->{}", p.host_ip, p.host_port, p.container_port))
                    .collect(),
                deep_sleep_blocked: e.deep_sleep_blocked.clone(),
                origin: None,
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit(
        &self,
        id: &str,
        name: &str,
        transition: &'static str,
        from: State,
        to: State,
        trigger: &str,
        duration: Duration,
        error: Option<String>,
    ) {
        let metrics = &self.inner.metrics;
        metrics.transition(transition, trigger, error.is_none());
        if error.is_none() && matches!(transition, "wake" | "sleep" | "deep_sleep") {
            let labels = self
                .inner
                .table
                .lock()
                .get(id)
                .map(|e| policy_labels(&e.policy))
                .unwrap_or_else(|| PolicyLabels {
                    class: "unknown".into(),
                    priority: "unset".into(),
                });
            let seconds = duration.as_secs_f64();
            if transition == "wake" {
                let from = if from == State::DeepSleep {
                    "deep_sleep"
                } else {
                    "sleeping"
                };
                let labels = WakeLabels {
                    class: labels.class,
                    priority: labels.priority,
                    from: from.into(),
                };
                metrics.wake_seconds.get_or_create(&labels).observe(seconds);
            } else if transition == "sleep" {
                metrics.sleep_seconds.get_or_create(&labels).observe(seconds);
            } else {
                metrics.deep_sleep_seconds.get_or_create(&labels).observe(seconds);
            }
        }
        let _ = self.inner.events.send(Transition {
            id: id.to_string(),
            name: name.to_string(),
            transition,
            from,
            to,
            trigger: trigger.to_string(),
            duration_ms: duration.as_secs_f64() * 1e3,
            at_unix_ms: unix_ms(SystemTime::now()),
            error,
        });
    }

    /// Every tracked container's memory and CPU as its cgroup tells them
    /// now, and the host's, for a scrape; read on the blocking pool.
    pub async fn metric_samples(&self) -> (Vec<ContainerSample>, HostSample) {
        struct Wanted {
            id: String,
            pid: Option<u32>,
            has_cgroup: bool,
            memory_at_sleep: Option<u64>,
            sample: ContainerSample,
        }
        let wanted: Vec<Wanted> = {
            let table = self.inner.table.lock();
            table
                .values()
                .map(|e| Wanted {
                    id: e.id.clone(),
                    pid: e.pid,
                    has_cgroup: !matches!(e.state, State::Stopped | State::Stopping | State::DeepSleep),
                    // What sleep saved: only the shim's own sleepers count.
                    memory_at_sleep: e
                        .memory_running
                        .filter(|_| matches!(e.state, State::Sleeping | State::DeepSleep)),
                    sample: ContainerSample {
                        name: e.name.clone(),
                        class: e.policy.class.clone(),
                        state: state_label(e.state),
                        memory_bytes: None,
                        memory_limit_bytes: None,
                        cpu_seconds: None,
                        cpu_limit_cores: e.cpu_limit_cores,
                        memory_saved_bytes: None,
                    },
                })
                .collect()
        };
        self.on_host(move |host| {
            let samples = wanted
                .into_iter()
                .map(|mut w| {
                    if w.has_cgroup {
                        if let Ok(cgroup) = host.cgroup(&w.id, w.pid) {
                            w.sample.memory_bytes = cgroup.memory_usage().ok();
                            w.sample.memory_limit_bytes = cgroup.memory_limit().ok().flatten();
                            w.sample.cpu_seconds = cgroup.cpu_usage_nanos().ok().map(|n| n as f64 / 1e9);
                        }
                    } else {
                        w.sample.memory_bytes = Some(0);
                    }
                    w.sample.memory_saved_bytes = match (w.memory_at_sleep, w.sample.memory_bytes) {
                        (Some(before), Some(now)) => Some(before.saturating_sub(now)),
                        _ => None,
                    };
                    w.sample
                })
                .collect();
            (samples, host.host_sample())
        })
        .await
        .unwrap_or_default()
    }

    /// A container the post-start check stopped (`rootcheck`), as a
    /// transition of its own; the evidence is its trigger.
    pub fn report_standards_stop(&self, id: &str, name: &str, evidence: &str, took: Duration, error: Option<String>) {
        self.inner
            .metrics
            .transition("standards_stop", "standards.non_root", error.is_none());
        let _ = self.inner.events.send(Transition {
            id: id.to_string(),
            name: name.to_string(),
            transition: "standards_stop",
            from: State::Running,
            to: State::Stopped,
            trigger: format!("standards.non_root: {evidence}"),
            duration_ms: took.as_secs_f64() * 1e3,
            at_unix_ms: unix_ms(SystemTime::now()),
            error,
        });
    }
}

/// The labels a container's policy gives its wake, sleep and asleep series.
pub(super) fn policy_labels(policy: &ServicePolicy) -> PolicyLabels {
    let priority = match policy.sleep_policy.priority {
        Some(Priority::High) => "high",
        Some(Priority::Normal) => "normal",
        Some(Priority::Low) => "low",
        None => "unset",
    };
    PolicyLabels {
        class: policy.class.clone(),
        priority: priority.to_string(),
    }
}

/// The state a container is counted under: a transition in progress counts
/// as the state it is leaving for.
fn state_label(state: State) -> StateLabel {
    match state {
        State::Running => StateLabel::Running,
        State::Sleeping | State::Pausing | State::Waking => StateLabel::Sleeping,
        State::Stopping | State::DeepSleep => StateLabel::DeepSleep,
        State::UserPaused => StateLabel::UserPaused,
        State::Stopped => StateLabel::Stopped,
    }
}
