//! `POST /volumes/create`: a local volume bound to the Docker socket.

use serde_json::Value;

use crate::config::{ContainerIdentity, LoadedConfig, StandardsMode};

use super::canon;
use super::engine::{keep_original, unchanged, Engine};
use super::json::{object, string};
use super::shared::deny_socket_device;
use super::{BadRequest, Outcome, Rejection};

pub(super) fn check_volume_create(cfg: &LoadedConfig, body: Value) -> Result<Outcome, Rejection> {
    let standards = &cfg.config.standards;
    if standards.mode == StandardsMode::Off {
        return Ok(unchanged(body));
    }
    let original = keep_original(standards, &body);
    let body = canon::canonicalize(body, &canon::VOLUME_CREATE, "volume create")?;
    let Some(root) = body.as_object() else {
        return Err(BadRequest::new("invalid volume create body: expected an object").into());
    };
    let who = ContainerIdentity {
        name: string(root, "Name", "")?,
        image: None,
        labels: object(root, "Labels", "")?,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, &who);
    if standards.deny.docker_socket {
        if let Some(options) = object(root, "DriverOpts", "")? {
            deny_socket_device(&mut e, options, "DriverOpts");
        }
    }
    e.finish(original, body)
}
