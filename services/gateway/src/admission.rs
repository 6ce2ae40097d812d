//! Admission: whether the gateway takes a request on, decided once for both transports.
//! The route (the gateway's own paths are never proxied), exactly one `Host`, then the
//! client's rate, the token, the user's rate and the declared body size. Every refusal is
//! a problem the gateway answers itself, so the upstream never sees a request turned away.

use crate::Gateway;
use crate::headers::Headers;
use crate::model::{Access, Route};
use kit::ApiError;
use kit::auth::{Claims, TokenUse, bearer_token_of};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Paths the gateway answers itself (through the app's routes), whatever the route table says.
const OWN_PATHS: [&str; 6] = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/"];

fn is_own(path: &str) -> bool {
    OWN_PATHS.contains(&path) || path.starts_with("/docs/")
}

impl Gateway {
    /// The route a request for `path` is proxied on (its index in `routes`): none for
    /// the gateway's own paths and for paths no route serves.
    pub(crate) fn proxied_route(&self, path: &str) -> Option<usize> {
        if is_own(path) { None } else { self.routes.find_index(path) }
    }
}

/// RFC 9112, section 3.2: an HTTP/1.1 request without `Host`, or any request with more
/// than one, is a 400 (two hosts are how requests get smuggled past routing rules).
pub(crate) fn host_problem(http11: bool, hosts: usize) -> Option<ApiError> {
    match hosts {
        0 if http11 => Some(ApiError::BadRequest("an HTTP/1.1 request needs a Host header".into())),
        0 | 1 => None,
        _ => Some(ApiError::BadRequest("more than one Host header".into())),
    }
}

/// A request the edge let through.
pub(crate) struct Admitted {
    /// The client's address, as the gateway tells the upstream.
    pub client: Option<IpAddr>,
    /// The most body the route takes.
    pub body_limit: usize,
}

/// The edge's checks, in order: the client's rate, the token, the user's rate, the
/// declared body size.
pub(crate) async fn admit(
    gw: &Gateway,
    route: &Route,
    peer: Option<SocketAddr>,
    headers: &(impl Headers + ?Sized),
) -> Result<Admitted, ApiError> {
    let client = gw.proxies.client(peer.map(|p| p.ip()), || headers.values("x-forwarded-for"));
    if let Some(ip) = client
        && let Err(wait) = gw.limits.client.check(&ip)
    {
        return Err(held_back(wait).await);
    }
    if let Some(claims) = check_token(gw, route.auth, headers).await?
        && let Err(wait) = gw.limits.user.check(&claims.sub)
    {
        return Err(held_back(wait).await);
    }
    let body_limit = route.max_body_bytes.unwrap_or(gw.body_limit).min(gw.body_limit);
    let declared = headers.value("content-length").and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > body_limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(Admitted { client, body_limit })
}

/// How long a refusal for a spent rate is held before it is sent.
const REFUSAL_HOLD: Duration = Duration::from_secs(1);

/// The refusal of a client over its rate, sent after [`REFUSAL_HOLD`] (nginx's
/// `limit_req` delays excess the same way): a client that asks again the moment it hears
/// `429` would otherwise make the gateway spend its cores on refusals, and a hammering
/// loop with 32 requests in flight gets 32 refusals a second instead of thousands. A
/// polite client waits `Retry-After` (at least a second) anyway; what it is told to
/// wait is what remains after the hold.
async fn held_back(wait: Duration) -> ApiError {
    metrics::counter!("gateway_rate_limited_total").increment(1);
    tokio::time::sleep(REFUSAL_HOLD).await;
    // What is left of the wait once held (`Retry-After` is at least a second anyway).
    too_many(wait.saturating_sub(REFUSAL_HOLD))
}

fn too_many(wait: Duration) -> ApiError {
    ApiError::TooManyRequests { retry_after: Duration::from_secs(crate::limits::retry_after_secs(wait)) }
}

/// The edge's token check: `Ok(Some(claims))` for a valid access token, `Ok(None)` when
/// no token is needed or sent. Services still verify the token they receive.
async fn check_token(
    gw: &Gateway,
    access: Access,
    headers: &(impl Headers + ?Sized),
) -> Result<Option<Arc<Claims>>, ApiError> {
    if access == Access::None {
        return Ok(None);
    }
    let token = match headers.value("authorization").and_then(bearer_token_of) {
        None if access == Access::Required => return Err(ApiError::Unauthorized("an access token is required".into())),
        None => return Ok(None),
        Some(token) => token?,
    };
    let claims = gw.verifier.verify(token).await?;
    // Service tokens are for calls between services, never from outside.
    if claims.token_use != TokenUse::Access {
        return Err(ApiError::Unauthorized("an access token is required".into()));
    }
    Ok(Some(claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_is_needed_in_http_1_1_and_two_never_pass() {
        assert!(host_problem(true, 0).is_some());
        assert!(host_problem(false, 0).is_none(), "HTTP/1.0 and HTTP/2 may have none");
        assert!(host_problem(true, 1).is_none());
        assert!(host_problem(false, 2).is_some() && host_problem(true, 3).is_some());
    }
}
