//! The events service over real HTTP against the real binary: lifecycle, visibility,
//! search, registrations, CSV and iCalendar (checked by Python's `icalendar`).

use crate::common::*;
use serde_json::{Value, json};

fn event_body(org: &str, title: &str, start: &str, end: &str, tz: &str) -> Value {
    json!({"title": title, "description": "Бах и Гендель", "start": start, "end": end,
           "time_zone": tz, "format": "offline",
           "venue": {"name": "Hall", "address": "Kremlin 1", "city": "Kazan", "latitude": 55.79, "longitude": 49.12},
           "online_url": null, "tags": ["music"], "category": "concert", "capacity": 2,
           "price": null, "visibility": "public", "cover_image_url": null, "organization_id": org})
}

async fn create(v: &Veche, token: &str, body: &Value) -> Reply {
    send(client().post(v.url("/api/v1/events")).bearer_auth(token).json(body)).await
}

async fn post_auth(v: &Veche, path: &str, token: &str) -> Reply {
    send(client().post(v.url(path)).bearer_auth(token)).await
}

const ORG: &str = "6f1b8a9e-2c5d-4e3f-8a7b-1c2d3e4f5a6b";

#[tokio::test]
async fn lifecycle_visibility_and_search() {
    let v = Veche::start();
    let root = admin(&v, "root@example.org").await;
    let (stranger, _) = signed_up(&v, "stranger@example.org").await;

    let r = create(
        &v,
        &root,
        &event_body(ORG, "Органный концерт", "2030-12-05T16:00:00Z", "2030-12-05T18:00:00Z", "Europe/Moscow"),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["status"], "draft");
    assert_eq!(r.body["registered_count"], 0);
    let id = r.body["id"].as_str().unwrap().to_owned();

    // A draft is invisible to strangers and anonymous callers, and absent from search.
    get_auth(&v, &format!("/api/v1/events/{id}"), &stranger).await.assert_problem(404);
    send(client().get(v.url(&format!("/api/v1/events/{id}")))).await.assert_problem(404);
    let found = send(client().get(v.url("/api/v1/events?q=концерты"))).await;
    assert_eq!(found.body["items"], json!([]));
    // Strangers cannot publish or change it either (and learn nothing).
    post_auth(&v, &format!("/api/v1/events/{id}/publish"), &stranger).await.assert_problem(404);

    let r = post_auth(&v, &format!("/api/v1/events/{id}/publish"), &root).await;
    assert_eq!(r.body["status"], "published", "{r:?}");
    // Searchable as soon as the write returns, with Russian stemming.
    let found = send(client().get(v.url("/api/v1/events?q=концерты&city=kazan"))).await;
    assert_eq!(found.body["items"][0]["id"], id.as_str(), "{found:?}");
    // A stranger sees it now, but may not change it.
    assert_eq!(get_auth(&v, &format!("/api/v1/events/{id}"), &stranger).await.status, 200);
    let r = send(
        client().patch(v.url(&format!("/api/v1/events/{id}"))).bearer_auth(&stranger).json(&json!({"title": "Mine"})),
    )
    .await;
    r.assert_problem(403);

    // A merge patch: change the title, clear the category, keep the rest.
    let r = send(
        client()
            .patch(v.url(&format!("/api/v1/events/{id}")))
            .bearer_auth(&root)
            .header("content-type", "application/merge-patch+json")
            .body(json!({"title": "Органный вечер", "category": null}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["title"], "Органный вечер");
    assert_eq!(r.body["category"], Value::Null);
    assert_eq!(r.body["venue"]["city"], "Kazan");
    let r = send(
        client()
            .patch(v.url(&format!("/api/v1/events/{id}")))
            .bearer_auth(&root)
            .json(&json!({"end": "2020-01-01T00:00:00Z"})),
    )
    .await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "end");
    // The index follows the change.
    let found = send(client().get(v.url("/api/v1/events?q=вечер"))).await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);

    let r = post_auth(&v, &format!("/api/v1/events/{id}/cancel"), &root).await;
    assert_eq!(r.body["status"], "cancelled");
    post_auth(&v, &format!("/api/v1/events/{id}/publish"), &root).await.assert_problem(409);
    assert_eq!(send(client().delete(v.url(&format!("/api/v1/events/{id}"))).bearer_auth(&root)).await.status, 204);
    get_auth(&v, &format!("/api/v1/events/{id}"), &root).await.assert_problem(404);
}

#[tokio::test]
async fn registrations_waitlist_csv_and_check_in() {
    let v = Veche::start();
    let root = admin(&v, "root@example.org").await;
    let r = create(
        &v,
        &root,
        &event_body(ORG, "Jazz evening", "2030-12-05T16:00:00Z", "2030-12-05T18:00:00Z", "Europe/Moscow"),
    )
    .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/events/{id}/registrations");
    // Not open while a draft.
    let (a, _) = signed_up(&v, "a@example.org").await;
    post_auth(&v, &path, &a).await.assert_problem(404);
    post_auth(&v, &format!("/api/v1/events/{id}/publish"), &root).await;

    let (b, _) = signed_up(&v, "b@example.org").await;
    let (c, _) = signed_up(&v, "c@example.org").await;
    assert_eq!(post_auth(&v, &path, &a).await.body["status"], "registered");
    assert_eq!(post_auth(&v, &path, &b).await.body["status"], "registered");
    let r = post_auth(&v, &path, &c).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["status"], "waitlisted");
    assert_eq!(r.body["waitlist_position"], 1);
    assert_eq!(post_auth(&v, &path, &a).await.status, 200, "registering twice is idempotent");

    // Attendees cannot see the list; organizers get JSON or CSV.
    get_auth(&v, &path, &a).await.assert_problem(403);
    let csv = send(client().get(v.url(&format!("{path}?format=csv"))).bearer_auth(&root)).await;
    assert!(csv.content_type.starts_with("text/csv"), "{csv:?}");
    let text = csv.body.as_str().unwrap().to_owned();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.starts_with("display_name,email,status,waitlist_position,registered_at,checked_in_at,user_id"),
        "{text}"
    );

    // A cancellation promotes the waitlist.
    let r = send(client().delete(v.url(&format!("{path}/me"))).bearer_auth(&a)).await;
    assert_eq!(r.body["status"], "cancelled", "{r:?}");
    let mine = get_auth(&v, "/api/v1/users/me/registrations", &c).await;
    assert_eq!(mine.body["items"][0]["registration"]["status"], "registered", "{mine:?}");
    assert_eq!(mine.body["items"][0]["event"]["registered_count"], 2);

    let c_id = get_auth(&v, "/api/v1/users/me", &c).await.body["id"].as_str().unwrap().to_owned();
    let r = post_auth(&v, &format!("{path}/{c_id}/check-in"), &root).await;
    assert!(r.body["attendee"]["checked_in_at"].is_string(), "{r:?}");
    assert_eq!(r.body["attendee"]["email"], "c@example.org", "{r:?}");
    post_auth(&v, &format!("{path}/{c_id}/check-in"), &c).await.assert_problem(403);
}

fn check_ics(ics: &str, expected: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cal.ics");
    std::fs::write(&file, ics).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ics_check.py");
    let out = std::process::Command::new(python()).arg(script).arg(&file).arg(expected.to_string()).output().unwrap();
    assert!(
        out.status.success(),
        "icalendar rejected it: {}{}\n{ics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn ics_parses_with_an_independent_parser_and_keeps_zones() {
    let v = Veche::start();
    let root = admin(&v, "root@example.org").await;
    let mut expected = Vec::new();
    let mut ids = Vec::new();
    // A zone without daylight saving, one with it (crossing into summer time), one far east.
    for (title, start, end, tz) in [
        ("Органный концерт; Бах, Гендель", "2030-12-05T16:00:00Z", "2030-12-05T18:00:00Z", "Europe/Moscow"),
        ("Rust meetup", "2031-03-30T17:00:00Z", "2031-03-30T19:30:00Z", "Europe/Berlin"),
        ("Night market", "2031-07-01T10:00:00Z", "2031-07-01T14:00:00Z", "Asia/Vladivostok"),
    ] {
        let r = create(&v, &root, &event_body(ORG, title, start, end, tz)).await;
        let id = r.body["id"].as_str().unwrap().to_owned();
        post_auth(&v, &format!("/api/v1/events/{id}/publish"), &root).await;
        expected.push(json!({"uid": format!("{id}@veche"), "start": start, "end": end, "tzid": tz, "summary": title}));
        ids.push(id);
    }
    let one = send(client().get(v.url(&format!("/api/v1/events/{}.ics", ids[1])))).await;
    assert!(one.content_type.starts_with("text/calendar"), "{one:?}");
    check_ics(one.body.as_str().unwrap(), &json!([expected[1]]));

    // The personal feed: register for all three, then read the secret URL without a token.
    for id in &ids {
        post_auth(&v, &format!("/api/v1/events/{id}/registrations"), &root).await;
    }
    let link = post_auth(&v, "/api/v1/users/me/calendar", &root).await;
    let url = link.body["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&v.base), "{url}");
    let feed = send(client().get(&url)).await;
    assert_eq!(feed.status, 200);
    check_ics(feed.body.as_str().unwrap(), &Value::Array(expected));
    // A new link retires the old one.
    post_auth(&v, "/api/v1/users/me/calendar", &root).await;
    send(client().get(&url)).await.assert_problem(404);
}

#[tokio::test]
async fn bad_event_input_gets_field_errors() {
    let v = Veche::start();
    let root = admin(&v, "root@example.org").await;
    let mut body = event_body(ORG, "", "2030-12-05T16:00:00Z", "2030-12-05T15:00:00Z", "Mars/Olympus");
    body["venue"]["latitude"] = json!(123.0);
    body["price"] = json!({"amount": "-5", "currency": "rubles"});
    let r = create(&v, &root, &body).await;
    r.assert_problem(422);
    let fields: Vec<&str> = r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["title", "end", "time_zone", "venue.latitude", "price.amount", "price.currency"]);

    for (what, doc) in [
        ("wrong type", json!({"title": 5})),
        ("not RFC 3339", {
            let mut b = event_body(ORG, "x", "tomorrow", "2030-12-05T15:00:00Z", "UTC");
            b["start"] = json!("tomorrow");
            b
        }),
        ("unknown field", {
            let mut b = event_body(ORG, "x", "2030-12-05T16:00:00Z", "2030-12-05T17:00:00Z", "UTC");
            b["hack"] = json!(1);
            b
        }),
        ("bad enum", {
            let mut b = event_body(ORG, "x", "2030-12-05T16:00:00Z", "2030-12-05T17:00:00Z", "UTC");
            b["format"] = json!("hologram");
            b
        }),
        ("huge capacity", {
            let mut b = event_body(ORG, "x", "2030-12-05T16:00:00Z", "2030-12-05T17:00:00Z", "UTC");
            b["capacity"] = json!(-1);
            b
        }),
    ] {
        let r = create(&v, &root, &doc).await;
        assert!((400..500).contains(&r.status), "{what}: {r:?}");
        r.assert_problem(r.status);
    }
    for query in [
        "near=100,500",
        "sort=relevance",
        "limit=0",
        "from=yesterday",
        "format=paper",
        "cursor=xyz",
        "radius_km=5",
        "bogus=1",
        "free=maybe",
    ] {
        let r = send(client().get(v.url(&format!("/api/v1/events?{query}")))).await;
        r.assert_problem(422);
    }
    send(client().get(v.url("/api/v1/events/not-a-uuid"))).await.assert_problem(404);
    send(client().get(v.url("/api/v1/calendar/nope.ics"))).await.assert_problem(404);
}

/// Each role's allowed and forbidden actions on events, with the real organizations
/// service answering who is who (over HTTP, with a service token).
#[tokio::test]
async fn organization_roles_decide_who_manages_events() {
    let v = Veche::start();
    let c = crate::common::orgs::cast(&v).await;
    let org = c.org["id"].as_str().unwrap();
    let body = event_body(org, "Chess night", "2030-12-05T16:00:00Z", "2030-12-05T18:00:00Z", "Europe/Moscow");

    // Creating: the organization's owner and admins; not members, strangers or outsiders.
    for who in [&c.member, &c.stranger, &c.other_owner] {
        create(&v, who, &body).await.assert_problem(403);
    }
    assert_eq!(create(&v, &c.admin, &body).await.status, 201);
    let r = create(&v, &c.owner, &body).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/events/{id}");

    // A draft: members see it; a stranger and another organization's owner do not.
    assert_eq!(get_auth(&v, &path, &c.member).await.status, 200);
    get_auth(&v, &path, &c.stranger).await.assert_problem(404);
    get_auth(&v, &path, &c.other_owner).await.assert_problem(404);
    // Members cannot change or publish it; outsiders cannot even find it.
    let patch = |t: &str| send(client().patch(v.url(&path)).bearer_auth(t).json(&json!({"title": "Mine now"})));
    patch(&c.member).await.assert_problem(403);
    patch(&c.other_owner).await.assert_problem(404);
    post_auth(&v, &format!("{path}/publish"), &c.member).await.assert_problem(403);
    post_auth(&v, &format!("{path}/publish"), &c.other_owner).await.assert_problem(404);
    // The organization's own view of its drafts is for members only.
    let drafts = format!("/api/v1/events?organization_id={org}&status=draft");
    let r = get_auth(&v, &drafts, &c.member).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2, "{r:?}");
    get_auth(&v, &drafts, &c.stranger).await.assert_problem(403);

    // Admins publish; then everyone sees it, still only admins change it.
    assert_eq!(post_auth(&v, &format!("{path}/publish"), &c.admin).await.body["status"], "published");
    assert_eq!(get_auth(&v, &path, &c.stranger).await.status, 200);
    patch(&c.other_owner).await.assert_problem(403);
    patch(&c.stranger).await.assert_problem(403);
    assert_eq!(patch(&c.admin).await.status, 200);
    // Attendee lists and check-in are for managers.
    get_auth(&v, &format!("{path}/registrations"), &c.member).await.assert_problem(403);
    assert_eq!(get_auth(&v, &format!("{path}/registrations"), &c.owner).await.status, 200);
    send(client().delete(v.url(&path)).bearer_auth(&c.member)).await.assert_problem(403);
    send(client().delete(v.url(&path)).bearer_auth(&c.other_owner)).await.assert_problem(403);
    assert_eq!(send(client().delete(v.url(&path)).bearer_auth(&c.owner)).await.status, 204);
}

/// 200 people register at once over HTTP for 50 seats: exactly 50 seats, 150 waitlist
/// places, each place once; then cancellations promote the waitlist in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_registrations_fill_exactly_fifty_seats() {
    let v = Veche::start();
    let root = admin(&v, "root@example.org").await;
    let mut body = event_body(ORG, "Popular talk", "2030-12-05T16:00:00Z", "2030-12-05T18:00:00Z", "UTC");
    body["capacity"] = json!(50);
    let id = create(&v, &root, &body).await.body["id"].as_str().unwrap().to_owned();
    post_auth(&v, &format!("/api/v1/events/{id}/publish"), &root).await;

    // Sign 200 people up (argon2 makes this the slow part; it runs on every core).
    let people: Vec<String> = futures::future::join_all((0..200).map(|i| {
        let v = &v;
        async move { signed_up(v, &format!("fan{i}@example.org")).await.0 }
    }))
    .await;
    let path = format!("/api/v1/events/{id}/registrations");
    let replies = futures::future::join_all(people.iter().map(|t| post_auth(&v, &path, t))).await;
    assert!(replies.iter().all(|r| r.status == 201), "every registration is created once");
    let registered: Vec<usize> = (0..200).filter(|&i| replies[i].body["status"] == "registered").collect();
    let mut waitlisted: Vec<(u64, usize)> = (0..200)
        .filter(|&i| replies[i].body["status"] == "waitlisted")
        .map(|i| (replies[i].body["waitlist_position"].as_u64().unwrap(), i))
        .collect();
    assert_eq!(registered.len(), 50);
    assert_eq!(waitlisted.len(), 150);
    waitlisted.sort();
    assert_eq!(waitlisted.iter().map(|w| w.0).collect::<Vec<_>>(), (1..=150).collect::<Vec<_>>());
    let event = send(client().get(v.url(&format!("/api/v1/events/{id}")))).await;
    assert_eq!(
        (event.body["registered_count"].as_u64(), event.body["waitlisted_count"].as_u64()),
        (Some(50), Some(150))
    );

    // Three seats free up: the first three in line get them, in order.
    for (n, &seat) in registered.iter().take(3).enumerate() {
        let r = send(client().delete(v.url(&format!("{path}/me"))).bearer_auth(&people[seat])).await;
        assert_eq!(r.body["status"], "cancelled");
        let promoted = waitlisted[n].1;
        let mine = get_auth(&v, "/api/v1/users/me/registrations", &people[promoted]).await;
        assert_eq!(mine.body["items"][0]["registration"]["status"], "registered", "place {} is promoted", n + 1);
        let next = get_auth(&v, "/api/v1/users/me/registrations", &people[waitlisted[n + 1].1]).await;
        assert_eq!(next.body["items"][0]["registration"]["waitlist_position"], 1, "the next in line is first now");
    }
}

/// Date pickers send plain dates: `from` is that day's start and `to` takes the whole
/// day in, both in the caller's `time_zone` (UTC when none is given).
#[tokio::test]
async fn plain_dates_are_days_in_the_callers_zone() {
    let v = Veche::start();
    let root = admin(&v, "root@example.org").await;
    for (title, start, end) in [
        ("Early in Moscow", "2031-01-31T22:00:00Z", "2031-01-31T23:00:00Z"),
        ("Midday", "2031-02-01T12:00:00Z", "2031-02-01T13:00:00Z"),
        ("Late in UTC", "2031-02-01T22:00:00Z", "2031-02-01T23:00:00Z"),
    ] {
        let r = create(&v, &root, &event_body(ORG, title, start, end, "Europe/Moscow")).await;
        let id = r.body["id"].as_str().unwrap().to_owned();
        post_auth(&v, &format!("/api/v1/events/{id}/publish"), &root).await;
    }
    let titles = |query: &'static str| {
        let v = &v;
        async move {
            let r = send(client().get(v.url(&format!("/api/v1/events?{query}")))).await;
            assert_eq!(r.status, 200, "{query}: {r:?}");
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["title"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(titles("from=2031-02-01&to=2031-02-01&time_zone=Europe/Moscow").await, ["Early in Moscow", "Midday"]);
    assert_eq!(titles("from=2031-02-01&to=2031-02-01").await, ["Midday", "Late in UTC"]);
    assert_eq!(titles("from=2031-02-02&time_zone=Europe/Moscow").await, ["Late in UTC"]);
    assert_eq!(titles("from=2031-02-01T12:30:00Z&to=2031-02-01").await, ["Midday", "Late in UTC"], "both forms mix");
    for (query, field) in
        [("from=2031-02-30", "from"), ("to=01.02.2031", "to"), ("from=2031-02-01&time_zone=Mars/Olympus", "time_zone")]
    {
        let r = send(client().get(v.url(&format!("/api/v1/events?{query}")))).await;
        r.assert_problem(422);
        assert_eq!(r.body["errors"][0]["field"], field, "{query}: {r:?}");
    }
    // Reports take them too: seven days, both ends in; in Tokyo the first of February
    // begins on the 31st in UTC, where the day buckets are.
    let report = |query: &'static str| {
        let (v, root) = (&v, root.clone());
        async move {
            let r = get_auth(v, &format!("/api/v1/analytics/organizations/{ORG}?{query}"), &root).await;
            assert_eq!(r.status, 200, "{query}: {r:?}");
            r.body["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["start"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let week = report("from=2031-02-01&to=2031-02-07").await;
    assert_eq!((week.len(), week[0].as_str()), (7, "2031-02-01T00:00:00Z"), "{week:?}");
    let tokyo = report("from=2031-02-01&to=2031-02-07&time_zone=Asia/Tokyo").await;
    assert_eq!(tokyo[0], "2031-01-31T00:00:00Z", "{tokyo:?}");
    get_auth(&v, &format!("/api/v1/analytics/organizations/{ORG}?from=yesterday"), &root).await.assert_problem(422);
}
