//! The wake phase: before a request that uses a container is forwarded, mark
//! the container in use and wake it if the shim put it to sleep. The in-use
//! mark travels with the response (its body, or the hijacked stream) so a
//! container is never paused under a live session.

use http::{Request, Response, StatusCode};

use super::Proxy;
use crate::body::ProxyBody;
use crate::body::{empty_body, full_body, read_limited_within, set_exact_length};
use crate::error::ShimError;
use crate::lifecycle::InUse;
use crate::route::{query_value, ContainerAction, Endpoint, Route, WakePhase};

/// The largest `network connect` body read to find its container.
const MAX_NETWORK_BODY: u64 = 64 * 1024;

/// What the wake phase decided.
pub enum WakeOutcome {
    /// Forward the request; keep the guard alive with its response.
    Forward(Request<ProxyBody>, Option<InUse>),
    /// The shim answers itself (e.g. `unpause` of a container it holds
    /// asleep is a wake).
    Answer(Response<ProxyBody>),
}

pub async fn before_forward(
    proxy: &Proxy,
    route: &Route,
    request: Request<ProxyBody>,
) -> Result<WakeOutcome, ShimError> {
    match claim(proxy, route, request.uri().query()).await? {
        Claim::Use(guard) => Ok(WakeOutcome::Forward(request, guard)),
        Claim::Answer(response) => Ok(WakeOutcome::Answer(response)),
        Claim::ReadBody => {
            let Some(lifecycle) = proxy.inner.lifecycle.as_ref() else {
                return Ok(WakeOutcome::Forward(request, None));
            };
            let (request, container) = network_container(request, proxy.inner.body_read).await?;
            match container {
                Some(id) => {
                    let guard = lifecycle.use_container(&id, "network_connect", true).await?;
                    Ok(WakeOutcome::Forward(request, guard))
                }
                None => Ok(WakeOutcome::Forward(request, None)),
            }
        }
    }
}

/// What the wake phase decided from the route and query alone.
pub enum Claim {
    /// Forward; hold the in-use mark (if any) until the response ends.
    Use(Option<InUse>),
    /// The shim answers itself.
    Answer(Response<ProxyBody>),
    /// The container is named in the body (`network connect`).
    ReadBody,
}

/// The wake phase for everything but `network connect|disconnect`: marks
/// the container the request uses in use, wakes it if it must run, and
/// answers `pause`/`unpause` of a sleeper itself.
pub async fn claim(proxy: &Proxy, route: &Route, query: Option<&str>) -> Result<Claim, ShimError> {
    let Some(lifecycle) = proxy.inner.lifecycle.as_ref() else {
        return Ok(Claim::Use(None));
    };
    match route.endpoint.phases().wake {
        WakePhase::None | WakePhase::Watch => return Ok(Claim::Use(None)),
        WakePhase::FromBody => return Ok(Claim::ReadBody),
        WakePhase::Use | WakePhase::MayAnswer => {}
    }
    use ContainerAction as A;
    let (reference, wake, trigger): (String, bool, &str) = match &route.endpoint {
        Endpoint::ExecCreate { id } => (id.clone(), true, "exec"),
        Endpoint::ExecStart { exec_id } => match lifecycle.exec_container(exec_id).await {
            Some(id) => (id, true, "exec"),
            None => return Ok(Claim::Use(None)),
        },
        Endpoint::Attach { id } => (id.clone(), true, "attach"),
        Endpoint::ContainerUpdate { id } => (id.clone(), true, "update"),
        Endpoint::ContainerUse { id, action } => {
            let follow = query_value(query, "follow").is_some_and(|f| f == "1" || f == "true");
            match action {
                A::Logs => (id.clone(), follow, "logs"),
                A::Commit => match query_value(query, "container") {
                    Some(id) => (id, true, "commit"),
                    None => return Ok(Claim::Use(None)),
                },
                A::Unpause => {
                    if let Some(id) = lifecycle.resolve(id).filter(|id| lifecycle.is_asleep(id)) {
                        lifecycle.wake(&id, "unpause").await?;
                        return Ok(Claim::Answer(no_content()));
                    }
                    return Ok(Claim::Use(None));
                }
                A::Pause => {
                    if let Some(id) = lifecycle.resolve(id).filter(|id| lifecycle.is_asleep(id)) {
                        lifecycle.hand_to_user(&id).await?;
                        return Ok(Claim::Answer(no_content()));
                    }
                    return Ok(Claim::Use(None));
                }
                // A dependent that starts (or restarts: `compose restart app`
                // starts only app) finds its sleeping dependencies awake.
                A::Start | A::Restart => {
                    if let Some(id) = lifecycle.resolve(id) {
                        let dependencies = lifecycle.sleeping_dependencies(&id);
                        let wakes = dependencies.iter().map(|dep| lifecycle.wake(dep, "depends_on"));
                        for result in futures_util::future::join_all(wakes).await {
                            result?;
                        }
                    }
                    (id.clone(), true, action_name(*action))
                }
                A::Stop | A::Kill | A::Remove
                    if lifecycle
                        .resolve(id)
                        .is_some_and(|id| lifecycle.release_deep_sleeper(&id)) =>
                {
                    return Ok(Claim::Use(None));
                }
                other => (id.clone(), other.needs_running(), action_name(*other)),
            }
        }
        _ => return Ok(Claim::Use(None)),
    };
    Ok(Claim::Use(lifecycle.use_container(&reference, trigger, wake).await?))
}

fn action_name(action: ContainerAction) -> &'static str {
    use ContainerAction as A;
    match action {
        A::Start => "start",
        A::Stop => "stop",
        A::Restart => "restart",
        A::Kill => "kill",
        A::Remove => "remove",
        A::Archive => "archive",
        A::Top => "top",
        A::Resize => "resize",
        A::Export => "export",
        A::Rename => "rename",
        _ => "api",
    }
}

fn no_content() -> Response<ProxyBody> {
    let mut response = Response::new(empty_body());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Reads the small JSON body of `network connect|disconnect` for its
/// `Container`, and rebuilds the request with the same bytes.
async fn network_container(
    request: Request<ProxyBody>,
    within: std::time::Duration,
) -> Result<(Request<ProxyBody>, Option<String>), ShimError> {
    let (mut parts, body) = request.into_parts();
    let bytes = read_limited_within(body, MAX_NETWORK_BODY, within).await?;
    // Go matches keys case-insensitively; so do we.
    let container = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|value| {
            value.as_object()?.iter().find_map(|(k, v)| {
                if k.eq_ignore_ascii_case("container") {
                    v.as_str().map(str::to_string)
                } else {
                    None
                }
            })
        });
    set_exact_length(&mut parts.headers, bytes.len());
    Ok((Request::from_parts(parts, full_body(bytes)), container))
}
