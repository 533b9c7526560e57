//! Rule pieces that create and service specs (and volume create) share:
//! added and dropped capabilities, and the Docker socket in a mount or in a
//! local volume's driver options.

use serde_json::{Map, Value};

use super::canon::go_fold_eq;
use super::engine::Engine;
use super::json::{object, string};
use super::predicates::{exposes_docker_socket, normalize_cap};
use super::rule::*;
use super::BadRequest;

pub(super) fn deny_cap_add(e: &mut Engine<'_>, caps: &[&str], field: &str) {
    if !e.standards.deny.cap_add {
        return;
    }
    let allowed: Vec<String> = e.standards.cap_add_allowed.iter().map(|c| normalize_cap(c)).collect();
    for cap in caps {
        let cap = normalize_cap(cap);
        if cap == "ALL" || !allowed.contains(&cap) {
            let advice = if allowed.is_empty() {
                "no capability may be added".to_string()
            } else {
                format!("add only {}", allowed.join(", "))
            };
            e.deny(DENY_CAP_ADD, format!("adding capability {cap} ({field})"), Some(advice));
        }
    }
}

/// The `defaults.cap_drop` entries missing from `present`, in the config's
/// spelling.
pub(super) fn missing_cap_drops(e: &Engine<'_>, present: &[&str]) -> Vec<String> {
    let present: Vec<String> = present.iter().map(|c| normalize_cap(c)).collect();
    e.standards
        .defaults
        .cap_drop
        .iter()
        .filter(|cap| !present.contains(&normalize_cap(cap)))
        .cloned()
        .collect()
}

/// Checks one `mount.Mount` (create's `HostConfig.Mounts` or a service's
/// `ContainerSpec.Mounts`) for the Docker socket.
pub(super) fn deny_socket_mount(e: &mut Engine<'_>, mount: &Map<String, Value>, field: &str) -> Result<(), BadRequest> {
    let at = format!("{field}.");
    if let Some(source) = string(mount, "Source", &at)? {
        if exposes_docker_socket(e.cfg, source) {
            e.deny(DENY_DOCKER_SOCKET, format!("mounting {source} ({field}.Source)"), None);
        }
    }
    let driver_options = object(mount, "VolumeOptions", &at)?
        .map(|options| object(options, "DriverConfig", &format!("{at}VolumeOptions.")))
        .transpose()?
        .flatten()
        .map(|driver| object(driver, "Options", &format!("{at}VolumeOptions.DriverConfig.")))
        .transpose()?
        .flatten();
    if let Some(options) = driver_options {
        deny_socket_device(e, options, &format!("{field}.VolumeOptions.DriverConfig.Options"));
    }
    Ok(())
}

/// A local volume's `device` option naming the socket (with `o=bind` it is
/// a bind mount by another name). Checked whatever `o` says: no real block
/// device lives at those paths.
pub(super) fn deny_socket_device(e: &mut Engine<'_>, options: &Map<String, Value>, field: &str) {
    for (key, value) in options {
        if let (true, Some(device)) = (go_fold_eq(key, "device"), value.as_str()) {
            if exposes_docker_socket(e.cfg, device) {
                e.deny(
                    DENY_DOCKER_SOCKET,
                    format!("a volume bound to {device} ({field})"),
                    None,
                );
            }
        }
    }
}
