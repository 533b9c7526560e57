//! The standards phase: for the requests the standards cover, read the body
//! (bounded), let [`crate::standards`] judge it, forward the result and
//! report every change as a create warning.

use http::{Request, Response};

use super::{ConnState, ProxyBody, Shim};
use crate::error::ShimError;
use crate::route::{Endpoint, Route};

/// Caches the standards phase keeps between requests.
#[derive(Default)]
pub struct StandardsState {}

/// Whether the standards phase handles this endpoint.
pub fn intercepts(_shim: &Shim, _endpoint: &Endpoint) -> bool {
    false
}

pub async fn handle(
    shim: &Shim,
    conn: &ConnState,
    _route: &Route,
    request: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, ShimError> {
    shim.forward(conn, request).await
}
