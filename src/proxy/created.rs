//! Creates through the shim, recorded: the shim keeps the set of containers
//! it created ([`Origins`]) so that one created straight on dockerd is told
//! apart (`lifecycle::bypass`). A label would not do: anyone can set it.
//!
//! A create holds a [`crate::lifecycle::origins::CreateTicket`] from before
//! it is forwarded until the id in dockerd's answer is recorded (and saved),
//! because dockerd's `create` event can arrive before that answer.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::Value;

use super::Proxy;
use crate::body::{full_body, read_limited, ProxyBody};
use crate::error::ShimError;

/// A create answer is small; past this it is not read.
const MAX_ANSWER: u64 = 1 << 20;

/// Whether dockerd's answer to a create says it made a container.
pub fn made(status: StatusCode) -> bool {
    status == StatusCode::CREATED || status == StatusCode::OK
}

/// A create the standards phase does not handle (standards off): forwarded
/// as it came, its answer read to record the new id. Like a judged create
/// it runs to its end in a task of its own, so that a client that hangs up
/// once its create is sent leaves no container unrecorded.
pub async fn forward_create(proxy: &Proxy, request: Request<ProxyBody>) -> Result<Response<ProxyBody>, ShimError> {
    let ticket = proxy.inner.origins.begin_create();
    let task_proxy = proxy.clone();
    let create = proxy.inner.tasks.spawn(async move {
        let proxy = task_proxy;
        let response = proxy.forward_detached(request).await?;
        if !made(response.status()) {
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let bytes = read_limited(body, MAX_ANSWER)
            .await
            .map_err(|e| ShimError::Internal(format!("reading dockerd's create response: {e}")))?;
        record(&proxy, &bytes).await;
        drop(ticket);
        Ok(Response::from_parts(parts, full_body(bytes)))
    });
    create
        .await
        .unwrap_or_else(|e| Err(ShimError::Internal(format!("the create's task ended: {e}"))))
}

/// Records the container dockerd's create `answer` names as the shim's own.
pub async fn record(proxy: &Proxy, answer: &Bytes) {
    let id = serde_json::from_slice::<Value>(answer)
        .ok()
        .and_then(|answer| answer["Id"].as_str().map(str::to_string));
    match id {
        Some(id) => proxy.inner.origins.record_created(&id),
        None => tracing::warn!("dockerd's create answer names no container Id; it is not recorded as the shim's"),
    }
}
