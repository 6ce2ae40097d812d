//! A request's way through the gateway: route, client limit, token check, user limit,
//! size limit, upstream, and back. Every refusal is a problem+json answered here, so the
//! upstream never sees a request the gateway turned away.

use crate::Gateway;
use crate::model::{Access, Route};
use crate::upstream::Failure;
use crate::wire;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use kit::ApiError;
use kit::auth::{Claims, TokenUse, bearer_token_of};
use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::Service;
use tower::util::BoxCloneSyncService;
use tracing::Instrument;

/// Paths the gateway answers itself (through the app's routes), whatever the route table says.
const OWN_PATHS: [&str; 6] = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/"];

fn is_own(path: &str) -> bool {
    OWN_PATHS.contains(&path) || path.starts_with("/docs/")
}

impl Gateway {
    /// The route a request for `path` is proxied on: none for the gateway's own paths
    /// and for paths no route serves (both ways through the gateway ask this).
    pub(crate) fn proxied_route(&self, path: &str) -> Option<usize> {
        if is_own(path) { None } else { self.routes.find_index(path) }
    }
}

/// The gateway's front door. A request for a route in the table takes the proxy path,
/// which sets its own request id, span, meters and access log line: the lean way through
/// that every API call takes. Everything else (docs, the OpenAPI document, health,
/// metrics, 404s) goes to `app`, with the layer stack every service has.
#[derive(Clone)]
pub struct Front {
    pub(crate) gateway: Arc<Gateway>,
    /// The proxy path, behind CORS when origins are allowed.
    proxy: BoxCloneSyncService<Request, Response, Infallible>,
    app: axum::Router,
}

impl Front {
    pub fn new(gateway: Arc<Gateway>, app: axum::Router, cors: Option<tower_http::cors::CorsLayer>) -> Self {
        let proxied = gateway.clone();
        // The proxy path as a service, so CORS can wrap it.
        let proxy = tower::service_fn(move |req: Request| {
            let gateway = proxied.clone();
            async move { Ok::<_, Infallible>(forward(&gateway, req).await) }
        });
        let proxy = match cors {
            Some(cors) => BoxCloneSyncService::new(tower::Layer::layer(&cors, proxy)),
            None => BoxCloneSyncService::new(proxy),
        };
        Self { gateway, proxy, app }
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Answer {
        if let Some(problem) = host_problem(req.version(), req.headers()) {
            return Box::pin(async move { Ok(problem.into_response()) });
        }
        let path = req.uri().path();
        if self.gateway.proxied_route(path).is_some() {
            self.proxy.call(req)
        } else {
            let app = self.app.clone();
            Box::pin(tower::ServiceExt::oneshot(app, req))
        }
    }
}

/// RFC 9112, section 3.2: an HTTP/1.1 request without `Host`, or any request with more
/// than one, is a 400 (two hosts are how requests get smuggled past routing rules).
pub(crate) fn host_problem(version: http::Version, headers: &HeaderMap) -> Option<ApiError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Some(ApiError::BadRequest("more than one Host header".into())),
        (None, _) if version == http::Version::HTTP_11 => {
            Some(ApiError::BadRequest("an HTTP/1.1 request needs a Host header".into()))
        }
        _ => None,
    }
}

/// One request through the gateway; its refusals are problem+json answered here.
async fn forward(gw: &Gateway, mut req: Request) -> Response {
    let started = tokio::time::Instant::now();
    let _in_flight = gw.meters.start();
    let path = req.uri().path();
    let Some(index) = gw.routes.find_index(path) else {
        return ApiError::NotFound("no such route".into()).into_response();
    };
    let request_id = kit::server::ensure_request_id(req.headers_mut());
    let span = kit::server::request_span(&req, request_id.to_str().unwrap_or(""));
    let method = req.method().clone();
    let sent = admit_and_send(gw, index, req);
    // Entering a span on every poll costs even when nothing is logged at its level.
    let answered = if span.is_disabled() { sent.await } else { sent.instrument(span.clone()).await };
    let mut response = answered.unwrap_or_else(IntoResponse::into_response);
    response.headers_mut().entry(kit::server::request_id_header()).or_insert(request_id);
    account(gw, index, method.as_str(), response.status(), started, &span);
    response
}

/// The meters and the access log line of one proxied request.
pub(crate) fn account(
    gw: &Gateway,
    index: usize,
    method: &str,
    status: http::StatusCode,
    started: tokio::time::Instant,
    span: &tracing::Span,
) {
    let route = &gw.routes.routes()[index];
    let now = tokio::time::Instant::now();
    let elapsed = now - started;
    gw.meters.record(index, status.as_u16(), elapsed, now);
    // A 5xx is also a warning, so logs at `warn` still show upstream trouble.
    let ms = elapsed.as_secs_f64() * 1000.0;
    let (prefix, upstream, code) = (&route.prefix, &route.upstream, status.as_u16());
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(target: "veche::access", method, route = %prefix, %upstream, status = code, ms, "request");
        } else {
            tracing::info!(target: "veche::access", method, route = %prefix, %upstream, status = code, ms, "request");
        }
    });
}

async fn admit_and_send(gw: &Gateway, index: usize, req: Request) -> Result<Response, ApiError> {
    let route = &gw.routes.routes()[index];
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let client = admit(gw, route, peer, req.headers()).await?;
    let upstream = &gw.route_upstreams[index];
    let keep_proto = gw.proxies.trusts_any();
    let req = outgoing(req, body_limit(gw, route), client, keep_proto);
    match upstream.send(req, gw.upstream_timeout).await {
        Ok(response) => Ok(incoming(response)),
        Err(e) => Err(failed(route, e)),
    }
}

/// A request's headers, by lower-case name: the parsed map of the hyper path or the raw
/// headers of the gateway's own HTTP/1 path.
pub(crate) trait Headers: Sync {
    fn value(&self, name: &str) -> Option<&[u8]>;
    /// Every line of a header, in order.
    fn values(&self, name: &str) -> impl Iterator<Item = &[u8]>;
}

impl Headers for HeaderMap {
    fn value(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(HeaderValue::as_bytes)
    }

    fn values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.get_all(name).iter().map(HeaderValue::as_bytes)
    }
}

impl Headers for [httparse::Header<'_>] {
    fn value(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    fn values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }
}

/// The edge's checks, in order: the client's rate, the token, the user's rate, the
/// declared body size. Returns the client's address.
pub(crate) async fn admit(
    gw: &Gateway,
    route: &Route,
    peer: Option<SocketAddr>,
    headers: &(impl Headers + ?Sized),
) -> Result<Option<IpAddr>, ApiError> {
    let client = gw.proxies.client(peer.map(|p| p.ip()), || headers.values("x-forwarded-for"));
    if let Some(ip) = client {
        gw.limits.client.check(&ip).map_err(too_many)?;
    }
    if let Some(claims) = check_token(gw, route.auth, headers).await? {
        gw.limits.user.check(&claims.sub).map_err(too_many)?;
    }
    let declared = headers.value("content-length").and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > body_limit(gw, route) as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(client)
}

fn body_limit(gw: &Gateway, route: &Route) -> usize {
    route.max_body_bytes.unwrap_or(gw.body_limit).min(gw.body_limit)
}

/// The problem an upstream's failure is answered with (and counted).
pub(crate) fn failed(route: &Route, e: Failure) -> ApiError {
    if let Some(kind) = upstream_failure_kind(&e) {
        metrics::counter!("gateway_upstream_failures_total", "upstream" => route.upstream.clone(), "kind" => kind)
            .increment(1);
    }
    match e {
        Failure::Unavailable(name) => ApiError::Unavailable(format!("the {name} service is unavailable")),
        Failure::Timeout(name) => ApiError::GatewayTimeout(format!("the {name} service did not answer in time")),
        Failure::BodyTooLarge => ApiError::PayloadTooLarge,
        Failure::ClientBody => ApiError::BadRequest("the request body was malformed or cut short".into()),
        Failure::Broken(name, detail) => {
            tracing::warn!(upstream = %name, error = %detail, "upstream failed mid-request");
            ApiError::BadGateway(format!("the {name} service failed"))
        }
    }
}

/// The upstream's failures by kind; a client's oversized or broken body is the client's
/// failure, not counted against the upstream.
fn upstream_failure_kind(e: &Failure) -> Option<&'static str> {
    match e {
        Failure::Unavailable(_) => Some("unavailable"),
        Failure::Timeout(_) => Some("timeout"),
        Failure::Broken(..) => Some("broken"),
        Failure::BodyTooLarge | Failure::ClientBody => None,
    }
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

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: a look at each name costs less than eight removals.
    if !headers.keys().any(|name| wire::is_hop_by_hop(name.as_str())) {
        return;
    }
    // Headers named by `Connection` are hop-by-hop too.
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in wire::HOP_BY_HOP {
        headers.remove(name);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The request as the upstream gets it: hop-by-hop headers gone, `X-Forwarded-*` set,
/// the body capped at the route's limit while it streams.
fn outgoing(req: Request, limit: usize, client: Option<IpAddr>, keep_proto: bool) -> Request {
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    for name in ["forwarded", "x-real-ip", "x-forwarded-proto"] {
        if crate::wire::is_forged_claim(name, keep_proto) {
            parts.headers.remove(name);
        }
    }
    if let Some(ip) = client {
        // The gateway is the trusted edge: what a client claims in X-Forwarded-For is
        // replaced unless the gateway itself trusts a proxy in front of it.
        if let Some(v) = forwarded_for(ip) {
            parts.headers.insert(X_FORWARDED_FOR, v);
        }
    }
    if !parts.headers.contains_key(X_FORWARDED_PROTO) {
        parts.headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if let Some(host) = parts.headers.get(header::HOST).cloned() {
        parts.headers.insert(X_FORWARDED_HOST, host);
    }
    // Most requests have no body; an empty one needs no limit (nor a box around it).
    let body = if http_body::Body::is_end_stream(&body) {
        Body::empty()
    } else {
        let limited = http_body_util::Limited::new(body, limit);
        Body::new(http_body_util::BodyExt::map_err(limited, |e| {
            if e.is::<http_body_util::LengthLimitError>() { e } else { Box::new(crate::upstream::ClientBodyError(e)) }
        }))
    };
    Request::from_parts(parts, body)
}

/// The client's address as a header value. Formatting an address cost more than the rest
/// of the header work; each thread keeps the last one it made, and a client's requests
/// come on one connection, to one thread, so most of them reuse it.
pub(crate) fn forwarded_for(ip: IpAddr) -> Option<HeaderValue> {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((known, value)) if *known == ip => Some(value.clone()),
        _ => {
            let value = HeaderValue::try_from(ip.to_string()).ok()?;
            *last = Some((ip, value.clone()));
            Some(value)
        }
    })
}

fn incoming(mut response: Response) -> Response {
    strip_hop_by_hop(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("keep-alive, x-secret-hop"));
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("authorization"), "end-to-end headers stay");

        let mut only_upgrade = HeaderMap::new();
        only_upgrade.insert("upgrade", HeaderValue::from_static("websocket"));
        only_upgrade.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut only_upgrade);
        assert_eq!(only_upgrade.keys().collect::<Vec<_>>(), ["accept"]);
    }

    #[test]
    fn forwarded_for_follows_the_address() {
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(forwarded_for(one).unwrap(), "192.0.2.1");
        assert_eq!(forwarded_for(one).unwrap(), "192.0.2.1");
        assert_eq!(forwarded_for(two).unwrap(), "2001:db8::2");
        assert_eq!(forwarded_for(one).unwrap(), "192.0.2.1");
    }
}
