//! `POST /containers/{id}/exec`: no privileged exec and, with
//! `non_root.deny_root_exec` (the default), no exec as root into a
//! container that does not run as root: non-root means non-root.

use serde_json::Value;

use crate::config::{ContainerIdentity, LoadedConfig, StandardsMode};

use super::canon;
use super::engine::{keep_original, unchanged, Engine};
use super::json::{boolean, string};
use super::rule::*;
use super::user::{self, Passwd, Resolved};
use super::{BadRequest, Outcome, Rejection};

pub(super) fn check_exec(
    cfg: &LoadedConfig,
    who: &ContainerIdentity<'_>,
    container_user: Option<&str>,
    passwd: Option<&Passwd>,
    body: Value,
) -> Result<Outcome, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off {
        return Ok(unchanged(body));
    }
    let original = keep_original(standards, &body);
    let mut body = canon::canonicalize(body, &canon::EXEC, "exec")?;
    let Some(root) = body.as_object() else {
        return Err(BadRequest::new("invalid exec body: expected an object").into());
    };
    let mut e = Engine::new(cfg, who);
    if standards.deny.privileged && boolean(root, "Privileged", "")? == Some(true) {
        e.deny(DENY_PRIVILEGED, "a privileged exec (Privileged)", None);
    }
    // An exec runs as its `User`, else as the container's. Into a container
    // that runs as root, root is no escalation; into any other (non-root,
    // or a user the shim cannot resolve now), an exec user that is or may
    // be root is refused.
    let container_runs_as_root = match container_user.filter(|u| !u.is_empty()) {
        None => true,
        Some(spec) => matches!(user::resolve(spec, passwd), Resolved::Root(_)),
    };
    if standards.non_root.deny_root_exec && e.applies(NON_ROOT) && !container_runs_as_root {
        let explicit = string(root, "User", "")?.filter(|u| !u.is_empty()).map(str::to_string);
        let (user, whose) = match &explicit {
            Some(user) => (user.as_str(), "User"),
            None => (container_user.unwrap_or_default(), "the container's user"),
        };
        let advice = || {
            Some(
                "exec as the container's user or another non-root one (docker exec --user 65534); \
                 an operator allows root exec with standards.non_root.deny_root_exec: false"
                    .to_string(),
            )
        };
        match user::resolve(user, passwd) {
            Resolved::Root(why) => e.deny(
                NON_ROOT,
                format!("exec as root into a container that runs as non-root ({whose}: {why})"),
                advice(),
            ),
            Resolved::Unknown(why) => e.deny(
                NON_ROOT,
                format!("exec user cannot be checked ({whose}: {why})"),
                advice(),
            ),
            Resolved::NonRoot {
                pinned: Some(pinned), ..
            } => {
                let name = user.to_string();
                e.change(
                    NON_ROOT,
                    format!("pinned exec user {name:?} to {pinned}, its uid in the container's /etc/passwd"),
                );
                body.as_object_mut()
                    .expect("checked above")
                    .insert("User".to_string(), Value::String(pinned));
            }
            Resolved::NonRoot { pinned: None, .. } => {}
        }
    }
    e.finish(original, body)
}
