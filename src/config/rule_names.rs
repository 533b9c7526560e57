//! The names of the standards' rules, as `standards.exempt[].rules` and the
//! `forge.exempt` label spell them: each is the key of its switch under
//! `standards:` (`deny.privileged` is `standards.deny.privileged`). This list
//! is the only place they are written; `crate::standards::rule` is this
//! module's `rule`.

/// Declares one constant per rule in `rule` and lists them, in the same
/// order, in `RULE_NAMES`.
macro_rules! rule_names {
    ($($constant:ident = $name:literal,)*) => {
        /// One constant per rule name, for the rules that record it.
        pub mod rule {
            $(pub const $constant: &str = $name;)*
        }

        /// The names `exempt:` entries may switch off.
        pub const RULE_NAMES: &[&str] = &[$(rule::$constant),*];
    };
}

rule_names! {
    DEFAULTS_MEMORY = "defaults.memory",
    DEFAULTS_MEMORY_RESERVATION = "defaults.memory_reservation",
    DEFAULTS_CPUS = "defaults.cpus",
    DEFAULTS_PIDS_LIMIT = "defaults.pids_limit",
    DEFAULTS_READ_ONLY_ROOTFS = "defaults.read_only_rootfs",
    DEFAULTS_CAP_DROP = "defaults.cap_drop",
    DEFAULTS_NO_NEW_PRIVILEGES = "defaults.no_new_privileges",
    NON_ROOT = "non_root",
    LIMITS_MEMORY = "limits.memory",
    LIMITS_CPUS = "limits.cpus",
    LIMITS_PIDS_LIMIT = "limits.pids_limit",
    DENY_PRIVILEGED = "deny.privileged",
    DENY_DOCKER_SOCKET = "deny.docker_socket",
    DENY_HOST_PID = "deny.host_pid",
    DENY_HOST_IPC = "deny.host_ipc",
    DENY_HOST_NETWORK = "deny.host_network",
    DENY_CAP_ADD = "deny.cap_add",
    DENY_DEVICES = "deny.devices",
    DENY_SECCOMP_UNCONFINED = "deny.seccomp_unconfined",
    DENY_APPARMOR_UNCONFINED = "deny.apparmor_unconfined",
    DENY_PLUGINS = "deny.plugins",
}
