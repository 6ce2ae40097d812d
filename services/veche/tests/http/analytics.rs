//! Analytics inside `veche up`: its reports behind the gateway, for admins only, and its
//! paths in the merged API description.

use crate::common::orgs::{create_org, join};
use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn platform_reports_answer_admins_behind_the_gateway() {
    let v = Veche::start();
    let path = "/api/v1/analytics/platform?bucket=week";
    send(client().get(v.url(path))).await.assert_problem(401);
    let (user, _) = signed_up(&v, "curious@example.org").await;
    get_auth(&v, path, &user).await.assert_problem(403);
    let root = admin(&v, "root@example.org").await;
    let r = get_auth(&v, path, &root).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["totals"]["sign_ups"].is_i64(), "{r:?}");
    assert!(!r.body["series"].as_array().unwrap().is_empty(), "{r:?}");
    get_auth(&v, "/api/v1/analytics/platform?bucket=fortnight", &root).await.assert_problem(422);
    // Deliveries are for services on the internal network, not for the edge.
    let edge = send(client().post(v.url("/internal/v1/analytics/facts")).bearer_auth(&root)).await;
    assert_eq!(edge.status, 404, "{edge:?}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_analytics_api() {
    let v = Veche::start();
    let doc = send(client().get(v.url("/openapi.json"))).await.body;
    for path in [
        "/api/v1/analytics/events/{id}",
        "/api/v1/analytics/organizations/{id}",
        "/api/v1/analytics/platform",
        "/api/v1/analytics/track",
        "/api/v1/events",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    // The relay's delivery endpoint is not routable through the gateway, so it is not in
    // the public document.
    assert!(doc["paths"]["/internal/v1/analytics/facts"].is_null());
    assert!(doc["components"]["schemas"]["Report"].is_object());
    assert!(doc["components"]["schemas"]["FactBatch"].is_object());
}

/// Polls the platform report until `check` holds for its totals (the relay delivers in
/// the background), or fails with the last totals after 30 s.
async fn totals_when(
    v: &Veche,
    path: &str,
    root: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = get_auth(v, path, root).await;
        assert_eq!(r.status, 200, "{r:?}");
        if check(&r.body["totals"]) {
            return r.body["totals"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "{path}: totals never matched: {}", r.body["totals"]);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn domain_facts_reach_the_reports_once_across_hard_kills() {
    let mut v = Veche::start();
    // The newcomer's walkthrough first: people, an organization, an event, a registration.
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/walkthrough.sh");
    let walk = std::process::Command::new("bash")
        .arg(&script)
        .env("VECHE_URL", &v.base)
        .env("VECHE_DATA_DIR", &v.data)
        .output()
        .expect("run bash examples/walkthrough.sh");
    assert!(walk.status.success(), "walkthrough: {}", String::from_utf8_lossy(&walk.stderr));
    let root = admin(&v, "root@example.org").await;
    let event = json!({"title": "Jazz", "description": "", "start": "2030-12-05T16:00:00Z",
        "end": "2030-12-05T18:00:00Z", "time_zone": "Europe/Moscow", "format": "online",
        "online_url": "https://example.org/live", "tags": [], "category": "concert", "capacity": 2,
        "organization_id": "6f1b8a9e-2c5d-4e3f-8a7b-1c2d3e4f5a6b"});
    let r = send(client().post(v.url("/api/v1/events")).bearer_auth(&root).json(&event)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let publish = send(client().post(v.url(&format!("/api/v1/events/{id}/publish"))).bearer_auth(&root)).await;
    assert_eq!(publish.status, 200, "{publish:?}");
    let registrations = format!("/api/v1/events/{id}/registrations");
    let mut tokens = Vec::new();
    for who in ["a", "b", "c"] {
        let (token, _) = signed_up(&v, &format!("{who}@example.org")).await;
        let r = send(client().post(v.url(&registrations)).bearer_auth(&token)).await;
        assert_eq!(r.status, 201, "{r:?}");
        tokens.push(token);
    }
    // a cancels: c moves up from the waitlist (a promotion, not a new registration).
    let r = send(client().delete(v.url(&format!("{registrations}/me"))).bearer_auth(&tokens[0])).await;
    assert!(r.status < 300, "{r:?}");

    // More activity, each round ended by SIGKILL while the relays are delivering: sign-ups,
    // and bursts of page views (cheap, so many facts are in flight when the kill lands).
    let page = v.url(&format!("/api/v1/events/{id}"));
    for round in 0..3 {
        for i in 0..3 {
            assert_eq!(register(&v, &format!("r{round}-{i}@example.org")).await.status, 201);
        }
        let views = (0..300).map(|_| send(client().get(&page)));
        for r in futures::future::join_all(views).await {
            assert_eq!(r.status, 200);
        }
        // Views are written every half second, then relayed: kill in the middle of that.
        tokio::time::sleep(std::time::Duration::from_millis(600 + 150 * round)).await;
        v.restart();
    }

    // Every report against counts taken straight from the services' own databases: the
    // outboxes hold each fact exactly once, as committed with its change.
    let count_where = |db: &str, kinds: &[&str], event: Option<&str>| -> i64 {
        let c = rusqlite::Connection::open(v.data.join(db)).unwrap();
        let list = kinds.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT count(*) FROM outbox WHERE kind IN ({list}) AND (?1 IS NULL OR payload ->> '$.event_id' = ?1)"
        );
        c.query_row(&sql, [event], |r| r.get(0)).unwrap()
    };
    let count = |db: &str, kinds: &[&str]| count_where(db, kinds, None);
    let sign_ups = count("users.db", &["user.signed_up"]);
    assert!(sign_ups >= 4 + 9, "root, a, b, c, nine more and the walkthrough's people: {sign_ups}");
    let registrations = count("events.db", &["registration.made", "registration.waitlisted"]);
    assert!(registrations > 3, "the walkthrough's registration too: {registrations}");
    let ours = |kinds: &[&str]| count_where("events.db", kinds, Some(id.as_str()));
    let (our_registrations, cancellations, views) = (
        ours(&["registration.made", "registration.waitlisted"]),
        ours(&["registration.cancelled"]),
        ours(&["event.viewed"]),
    );
    assert!(views >= 900, "the views made it to the events service's outbox: {views}");

    let platform = "/api/v1/analytics/platform?bucket=day";
    let totals = totals_when(&v, platform, &root, |t| t["sign_ups"] == sign_ups).await;
    assert_eq!(totals["events_published"], count("events.db", &["event.published"]), "{totals}");
    assert_eq!(totals["registrations"], registrations, "{totals}");
    let per_event = format!("/api/v1/analytics/events/{id}?bucket=day");
    let totals = totals_when(&v, &per_event, &root, |t| t["views"] == views).await;
    assert_eq!(
        (totals["registrations"].as_i64(), totals["cancellations"].as_i64()),
        (Some(our_registrations), Some(cancellations))
    );
    assert_eq!((our_registrations, cancellations), (3, 1), "made twice and waitlisted once; a cancelled");
    // Nothing is counted twice, even after the relays have had time to send again.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let again = totals_when(&v, &per_event, &root, |_| true).await;
    assert_eq!(again["views"], views, "{again}");
    let again = totals_when(&v, platform, &root, |_| true).await;
    assert_eq!(again["sign_ups"], sign_ups, "{again}");
}

#[tokio::test]
async fn organization_admins_read_their_own_reports_and_no_one_elses() {
    let v = Veche::start();
    let (owner, _) = signed_up(&v, "owner@example.org").await;
    let (other, _) = signed_up(&v, "other@example.org").await;
    let ours_org = create_org(&v, &owner, json!({ "name": "Ours", "slug": "ours" })).await;
    let theirs = create_org(&v, &other, json!({ "name": "Theirs", "slug": "theirs" })).await;
    let member = join(&v, &ours_org, &owner, "member@example.org", "member").await;
    let ours = ours_org["id"].as_str().unwrap().to_owned();
    let theirs = theirs["id"].as_str().unwrap().to_owned();

    // An event of ours, published: its facts tell analytics which organization it is of.
    let event = json!({"title": "Talk", "description": "", "start": "2030-12-05T16:00:00Z",
        "end": "2030-12-05T18:00:00Z", "time_zone": "UTC", "format": "online",
        "online_url": "https://example.org/live", "tags": [], "category": "talk", "organization_id": ours});
    let r = send(client().post(v.url("/api/v1/events")).bearer_auth(&owner).json(&event)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let published = send(client().post(v.url(&format!("/api/v1/events/{id}/publish"))).bearer_auth(&owner)).await;
    assert_eq!(published.status, 200, "{published:?}");

    let org_report = format!("/api/v1/analytics/organizations/{ours}");
    let event_report = format!("/api/v1/analytics/events/{id}");
    // Once the relay has told analytics whose event it is, its owner reads both.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get_auth(&v, &event_report, &owner).await.status != 200 {
        assert!(std::time::Instant::now() < deadline, "the owner never got the event's report");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(get_auth(&v, &org_report, &owner).await.status, 200);
    // A plain member, an admin of another organization and a stranger read neither.
    for token in [&member, &other] {
        get_auth(&v, &org_report, token).await.assert_problem(403);
        get_auth(&v, &event_report, token).await.assert_problem(403);
    }
    get_auth(&v, &format!("/api/v1/analytics/organizations/{theirs}"), &owner).await.assert_problem(403);
    get_auth(&v, "/api/v1/analytics/platform", &owner).await.assert_problem(403);
}
