//! The import benchmark (bench/import.sh runs it in release): a 5,000-event calendar served
//! on loopback, imported into a fresh store through the real fetcher, reader, planner and
//! SQLite writes, then synced again unchanged (a 304, and a full body without validators)
//! and with one event in a hundred moved.
//!
//!     import [events]        # 5000 VEVENTs: nine in ten single, one in ten a weekly series of four

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use events::import::sync::Importer;
use events::import::{Window, calendar};
use events::model::source::SourceInput;
use events::store::{SourceStore, SqliteStore};
use kit::fetch::{Fetcher, Limits};
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What the server serves, and whether it sends an ETag (and answers 304 to it).
struct Doc {
    body: Vec<u8>,
    etag: Option<String>,
}

async fn serve(State(doc): State<Arc<Mutex<Doc>>>, headers: HeaderMap) -> Response {
    let doc = doc.lock().unwrap();
    if let Some(etag) = &doc.etag {
        if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
            return StatusCode::NOT_MODIFIED.into_response();
        }
        return ([(header::ETAG, etag.clone())], doc.body.clone()).into_response();
    }
    doc.body.clone().into_response()
}

/// `n` VEVENTs starting tomorrow, spread over 150 days; `moved` of them an hour later.
fn calendar_text(n: usize, moved: usize) -> Vec<u8> {
    let start = jiff::Timestamp::now().as_second() / 86_400 * 86_400 + 86_400;
    let stamp = |t: i64| jiff::Timestamp::from_second(t).unwrap().strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Veche bench//EN\r\n");
    for i in 0..n {
        let shift = if i < moved { 3600 } else { 0 };
        let at = start + (i as i64 * 150 * 86_400 / n as i64) / 900 * 900 + shift;
        let rule = if i % 10 == 0 { "RRULE:FREQ=WEEKLY;COUNT=4\r\n" } else { "" };
        write!(
            out,
            "BEGIN:VEVENT\r\nUID:bench-{i}@example.org\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:{}\r\nDTEND:{}\r\n\
             SUMMARY:Event number {i}\r\nDESCRIPTION:A talk\\, a walk and a concert\\nin one evening.\r\n\
             LOCATION:Hall {}\\, Kazan\r\nCATEGORIES:Music,Talks\r\n{rule}END:VEVENT\r\n",
            stamp(at),
            stamp(at + 5400),
            i % 40
        )
        .unwrap();
    }
    out.push_str("END:VCALENDAR\r\n");
    out.into_bytes()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(5000);
    let body = calendar_text(n, 0);
    let doc = Arc::new(Mutex::new(Doc { body: body.clone(), etag: Some("\"v1\"".into()) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/cal.ics", axum::routing::get(serve)).with_state(doc.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(dir.path().join("events.db")).await?);
    let sources: Arc<dyn SourceStore> = store.clone();
    let fetcher = Fetcher::new(addr.to_string().parse().map_err(anyhow::Error::msg)?, Limits::default());
    let importer = Importer::new(sources.clone(), fetcher);
    let input: SourceInput = serde_json::from_value(serde_json::json!({
        "kind": "ics", "url": format!("http://{addr}/cal.ics"), "defaults": {"city": "Kazan"}
    }))?;
    let source = sources
        .create_source(Uuid::new_v4(), input.validate().map_err(|e| anyhow::anyhow!("{e:?}"))?, Uuid::new_v4(), 1, 0)
        .await?;

    // Reading alone, for the share of a sync it takes.
    let window = Window::starting(jiff::Timestamp::now());
    let text = events::import::decode(&body, None);
    let started = Instant::now();
    let parsed = calendar::parse(&text, "UTC", window)?;
    let read = started.elapsed();
    let items = parsed.items.len();

    let mut rows: Vec<(&str, Duration, String)> = Vec::new();
    let mut timed = async |label: &'static str| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let synced = importer.sync(source.id, Duration::ZERO).await?;
        let took = started.elapsed();
        anyhow::ensure!(synced.status.last_error.is_none(), "{label}: {:?}", synced.status.last_error);
        let c = synced.status.counts;
        let what = format!(
            "created {} updated {} cancelled {} unchanged {}{}",
            c.created,
            c.updated,
            c.cancelled,
            c.unchanged,
            if synced.status.not_modified { " (304)" } else { "" }
        );
        rows.push((label, took, what));
        Ok(took)
    };
    let first = timed("first import").await?;
    timed("re-sync, unchanged: one 304").await?;
    doc.lock().unwrap().etag = None;
    timed("re-sync, unchanged body, no validators").await?;
    doc.lock().unwrap().body = calendar_text(n, n / 100);
    timed("re-sync, 1 in 100 events moved").await?;

    println!(
        "import benchmark: {n} VEVENTs ({} KiB), {items} events in a {}-day window; {} cores",
        body.len() / 1024,
        events::import::HORIZON_DAYS,
        std::thread::available_parallelism()?
    );
    println!("{:<42} {:>10} {:>12}  counts", "step", "ms", "÷ import");
    println!(
        "{:<42} {:>10.1} {:>12.3}  {items} items",
        "read and expand the calendar (no I/O)",
        ms(read),
        read.as_secs_f64() / first.as_secs_f64()
    );
    for (label, took, what) in &rows {
        println!("{label:<42} {:>10.1} {:>12.3}  {what}", ms(*took), took.as_secs_f64() / first.as_secs_f64());
    }
    println!("import rate: {:.0} events/s", items as f64 / first.as_secs_f64());
    Ok(())
}
