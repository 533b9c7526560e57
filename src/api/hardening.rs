//! Fitted hardening on the shim's API: `GET /_forge/v1/profiles` (every
//! image profile, with what the next create of the image gets),
//! `POST /_forge/v1/profile?image=IMAGE&seconds=N` (learn an image now, as
//! `forge-shim profile` does) and `GET /_forge/v1/hardening` (the hardened
//! runs that failed because of a fitted rule).

use http::StatusCode;
use serde_json::{json, Value};

use crate::body::{json_response, ProxyBody};
use crate::config::{SharedConfig, StandardsConfig};
use crate::error::ShimError;
use crate::lifecycle::{learn, Learner};
use crate::standards::fitted::{self, Fit, Profile, UserFit};

/// The longest `seconds` a profile probe may ask for.
pub const MAX_PROBE_SECONDS: u64 = 600;

/// What the shim's API needs for fitted hardening.
#[derive(Clone)]
pub struct HardeningApi {
    pub learner: Learner,
    pub config: SharedConfig,
}

impl HardeningApi {
    pub fn profiles(&self) -> http::Response<ProxyBody> {
        let config = self.config.current();
        let standards = &config.config.standards;
        let list: Vec<Value> = self
            .learner
            .profiles()
            .list()
            .iter()
            .map(|p| profile_json(p, standards))
            .collect();
        json_response(StatusCode::OK, &json!({ "profiles": list }))
    }

    pub fn failures(&self) -> http::Response<ProxyBody> {
        json_response(StatusCode::OK, &json!({ "failures": self.learner.failures() }))
    }

    pub async fn probe(&self, query: Option<&str>) -> Result<http::Response<ProxyBody>, ShimError> {
        let image = crate::route::query_value(query, "image")
            .filter(|i| !i.is_empty())
            .ok_or_else(|| ShimError::BadRequest("profile needs ?image=IMAGE".into()))?;
        let seconds = match crate::route::query_value(query, "seconds") {
            None => 30,
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=MAX_PROBE_SECONDS).contains(s))
                .ok_or_else(|| {
                    ShimError::BadRequest(format!("seconds must be a whole number from 1 to {MAX_PROBE_SECONDS}"))
                })?,
        };
        let config = self.config.current();
        let standards = &config.config.standards;
        let docker = self.learner.docker();
        let profile = learn::probe(
            &*docker,
            self.learner.profiles(),
            &standards.defaults.tmpfs,
            &image,
            seconds,
        )
        .await
        .map_err(ShimError::BadRequest)?;
        Ok(json_response(StatusCode::OK, &profile_json(&profile, standards)))
    }
}

/// A profile as JSON, with the plan the next create of its image gets.
pub fn profile_json(profile: &Profile, standards: &StandardsConfig) -> Value {
    let default_user = standards.defaults.user.as_deref().and_then(fitted::numeric_user);
    let plan = fitted::plan(
        Some(profile),
        &standards.hardening,
        &standards.cap_add_allowed,
        default_user,
    );
    let fit = |state: &str, detail: Value| json!({ "state": state, "detail": detail });
    let describe = |f: &Fit<Value>| match f {
        Fit::Apply(v) => fit("apply", v.clone()),
        Fit::Learning => fit("learning", Value::Null),
        Fit::Failed(evidence) => fit("failed", json!(evidence)),
        Fit::Unfit(why) => fit("unfit", json!(why)),
    };
    let map = |f: &Fit<Vec<String>>| match f {
        Fit::Apply(v) => Fit::Apply(json!(v)),
        Fit::Learning => Fit::Learning,
        Fit::Failed(e) => Fit::Failed(e.clone()),
        Fit::Unfit(w) => Fit::Unfit(w.clone()),
    };
    let user = match &plan.user {
        Fit::Apply(UserFit::SetDefault) => Fit::Apply(json!({ "set": standards.defaults.user })),
        Fit::Apply(UserFit::StartAsRoot { uid, gid }) => {
            Fit::Apply(json!({ "start_as_root_then": format!("{uid}:{gid}") }))
        }
        Fit::Learning => Fit::Learning,
        Fit::Failed(e) => Fit::Failed(e.clone()),
        Fit::Unfit(w) => Fit::Unfit(w.clone()),
    };
    json!({
        "image_id": profile.image_id,
        "image": profile.image,
        "ready": profile.ready(&standards.hardening),
        "observed_seconds": profile.observed_seconds,
        "runs": profile.runs,
        "paths": profile.paths,
        "user": profile.user,
        "ports": profile.ports,
        "memory_peak": profile.memory_peak,
        "recommended_memory": profile.recommended_memory(),
        "cpu_millicores": profile.cpu_millicores,
        "failures": profile.failures,
        "next_create": {
            "read_only_rootfs": describe(&map(&plan.read_only)),
            "tmpfs_owner": plan.tmpfs_owner.map(|(u, g)| format!("{u}:{g}")),
            "non_root": describe(&user),
            "cap_drop": describe(&map(&plan.caps)),
        },
    })
}
