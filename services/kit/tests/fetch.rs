//! The fetcher against a hostile server on loopback: every refusal is proven by a real
//! HTTP exchange here, except the inner address ranges, which only the unit tests of the
//! address check and a resolver stub touch (no traffic leaves loopback).

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kit::fetch::{AllowList, FetchError, Fetched, Fetcher, Limits, Lookup, Validators};
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

const CALENDAR: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n";
const ETAG: &str = "\"v1\"";

async fn calendar(headers: HeaderMap) -> Response {
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v == ETAG) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([(header::ETAG, ETAG), (header::LAST_MODIFIED, "Sun, 06 Dec 2026 10:00:00 GMT")], CALENDAR).into_response()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

struct Server {
    addr: SocketAddr,
}

impl Server {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let port = addr.port();
        let app = Router::new()
            .route("/calendar.ics", get(calendar))
            .route(
                "/calendar.ics.gz",
                get(|| async { ([(header::CONTENT_ENCODING, "gzip")], gzip(CALENDAR.as_bytes())) }),
            )
            // 50 MiB, declared.
            .route("/big", get(|| async { vec![b'x'; 50 << 20] }))
            // 50 MiB, not declared: a chunked stream of 1 MiB pieces.
            .route(
                "/big-chunked",
                get(|| async {
                    let chunks = futures::stream::iter((0..50).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1 << 20])));
                    Body::from_stream(chunks)
                }),
            )
            // A gzip bomb: some 64 KiB on the wire, 64 MiB unpacked.
            .route(
                "/bomb",
                get(|| async {
                    ([(header::CONTENT_ENCODING, "gzip"), (header::CONTENT_TYPE, "text/calendar")], GZIP_BOMB.clone())
                }),
            )
            .route("/loop", get(|| async { redirect("/loop".into()) }))
            .route(
                "/hop/{n}",
                get(|axum::extract::Path(n): axum::extract::Path<u32>| async move {
                    if n == 0 { redirect("/calendar.ics".into()) } else { redirect(format!("/hop/{}", n - 1)) }
                }),
            )
            .route(
                "/to-127-0-0-2",
                get(move || async move { redirect(format!("http://127.0.0.2:{port}/calendar.ics")) }),
            )
            .route("/to-v6-loopback", get(move || async move { redirect(format!("http://[::1]:{port}/calendar.ics")) }))
            .route(
                "/to-name",
                get(move || async move { redirect(format!("http://loopback.test:{port}/calendar.ics")) }),
            )
            .route("/to-file", get(|| async { redirect("file:///etc/passwd".into()) }))
            // One byte a second, for a minute.
            .route(
                "/drip",
                get(|| async {
                    let ticks = tokio_stream_ticks(Duration::from_secs(1), 60);
                    Body::from_stream(ticks)
                }),
            )
            .route("/gone", get(|| async { StatusCode::GONE }))
            // A private link that redirects: the next host must not learn it.
            .route("/private-s3cr3t/calendar.ics", get(|| async { redirect("/referer".into()) }))
            .route(
                "/referer",
                get(|headers: HeaderMap| async move {
                    headers.get(header::REFERER).map_or("none".to_owned(), |v| v.to_str().unwrap_or("?").to_owned())
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn allow(&self) -> AllowList {
        self.addr.to_string().parse().unwrap()
    }
}

static GZIP_BOMB: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
});

fn tokio_stream_ticks(every: Duration, n: usize) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        tokio::time::sleep(every).await;
        Some((Ok(vec![b'.']), i + 1))
    })
}

fn quick() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(3),
        ..Limits::default()
    }
}

/// Maps test names to loopback, as a hostile DNS server would.
struct Stub;

impl Lookup for Stub {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let found = match host {
            "loopback.test" => vec!["127.0.0.1".parse().unwrap()],
            _ => vec![],
        };
        Box::pin(async move { Ok(found) })
    }
}

fn refused(result: Result<Fetched, FetchError>) -> String {
    match result {
        Err(FetchError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_calendar_is_fetched_and_an_unchanged_one_costs_a_304() {
    let server = Server::start().await;
    let fetcher = Fetcher::new(server.allow(), quick());
    let Fetched::Body(body) = fetcher.get(&server.url("/calendar.ics"), &Validators::default()).await.unwrap() else {
        panic!("expected a body");
    };
    assert_eq!(body.bytes, CALENDAR.as_bytes());
    assert_eq!(body.validators.etag.as_deref(), Some(ETAG));
    assert_eq!(body.validators.last_modified.as_deref(), Some("Sun, 06 Dec 2026 10:00:00 GMT"));
    assert_eq!(fetcher.get(&server.url("/calendar.ics"), &body.validators).await.unwrap(), Fetched::NotModified);

    let Fetched::Body(unzipped) = fetcher.get(&server.url("/calendar.ics.gz"), &Validators::default()).await.unwrap()
    else {
        panic!("expected a body");
    };
    assert_eq!(unzipped.bytes, CALENDAR.as_bytes(), "gzip is unpacked");

    let Fetched::Body(hopped) = fetcher.get(&server.url("/hop/4"), &Validators::default()).await.unwrap() else {
        panic!("five redirects are followed");
    };
    assert!(hopped.url.ends_with("/calendar.ics"));
    assert_eq!(fetcher.get(&server.url("/gone"), &Validators::default()).await, Err(FetchError::Status(410)));
    let Fetched::Body(echo) =
        fetcher.get(&server.url("/private-s3cr3t/calendar.ics"), &Validators::default()).await.unwrap()
    else {
        panic!("expected a body");
    };
    assert_eq!(echo.bytes, b"none", "no Referer carries a private link to where it redirects");
}

#[tokio::test]
async fn large_bodies_and_bombs_stop_at_the_cap() {
    // Made before the clock of any fetch starts: compressing is the test's work, not the server's.
    LazyLock::force(&GZIP_BOMB);
    let server = Server::start().await;
    let fetcher = Fetcher::new(server.allow(), quick());
    for path in ["/big", "/big-chunked", "/bomb"] {
        let result = fetcher.get(&server.url(path), &Validators::default()).await;
        assert_eq!(result, Err(FetchError::TooLarge(10 << 20)), "{path}");
    }
}

#[tokio::test]
async fn redirect_loops_and_redirects_inward_are_refused() {
    let server = Server::start().await;
    let fetcher = Fetcher::with_lookup(server.allow(), quick(), Arc::new(Stub));
    let none = Validators::default();
    assert_eq!(fetcher.get(&server.url("/loop"), &none).await, Err(FetchError::TooManyRedirects(5)));
    assert_eq!(fetcher.get(&server.url("/hop/5"), &none).await, Err(FetchError::TooManyRedirects(5)));
    assert!(refused(fetcher.get(&server.url("/to-127-0-0-2"), &none).await).contains("127.0.0.2 is a loopback"));
    assert!(refused(fetcher.get(&server.url("/to-v6-loopback"), &none).await).contains("::1 is a loopback"));
    let why = refused(fetcher.get(&server.url("/to-name"), &none).await);
    assert!(why.contains("loopback.test resolves to a loopback address"), "{why}");
    let err = fetcher.get(&server.url("/to-file"), &none).await.unwrap_err();
    assert!(matches!(err, FetchError::Url(ref m) if m.contains("only http and https")), "{err:?}");
}

#[tokio::test]
async fn names_and_literals_reaching_loopback_are_refused_outside_the_allow_list() {
    let server = Server::start().await;
    let port = server.addr.port();
    let none = Validators::default();
    let stubbed = Fetcher::with_lookup(AllowList::default(), quick(), Arc::new(Stub));
    let why = refused(stubbed.get(&format!("http://loopback.test:{port}/calendar.ics"), &none).await);
    assert!(why.contains("resolves to a loopback address"), "{why}");
    assert!(refused(stubbed.get(&server.url("/calendar.ics"), &none).await).contains("127.0.0.1 is a loopback"));

    // The system's resolver: `localhost` is loopback wherever this runs.
    let system = Fetcher::new(AllowList::default(), quick());
    let why = refused(system.get(&format!("http://localhost:{port}/calendar.ics"), &none).await);
    assert!(why.contains("localhost resolves to"), "{why}");

    // Allowed by name and port, the same name is fetched.
    let allowed = Fetcher::with_lookup(format!("loopback.test:{port}").parse().unwrap(), quick(), Arc::new(Stub));
    assert!(matches!(
        allowed.get(&format!("http://loopback.test:{port}/calendar.ics"), &none).await,
        Ok(Fetched::Body(_))
    ));
    let why = refused(allowed.get(&format!("http://loopback.test:{}/calendar.ics", port + 1), &none).await);
    assert!(why.contains("only on the ports"), "{why}");
}

#[tokio::test]
async fn a_server_dripping_a_byte_a_second_is_cut_off_by_the_total_timeout() {
    let server = Server::start().await;
    let fetcher = Fetcher::new(server.allow(), quick());
    let started = Instant::now();
    let result = fetcher.get(&server.url("/drip"), &Validators::default()).await;
    assert!(matches!(result, Err(FetchError::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "stopped after {:?}", started.elapsed());
}
