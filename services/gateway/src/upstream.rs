//! Where a route's requests go: endpoints over pooled keep-alive HTTP connections, or, in
//! `veche up`, a service's router in the same process (the same request and response,
//! without the socket).

use crate::failure::Failure;
use crate::pool::{self, Key, Pooled};
use crate::retry::{self, NextTry, Tried};
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{Request, Response, Uri};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// After a failed connection an endpoint is skipped for this long.
const EJECT_FOR: Duration = Duration::from_secs(2);

pub struct Upstream {
    pub name: String,
    target: Target,
}

enum Target {
    Remote(Box<Remote>),
    Local(axum::Router),
}

pub(crate) struct Remote {
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    /// Tells this upstream's connections apart in each thread's pool (see [`pool`]).
    id: usize,
}

pub(crate) struct Endpoint {
    base: Uri,
    /// `host:port`, to connect to.
    pub(crate) addr: String,
    /// Milliseconds since `epoch` until which the endpoint is skipped.
    ejected_until: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

impl Upstream {
    /// An upstream reached over HTTP at `endpoints` (`http://host:port`).
    pub fn remote(name: &str, endpoints: &[String]) -> anyhow::Result<Self> {
        static IDS: AtomicUsize = AtomicUsize::new(0);
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        let endpoints = endpoints
            .iter()
            .map(|e| {
                let base: Uri = e.parse()?;
                anyhow::ensure!(base.scheme_str() == Some("http"), "{e}: upstream endpoints are http://host:port");
                let authority = base.authority().ok_or_else(|| anyhow::anyhow!("{e}: no host"))?;
                let addr = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
                Ok(Endpoint { base, addr, ejected_until: AtomicU64::new(0) })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            name: name.to_owned(),
            target: Target::Remote(Box::new(Remote { endpoints, next: AtomicUsize::new(0), id })),
        })
    }

    /// An upstream in this process.
    pub fn local(name: &str, router: axum::Router) -> Self {
        Self { name: name.to_owned(), target: Target::Local(router) }
    }

    /// Sends `req` and waits at most `timeout` for the answer's head (and, over HTTP, at
    /// most as long for each next piece of its body).
    pub async fn send(&self, req: Request<Body>, timeout: Duration) -> Result<Response<Body>, Failure> {
        let sent = async {
            match &self.target {
                Target::Local(router) => Ok(router.clone().oneshot(afresh(req)).await.unwrap_or_else(|e| match e {})),
                // Boxed once, rather than copied with every layer the request's future passes.
                Target::Remote(remote) => Box::pin(crate::hyper_client::send(remote, &self.name, req, timeout)).await,
            }
        };
        match tokio::time::timeout(timeout, sent).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout(self.name.clone())),
        }
    }

    /// The endpoints, when the upstream is reached over HTTP (not in this process).
    pub(crate) fn endpoints(&self) -> Option<&Remote> {
        match &self.target {
            Target::Remote(remote) => Some(remote),
            Target::Local(_) => None,
        }
    }

    /// Readiness of an in-process upstream (its own `/readyz`); a remote one is its
    /// own Deployment's business and always counts as ready here.
    pub async fn ready(&self) -> Result<(), String> {
        let Target::Local(router) = &self.target else { return Ok(()) };
        let req = Request::get("/readyz").body(Body::empty()).map_err(|e| e.to_string())?;
        let response = router.clone().oneshot(req).await.unwrap_or_else(|e| match e {});
        if response.status().is_success() { Ok(()) } else { Err(format!("{} is not ready", self.name)) }
    }

    /// GET `path` and parse JSON (the upstream's OpenAPI document).
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let req = Request::get(path).body(Body::empty())?;
        let response = self.send(req, Duration::from_secs(5)).await?;
        anyhow::ensure!(response.status().is_success(), "{path}: {}", response.status());
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// The request as an in-process router should see it: without the gateway's own
/// extensions (its path parameters would confuse the service's router), knowing only who
/// connected.
fn afresh(mut req: Request<Body>) -> Request<Body> {
    let connected = req.extensions().get::<ConnectInfo<SocketAddr>>().cloned();
    *req.extensions_mut() = http::Extensions::new();
    if let Some(connected) = connected {
        req.extensions_mut().insert(connected);
    }
    req
}

impl Remote {
    /// The endpoints to try for one request, in order: round-robin from the next one,
    /// those recently refused skipped unless nothing else is left.
    pub(crate) fn attempts(&self) -> Attempts<'_> {
        let count = self.endpoints.len();
        // Shared counters are written only when there is a choice: every thread writing
        // one line on every request makes the cores pass it back and forth.
        let start = if count > 1 { self.next.fetch_add(1, Ordering::Relaxed) } else { 0 };
        Attempts { remote: self, start, i: 0, tried: 0 }
    }
}

/// One transport's way of trying a request on one upstream connection. The rules around
/// the tries (which endpoint, which connection, whether to try again, when to skip an
/// endpoint) are [`Remote::send`]'s, the same for every transport.
pub(crate) trait Exchange {
    /// An upstream connection, as this transport pools it.
    type Conn: Pooled;
    /// What a try that worked gives: the answer's head, at least.
    type Answer;
    type Error: From<Failure>;

    /// Opens a new connection to an endpoint at `addr` (`host:port`).
    async fn connect(&mut self, addr: &str) -> std::io::Result<Self::Conn>;

    /// Sends the request on `conn` (`reused`: it came from the pool) and waits for the
    /// answer's head. A connection that is done with goes back to the pool with `key`.
    async fn try_once(
        &mut self,
        conn: Self::Conn,
        reused: bool,
        key: Key,
        endpoint: &Endpoint,
    ) -> Result<Self::Answer, Tried<Self::Error>>;
}

impl Remote {
    /// Sends a request through `exchange`: endpoints in turn, an idle connection of this
    /// thread or a new one, a refusing endpoint skipped for a while, and another try only
    /// as [`retry`] allows. `now` is the request's start (for the pool).
    pub(crate) async fn send<X: Exchange>(
        &self,
        name: &str,
        exchange: &mut X,
        replayable: bool,
        now: tokio::time::Instant,
    ) -> Result<X::Answer, X::Error> {
        for (key, endpoint) in self.attempts() {
            loop {
                let (conn, reused) = match pool::take(key, now) {
                    Some(conn) => (conn, true),
                    None => match exchange.connect(&endpoint.addr).await {
                        Ok(conn) => (conn, false),
                        Err(e) => {
                            endpoint.eject(name, &e);
                            match retry::after_connect_failure(replayable) {
                                NextTry::GiveUp => return Err(Failure::Unavailable(name.to_owned()).into()),
                                NextTry::OtherEndpoint | NextTry::SameEndpoint => break,
                            }
                        }
                    },
                };
                let tried = match exchange.try_once(conn, reused, key, endpoint).await {
                    Ok(answer) => {
                        endpoint.answered();
                        return Ok(answer);
                    }
                    Err(tried) => tried,
                };
                match retry::after_try(&tried, reused, replayable) {
                    NextTry::SameEndpoint => continue,
                    NextTry::OtherEndpoint => break,
                    NextTry::GiveUp => {
                        return Err(match tried {
                            Tried::Failed(e) => e,
                            Tried::Unanswered(detail) => Failure::Broken(name.to_owned(), detail).into(),
                            Tried::NotSent => {
                                Failure::Broken(name.to_owned(), "a new connection took no request".into()).into()
                            }
                        });
                    }
                }
            }
        }
        Err(Failure::Unavailable(name.to_owned()).into())
    }
}

/// See [`Remote::attempts`].
pub(crate) struct Attempts<'a> {
    remote: &'a Remote,
    start: usize,
    i: usize,
    tried: usize,
}

impl<'a> Iterator for Attempts<'a> {
    type Item = (Key, &'a Endpoint);

    fn next(&mut self) -> Option<Self::Item> {
        let count = self.remote.endpoints.len();
        while self.i < count {
            let i = self.i;
            self.i += 1;
            let index = (self.start + i) % count;
            let endpoint = &self.remote.endpoints[index];
            // An ejected endpoint is tried only as the last chance.
            if endpoint.ejected() && !(self.tried == 0 && i == count - 1) {
                continue;
            }
            self.tried += 1;
            return Some(((self.remote.id, index), endpoint));
        }
        None
    }
}

impl Endpoint {
    /// `host:port` as a `Host` header names it.
    pub(crate) fn authority(&self) -> &str {
        self.base.authority().map_or("", |a| a.as_str())
    }

    fn ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && until > now_ms()
    }

    /// It answered: no longer skipped (a store only when it was).
    pub(crate) fn answered(&self) {
        if self.ejected_until.load(Ordering::Relaxed) != 0 {
            self.ejected_until.store(0, Ordering::Relaxed);
        }
    }

    /// It refused a connection: skipped for a while.
    pub(crate) fn eject(&self, upstream: &str, error: &std::io::Error) {
        self.ejected_until.store(now_ms() + EJECT_FOR.as_millis() as u64, Ordering::Relaxed);
        tracing::warn!(%upstream, endpoint = %self.base, %error, "could not connect");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_plain_http_with_a_host() {
        assert!(Upstream::remote("users", &["http://127.0.0.1:8081".into()]).is_ok());
        assert!(Upstream::remote("users", &["https://users:8443".into()]).is_err());
        assert!(Upstream::remote("users", &["users:8081".into()]).is_err());
    }

    /// Every request's future is moved a few times on its way through the layers (into a
    /// box, a timeout, a span), a memcpy each time. The remote send is boxed once instead of
    /// carried along; inline it made the future threefold (2.8 KB, 3% of the CPU in copies).
    #[test]
    fn sending_upstream_stays_small() {
        let upstream = Upstream::remote("x", &["http://127.0.0.1:1".into()]).unwrap();
        let req = Request::get("/").body(Body::empty()).unwrap();
        let sending = upstream.send(req, Duration::from_secs(1));
        let size = std::mem::size_of_val(&sending);
        assert!(size <= 1536, "Upstream::send's future is {size} bytes");
    }
}
