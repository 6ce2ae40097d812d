//! The gateway's proxying over real sockets, every case on both transports: the gateway's
//! own HTTP/1.1 transport (as `veche serve gateway` serves its connections, handing hyper
//! what it does not take) and hyper's (as `veche up` serves them). A client writes raw
//! bytes; a scripted upstream on loopback answers each path with a different framing and
//! counts its connections. Both must hold alike: framing relayed intact, connections
//! reused, `X-Forwarded-*` and request ids, refusals as problems, retries only where they
//! are safe, timeouts on either side. A case that holds on one transport and not the
//! other fails by name: `own_transport::<case>` or `hyper_transport::<case>`.

use gateway::model::{Access, Route, RouteTable};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the upstream saw: each request's head (lower-cased) and body, and its connections.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, Vec<u8>)>,
    connections: usize,
    /// How writing `/api/big`'s body ended, once it has.
    big: Option<Result<(), String>>,
}

/// Reads one request (head and body) from `stream`; `None` at its end.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    while find(buf, b"\r\n\r\n").is_none() {
        read_more(stream, buf).await?;
    }
    let end = find(buf, b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8(buf[..end].to_vec()).unwrap().to_ascii_lowercase();
    buf.drain(..end);
    let body = if head_value(&head, "transfer-encoding") == Some("chunked") {
        read_chunked(stream, buf).await?
    } else {
        let length = head_value(&head, "content-length").map_or(0, |v| v.parse::<usize>().unwrap());
        while buf.len() < length {
            read_more(stream, buf).await?;
        }
        buf.drain(..length).collect()
    };
    Some((head, body))
}

/// Decodes a chunked body (written here, not with the gateway's code).
async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        while find(buf, b"\r\n").is_none() {
            read_more(stream, buf).await?;
        }
        let line = find(buf, b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&buf[..line]).unwrap(), 16).unwrap();
        while buf.len() < line + 2 + size + 2 {
            read_more(stream, buf).await?;
        }
        body.extend_from_slice(&buf[line + 2..line + 2 + size]);
        buf.drain(..line + 2 + size + 2);
        if size == 0 {
            return Some(body);
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn head_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The upstream: each path answers in its own way.
async fn upstream() -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            log.lock().unwrap().connections += 1;
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut drop_next = false;
                while let Some((head, body)) = read_request(&mut stream, &mut buf).await {
                    if drop_next {
                        return;
                    }
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let head_request = head.starts_with("head ");
                    log.lock().unwrap().requests.push((head, body.clone()));
                    let w = &mut stream;
                    match path.as_str() {
                        "/api/plain" if head_request => {
                            w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").await
                        }
                        "/api/plain" => w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await,
                        "/api/chunked" => {
                            // In two writes, the second a moment later: the relay must wait for it.
                            w.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
                                .await
                                .unwrap();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            w.write_all(b"6\r\n world\r\n0\r\n\r\n").await
                        }
                        "/api/until-close" => {
                            let _ =
                                w.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end").await;
                            return;
                        }
                        "/api/empty" => w.write_all(b"HTTP/1.1 204 No Content\r\nx-upstream: 1\r\n\r\n").await,
                        "/api/echo" => {
                            let head = format!("HTTP/1.1 201 Created\r\ncontent-length: {}\r\n\r\n", body.len());
                            w.write_all(&[head.as_bytes(), &body].concat()).await
                        }
                        // Answers, then closes without saying so: the next request that takes
                        // this connection from the pool finds it closed.
                        "/api/then-gone" => {
                            let _ = w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ngone").await;
                            return;
                        }
                        // Answers, then closes when the next request comes: a pooled
                        // connection that looked open when it was taken.
                        "/api/then-drop" => {
                            drop_next = true;
                            w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndrop").await
                        }
                        "/api/says-close" => {
                            let _ = w
                                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbye")
                                .await;
                            return;
                        }
                        "/api/hang" => {
                            tokio::time::sleep(Duration::from_secs(3)).await;
                            w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlate").await
                        }
                        "/api/slow" => {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow").await
                        }
                        // A head and half the body, then nothing while the connection stays open.
                        "/api/stall" => {
                            w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello").await.unwrap();
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        // More than every buffer between here and a client that does not read.
                        "/api/big" => {
                            const MIB: usize = 1 << 20;
                            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", 64 * MIB);
                            let mut ended = w.write_all(head.as_bytes()).await;
                            for _ in 0..64 {
                                if ended.is_ok() {
                                    ended = w.write_all(&[b'x'; MIB]).await;
                                }
                            }
                            log.lock().unwrap().big = Some(ended.map_err(|e| e.to_string()));
                            return;
                        }
                        "/api/early-hint" => {
                            w.write_all(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n").await.unwrap();
                            w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await
                        }
                        _ => w.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await,
                    }
                    .unwrap();
                }
            });
        }
    });
    (addr, seen)
}

/// The two transports every case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// As `veche serve gateway` serves: the gateway's own HTTP/1.1 transport first.
    Own,
    /// As `veche up` serves: hyper for every connection, upstreams through hyper's client.
    Hyper,
}

/// Each case as two tests, one per transport.
macro_rules! on_both_transports {
    ($($case:ident),+ $(,)?) => {
        mod own_transport {
            $(#[tokio::test] async fn $case() { super::$case(super::Transport::Own).await })+
        }
        mod hyper_transport {
            $(#[tokio::test] async fn $case() { super::$case(super::Transport::Hyper).await })+
        }
    };
}

on_both_transports!(
    every_framing_is_relayed_and_connections_are_reused,
    the_upstream_gets_the_body_and_forwarding_headers,
    requests_without_exactly_one_host_are_refused,
    a_clients_broken_chunked_body_is_its_400_not_a_502,
    a_pooled_connection_the_upstream_closed_is_replaced_for_a_get,
    refusals_are_problems_and_a_refused_body_is_not_taken_for_a_request,
    tokens_are_checked_at_the_edge,
    a_client_over_its_rate_gets_429_with_retry_after,
    unknown_routes_and_upstreams_that_cannot_answer_are_problems,
    a_stopped_endpoint_is_skipped_and_only_what_may_go_again_goes_elsewhere,
    what_the_own_transport_does_not_take_is_answered_alike,
    shutdown_lets_the_request_in_hand_finish_then_closes,
    the_meters_of_serving_threads_are_all_counted_once_they_are_idle,
    a_client_that_stops_reading_and_an_upstream_that_stops_sending_are_cut_off,
);

/// An address where nothing listens any more: a stopped endpoint.
fn stopped() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// A gateway in front of the scripted upstream, served on `transport`: routes `/api`
/// open, `/private` needing a token, `/maybe` taking one, `/small` taking bodies of at
/// most 16 bytes (all to the upstream `name`), and `/stopped` to an upstream that is down.
struct Gw {
    transport: Transport,
    /// The endpoints of `name`.
    endpoints: Vec<String>,
    name: String,
    http: kit::config::HttpArgs,
    upstream_timeout_secs: f64,
    /// Requests per second and burst per client (0: no limit).
    client_rate: (u32, u32),
}

impl Gw {
    fn new(transport: Transport, upstream: &str) -> Self {
        Self {
            transport,
            endpoints: vec![format!("http://{upstream}")],
            name: "up".into(),
            http: kit::config::HttpArgs::default(),
            upstream_timeout_secs: 5.0,
            client_rate: (0, 0),
        }
    }

    /// Half-second timeouts: the header (and client) timeout and the upstream's.
    fn impatient(mut self) -> Self {
        self.http.header_timeout_secs = 0.5;
        self.upstream_timeout_secs = 0.5;
        self
    }

    fn front(&self) -> gateway::proxy::Front {
        let route = |prefix: &str, upstream: &str, auth, max_body_bytes| Route {
            prefix: prefix.into(),
            upstream: upstream.into(),
            auth,
            max_body_bytes,
        };
        let name = self.name.as_str();
        let table = RouteTable {
            upstreams: [(name.to_owned(), self.endpoints.clone()), ("down".to_owned(), vec![stopped()])].into(),
            routes: vec![
                route("/api", name, Access::None, None),
                route("/private", name, Access::Required, None),
                route("/maybe", name, Access::Optional, None),
                route("/small", name, Access::None, Some(16)),
                route("/stopped", "down", Access::None, None),
            ],
        };
        let config = gateway::GatewayConfig {
            serve_metrics: false,
            routes: None,
            cors_origins: Vec::new(),
            client_rps: self.client_rate.0,
            client_burst: self.client_rate.1,
            user_rps: 0,
            user_burst: 0,
            upstream_timeout_secs: self.upstream_timeout_secs,
        };
        let keys = kit::auth::KeySource::Url(format!("{}/jwks", self.endpoints[0]));
        let verifier = kit::auth::Verifier::new(keys, "test", "gateway");
        gateway::build(&config, table, gateway::Upstreams::Remote, verifier, &self.http).unwrap()
    }

    async fn serve(self) -> String {
        self.serve_until(std::future::pending()).await.0
    }

    /// Serves until `shutdown` resolves; the handle ends when the server has.
    async fn serve_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (front, http) = (self.front(), self.http);
        let served = match self.transport {
            Transport::Own => {
                let edge = gateway::edge::Edge::new(front);
                tokio::spawn(async move { kit::server::serve_connections(listener, edge, shutdown, &http).await })
            }
            Transport::Hyper => tokio::spawn(async move { kit::server::serve(listener, front, shutdown, &http).await }),
        };
        (addr, served)
    }
}

/// The gateway of most cases.
async fn gateway(transport: Transport, upstream: &str) -> String {
    Gw::new(transport, upstream).serve().await
}

/// A response as the client reads it: status line, head (lower-cased), decoded body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one response; `head_request`: no body whatever the head says. Decodes chunked
/// bodies itself (not with the gateway's code).
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Answer {
    while find(buf, b"\r\n\r\n").is_none() {
        read_more(stream, buf).await.expect("the gateway closed before answering");
    }
    let end = find(buf, b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8(buf[..end].to_vec()).unwrap().to_ascii_lowercase();
    buf.drain(..end);
    let status = head[9..12].parse().unwrap();
    let mut body = Vec::new();
    if head_request || status == 204 || status == 304 {
    } else if head_value(&head, "transfer-encoding") == Some("chunked") {
        body = read_chunked(stream, buf).await.expect("the gateway closed mid-body");
    } else if let Some(length) = head_value(&head, "content-length") {
        let length: usize = length.parse().unwrap();
        while buf.len() < length {
            read_more(stream, buf).await.unwrap();
        }
        body = buf.drain(..length).collect();
    } else {
        while read_more(stream, buf).await.is_some() {}
        body = std::mem::take(buf);
    }
    Answer { status, head, body }
}

async fn connect(addr: &str) -> (TcpStream, Vec<u8>) {
    (TcpStream::connect(addr).await.unwrap(), Vec::new())
}

/// Sends `request` on the connection and reads the answer.
async fn ask(conn: &mut (TcpStream, Vec<u8>), request: &str) -> Answer {
    conn.0.write_all(request.as_bytes()).await.unwrap();
    read_answer(&mut conn.0, &mut conn.1, request.starts_with("HEAD ")).await
}

async fn closed(conn: &mut (TcpStream, Vec<u8>)) -> bool {
    let mut byte = [0; 1];
    matches!(tokio::time::timeout(Duration::from_secs(2), conn.0.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: gw.test\r\n\r\n")
}

async fn every_framing_is_relayed_and_connections_are_reused(t: Transport) {
    let (up, seen) = upstream().await;
    let gw = gateway(t, &up).await;
    let mut conn = connect(&gw).await;

    let plain = ask(&mut conn, &get("/api/plain")).await;
    assert_eq!((plain.status, plain.body.as_slice()), (200, &b"hello"[..]));
    assert!(head_value(&plain.head, "x-request-id").is_some_and(|id| id.len() == 36), "{}", plain.head);
    assert!(head_value(&plain.head, "date").is_some(), "{}", plain.head);

    let chunked = ask(&mut conn, &get("/api/chunked")).await;
    assert_eq!((chunked.status, chunked.body.as_slice()), (200, &b"hello world"[..]));
    assert_eq!(head_value(&chunked.head, "transfer-encoding"), Some("chunked"));

    let empty = ask(&mut conn, &get("/api/empty")).await;
    assert_eq!((empty.status, head_value(&empty.head, "x-upstream")), (204, Some("1")));

    let head = ask(&mut conn, "HEAD /api/plain HTTP/1.1\r\nhost: gw.test\r\n\r\n").await;
    assert_eq!((head.status, head_value(&head.head, "content-length"), head.body.len()), (200, Some("5"), 0));

    let hinted = ask(&mut conn, &get("/api/early-hint")).await;
    assert_eq!((hinted.status, hinted.body.as_slice()), (200, &b"ok"[..]), "interim answers are not passed on");

    // Two requests in one write: two answers, in order.
    let both = format!("{}{}", get("/api/plain"), get("/api/chunked"));
    conn.0.write_all(both.as_bytes()).await.unwrap();
    let first = read_answer(&mut conn.0, &mut conn.1, false).await;
    let second = read_answer(&mut conn.0, &mut conn.1, false).await;
    assert_eq!((first.body.as_slice(), second.body.as_slice()), (&b"hello"[..], &b"hello world"[..]));

    assert_eq!(seen.lock().unwrap().connections, 1, "one client connection, one upstream connection");

    // A body up to the close: relayed. The own transport relays it the same way and the
    // client's connection ends too; hyper's sends it chunked and the connection goes on.
    let until_close = ask(&mut conn, &get("/api/until-close")).await;
    assert_eq!((until_close.status, until_close.body.as_slice()), (200, &b"until the end"[..]));
    match t {
        Transport::Own => assert_eq!(head_value(&until_close.head, "connection"), Some("close")),
        Transport::Hyper => assert_eq!(head_value(&until_close.head, "transfer-encoding"), Some("chunked")),
    }
}

async fn the_upstream_gets_the_body_and_forwarding_headers(t: Transport) {
    let (up, seen) = upstream().await;
    let gw = gateway(t, &up).await;
    let mut conn = connect(&gw).await;
    // The body in two writes, the second after the head went upstream.
    let head = "POST /api/echo HTTP/1.1\r\nhost: gw.test\r\ncontent-length: 11\r\nx-forwarded-for: 6.6.6.6\r\nx-request-id: mine\r\n\
                forwarded: for=6.6.6.6;proto=https\r\nx-real-ip: 6.6.6.6\r\nx-forwarded-proto: https\r\n\r\nhello";
    conn.0.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.0.write_all(b" world").await.unwrap();
    let echoed = read_answer(&mut conn.0, &mut conn.1, false).await;
    assert_eq!((echoed.status, echoed.body.as_slice()), (201, &b"hello world"[..]));
    assert_eq!(head_value(&echoed.head, "x-request-id"), Some("mine"), "the client's id comes back");

    let (upstream_head, body) = seen.lock().unwrap().requests.last().cloned().unwrap();
    assert_eq!(body, b"hello world");
    assert_eq!(head_value(&upstream_head, "x-forwarded-for"), Some("127.0.0.1"), "the client's claim is replaced");
    assert_eq!(head_value(&upstream_head, "x-forwarded-host"), Some("gw.test"));
    assert_eq!(head_value(&upstream_head, "x-forwarded-proto"), Some("http"));
    assert_eq!(head_value(&upstream_head, "x-request-id"), Some("mine"));
    assert_eq!(head_value(&upstream_head, "host"), Some("gw.test"));
    assert_eq!(head_value(&upstream_head, "forwarded"), None, "a client's Forwarded is dropped");
    assert_eq!(head_value(&upstream_head, "x-real-ip"), None, "a client's X-Real-IP is dropped");

    // The same for a chunked body (which the own transport hands to hyper).
    let chunked = "POST /api/echo HTTP/1.1\r\nhost: gw.test\r\ntransfer-encoding: chunked\r\nx-real-ip: 6.6.6.6\r\n\
                   forwarded: for=6.6.6.6\r\nx-forwarded-proto: https\r\nx-forwarded-for: 6.6.6.6\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    assert_eq!(ask(&mut conn, chunked).await.status, 201);
    let (upstream_head, _) = seen.lock().unwrap().requests.last().cloned().unwrap();
    assert_eq!(head_value(&upstream_head, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(head_value(&upstream_head, "x-forwarded-proto"), Some("http"));
    assert_eq!(head_value(&upstream_head, "forwarded"), None);
    assert_eq!(head_value(&upstream_head, "x-real-ip"), None);

    // Without an id, the gateway makes one: the upstream and the client learn the same.
    let plain = ask(&mut conn, &get("/api/plain")).await;
    let (upstream_head, _) = seen.lock().unwrap().requests.last().cloned().unwrap();
    let made = head_value(&plain.head, "x-request-id").unwrap();
    assert_eq!((made.len(), head_value(&upstream_head, "x-request-id")), (36, Some(made)));
}

async fn requests_without_exactly_one_host_are_refused(t: Transport) {
    let (up, seen) = upstream().await;
    let gw = gateway(t, &up).await;
    for request in
        ["GET /api/plain HTTP/1.1\r\n\r\n", "GET /api/plain HTTP/1.1\r\nhost: gw.test\r\nhost: evil.test\r\n\r\n"]
    {
        let mut conn = connect(&gw).await;
        let answer = ask(&mut conn, request).await;
        assert_eq!(answer.status, 400, "{request:?}");
        assert_eq!(head_value(&answer.head, "content-type"), Some("application/problem+json"));
    }
    assert!(seen.lock().unwrap().requests.is_empty(), "nothing reached the upstream");
}

async fn a_clients_broken_chunked_body_is_its_400_not_a_502(t: Transport) {
    let (up, _) = upstream().await;
    let gw = gateway(t, &up).await;
    let mut conn = connect(&gw).await;
    let broken = "POST /api/echo HTTP/1.1\r\nhost: gw.test\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\nzz\r\n";
    let answer = ask(&mut conn, broken).await;
    assert_eq!(answer.status, 400, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(head_value(&answer.head, "content-type"), Some("application/problem+json"));
}

async fn a_pooled_connection_the_upstream_closed_is_replaced_for_a_get(t: Transport) {
    let (up, seen) = upstream().await;
    let gw = gateway(t, &up).await;
    let mut conn = connect(&gw).await;
    assert_eq!(ask(&mut conn, &get("/api/then-gone")).await.body, b"gone");
    // Give the close time to arrive, then again, twice: the pooled connection is dead.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ask(&mut conn, &get("/api/plain")).await.body, b"hello");
    let says_close = ask(&mut conn, &get("/api/says-close")).await;
    assert_eq!(says_close.body, b"bye");
    assert_eq!(ask(&mut conn, &get("/api/plain")).await.body, b"hello", "a new connection after `close`");
    assert_eq!(seen.lock().unwrap().connections, 3);

    // Closed as the request came: a GET is sent again on a new connection...
    assert_eq!(ask(&mut conn, &get("/api/then-drop")).await.body, b"drop");
    assert_eq!(ask(&mut conn, &get("/api/plain")).await.body, b"hello");
    assert_eq!(seen.lock().unwrap().connections, 4);
    // ...a POST is not (it may have been acted on): 502.
    assert_eq!(ask(&mut conn, &get("/api/then-drop")).await.body, b"drop");
    let post = ask(&mut conn, "POST /api/echo HTTP/1.1\r\nhost: gw.test\r\ncontent-length: 2\r\n\r\nhi").await;
    assert_eq!((post.status, head_value(&post.head, "content-type")), (502, Some("application/problem+json")));
    assert_eq!(ask(&mut conn, &get("/api/plain")).await.body, b"hello", "and the client's connection goes on");
}

async fn refusals_are_problems_and_a_refused_body_is_not_taken_for_a_request(t: Transport) {
    let (up, seen) = upstream().await;
    let gw = gateway(t, &up).await;
    let mut conn = connect(&gw).await;

    // No token: 401 from the gateway, the body skipped, the connection goes on.
    let refused = ask(&mut conn, "POST /private/x HTTP/1.1\r\nhost: gw.test\r\ncontent-length: 4\r\n\r\nGET ").await;
    assert_eq!(refused.status, 401);
    assert_eq!(head_value(&refused.head, "content-type"), Some("application/problem+json"));
    assert_eq!(head_value(&refused.head, "www-authenticate"), Some("bearer"));
    let problem: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(problem["status"], 401);
    assert_eq!(ask(&mut conn, &get("/api/plain")).await.body, b"hello");

    // Declared too large: 413 before a byte of it is read, then the connection closes
    // (which the own transport announces; hyper's server closes without a word).
    let big = ask(&mut conn, "POST /small/x HTTP/1.1\r\nhost: gw.test\r\ncontent-length: 1000\r\n\r\n").await;
    let announced = match t {
        Transport::Own => Some("close"),
        Transport::Hyper => None,
    };
    assert_eq!((big.status, head_value(&big.head, "connection")), (413, announced));
    assert!(closed(&mut conn).await, "the unread body is not taken for the next request");
    assert!(
        seen.lock().unwrap().requests.iter().all(|(head, _)| !head.contains("/private") && !head.contains("/small"))
    );
}

async fn what_the_own_transport_does_not_take_is_answered_alike(t: Transport) {
    let (up, _) = upstream().await;
    let gw = gateway(t, &up).await;

    // HTTP/1.0 and a chunked request body go to hyper, which proxies them the same way.
    let mut conn = connect(&gw).await;
    let old = ask(&mut conn, "GET /api/plain HTTP/1.0\r\nhost: gw.test\r\n\r\n").await;
    assert_eq!((old.status, old.body.as_slice()), (200, &b"hello"[..]));
    let mut conn = connect(&gw).await;
    assert_eq!(ask(&mut conn, &get("/api/plain")).await.body, b"hello");
    let chunked = ask(
        &mut conn,
        "POST /api/echo HTTP/1.1\r\nhost: gw.test\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!((chunked.status, chunked.body.as_slice()), (201, &b"abc"[..]));
    // A fragment is not the path's: hyper drops it, and the route is the path's without it.
    let mut conn = connect(&gw).await;
    let fragment = ask(&mut conn, &get("/api/plain#x")).await;
    assert_eq!((fragment.status, fragment.body.as_slice()), (200, &b"hello"[..]));
    // The gateway's own pages and unknown routes, also after a handover.
    let health = ask(&mut conn, &get("/healthz")).await;
    assert_eq!(health.status, 200);
    let unknown = ask(&mut conn, &get("/nowhere")).await;
    assert_eq!((unknown.status, head_value(&unknown.head, "content-type")), (404, Some("application/problem+json")));

    // A malformed head: hyper's 400.
    let mut conn = connect(&gw).await;
    let bad = ask(&mut conn, "GET /api/plain HTTP/1.1\r\nbad header\r\n\r\n").await;
    assert_eq!(bad.status, 400);
}

async fn shutdown_lets_the_request_in_hand_finish_then_closes(t: Transport) {
    let (up, seen) = upstream().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (gw, served) = Gw::new(t, &up)
        .serve_until(async move {
            let _ = stopped.await;
        })
        .await;
    let mut busy = connect(&gw).await;
    let mut idle = connect(&gw).await;
    assert_eq!(ask(&mut idle, &get("/api/plain")).await.body, b"hello");
    busy.0.write_all(get("/api/slow").as_bytes()).await.unwrap();
    // Shutdown comes once the slow request is at the upstream.
    let at_upstream = || seen.lock().unwrap().requests.iter().any(|(head, _)| head.starts_with("get /api/slow "));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !at_upstream() {
        assert!(std::time::Instant::now() < deadline, "the slow request never reached the upstream");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    assert!(closed(&mut idle).await, "an idle connection closes at once");
    let slow = read_answer(&mut busy.0, &mut busy.1, false).await;
    assert_eq!((slow.status, slow.body.as_slice()), (200, &b"slow"[..]), "the request in hand is answered");
    assert!(closed(&mut busy).await, "and then its connection closes");
    let done = tokio::time::timeout(Duration::from_secs(5), served).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "the server returns once its connections are gone");
}

/// On the threads `veche serve gateway` runs, meters are batched per thread and added when
/// the thread goes idle: once the answers are in, every request is counted, once.
async fn the_meters_of_serving_threads_are_all_counted_once_they_are_idle(t: Transport) {
    let metrics = kit::server::metrics_handle();
    let (up, _) = upstream().await;
    // Each transport's own upstream name: the two cases share the metrics registry.
    let name = format!("metered-{t:?}").to_lowercase();
    let front = Gw { name: name.clone(), ..Gw::new(t, &up) }.front();
    let (bound, addr) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = kit::config::HttpArgs::default();
    let served = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        let on_bound = |a| {
            let _ = bound.send(a);
        };
        let at = "127.0.0.1:0".parse().unwrap();
        match t {
            Transport::Own => {
                let edge = gateway::edge::Edge::new(front);
                kit::server::serve_per_core(at, 2, edge, shutdown, &http, on_bound).await
            }
            Transport::Hyper => {
                kit::server::serve_per_core(at, 2, kit::server::ByHyper(front), shutdown, &http, on_bound).await
            }
        }
    });
    let gw = addr.await.unwrap().to_string();
    let mut asked = Vec::new();
    for _ in 0..4 {
        let gw = gw.clone();
        asked.push(tokio::spawn(async move {
            let mut conn = connect(&gw).await;
            for _ in 0..10 {
                assert_eq!(ask(&mut conn, &get("/api/plain")).await.status, 200);
            }
        }));
    }
    for a in asked {
        a.await.unwrap();
    }
    let line = format!(r#"gateway_requests_total{{route="/api",upstream="{name}",status="200"}} "#);
    let count = || metrics.render().lines().find_map(|l| l.strip_prefix(&line)?.trim().parse::<u64>().ok());
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while count() != Some(40) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(), Some(40), "{}", metrics.render());
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
}

async fn a_client_that_stops_reading_and_an_upstream_that_stops_sending_are_cut_off(t: Transport) {
    let (up, seen) = upstream().await;
    let gw = Gw::new(t, &up).impatient().serve().await;

    // 64 MiB the client never reads: once every buffer is full, the gateway waits the
    // client timeout and drops both connections, so the upstream's write fails.
    let mut reader = connect(&gw).await;
    reader.0.write_all(get("/api/big").as_bytes()).await.unwrap();
    let mut ended = None;
    for _ in 0..100 {
        ended = seen.lock().unwrap().big.clone();
        if ended.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = ended.expect("the upstream's write still hangs 10 s on: the relay waits for the client forever");
    assert!(ended.is_err(), "the whole body went out, yet the client read nothing");

    // Half a body, then silence: the client gets what came, then the connection closes.
    let mut conn = connect(&gw).await;
    conn.0.write_all(get("/api/stall").as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.0.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "still open 5 s on: the relay waits for the upstream forever");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200") && got.ends_with("\r\n\r\nhello"), "{got}");
}

async fn tokens_are_checked_at_the_edge(t: Transport) {
    let (up, seen) = upstream().await;
    let gw = gateway(t, &up).await;
    let mut conn = connect(&gw).await;
    // Required and none sent, or optional and one that is no token: 401 from the gateway.
    for request in [
        get("/private/x"),
        "GET /maybe/x HTTP/1.1\r\nhost: gw.test\r\nauthorization: Bearer not.a.token\r\n\r\n".into(),
    ] {
        let refused = ask(&mut conn, &request).await;
        assert_eq!(refused.status, 401, "{request:?}");
        assert_eq!(head_value(&refused.head, "content-type"), Some("application/problem+json"));
        assert!(head_value(&refused.head, "x-request-id").is_some(), "{}", refused.head);
    }
    assert!(seen.lock().unwrap().requests.is_empty(), "the upstream never saw a refused request");
    // Optional and none sent: on to the upstream (whose own 404 comes back).
    assert_eq!(ask(&mut conn, &get("/maybe/x")).await.status, 404);
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
}

async fn a_client_over_its_rate_gets_429_with_retry_after(t: Transport) {
    let (up, seen) = upstream().await;
    let gw = Gw { client_rate: (1, 2), ..Gw::new(t, &up) }.serve().await;
    let mut conn = connect(&gw).await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(ask(&mut conn, &get("/api/plain")).await);
    }
    assert_eq!(answers.iter().map(|a| a.status).collect::<Vec<_>>(), [200, 200, 429]);
    let limited = &answers[2];
    assert_eq!(head_value(&limited.head, "content-type"), Some("application/problem+json"));
    let wait: u64 = head_value(&limited.head, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "retry after {wait}");
    assert_eq!(seen.lock().unwrap().requests.len(), 2, "a refused request never reaches the upstream");
}

async fn unknown_routes_and_upstreams_that_cannot_answer_are_problems(t: Transport) {
    let (up, _) = upstream().await;
    let gw = Gw::new(t, &up).impatient().serve().await;
    let mut conn = connect(&gw).await;
    let problem = |answer: &Answer| head_value(&answer.head, "content-type") == Some("application/problem+json");

    let unknown = ask(&mut conn, &get("/nowhere")).await;
    assert!(unknown.status == 404 && problem(&unknown), "{unknown:?}");
    // Nothing listens: 503 at once.
    let started = Instant::now();
    let stopped = ask(&mut conn, &get("/stopped/x")).await;
    assert!(stopped.status == 503 && problem(&stopped), "{stopped:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(head_value(&stopped.head, "x-request-id").is_some(), "{}", stopped.head);
    // No answer within the upstream timeout (half a second here): 504.
    let started = Instant::now();
    let hung = ask(&mut conn, &get("/api/hang")).await;
    assert!(hung.status == 504 && problem(&hung), "{hung:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(ask(&mut conn, &get("/api/plain")).await.body, b"hello", "and the connection goes on");
}

async fn a_stopped_endpoint_is_skipped_and_only_what_may_go_again_goes_elsewhere(t: Transport) {
    let (up, seen) = upstream().await;
    let live = format!("http://{up}");
    let gw = Gw { endpoints: vec![stopped(), live], ..Gw::new(t, &up) }.serve().await;
    let mut conn = connect(&gw).await;
    // The stopped endpoint comes first in turn and refuses: a POST does not go on to the
    // next (its body is read once)...
    let post = "POST /api/echo HTTP/1.1\r\nhost: gw.test\r\ncontent-length: 2\r\n\r\nhi";
    assert_eq!(ask(&mut conn, post).await.status, 503);
    // ...and from then on the endpoint is skipped: everything goes to the live one.
    for _ in 0..3 {
        assert_eq!(ask(&mut conn, &get("/api/plain")).await.body, b"hello");
    }
    let echoed = ask(&mut conn, post).await;
    assert_eq!((echoed.status, echoed.body.as_slice()), (201, &b"hi"[..]));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.requests.len(), 4);
    assert_eq!(seen.connections, 1);
}
