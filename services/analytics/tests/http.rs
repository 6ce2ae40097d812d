//! The analytics service over real HTTP on loopback, on a real SQLite file, with tokens
//! signed by the users service's real key ring.

use analytics::AnalyticsConfig;
use clap::Parser;
use kit::auth::{Claims, KeySource, TokenUse};
use kit::config::CommonArgs;
use kit::platform::Context;
use serde_json::{Value, json};
use std::sync::Arc;
use users::keys::{KeyRing, RotationPolicy};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

struct Server {
    base: String,
    keys: KeyRing,
    issuer: String,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        // The stories below happen on fixed dates: keep them past the default 90 days.
        Self::start_with(AnalyticsConfig { retention_days: 3650, ..AnalyticsConfig::defaults() }).await
    }

    async fn start_with(config: AnalyticsConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap().to_owned();
        let common = Args::parse_from(["test", "--data-dir", &data]).common;
        let now = kit::now_unix();
        let policy = RotationPolicy { rotate_after: 86400, publish_ahead: 0, token_lifetime: 900 };
        let keys = KeyRing::load(dir.path().join("keys"), policy, true, now).unwrap();
        let jwks = keys.clone();
        let keys_source = KeySource::Provider(Arc::new(move || jwks.jwks()));
        let ctx = Context { common: common.clone(), keys: keys_source, revoked: Default::default() };
        let service = analytics::build(config, &ctx).await.unwrap();
        let router = kit::server::app(vec![service], &common.http);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let http = common.http.clone();
        tokio::spawn(async move { kit::server::serve(listener, router, std::future::pending(), &http).await });
        let db = ctx.db_path(analytics::SERVICE);
        Server { base, keys, issuer: common.platform.issuer(), db, _dir: dir }
    }

    fn token(&self, sub: String, aud: &str, token_use: TokenUse, roles: &[&str]) -> String {
        let now = kit::now_unix() as u64;
        let claims = Claims {
            iss: self.issuer.clone(),
            sub,
            aud: aud.to_owned(),
            exp: now + 600,
            nbf: now,
            iat: now,
            jti: Uuid::new_v4().to_string(),
            token_use,
            sid: None,
            email: None,
            email_verified: None,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        };
        self.keys.sign(&claims, now as i64).unwrap()
    }

    fn service(&self, name: &str) -> String {
        self.token(format!("service:{name}"), analytics::SERVICE, TokenUse::Service, &[])
    }

    fn user(&self) -> String {
        self.token(Uuid::new_v4().to_string(), "veche", TokenUse::Access, &[])
    }

    fn admin(&self) -> String {
        self.token(Uuid::new_v4().to_string(), "veche", TokenUse::Access, &["admin"])
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Raw facts in the file, read behind the service's back.
    fn stored_facts(&self) -> i64 {
        let c = rusqlite::Connection::open(&self.db).unwrap();
        c.query_row("SELECT count(*) FROM facts", [], |r| r.get(0)).unwrap()
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    text: String,
    body: Value,
}

impl Reply {
    fn assert_problem(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["type"].as_str().unwrap().starts_with("https://veche.dev/problems/"), "{self:?}");
        self
    }
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, content_type, text, body }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn deliver(s: &Server, token: Option<&str>, body: &Value) -> Reply {
    let mut req = client().post(s.url("/internal/v1/analytics/facts")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(req).await
}

async fn report(s: &Server, token: &str, path: &str) -> Reply {
    send(client().get(s.url(path)).bearer_auth(token)).await
}

fn fact(kind: &str, at: &str, payload: Value) -> Value {
    json!({ "id": Uuid::new_v4(), "kind": kind, "occurred_at": at, "payload": payload })
}

/// A known week of activity around one event of one organization (Monday 2026-11-16 to
/// Monday 2026-11-23), whose reports are computed by hand below.
struct Story {
    event: Uuid,
    organization: Uuid,
    facts: Value,
}

fn story() -> Story {
    let (e, o, u1, u2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let view = |at, visitor: &str| {
        fact("event.viewed", at, json!({"event_id": e, "organization_id": o, "visitor_id": visitor}))
    };
    let reg = |kind, at, user| fact(kind, at, json!({"event_id": e, "organization_id": o, "user_id": user}));
    let facts = json!([
        fact("organization.created", "2026-11-16T08:00:00Z", json!({"organization_id": o, "slug": "x"})),
        fact("event.published", "2026-11-16T08:30:00Z", json!({"event_id": e, "user_id": null})),
        fact("user.signed_up", "2026-11-16T09:00:00Z", json!({"user_id": u1})),
        view("2026-11-16T09:10:00Z", "a"),
        reg("registration.made", "2026-11-16T09:30:00Z", u1),
        view("2026-11-16T09:50:00Z", "b"),
        view("2026-11-16T10:05:00Z", "a"),
        fact("member.joined", "2026-11-17T00:00:00Z", json!({"organization_id": o, "user_id": u2, "role": "member"})),
        view("2026-11-18T12:00:00Z", "a"),
        reg("registration.waitlisted", "2026-11-18T12:30:00Z", u2),
        reg("registration.cancelled", "2026-11-18T13:00:00Z", u1),
        reg("registration.promoted", "2026-11-18T13:00:00Z", u2),
        view("2026-11-23T08:00:00Z", "c"),
        reg("registration.checked_in", "2026-11-23T08:30:00Z", u2),
    ]);
    Story { event: e, organization: o, facts }
}

/// `(start, [values in the scope's column order])` of each bucket.
fn series(body: &Value, metrics: &[&str]) -> Vec<(String, Vec<i64>)> {
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let values = metrics.iter().map(|m| b["values"][*m].as_i64().unwrap()).collect();
            (b["start"].as_str().unwrap().to_owned(), values)
        })
        .collect()
}

fn totals(body: &Value, metrics: &[&str]) -> Vec<i64> {
    metrics.iter().map(|m| body["totals"][*m].as_i64().unwrap()).collect()
}

const EVENT: [&str; 5] = ["views", "unique_visitors", "registrations", "cancellations", "check_ins"];

#[tokio::test]
async fn a_redelivered_batch_counts_once() {
    let s = Server::start().await;
    let story = story();
    let batch = json!({ "facts": story.facts });
    let path = format!(
        "/api/v1/analytics/events/{}?from=2026-11-16T00:00:00Z&to=2026-11-24T00:00:00Z&bucket=week",
        story.event
    );

    let first = deliver(&s, Some(&s.service("events")), &batch).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body, json!({"accepted": 14, "duplicates": 0, "expired": 0}));
    let before = report(&s, &s.admin(), &path).await;
    assert_eq!(before.status, 200, "{before:?}");

    let second = deliver(&s, Some(&s.service("organizations")), &batch).await;
    assert_eq!(second.body, json!({"accepted": 0, "duplicates": 14, "expired": 0}));
    let after = report(&s, &s.admin(), &path).await;
    assert_eq!(after.body, before.body);
    assert_eq!(totals(&after.body, &EVENT), [5, 3, 2, 1, 1]);
    assert_eq!(s.stored_facts(), 14);
}

#[tokio::test]
async fn a_batch_with_one_bad_fact_is_refused_whole() {
    let s = Server::start().await;
    let token = s.service("users");
    let good = fact("user.signed_up", "2026-11-16T09:00:00Z", json!({"user_id": Uuid::new_v4()}));
    let future = kit::rfc3339(kit::now_unix() + 3600);
    let cases = [
        json!({"facts": [good, fact("user.signed_up", &future, json!({"user_id": Uuid::new_v4()}))]}),
        json!({"facts": [good, fact("registration.made", "2026-11-16T09:00:00Z", json!({"user_id": Uuid::new_v4()}))]}),
        json!({"facts": [good, fact("event.liked", "2026-11-16T09:00:00Z", json!({}))]}),
        json!({"facts": [good, fact("user.signed_up", "yesterday", json!({"user_id": Uuid::new_v4()}))]}),
        json!({"facts": [good, fact("user.signed_up", "2026-11-16T09:00:00Z", json!({"user_id": "not-a-uuid"}))]}),
        json!({"facts": [good, fact("event.viewed", "2026-11-16T09:00:00Z",
            json!({"event_id": Uuid::new_v4(), "visitor_id": "<script>"}))]}),
        json!({"facts": [good, {"id": "42", "kind": "user.signed_up", "occurred_at": "2026-11-16T09:00:00Z"}]}),
        json!({"facts": [good], "admin": true}),
        json!({"facts": (0..1001).map(|_| good.clone()).collect::<Vec<_>>()}),
    ];
    for (i, body) in cases.iter().enumerate() {
        let r = deliver(&s, Some(&token), body).await;
        r.assert_problem(422);
        assert!(!r.body["errors"].as_array().unwrap().is_empty(), "case {i}: {r:?}");
    }
    let r = deliver(&s, Some(&token), &cases[0]).await;
    assert_eq!(r.body["errors"][0]["field"], "facts[1].occurred_at", "{r:?}");

    let malformed = client()
        .post(s.url("/internal/v1/analytics/facts"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"facts\": [");
    send(malformed).await.assert_problem(400);
    let not_json = client().post(s.url("/internal/v1/analytics/facts")).bearer_auth(&token).body("facts");
    send(not_json).await.assert_problem(415);
    assert_eq!(s.stored_facts(), 0, "nothing of a refused batch is stored");

    let platform =
        report(&s, &s.admin(), "/api/v1/analytics/platform?from=2026-11-16T00:00:00Z&to=2026-11-17T00:00:00Z").await;
    assert_eq!(platform.body["totals"]["sign_ups"], 0, "{platform:?}");
}

#[tokio::test]
async fn only_the_platforms_services_deliver_facts() {
    let s = Server::start().await;
    let body = json!({"facts": [fact("user.signed_up", "2026-11-16T09:00:00Z", json!({"user_id": Uuid::new_v4()}))]});
    deliver(&s, None, &body).await.assert_problem(401);
    deliver(&s, Some("not.a.token"), &body).await.assert_problem(401);
    deliver(&s, Some(&s.user()), &body).await.assert_problem(403);
    deliver(&s, Some(&s.admin()), &body).await.assert_problem(403);
    deliver(&s, Some(&s.service("gateway")), &body).await.assert_problem(403);
    assert_eq!(s.stored_facts(), 0);
    let ok = deliver(&s, Some(&s.service("users")), &body).await;
    assert_eq!(ok.body["accepted"], 1, "{ok:?}");
    assert_eq!(s.stored_facts(), 1);
}

#[tokio::test]
async fn hour_day_and_week_buckets_match_the_hand_count() {
    let s = Server::start().await;
    let story = story();
    let r = deliver(&s, Some(&s.service("events")), &json!({ "facts": story.facts })).await;
    assert_eq!(r.status, 200, "{r:?}");
    let admin = s.admin();
    let event = |q: &str| format!("/api/v1/analytics/events/{}?{q}", story.event);

    let hourly = report(&s, &admin, &event("from=2026-11-16T09:00:00Z&to=2026-11-16T11:00:00Z&bucket=hour")).await;
    assert_eq!(hourly.status, 200, "{hourly:?}");
    assert_eq!(
        series(&hourly.body, &EVENT),
        [
            ("2026-11-16T09:00:00Z".to_owned(), vec![2, 2, 1, 0, 0]),
            ("2026-11-16T10:00:00Z".to_owned(), vec![1, 1, 0, 0, 0])
        ]
    );
    assert_eq!(totals(&hourly.body, &EVENT), [3, 2, 1, 0, 0], "visitor a twice is one visitor");

    let daily = report(&s, &admin, &event("from=2026-11-16T00:00:00Z&to=2026-11-19T00:00:00Z&bucket=day")).await;
    assert_eq!(
        series(&daily.body, &EVENT),
        [
            ("2026-11-16T00:00:00Z".to_owned(), vec![3, 2, 1, 0, 0]),
            ("2026-11-17T00:00:00Z".to_owned(), vec![0, 0, 0, 0, 0]),
            ("2026-11-18T00:00:00Z".to_owned(), vec![1, 1, 1, 1, 0]),
        ]
    );
    assert_eq!(totals(&daily.body, &EVENT), [4, 2, 2, 1, 0]);

    // A Sunday-night window spans two Monday-based weeks.
    let weekly = report(&s, &admin, &event("from=2026-11-22T23:00:00Z&to=2026-11-23T01:00:00Z&bucket=week")).await;
    assert_eq!(
        series(&weekly.body, &EVENT),
        [
            ("2026-11-16T00:00:00Z".to_owned(), vec![4, 2, 2, 1, 0]),
            ("2026-11-23T00:00:00Z".to_owned(), vec![1, 1, 0, 0, 1])
        ]
    );
    assert_eq!(totals(&weekly.body, &EVENT), [5, 3, 2, 1, 1]);

    let org_metrics = ["views", "unique_visitors", "registrations", "cancellations", "check_ins", "members_joined"];
    let org = report(
        &s,
        &admin,
        &format!(
            "/api/v1/analytics/organizations/{}?from=2026-11-16T00:00:00Z&to=2026-11-30T00:00:00Z&bucket=week",
            story.organization
        ),
    )
    .await;
    assert_eq!(
        series(&org.body, &org_metrics),
        [
            ("2026-11-16T00:00:00Z".to_owned(), vec![4, 2, 2, 1, 0, 1]),
            ("2026-11-23T00:00:00Z".to_owned(), vec![1, 1, 0, 0, 1, 0])
        ]
    );
    // 5 views, 2 registrations, 1 check-in; the one event leads its organization.
    assert_eq!(
        org.body["funnel"],
        json!({"views": 5, "registrations": 2, "check_ins": 1, "view_to_registration": 0.4, "attendance_rate": 0.5})
    );
    assert_eq!(org.body["top_events"], json!([{"id": story.event, "registrations": 2}]));

    let platform_metrics = ["sign_ups", "events_published", "registrations", "organizations_created"];
    let platform =
        report(&s, &admin, "/api/v1/analytics/platform?from=2026-11-16T00:00:00Z&to=2026-11-20T00:00:00Z&bucket=day")
            .await;
    assert_eq!(platform.body["series"].as_array().unwrap().len(), 4);
    assert_eq!(series(&platform.body, &platform_metrics)[0].1, [1, 1, 1, 1]);
    assert_eq!(totals(&platform.body, &platform_metrics), [1, 1, 2, 1]);
    assert_eq!(platform.body["top_organizations"], json!([{"id": story.organization, "registrations": 2}]));
    assert_eq!(platform.body["active_users"], 2, "u1 and u2 acted between the 16th and the 20th");
    assert!(platform.body.get("funnel").is_none(), "the platform has no funnel");
}

#[tokio::test]
async fn csv_has_a_header_and_a_row_per_bucket() {
    let s = Server::start().await;
    let story = story();
    deliver(&s, Some(&s.service("events")), &json!({ "facts": story.facts })).await;
    let path = format!("/api/v1/analytics/events/{}?from=2026-11-16T00:00:00Z&to=2026-11-19T00:00:00Z", story.event);
    let expected = "start,views,unique_visitors,registrations,cancellations,check_ins,link_clicks\r\n\
                    2026-11-16T00:00:00Z,3,2,1,0,0,0\r\n\
                    2026-11-17T00:00:00Z,0,0,0,0,0,0\r\n\
                    2026-11-18T00:00:00Z,1,1,1,1,0,0\r\n";

    let by_accept =
        send(client().get(s.url(&path)).bearer_auth(s.admin()).header("accept", "text/html;q=0.9, text/csv")).await;
    assert_eq!(by_accept.status, 200, "{by_accept:?}");
    assert_eq!(by_accept.content_type, "text/csv; charset=utf-8");
    assert_eq!(by_accept.text, expected);

    let by_query = report(&s, &s.admin(), &format!("{path}&format=csv")).await;
    assert_eq!(by_query.content_type, "text/csv; charset=utf-8");
    assert_eq!(by_query.text, expected);

    let json_wins =
        send(client().get(s.url(&format!("{path}&format=json"))).bearer_auth(s.admin()).header("accept", "text/csv"))
            .await;
    assert_eq!(json_wins.content_type, "application/json");
    assert_eq!(json_wins.body["totals"]["views"], 4);
}

#[tokio::test]
async fn reports_refuse_strangers_and_bad_windows() {
    let s = Server::start().await;
    let event = format!("/api/v1/analytics/events/{}", Uuid::new_v4());
    let organization = format!("/api/v1/analytics/organizations/{}", Uuid::new_v4());
    for path in [event.as_str(), organization.as_str(), "/api/v1/analytics/platform"] {
        send(client().get(s.url(path))).await.assert_problem(401);
        // Whether a user manages an organization only the organizations service knows; it
        // does not run here, so that report cannot be allowed (503), never 200.
        let user = if path == organization { 503 } else { 403 };
        report(&s, &s.user(), path).await.assert_problem(user);
        report(&s, &s.service("events"), path).await.assert_problem(403);
        let ok = report(&s, &s.admin(), path).await;
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(ok.body["series"].as_array().unwrap().len(), 30, "30 days by default");
    }
    let bad = [
        "from=yesterday",
        "to=2026-13-01T00:00:00Z",
        "from=2026-11-20T00:00:00Z&to=2026-11-10T00:00:00Z",
        "from=2026-11-20T00:00:00Z&to=2026-11-20T00:00:00Z",
        "bucket=month",
        "bucket=hour&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "format=xml",
        "limit=3",
        "from=1999-12-31T00:00:00Z&to=2000-01-02T00:00:00Z",
    ];
    for q in bad {
        let r = report(&s, &s.admin(), &format!("{event}?{q}")).await;
        r.assert_problem(422);
        assert!(!r.body["errors"].as_array().unwrap().is_empty(), "{q}: {r:?}");
    }
    report(&s, &s.admin(), "/api/v1/analytics/events/not-an-id").await.assert_problem(404);
}

#[tokio::test]
async fn the_paths_are_in_the_openapi_document() {
    let s = Server::start().await;
    let doc = send(client().get(s.url("/openapi.json"))).await;
    let paths = doc.body["paths"].as_object().unwrap();
    for p in [
        "/internal/v1/analytics/facts",
        "/api/v1/analytics/events/{id}",
        "/api/v1/analytics/organizations/{id}",
        "/api/v1/analytics/platform",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
}

const BROWSER: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36";

async fn track(s: &Server, user_agent: &str, body: reqwest::Body) -> Reply {
    let req = client()
        .post(s.url("/api/v1/analytics/track"))
        .header("user-agent", user_agent)
        .header("content-type", "application/json")
        .body(body);
    send(req).await
}

fn client_event(kind: &str, at: &str, extra: Value) -> Value {
    let mut e = json!({ "id": Uuid::new_v4(), "type": kind, "at": at });
    e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    e
}

#[tokio::test]
async fn browsers_report_visitors_searches_and_clicks_once() {
    let s = Server::start().await;
    let event = Uuid::new_v4();
    let now = kit::rfc3339(kit::now_unix());
    let batch = json!({ "visitor_id": "v-42", "events": [
        client_event("page_view", &now, json!({ "event_id": event })),
        client_event("page_view", &now, json!({ "event_id": event })),
        client_event("search", &now, json!({ "query": "джаз" })),
        client_event("link_click", &now, json!({ "event_id": event, "url": "https://example.org/tickets" })),
    ]});
    let r = track(&s, BROWSER, batch.to_string().into()).await;
    assert_eq!((r.status, &r.body), (202, &json!({"accepted": 4, "duplicates": 0, "ignored": 0})), "{r:?}");
    let again = track(&s, BROWSER, batch.to_string().into()).await;
    assert_eq!(again.body, json!({"accepted": 0, "duplicates": 4, "ignored": 0}), "a retried batch counts once");

    let admin = s.admin();
    let per_event = report(&s, &admin, &format!("/api/v1/analytics/events/{event}?bucket=day")).await;
    let t = &per_event.body["totals"];
    assert_eq!((t["unique_visitors"].as_i64(), t["link_clicks"].as_i64()), (Some(1), Some(1)), "{per_event:?}");
    assert_eq!(t["views"], 0, "views are the events service's to count: {per_event:?}");
    let platform = report(&s, &admin, "/api/v1/analytics/platform?bucket=day").await;
    assert_eq!(platform.body["totals"]["searches"], 1, "{platform:?}");
}

#[tokio::test]
async fn bad_track_input_is_refused_and_never_stored() {
    let s = Server::start().await;
    let now = kit::rfc3339(kit::now_unix());
    let future = kit::rfc3339(kit::now_unix() + 3600);
    let view = |at: &str| client_event("page_view", at, json!({ "event_id": Uuid::new_v4() }));
    let many: Vec<Value> = (0..51).map(|_| view(&now)).collect();
    let cases: Vec<(&str, String, u16)> = vec![
        ("garbage", "not json at all".into(), 400),
        ("wrong types", json!({ "visitor_id": 7, "events": "many" }).to_string(), 422),
        ("unknown field", json!({ "visitor_id": "v", "events": [view(&now)], "user_id": "x" }).to_string(), 422),
        (
            "unknown type",
            json!({ "visitor_id": "v", "events": [client_event("purchase", &now, json!({}))] }).to_string(),
            422,
        ),
        ("a huge batch", json!({ "visitor_id": "v", "events": many }).to_string(), 422),
        ("the future", json!({ "visitor_id": "v", "events": [view(&now), view(&future)] }).to_string(), 422),
        ("a bad visitor id", json!({ "visitor_id": "<script>", "events": [view(&now)] }).to_string(), 422),
        ("a huge body", json!({ "visitor_id": "v", "events": [], "pad": "x".repeat(64 * 1024) }).to_string(), 413),
    ];
    for (what, body, status) in cases {
        let r = track(&s, BROWSER, body.into()).await;
        assert!(r.status == status || (status == 422 && r.status == 400), "{what}: {r:?}");
        r.assert_problem(r.status);
    }
    assert_eq!(s.stored_facts(), 0, "nothing of a refused batch is stored");
}

#[tokio::test]
async fn robots_are_dropped_and_a_hammering_address_is_slowed() {
    let s = Server::start_with(AnalyticsConfig { track_rps: 1, track_burst: 2, ..AnalyticsConfig::defaults() }).await;
    let now = kit::rfc3339(kit::now_unix());
    let batch = || json!({ "visitor_id": "v", "events": [client_event("search", &now, json!({ "query": "q" }))] });
    let r = track(
        &s,
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        batch().to_string().into(),
    )
    .await;
    assert_eq!((r.status, &r.body["ignored"]), (202, &json!(1)), "{r:?}");
    assert_eq!(s.stored_facts(), 0, "robots' reports are not stored");

    // The robot's batch spent one token of the burst of 2; one more fits, then 429.
    assert_eq!(track(&s, BROWSER, batch().to_string().into()).await.status, 202);
    let limited = client()
        .post(s.url("/api/v1/analytics/track"))
        .header("user-agent", BROWSER)
        .json(&batch())
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(track(&s, BROWSER, batch().to_string().into()).await.status, 202, "recovers");
    assert_eq!(s.stored_facts(), 2);
}
