//! forge-shim: a Docker socket shim.
//!
//! It listens on a Unix socket in front of dockerd, forwards every Docker API
//! call unchanged, applies the operator's standards to container creates and
//! puts idle containers to sleep, waking them when anything needs them.
//!
//! Modules, one per concern:
//! - [`config`]: `shim.yml`, load → parse → validate; classes and services.
//! - [`route`]: classifies a request once into an [`route::Endpoint`].
//! - [`proxy`]: the listener, forwarding, hijacked streams, shutdown.
//! - [`standards`]: the create-body rules (pure, no I/O) and their glue.
//! - [`docker`]: the only place that talks to dockerd as a client (bollard).
//! - [`api`]: the shim's own endpoints under `/_forge/v1/`.
//! - [`error`]: errors turned into Docker-style JSON responses, in one place.

#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod docker;
pub mod error;
pub mod proxy;
pub mod route;
pub mod standards;

/// The shim's version, reported by `/_forge/v1/health` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
