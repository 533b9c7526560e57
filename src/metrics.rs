//! The seed's metrics, in Prometheus text format at `GET /_forge/v1/metrics`:
//! containers by state, transitions with their times, wake latency, memory
//! by state, standards changes and denials, and the proxy's own counters.
//!
//! Counters and histograms are recorded where things happen; the per-state
//! gauges are filled from the lifecycle's table when scraped, so they can
//! never drift from what `forge-shim status` shows.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::lifecycle::{State, StatusRow};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub transition: String,
    pub trigger: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

pub struct Metrics {
    registry: Registry,
    pub transitions: Family<TransitionLabels, Counter>,
    pub wake_seconds: Histogram,
    pub sleep_seconds: Histogram,
    pub standards_changes: Family<RuleLabels, Counter>,
    pub standards_denials: Family<RuleLabels, Counter>,
    containers: Family<StateLabels, Gauge>,
    memory_bytes: Family<StateLabels, Gauge>,
    requests: Counter,
    requests_fast_path: Counter,
    connections_open: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("forge_shim");
        let transitions = Family::<TransitionLabels, Counter>::default();
        registry.register("transitions", "Sleep and wake transitions", transitions.clone());
        // 1 ms .. ~4 s: the seed's targets are 50, 200 and 500 ms.
        let wake_seconds = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.001, 2.0, 13,
        ));
        registry.register(
            "wake_seconds",
            "Time to wake a sleeping container",
            wake_seconds.clone(),
        );
        let sleep_seconds = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.001, 2.0, 13,
        ));
        registry.register(
            "sleep_seconds",
            "Time to pause an idle container",
            sleep_seconds.clone(),
        );
        let standards_changes = Family::<RuleLabels, Counter>::default();
        registry.register(
            "standards_changes",
            "Changes made to requests by the standards",
            standards_changes.clone(),
        );
        let standards_denials = Family::<RuleLabels, Counter>::default();
        registry.register(
            "standards_denials",
            "Requests denied by the standards",
            standards_denials.clone(),
        );
        let containers = Family::<StateLabels, Gauge>::default();
        registry.register("containers", "Tracked containers by state", containers.clone());
        let memory_bytes = Family::<StateLabels, Gauge>::default();
        registry.register(
            "memory_bytes",
            "Memory of tracked containers by state",
            memory_bytes.clone(),
        );
        let requests = Counter::default();
        registry.register("requests", "Requests through the shim", requests.clone());
        let requests_fast_path = Counter::default();
        registry.register(
            "requests_fast_path",
            "Requests forwarded as read, without re-encoding",
            requests_fast_path.clone(),
        );
        let connections_open = Gauge::default();
        registry.register("connections_open", "Open client connections", connections_open.clone());
        Metrics {
            registry,
            transitions,
            wake_seconds,
            sleep_seconds,
            standards_changes,
            standards_denials,
            containers,
            memory_bytes,
            requests,
            requests_fast_path,
            connections_open,
        }
    }

    pub fn transition(&self, transition: &str, trigger: &str, ok: bool) {
        self.transitions
            .get_or_create(&TransitionLabels {
                transition: transition.to_string(),
                trigger: trigger.to_string(),
                result: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
    }

    pub fn rule(family: &Family<RuleLabels, Counter>, rule: &str) {
        family.get_or_create(&RuleLabels { rule: rule.to_string() }).inc();
    }

    /// The exposition, with the gauges refreshed from `rows` and the proxy
    /// counters.
    pub fn render(&self, rows: &[StatusRow], stats: &crate::proxy::ProxyStats) -> String {
        self.containers.clear();
        self.memory_bytes.clear();
        for state in ["running", "sleeping", "deep_sleep", "user_paused", "stopped"] {
            self.containers
                .get_or_create(&StateLabels { state: state.into() })
                .set(0);
        }
        for row in rows {
            let state = state_name(row.state);
            self.containers
                .get_or_create(&StateLabels { state: state.into() })
                .inc();
            let memory = match row.state {
                State::Sleeping => row.memory_asleep,
                State::Running => row.memory_running,
                _ => None,
            };
            if let Some(bytes) = memory {
                self.memory_bytes
                    .get_or_create(&StateLabels { state: state.into() })
                    .inc_by(bytes as i64);
            }
        }
        self.requests.inc_by(
            stats
                .requests_total
                .load(Ordering::Relaxed)
                .saturating_sub(self.requests.get()),
        );
        self.requests_fast_path.inc_by(
            stats
                .requests_fast_path
                .load(Ordering::Relaxed)
                .saturating_sub(self.requests_fast_path.get()),
        );
        self.connections_open
            .set(stats.connections_open.load(Ordering::Relaxed) as i64);
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Running => "running",
        State::Pausing | State::Sleeping | State::Waking => "sleeping",
        State::Stopping | State::DeepSleep => "deep_sleep",
        State::UserPaused => "user_paused",
        State::Stopped => "stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new();
        metrics.transition("wake", "exec", true);
        metrics.wake_seconds.observe(0.009);
        Metrics::rule(&metrics.standards_denials, "deny.privileged");
        let text = metrics.render(&[], &crate::proxy::ProxyStats::default());
        assert!(
            text.contains("forge_shim_transitions_total{transition=\"wake\",trigger=\"exec\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("forge_shim_standards_denials_total{rule=\"deny.privileged\"} 1"),
            "{text}"
        );
        assert!(text.contains("forge_shim_containers{state=\"sleeping\"} 0"), "{text}");
        assert!(text.contains("forge_shim_wake_seconds_bucket"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
