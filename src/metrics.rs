//! The seed's metrics, in Prometheus text format at `GET /_forge/v1/metrics`:
//! containers by state, transitions with their times, wake latency, memory
//! by state, standards changes and denials, and the proxy's own counters.
//!
//! Counters and histograms are recorded where things happen; the per-state
//! gauges are filled from the lifecycle's table when scraped (the caller
//! hands in one [`ContainerSample`] per container), so they can never drift
//! from what `forge-shim status` shows.
//!
//! Leaf vocabulary: this module knows no other part of the shim.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The state a container is counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateLabel {
    Running,
    Sleeping,
    DeepSleep,
    UserPaused,
    Stopped,
}

impl StateLabel {
    const ALL: [StateLabel; 5] = [
        StateLabel::Running,
        StateLabel::Sleeping,
        StateLabel::DeepSleep,
        StateLabel::UserPaused,
        StateLabel::Stopped,
    ];

    fn name(self) -> &'static str {
        match self {
            StateLabel::Running => "running",
            StateLabel::Sleeping => "sleeping",
            StateLabel::DeepSleep => "deep_sleep",
            StateLabel::UserPaused => "user_paused",
            StateLabel::Stopped => "stopped",
        }
    }
}

/// One tracked container at scrape time.
#[derive(Clone, Copy, Debug)]
pub struct ContainerSample {
    pub state: StateLabel,
    /// The memory it holds in that state, when known.
    pub memory_bytes: Option<u64>,
}

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
    /// Client connections accepted.
    pub connections: Counter,
    pub connections_open: Gauge,
    /// Connections refused at `max_connections` with none idle to give way.
    pub connections_refused: Counter,
    /// Requests served, on either path.
    pub requests: Counter,
    /// Of those, the requests forwarded as read (the fast path).
    pub requests_fast_path: Counter,
    /// Containers created straight on dockerd, around the shim (bypass
    /// detection; `forge_shim_unmanaged_creates_total`).
    pub unmanaged_creates: Counter,
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
        let connections = Counter::default();
        registry.register("connections", "Client connections accepted", connections.clone());
        let connections_open = Gauge::default();
        registry.register("connections_open", "Open client connections", connections_open.clone());
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Client connections refused: max_connections open, none idle",
            connections_refused.clone(),
        );
        let unmanaged_creates = Counter::default();
        registry.register(
            "unmanaged_creates",
            "Containers created straight on dockerd, around the shim",
            unmanaged_creates.clone(),
        );
        Metrics {
            registry,
            unmanaged_creates,
            transitions,
            wake_seconds,
            sleep_seconds,
            standards_changes,
            standards_denials,
            containers,
            memory_bytes,
            connections,
            connections_open,
            connections_refused,
            requests,
            requests_fast_path,
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

    /// The exposition, with the per-state gauges refreshed from `containers`.
    pub fn render(&self, containers: &[ContainerSample]) -> String {
        self.containers.clear();
        self.memory_bytes.clear();
        for state in StateLabel::ALL {
            self.containers.get_or_create(&state_labels(state)).set(0);
        }
        for sample in containers {
            let labels = state_labels(sample.state);
            self.containers.get_or_create(&labels).inc();
            if let Some(bytes) = sample.memory_bytes {
                self.memory_bytes
                    .get_or_create(&labels)
                    .inc_by(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

fn state_labels(state: StateLabel) -> StateLabels {
    StateLabels {
        state: state.name().to_string(),
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
        metrics.requests.inc();
        let text = metrics.render(&[
            ContainerSample {
                state: StateLabel::Sleeping,
                memory_bytes: Some(4096),
            },
            ContainerSample {
                state: StateLabel::Running,
                memory_bytes: None,
            },
        ]);
        assert!(
            text.contains("forge_shim_transitions_total{transition=\"wake\",trigger=\"exec\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("forge_shim_standards_denials_total{rule=\"deny.privileged\"} 1"),
            "{text}"
        );
        assert!(text.contains("forge_shim_containers{state=\"sleeping\"} 1"), "{text}");
        assert!(text.contains("forge_shim_containers{state=\"stopped\"} 0"), "{text}");
        assert!(
            text.contains("forge_shim_memory_bytes{state=\"sleeping\"} 4096"),
            "{text}"
        );
        assert!(text.contains("forge_shim_requests_total 1"), "{text}");
        assert!(text.contains("forge_shim_wake_seconds_bucket"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
