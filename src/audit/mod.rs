//! `forge-shim audit`: every container on the host against the standard's
//! compliance checklist (limits, non-root, read-only root, health check,
//! hardening), and for running containers whether a read-only root
//! filesystem is possible, from what they have written so far.
//!
//! The checks are pure functions over dockerd's inspect JSON (`checks`), so
//! they are tested without a daemon; [`reports`] does the I/O, through
//! [`DockerApi`].

mod checks;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::config::StandardsConfig;
use crate::docker::{Docker, DockerApi, DockerError};
use crate::standards::fitted::{self, Fit, Profile, UserFit};
use crate::standards::rule;
pub use checks::{check, read_only_advice, Finding, ReadOnlyAdvice};

/// How long the audit waits to connect to dockerd.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Serialize)]
pub struct ContainerReport {
    pub id: String,
    #[serde(skip)]
    pub full_id: String,
    #[serde(skip)]
    pub image_id: Option<String>,
    #[serde(skip)]
    pub hardening_label: Option<String>,
    pub name: String,
    pub image: String,
    pub state: String,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<ReadOnlyAdvice>,
    /// Where it came from, as the shim recorded it (`shim`, `pre_existing`,
    /// `bypass`, `out_of_scope`, or `unknown`: not recorded yet); absent
    /// when no shim ran with this `state_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// How its hardening rules stand, and what its image's profile
    /// recommends; absent for a container no fitted rule decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardening: Option<HardeningReport>,
}

/// Fitted hardening, for one container.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct HardeningReport {
    /// Rule → `applied`, `learning`, `failed: …` or `not applied`.
    pub rules: BTreeMap<&'static str, String>,
    /// What the image's profile recommends, when it has one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recommends: Vec<String>,
}

/// How container `id`'s hardening stands: from the label the shim put on
/// its create and its image's profile. `None` when it has no label.
pub fn hardening_report(
    id: &str,
    label: Option<&str>,
    profile: Option<&Profile>,
    standards: &StandardsConfig,
) -> Option<HardeningReport> {
    let label = label?;
    let applied: Vec<&str> = label.split(',').map(str::trim).collect();
    let mut report = HardeningReport::default();
    for rule in [rule::NON_ROOT, rule::DEFAULTS_READ_ONLY_ROOTFS, rule::DEFAULTS_CAP_DROP] {
        let failed = profile.and_then(|p| p.failures.iter().find(|f| f.rule == rule && f.container == id));
        let state = match failed {
            Some(f) => format!("failed: {}", f.evidence),
            None if label == fitted::LEARNING => "learning".to_string(),
            None if applied.contains(&rule) => "applied".to_string(),
            None => "not applied".to_string(),
        };
        report.rules.insert(rule, state);
    }
    if let Some(profile) = profile {
        let default_user = standards.defaults.user.as_deref().and_then(fitted::numeric_user);
        let plan = fitted::plan(
            Some(profile),
            &standards.hardening,
            &standards.cap_add_allowed,
            default_user,
        );
        let ephemeral = profile.ephemeral_paths();
        if !ephemeral.is_empty() {
            report.recommends.push(format!("tmpfs at {}", ephemeral.join(", ")));
        }
        for path in profile.data_paths() {
            report.recommends.push(format!(
                "a volume at {path}: it keeps data there, and a read-only root needs it elsewhere"
            ));
        }
        match plan.user {
            Fit::Apply(UserFit::SetDefault) => report.recommends.push(format!(
                "user {}",
                standards.defaults.user.as_deref().unwrap_or("65534:65534")
            )),
            Fit::Apply(UserFit::StartAsRoot { uid, gid }) => report
                .recommends
                .push(format!("start as root: the image drops to {uid}:{gid} itself")),
            _ => {}
        }
        if let Fit::Apply(caps) = &plan.caps {
            report.recommends.push(if caps.is_empty() {
                "cap_drop ALL".to_string()
            } else {
                format!("cap_drop ALL, cap_add {}", caps.join(", "))
            });
        }
        if let Some(millicores) = profile.cpu_millicores {
            report
                .recommends
                .push(format!("CPU: it used {millicores} millicores on average while watched"));
        }
        if let Some(memory) = profile.recommended_memory() {
            report.recommends.push(format!(
                "memory limit {}M (1.5 x the peak seen, {}M)",
                memory >> 20,
                profile.memory_peak.unwrap_or(0) >> 20
            ));
        }
    }
    Some(report)
}

impl ContainerReport {
    pub fn compliant(&self) -> bool {
        self.findings.is_empty()
    }
}

/// The rule of the finding on a container created around the shim.
pub const BYPASS_RULE: &str = "bypass";

/// Lists and checks every container through dockerd at `upstream`;
/// `origins` (full id → origin, as the shim recorded them) marks the ones
/// created around the shim.
pub async fn run(
    upstream: &Path,
    origins: Option<&HashMap<String, String>>,
    profiles: &HashMap<String, Arc<Profile>>,
    standards: &StandardsConfig,
) -> anyhow::Result<Vec<ContainerReport>> {
    let mut reports = reports(&Docker::new(upstream, CONNECT_TIMEOUT), origins).await?;
    for report in &mut reports {
        let profile = report.image_id.as_deref().and_then(|id| profiles.get(id));
        report.hardening = hardening_report(
            &report.full_id,
            report.hardening_label.as_deref(),
            profile.map(|p| &**p),
            standards,
        );
    }
    Ok(reports)
}

/// Lists and checks every container `docker` knows. A container `origins`
/// records as a bypass gets a finding of its own ([`BYPASS_RULE`]).
pub async fn reports(
    docker: &dyn DockerApi,
    origins: Option<&HashMap<String, String>>,
) -> Result<Vec<ContainerReport>, DockerError> {
    let ids = docker.list_containers().await?;
    let mut reports = Vec::new();
    for id in ids {
        let inspect = match docker.inspect_container_json(&id).await {
            Ok(inspect) => inspect,
            // Removed between the list and the inspect.
            Err(_) => continue,
        };
        let running = inspect["State"]["Running"].as_bool().unwrap_or(false);
        let mut findings = check(&inspect);
        let origin = origins.map(|origins| origins.get(&id).cloned().unwrap_or_else(|| "unknown".into()));
        if origin.as_deref() == Some("bypass") {
            findings.push(Finding {
                rule: BYPASS_RULE,
                detail: "created straight on dockerd, around the shim (no standards were applied at create)".into(),
            });
        }
        let read_only = if running && findings.iter().any(|f| f.rule == "read_only_rootfs") {
            let changes = docker.container_changes(&id).await.unwrap_or(Value::Null);
            Some(read_only_advice(&inspect, &changes))
        } else {
            None
        };
        findings.sort_by_key(|f| f.rule);
        reports.push(ContainerReport {
            full_id: id.clone(),
            image_id: inspect["Image"].as_str().map(str::to_string),
            hardening_label: inspect["Config"]["Labels"][fitted::LABEL_HARDENING]
                .as_str()
                .map(str::to_string),
            hardening: None,
            id: id.chars().take(12).collect(),
            name: inspect["Name"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string(),
            image: inspect["Config"]["Image"].as_str().unwrap_or("").to_string(),
            state: inspect["State"]["Status"].as_str().unwrap_or("").to_string(),
            findings,
            read_only,
            origin,
        });
    }
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(reports)
}

/// Prints the reports as text, ending with `N/M containers compliant`.
pub fn print_text(reports: &[ContainerReport]) {
    for report in reports {
        let verdict = if report.compliant() {
            "compliant"
        } else {
            "NOT compliant"
        };
        println!(
            "{} ({}, {}, {}): {verdict}",
            report.name, report.id, report.image, report.state
        );
        for finding in &report.findings {
            println!("  - {}: {}", finding.rule, finding.detail);
        }
        if let Some(hardening) = &report.hardening {
            let rules: Vec<String> = hardening
                .rules
                .iter()
                .map(|(rule, state)| format!("{rule}: {state}"))
                .collect();
            println!("  hardening: {}", rules.join("; "));
            for recommendation in &hardening.recommends {
                println!("    recommends {recommendation}");
            }
        }
        if let Some(advice) = &report.read_only {
            if advice.possible {
                println!("  read-only root: possible (nothing written outside volumes and tmpfs so far)");
            } else {
                println!(
                    "  read-only root: needs a tmpfs or volume for {}",
                    advice.needs_writable.join(", ")
                );
            }
        }
    }
    let compliant = reports.iter().filter(|r| r.compliant()).count();
    println!("{compliant}/{} containers compliant", reports.len());
    let bypasses = reports.iter().filter(|r| r.origin.as_deref() == Some("bypass")).count();
    if bypasses > 0 {
        println!("{bypasses} created straight on dockerd, around the shim");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hardening_reports_read_the_label_and_the_profile() {
        let standards = crate::config::Config::load(None).unwrap().config.standards;
        assert_eq!(hardening_report("c1", None, None, &standards), None);
        let learning = hardening_report("c1", Some("learning"), None, &standards).unwrap();
        assert!(learning.rules.values().all(|s| s == "learning"), "{learning:?}");
        assert!(learning.recommends.is_empty());

        let mut profile = Profile::new("sha256:x", "app");
        profile.runs = 1;
        profile.observed_seconds = 3600;
        profile.user = Some(fitted::RunUser::Root);
        profile.memory_peak = Some(100 << 20);
        profile.paths.insert(
            "/app/uploads".into(),
            fitted::LearnedPath {
                kind: fitted::PathKind::Data,
                why: "data".into(),
            },
        );
        profile.fail(fitted::Failure {
            rule: rule::DEFAULTS_CAP_DROP.into(),
            container: "c2".into(),
            evidence: "EPERM".into(),
            at: 1,
        });
        let applied = hardening_report("c1", Some("non_root,defaults.cap_drop"), Some(&profile), &standards).unwrap();
        assert_eq!(applied.rules[rule::NON_ROOT], "applied");
        assert_eq!(applied.rules[rule::DEFAULTS_READ_ONLY_ROOTFS], "not applied");
        // The failure was another container's.
        assert_eq!(applied.rules[rule::DEFAULTS_CAP_DROP], "applied");
        let failed = hardening_report("c2", Some("defaults.cap_drop"), Some(&profile), &standards).unwrap();
        assert_eq!(failed.rules[rule::DEFAULTS_CAP_DROP], "failed: EPERM");
        let text = failed.recommends.join("\n");
        assert!(text.contains("a volume at /app/uploads"), "{text}");
        assert!(text.contains("user 65534:65534"), "{text}");
        assert!(text.contains("memory limit 160M"), "{text}");
    }

    #[tokio::test]
    async fn reports_cover_every_container_and_ask_changes_only_of_running_writable_ones() {
        use crate::docker::fake::{Call, FakeContainer, FakeDocker};
        let mut hardened = FakeContainer::running(1, "hardened");
        hardened.extra = json!({
            "Config": {"User": "65534", "Healthcheck": {"Test": ["CMD", "true"]}},
            "HostConfig": {
                "Memory": 536870912, "NanoCpus": 1000000000, "PidsLimit": 512,
                "ReadonlyRootfs": true, "SecurityOpt": ["no-new-privileges"], "CapDrop": ["ALL"]
            }
        });
        let mut bare = FakeContainer::running(2, "bare");
        bare.changes = json!([{"Path": "/var/cache/app", "Kind": 1}]);
        let mut stopped = FakeContainer::running(3, "stopped");
        stopped.running = false;
        let docker = FakeDocker::new([hardened, bare.clone(), stopped.clone()]);

        let reports = reports(docker.as_ref(), None).await.unwrap();
        let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["bare", "hardened", "stopped"]);
        assert!(reports[1].compliant(), "{:?}", reports[1].findings);
        assert!(!reports[0].compliant());
        assert_eq!(reports[0].id, bare.id[..12]);
        let advice = reports[0]
            .read_only
            .as_ref()
            .expect("advice for a running writable root");
        assert_eq!(advice.needs_writable, ["/var/cache"]);
        assert!(reports[2].read_only.is_none(), "a stopped container has no advice");
        assert_eq!(reports[2].state, "exited");
        // Changes are read only where they say something.
        assert_eq!(docker.count(&Call::Changes(bare.id.clone())), 1);
        assert_eq!(docker.count(&Call::Changes(stopped.id.clone())), 0);
    }

    #[tokio::test]
    async fn a_container_recorded_as_a_bypass_is_not_compliant_and_says_so() {
        use crate::docker::fake::{FakeContainer, FakeDocker};
        let mine = FakeContainer::running(1, "mine");
        let around = FakeContainer::running(2, "around");
        let unseen = FakeContainer::running(3, "unseen");
        let docker = FakeDocker::new([mine.clone(), around.clone(), unseen.clone()]);
        let origins: HashMap<String, String> = [
            (mine.id.clone(), "shim".to_string()),
            (around.id.clone(), "bypass".to_string()),
        ]
        .into();
        let reports = reports(docker.as_ref(), Some(&origins)).await.unwrap();
        let by_name = |name: &str| reports.iter().find(|r| r.name == name).unwrap();
        assert_eq!(by_name("around").origin.as_deref(), Some("bypass"));
        assert!(by_name("around").findings.iter().any(|f| f.rule == BYPASS_RULE));
        assert_eq!(by_name("mine").origin.as_deref(), Some("shim"));
        assert!(!by_name("mine").findings.iter().any(|f| f.rule == BYPASS_RULE));
        assert_eq!(by_name("unseen").origin.as_deref(), Some("unknown"));
        assert!(!by_name("unseen").findings.iter().any(|f| f.rule == BYPASS_RULE));
        let without = super::reports(docker.as_ref(), None).await.unwrap();
        assert!(without.iter().all(|r| r.origin.is_none()));
    }
}
