//! The API gateway: the one address frontends call. It routes by path prefix to the
//! services, checks tokens at the edge (services verify again), applies rate and size
//! limits, and serves one OpenAPI document for the whole API with interactive docs.
//!
//! One pipeline, two transports. The rules, each in one place: [`admission`] (route,
//! host, rates, token, size), [`headers`] (what a request carries upstream and an answer
//! back), [`upstream`] (endpoints in turn, ejection, the loop of tries), [`retry`] (when a
//! request may go again), [`pool`] (idle connections), [`failure`] (failures as
//! problems), [`meters`] (meters and the access log). The transports: hyper's
//! ([`proxy`], the front door as a tower service, and [`hyper_client`]) and the own
//! HTTP/1.1 one ([`edge`], [`wire`] its bytes), which hands hyper what it does not take.
//! Besides: [`model`] (the route table), [`limits`] (token buckets), [`deadline`] (one
//! timer for many timeouts), [`docs`] (the merged OpenAPI document and `/docs`).

mod admission;
mod deadline;
pub(crate) mod docs;
pub mod edge;
mod failure;
mod headers;
mod hyper_client;
pub(crate) mod limits;
pub(crate) mod meters;
pub mod model;
mod pool;
pub mod proxy;
mod retry;
pub(crate) mod upstream;
mod wire;

use crate::limits::{Limits, Rate};
use crate::model::RouteTable;
use crate::upstream::Upstream;
use axum::Router;
use axum::routing::get;
use kit::auth::Verifier;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The name this service answers to as an audience and in logs.
pub const SERVICE: &str = catalog::Service::Gateway.as_str();

/// Settings of the gateway.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayConfig {
    /// Serve `/metrics` beside the gateway's own paths: only where no client reaches
    /// (the internal listener of `veche up`), never on a public listener.
    #[arg(skip)]
    pub serve_metrics: bool,

    /// The route table (JSON: `upstreams` and `routes`); `veche up` builds its own.
    #[arg(id = "gateway_routes", long = "gateway-routes", env = catalog::env::GATEWAY_ROUTES)]
    pub routes: Option<PathBuf>,

    /// Origins allowed to call the API from a browser (comma-separated); none: no CORS.
    #[arg(long, env = catalog::env::CORS_ORIGINS, value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Requests per second per client address (0: no limit).
    #[arg(long, env = catalog::env::CLIENT_RPS, default_value_t = catalog::limits::CLIENT_RPS)]
    pub client_rps: u32,

    /// Burst per client address.
    #[arg(long, env = catalog::env::CLIENT_BURST, default_value_t = catalog::limits::CLIENT_BURST)]
    pub client_burst: u32,

    /// Requests per second per signed-in user (0: no limit).
    #[arg(long, env = catalog::env::USER_RPS, default_value_t = catalog::limits::USER_RPS)]
    pub user_rps: u32,

    /// Burst per signed-in user.
    #[arg(long, env = catalog::env::USER_BURST, default_value_t = catalog::limits::USER_BURST)]
    pub user_burst: u32,

    /// Longest wait for an upstream's answer before 504, in seconds (below the request
    /// timeout, so a slow service is a 504 rather than the 503 of a timed-out request).
    #[arg(long, env = "VECHE_UPSTREAM_TIMEOUT", default_value_t = 25.0)]
    pub upstream_timeout_secs: f64,
}

/// What the request path needs, shared by every request.
pub(crate) struct Gateway {
    pub(crate) routes: model::Router,
    /// Every upstream by name (the OpenAPI merge and the readiness check walk them).
    pub(crate) upstreams: HashMap<String, Arc<Upstream>>,
    /// The upstream of each route, in the order of `routes`, so a request needs no lookup.
    pub(crate) route_upstreams: Vec<Arc<Upstream>>,
    pub(crate) verifier: Verifier,
    pub(crate) limits: Arc<Limits>,
    pub(crate) upstream_timeout: Duration,
    pub(crate) body_limit: usize,
    /// The proxies in front that may say who the client is.
    pub(crate) proxies: kit::forwarded::TrustedProxies,
    /// Whether CORS applies (some origins are allowed).
    pub(crate) cors: bool,
    /// How long a client may take to send a request head, or stay idle between requests.
    pub(crate) header_timeout: Duration,
    pub(crate) openapi: docs::MergedOpenApi,
    /// Meters of each route (by its index in `routes`) and of requests in flight.
    pub(crate) meters: Arc<meters::Meters>,
}

/// Upstreams by name: over HTTP from the table, or the given in-process routers.
pub enum Upstreams {
    Remote,
    Local(HashMap<String, Router>),
}

pub fn load_table(config: &GatewayConfig) -> anyhow::Result<RouteTable> {
    let path = config
        .routes
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the gateway needs a route table: set VECHE_GATEWAY_ROUTES"))?;
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    RouteTable::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Builds the gateway, ready to serve: its front door ([`proxy::Front`]) over the app of
/// its own routes (no OpenAPI paths of its own: it serves the merged document), with
/// readiness of its keys and local upstreams.
pub fn build(
    config: &GatewayConfig,
    table: RouteTable,
    upstreams: Upstreams,
    verifier: Verifier,
    http: &kit::config::HttpArgs,
) -> anyhow::Result<proxy::Front> {
    table.validate()?;
    let mut built = HashMap::new();
    for (name, endpoints) in &table.upstreams {
        let upstream = match &upstreams {
            Upstreams::Remote => Upstream::remote(name, endpoints)?,
            Upstreams::Local(routers) => match routers.get(name) {
                Some(router) => Upstream::local(name, router.clone()),
                None => Upstream::remote(name, endpoints)?,
            },
        };
        built.insert(name.clone(), Arc::new(upstream));
    }
    let routes = model::Router::new(&table);
    let meters = meters::Meters::new(routes.routes());
    let cors = cors_layer(&config.cors_origins)?;
    let route_upstreams = routes
        .routes()
        .iter()
        .map(|r| built.get(&r.upstream).cloned().ok_or_else(|| anyhow::anyhow!("no upstream {}", r.upstream)))
        .collect::<anyhow::Result<_>>()?;
    let gateway = Arc::new(Gateway {
        routes,
        meters,
        upstreams: built,
        route_upstreams,
        verifier: verifier.clone(),
        limits: Limits::new(
            Rate { per_second: config.client_rps, burst: config.client_burst },
            Rate { per_second: config.user_rps, burst: config.user_burst },
        ),
        upstream_timeout: Duration::from_secs_f64(config.upstream_timeout_secs.max(0.001)),
        body_limit: http.body_limit,
        proxies: http.proxies(),
        cors: cors.is_some(),
        header_timeout: http.header_timeout(),
        openapi: docs::MergedOpenApi::default(),
    });
    let mut router = Router::new()
        .route("/openapi.json", get(docs::openapi))
        .route("/docs", get(docs::page))
        .route("/docs/", get(docs::page))
        .route("/docs/{asset}", get(docs::asset))
        .with_state(gateway.clone());
    if let Some(cors) = &cors {
        router = router.layer(cors.clone());
    }
    let checked = gateway.clone();
    let ready: kit::server::ReadyCheck = Arc::new(move || {
        let gateway = checked.clone();
        Box::pin(async move {
            if !gateway.verifier.has_keys() {
                gateway.verifier.refresh_keys(false).await.map_err(|e| format!("keys: {e}"))?;
            }
            for upstream in gateway.upstreams.values() {
                upstream.ready().await?;
            }
            Ok(())
        })
    });
    let mut app =
        kit::server::app(vec![kit::server::Service { name: SERVICE, router, openapi: utoipa_empty(), ready }], http);
    if config.serve_metrics {
        app = app.merge(kit::server::metrics_router());
    }
    Ok(proxy::Front::new(gateway, app, cors))
}

fn utoipa_empty() -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApi::new(
        utoipa::openapi::Info::new("Veche API", env!("CARGO_PKG_VERSION")),
        utoipa::openapi::Paths::new(),
    )
}

/// CORS for the listed origins only: browsers on other sites get no CORS headers and so
/// cannot read answers.
fn cors_layer(origins: &[String]) -> anyhow::Result<Option<tower_http::cors::CorsLayer>> {
    use http::{HeaderName, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<http::HeaderValue> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .map(|o| o.trim_end_matches('/').parse().map_err(|_| anyhow::anyhow!("bad CORS origin `{o}`")))
        .collect::<anyhow::Result<_>>()?;
    if origins.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("traceparent"),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                header::ETAG,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    ))
}
