//! `shim.yml`: load → parse → validate.
//!
//! The default config is `shim.yml` at the repository root, embedded in the
//! binary; `--config FILE` is a layer over it (mappings merge, lists and
//! values replace). Unknown keys are errors (a typo in `idle_timeout` must
//! not silently become a default), and every
//! error names the file, line and column when the YAML parser knows them, or
//! the key path for checks that span several keys.
//!
//! The files: `schema.rs` (the serde structs, one per block, and their
//! defaults), `load.rs` (`Config::load`, the layering over the embedded
//! `shim.yml`, `ConfigError`), `validate.rs` (the checks across keys, one
//! function per section, and the compiled `LoadedConfig`), `policy.rs`
//! (classes, `classify:`, `services:`), `units.rs` (sizes, durations, CPUs),
//! `rule_names.rs` (`RULE_NAMES`, the one list of the standards' rules),
//! `shared.rs` (`SharedConfig`, the running config a reload swaps whole).

mod load;
pub mod policy;
mod rule_names;
mod schema;
mod shared;
pub mod units;
mod validate;

pub use load::{ConfigError, ConfigProblem, LoadedConfig};
pub use policy::{
    ClassSpec, ClassifyRule, CompiledSelector, ContainerIdentity, PolicyTable, Priority, Resources, Selector,
    ServicePolicy, ServiceSpec, SleepPolicy,
};
pub use rule_names::{rule, RULE_NAMES};
pub use schema::{
    AutoSleep, BypassAction, BypassConfig, Config, DenyRules, Exemption, Hardening, HardeningMode, Limits, LogFormat,
    MetricsConfig, NonRoot, OnExceed, OnShutdown, RootImage, StandardsConfig, StandardsDefaults, StandardsMode,
    Timeouts, WarningStyle,
};
pub use shared::{reload_plan, ConfigSource, SharedConfig};
pub use units::{ByteSize, Cpus, HumanDuration};
pub use validate::{is_root_user, parse_socket_mode};

#[cfg(test)]
mod tests;
