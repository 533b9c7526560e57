//! The idle sampler: every `check_interval`, sample running containers,
//! record activity, and put the idle ones to sleep.

use std::collections::{HashMap, HashSet};

use tokio::time::Instant;

use super::{activity, Lifecycle, State};

impl Lifecycle {
    /// Samples every running sleep-enabled container each `check_interval`,
    /// records activity, and puts the idle ones to sleep; stops long
    /// sleepers whose class allows deep sleep. The settings are read each
    /// round, so a reload takes effect at the next one.
    pub(super) async fn sampler(self) {
        let mut interval = self.auto_sleep().check_interval.as_duration();
        let mut samples: HashMap<String, activity::Sample> = HashMap::new();
        // Containers whose last reading failed (warned once per streak).
        let mut unreadable: HashSet<String> = HashSet::new();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.inner.token.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let settings = self.auto_sleep();
            let idle_threshold = settings.idle_threshold;
            let network_rate = settings.network_idle_rate.bytes();
            let max_sleep = settings.max_sleep_time.as_duration();
            let min_uptime = settings.min_uptime.as_duration();
            if settings.check_interval.as_duration() != interval {
                interval = settings.check_interval.as_duration();
                ticker = tokio::time::interval_at(Instant::now() + interval, interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
            unreadable.retain(|id| candidates.iter().any(|(c, _, _, _)| c == id));
            let now = Instant::now();
            let at = now.into_std();
            // Every read on the blocking pool, in one go.
            let readings = self
                .on_host(move |host| {
                    candidates
                        .into_iter()
                        .map(|(id, pid, cpu_limit, own_network)| {
                            let reading = host.sample(&id, pid, own_network, at);
                            (id, cpu_limit, reading)
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
            for (id, cpu_limit, reading) in readings {
                let reading = match reading {
                    Ok(sample) => {
                        unreadable.remove(&id);
                        Some(sample)
                    }
                    Err(e) => {
                        if unreadable.insert(id.clone()) {
                            tracing::warn!(id, error = %e, "cannot sample a container; it counts as busy");
                        }
                        None
                    }
                };
                let previous = match reading {
                    Some(sample) => samples.insert(id.clone(), sample),
                    // The next reading starts afresh.
                    None => samples.remove(&id),
                };
                let verdict = activity::verdict(
                    previous.as_ref(),
                    reading.as_ref(),
                    cpu_limit,
                    idle_threshold,
                    network_rate,
                );
                if verdict.is_some_and(|v| v.is_busy()) {
                    if let Some(entry) = self.inner.table.lock().get_mut(&id) {
                        entry.last_activity = now;
                    }
                }
            }
            let (to_sleep, to_stop): (Vec<String>, Vec<String>) = {
                let table = self.inner.table.lock();
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
                            && e.deep_sleep_blocked.is_none()
                            && e.asleep_since
                                .is_some_and(|t| now.saturating_duration_since(t) >= max_sleep)
                    })
                    .map(|e| e.id.clone())
                    .collect();
                (to_sleep, to_stop)
            };
            for id in to_sleep {
                let this = self.clone();
                self.inner.tasks.spawn(async move {
                    if let Err(e) = this.sleep_now(&id, "idle", false).await {
                        tracing::warn!(error = %e, "sleep failed");
                    }
                });
            }
            for id in to_stop {
                let this = self.clone();
                self.inner.tasks.spawn(async move { this.deep_sleep(&id).await });
            }
        }
    }
}
