//! `POST /containers/{id}/exec`: no privileged exec and, with
//! `non_root.deny_root_exec`, no exec as root.

use serde_json::Value;

use crate::config::{ContainerIdentity, LoadedConfig, StandardsMode};

use super::canon;
use super::engine::{keep_original, unchanged, Engine};
use super::json::{boolean, string};
use super::predicates::runs_as_root;
use super::rule::*;
use super::{BadRequest, Outcome, Rejection};

pub(super) fn check_exec(
    cfg: &LoadedConfig,
    who: &ContainerIdentity<'_>,
    container_user: Option<&str>,
    body: Value,
) -> Result<Outcome, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off {
        return Ok(unchanged(body));
    }
    let original = keep_original(standards, &body);
    let body = canon::canonicalize(body, &canon::EXEC, "exec")?;
    let Some(root) = body.as_object() else {
        return Err(BadRequest::new("invalid exec body: expected an object").into());
    };
    let mut e = Engine::new(cfg, who);
    if standards.deny.privileged && boolean(root, "Privileged", "")? == Some(true) {
        e.deny(DENY_PRIVILEGED, "a privileged exec (Privileged)", None);
    }
    if standards.non_root.deny_root_exec {
        let (user, whose) = match string(root, "User", "")?.filter(|u| !u.is_empty()) {
            Some(user) => (Some(user), "User"),
            None => (container_user, "the container's user"),
        };
        let root_user = match user {
            None => true,
            Some(u) => u.trim().is_empty() || runs_as_root(u),
        };
        if root_user {
            let shown = user.filter(|u| !u.trim().is_empty()).unwrap_or("root");
            e.deny(
                NON_ROOT,
                format!("exec as root ({whose} {shown:?})"),
                Some("exec as a non-root user (docker exec --user 65534)".to_string()),
            );
        }
    }
    e.finish(original, body)
}
