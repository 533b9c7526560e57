//! Swarm services: `POST /services/create` and `POST /services/{id}/update`
//! carry a full `ServiceSpec`, and every task they start is a container the
//! standards must cover. The same rules apply, to the spec's own fields:
//!
//! | container create | service spec |
//! |---|---|
//! | `User` | `TaskTemplate.ContainerSpec.User` |
//! | `ReadonlyRootfs` + `Tmpfs` | `ContainerSpec.ReadOnly` + `tmpfs` entries in `ContainerSpec.Mounts` |
//! | `CapAdd` / `CapDrop` | `ContainerSpec.CapabilityAdd` / `CapabilityDrop` |
//! | `SecurityOpt` seccomp/apparmor | `ContainerSpec.Privileges.Seccomp.Mode` / `AppArmor.Mode` |
//! | `Binds`, `Mounts` | `ContainerSpec.Mounts` |
//! | `NetworkMode: host` | a network attachment whose `Target` is `host` |
//! | `Memory`, `NanoCpus`, `PidsLimit` | `TaskTemplate.Resources.Limits.MemoryBytes`, `NanoCPUs`, `Pids` |
//! | `MemoryReservation` | `TaskTemplate.Resources.Reservations.MemoryBytes` |
//!
//! Services have no privileged mode, devices or host PID/IPC namespaces. A
//! plugin task (`TaskTemplate.PluginSpec`, `Runtime: plugin`) installs a
//! managed plugin with the privileges it asks for, so it is judged by
//! `deny.privileged`. `no-new-privileges` is not set: only API 1.46 and
//! later know `Privileges.NoNewPrivileges`, and older daemons would ignore
//! it while the warning claimed otherwise. A host network attached by ID
//! rather than by name cannot be told from here.
//!
//! Exemptions match the service's `Name` as `name`, the task image as
//! `image` and the service's `Labels`.

use serde_json::{Map, Value};

use crate::config::{ContainerIdentity, Cpus, LoadedConfig, StandardsMode};

use super::canon;
use super::engine::{keep_original, unchanged, Engine};
use super::json::{append_strings, array, boolean, int, object, object_mut, string, strings};
use super::limits::{bytes_i64, fill, show_bytes, show_cpus, Maxima, Targets};
use super::predicates::{is_host, normalize_path};
use super::rule::*;
use super::shared::{deny_cap_add, deny_socket_mount, missing_cap_drops};
use super::{BadRequest, CreateContext, Outcome, Rejection};

const CS: &str = "TaskTemplate.ContainerSpec.";

pub(super) fn apply_service_spec(cfg: &LoadedConfig, ctx: &CreateContext, body: Value) -> Result<Outcome, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off {
        return Ok(unchanged(body));
    }
    let original = keep_original(standards, &body);
    let mut body = canon::canonicalize(body, &canon::SERVICE_SPEC, "service spec")?;
    let Some(spec) = body.as_object_mut() else {
        return Err(BadRequest::new("invalid service spec: expected an object").into());
    };

    let name = ctx.name.clone().or(string(spec, "Name", "")?.map(str::to_string));
    let image = object(spec, "TaskTemplate", "")?
        .map(|task| object(task, "ContainerSpec", "TaskTemplate."))
        .transpose()?
        .flatten()
        .map(|container| string(container, "Image", CS))
        .transpose()?
        .flatten()
        .map(str::to_string);
    let who = ContainerIdentity {
        name: name.as_deref(),
        image: image.as_deref(),
        labels: object(spec, "Labels", "")?,
        image_id: ctx.image_id.as_deref(),
        repo_digests: &ctx.repo_digests,
    };
    let mut e = Engine::new(cfg, &who);
    let targets = Targets::resolve(cfg, &cfg.policy.resolve(&who));

    if standards.deny.host_network {
        for (index, network) in array(spec, "Networks", "")?.iter().enumerate() {
            deny_host_network(&mut e, network, &format!("Networks[{index}]"))?;
        }
    }

    // A spec without a task template is dockerd's to reject.
    if matches!(spec.get("TaskTemplate"), None | Some(Value::Null)) {
        return e.finish(original, body);
    }
    let task = object_mut(spec, "TaskTemplate", "")?;
    if standards.deny.privileged
        && (!matches!(task.get("PluginSpec"), None | Some(Value::Null))
            || string(task, "Runtime", "TaskTemplate.")?.is_some_and(|r| r.eq_ignore_ascii_case("plugin")))
    {
        e.deny(DENY_PRIVILEGED, "a plugin task (TaskTemplate.PluginSpec)", None);
    }
    if standards.deny.host_network {
        for (index, network) in array(task, "Networks", "TaskTemplate.")?.iter().enumerate() {
            deny_host_network(&mut e, network, &format!("TaskTemplate.Networks[{index}]"))?;
        }
    }
    // Only container tasks have a ContainerSpec to judge and resources to set.
    if matches!(task.get("ContainerSpec"), None | Some(Value::Null)) {
        return e.finish(original, body);
    }
    let container = object_mut(task, "ContainerSpec", "TaskTemplate.")?;
    deny_container_spec(&mut e, container)?;
    harden_container_spec(&mut e, container, ctx)?;
    let resources = object_mut(task, "Resources", "TaskTemplate.")?;
    resources_spec(&mut e, resources, &targets)?;
    if resources.is_empty() {
        task.remove("Resources");
    }
    e.finish(original, body)
}

fn deny_host_network(e: &mut Engine<'_>, network: &Value, field: &str) -> Result<(), BadRequest> {
    if let Value::Object(network) = network {
        if is_host(string(network, "Target", &format!("{field}."))?) {
            e.deny(
                DENY_HOST_NETWORK,
                format!("the host network ({field}.Target host)"),
                None,
            );
        }
    }
    Ok(())
}

fn deny_container_spec(e: &mut Engine<'_>, container: &Map<String, Value>) -> Result<(), BadRequest> {
    let deny = e.standards.deny.clone();
    if deny.docker_socket {
        for (index, mount) in array(container, "Mounts", CS)?.iter().enumerate() {
            if let Value::Object(mount) = mount {
                deny_socket_mount(e, mount, &format!("{CS}Mounts[{index}]"))?;
            }
        }
    }
    deny_cap_add(
        e,
        &strings(container, "CapabilityAdd", CS)?,
        "TaskTemplate.ContainerSpec.CapabilityAdd",
    );
    if let Some(privileges) = object(container, "Privileges", CS)? {
        let at = format!("{CS}Privileges.");
        let mode = |key: &str| -> Result<Option<String>, BadRequest> {
            let Some(options) = object(privileges, key, &at)? else {
                return Ok(None);
            };
            Ok(string(options, "Mode", &format!("{at}{key}."))?.map(|m| m.trim().to_ascii_lowercase()))
        };
        if deny.seccomp_unconfined && mode("Seccomp")?.as_deref() == Some("unconfined") {
            e.deny(
                DENY_SECCOMP_UNCONFINED,
                format!("seccomp unconfined ({at}Seccomp.Mode)"),
                None,
            );
        }
        if deny.apparmor_unconfined && mode("AppArmor")?.as_deref() == Some("disabled") {
            e.deny(
                DENY_APPARMOR_UNCONFINED,
                format!("AppArmor disabled ({at}AppArmor.Mode)"),
                None,
            );
        }
    }
    Ok(())
}

fn harden_container_spec(
    e: &mut Engine<'_>,
    container: &mut Map<String, Value>,
    ctx: &CreateContext,
) -> Result<(), BadRequest> {
    // Non-root, as for containers. Swarm makes a service's containers, not
    // the shim: there is no profile to fit, so `fitted` acts as `always`.
    let mut fit = super::create::Fitting::always(ctx);
    super::create::non_root_create(e, container, ctx, &mut fit)?;

    // Read-only root filesystem, with tmpfs mounts for the writable paths.
    let defaults = e.standards.defaults.clone();
    if defaults.read_only_rootfs == Some(true)
        && e.applies(DEFAULTS_READ_ONLY_ROOTFS)
        && boolean(container, "ReadOnly", CS)? != Some(true)
    {
        let mut covered = Vec::new();
        for (index, mount) in array(container, "Mounts", CS)?.iter().enumerate() {
            if let Value::Object(mount) = mount {
                if let Some(target) = string(mount, "Target", &format!("{CS}Mounts[{index}]."))? {
                    covered.extend(normalize_path(target));
                }
            }
        }
        let added: Vec<String> = defaults
            .tmpfs
            .iter()
            .filter(|path| normalize_path(path).is_some_and(|p| !covered.contains(&p)))
            .cloned()
            .collect();
        container.insert("ReadOnly".to_string(), Value::Bool(true));
        if !added.is_empty() {
            let slot = container.entry("Mounts".to_string()).or_insert(Value::Null);
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let Value::Array(mounts) = slot {
                for path in &added {
                    let mut mount = Map::new();
                    mount.insert("Type".to_string(), Value::String("tmpfs".to_string()));
                    mount.insert("Target".to_string(), Value::String(path.clone()));
                    mounts.push(Value::Object(mount));
                }
            }
            e.change(
                DEFAULTS_READ_ONLY_ROOTFS,
                format!("made the root filesystem read-only, with tmpfs at {}", added.join(", ")),
            );
        } else {
            e.change(DEFAULTS_READ_ONLY_ROOTFS, "made the root filesystem read-only");
        }
    }

    // Capabilities dropped (API 1.41 and later).
    if e.applies(DEFAULTS_CAP_DROP) {
        let missing = missing_cap_drops(e, &strings(container, "CapabilityDrop", CS)?);
        if !missing.is_empty() {
            append_strings(container, "CapabilityDrop", &missing);
            e.change(
                DEFAULTS_CAP_DROP,
                format!("dropped capabilities {}", missing.join(", ")),
            );
        }
    }
    Ok(())
}

/// One field of `Resources.Limits`, with the maximum that applies to it.
struct LimitField {
    key: &'static str,
    label: &'static str,
    max: Option<i64>,
    max_rule: &'static str,
    show: fn(i64) -> String,
}

fn show_count(count: i64) -> String {
    count.to_string()
}

/// `Resources.Limits` and `Resources.Reservations`: zero is unset, as for
/// containers; a negative `Pids` is unlimited.
fn resources_spec(e: &mut Engine<'_>, resources: &mut Map<String, Value>, targets: &Targets) -> Result<(), BadRequest> {
    let maxima = Maxima::for_engine(e);
    let at = "TaskTemplate.Resources.Limits.";
    let limits = object_mut(resources, "Limits", "TaskTemplate.Resources.")?;

    let fields = [
        LimitField {
            key: "MemoryBytes",
            label: "memory limit",
            max: maxima.memory,
            max_rule: LIMITS_MEMORY,
            show: show_bytes,
        },
        LimitField {
            key: "NanoCPUs",
            label: "CPU limit",
            max: maxima.cpus,
            max_rule: LIMITS_CPUS,
            show: show_cpus,
        },
        LimitField {
            key: "Pids",
            label: "PID limit",
            max: maxima.pids,
            max_rule: LIMITS_PIDS_LIMIT,
            show: show_count,
        },
    ];
    for field in &fields {
        let Some(max) = field.max else { continue };
        let asked = int(limits, field.key, at)?.unwrap_or(0);
        let what = match asked {
            p if p < 0 && field.key == "Pids" => format!("an unlimited PID count ({at}Pids {p})"),
            p if p > max => format!(
                "a {} of {} ({at}{}, above the maximum)",
                field.label,
                (field.show)(p),
                field.key
            ),
            _ => continue,
        };
        if e.over_limit(field.max_rule, what, &(field.show)(max)) {
            limits.insert(field.key.to_string(), max.into());
            let was = if asked < 0 {
                "unlimited".to_string()
            } else {
                (field.show)(asked)
            };
            e.change(
                field.max_rule,
                format!("lowered {} {was} to the maximum {}", field.label, (field.show)(max)),
            );
        }
    }

    let unset = |limits: &Map<String, Value>, key: &str| Ok::<_, BadRequest>(int(limits, key, at)?.unwrap_or(0) == 0);
    let defaults = [
        (
            0,
            fill(
                e,
                &targets.memory,
                DEFAULTS_MEMORY,
                maxima.memory,
                LIMITS_MEMORY,
                bytes_i64,
            ),
        ),
        (
            1,
            fill(
                e,
                &targets.cpus,
                DEFAULTS_CPUS,
                maxima.cpus,
                LIMITS_CPUS,
                Cpus::nano_cpus,
            ),
        ),
        (
            2,
            fill(
                e,
                &targets.pids_limit,
                DEFAULTS_PIDS_LIMIT,
                maxima.pids,
                LIMITS_PIDS_LIMIT,
                |p| p,
            ),
        ),
    ];
    for (index, default) in defaults {
        let field = &fields[index];
        if let (true, Some((rule, value, why))) = (unset(limits, field.key)?, default) {
            limits.insert(field.key.to_string(), value.into());
            e.change(rule, format!("set {} {}{why}", field.label, (field.show)(value)));
        }
    }
    let memory_limit = int(limits, "MemoryBytes", at)?.filter(|m| *m > 0);
    if limits.is_empty() {
        resources.remove("Limits");
    }

    if let (true, Some(target)) = (e.applies(DEFAULTS_MEMORY_RESERVATION), &targets.memory_reservation) {
        let at = "TaskTemplate.Resources.Reservations.";
        let reservations = object_mut(resources, "Reservations", "TaskTemplate.Resources.")?;
        if int(reservations, "MemoryBytes", at)?.unwrap_or(0) == 0 {
            let mut value = bytes_i64(target.value);
            let mut why = target.origin.clone();
            if let Some(memory) = memory_limit.filter(|m| *m < value) {
                value = memory;
                why.push_str(", lowered to the memory limit");
            }
            reservations.insert("MemoryBytes".to_string(), value.into());
            e.change(
                DEFAULTS_MEMORY_RESERVATION,
                format!("set memory reservation {}{why}", show_bytes(value)),
            );
        }
    }
    Ok(())
}
