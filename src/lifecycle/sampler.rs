//! The idle sampler: every `check_interval`, sample running containers,
//! record activity, and put the idle ones to sleep.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{activity, Lifecycle, State};

impl Lifecycle {
    /// Samples every running sleep-enabled container each `check_interval`,
    /// records activity, and puts the idle ones to sleep; stops long
    /// sleepers whose class allows deep sleep.
    pub(super) async fn sampler(self) {
        let interval = self.auto_sleep().check_interval.as_duration();
        let idle_threshold = self.auto_sleep().idle_threshold;
        let network_rate = self.auto_sleep().network_idle_rate.bytes();
        let max_sleep = self.auto_sleep().max_sleep_time.as_duration();
        let mut samples: HashMap<String, activity::Sample> = HashMap::new();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.inner.token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let candidates: Vec<(String, Option<u32>, f64, bool)> = {
                let table = self.inner.table.lock();
                table
                    .values()
                    .filter(|e| e.state == State::Running && e.idle_timeout.is_some())
                    .map(|e| (e.id.clone(), e.pid, e.cpu_limit, e.own_network))
                    .collect()
            };
            samples.retain(|id, _| candidates.iter().any(|(c, _, _, _)| c == id));
            let now = Instant::now();
            for (id, pid, cpu_limit, own_network) in &candidates {
                let Some(pid) = pid else { continue };
                let sample = activity::Sample {
                    at: now.into_std(),
                    // Host or shared network: the counters are not its own.
                    net_bytes: if *own_network {
                        self.net_bytes(*pid).unwrap_or(0)
                    } else {
                        0
                    },
                    cpu_nanos: self
                        .cgroup(id, Some(*pid))
                        .and_then(|cg| cg.cpu_usage_nanos().ok())
                        .unwrap_or(0),
                };
                if let Some(previous) = samples.insert(id.clone(), sample) {
                    let verdict = activity::judge(&previous, &sample, *cpu_limit, idle_threshold, network_rate);
                    if !matches!(verdict, activity::Activity::Idle) {
                        if let Some(entry) = self.inner.table.lock().get_mut(id) {
                            entry.last_activity = now;
                        }
                    }
                }
            }
            let (to_sleep, to_stop): (Vec<String>, Vec<String>) = {
                let table = self.inner.table.lock();
                let min_uptime = self.auto_sleep().min_uptime.as_duration();
                let to_sleep = table
                    .values()
                    .filter(|e| e.may_sleep(now, min_uptime))
                    .map(|e| e.id.clone())
                    .collect();
                let to_stop = table
                    .values()
                    .filter(|e| {
                        e.state == State::Sleeping
                            && e.policy.sleep_policy.deep_sleep == Some(true)
                            && e.asleep_since
                                .is_some_and(|t| now.saturating_duration_since(t) >= max_sleep)
                    })
                    .map(|e| e.id.clone())
                    .collect();
                (to_sleep, to_stop)
            };
            for id in to_sleep {
                let this = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = this.sleep(&id, "idle", false).await {
                        tracing::warn!(error = %e, "sleep failed");
                    }
                });
            }
            for id in to_stop {
                let this = self.clone();
                tokio::spawn(async move { this.deep_sleep(&id).await });
            }
        }
    }
}
