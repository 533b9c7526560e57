//! Reading a Docker JSON body the way dockerd's Go decoder reads it.
//!
//! Go's `encoding/json` matches an object key to a struct field ignoring case
//! (with Unicode simple folding: `ſ` matches `s` and the Kelvin sign `K`
//! matches `k`), and when a key appears twice the last one wins. So
//! `"privileged": true` creates a privileged container, and so does
//! `{"Privileged": false, "privileged": true}`. Two steps close that door:
//!
//! 1. [`parse_body`] walks the raw bytes and rejects an exact duplicate key in
//!    any object, and keys that are equal under Go's folding in any object Go
//!    decodes into a struct. It must happen while parsing: serde_json keeps
//!    only the last of two equal keys. Objects whose keys are user data
//!    (labels, tmpfs paths, sysctls, …) are Go maps with exact keys, where
//!    `a` and `A` are two keys; they are recognised by their field name.
//! 2. [`canonicalize_create`] (and the schemas for the other bodies) renames
//!    every known key to dockerd's spelling, so the rules look fields up by
//!    their exact name. Unknown keys are kept as they were.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::BadRequest;

/// Parses any Docker JSON request body: an object, no duplicate keys (see the
/// module doc), nothing but whitespace after it.
pub fn parse_body(bytes: &[u8]) -> Result<Value, BadRequest> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let seed = ValueSeed {
        path: Path::Root,
        user_data: false,
    };
    let value = seed
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| BadRequest::new(format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(BadRequest::new(format!(
            "invalid JSON body: expected an object, got {}",
            kind(&value)
        )));
    }
    Ok(value)
}

/// Renames the keys of a create body that dockerd would match
/// case-insensitively to dockerd's spelling, at the top level, in
/// `HostConfig`, `NetworkingConfig` and `Mounts` items, and checks that the
/// objects the rules walk into are objects (or null).
///
/// HostConfig fields at the top level are folded into `HostConfig` as
/// dockerd folds them ([`fold_top_level_host_config`]), so the rules judge,
/// and dockerd receives, the one `HostConfig` dockerd would have used.
pub fn canonicalize_create(body: Value) -> Result<Value, BadRequest> {
    let mut body = body;
    let Some(root) = body.as_object_mut() else {
        return Err(BadRequest::new(format!(
            "invalid create body: expected an object, got {}",
            kind(&body)
        )));
    };
    canonicalize_object(root, &CREATE, "")?;
    fold_top_level_host_config(root)?;
    // The folded HostConfig is canonicalised like one sent inside.
    canonicalize_object(root, &CREATE, "")?;
    Ok(body)
}

/// The fields dockerd copies from a top-level HostConfig into the inner
/// one when the inner one leaves them zero.
const COPIED_WHEN_ZERO: &[&str] = &["Memory", "MemorySwap", "CpuShares", "CpusetCpus", "VolumeDriver"];

/// Moves HostConfig fields sent at the top level of a create body into
/// `HostConfig`, as dockerd's decoder reads them: its body type embeds a
/// deprecated `HostConfig` whose fields are promoted to the top level, next
/// to the real `"HostConfig"` key (moby `runconfig`,
/// `ContainerConfigWrapper.getHostConfig`).
///
/// - Top-level fields and no `HostConfig` (absent or null): the top-level
///   fields are the HostConfig.
/// - Both: `HostConfig` is used, and only `Memory`, `MemorySwap`,
///   `CpuShares`, `CpusetCpus` and `VolumeDriver` are taken from the top
///   level where `HostConfig` leaves them zero; every other top-level field
///   is ignored by dockerd, and dropped here.
/// - The deprecated top-level `Cpuset` fills `HostConfig.CpusetCpus` when
///   that is empty, and is dropped.
///
/// A field is there for Go as soon as its key is, even with `null`. A
/// copied field of the wrong type would fail dockerd's decoding: 400.
fn fold_top_level_host_config(root: &mut Map<String, Value>) -> Result<(), BadRequest> {
    let top_keys: Vec<String> = root
        .keys()
        .filter(|key| HOST_CONFIG.keys.find(key).is_some())
        .cloned()
        .collect();
    let cpuset = root.remove("Cpuset");
    let mut top = Map::new();
    for key in top_keys {
        let value = root.remove(&key).expect("listed from the same map");
        let name = HOST_CONFIG.keys.find(&key).expect("matched above");
        top.insert(name.to_string(), value);
    }
    let inner = match root.remove("HostConfig") {
        None | Some(Value::Null) => None,
        Some(Value::Object(inner)) => Some(inner),
        Some(other) => {
            return Err(BadRequest::new(format!(
                "invalid create body: HostConfig must be an object, got {}",
                kind(&other)
            )))
        }
    };
    let mut host_config = match (inner, top.is_empty()) {
        (None, true) => None,
        (None, false) => Some(top),
        (Some(inner), true) => Some(inner),
        (Some(mut inner), false) => {
            for name in COPIED_WHEN_ZERO {
                let Some(value) = top.get(*name) else { continue };
                if !is_go_zero(name, value)? && inner.get(*name).map_or(Ok(true), |v| is_go_zero(name, v))? {
                    inner.insert((*name).to_string(), value.clone());
                }
            }
            Some(inner)
        }
    };
    if let (Some(host_config), Some(cpuset)) = (host_config.as_mut(), cpuset) {
        let empty = host_config
            .get("CpusetCpus")
            .map_or(Ok(true), |v| is_go_zero("CpusetCpus", v))?;
        if !is_go_zero("Cpuset", &cpuset)? && empty {
            host_config.insert("CpusetCpus".to_string(), cpuset);
        }
    }
    if let Some(host_config) = host_config {
        root.insert("HostConfig".to_string(), Value::Object(host_config));
    }
    Ok(())
}

/// Whether a JSON value decodes to Go's zero value of a copied field
/// (`null` or absent is zero); a value Go could not decode into the field
/// is a 400, as dockerd answers it.
fn is_go_zero(name: &str, value: &Value) -> Result<bool, BadRequest> {
    let strings = matches!(name, "CpusetCpus" | "VolumeDriver" | "Cpuset");
    match value {
        Value::Null => Ok(true),
        Value::String(s) if strings => Ok(s.is_empty()),
        Value::Number(n) if !strings && (n.is_i64() || n.is_u64()) => Ok(n.as_i64() == Some(0)),
        other => Err(BadRequest::new(format!(
            "invalid create body: {name} must be {}, got {}",
            if strings { "a string" } else { "an integer" },
            kind(other)
        ))),
    }
}

/// Canonicalises `body` (an object) by `schema`; see [`canonicalize_create`].
pub(super) fn canonicalize(mut body: Value, schema: &Schema, what: &str) -> Result<Value, BadRequest> {
    let Some(root) = body.as_object_mut() else {
        return Err(BadRequest::new(format!(
            "invalid {what} body: expected an object, got {}",
            kind(&body)
        )));
    };
    canonicalize_object(root, schema, "")?;
    Ok(body)
}

// ---------------------------------------------------------------------------
// Go's key folding

/// Whether `key` matches the ASCII field name `name` the way Go's decoder
/// matches keys to fields.
pub(super) fn go_fold_eq(key: &str, name: &str) -> bool {
    let mut name_chars = name.chars();
    for c in key.chars() {
        match name_chars.next() {
            Some(n) if n.to_ascii_lowercase() == fold_char(c) => {}
            _ => return false,
        }
    }
    name_chars.next().is_none()
}

/// One character folded: ASCII lower case, plus the two non-ASCII runes whose
/// fold set contains an ASCII letter. Other characters are lower-cased when
/// that gives one non-ASCII character (telling keys apart, where being
/// stricter than Go costs nothing), but never onto ASCII: `İ` lower-cases to
/// `i` plus a combining dot, yet Go does not match it to `i`.
fn fold_char(c: char) -> char {
    match c {
        '\u{17F}' => 's',  // LATIN SMALL LETTER LONG S
        '\u{212A}' => 'k', // KELVIN SIGN
        c if c.is_ascii() => c.to_ascii_lowercase(),
        c => {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(single), None) if !single.is_ascii() => single,
                _ => c,
            }
        }
    }
}

fn go_fold(key: &str) -> String {
    if key.is_ascii() {
        return key.to_ascii_lowercase();
    }
    key.chars().map(fold_char).collect()
}

/// A struct's field names (ASCII), looked up as Go's decoder matches a key
/// to them: equal under [`fold_char`], as [`go_fold_eq`] says. Indexed by
/// folded name on first use, since every key of every create body is looked
/// up (a scan of the names per key was most of a create's judging time).
pub(super) struct FieldNames {
    names: &'static [&'static str],
    folded: OnceLock<HashMap<String, &'static str>>,
}

impl FieldNames {
    pub(super) const fn new(names: &'static [&'static str]) -> FieldNames {
        FieldNames {
            names,
            folded: OnceLock::new(),
        }
    }

    /// The field `key` is read as, if any (the first, should two names fold
    /// alike).
    pub(super) fn find(&self, key: &str) -> Option<&'static str> {
        self.find_folded(&go_fold(key))
    }

    /// As [`FieldNames::find`], for a key already folded ([`go_fold`]).
    fn find_folded(&self, folded_key: &str) -> Option<&'static str> {
        let folded = self.folded.get_or_init(|| {
            let mut folded = HashMap::with_capacity(self.names.len());
            for name in self.names {
                folded.entry(go_fold(name)).or_insert(*name);
            }
            folded
        });
        folded.get(folded_key).copied()
    }
}

// ---------------------------------------------------------------------------
// Parsing with duplicate checks

/// Where in the body a value sits, for error messages; built on the stack
/// as the parser descends, formatted only when something is wrong.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, key) => write!(f, "{key}"),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

impl Path<'_> {
    fn describe(&self) -> String {
        match self {
            Path::Root => "at the top level".to_string(),
            path => format!("in {path}"),
        }
    }
}

/// Fields whose value is a Go map keyed by user data (paths, label names,
/// network names, option names), where keys that differ only in case are
/// distinct. Matched by name wherever they appear: the cost of a wrong guess
/// is only that case-folded duplicates inside that one object are let
/// through, and no rule reads a struct field under any of these names.
const USER_DATA_MAPS: &[&str] = &[
    "Labels",
    "Volumes",
    "ExposedPorts",
    "Tmpfs",
    "StorageOpt",
    "Sysctls",
    "PortBindings",
    "Config", // LogConfig.Config
    "DriverOpts",
    "Options", // DriverConfig.Options, DeviceRequests[].Options, LogDriver.Options
    "Annotations",
    "EndpointsConfig",
];

static USER_DATA: FieldNames = FieldNames::new(USER_DATA_MAPS);

/// Deserializes one JSON value into a [`Value`], checking object keys.
struct ValueSeed<'a> {
    path: Path<'a>,
    /// This value, if an object, is a user-data map (see [`USER_DATA_MAPS`]).
    user_data: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = ValueSeed {
                path: Path::Index(&self.path, items.len()),
                user_data: false,
            };
            match access.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        // Folded key → the key as written, for objects Go decodes into structs.
        let mut folded: HashSet<String> = HashSet::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key {key:?} {}",
                    self.path.describe()
                )));
            }
            let mut user_data = false;
            if !self.user_data {
                let fold = go_fold(&key);
                user_data = USER_DATA.find_folded(&fold).is_some();
                if !folded.insert(fold) {
                    let previous = map
                        .keys()
                        .find(|k| go_fold(k) == go_fold(&key))
                        .cloned()
                        .unwrap_or_default();
                    return Err(de::Error::custom(format!(
                        "keys {previous:?} and {key:?} {} differ only in case, and dockerd would \
                         silently use the last one",
                        self.path.describe()
                    )));
                }
            }
            let seed = ValueSeed {
                path: Path::Key(&self.path, &key),
                // The values of a user-data map are structs or scalars again.
                user_data,
            };
            let value = access.next_value_seed(seed)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------
// Schemas: the known keys of each object the rules read

/// The known keys of one Go struct, and which of its fields are structs (or
/// arrays of structs) to canonicalise in turn.
pub(super) struct Schema {
    pub(super) keys: FieldNames,
    pub(super) children: &'static [(&'static str, Child)],
}

pub(super) enum Child {
    Object(&'static Schema),
    ArrayOf(&'static Schema),
}

/// Renames known keys of `object` to their canonical spelling, keeping the
/// order and every unknown key, then descends into the known children.
fn canonicalize_object(object: &mut Map<String, Value>, schema: &Schema, path: &str) -> Result<(), BadRequest> {
    let needs_renaming = object
        .keys()
        .any(|key| schema.keys.find(key).is_some_and(|name| name != key));
    if needs_renaming {
        let old = std::mem::take(object);
        for (key, value) in old {
            let key = match schema.keys.find(&key) {
                Some(name) => name.to_string(),
                None => key,
            };
            if object.contains_key(&key) {
                return Err(BadRequest::new(format!(
                    "invalid body: two keys for {path}{key} that differ only in case; dockerd would \
                     silently use the last one"
                )));
            }
            object.insert(key, value);
        }
    }
    for (name, child) in schema.children {
        let Some(value) = object.get_mut(*name) else {
            continue;
        };
        let child_path = format!("{path}{name}");
        match (child, value) {
            (_, Value::Null) => {}
            (Child::Object(schema), Value::Object(inner)) => {
                canonicalize_object(inner, schema, &format!("{child_path}."))?;
            }
            (Child::ArrayOf(schema), Value::Array(items)) => {
                for (index, item) in items.iter_mut().enumerate() {
                    match item {
                        Value::Object(inner) => {
                            canonicalize_object(inner, schema, &format!("{child_path}[{index}]."))?;
                        }
                        Value::Null => {}
                        other => {
                            return Err(BadRequest::new(format!(
                                "invalid body: {child_path}[{index}] must be an object, got {}",
                                kind(other)
                            )))
                        }
                    }
                }
            }
            (Child::Object(_), other) => {
                return Err(BadRequest::new(format!(
                    "invalid body: {child_path} must be an object, got {}",
                    kind(other)
                )))
            }
            (Child::ArrayOf(_), other) => {
                return Err(BadRequest::new(format!(
                    "invalid body: {child_path} must be an array, got {}",
                    kind(other)
                )))
            }
        }
    }
    Ok(())
}

/// `container.Config`, plus the create wrapper's own fields.
const CONFIG_KEYS: &[&str] = &[
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
    "HostConfig",
    "NetworkingConfig",
    "Cpuset",
];

/// `container.HostConfig` with its embedded `Resources`, as of API 1.41 and
/// later (`Annotations`).
pub(super) const HOST_CONFIG_KEYS: &[&str] = &[
    "Binds",
    "ContainerIDFile",
    "LogConfig",
    "NetworkMode",
    "PortBindings",
    "RestartPolicy",
    "AutoRemove",
    "VolumeDriver",
    "VolumesFrom",
    "ConsoleSize",
    "Annotations",
    "CapAdd",
    "CapDrop",
    "CgroupnsMode",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "IpcMode",
    "Cgroup",
    "Links",
    "OomScoreAdj",
    "PidMode",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyRootfs",
    "SecurityOpt",
    "StorageOpt",
    "Tmpfs",
    "UTSMode",
    "UsernsMode",
    "ShmSize",
    "Sysctls",
    "Runtime",
    "Isolation",
    "Mounts",
    "MaskedPaths",
    "ReadonlyPaths",
    "Init",
    // Resources
    "CpuShares",
    "Memory",
    "NanoCpus",
    "CgroupParent",
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "OomKillDisable",
    "PidsLimit",
    "Ulimits",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
];

/// `mount.Mount`, shared by `HostConfig.Mounts` and Swarm's `ContainerSpec.Mounts`.
pub(super) static MOUNT: Schema = Schema {
    keys: FieldNames::new(&[
        "Type",
        "Source",
        "Target",
        "ReadOnly",
        "Consistency",
        "BindOptions",
        "VolumeOptions",
        "TmpfsOptions",
    ]),
    children: &[("VolumeOptions", Child::Object(&VOLUME_OPTIONS))],
};

static VOLUME_OPTIONS: Schema = Schema {
    keys: FieldNames::new(&["NoCopy", "Labels", "Subpath", "DriverConfig"]),
    children: &[("DriverConfig", Child::Object(&DRIVER_CONFIG))],
};

static DRIVER_CONFIG: Schema = Schema {
    keys: FieldNames::new(&["Name", "Options"]),
    children: &[],
};

static HOST_CONFIG: Schema = Schema {
    keys: FieldNames::new(HOST_CONFIG_KEYS),
    children: &[("Mounts", Child::ArrayOf(&MOUNT))],
};

static NETWORKING_CONFIG: Schema = Schema {
    keys: FieldNames::new(&["EndpointsConfig"]),
    children: &[],
};

static CREATE: Schema = Schema {
    keys: FieldNames::new(CONFIG_KEYS),
    children: &[
        ("HostConfig", Child::Object(&HOST_CONFIG)),
        ("NetworkingConfig", Child::Object(&NETWORKING_CONFIG)),
    ],
};

/// `container.UpdateConfig`: `Resources` (embedded, so flat) and `RestartPolicy`.
pub(super) static UPDATE: Schema = Schema {
    keys: FieldNames::new(&[
        "CpuShares",
        "Memory",
        "NanoCpus",
        "CgroupParent",
        "BlkioWeight",
        "CpuPeriod",
        "CpuQuota",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
        "CpusetCpus",
        "CpusetMems",
        "Devices",
        "DeviceCgroupRules",
        "DeviceRequests",
        "KernelMemory",
        "KernelMemoryTCP",
        "MemoryReservation",
        "MemorySwap",
        "MemorySwappiness",
        "OomKillDisable",
        "PidsLimit",
        "Ulimits",
        "RestartPolicy",
    ]),
    children: &[],
};

/// `container.ExecOptions` (`types.ExecConfig` in 20.10).
pub(super) static EXEC: Schema = Schema {
    keys: FieldNames::new(&[
        "User",
        "Privileged",
        "Tty",
        "ConsoleSize",
        "AttachStdin",
        "AttachStderr",
        "AttachStdout",
        "Detach",
        "DetachKeys",
        "Env",
        "WorkingDir",
        "Cmd",
    ]),
    children: &[],
};

/// `volume.CreateOptions`.
pub(super) static VOLUME_CREATE: Schema = Schema {
    keys: FieldNames::new(&["Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec"]),
    children: &[],
};

/// `swarm.ServiceSpec`, down to what the rules read.
pub(super) static SERVICE_SPEC: Schema = Schema {
    keys: FieldNames::new(&[
        "Name",
        "Labels",
        "TaskTemplate",
        "Mode",
        "UpdateConfig",
        "RollbackConfig",
        "Networks",
        "EndpointSpec",
    ]),
    children: &[
        ("TaskTemplate", Child::Object(&TASK_SPEC)),
        ("Networks", Child::ArrayOf(&NETWORK_ATTACHMENT)),
    ],
};

static TASK_SPEC: Schema = Schema {
    keys: FieldNames::new(&[
        "ContainerSpec",
        "PluginSpec",
        "NetworkAttachmentSpec",
        "Resources",
        "RestartPolicy",
        "Placement",
        "Networks",
        "LogDriver",
        "ForceUpdate",
        "Runtime",
    ]),
    children: &[
        ("ContainerSpec", Child::Object(&CONTAINER_SPEC)),
        ("Resources", Child::Object(&RESOURCE_REQUIREMENTS)),
        ("Networks", Child::ArrayOf(&NETWORK_ATTACHMENT)),
    ],
};

static CONTAINER_SPEC: Schema = Schema {
    keys: FieldNames::new(&[
        "Image",
        "Labels",
        "Command",
        "Args",
        "Hostname",
        "Env",
        "Dir",
        "User",
        "Groups",
        "Privileges",
        "Init",
        "StopSignal",
        "TTY",
        "OpenStdin",
        "ReadOnly",
        "Mounts",
        "StopGracePeriod",
        "HealthCheck",
        "Hosts",
        "DNSConfig",
        "Secrets",
        "Configs",
        "Isolation",
        "Sysctls",
        "CapabilityAdd",
        "CapabilityDrop",
        "Ulimits",
        "OomScoreAdj",
    ]),
    children: &[
        ("Privileges", Child::Object(&PRIVILEGES)),
        ("Mounts", Child::ArrayOf(&MOUNT)),
    ],
};

static PRIVILEGES: Schema = Schema {
    keys: FieldNames::new(&[
        "CredentialSpec",
        "SELinuxContext",
        "Seccomp",
        "AppArmor",
        "NoNewPrivileges",
    ]),
    children: &[
        ("Seccomp", Child::Object(&SECCOMP_OPTS)),
        ("AppArmor", Child::Object(&APPARMOR_OPTS)),
    ],
};

static SECCOMP_OPTS: Schema = Schema {
    keys: FieldNames::new(&["Mode", "Profile"]),
    children: &[],
};

static APPARMOR_OPTS: Schema = Schema {
    keys: FieldNames::new(&["Mode"]),
    children: &[],
};

static RESOURCE_REQUIREMENTS: Schema = Schema {
    keys: FieldNames::new(&["Limits", "Reservations", "SwapBytes", "MemorySwappiness"]),
    children: &[
        ("Limits", Child::Object(&LIMIT)),
        ("Reservations", Child::Object(&RESOURCES)),
    ],
};

static LIMIT: Schema = Schema {
    keys: FieldNames::new(&["NanoCPUs", "MemoryBytes", "Pids"]),
    children: &[],
};

static RESOURCES: Schema = Schema {
    keys: FieldNames::new(&["NanoCPUs", "MemoryBytes", "GenericResources"]),
    children: &[],
};

static NETWORK_ATTACHMENT: Schema = Schema {
    keys: FieldNames::new(&["Target", "Aliases", "DriverOpts"]),
    children: &[],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_folding_matches_the_two_non_ascii_runes() {
        assert!(go_fold_eq("privileged", "Privileged"));
        assert!(go_fold_eq("PRIVILEGED", "Privileged"));
        assert!(go_fold_eq("\u{17F}ecurityOpt", "SecurityOpt"));
        assert!(go_fold_eq("Networ\u{212A}Mode", "NetworkMode"));
        assert!(!go_fold_eq("Privilege", "Privileged"));
        assert!(!go_fold_eq("Privilegedd", "Privileged"));
        assert!(!go_fold_eq("Pr\u{130}vileged", "Privileged"));
    }

    #[test]
    fn config_and_host_config_keys_do_not_overlap() {
        // The top-level HostConfig check relies on this.
        for key in CONFIG_KEYS {
            assert!(
                !HOST_CONFIG_KEYS.iter().any(|name| go_fold_eq(key, name)),
                "{key} is in both"
            );
        }
    }

    #[test]
    fn paths_name_where_a_duplicate_is() {
        let err = parse_body(br#"{"HostConfig":{"Mounts":[{"Type":"bind","type":"volume"}]}}"#).unwrap_err();
        assert!(err.message.contains("in HostConfig.Mounts[0]"), "{err}");
        let err = parse_body(br#"{"a":1,"a":2}"#).unwrap_err();
        assert!(err.message.contains("at the top level"), "{err}");
    }
}
