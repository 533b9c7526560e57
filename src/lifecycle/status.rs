//! What the lifecycle tells: the status table and the transitions stream.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

use super::{unix_ms, Lifecycle, State, WakeRecord};

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
        if error.is_none() {
            match transition {
                "wake" => metrics.wake_seconds.observe(duration.as_secs_f64()),
                "sleep" => metrics.sleep_seconds.observe(duration.as_secs_f64()),
                _ => {}
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
