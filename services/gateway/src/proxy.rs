//! hyper's transport, server side: the gateway's front door as a tower service, a request
//! and its answer as objects. Its rules are the shared ones: [`admission`], [`headers`],
//! the upstream's [`Remote::send`](crate::upstream::Remote::send) with its retry rule and
//! pool, and [`Failure::problem`](crate::failure::Failure::problem).

use crate::Gateway;
use crate::admission::{self, Admitted};
use crate::headers::{self, Forwarding, Value};
use crate::hyper_client::ClientBodyError;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderValue};
use kit::ApiError;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;
use tower::util::BoxCloneSyncService;
use tracing::Instrument;

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
    pub(crate) fn new(gateway: Arc<Gateway>, app: axum::Router, cors: Option<tower_http::cors::CorsLayer>) -> Self {
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
        let hosts = req.headers().get_all(header::HOST).iter().count();
        if let Some(problem) = admission::host_problem(req.version() == http::Version::HTTP_11, hosts) {
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

/// One request through the gateway; its refusals are problem+json answered here.
async fn forward(gw: &Gateway, req: Request) -> Response {
    let started = tokio::time::Instant::now();
    let _in_flight = gw.meters.start();
    let Some(index) = gw.proxied_route(req.uri().path()) else {
        return ApiError::NotFound("no such route".into()).into_response();
    };
    let (request_id, made) = match req.headers().get(headers::X_REQUEST_ID) {
        Some(id) => (id.clone(), false),
        None => {
            let mut text = [0; kit::server::REQUEST_ID_LENGTH];
            let id = kit::server::new_request_id(&mut text);
            (HeaderValue::from_str(id).expect("a UUID is a valid header value"), true)
        }
    };
    let span = kit::server::request_span(&req, request_id.to_str().unwrap_or(""));
    let method = req.method().clone();
    let sent = admit_and_send(gw, index, req, made.then_some(&request_id));
    // Entering a span on every poll costs even when nothing is logged at its level.
    let answered = if span.is_disabled() { sent.await } else { sent.instrument(span.clone()).await };
    let mut response = answered.unwrap_or_else(IntoResponse::into_response);
    headers::forward_answer(response.headers_mut(), Value::Header(&request_id));
    gw.account(index, method.as_str(), response.status(), started, &span);
    response
}

async fn admit_and_send(
    gw: &Gateway,
    index: usize,
    req: Request,
    made_request_id: Option<&HeaderValue>,
) -> Result<Response, ApiError> {
    let route = &gw.routes.routes()[index];
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let Admitted { client, body_limit } = admission::admit(gw, route, peer, req.headers()).await?;
    let (mut parts, body) = req.into_parts();
    let client = client.and_then(headers::forwarded_for);
    let forwarding = Forwarding {
        client: client.as_ref(),
        made_request_id: made_request_id.map(Value::Header),
        keep_proto: gw.proxies.trusts_any(),
    };
    headers::forward_request(&mut parts.headers, &forwarding);
    let req = Request::from_parts(parts, limited(body, body_limit));
    gw.route_upstreams[index].send(req, gw.upstream_timeout).await.map_err(|e| e.problem(route))
}

/// The body capped at the route's limit while it streams. Most requests have none, and
/// an empty one needs no limit (nor a box around it).
fn limited(body: Body, limit: usize) -> Body {
    if http_body::Body::is_end_stream(&body) {
        return Body::empty();
    }
    let limited = http_body_util::Limited::new(body, limit);
    Body::new(http_body_util::BodyExt::map_err(limited, |e| {
        if e.is::<http_body_util::LengthLimitError>() { e } else { Box::new(ClientBodyError(e)) }
    }))
}
