//! The seed's metrics, in Prometheus text format at `GET /_forge/v1/metrics`
//! (and `GET /metrics` on `metrics.listen`): containers by state,
//! transitions with their times (wake and sleep by class and priority), time
//! spent asleep, memory and CPU by container and state, memory saved by
//! sleep, the host's memory and load, standards changes and denials, and the
//! proxy's own counters, request latency and responses by status class.
//!
//! Counters and histograms are recorded where things happen; the gauges are
//! filled from the lifecycle's table and the cgroups when scraped (the
//! caller hands in one [`ContainerSample`] per container and a
//! [`HostSample`]), so they can never drift from what `forge-shim status`
//! shows. README.md ("Metrics") defines each one.
//!
//! Leaf vocabulary: this module knows no other part of the shim.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

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
#[derive(Clone, Debug)]
pub struct ContainerSample {
    pub name: String,
    pub class: String,
    pub state: StateLabel,
    /// Memory charged to its cgroup now (page cache included); `None` when
    /// it has no cgroup (stopped) or it could not be read.
    pub memory_bytes: Option<u64>,
    /// Its cgroup's memory limit; `None` when unlimited or unread.
    pub memory_limit_bytes: Option<u64>,
    /// CPU time its cgroup has used since it was created, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Its `NanoCpus` limit in cores; `None` when unset.
    pub cpu_limit_cores: Option<f64>,
    /// Memory it held when it fell asleep less what it holds now, for a
    /// container the shim put to sleep (all of it once deep-slept).
    pub memory_saved_bytes: Option<u64>,
}

/// The host at scrape time (`/proc/meminfo`, `/proc/loadavg`, `/proc/stat`);
/// a field is `None` when its file could not be read.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostSample {
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
    pub load1: Option<f64>,
    pub cpus: Option<u64>,
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

/// A container's class and sleep priority, as its policy resolved them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub class: String,
    /// `high`, `normal`, `low`, or `unset`.
    pub priority: String,
}

/// A wake's class and priority, and what it woke from: `sleeping` (an
/// unpause) or `deep_sleep` (a start).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WakeLabels {
    pub class: String,
    pub priority: String,
    pub from: String,
}

/// Which figure of a host family: `total`, `available`, `1m`, ….
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

fn kind_labels(kind: &str) -> KindLabels {
    KindLabels { kind: kind.to_string() }
}

/// One container's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabels {
    pub name: String,
    pub class: String,
    pub state: String,
}

/// Which path served a request: `fast` (forwarded as read) or `full`
/// (through hyper, the shim's own API included).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    pub path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub path: String,
    /// `1xx` … `5xx`.
    pub code: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms .. 10 s, with the seed's wake targets (50, 200 and 500 ms) as
/// bucket bounds, so "wakes over 500 ms" is a bucket, not an estimate.
fn transition_histogram() -> Histogram {
    Histogram::new(TRANSITION_BUCKETS.iter().copied())
}

const TRANSITION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// 1 s .. ~9 h: idle timeouts are minutes, `max_sleep_time` an hour.
fn asleep_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// 0.5 ms .. ~8 s: dockerd answers most calls in milliseconds; a wake
/// before the answer adds up to `transition_timeout`.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    /// Held while [`Metrics::render`] clears, fills and encodes the
    /// gauges, so two renders at once (a scrape and a dashboard poll, on
    /// `worker_threads: 0`) never see each other's half-filled families.
    render_lock: parking_lot::Mutex<()>,
    pub transitions: Family<TransitionLabels, Counter>,
    /// Time to wake, by class, priority and what it woke from.
    pub wake_seconds: HistogramFamily<WakeLabels>,
    /// Time to pause, by class and priority.
    pub sleep_seconds: HistogramFamily<PolicyLabels>,
    /// Time to stop a long sleeper, by class and priority.
    pub deep_sleep_seconds: HistogramFamily<PolicyLabels>,
    /// How long a sleep lasted, observed when it ends by a wake.
    pub asleep_seconds: HistogramFamily<PolicyLabels>,
    pub standards_changes: Family<RuleLabels, Counter>,
    pub standards_denials: Family<RuleLabels, Counter>,
    /// Hardened containers that failed because of a fitted rule.
    pub hardening_failures: Family<RuleLabels, Counter>,
    containers: Family<StateLabels, Gauge>,
    memory_bytes: Family<StateLabels, Gauge>,
    container_memory: Family<ContainerLabels, Gauge>,
    container_memory_limit: Family<ContainerLabels, Gauge>,
    container_cpu: Family<ContainerLabels, Counter<f64, AtomicU64>>,
    container_cpu_limit: Family<ContainerLabels, Gauge<f64, AtomicU64>>,
    memory_saved: Gauge,
    /// Left out when unread: a missing figure must not read as zero.
    host_memory: Family<KindLabels, Gauge>,
    host_load: Family<KindLabels, Gauge<f64, AtomicU64>>,
    host_cpus: Family<KindLabels, Gauge>,
    /// Client connections accepted.
    pub connections: Counter,
    pub connections_open: Gauge,
    /// Connections refused at `max_connections` with none idle to give way.
    pub connections_refused: Counter,
    /// Requests served, on either path.
    pub requests: Counter,
    /// Of those, the requests forwarded as read (the fast path).
    pub requests_fast_path: Counter,
    /// From a request's head to its response's head, by path.
    request_seconds: HistogramFamily<PathLabels>,
    /// Responses sent, by path and status class.
    responses: Family<ResponseLabels, Counter>,
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
        let wake_seconds: HistogramFamily<WakeLabels> = Family::new_with_constructor(transition_histogram);
        registry.register(
            "wake_seconds",
            "Time to wake a sleeping container (unpause or start), by class and priority",
            wake_seconds.clone(),
        );
        let sleep_seconds: HistogramFamily<PolicyLabels> = Family::new_with_constructor(transition_histogram);
        registry.register(
            "sleep_seconds",
            "Time to pause an idle container, by class and priority",
            sleep_seconds.clone(),
        );
        let deep_sleep_seconds: HistogramFamily<PolicyLabels> = Family::new_with_constructor(transition_histogram);
        registry.register(
            "deep_sleep_seconds",
            "Time to stop a long sleeper, by class and priority",
            deep_sleep_seconds.clone(),
        );
        let asleep_seconds: HistogramFamily<PolicyLabels> = Family::new_with_constructor(asleep_histogram);
        registry.register(
            "asleep_seconds",
            "How long a sleep lasted, observed when a wake ends it",
            asleep_seconds.clone(),
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
        let hardening_failures = Family::<RuleLabels, Counter>::default();
        registry.register(
            "hardening_failures",
            "Hardened containers that exited soon after start with a sign of a fitted rule in their log",
            hardening_failures.clone(),
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
        let request_seconds: HistogramFamily<PathLabels> = Family::new_with_constructor(request_histogram);
        registry.register(
            "request_seconds",
            "From a request's head to its response's head",
            request_seconds.clone(),
        );
        let responses = Family::<ResponseLabels, Counter>::default();
        registry.register("responses", "Responses sent, by status class", responses.clone());
        let container_memory = Family::<ContainerLabels, Gauge>::default();
        registry.register(
            "container_memory_bytes",
            "Memory charged to a tracked container's cgroup, page cache included",
            container_memory.clone(),
        );
        let container_memory_limit = Family::<ContainerLabels, Gauge>::default();
        registry.register(
            "container_memory_limit_bytes",
            "A tracked container's cgroup memory limit",
            container_memory_limit.clone(),
        );
        let container_cpu = Family::<ContainerLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "container_cpu_seconds",
            "CPU time a tracked container's cgroup has used",
            container_cpu.clone(),
        );
        let container_cpu_limit = Family::<ContainerLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "container_cpu_limit_cores",
            "A tracked container's NanoCpus limit, in cores",
            container_cpu_limit.clone(),
        );
        let memory_saved = Gauge::default();
        registry.register(
            "memory_saved_bytes",
            "Memory the shim's sleepers held when they fell asleep, less what they hold now",
            memory_saved.clone(),
        );
        let host_memory = Family::<KindLabels, Gauge>::default();
        registry.register(
            "host_memory_bytes",
            "The host's /proc/meminfo: MemTotal, MemAvailable, SwapTotal, SwapFree",
            host_memory.clone(),
        );
        let host_load = Family::<KindLabels, Gauge<f64, AtomicU64>>::default();
        registry.register("host_load", "The host's 1-minute load average", host_load.clone());
        let host_cpus = Family::<KindLabels, Gauge>::default();
        registry.register(
            "host_cpus",
            "CPUs the host's kernel lists in /proc/stat",
            host_cpus.clone(),
        );
        let unmanaged_creates = Counter::default();
        registry.register(
            "unmanaged_creates",
            "Containers created straight on dockerd, around the shim",
            unmanaged_creates.clone(),
        );
        Metrics {
            registry,
            render_lock: parking_lot::Mutex::new(()),
            unmanaged_creates,
            transitions,
            wake_seconds,
            sleep_seconds,
            deep_sleep_seconds,
            asleep_seconds,
            standards_changes,
            standards_denials,
            hardening_failures,
            containers,
            memory_bytes,
            container_memory,
            container_memory_limit,
            container_cpu,
            container_cpu_limit,
            memory_saved,
            host_memory,
            host_load,
            host_cpus,
            connections,
            connections_open,
            connections_refused,
            requests,
            requests_fast_path,
            request_seconds,
            responses,
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

    pub fn hardening_failure(&self, rule: &str) {
        Metrics::rule(&self.hardening_failures, rule);
    }

    pub fn rule(family: &Family<RuleLabels, Counter>, rule: &str) {
        family.get_or_create(&RuleLabels { rule: rule.to_string() }).inc();
    }

    /// A response sent on `path` (`fast` or `full`) with `status`, `took`
    /// after its request's head arrived.
    pub fn response(&self, path: &str, status: u16, took: std::time::Duration) {
        let path = path.to_string();
        self.request_seconds
            .get_or_create(&PathLabels { path: path.clone() })
            .observe(took.as_secs_f64());
        let code = format!("{}xx", (status / 100).clamp(1, 5));
        self.responses.get_or_create(&ResponseLabels { path, code }).inc();
    }

    /// The exposition, with the gauges refreshed from `containers` and
    /// `host`.
    pub fn render(&self, containers: &[ContainerSample], host: &HostSample) -> String {
        let _rendering = self.render_lock.lock();
        self.containers.clear();
        self.memory_bytes.clear();
        self.container_memory.clear();
        self.container_memory_limit.clear();
        self.container_cpu.clear();
        self.container_cpu_limit.clear();
        for state in StateLabel::ALL {
            self.containers.get_or_create(&state_labels(state)).set(0);
            self.memory_bytes.get_or_create(&state_labels(state)).set(0);
        }
        let mut saved: u64 = 0;
        for sample in containers {
            let labels = state_labels(sample.state);
            self.containers.get_or_create(&labels).inc();
            let own = ContainerLabels {
                name: sample.name.clone(),
                class: sample.class.clone(),
                state: sample.state.name().to_string(),
            };
            if let Some(bytes) = sample.memory_bytes {
                self.memory_bytes.get_or_create(&labels).inc_by(gauge_value(bytes));
                self.container_memory.get_or_create(&own).set(gauge_value(bytes));
            }
            if let Some(limit) = sample.memory_limit_bytes {
                self.container_memory_limit.get_or_create(&own).set(gauge_value(limit));
            }
            if let Some(seconds) = sample.cpu_seconds {
                self.container_cpu.get_or_create(&own).inc_by(seconds);
            }
            if let Some(cores) = sample.cpu_limit_cores {
                self.container_cpu_limit.get_or_create(&own).set(cores);
            }
            saved = saved.saturating_add(sample.memory_saved_bytes.unwrap_or(0));
        }
        self.memory_saved.set(gauge_value(saved));
        self.host_memory.clear();
        self.host_load.clear();
        self.host_cpus.clear();
        for (kind, value) in [
            ("total", host.memory_total_bytes),
            ("available", host.memory_available_bytes),
            ("swap_total", host.swap_total_bytes),
            ("swap_free", host.swap_free_bytes),
        ] {
            if let Some(value) = value {
                self.host_memory
                    .get_or_create(&kind_labels(kind))
                    .set(gauge_value(value));
            }
        }
        if let Some(load) = host.load1 {
            self.host_load.get_or_create(&kind_labels("1m")).set(load);
        }
        if let Some(cpus) = host.cpus {
            self.host_cpus
                .get_or_create(&kind_labels("online"))
                .set(gauge_value(cpus));
        }
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

fn gauge_value(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

fn state_labels(state: StateLabel) -> StateLabels {
    StateLabels {
        state: state.name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, state: StateLabel) -> ContainerSample {
        ContainerSample {
            name: name.to_string(),
            class: "normal".to_string(),
            state,
            memory_bytes: None,
            memory_limit_bytes: None,
            cpu_seconds: None,
            cpu_limit_cores: None,
            memory_saved_bytes: None,
        }
    }

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new();
        metrics.transition("wake", "exec", true);
        metrics
            .wake_seconds
            .get_or_create(&WakeLabels {
                class: "normal".into(),
                priority: "normal".into(),
                from: "sleeping".into(),
            })
            .observe(0.009);
        Metrics::rule(&metrics.standards_denials, "deny.privileged");
        metrics.requests.inc();
        metrics.response("fast", 200, std::time::Duration::from_millis(2));
        metrics.response("full", 502, std::time::Duration::from_millis(2));
        let sleeper = ContainerSample {
            memory_bytes: Some(4096),
            memory_limit_bytes: Some(1 << 20),
            cpu_seconds: Some(1.5),
            cpu_limit_cores: Some(0.5),
            memory_saved_bytes: Some(1000),
            ..sample("web", StateLabel::Sleeping)
        };
        let host = HostSample {
            memory_total_bytes: Some(8 << 30),
            memory_available_bytes: Some(4 << 30),
            load1: Some(0.25),
            cpus: Some(2),
            ..HostSample::default()
        };
        let text = metrics.render(&[sleeper, sample("db", StateLabel::Running)], &host);
        for expected in [
            "forge_shim_transitions_total{transition=\"wake\",trigger=\"exec\",result=\"ok\"} 1",
            "forge_shim_standards_denials_total{rule=\"deny.privileged\"} 1",
            "forge_shim_containers{state=\"sleeping\"} 1",
            "forge_shim_containers{state=\"stopped\"} 0",
            "forge_shim_memory_bytes{state=\"sleeping\"} 4096",
            "forge_shim_memory_bytes{state=\"running\"} 0",
            "forge_shim_requests_total 1",
            "forge_shim_wake_seconds_bucket{le=\"0.01\",class=\"normal\",priority=\"normal\",from=\"sleeping\"} 1",
            "forge_shim_container_memory_bytes{name=\"web\",class=\"normal\",state=\"sleeping\"} 4096",
            "forge_shim_container_memory_limit_bytes{name=\"web\",class=\"normal\",state=\"sleeping\"} 1048576",
            "forge_shim_container_cpu_seconds_total{name=\"web\",class=\"normal\",state=\"sleeping\"} 1.5",
            "forge_shim_container_cpu_limit_cores{name=\"web\",class=\"normal\",state=\"sleeping\"} 0.5",
            "forge_shim_memory_saved_bytes 1000",
            "forge_shim_host_memory_bytes{kind=\"available\"} 4294967296",
            "forge_shim_host_load{kind=\"1m\"} 0.25",
            "forge_shim_host_cpus{kind=\"online\"} 2",
            "forge_shim_responses_total{path=\"full\",code=\"5xx\"} 1",
            "forge_shim_request_seconds_count{path=\"fast\"} 1",
        ] {
            assert!(text.contains(expected), "no {expected} in\n{text}");
        }
        // Unknown figures are left out, never shown as zero.
        assert!(!text.contains("kind=\"swap_free\""), "{text}");
        assert!(!text.contains("container_memory_bytes{name=\"db\""), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
