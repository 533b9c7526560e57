//! `POST /containers/{id}/exec`: no privileged exec and, with
//! `non_root.deny_root_exec`, no exec as root.

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
    if standards.non_root.deny_root_exec && e.applies(NON_ROOT) {
        let explicit = string(root, "User", "")?.filter(|u| !u.is_empty()).map(str::to_string);
        let (user, whose) = match &explicit {
            Some(user) => (Some(user.as_str()), "User"),
            None => (container_user, "the container's user"),
        };
        let advice = || Some("exec as a non-root user (docker exec --user 65534)".to_string());
        match user.map(|user| user::resolve(user, passwd)) {
            None => e.deny(NON_ROOT, format!("exec as root ({whose} is unknown)"), advice()),
            Some(Resolved::Root(why)) => e.deny(NON_ROOT, format!("exec as root ({whose}: {why})"), advice()),
            Some(Resolved::Unknown(why)) => e.deny(
                NON_ROOT,
                format!("exec user cannot be checked ({whose}: {why})"),
                advice(),
            ),
            Some(Resolved::NonRoot {
                pinned: Some(pinned), ..
            }) => {
                let name = user.unwrap_or_default().to_string();
                e.change(
                    NON_ROOT,
                    format!("pinned exec user {name:?} to {pinned}, its uid in the container's /etc/passwd"),
                );
                body.as_object_mut()
                    .expect("checked above")
                    .insert("User".to_string(), Value::String(pinned));
            }
            Some(Resolved::NonRoot { pinned: None, .. }) => {}
        }
    }
    e.finish(original, body)
}
