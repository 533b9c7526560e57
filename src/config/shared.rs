//! The config the running shim reads, and what a reload may change of it.
//!
//! Every part of the shim holds a [`SharedConfig`] and takes a snapshot
//! ([`SharedConfig::current`]) per request or per tick, so a reload swaps
//! the whole config at once: a request is judged by one config from start to
//! end, never half by the old and half by the new.
//!
//! A reload ([`reload_plan`]) keeps the keys that only a restart can change
//! (the sockets, the runtime's shape, the timeouts baked into connections,
//! whether the lifecycle runs at all) at their running values, and names the
//! ones that differ, so the operator is told what did not take effect.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use super::{Config, ConfigError, LoadedConfig};

/// Where the running config comes from: the `--config` file (the embedded
/// default when `None`) and the command line's overrides, which a reload
/// applies again so that they keep winning over the file.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub listen: Option<PathBuf>,
    pub upstream: Option<String>,
}

impl ConfigSource {
    /// Loads and validates the file, then applies the overrides.
    pub fn load(&self) -> Result<LoadedConfig, ConfigError> {
        let mut loaded = Config::load(self.path.as_deref())?;
        if let Some(listen) = &self.listen {
            loaded.config.listen = listen.clone();
        }
        if let Some(upstream) = &self.upstream {
            loaded.config.upstream = upstream.clone();
        }
        Ok(loaded)
    }
}

/// The running config: a snapshot per use, swapped whole by a reload.
#[derive(Clone)]
pub struct SharedConfig(Arc<ArcSwap<LoadedConfig>>);

impl SharedConfig {
    pub fn new(loaded: LoadedConfig) -> SharedConfig {
        SharedConfig(Arc::new(ArcSwap::from_pointee(loaded)))
    }

    /// The config as it is now; holding it keeps this version alive.
    pub fn current(&self) -> Arc<LoadedConfig> {
        self.0.load_full()
    }

    fn replace(&self, loaded: LoadedConfig) {
        self.0.store(Arc::new(loaded));
    }

    /// Applies a freshly loaded config: the keys a reload may change take
    /// the new values, the others keep the running ones. Returns the keys
    /// whose new values wait for a restart.
    pub fn apply(&self, fresh: LoadedConfig) -> Vec<&'static str> {
        let (next, restart_needed) = reload_plan(&self.current(), fresh);
        self.replace(next);
        restart_needed
    }
}

/// The config a reload installs: `fresh`, with every key only a restart can
/// change set back to its running value in `running`, and the names of
/// those that differed.
pub fn reload_plan(running: &LoadedConfig, mut fresh: LoadedConfig) -> (LoadedConfig, Vec<&'static str>) {
    let mut restart_needed = Vec::new();
    let old = &running.config;
    let new = &mut fresh.config;
    macro_rules! keep {
        ($($field:ident).+, $name:literal) => {
            if differs(&old.$($field).+, &new.$($field).+) {
                restart_needed.push($name);
                new.$($field).+ = old.$($field).+.clone();
            }
        };
    }
    keep!(listen, "listen");
    keep!(upstream, "upstream");
    keep!(socket_mode, "socket_mode");
    keep!(socket_group, "socket_group");
    keep!(log_format, "log_format");
    keep!(worker_threads, "worker_threads");
    keep!(fast_path, "fast_path");
    keep!(max_connections, "max_connections");
    keep!(state_dir, "state_dir");
    keep!(timeouts, "timeouts");
    keep!(auto_sleep.enabled, "auto_sleep.enabled");
    keep!(auto_sleep.wake_on_request, "auto_sleep.wake_on_request");
    // The metrics listener is bound once, at start.
    keep!(metrics.listen, "metrics.listen");
    (fresh, restart_needed)
}

/// Whether two values of a key differ, as their serialised forms (every
/// config type serialises; not all of them compare).
fn differs<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() != serde_json::to_value(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> LoadedConfig {
        Config::from_yaml_over_default(yaml, "t.yml").unwrap()
    }

    #[test]
    fn live_keys_take_the_new_values_and_restart_keys_keep_the_running_ones() {
        let running = load("listen: /run/a.sock\nauto_sleep:\n  check_interval: 30s\n");
        let fresh = load(
            "listen: /run/b.sock\nupstream: /run/other.sock\nauto_sleep:\n  check_interval: 5s\n  enabled: false\n\
             standards:\n  defaults:\n    memory: 300m\n",
        );
        let (next, restart) = reload_plan(&running, fresh);
        assert_eq!(restart, vec!["listen", "upstream", "auto_sleep.enabled"]);
        assert_eq!(next.config.listen, std::path::PathBuf::from("/run/a.sock"));
        assert_eq!(next.config.upstream, running.config.upstream);
        assert!(next.config.auto_sleep.enabled);
        assert_eq!(next.config.auto_sleep.check_interval.as_duration().as_secs(), 5);
        assert_eq!(
            serde_json::to_value(&next.config.standards.defaults).unwrap()["memory"],
            serde_json::to_value(
                load("standards:\n  defaults:\n    memory: 300m\n")
                    .config
                    .standards
                    .defaults
            )
            .unwrap()["memory"]
        );
    }

    #[test]
    fn command_line_overrides_win_over_the_file_at_every_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shim.yml");
        std::fs::write(&path, "listen: /run/file.sock\nupstream: /run/file-dockerd.sock\n").unwrap();
        let source = ConfigSource {
            path: Some(path.clone()),
            listen: Some("/run/flag.sock".into()),
            upstream: None,
        };
        let running = source.load().unwrap();
        assert_eq!(running.config.listen, PathBuf::from("/run/flag.sock"));
        assert_eq!(running.config.upstream, "/run/file-dockerd.sock");
        std::fs::write(&path, "listen: /run/other.sock\nupstream: /run/file-dockerd.sock\n").unwrap();
        let (_, restart) = reload_plan(&running, source.load().unwrap());
        assert!(restart.is_empty(), "the flag still names the socket: {restart:?}");
    }

    #[test]
    fn a_new_metrics_listener_waits_for_a_restart() {
        let running = load("");
        let (next, restart) = reload_plan(&running, load("metrics:\n  listen: 127.0.0.1:9464\n"));
        assert_eq!(restart, vec!["metrics.listen"]);
        assert_eq!(next.config.metrics.listen, None);
    }

    #[test]
    fn the_same_file_again_needs_no_restart() {
        let yaml = "listen: /run/a.sock\ntimeouts:\n  header_read: 3s\n";
        let (_, restart) = reload_plan(&load(yaml), load(yaml));
        assert!(restart.is_empty(), "{restart:?}");
    }

    #[test]
    fn a_snapshot_taken_before_a_reload_stays_whole() {
        let shared = SharedConfig::new(load("standards:\n  mode: audit\n"));
        let before = shared.current();
        let restart = shared.apply(load("standards:\n  mode: enforce\n"));
        assert!(restart.is_empty());
        assert_eq!(before.config.standards.mode, crate::config::StandardsMode::Audit);
        assert_eq!(
            shared.current().config.standards.mode,
            crate::config::StandardsMode::Enforce
        );
    }
}
