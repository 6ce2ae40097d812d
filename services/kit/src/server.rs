//! The server bootstrap every service uses. The layer stack in [`app`] is the table of
//! contents of a request's life: request id, trace span, panic guard, metrics, body
//! limit, timeout, then the service's own routes.

use crate::config::HttpArgs;
use crate::problem::ApiError;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Checks whether a service can serve: its store answers, its keys are loaded.
pub type ReadyCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// One service as the bootstrap sees it: routes (state applied), its OpenAPI document
/// and its readiness check.
pub struct Service {
    pub name: &'static str,
    pub router: Router,
    pub openapi: utoipa::openapi::OpenApi,
    pub ready: ReadyCheck,
}

/// What the ops endpoints need.
#[derive(Clone)]
struct Ops {
    checks: Arc<Vec<(&'static str, ReadyCheck)>>,
    openapi: Arc<serde_json::Value>,
}

static REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

pub use process::metrics_handle;

/// Assembles services behind one router with the ops endpoints and the layer stack.
pub fn app(services: Vec<Service>, http: &HttpArgs) -> Router {
    let mut router = Router::new();
    let mut openapi: Option<utoipa::openapi::OpenApi> = None;
    let mut checks = Vec::new();
    for service in services {
        router = router.merge(service.router);
        openapi = Some(match openapi {
            None => service.openapi,
            Some(mut doc) => {
                doc.merge(service.openapi);
                doc
            }
        });
        checks.push((service.name, service.ready));
    }
    // A service with no paths of its own (the gateway) serves its own `/openapi.json`.
    let has_paths = openapi.as_ref().is_some_and(|d| !d.paths.paths.is_empty());
    let mut openapi = openapi.map(|d| serde_json::to_value(d).unwrap_or_default()).unwrap_or_default();
    crate::openapi::conventions(&mut openapi);
    let query_rules = crate::params::QueryRules::from_document(&openapi);
    let ops = Ops { checks: Arc::new(checks), openapi: Arc::new(openapi) };
    // `/metrics` is not here: it goes where only scrapers reach ([`metrics_router`]).
    let mut ops_routes = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz));
    if has_paths {
        ops_routes = ops_routes.route("/openapi.json", get(openapi_doc));
    }
    let ops_routes = ops_routes.with_state(ops);
    let timeout = http.request_timeout();
    let body_limit = http.body_limit;
    router
        .merge(ops_routes)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(move |req, next| crate::params::refuse_unknown(query_rules.clone(), req, next)))
        .layer(middleware::from_fn(move |req, next| enforce_timeout(timeout, req, next)))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |req, next| reject_declared_oversize(body_limit, req, next)))
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal(anyhow::anyhow!("handler panicked")).into_response()))
        .layer(TraceLayer::new_for_http().make_span_with(make_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
}

/// A request's span: every log line inside it carries the request id and, when the
/// caller sent a W3C `traceparent`, its trace id.
fn make_span(req: &Request) -> tracing::Span {
    let request_id = req.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("");
    request_span(req, request_id)
}

/// The span of a request whose id is `request_id` (for servers that set the id themselves,
/// like the gateway's proxy path).
pub fn request_span<B>(req: &http::Request<B>, request_id: &str) -> tracing::Span {
    let traceparent = || req.headers().get("traceparent").map(HeaderValue::as_bytes);
    request_span_of(req.method().as_str(), req.uri().path(), request_id, traceparent)
}

/// The same span from a request's parts (for the gateway's own HTTP/1 path).
pub fn request_span_of<'a>(
    method: &str,
    path: &str,
    request_id: &str,
    traceparent: impl FnOnce() -> Option<&'a [u8]>,
) -> tracing::Span {
    // Fields are worked out only when the span is enabled (not at `warn`, say).
    let trace_id = || traceparent().and_then(|v| std::str::from_utf8(v).ok()).and_then(trace_id_of);
    let path = loggable_path(path);
    tracing::info_span!("request", method, %path, request_id, trace_id = trace_id().unwrap_or(""))
}

/// Paths whose last segment is a secret (a personal calendar feed is read by calendar
/// programs that cannot send headers, so its token is in the path).
const SECRET_PATH_PREFIXES: [&str; 1] = ["/api/v1/calendar/"];

/// A path fit for logs: a secret segment is replaced by `[redacted]`. (Query strings,
/// where other tokens travel, are never logged.)
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in SECRET_PATH_PREFIXES {
        if let Some(rest) = path.strip_prefix(prefix)
            && !rest.is_empty()
        {
            let suffix = rest.find('.').map_or("", |i| &rest[i..]);
            return format!("{prefix}[redacted]{suffix}").into();
        }
    }
    path.into()
}

/// The method as a metrics label: the standard ones by name, anything else as `other`,
/// so made-up methods cannot mint new series.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The request's `X-Request-Id`: the caller's, or a new one set on the request. The same
/// header the layer stack of [`app`] sets and copies onto the response.
pub fn ensure_request_id(headers: &mut http::HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(&REQUEST_ID) {
        return id.clone();
    }
    let mut text = [0; REQUEST_ID_LENGTH];
    let id = HeaderValue::from_str(new_request_id(&mut text)).expect("a UUID is a valid header value");
    headers.insert(REQUEST_ID.clone(), id.clone());
    id
}

/// The length of a request id this server makes.
pub const REQUEST_ID_LENGTH: usize = uuid::fmt::Hyphenated::LENGTH;

/// A new request id (a random UUID), written into `text`.
pub fn new_request_id(text: &mut [u8; REQUEST_ID_LENGTH]) -> &str {
    uuid::Uuid::new_v4().hyphenated().encode_lower(text)
}

/// The name of the request id header.
pub fn request_id_header() -> &'static header::HeaderName {
    &REQUEST_ID
}

/// The trace id of a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), if well formed.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(version, 2) && hex(trace, 32) && hex(parent, 16) && hex(flags, 2) && trace != "0".repeat(32)).then_some(trace)
}

async fn enforce_timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable("the request took too long".into()).into_response(),
    }
}

/// A body that announces itself as too large is refused before a byte of it is read.
async fn reject_declared_oversize(limit: usize, req: Request, next: Next) -> Response {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    next.run(req).await
}

/// Counts a request in `http_requests_in_flight` until dropped, also when the client goes
/// away and the request's future is dropped.
pub struct InFlight(&'static metrics::Gauge);

impl InFlight {
    pub fn start() -> Self {
        static GAUGE: OnceLock<metrics::Gauge> = OnceLock::new();
        let gauge = GAUGE.get_or_init(|| metrics::gauge!("http_requests_in_flight"));
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let _in_flight = InFlight::start();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = method_label(req.method());
    let response = next.run(req).await;
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16().to_string();
    let labels = [("method", method.to_owned()), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(start.elapsed().as_secs_f64());
    response
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(ops): State<Ops>) -> Response {
    let mut failures = serde_json::Map::new();
    for (name, check) in ops.checks.iter() {
        if let Err(e) = check().await {
            failures.insert((*name).to_owned(), e.into());
        }
    }
    if failures.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        tracing::warn!(?failures, "not ready");
        ApiError::Unavailable(format!("not ready: {}", serde_json::Value::Object(failures))).into_response()
    }
}

/// `/metrics` alone, for a listener only scrapers reach (`VECHE_METRICS_LISTEN`, or the
/// internal listener of `veche up`), or merged beside a service's API when its listener
/// is itself inside the cluster. Never on the gateway's public listener: every series
/// it shows (routes, upstreams, failure counts) is reconnaissance for an attacker.
pub fn metrics_router() -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(metrics_handle())
}

async fn metrics(State(handle): State<PrometheusHandle>) -> Response {
    record_sqlite_memory();
    let mut r = handle.render().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

/// SQLite's own allocations in this process (its page caches above all), so that whoever
/// watches the process's memory can tell caches filling as the stores grow from a leak.
fn record_sqlite_memory() {
    // SAFETY: sqlite3_memory_used only reads SQLite's allocation counter, which SQLite
    // guards itself; it may be called from any thread at any time.
    let used = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    metrics::gauge!("sqlite_memory_used_bytes").set(used as f64);
}

async fn openapi_doc(State(ops): State<Ops>) -> Json<serde_json::Value> {
    Json((*ops.openapi).clone())
}

/// The socket peer of a request, when the server recorded it (in-process calls have none).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

pub use crate::forwarded::client_ip;

/// Waits for SIGTERM (Kubernetes) or Ctrl-C (a person).
pub async fn shutdown_signal() {
    process::shutdown_signal().await;
    tracing::info!("draining in-flight requests");
}

/// What [`serve`] serves: an axum `Router`, or a service of its own like the gateway's
/// front door.
pub trait HttpService:
    tower::Service<Request, Response = Response, Error = std::convert::Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> HttpService for S where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// What a server does with each connection it accepts. [`ByHyper`] serves it with hyper;
/// the gateway serves plain HTTP/1.1 proxying itself and hands anything else to hyper.
pub trait Connections: Clone + Send + Sync + 'static {
    /// Serves one connection until it ends; `hyper` can take it over at any point.
    fn serve_connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        hyper: Handoff,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// Any [`HttpService`], served by hyper on every connection.
#[derive(Clone)]
pub struct ByHyper<S>(pub S);

impl<S: HttpService> Connections for ByHyper<S> {
    fn serve_connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        hyper: Handoff,
    ) -> impl Future<Output = ()> + Send + 'static {
        hyper.serve(stream, peer, self.0.clone())
    }
}

/// hyper's HTTP/1.1 and HTTP/2 server for one connection, and the server's shutdown as
/// that connection sees it. Held, it also keeps a graceful shutdown waiting.
pub struct Handoff {
    builder: Arc<hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    stopping: tokio::sync::watch::Receiver<bool>,
    /// Longest a write may wait for the client to take bytes (the header timeout).
    write_timeout: Duration,
}

impl Handoff {
    /// Changes to `true` when the server starts to shut down: a connection of its own
    /// should finish the request in hand and close.
    pub fn stopping(&mut self) -> &mut tokio::sync::watch::Receiver<bool> {
        &mut self.stopping
    }

    /// Serves the connection with hyper from here on; `io` may replay bytes already read.
    pub async fn serve<I>(self, io: I, peer: SocketAddr, service: impl HttpService)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        use hyper_util::rt::TokioIo;
        use hyper_util::service::TowerToHyperService;
        let service = tower::ServiceExt::map_request(service, move |mut req: http::Request<_>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.map(axum::body::Body::new)
        });
        // A client that stops reading would hold the connection, and whatever feeds its
        // answer, for as long as it likes: hyper has no write timeout of its own.
        let mut io = tokio_io_timeout::TimeoutStream::new(io);
        io.set_write_timeout(Some(self.write_timeout));
        let io = TokioIo::new(Box::pin(io));
        let connection = self.builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        if let Err(e) = self.watcher.watch(connection.into_owned()).await {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 (cleartext, by prior knowledge) until `shutdown` resolves,
/// then drains in-flight requests for at most the shutdown grace. Each connection must
/// send its headers within the header timeout, which also closes idle kept-alive
/// connections, and take what it is sent without stalling for longer: a slow or silent
/// client cannot hold a connection for long.
pub async fn serve(
    listener: TcpListener,
    service: impl HttpService,
    shutdown: impl Future<Output = ()> + Send + 'static,
    http: &HttpArgs,
) -> std::io::Result<()> {
    serve_connections(listener, ByHyper(service), shutdown, http).await
}

/// [`serve`] with connections served by `connections`.
pub async fn serve_connections(
    listener: TcpListener,
    connections: impl Connections,
    shutdown: impl Future<Output = ()> + Send + 'static,
    http: &HttpArgs,
) -> std::io::Result<()> {
    serve_capped(listener, connections, shutdown, http, ConnectionCap::new(http)).await
}

/// Open connections per client address, capped at `HttpArgs::connections_per_client`:
/// one client opening a thousand connections holds no more than its share of the
/// server's sockets and attention. Shared by every serving thread of a listener.
///
/// A connection over the cap is held unread for the header timeout, then closed (up to
/// [`HELD_PER_CAP`] times the cap; past that it is closed at once): closed at once, each
/// would be opened again at once, and a client looping on that costs the server more
/// than serving it.
struct ConnectionCap {
    most: usize,
    proxies: crate::forwarded::TrustedProxies,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// How many connections over its cap a client may have held, in caps.
const HELD_PER_CAP: usize = 4;

/// One connection counted against its client's cap, until it is dropped.
struct Counted(Option<(Arc<ConnectionCap>, std::net::IpAddr)>);

/// What becomes of a new connection.
enum Admission {
    Serve(Counted),
    /// Over the cap: held unread, then closed.
    Hold(Counted),
    /// Far over the cap: closed at once.
    Refuse,
}

impl ConnectionCap {
    fn new(http: &HttpArgs) -> Arc<Self> {
        Arc::new(Self { most: http.connections_per_client, proxies: http.proxies(), open: Default::default() })
    }

    fn admit(self: &Arc<Self>, peer: std::net::IpAddr) -> Admission {
        if self.most == 0 || self.proxies.is_proxy(peer) {
            return Admission::Serve(Counted(None));
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let held = open.entry(peer).or_default();
        if *held >= (1 + HELD_PER_CAP) * self.most {
            return Admission::Refuse;
        }
        *held += 1;
        let counted = Counted(Some((self.clone(), peer)));
        if *held > self.most { Admission::Hold(counted) } else { Admission::Serve(counted) }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some((cap, peer)) = self.0.take() {
            let mut open = cap.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(held) = open.get_mut(&peer) {
                *held -= 1;
                if *held == 0 {
                    open.remove(&peer);
                }
            }
        }
    }
}

async fn serve_capped(
    listener: TcpListener,
    connections: impl Connections,
    shutdown: impl Future<Output = ()> + Send + 'static,
    http: &HttpArgs,
    cap: Arc<ConnectionCap>,
) -> std::io::Result<()> {
    let (grace, header_timeout) = (http.shutdown_grace(), http.header_timeout());
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use hyper_util::server::conn::auto::Builder;

    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(20)));
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // Out of file descriptors and the like: pause instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let counted = match cap.admit(peer.ip()) {
            Admission::Serve(counted) => counted,
            Admission::Hold(counted) => {
                metrics::counter!("http_connections_refused_total", "reason" => "per_client_cap").increment(1);
                tokio::spawn(async move {
                    tokio::time::sleep(header_timeout).await;
                    drop((stream, counted));
                });
                continue;
            }
            Admission::Refuse => {
                metrics::counter!("http_connections_refused_total", "reason" => "per_client_cap").increment(1);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let hyper = Handoff {
            builder: builder.clone(),
            watcher: graceful.watcher(),
            stopping: stopping.clone(),
            write_timeout: header_timeout,
        };
        let served = connections.serve_connection(stream, peer, hyper);
        tokio::spawn(async move {
            served.await;
            drop(counted);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests outlived the grace period");
        }
    }
    Ok(())
}

/// Serves `connections` on `threads` threads (0: one per available core), each with its own
/// single-threaded runtime and its own socket listening on `addr` with `SO_REUSEPORT`, so
/// the kernel spreads connections over them: Envoy's and nginx's worker model. A request
/// stays on one thread from accept to answer, and nothing is handed between threads.
/// That suits the gateway, whose work is all I/O, and the services, whose blocking work
/// (SQLite, password hashing) runs on blocking threads anyway: a work-stealing runtime's
/// hand-offs cost `GET /users/me` a fifth of its throughput. Returns once `shutdown`
/// resolved and every thread drained; `on_bound` learns the address (port 0 picks one,
/// shared by all).
pub async fn serve_per_core(
    addr: SocketAddr,
    threads: usize,
    connections: impl Connections,
    shutdown: impl Future<Output = ()> + Send + 'static,
    http: &HttpArgs,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Every socket is bound here, before any thread starts, so a taken port fails the
    // start and port 0 resolves once for all.
    let first = reuseport_socket(addr)?;
    let addr = first.local_addr()?.as_socket().ok_or_else(|| std::io::Error::other("not an IP socket"))?;
    let mut sockets = vec![first];
    for _ in 1..threads {
        sockets.push(reuseport_socket(addr)?);
    }
    on_bound(addr);
    let cap = ConnectionCap::new(http);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::with_capacity(threads);
    for (i, socket) in sockets.into_iter().enumerate() {
        let (connections, http, mut stopped, cap) = (connections.clone(), http.clone(), stopped.clone(), cap.clone());
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().on_thread_park(run_idle_hooks).build()?;
        let worker = std::thread::Builder::new().name(format!("serve-{i}")).spawn(move || {
            WHEN_IDLE.set(Some(Vec::new()));
            runtime.block_on(async move {
                let listener = TcpListener::from_std(socket.into())?;
                let shutdown = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                serve_capped(listener, connections, shutdown, &http, cap).await
            })
        })?;
        workers.push(worker);
    }
    drop(stopped);
    shutdown.await;
    let _ = stop.send(true);
    tokio::task::spawn_blocking(move || {
        let mut result = Ok(());
        for worker in workers {
            match worker.join() {
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(std::io::Error::other("a server thread panicked")),
                Ok(Ok(())) => {}
            }
        }
        result
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Work a thread does whenever its runtime goes idle.
type IdleHooks = Vec<Box<dyn Fn()>>;

thread_local! {
    /// The idle hooks of a serving thread of [`serve_per_core`]; `None` on other threads.
    static WHEN_IDLE: RefCell<Option<IdleHooks>> = const { RefCell::new(None) };
}

/// Runs `hook` each time this thread's runtime has nothing left to do and waits for
/// events, if this is a serving thread of [`serve_per_core`]. Returns `false` on any
/// other thread, where the hook never runs (work deferred to it must be done at once).
pub fn when_idle(hook: impl Fn() + 'static) -> bool {
    WHEN_IDLE.with_borrow_mut(|hooks| match hooks {
        Some(hooks) => {
            hooks.push(Box::new(hook));
            true
        }
        None => false,
    })
}

fn run_idle_hooks() {
    WHEN_IDLE.with_borrow(|hooks| hooks.iter().flatten().for_each(|hook| hook()));
}

/// A listening, non-blocking socket on `addr` that other sockets may share.
fn reuseport_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_connection_cap_is_held_then_refused_and_proxies_are_not_capped() {
        let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let http = HttpArgs { connections_per_client: 2, ..HttpArgs::default() };
        let cap = ConnectionCap::new(&http);
        let mut kept = Vec::new();
        for n in 0..(1 + HELD_PER_CAP) * 2 {
            match cap.admit(ip) {
                Admission::Serve(c) => {
                    assert!(n < 2, "only two are served");
                    kept.push(c);
                }
                Admission::Hold(c) => {
                    assert!(n >= 2, "held once the cap is reached");
                    kept.push(c);
                }
                Admission::Refuse => panic!("refused too early, at {n}"),
            }
        }
        assert!(matches!(cap.admit(ip), Admission::Refuse), "past the held ones, closed at once");
        assert!(matches!(cap.admit("192.0.2.8".parse().unwrap()), Admission::Serve(_)), "another client is served");
        kept.clear();
        assert!(cap.open.lock().unwrap().is_empty(), "addresses without connections are forgotten");
        assert!(matches!(cap.admit(ip), Admission::Serve(_)), "closed connections give their places back");

        let never_capped = |http: HttpArgs, what: &str| {
            let cap = ConnectionCap::new(&http);
            let through: Vec<_> = (0..10).map(|_| cap.admit(ip)).collect();
            assert!(through.iter().all(|a| matches!(a, Admission::Serve(Counted(None)))), "{what} is never capped");
            cap
        };
        let hops = HttpArgs { connections_per_client: 1, trust_forwarded_for: true, ..HttpArgs::default() };
        never_capped(hops, "a proxy in front");
        let networks = HttpArgs {
            connections_per_client: 1,
            trusted_proxies: "192.0.2.0/28".parse().unwrap(),
            ..HttpArgs::default()
        };
        let cap = never_capped(networks, "a trusted network");
        let outside: std::net::IpAddr = "198.51.100.1".parse().unwrap();
        let first = cap.admit(outside);
        assert!(matches!(first, Admission::Serve(Counted(Some(_)))), "a client outside it is counted");
        assert!(matches!(cap.admit(outside), Admission::Hold(_)), "and capped");
    }

    #[test]
    fn secret_paths_are_redacted_in_logs() {
        assert_eq!(loggable_path("/api/v1/calendar/c2VjcmV0LXRva2Vu.ics"), "/api/v1/calendar/[redacted].ics");
        assert_eq!(loggable_path("/api/v1/calendar/c2VjcmV0"), "/api/v1/calendar/[redacted]");
        assert_eq!(loggable_path("/api/v1/events/42"), "/api/v1/events/42");
    }

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        for made_up in ["FOO", "BREW", "PROPFIND"] {
            assert_eq!(method_label(&http::Method::from_bytes(made_up.as_bytes()).unwrap()), "other");
        }
    }

    #[test]
    fn traceparent_parsing() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id_of(tp), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id_of("garbage"), None);
        assert_eq!(trace_id_of("00-xyz-00f067aa0ba902b7-01"), None);
    }

    /// Over real sockets: port 0 resolves once for every thread, each thread answers on
    /// its own runtime, and shutdown waits for a request in flight.
    #[tokio::test]
    async fn per_core_threads_share_one_port_and_drain_on_shutdown() {
        // The slow handler says when it has started, so shutdown comes while it runs.
        let started = Arc::new(tokio::sync::Notify::new());
        let entered = started.clone();
        let router = Router::new()
            .route("/thread", get(|| async { std::thread::current().name().unwrap_or("").to_owned() }))
            .route(
                "/slow",
                get(move || async move {
                    entered.notify_one();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }),
            );
        let http = HttpArgs::default();
        let (bound, address) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let on_bound = move |a| bound.send(a).unwrap();
            serve_per_core(addr, 2, ByHyper(router), async move { stopped.await.unwrap_or(()) }, &http, on_bound).await
        });
        let addr = address.await.unwrap();
        assert_ne!(addr.port(), 0);
        // New connections land on either thread; 40 of them reach both.
        let mut threads = std::collections::HashSet::new();
        for _ in 0..40 {
            let client = reqwest::Client::new();
            let name = client.get(format!("http://{addr}/thread")).send().await.unwrap().text().await.unwrap();
            threads.insert(name);
        }
        assert_eq!(threads, ["serve-0".to_owned(), "serve-1".to_owned()].into(), "{threads:?}");
        let slow = tokio::spawn(reqwest::get(format!("http://{addr}/slow")));
        started.notified().await;
        stop.send(()).unwrap();
        let answer = slow.await.unwrap().unwrap();
        assert_eq!(answer.text().await.unwrap(), "done", "the request in flight was answered");
        served.await.unwrap().unwrap();
        assert!(std::net::TcpStream::connect(addr).is_err(), "nothing listens after shutdown");
    }

    /// Over real sockets: a client that asks for a large answer and never reads it is cut
    /// off once its buffers are full and the header timeout has passed, and the answer's
    /// body is dropped rather than held for it.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off() {
        let (guard, dropped) = tokio::sync::oneshot::channel::<()>();
        let guard = Arc::new(std::sync::Mutex::new(Some(guard)));
        let router = Router::new().route(
            "/big",
            get(move || {
                let guard = guard.lock().unwrap().take();
                async move {
                    // 64 MiB, more than every buffer on the way; `guard` goes with the body.
                    let chunks = (0..64).map(move |_| {
                        let _held = &guard;
                        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 1 << 20]))
                    });
                    axum::body::Body::from_stream(futures::stream::iter(chunks))
                }
            }),
        );
        let http = HttpArgs { header_timeout_secs: 0.5, ..HttpArgs::default() };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { serve(listener, router, std::future::pending(), &http).await });
        let mut client = TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET /big HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
        let cut = tokio::time::timeout(Duration::from_secs(10), dropped).await;
        assert!(cut.is_ok(), "the answer still waits for the client 10 s on");
    }
}
