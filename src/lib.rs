//! forge-shim: a Docker socket shim.
//!
//! It listens on a Unix socket in front of dockerd, forwards every Docker API
//! call unchanged, applies the operator's standards to container creates and
//! puts idle containers to sleep, waking them when anything needs them.
//!
//! Modules, one per concern, in layers: each uses only the layers above it
//! in this list (ARCHITECTURE.md, "Layers"; `layering` tests it).
//!
//! 1. Vocabulary:
//!    - [`config`]: `shim.yml`, load → parse → validate; classes and services.
//!    - [`route`]: classifies a request once into an [`route::Endpoint`], and
//!      says which phases it gets ([`route::Endpoint::phases`]).
//!    - [`body`]: the body type, bounded reads, exact-length framing.
//!    - [`metrics`]: the seed's metrics, the proxy's counters among them.
//! 2. Pure logic:
//!    - [`standards`]: the create-body rules (pure, no I/O).
//!    - [`audit`]: `forge-shim audit`, the compliance checklist.
//! 3. [`docker`]: the only place that talks to dockerd as a client.
//! 4. [`lifecycle`]: sleep and wake: idle detection, pause, squeeze, wake.
//! 5. [`error`]: errors turned into Docker-style JSON responses, in one place.
//! 6. The request handlers:
//!    - [`proxy`]: the phases, forwarding, the fast path, hijacked streams.
//!    - [`api`]: the shim's own endpoints under `/_forge/v1/`.
//! 7. [`server`]: the composition root: accept, dispatch, drain; [`run`].
//!
//! Beside them, [`cli`]: `status`, `sleep`, `wake`, the operator's client of
//! the shim's API; [`install`]: `install [--takeover]` and `uninstall`.

#![forbid(unsafe_code)]

pub(crate) mod api;
pub mod audit;
pub(crate) mod body;
pub mod cli;
pub mod config;
pub(crate) mod docker;
pub(crate) mod error;
pub mod install;
pub(crate) mod lifecycle;
pub(crate) mod metrics;
pub(crate) mod proxy;
pub(crate) mod route;
pub(crate) mod server;
pub(crate) mod standards;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod layering;

/// The shim's API's wire types (`/_forge/v1/containers` rows, `events`
/// transitions), for clients of that API (the tests and benches among them).
pub use lifecycle::{Origin, OriginRecord, State, StatusRow, Transition, WakeRecord};

/// Every container's origin as the shim recorded it under `state_dir`
/// (`forge-shim audit` reads it); `None` when no shim ran with it.
pub fn recorded_origins(
    state_dir: &std::path::Path,
) -> Result<Option<std::collections::HashMap<String, Origin>>, String> {
    lifecycle::origins::recorded_origins(state_dir)
}

/// `forge-shim audit` on `loaded`'s dockerd: `origins` (as
/// [`recorded_origins`] gives them) marks bypasses; the image profiles kept
/// under `state_dir` say how each container's hardening stands.
pub async fn run_audit(
    loaded: &config::LoadedConfig,
    origins: Option<&std::collections::HashMap<String, String>>,
) -> anyhow::Result<Vec<audit::ContainerReport>> {
    let profiles = recorded_profiles(&loaded.config.state_dir);
    audit::run(
        &loaded.config.upstream_path(),
        origins,
        &profiles,
        &loaded.config.standards,
    )
    .await
}

/// The image profiles fitted hardening kept under `state_dir`, by image id;
/// empty when there are none.
fn recorded_profiles(
    state_dir: &std::path::Path,
) -> std::collections::HashMap<String, std::sync::Arc<standards::fitted::Profile>> {
    lifecycle::Profiles::existing(state_dir)
        .map(|profiles| profiles.list().into_iter().map(|p| (p.image_id.clone(), p)).collect())
        .unwrap_or_default()
}

/// What `POST /_forge/v1/reload` answers (`forge-shim reload` prints it).
pub use api::ReloadReport;

/// The shim's version, reported by `/_forge/v1/health` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// Runs the shim until SIGTERM or SIGINT: binds the socket, serves, then
/// drains within the grace period and removes the socket. SIGHUP loads
/// `source` again and never ends it.
pub async fn run(source: config::ConfigSource, loaded: config::LoadedConfig) -> anyhow::Result<()> {
    // Handlers first: from here on, SIGHUP reloads and never ends the shim.
    let signals = Signals::install()?;
    raise_open_file_limit();
    let cfg = &loaded.config;
    let mode = config::parse_socket_mode(&cfg.socket_mode).context("socket_mode was validated")?;
    let (listener, socket_guard) = proxy::listener::bind(&cfg.listen, mode, cfg.socket_group.as_deref())
        .await
        .context("cannot listen")?;
    tracing::info!(
        listen = %cfg.listen.display(),
        upstream = %cfg.upstream_path().display(),
        config = %loaded.source,
        version = VERSION,
        "forge-shim listening"
    );
    let metrics_listener = match cfg.metrics.listen_addr() {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics.listen: cannot listen on {addr}"))?;
            tracing::info!(%addr, "metrics listening: GET /metrics, the dashboard at /");
            Some(listener)
        }
        None => None,
    };
    let token = CancellationToken::new();
    let shim = server::Shim::new(loaded, source, token.clone());
    if let Some(listener) = metrics_listener {
        let serve = api::prometheus::serve(listener, shim.api.clone(), token.clone(), shim.tasks.clone());
        shim.tasks.spawn(serve);
    }
    shim.proxy.start_image_watcher();
    shim.start_root_check();
    shim.start_bypass_watch();
    shim.start_learner();
    let serving = tokio::spawn({
        let shim = shim.clone();
        async move { shim.serve(listener).await }
    });
    let lifecycle = shim.lifecycle.clone();
    let lifecycle_task = lifecycle.clone().map(|lifecycle| tokio::spawn(lifecycle.run()));
    signals.wait(shim.api.reloader()).await;
    tracing::info!("shutting down");
    token.cancel();
    let _ = serving.await;
    if let Some(task) = lifecycle_task {
        let _ = task.await;
    }
    if let Some(lifecycle) = &lifecycle {
        let grace = shim.grace();
        if tokio::time::timeout(grace, lifecycle.shutdown()).await.is_err() {
            tracing::warn!("on_shutdown: waking sleepers took longer than the grace period");
        }
    }
    let cut = shim.drain().await;
    if cut > 0 {
        tracing::warn!(cut, "grace period over; cutting connections and streams still open");
    }
    // Origins recorded since their last save (saves run in the background).
    shim.proxy.inner.origins.save().await;
    drop(socket_guard);
    tracing::info!("stopped");
    Ok(())
}

/// The signals the shim handles: SIGTERM and SIGINT stop it, SIGHUP
/// reloads its config.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            terminate: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            hangup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
        })
    }

    /// Waits for SIGTERM or SIGINT; each SIGHUP meanwhile reloads the
    /// config (the reloader logs the outcome, good or bad).
    async fn wait(mut self, reloader: &api::Reloader) {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return,
                _ = self.interrupt.recv() => return,
                _ = self.hangup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    let _ = reloader.reload().await;
                }
            }
        }
    }
}

/// Raises the soft limit on open files to the hard one. Every client
/// connection holds a descriptor, an upstream connection another, and a
/// hijacked stream a third (its hang-up watch); the common soft default of
/// 1024 would cap the shim at a few hundred clients.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open file limit"),
            Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise the open file limit"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open file limit"),
    }
}
