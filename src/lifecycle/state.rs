//! What the lifecycle knows about one container, and the pure decisions made
//! on it: is it idle, may it sleep, is it the shim's to wake.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

use crate::config::{policy, ContainerIdentity, HumanDuration, LoadedConfig, ServicePolicy};

/// A container's state as the shim sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    /// The shim is pausing it; requests that arrive now wait, then wake it.
    Pausing,
    /// Paused by the shim, memory maybe squeezed.
    Sleeping,
    /// The shim is unpausing (or starting) it.
    Waking,
    /// The shim is stopping a long sleeper.
    Stopping,
    /// Stopped by the shim after `max_sleep_time`; started on demand.
    DeepSleep,
    /// Paused by someone else: never woken automatically.
    UserPaused,
    /// Not running, and not by the shim's doing.
    Stopped,
}

impl State {
    /// Whether the shim holds it asleep on dockerd, paused or stopped by a
    /// deep sleep (or may, mid-transition): the states whose `ps` and
    /// inspect answers the proxy disguises.
    pub fn is_disguised(self) -> bool {
        matches!(
            self,
            State::Pausing | State::Sleeping | State::Waking | State::Stopping | State::DeepSleep
        )
    }

    /// Whether the shim put it to sleep, so a request should wake it.
    pub fn is_asleep(self) -> bool {
        matches!(
            self,
            State::Pausing | State::Sleeping | State::Waking | State::Stopping | State::DeepSleep
        )
    }
}

/// One tracked container.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub project: Option<String>,
    pub service: Option<String>,
    /// Compose services this one depends on (same project).
    pub depends_on: Vec<String>,
    /// What its policy is resolved from again when the config is reloaded.
    pub image: Option<String>,
    pub labels: Option<std::sync::Arc<serde_json::Map<String, serde_json::Value>>>,
    pub policy: ServicePolicy,
    /// Sleep after this long idle; `None`: never sleeps.
    pub idle_timeout: Option<Duration>,
    pub state: State,
    /// Wall-clock time the current state began, for status output.
    pub since: SystemTime,
    /// When the container was last seen starting (for `min_uptime`).
    pub running_since: Instant,
    pub last_activity: Instant,
    /// Requests and streams through the shim that use the container now.
    pub in_flight: u32,
    pub pid: Option<u32>,
    /// TCP ports published on the host while it runs, held while it is
    /// stopped by the shim.
    pub published: Vec<crate::docker::PublishedPort>,
    /// Whether its network counters are its own (see `ContainerInfo`).
    pub own_network: bool,
    /// Its addresses on Docker networks, to match conntrack events.
    pub addresses: Vec<std::net::IpAddr>,
    /// CPU limit in cores, for the idle threshold (one core when unset).
    pub cpu_limit: f64,
    /// The `NanoCpus` limit in cores as set; `None` when unset.
    pub cpu_limit_cores: Option<f64>,
    pub asleep_since: Option<Instant>,
    pub wakes: u64,
    pub last_wake: Option<WakeRecord>,
    pub memory_running: Option<u64>,
    pub memory_asleep: Option<u64>,
    /// Network bytes counted when it fell asleep; more means traffic.
    pub net_bytes_at_sleep: Option<u64>,
    /// Where those bytes are counted while it sleeps: the host ends of its
    /// veth pairs (one host table read serves every sleeper), or, when
    /// `None`, its own namespace's table.
    pub net_peers: Option<std::sync::Arc<[String]>>,
    /// Unicast IP bytes its namespace had received when it fell asleep (or
    /// at the last chatter): the bytes above only wake it when this grew
    /// too. `None`: unreadable, the bytes alone decide.
    pub net_unicast_at_sleep: Option<u64>,
    /// Limits saved before a squeeze, restored on wake.
    pub saved_limits: Option<super::cgroup::SavedLimits>,
    /// `State.Health` as dockerd told it right before the shim paused it
    /// (dockerd turns a frozen container `unhealthy`; clients of the shim
    /// are shown this instead).
    pub health_at_sleep: Option<serde_json::Value>,
    /// Short naps in a row (sleeps that ended before `min_sleep_time`):
    /// each doubles the idle timeout, up to [`MAX_NAP_BACKOFF`] doublings.
    pub short_naps: u32,
    /// Why this sleep may not become a deep sleep (a stop would delete the
    /// container, or lose files in its tmpfs); cleared when it wakes.
    pub deep_sleep_blocked: Option<String>,
}

/// At most 2^3 = 8 times the configured idle timeout after short naps.
pub const MAX_NAP_BACKOFF: u32 = 3;

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct WakeRecord {
    pub latency_ms: f64,
    pub trigger: String,
    pub at_unix_ms: u64,
}

impl Entry {
    pub fn new(info: &crate::docker::ContainerInfo, loaded: &LoadedConfig, now: Instant) -> Entry {
        let identity = ContainerIdentity {
            name: info.name.as_deref(),
            image: info.image.as_deref(),
            labels: info.labels.as_ref(),
            ..Default::default()
        };
        let (resolved, idle_timeout) = fit(loaded, &identity);
        let label = |key: &str| identity.label(key).map(str::to_string);
        let state = if info.paused {
            State::UserPaused
        } else if info.running {
            State::Running
        } else {
            State::Stopped
        };
        Entry {
            id: info.id.clone(),
            name: info.name.clone().unwrap_or_default(),
            project: label(policy::LABEL_COMPOSE_PROJECT),
            service: label(policy::LABEL_COMPOSE_SERVICE),
            depends_on: label(policy::LABEL_COMPOSE_DEPENDS_ON)
                .map(|deps| parse_depends_on(&deps))
                .unwrap_or_default(),
            image: info.image.clone(),
            labels: info.labels.clone().map(std::sync::Arc::new),
            policy: resolved,
            idle_timeout,
            state,
            since: SystemTime::now(),
            running_since: now,
            last_activity: now,
            in_flight: 0,
            pid: info.pid.filter(|p| *p > 0).map(|p| p as u32),
            addresses: info.addresses.clone(),
            own_network: info.own_network,
            published: info.published.clone(),
            cpu_limit: info.nano_cpus.filter(|n| *n > 0).map(|n| n as f64 / 1e9).unwrap_or(1.0),
            cpu_limit_cores: info.nano_cpus.filter(|n| *n > 0).map(|n| n as f64 / 1e9),
            asleep_since: None,
            wakes: 0,
            last_wake: None,
            memory_running: None,
            memory_asleep: None,
            net_bytes_at_sleep: None,
            net_peers: None,
            net_unicast_at_sleep: None,
            saved_limits: None,
            health_at_sleep: None,
            short_naps: 0,
            deep_sleep_blocked: None,
        }
    }

    /// Resolves its policy and idle timeout again, under a reloaded config.
    /// Returns whether its idle timeout changed.
    pub fn refit(&mut self, loaded: &LoadedConfig) -> bool {
        let identity = ContainerIdentity {
            name: Some(&self.name).filter(|n| !n.is_empty()).map(String::as_str),
            image: self.image.as_deref(),
            labels: self.labels.as_deref(),
            ..Default::default()
        };
        let (policy, idle_timeout) = fit(loaded, &identity);
        let changed = idle_timeout != self.idle_timeout;
        self.policy = policy;
        self.idle_timeout = idle_timeout;
        changed
    }

    pub fn set_state(&mut self, state: State) {
        if state == State::Running {
            self.deep_sleep_blocked = None;
        }
        self.state = state;
        self.since = SystemTime::now();
    }

    /// The idle timeout in force: the configured one, doubled for each
    /// short nap in a row.
    pub fn effective_idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
            .map(|timeout| timeout.saturating_mul(1 << self.short_naps.min(MAX_NAP_BACKOFF)))
    }

    /// Called when a sleep of `slept` ends in a wake. A sleep shorter than
    /// the policy's `min_sleep_time` did not pay for its two transitions:
    /// the container is busier than its idle timeout says, so the next one
    /// doubles (flapping backs off). A sleep that lasted resets it.
    pub fn record_sleep(&mut self, slept: Duration) {
        let min_sleep = self.policy.sleep_policy.min_sleep_time.map(HumanDuration::as_duration);
        match min_sleep {
            Some(min_sleep) if slept < min_sleep => self.short_naps = (self.short_naps + 1).min(MAX_NAP_BACKOFF),
            _ => self.short_naps = 0,
        }
    }

    /// Whether it may be put to sleep now: a running, sleep-enabled container
    /// with nothing in flight, up for `min_uptime` and idle for its
    /// (effective) timeout.
    pub fn may_sleep(&self, now: Instant, min_uptime: Duration) -> bool {
        let Some(idle_timeout) = self.effective_idle_timeout() else {
            return false;
        };
        self.state == State::Running
            && self.in_flight == 0
            && now.saturating_duration_since(self.running_since) >= min_uptime
            && now.saturating_duration_since(self.last_activity) >= idle_timeout
    }
}

/// A container's policy and idle timeout under `loaded`.
fn fit(loaded: &LoadedConfig, identity: &ContainerIdentity<'_>) -> (ServicePolicy, Option<Duration>) {
    let resolved = loaded.policy.resolve(identity);
    let label = |key: &str| identity.label(key).map(str::to_string);
    let idle_timeout = sleep_timeout(
        &resolved,
        label(policy::LABEL_SLEEP),
        label(policy::LABEL_SLEEP_IDLE_TIMEOUT),
    );
    (resolved, idle_timeout)
}

/// The idle timeout from class/service policy and the container's labels:
/// `forge.sleep=false` opts out, `forge.sleep=true` opts in, and
/// `forge.sleep.idle-timeout` overrides the timeout.
pub fn sleep_timeout(
    policy: &ServicePolicy,
    sleep_label: Option<String>,
    timeout_label: Option<String>,
) -> Option<Duration> {
    let enabled = match sleep_label.as_deref().map(str::trim) {
        Some("false" | "0" | "no") => false,
        Some("true" | "1" | "yes") => true,
        _ => policy.sleep_policy.enabled.unwrap_or(false),
    };
    if !enabled {
        return None;
    }
    let from_label = timeout_label.and_then(|t| HumanDuration::parse(&t).ok());
    Some(
        from_label
            .or(policy.sleep_policy.idle_timeout)
            .map(HumanDuration::as_duration)
            .unwrap_or(Duration::from_secs(300)),
    )
}

/// compose's `com.docker.compose.depends_on` label:
/// `db:service_started:false,cache:service_healthy:true`.
pub fn parse_depends_on(label: &str) -> Vec<String> {
    label
        .split(',')
        .filter_map(|dep| dep.split(':').next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(enabled: Option<bool>, timeout: Option<u64>) -> ServicePolicy {
        ServicePolicy {
            class: "normal".into(),
            service_entry: None,
            resources: Default::default(),
            sleep_policy: crate::config::SleepPolicy {
                enabled,
                idle_timeout: timeout.map(HumanDuration::from_secs),
                ..Default::default()
            },
            auto_start: false,
        }
    }

    #[test]
    fn labels_choose_sleep() {
        let s = |p, a: Option<&str>, b: Option<&str>| sleep_timeout(&p, a.map(Into::into), b.map(Into::into));
        assert_eq!(
            s(policy(Some(true), Some(300)), None, None),
            Some(Duration::from_secs(300))
        );
        assert_eq!(s(policy(Some(false), Some(300)), None, None), None);
        assert_eq!(s(policy(Some(true), Some(300)), Some("false"), None), None);
        assert_eq!(
            s(policy(Some(false), None), Some("true"), Some("2s")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            s(policy(Some(true), Some(300)), None, Some("5m")),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            s(policy(Some(true), Some(60)), None, Some("bogus")),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn depends_on_label() {
        assert_eq!(
            parse_depends_on("db:service_started:false,cache:service_healthy:true"),
            vec!["db", "cache"]
        );
        assert_eq!(parse_depends_on(""), Vec::<String>::new());
    }

    #[tokio::test(start_paused = true)]
    async fn short_naps_double_the_idle_timeout_and_a_long_sleep_resets_it() {
        let loaded = crate::config::Config::from_yaml("", "t").unwrap();
        let info = crate::docker::ContainerInfo {
            id: "abc".into(),
            running: true,
            ..Default::default()
        };
        let mut entry = Entry::new(&info, &loaded, Instant::now());
        entry.idle_timeout = Some(Duration::from_secs(10));
        // No min_sleep_time: naps never count.
        entry.policy.sleep_policy.min_sleep_time = None;
        entry.record_sleep(Duration::from_secs(1));
        assert_eq!(entry.effective_idle_timeout(), Some(Duration::from_secs(10)));

        entry.policy.sleep_policy.min_sleep_time = Some(HumanDuration::from_secs(60));
        entry.record_sleep(Duration::from_secs(5));
        assert_eq!(entry.effective_idle_timeout(), Some(Duration::from_secs(20)));
        entry.record_sleep(Duration::from_secs(59));
        assert_eq!(entry.effective_idle_timeout(), Some(Duration::from_secs(40)));
        for _ in 0..10 {
            entry.record_sleep(Duration::ZERO);
        }
        assert_eq!(
            entry.effective_idle_timeout(),
            Some(Duration::from_secs(80)),
            "capped at 8x"
        );
        let start = Instant::now();
        entry.last_activity = start;
        entry.running_since = start;
        assert!(!entry.may_sleep(start + Duration::from_secs(79), Duration::ZERO));
        assert!(entry.may_sleep(start + Duration::from_secs(80), Duration::ZERO));

        entry.record_sleep(Duration::from_secs(60));
        assert_eq!(entry.effective_idle_timeout(), Some(Duration::from_secs(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn may_sleep_rules() {
        let loaded = crate::config::Config::from_yaml("", "t").unwrap();
        let info = crate::docker::ContainerInfo {
            id: "abc".into(),
            running: true,
            ..Default::default()
        };
        let start = Instant::now();
        let mut entry = Entry::new(&info, &loaded, start);
        entry.idle_timeout = Some(Duration::from_secs(10));
        let min_uptime = Duration::from_secs(5);
        assert!(
            !entry.may_sleep(start + Duration::from_secs(9), min_uptime),
            "not idle long enough"
        );
        assert!(entry.may_sleep(start + Duration::from_secs(10), min_uptime));
        entry.in_flight = 1;
        assert!(
            !entry.may_sleep(start + Duration::from_secs(60), min_uptime),
            "a live session"
        );
        entry.in_flight = 0;
        entry.running_since = start + Duration::from_secs(58);
        assert!(
            !entry.may_sleep(start + Duration::from_secs(60), min_uptime),
            "min_uptime"
        );
        entry.running_since = start;
        entry.state = State::UserPaused;
        assert!(
            !entry.may_sleep(start + Duration::from_secs(60), min_uptime),
            "the user's"
        );
        entry.state = State::Running;
        entry.idle_timeout = None;
        assert!(
            !entry.may_sleep(start + Duration::from_secs(60), min_uptime),
            "never sleeps"
        );
    }
}
