//! `forge-shim audit`: every container on the host against the standard's
//! compliance checklist (limits, non-root, read-only root, health check,
//! hardening), and for running containers whether a read-only root
//! filesystem is possible, from what they have written so far.
//!
//! The checks are pure functions over dockerd's inspect JSON (`checks`), so
//! they are tested without a daemon; [`reports`] does the I/O, through
//! [`DockerApi`].

mod checks;

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
}

impl ContainerReport {
    pub fn compliant(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Lists and checks every container through dockerd at `upstream`.
pub async fn run(upstream: &Path) -> anyhow::Result<Vec<ContainerReport>> {
    Ok(reports(&Docker::new(upstream, CONNECT_TIMEOUT)).await?)
}

/// Lists and checks every container `docker` knows.
pub async fn reports(docker: &dyn DockerApi) -> Result<Vec<ContainerReport>, DockerError> {
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

        let reports = reports(docker.as_ref()).await.unwrap();
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
}
