//! Service classes, per-service entries and how a container is matched to
//! them. Both the standards (resources) and the lifecycle (sleep policy) read
//! the same resolved [`ServicePolicy`], so the two can never disagree about
//! which class a container is in.

use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use super::units::{ByteSize, Cpus, HumanDuration};

/// The labels compose puts on every container it creates.
pub const LABEL_COMPOSE_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_COMPOSE_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_COMPOSE_DEPENDS_ON: &str = "com.docker.compose.depends_on";
/// Our own labels; a container may choose its class and opt out of sleep.
pub const LABEL_CLASS: &str = "forge.class";
pub const LABEL_SLEEP: &str = "forge.sleep";
pub const LABEL_SLEEP_IDLE_TIMEOUT: &str = "forge.sleep.idle-timeout";

/// The seed's `resources:` block.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub memory: Option<ByteSize>,
    pub cpu: Option<Cpus>,
    pub memory_reservation: Option<ByteSize>,
    /// Accepted for compatibility with the seed's schema; Docker has no CPU
    /// reservation for plain containers, so it is recorded, not applied.
    pub cpu_reservation: Option<Cpus>,
    pub pids_limit: Option<i64>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    Normal,
    Low,
}

/// The seed's `sleep_policy:` block. Every field is optional so that a
/// service entry only overrides what it names; [`SleepPolicy::merge`] layers
/// service over class.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SleepPolicy {
    pub enabled: Option<bool>,
    pub idle_timeout: Option<HumanDuration>,
    pub min_sleep_time: Option<HumanDuration>,
    /// Memory the frozen container is squeezed down to while asleep.
    pub memory_reservation: Option<ByteSize>,
    pub priority: Option<Priority>,
    /// Stop the container after `auto_sleep.max_sleep_time` asleep.
    pub deep_sleep: Option<bool>,
}

impl SleepPolicy {
    /// `self` overrides `base` field by field.
    pub fn merge(&self, base: &SleepPolicy) -> SleepPolicy {
        SleepPolicy {
            enabled: self.enabled.or(base.enabled),
            idle_timeout: self.idle_timeout.or(base.idle_timeout),
            min_sleep_time: self.min_sleep_time.or(base.min_sleep_time),
            memory_reservation: self.memory_reservation.or(base.memory_reservation),
            priority: self.priority.or(base.priority),
            deep_sleep: self.deep_sleep.or(base.deep_sleep),
        }
    }
}

impl Resources {
    pub fn merge(&self, base: &Resources) -> Resources {
        Resources {
            memory: self.memory.or(base.memory),
            cpu: self.cpu.or(base.cpu),
            memory_reservation: self.memory_reservation.or(base.memory_reservation),
            cpu_reservation: self.cpu_reservation.or(base.cpu_reservation),
            pids_limit: self.pids_limit.or(base.pids_limit),
        }
    }
}

/// The seed's `health_check:` block, accepted verbatim. The shim reports a
/// container without a Docker health check as non-compliant; this block is
/// what a team already wrote down for its service.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    pub path: Option<String>,
    pub interval: Option<HumanDuration>,
    pub timeout: Option<HumanDuration>,
}

/// A service class (`high`, `normal`, `low`, `browser` or the operator's own).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub sleep_policy: SleepPolicy,
    pub auto_start: Option<bool>,
}

/// Which containers a `services:` entry or an `exempt:` entry covers. All the
/// fields given must match.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Compose service name (label `com.docker.compose.service`).
    pub service: Option<String>,
    /// Compose project (label `com.docker.compose.project`).
    pub project: Option<String>,
    /// Glob over the container name, without the leading `/`.
    pub name: Option<String>,
    /// Glob over the image reference as the create request gave it. A name
    /// anyone who may `docker tag` can give any image: not accepted in
    /// `exempt:` entries.
    pub image: Option<String>,
    /// Image content ids (`sha256:<64 hex>`, or the 64 hex alone), any of
    /// which matches.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub image_id: Vec<String>,
    /// Repositories the image was pulled from (or pushed to) by digest, as
    /// its `RepoDigests` record them, any of which matches: `postgres`,
    /// `docker.io/library/postgres` and `library/postgres` are one
    /// repository. `docker tag` cannot add a repo digest.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub pulled_from: Vec<String>,
}

/// A string or a list of strings, as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// A `services:` entry: the seed's `services.yml` schema, verbatim, plus
/// `class` and `match`. Fields the shim does not act on (`command`, `port`,
/// `environment`, `volumes`) are accepted so an existing file pastes in.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Explicit selector. Without it the entry's key is the compose service
    /// name, or `project/service`.
    #[serde(rename = "match")]
    pub selector: Option<Selector>,
    pub class: Option<String>,
    /// The seed's `image:`; when given and no `match` is, it is not used for
    /// matching (a service is keyed by name), only recorded.
    pub image: Option<String>,
    pub command: Option<serde_norway::Value>,
    pub port: Option<serde_norway::Value>,
    pub environment: Option<serde_norway::Value>,
    pub volumes: Option<serde_norway::Value>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub sleep_policy: SleepPolicy,
    pub auto_start: Option<bool>,
    pub health_check: Option<HealthCheckSpec>,
}

/// A rule assigning a class by image or name glob, e.g. databases → `high`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRule {
    #[serde(rename = "match")]
    pub selector: Selector,
    pub class: String,
}

/// What the shim knows about a container when it resolves its policy: from
/// the create body before it exists, from inspect afterwards.
#[derive(Clone, Debug, Default)]
pub struct ContainerIdentity<'a> {
    pub name: Option<&'a str>,
    pub image: Option<&'a str>,
    pub labels: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The image's content id, when the caller looked it up.
    pub image_id: Option<&'a str>,
    /// The image's `RepoDigests`, when the caller looked them up.
    pub repo_digests: &'a [String],
}

impl ContainerIdentity<'_> {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels?.get(key)?.as_str()
    }
}

/// A selector with its globs compiled once at config load.
#[derive(Clone, Debug)]
pub struct CompiledSelector {
    service: Option<String>,
    project: Option<String>,
    name: Option<GlobMatcher>,
    image: Option<GlobMatcher>,
    /// Full ids, `sha256:` included.
    image_ids: Vec<String>,
    /// Normalized repositories.
    pulled_from: Vec<String>,
}

impl CompiledSelector {
    pub fn compile(selector: &Selector) -> Result<CompiledSelector, String> {
        let glob = |pattern: &Option<String>| -> Result<Option<GlobMatcher>, String> {
            pattern
                .as_deref()
                .map(|p| {
                    Glob::new(p)
                        .map(|g| g.compile_matcher())
                        .map_err(|e| format!("invalid glob {p:?}: {e}"))
                })
                .transpose()
        };
        if selector.service.is_none()
            && selector.project.is_none()
            && selector.name.is_none()
            && selector.image.is_none()
            && selector.image_id.is_empty()
            && selector.pulled_from.is_empty()
        {
            return Err(
                "a match needs at least one of service, project, name, image, image_id, pulled_from".to_string(),
            );
        }
        let image_ids = selector
            .image_id
            .iter()
            .map(|id| {
                full_image_id(id).ok_or_else(|| format!("image_id {id:?} is not a full image id (sha256:<64 hex>)"))
            })
            .collect::<Result<_, _>>()?;
        let pulled_from = selector
            .pulled_from
            .iter()
            .map(|repo| {
                normalize_repository(repo)
                    .filter(|_| !repo.contains(['@', '*', '?', '[', '{']))
                    .ok_or_else(|| format!("pulled_from {repo:?} is not a repository name (no tag, digest or glob)"))
            })
            .collect::<Result<_, _>>()?;
        Ok(CompiledSelector {
            service: selector.service.clone(),
            project: selector.project.clone(),
            name: glob(&selector.name)?,
            image: glob(&selector.image)?,
            image_ids,
            pulled_from,
        })
    }

    /// The selector a bare `services:` key stands for.
    pub fn from_service_key(key: &str) -> CompiledSelector {
        let (project, service) = match key.split_once('/') {
            Some((project, service)) => (Some(project.to_string()), service.to_string()),
            None => (None, key.to_string()),
        };
        CompiledSelector {
            service: Some(service),
            project,
            name: None,
            image: None,
            image_ids: Vec::new(),
            pulled_from: Vec::new(),
        }
    }

    pub fn matches(&self, who: &ContainerIdentity<'_>) -> bool {
        if let Some(service) = &self.service {
            if who.label(LABEL_COMPOSE_SERVICE) != Some(service.as_str()) {
                return false;
            }
        }
        if let Some(project) = &self.project {
            if who.label(LABEL_COMPOSE_PROJECT) != Some(project.as_str()) {
                return false;
            }
        }
        if let Some(glob) = &self.name {
            match who.name {
                Some(name) if glob.is_match(name.trim_start_matches('/')) => {}
                _ => return false,
            }
        }
        if let Some(glob) = &self.image {
            match who.image {
                Some(image) if image_matches(glob, image) => {}
                _ => return false,
            }
        }
        if !self.image_ids.is_empty() && !who.image_id.is_some_and(|id| self.image_ids.iter().any(|i| i == id)) {
            return false;
        }
        if !self.pulled_from.is_empty() {
            let pulled = who.repo_digests.iter().any(|digest| {
                let repository = digest.split('@').next().unwrap_or_default();
                digest.contains('@')
                    && normalize_repository(repository).is_some_and(|repo| self.pulled_from.contains(&repo))
            });
            if !pulled {
                return false;
            }
        }
        true
    }

    /// Whether it matches by image name (`image:`), which `docker tag` can
    /// claim for any image.
    pub fn matches_image_name(&self) -> bool {
        self.image.is_some()
    }
}

/// `sha256:<64 lowercase hex>`, from that or the 64 hex alone.
fn full_image_id(id: &str) -> Option<String> {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then(|| format!("sha256:{hex}"))
}

/// A repository name as the registry knows it: `postgres` and
/// `library/postgres` are `docker.io/library/postgres`, `user/app` is
/// `docker.io/user/app`, a first component with a `.` or `:` (or
/// `localhost`) is a registry. `None` for an empty name.
fn normalize_repository(name: &str) -> Option<String> {
    let name = name.trim().to_ascii_lowercase();
    // A `:` in the last component is a tag.
    if name.is_empty() || name.split('/').any(str::is_empty) || name.rsplit('/').next()?.contains(':') {
        return None;
    }
    let (first, rest) = match name.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name.as_str(), None),
    };
    let registry = rest.is_some() && (first.contains(['.', ':']) || first == "localhost");
    Some(match (registry, rest) {
        (true, Some(_)) => {
            let host = if first == "index.docker.io" || first == "registry-1.docker.io" {
                "docker.io"
            } else {
                first
            };
            let path = rest.unwrap_or_default();
            if host == "docker.io" && !path.contains('/') {
                format!("docker.io/library/{path}")
            } else {
                format!("{host}/{path}")
            }
        }
        (_, Some(_)) => format!("docker.io/{name}"),
        (_, None) => format!("docker.io/library/{name}"),
    })
}

/// An image glob matches the reference as given, and also without its tag or
/// digest and without a `docker.io/library/` prefix, so `postgres*` covers
/// `postgres:16` and `docker.io/library/postgres:16-alpine`.
fn image_matches(glob: &GlobMatcher, image: &str) -> bool {
    if glob.is_match(image) {
        return true;
    }
    let short = image
        .strip_prefix("docker.io/library/")
        .or_else(|| image.strip_prefix("library/"))
        .unwrap_or(image);
    if glob.is_match(short) {
        return true;
    }
    let without_digest = short.split('@').next().unwrap_or(short);
    // A `:` after the last `/` starts the tag; one before it is a registry port.
    let without_tag = match without_digest.rfind(':') {
        Some(colon) if !without_digest[colon..].contains('/') => &without_digest[..colon],
        _ => without_digest,
    };
    glob.is_match(without_tag)
}

/// What a container ends up with after class and service entry are layered.
#[derive(Clone, Debug, PartialEq)]
pub struct ServicePolicy {
    pub class: String,
    /// The `services:` key that matched, if any.
    pub service_entry: Option<String>,
    pub resources: Resources,
    pub sleep_policy: SleepPolicy,
    pub auto_start: bool,
}

/// `classes` + `classify` + `services`, compiled for matching.
#[derive(Clone, Debug)]
pub struct PolicyTable {
    pub default_class: String,
    pub classes: BTreeMap<String, ClassSpec>,
    pub classify: Vec<(CompiledSelector, String)>,
    pub services: Vec<(String, CompiledSelector, ServiceSpec)>,
}

impl PolicyTable {
    /// Resolves a container's policy. Order: a `services:` entry (the most
    /// specific: project-qualified keys and explicit matches are tried in file
    /// order), then the `forge.class` label, then `classify:` rules, then the
    /// default class. A service entry's own `class` wins over the label.
    pub fn resolve(&self, who: &ContainerIdentity<'_>) -> ServicePolicy {
        let service = self.services.iter().find(|(_, selector, _)| selector.matches(who));
        let class = service
            .and_then(|(_, _, spec)| spec.class.clone())
            .or_else(|| {
                who.label(LABEL_CLASS)
                    .filter(|c| self.classes.contains_key(*c))
                    .map(str::to_string)
            })
            .or_else(|| {
                self.classify
                    .iter()
                    .find(|(selector, _)| selector.matches(who))
                    .map(|(_, class)| class.clone())
            })
            .unwrap_or_else(|| self.default_class.clone());
        let class_spec = self.classes.get(&class).cloned().unwrap_or_default();
        let (resources, sleep_policy, auto_start, service_entry) = match service {
            Some((key, _, spec)) => (
                spec.resources.merge(&class_spec.resources),
                spec.sleep_policy.merge(&class_spec.sleep_policy),
                spec.auto_start.or(class_spec.auto_start),
                Some(key.clone()),
            ),
            None => (
                class_spec.resources.clone(),
                class_spec.sleep_policy.clone(),
                class_spec.auto_start,
                None,
            ),
        };
        ServicePolicy {
            class,
            service_entry,
            resources,
            sleep_policy,
            auto_start: auto_start.unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn image_globs_ignore_tag_and_library_prefix() {
        let glob = Glob::new("postgres*").unwrap().compile_matcher();
        assert!(image_matches(&glob, "postgres:16"));
        assert!(image_matches(&glob, "docker.io/library/postgres:16-alpine"));
        assert!(!image_matches(&glob, "mypostgres"));
        let exact = Glob::new("redis").unwrap().compile_matcher();
        assert!(image_matches(&exact, "redis:7@sha256:abc"));
        assert!(image_matches(&exact, "redis"));
        let registry = Glob::new("registry:5000/app").unwrap().compile_matcher();
        assert!(image_matches(&registry, "registry:5000/app:1.2"));
    }

    #[test]
    fn service_keys_match_compose_labels() {
        let plain = CompiledSelector::from_service_key("web");
        let qualified = CompiledSelector::from_service_key("shop/web");
        let web_in_shop = labels(&[(LABEL_COMPOSE_PROJECT, "shop"), (LABEL_COMPOSE_SERVICE, "web")]);
        let web_in_blog = labels(&[(LABEL_COMPOSE_PROJECT, "blog"), (LABEL_COMPOSE_SERVICE, "web")]);
        let who = |l| ContainerIdentity {
            labels: Some(l),
            ..Default::default()
        };
        assert!(plain.matches(&who(&web_in_shop)));
        assert!(plain.matches(&who(&web_in_blog)));
        assert!(qualified.matches(&who(&web_in_shop)));
        assert!(!qualified.matches(&who(&web_in_blog)));
        assert!(!plain.matches(&ContainerIdentity::default()));
    }

    #[test]
    fn repositories_normalize_as_the_registry_names_them() {
        for (name, expect) in [
            ("postgres", "docker.io/library/postgres"),
            ("library/postgres", "docker.io/library/postgres"),
            ("docker.io/library/postgres", "docker.io/library/postgres"),
            ("docker.io/postgres", "docker.io/library/postgres"),
            ("index.docker.io/library/Postgres", "docker.io/library/postgres"),
            ("postgres/evil", "docker.io/postgres/evil"),
            ("localhost:5000/postgres", "localhost:5000/postgres"),
            ("ghcr.io/acme/db", "ghcr.io/acme/db"),
        ] {
            assert_eq!(normalize_repository(name).as_deref(), Some(expect), "{name}");
        }
        assert_eq!(normalize_repository(""), None);
        assert_eq!(normalize_repository("a//b"), None);
    }

    #[test]
    fn pulled_from_matches_repo_digests_only() {
        let selector = CompiledSelector::compile(&Selector {
            pulled_from: vec!["postgres".into(), "docker.io/library/redis".into()],
            ..Selector::default()
        })
        .unwrap();
        let digests = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        fn who(digests: &[String]) -> ContainerIdentity<'_> {
            ContainerIdentity {
                image: Some("postgres:16"),
                repo_digests: digests,
                ..Default::default()
            }
        }
        let official = digests(&["postgres@sha256:abc"]);
        let redis = digests(&["docker.io/library/redis@sha256:abc"]);
        assert!(selector.matches(&who(&official)));
        assert!(selector.matches(&who(&redis)));
        // A name alone (a local tag of anything) is not a digest.
        for none in [
            digests(&[]),
            digests(&["postgres"]),
            digests(&["postgres/evil@sha256:abc"]),
            digests(&["localhost:5000/postgres@sha256:abc"]),
            digests(&["postgresql@sha256:abc"]),
        ] {
            assert!(!selector.matches(&who(&none)), "{none:?}");
        }
        for bad in ["postgres:16", "postgres@sha256:abc", "postgres*", ""] {
            let compiled = CompiledSelector::compile(&Selector {
                pulled_from: vec![bad.into()],
                ..Selector::default()
            });
            assert!(compiled.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_ids_match_in_full_only() {
        let id = format!("sha256:{}", "ab".repeat(32));
        let selector = CompiledSelector::compile(&Selector {
            image_id: vec!["ab".repeat(32)],
            ..Selector::default()
        })
        .unwrap();
        let who = |image_id| ContainerIdentity {
            image_id: Some(image_id),
            ..Default::default()
        };
        assert!(selector.matches(&who(&id)));
        assert!(!selector.matches(&who("sha256:abab")));
        assert!(!selector.matches(&ContainerIdentity::default()));
        for bad in ["abab", "sha256:ABAB", "sha512:00"] {
            let compiled = CompiledSelector::compile(&Selector {
                image_id: vec![bad.into()],
                ..Selector::default()
            });
            assert!(compiled.is_err(), "{bad:?}");
        }
    }
}
