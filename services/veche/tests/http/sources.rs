//! Outside sources end to end: a feed server on loopback serves real-world calendars and
//! feeds (and hostile answers) to a real `veche up` that may fetch from it only because
//! VECHE_FETCH_ALLOW_HOSTS names it. Imported events are compared with what Python's
//! icalendar and recurring_ical_events expand from the same file over the same window.

use crate::common::orgs::{call, create_org, delete_as, patch_as, post_as};
use crate::common::*;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/tests/feeds");

/// A document the feed server serves, and how often it answered for it.
#[derive(Default)]
struct Served {
    docs: HashMap<String, (Vec<u8>, &'static str, String)>,
    requests: HashMap<String, u32>,
    not_modified: HashMap<String, u32>,
}

#[derive(Clone)]
struct FeedServer {
    port: u16,
    state: Arc<Mutex<Served>>,
}

async fn serve(State(state): State<Arc<Mutex<Served>>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let mut s = state.lock().unwrap();
    *s.requests.entry(name.clone()).or_default() += 1;
    let Some((bytes, content_type, etag)) = s.docs.get(&name).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        *s.not_modified.entry(name).or_default() += 1;
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([(header::CONTENT_TYPE, content_type.to_owned()), (header::ETAG, etag)], bytes).into_response()
}

impl FeedServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(Served::default()));
        let app = Router::new()
            .route("/feeds/{name}", axum::routing::get(serve))
            .route(
                "/inward",
                axum::routing::get(move || async move {
                    (StatusCode::FOUND, [(header::LOCATION, format!("http://127.0.0.2:{port}/feeds/google.ics"))])
                }),
            )
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { port, state }
    }

    fn put(&self, name: &str, bytes: Vec<u8>, content_type: &'static str) {
        let etag = format!(
            "\"{:x}\"",
            bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
        );
        self.state.lock().unwrap().docs.insert(name.into(), (bytes, content_type, etag));
    }

    fn put_fixture(&self, file: &str) {
        let content_type = if file.ends_with(".ics") { "text/calendar" } else { "application/rss+xml" };
        self.put(file, std::fs::read(format!("{FEEDS}/{file}")).unwrap(), content_type);
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/feeds/{name}", self.port)
    }

    fn not_modified(&self, name: &str) -> u32 {
        self.state.lock().unwrap().not_modified.get(name).copied().unwrap_or(0)
    }

    fn requests(&self, name: &str) -> u32 {
        self.state.lock().unwrap().requests.get(name).copied().unwrap_or(0)
    }
}

async fn start() -> (FeedServer, Veche) {
    let feeds = FeedServer::start().await;
    let allow = format!("127.0.0.1:{}", feeds.port);
    let v = Veche::start_with(&[("VECHE_FETCH_ALLOW_HOSTS", &allow)]);
    (feeds, v)
}

/// Python's expansion of a fixture: external id → (start, end, summary, cancelled).
fn expanded(file: &str, from: &str, to: &str) -> BTreeMap<String, (String, String, String, bool)> {
    let out = std::process::Command::new(python())
        .arg(format!("{FEEDS}/expand.py"))
        .arg(format!("{FEEDS}/{file}"))
        .args([from, to])
        .output()
        .unwrap();
    assert!(out.status.success(), "expand.py {file}: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| {
            let uid = r["uid"].as_str().unwrap();
            let id = r["recurrence_id"].as_str().map_or(uid.to_owned(), |rid| format!("{uid}/{rid}"));
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (id, (s("start"), s("end"), s("summary"), r["status"] == "CANCELLED"))
        })
        .collect()
}

/// Every event of an organization (its members' view), by id.
async fn org_events(v: &Veche, token: &str, org: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/api/v1/events?organization_id={org}&status=published,cancelled,draft&from=2000-01-01T00:00:00Z&limit=200"
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = get_auth(v, &path, token).await;
        assert_eq!(r.status, 200, "{r:?}");
        all.extend(r.body["items"].as_array().unwrap().iter().cloned());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

fn imported_by(events: &[Value], source: &str) -> BTreeMap<String, Value> {
    events
        .iter()
        .filter(|e| e["source"]["source_id"] == source)
        .map(|e| (e["source"]["external_id"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

async fn add_source(v: &Veche, token: &str, org: &str, body: Value) -> Value {
    let r = post_as(v, token, &format!("/api/v1/organizations/{org}/sources"), body).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body
}

async fn sync(v: &Veche, token: &str, org: &str, source: &Value) -> Value {
    let path = format!("/api/v1/organizations/{org}/sources/{}/sync", source["id"].as_str().unwrap());
    let r = post_as(v, token, &path, json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

#[tokio::test]
async fn calendars_from_every_product_are_imported_as_an_independent_expander_reads_them() {
    let (feeds, v) = start().await;
    let (owner, _) = signed_up(&v, "owner@example.org").await;
    let org = create_org(&v, &owner, json!({"name": "Calendar importers"})).await;
    let org = org["id"].as_str().unwrap().to_owned();

    for file in ["google.ics", "outlook.ics", "outlook-1252.ics", "apple.ics", "thunderbird.ics", "nextcloud.ics"] {
        feeds.put_fixture(file);
        let source = add_source(
            &v,
            &owner,
            &org,
            json!({"kind": "ics", "url": feeds.url(file), "defaults": {"city": "Moscow"}}),
        )
        .await;
        let synced = sync(&v, &owner, &org, &source).await;
        assert_eq!(synced["state"], "ok", "{file}: {synced}");
        let status = &synced["status"];
        let (from, to) = (status["window_from"].as_str().unwrap(), status["window_to"].as_str().unwrap());

        // What Python expands over the same window, less what was cancelled before we
        // ever saw it (nothing to import).
        let want: BTreeMap<_, _> = expanded(file, from, to).into_iter().filter(|(_, w)| !w.3).collect();
        let got = imported_by(&org_events(&v, &owner, &org).await, source["id"].as_str().unwrap());
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{file}");
        // The scheduler may have synced the new source first: then this sync was a 304.
        let c = &status["counts"];
        assert_eq!(
            c["created"].as_u64().unwrap() + c["unchanged"].as_u64().unwrap(),
            want.len() as u64,
            "{file}: {status}"
        );
        for (id, (start, end, summary, _)) in &want {
            let e = &got[id];
            assert_eq!(e["status"], "published", "{file} {id}");
            assert_eq!(e["title"].as_str().unwrap(), summary.trim(), "{file} {id}");
            if start.len() == 10 {
                // All-day: midnight of that day where the event is (UTC by default here).
                assert_eq!(e["start"], format!("{start}T00:00:00Z"), "{file} {id}");
                assert_eq!(e["end"], format!("{end}T00:00:00Z"), "{file} {id}");
            } else {
                assert_eq!(e["start"], *start, "{file} {id}");
                if end != start {
                    assert_eq!(e["end"], *end, "{file} {id}");
                }
            }
        }
    }

    // Feeds: items with the event module's times; the rest is named, not imported.
    for (file, kind, created) in [("rss.xml", "rss", 5), ("atom.xml", "atom", 4)] {
        feeds.put_fixture(file);
        let source =
            add_source(&v, &owner, &org, json!({"kind": kind, "url": feeds.url(file), "defaults": {"tags": ["club"]}}))
                .await;
        let synced = sync(&v, &owner, &org, &source).await;
        let c = &synced["status"]["counts"];
        assert_eq!(c["created"].as_u64().unwrap() + c["unchanged"].as_u64().unwrap(), created, "{file}: {synced}");
        assert_eq!(c["skipped"], 1, "{file}: {synced}");
        assert!(synced["status"]["skipped_items"][0]["reason"].as_str().unwrap().contains("no event time"));
    }

    // Imported events are published and found like native ones, by anyone.
    let r = send(client().get(v.url("/api/v1/events?q=Quayside"))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let found = &r.body["items"][0];
    assert_eq!(found["title"], "Jazz evening: The Quayside Quartet");
    assert_eq!(found["format"], "offline");
    assert_eq!(found["tags"], json!(["club", "concerts", "music"]));

    // The list, as its admins see it.
    let r = get_auth(&v, &format!("/api/v1/organizations/{org}/sources"), &owner).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 8, "{r:?}");
    assert!(r.body["items"].as_array().unwrap().iter().all(|s| s["state"] == "ok"));
}

#[tokio::test]
async fn hostile_sources_fail_alone_with_a_readable_error() {
    let (feeds, v) = start().await;
    let (owner, _) = signed_up(&v, "owner@example.org").await;
    let org = create_org(&v, &owner, json!({"name": "Careful importers"})).await;
    let org = org["id"].as_str().unwrap().to_owned();
    let sources = format!("/api/v1/organizations/{org}/sources");

    // Refused when written: another scheme, credentials, an inner address literal.
    for url in
        ["ftp://127.0.0.1/x.ics", "http://127.0.0.2:8080/x.ics", "http://[::1]/x.ics", "http://u:p@example.org/x.ics"]
    {
        let r = post_as(&v, &owner, &sources, json!({"kind": "ics", "url": url})).await;
        r.assert_problem(422);
        assert_eq!(r.body["errors"][0]["field"], "url", "{url}: {r:?}");
    }
    // Refused when fetched: a redirect to another loopback address, a name resolving to
    // loopback (localhost), a body that is not a calendar, a missing file.
    feeds.put("html.ics", b"<html><body>Sign in</body></html>".to_vec(), "text/html");
    let cases = [
        (format!("http://127.0.0.1:{}/inward", feeds.port), "127.0.0.2 is a loopback address"),
        (format!("http://localhost:{}/feeds/google.ics", feeds.port), "localhost resolves to"),
        (feeds.url("html.ics"), "not an iCalendar file"),
        (feeds.url("missing.ics"), "the server answered 404"),
    ];
    for (url, error) in &cases {
        let source = add_source(&v, &owner, &org, json!({"kind": "ics", "url": url})).await;
        let synced = sync(&v, &owner, &org, &source).await;
        assert_eq!(synced["state"], "failed", "{url}: {synced}");
        let last = synced["status"]["last_error"].as_str().unwrap();
        assert!(last.contains(error), "{url}: {last}");
        assert!(synced["status"]["next_run_at"].is_string());
    }
    // A good source beside them still syncs, and the service answers as ever.
    feeds.put_fixture("google.ics");
    let good = add_source(
        &v,
        &owner,
        &org,
        json!({"kind": "ics", "url": feeds.url("google.ics"), "defaults": {"city": "Moscow"}}),
    )
    .await;
    assert_eq!(sync(&v, &owner, &org, &good).await["state"], "ok");
    assert_eq!(send(client().get(v.url("/healthz"))).await.status, 200);
    // A broken calendar gives what it can and names what it cannot.
    feeds.put_fixture("malformed.ics");
    let broken = add_source(
        &v,
        &owner,
        &org,
        json!({"kind": "ics", "url": feeds.url("malformed.ics"), "defaults": {"city": "Kazan"}}),
    )
    .await;
    let synced = sync(&v, &owner, &org, &broken).await;
    assert_eq!(synced["state"], "ok", "{synced}");
    let skipped: Vec<&str> = synced["status"]["skipped_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["external_id"].as_str().unwrap())
        .collect();
    assert!(skipped.contains(&"no-dtstart@example.org") && skipped.contains(&"bad-rrule@example.org"), "{synced}");
    let imported = imported_by(&org_events(&v, &owner, &org).await, broken["id"].as_str().unwrap());
    assert!(imported.keys().any(|k| k.starts_with("fine-1@example.org/")), "{imported:?}");

    // Sources are their admins' business alone: they may hold a private calendar's secret.
    let (stranger, _) = signed_up(&v, "stranger@example.org").await;
    get_auth(&v, &sources, &stranger).await.assert_problem(403);
    call(&v, "GET", &sources, None, None).await.assert_problem(401);
    let good_path = format!("{sources}/{}", good["id"].as_str().unwrap());
    post_as(&v, &stranger, &format!("{good_path}/sync"), json!({})).await.assert_problem(403);
    let other = create_org(&v, &stranger, json!({"name": "Elsewhere"})).await;
    let elsewhere =
        format!("/api/v1/organizations/{}/sources/{}", other["id"].as_str().unwrap(), good["id"].as_str().unwrap());
    get_auth(&v, &elsewhere, &stranger).await.assert_problem(404);
    // Bad input is named field by field.
    let r = post_as(&v, &owner, &sources, json!({"kind": "json", "url": "https://x.example/", "interval_minutes": 1}))
        .await;
    r.assert_problem(422);
    let fields: Vec<&str> = r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["interval_minutes", "mapping"]);
    post_as(&v, &owner, &sources, json!({"kind": "ical", "url": "https://x.example/"})).await.assert_problem(422);
}

/// A small calendar around today: a weekly series and three single events, in version 1;
/// version 2 moves one occurrence, cancels one event, drops another and adds one.
fn calendar(version: u32) -> Vec<u8> {
    let day = |n: i64| {
        let d = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC).date() + jiff::Span::new().days(n);
        d.strftime("%Y%m%d").to_string()
    };
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Veche tests//EN\r\n");
    let mut event =
        |body: String| out.push_str(&format!("BEGIN:VEVENT\r\nDTSTAMP:20261201T000000Z\r\n{body}END:VEVENT\r\n"));
    event(format!(
        "UID:weekly\r\nSUMMARY:Weekly practice\r\nLOCATION:Gym\\, Kazan\r\nDTSTART:{}T100000Z\r\nDTEND:{}T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n",
        day(7),
        day(7)
    ));
    if version >= 2 {
        event(format!(
            "UID:weekly\r\nRECURRENCE-ID:{}T100000Z\r\nSUMMARY:Weekly practice (moved)\r\nLOCATION:Gym\\, Kazan\r\nDTSTART:{}T150000Z\r\nDTEND:{}T160000Z\r\nSEQUENCE:1\r\n",
            day(14),
            day(15),
            day(15)
        ));
    }
    event(format!(
        "UID:a\r\nSUMMARY:Open day\r\nLOCATION:Hall\\, Kazan\r\nDTSTART:{}T100000Z\r\nDTEND:{}T120000Z\r\n",
        day(10),
        day(10)
    ));
    let cancelled = if version >= 2 { "STATUS:CANCELLED\r\nSEQUENCE:1\r\n" } else { "" };
    event(format!(
        "UID:b\r\nSUMMARY:Lecture\r\nLOCATION:Hall\\, Kazan\r\nDTSTART:{}T100000Z\r\nDTEND:{}T120000Z\r\n{cancelled}",
        day(11),
        day(11)
    ));
    if version == 1 {
        event(format!(
            "UID:c\r\nSUMMARY:Concert\r\nLOCATION:Hall\\, Kazan\r\nDTSTART:{}T180000Z\r\nDTEND:{}T200000Z\r\n",
            day(12),
            day(12)
        ));
    }
    if version >= 2 {
        event(format!(
            "UID:d\r\nSUMMARY:New workshop\r\nLOCATION:Lab\\, Kazan\r\nDTSTART:{}T100000Z\r\nDTEND:{}T130000Z\r\n",
            day(13),
            day(13)
        ));
    }
    if version >= 3 {
        event(format!(
            "UID:e\r\nSUMMARY:One more\r\nLOCATION:Lab\\, Kazan\r\nDTSTART:{}T100000Z\r\nDTEND:{}T130000Z\r\n",
            day(16),
            day(16)
        ));
    }
    out.push_str("END:VCALENDAR\r\n");
    out.into_bytes()
}

fn counts(source: &Value) -> [u64; 5] {
    let c = &source["status"]["counts"];
    ["created", "updated", "cancelled", "unchanged", "skipped"].map(|k| c[k].as_u64().unwrap())
}

#[tokio::test]
async fn a_resync_follows_the_calendar_and_an_unchanged_one_costs_a_304() {
    let (feeds, v) = start().await;
    let (owner, _) = signed_up(&v, "owner@example.org").await;
    let org = create_org(&v, &owner, json!({"name": "Resync club"})).await;
    let org = org["id"].as_str().unwrap().to_owned();
    feeds.put("club.ics", calendar(1), "text/calendar; charset=utf-8");
    let source =
        add_source(&v, &owner, &org, json!({"kind": "ics", "url": feeds.url("club.ics"), "interval_minutes": 5})).await;
    let source_id = source["id"].as_str().unwrap().to_owned();

    // The scheduler syncs a new source at once, without being asked.
    let path = format!("/api/v1/organizations/{org}/sources/{source_id}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let r = get_auth(&v, &path, &owner).await;
        if r.body["state"] == "ok" {
            break r.body;
        }
        assert!(Instant::now() < deadline, "never synced: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(counts(&first), [7, 0, 0, 0, 0], "{first}");
    let next: jiff::Timestamp = first["status"]["next_run_at"].as_str().unwrap().parse().unwrap();
    let last: jiff::Timestamp = first["status"]["last_run_at"].as_str().unwrap().parse().unwrap();
    let wait = next.as_second() - last.as_second();
    assert!((300..=330).contains(&wait), "the interval, spread by up to a tenth: {wait} s");

    // An unchanged calendar: one conditional request answered 304, nothing touched.
    let before = feeds.not_modified("club.ics");
    let unchanged = sync(&v, &owner, &org, &source).await;
    assert_eq!(feeds.not_modified("club.ics"), before + 1);
    assert_eq!(unchanged["status"]["not_modified"], true);
    assert_eq!(counts(&unchanged), [0, 0, 0, 7, 0], "{unchanged}");

    // The organization owns what the source does not say; the source owns the rest.
    let events = imported_by(&org_events(&v, &owner, &org).await, &source_id);
    let open_day = events["a"]["id"].as_str().unwrap().to_owned();
    let r = patch_as(&v, &owner, &format!("/api/v1/events/{open_day}"), json!({"capacity": 40})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = patch_as(&v, &owner, &format!("/api/v1/events/{open_day}"), json!({"title": "Mine now"})).await;
    r.assert_problem(409);
    assert!(r.body["detail"].as_str().unwrap().contains("title"), "{r:?}");
    let concert = events["c"]["id"].as_str().unwrap().to_owned();

    // Version 2: one occurrence moved, one event cancelled, one gone, one new.
    feeds.put("club.ics", calendar(2), "text/calendar");
    let second = sync(&v, &owner, &org, &source).await;
    assert_eq!(
        counts(&second),
        [1, 1, 2, 4, 0],
        "created d; moved one; cancelled b and gone c; the rest as it was: {second}"
    );
    assert_eq!(second["status"]["not_modified"], false);
    let events = imported_by(&org_events(&v, &owner, &org).await, &source_id);
    assert_eq!(events.len(), 8);
    let moved = events.iter().find(|(_, e)| e["title"] == "Weekly practice (moved)").map(|(_, e)| e).unwrap();
    assert!(moved["start"].as_str().unwrap().ends_with("T15:00:00Z"), "{moved}");
    assert_eq!(events["b"]["status"], "cancelled");
    assert_eq!(events["c"]["status"], "cancelled", "gone from the calendar before it happened");
    assert_eq!(events["a"]["capacity"], 40, "the organization's change stays");

    // Detached, an event is the organization's own; deleted, it is not imported again.
    let r = post_as(&v, &owner, &format!("/api/v1/events/{open_day}/detach"), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["source"]["detached"], true);
    let r = patch_as(&v, &owner, &format!("/api/v1/events/{open_day}"), json!({"title": "Mine now"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(delete_as(&v, &owner, &format!("/api/v1/events/{concert}")).await.status, 204);
    let native = events["d"]["id"].as_str().unwrap();
    post_as(&v, &owner, &format!("/api/v1/events/{native}/detach"), json!({})).await;

    feeds.put("club.ics", calendar(3), "text/calendar");
    let third = sync(&v, &owner, &org, &source).await;
    assert_eq!(counts(&third)[0], 1, "only e is new: {third}");
    let events = imported_by(&org_events(&v, &owner, &org).await, &source_id);
    assert_eq!(events["a"]["title"], "Mine now");
    assert!(!events.contains_key("c"), "the deleted event stays deleted");

    // The organization's report tells imported events from its own, and counts failures.
    let r = post_as(&v, &owner, "/api/v1/events", json!({"title": "Our own", "start": "2030-01-01T10:00:00Z",
        "end": "2030-01-01T11:00:00Z", "time_zone": "UTC", "format": "online", "online_url": "https://meet.example.org/x",
        "organization_id": org})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let own = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(post_as(&v, &owner, &format!("/api/v1/events/{own}/publish"), json!({})).await.status, 200);
    feeds.state.lock().unwrap().docs.remove("club.ics");
    assert_eq!(sync(&v, &owner, &org, &source).await["state"], "failed");
    let report = format!("/api/v1/analytics/organizations/{org}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get_auth(&v, &report, &owner).await;
        assert_eq!(r.status, 200, "{r:?}");
        let totals =
            ["native_events", "imported_events", "source_failures"].map(|m| r.body["totals"][m].as_i64().unwrap());
        // Published on import: a, b, c and the weekly series (7), then d and e.
        if totals == [1, 9, 1] {
            break;
        }
        assert!(Instant::now() < deadline, "the report never showed the imports: {totals:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Deleting the source leaves its events, as the organization's own.
    assert_eq!(delete_as(&v, &owner, &path).await.status, 204);
    let events = imported_by(&org_events(&v, &owner, &org).await, &source_id);
    assert!(events.values().all(|e| e["source"]["detached"] == true), "{events:?}");
    get_auth(&v, &path, &owner).await.assert_problem(404);
    assert!(feeds.requests("club.ics") >= 4);
}
