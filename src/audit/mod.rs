//! `forge-shim audit`: every container on the host against the standard's
//! compliance checklist (limits, non-root, read-only root, health check,
//! hardening), and for running containers whether a read-only root
//! filesystem is possible, from what they have written so far.
//!
//! The checks are pure functions over dockerd's inspect JSON (`checks`), so
//! they are tested without a daemon; [`reports`] does the I/O, through
//! [`DockerApi`].

mod checks;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::docker::{Docker, DockerApi, DockerError};
pub use checks::{check, read_only_advice, Finding, ReadOnlyAdvice};

/// How long the audit waits to connect to dockerd.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Serialize)]
pub struct ContainerReport {
    pub id: String,
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
pub async fn run(upstream: &Path, origins: Option<&HashMap<String, String>>) -> anyhow::Result<Vec<ContainerReport>> {
    Ok(reports(&Docker::new(upstream, CONNECT_TIMEOUT), origins).await?)
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
