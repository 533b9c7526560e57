//! Live reload: SIGHUP and `POST /_forge/v1/reload` read the config file
//! again and swap it in whole ([`SharedConfig::apply`]).
//!
//! A file that does not load leaves the running config in place, and its
//! problems (file, line, column) are logged and answered. Keys only a
//! restart can change keep their running values and are named.

use std::sync::Arc;

use serde::Serialize;

use crate::config::{ConfigSource, SharedConfig};
use crate::lifecycle::Lifecycle;

/// Reads the config again and installs it. Cheap to clone; reloads run one
/// at a time.
#[derive(Clone)]
pub struct Reloader {
    config: SharedConfig,
    /// The `--config` file (the embedded default, read again, when there is
    /// none) and the command line's overrides.
    source: ConfigSource,
    lifecycle: Option<Lifecycle>,
    running: Arc<tokio::sync::Mutex<()>>,
}

/// What a reload did, for the log and for `forge-shim reload`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct ReloadReport {
    pub source: String,
    /// Keys whose new values wait for a restart (kept at the running ones).
    pub restart_needed: Vec<String>,
    /// Tracked containers whose idle timeout changed.
    pub refitted: usize,
    /// Sleepers woken because their new policy keeps them awake.
    pub woken: usize,
}

impl Reloader {
    pub fn new(config: SharedConfig, source: ConfigSource, lifecycle: Option<Lifecycle>) -> Reloader {
        Reloader {
            config,
            source,
            lifecycle,
            running: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Reloads, logging the outcome. `Err` holds the file's problems, one
    /// per line, and the running config is unchanged.
    pub async fn reload(&self) -> Result<ReloadReport, String> {
        let _one_at_a_time = self.running.lock().await;
        let source = self.source.clone();
        let loaded = tokio::task::spawn_blocking(move || source.load())
            .await
            .map_err(|e| format!("the reload task failed: {e}"))?;
        let fresh = match loaded {
            Ok(fresh) => fresh,
            Err(e) => {
                let problems = e.to_string();
                tracing::error!(problems = %problems, "config not reloaded; the running config is kept");
                return Err(problems);
            }
        };
        let source = fresh.source.clone();
        let restart_needed: Vec<String> = self.config.apply(fresh).into_iter().map(str::to_string).collect();
        let (refitted, woken) = self.lifecycle.as_ref().map(Lifecycle::refit).unwrap_or_default();
        tracing::info!(config = %source, refitted, woken, "config reloaded");
        if !restart_needed.is_empty() {
            tracing::warn!(
                keys = %restart_needed.join(", "),
                "changed in the config but only a restart applies them; the running values are kept"
            );
        }
        Ok(ReloadReport {
            source,
            restart_needed,
            refitted,
            woken,
        })
    }
}
