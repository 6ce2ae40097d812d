//! The gateway over real sockets: `veche serve gateway` in front of a real users service
//! (keys, tokens) and small upstreams in this test process that count, stall or vanish.

use crate::common::served::*;
use crate::common::*;
use axum::Router;
use axum::routing::any;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// An upstream in this process: counts requests, remembers the last Authorization header,
/// and sleeps `delay` before answering.
#[derive(Clone, Default)]
struct Probe {
    hits: Arc<AtomicUsize>,
    last_auth: Arc<std::sync::Mutex<Option<String>>>,
}

async fn upstream(delay: Duration) -> (String, Probe) {
    let probe = Probe::default();
    let p = probe.clone();
    let app = Router::new().fallback(any(move |req: axum::extract::Request| {
        let p = p.clone();
        async move {
            p.hits.fetch_add(1, Ordering::SeqCst);
            *p.last_auth.lock().unwrap() = req.headers().get("authorization").map(|v| v.to_str().unwrap().to_owned());
            let forwarded = req.headers().get("x-forwarded-for").map(|v| v.to_str().unwrap().to_owned());
            let request_id = req.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
            let body = axum::body::to_bytes(req.into_body(), usize::MAX).await.map(|b| b.len()).unwrap_or(0);
            tokio::time::sleep(delay).await;
            axum::Json(json!({"ok": true, "body_bytes": body, "forwarded_for": forwarded, "request_id": request_id}))
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), probe)
}

/// An address where nothing listens any more: a stopped upstream.
fn stopped_upstream() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

struct Stack {
    users: Served,
    gateway: Served,
    counted: Probe,
    /// The gateway's metrics listener (`VECHE_METRICS_LISTEN`), apart from its public one.
    metrics: String,
    _routes: tempfile::NamedTempFile,
}

/// Client secrets at the users service of the gateway and of an organizations service
/// (to follow ended sessions).
const GATEWAY_SECRET: &str = "a-test-secret-of-the-gateway";
const ORGANIZATIONS_SECRET: &str = "a-test-secret-of-organizations";

async fn stack(extra_env: &[(&str, String)]) -> Stack {
    let clients = format!("gateway={GATEWAY_SECRET},organizations={ORGANIZATIONS_SECRET}");
    let users = Served::start("users", &[("VECHE_SERVICE_CLIENTS", clients)]);
    // The users service is its own issuer when alone.
    let issuer = users.base.clone();
    let (counted_url, counted) = upstream(Duration::ZERO).await;
    let (slow_url, _) = upstream(Duration::from_secs(5)).await;
    let table = json!({
        "upstreams": {
            "users": [users.base],
            "counted": [counted_url],
            "slow": [slow_url],
            "stopped": [stopped_upstream()],
        },
        "routes": [
            {"prefix": "/api/v1/auth", "upstream": "users", "auth": "optional"},
            {"prefix": "/api/v1/users", "upstream": "users", "auth": "required"},
            {"prefix": "/.well-known", "upstream": "users", "auth": "none"},
            {"prefix": "/api/v1/counted", "upstream": "counted", "auth": "required"},
            {"prefix": "/api/v1/open", "upstream": "counted", "auth": "optional"},
            {"prefix": "/api/v1/small", "upstream": "counted", "auth": "none", "max_body_bytes": 1024},
            {"prefix": "/api/v1/slow", "upstream": "slow", "auth": "none"},
            {"prefix": "/api/v1/stopped", "upstream": "stopped", "auth": "none"},
        ],
    });
    let routes = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(routes.path(), table.to_string()).unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut env = vec![
        ("VECHE_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}")),
        ("VECHE_GATEWAY_ROUTES", routes.path().display().to_string()),
        ("VECHE_USERS_URL", users.base.clone()),
        ("VECHE_SERVICE_CLIENT_SECRET", GATEWAY_SECRET.to_owned()),
        ("VECHE_PUBLIC_URL", issuer),
        ("VECHE_UPSTREAM_TIMEOUT", "1".to_owned()),
        ("VECHE_HEADER_TIMEOUT", "2".to_owned()),
        ("VECHE_BODY_LIMIT", (1024 * 1024).to_string()),
        ("VECHE_CORS_ORIGINS", "https://app.example.org".to_owned()),
        ("VECHE_CLIENT_RPS", "0".to_owned()),
        ("VECHE_USER_RPS", "0".to_owned()),
    ];
    for (k, v) in extra_env {
        env.retain(|(key, _)| key != k);
        env.push((k, v.clone()));
    }
    let gateway = Served::start("gateway", &env);
    Stack { users, gateway, counted, metrics: format!("http://127.0.0.1:{metrics_port}/metrics"), _routes: routes }
}

async fn token(s: &Stack, email: &str) -> String {
    token_pair(s, email).await.0
}

/// Registers and logs in through the gateway: (access token, refresh token).
async fn token_pair(s: &Stack, email: &str) -> (String, String) {
    let body = json!({"email": email, "password": PASSWORD, "display_name": "Gate"});
    let r = send(client().post(s.gateway.url("/api/v1/auth/register")).json(&body)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let login = json!({"email": email, "password": PASSWORD});
    let r = send(client().post(s.gateway.url("/api/v1/auth/login")).json(&login)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let field = |name: &str| r.body[name].as_str().unwrap().to_owned();
    (field("access_token"), field("refresh_token"))
}

/// Asks with `call` until the answer is a 401, and returns it; anything but 200 before
/// that, or no 401 within 10 s of `since`, fails the test.
async fn until_refused<F: std::future::Future<Output = Reply>>(
    since: Instant,
    who: &str,
    call: impl Fn() -> F,
) -> Reply {
    loop {
        let r = call().await;
        if r.status == 401 {
            return r;
        }
        assert_eq!(r.status, 200, "{r:?}");
        assert!(since.elapsed() < Duration::from_secs(10), "{who} still takes a logged-out token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Finding 5 across processes: a gateway and a domain service apart from the users service
/// follow its list of ended sessions, and refuse a logged-out token within their polling
/// interval (2 s; 10 s allowed for a busy machine), before any upstream sees the request.
#[tokio::test]
async fn the_gateway_and_services_refuse_tokens_of_ended_sessions() {
    let s = stack(&[]).await;
    let organizations = Served::start(
        "organizations",
        &[
            ("VECHE_USERS_URL", s.users.base.clone()),
            ("VECHE_ISSUER", s.users.base.clone()),
            ("VECHE_SERVICE_CLIENT_SECRET", ORGANIZATIONS_SECRET.to_owned()),
        ],
    );
    let (access, refresh) = token_pair(&s, "leaver@example.org").await;
    let counted = || send(client().get(s.gateway.url("/api/v1/counted/x")).bearer_auth(&access));
    let mine = || send(client().get(organizations.url("/api/v1/users/me/organizations")).bearer_auth(&access));
    assert_eq!(counted().await.status, 200);
    assert_eq!(mine().await.status, 200);
    let r = send(client().post(s.gateway.url("/api/v1/auth/logout")).json(&json!({"refresh_token": refresh}))).await;
    assert_eq!(r.status, 204, "{r:?}");
    let ended = Instant::now();
    let counted_once = || async {
        let hits = s.counted.hits.load(Ordering::SeqCst);
        let r = counted().await;
        if r.status == 401 {
            assert_eq!(s.counted.hits.load(Ordering::SeqCst), hits, "a refused request reached the upstream");
        }
        r
    };
    let refused = until_refused(ended, "the gateway", counted_once).await;
    refused.assert_problem(401);
    assert!(refused.body["detail"].as_str().unwrap().contains("session"), "{refused:?}");
    // The organizations service, called directly, has followed too.
    let refused = until_refused(ended, "organizations", mine).await;
    assert!(refused.body["detail"].as_str().unwrap().contains("session"), "{refused:?}");
    // The users service itself refuses it at once.
    let r = send(client().get(s.users.url("/api/v1/users/me")).bearer_auth(&access)).await;
    r.assert_problem(401);
    // Only services read the list.
    let r = send(client().get(s.users.url("/internal/v1/sessions/revoked")).bearer_auth(&access)).await;
    r.assert_problem(401);
    let (other, _) = token_pair(&s, "stayer@example.org").await;
    let r = send(client().get(s.users.url("/internal/v1/sessions/revoked")).bearer_auth(&other)).await;
    r.assert_problem(403);
}

#[tokio::test]
async fn routes_tokens_and_failures_are_answered_at_the_edge() {
    let s = stack(&[]).await;
    let get = |path: &str| client().get(s.gateway.url(path));

    // Unknown route.
    send(get("/api/v1/nowhere")).await.assert_problem(404);
    send(get("/api/v1/countedx")).await.assert_problem(404);

    // A protected route without a token, or with a forged one: 401 from the gateway.
    let r = send(get("/api/v1/counted/x")).await;
    r.assert_problem(401);
    assert!(r.headers.contains_key("www-authenticate"));
    let access = token(&s, "gate@example.org").await;
    let mut forged: Vec<String> = access.split('.').map(str::to_owned).collect();
    let claims: Value = serde_json::from_slice(&base64_url(&forged[1])).unwrap();
    let mut claims = claims;
    claims["sub"] = json!("00000000-0000-4000-8000-000000000000");
    forged[1] = base64_url_encode(&serde_json::to_vec(&claims).unwrap());
    send(get("/api/v1/counted/x").bearer_auth(forged.join("."))).await.assert_problem(401);
    send(get("/api/v1/open/x").bearer_auth("not.a.token")).await.assert_problem(401);
    assert_eq!(s.counted.hits.load(Ordering::SeqCst), 0, "the upstream never saw a refused request");

    // A valid token passes, and the upstream gets the original token and the client.
    let r = send(get("/api/v1/counted/x").bearer_auth(&access).header("x-request-id", "trace-me-42")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.counted.hits.load(Ordering::SeqCst), 1);
    assert_eq!(s.counted.last_auth.lock().unwrap().as_deref(), Some(format!("Bearer {access}").as_str()));
    assert_eq!(r.body["forwarded_for"], "127.0.0.1");
    assert_eq!(r.body["request_id"], "trace-me-42", "the request id is passed on");
    assert_eq!(r.headers["x-request-id"], "trace-me-42");
    // Without one, the gateway makes one.
    let r = send(get("/api/v1/open/x")).await;
    assert!(r.body["request_id"].as_str().is_some_and(|id| id.len() >= 16), "{r:?}");
    assert_eq!(r.headers["x-request-id"], r.body["request_id"].as_str().unwrap(), "the caller learns the same id");
    // And the real users service answers through it.
    let r = send(get("/api/v1/users/me").bearer_auth(&access)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["email"], "gate@example.org");

    // A stopped upstream: 503 within a second.
    let started = Instant::now();
    send(get("/api/v1/stopped/x")).await.assert_problem(503);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    // A slow upstream: 504 after the upstream timeout (one second here).
    let started = Instant::now();
    send(get("/api/v1/slow/x")).await.assert_problem(504);
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

    // 10 MB to a route that takes 1 KiB: 413, declared or streamed, and never forwarded.
    let hits = s.counted.hits.load(Ordering::SeqCst);
    let big = vec![b'x'; 10 * 1024 * 1024];
    // Declared: the answer comes from the headers alone, before any of the body is sent.
    let mut raw = TcpStream::connect(("127.0.0.1", s.gateway.port())).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!("POST /api/v1/small HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", big.len());
    raw.write_all(head.as_bytes()).unwrap();
    let mut answer = [0u8; 1024];
    let n = raw.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    let chunks =
        futures::stream::iter(big.chunks(64 * 1024).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let r = client().post(s.gateway.url("/api/v1/small")).body(reqwest::Body::wrap_stream(chunks)).send().await;
    // A streamed body is cut off mid-way: a 413, or the connection closed on the sender.
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    assert_eq!(s.counted.hits.load(Ordering::SeqCst), hits, "no oversized body reached the upstream");
    let r = send(client().post(s.gateway.url("/api/v1/small")).body(vec![b'y'; 1000])).await;
    assert_eq!(r.body["body_bytes"], 1000, "a body within the limit arrives whole");

    // CORS for the allowed origin only.
    let preflight = |origin: &str| {
        client()
            .request(reqwest::Method::OPTIONS, s.gateway.url("/api/v1/open/x"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
    };
    let r = send(preflight("https://app.example.org")).await;
    assert_eq!(r.headers["access-control-allow-origin"], "https://app.example.org");
    let r = send(preflight("https://evil.example.com")).await;
    assert!(!r.headers.contains_key("access-control-allow-origin"), "{r:?}");

    // One OpenAPI document, and its interactive docs with their assets from the binary.
    let r = send(get("/openapi.json")).await;
    assert_eq!(r.status, 200);
    assert!(r.body["paths"]["/api/v1/users/me"].is_object(), "users' paths are in the merged document");
    let r = send(get("/docs")).await;
    assert!(r.body.as_str().unwrap().contains("swagger-ui-bundle.js"));
    let bundle = client().get(s.gateway.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 500_000);

    // Metrics by route, upstream and status, on their own listener: the public one has none.
    send(get("/metrics")).await.assert_problem(404);
    let metrics = client().get(&s.metrics).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("gateway_requests_total")
            && l.contains(r#"route="/api/v1/stopped""#)
            && l.contains(r#"status="503""#)),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gateway_request_duration_seconds_bucket")
                && l.contains(r#"route="/api/v1/stopped""#)),
        "the latency histogram is exported: {metrics}"
    );
    drop(s.users);
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_and_recovers() {
    let s = stack(&[("VECHE_CLIENT_RPS", "2".into()), ("VECHE_CLIENT_BURST", "3".into())]).await;
    let get = || client().get(s.gateway.url("/api/v1/open/x"));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(send(get()).await);
    }
    let limited = statuses.iter().find(|r| r.status == 429).expect("a burst over the limit is refused");
    limited.assert_problem(429);
    let wait: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "retry after {wait}");
    // A refusal is held a second before it is sent (the bucket refills meanwhile), so
    // count what got through rather than assume how much.
    let passed = statuses.iter().filter(|r| r.status == 200).count();
    assert_eq!(s.counted.hits.load(Ordering::SeqCst), passed, "refused requests never reach the upstream");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(send(get()).await.status, 200, "the client recovers after Retry-After");
}

#[tokio::test]
async fn a_user_over_their_rate_gets_429() {
    let s = stack(&[("VECHE_USER_RPS", "1".into()), ("VECHE_USER_BURST", "2".into())]).await;
    let access = token(&s, "busy@example.org").await;
    let mut limited = false;
    for _ in 0..5 {
        limited |= send(client().get(s.gateway.url("/api/v1/counted/x")).bearer_auth(&access)).await.status == 429;
    }
    assert!(limited, "a user's burst over the limit is refused");
    // Anonymous callers are not charged to that user.
    assert_eq!(send(client().get(s.gateway.url("/api/v1/open/x"))).await.status, 200);
}

#[tokio::test]
async fn a_client_sending_headers_a_byte_a_second_is_cut_off() {
    let s = stack(&[]).await;
    let mut stream = TcpStream::connect(("127.0.0.1", s.gateway.port())).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let started = Instant::now();
    let request = b"GET /api/v1/open/x HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for byte in request {
        if stream.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                // An answer (408) before the headers were done is a cut-off too.
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "{:?}", &buf[..n]);
                closed = true;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(900));
    }
    assert!(closed, "the slow client was never cut off");
    // The header timeout is two seconds here; allow for a busy machine.
    assert!(started.elapsed() < Duration::from_secs(6), "cut off after {:?}", started.elapsed());
    assert_eq!(s.counted.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn http2_with_prior_knowledge_is_served() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s = runtime.block_on(stack(&[]));
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--http2-prior-knowledge"])
        .arg(s.gateway.url("/healthz"))
        .output()
        .expect("curl is needed for this test");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
    drop(s);
}

fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn base64_url_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
