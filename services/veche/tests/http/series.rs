//! Repeating events over real HTTP: a weekly series with an exception becomes events of
//! its own (searchable, each with its seats), published at once; one occurrence edited
//! on its own keeps its fields when the series moves, and its attendees hear of the
//! move; one cancelled leaves the calendar; a shorter rule cancels what it no longer
//! gives. The series' `.ics` carries the RRULE, EXDATEs and the override, and Python's
//! `recurring_ical_events` (an independent expander) reads the same occurrences as the API.

use crate::common::orgs::{create_org, patch_as, post_as};
use crate::common::*;
use serde_json::{Value, json};

/// 4 March 2031 is a Tuesday; 19:00 in Moscow.
const FIRST: &str = "2031-03-04T16:00:00Z";

async fn occurrences(v: &Veche, token: &str, id: &str) -> Vec<Value> {
    let r = get_auth(v, &format!("/api/v1/events/{id}/occurrences"), token).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["items"].as_array().unwrap().clone()
}

fn starts(items: &[Value]) -> Vec<String> {
    items.iter().map(|e| e["start"].as_str().unwrap().to_owned()).collect()
}

fn live(items: &[Value]) -> Vec<Value> {
    items.iter().filter(|e| e["status"] != "cancelled").cloned().collect()
}

#[tokio::test]
async fn a_weekly_club_is_a_series_of_events_edited_as_calendars_do() {
    let v = Veche::start();
    let (owner, _) = signed_up(&v, "host@example.org").await;
    let org = create_org(&v, &owner, json!({"name": "Chess club"})).await;
    let body = json!({"title": "Blitz evening", "description": "Bring a clock", "start": FIRST,
        "end": "2031-03-04T18:00:00Z", "time_zone": "Europe/Moscow", "format": "offline",
        "venue": {"name": "Club", "address": "Arbat 1", "city": "Moscow", "latitude": null, "longitude": null},
        "tags": ["chess"], "category": "meetup", "capacity": 20, "organization_id": org["id"],
        "recurrence": {"rule": "FREQ=WEEKLY;BYDAY=TU;COUNT=6", "exceptions": ["2031-03-18T16:00:00Z"]}});
    let r = post_as(&v, &owner, "/api/v1/events", body.clone()).await;
    assert_eq!(r.status, 201, "{r:?}");
    let first = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["series"]["recurrence"]["rule"], "FREQ=WEEKLY;BYDAY=TU;COUNT=6");
    assert_eq!(r.body["series"]["occurrence"], FIRST);
    let all = occurrences(&v, &owner, &first).await;
    assert_eq!(
        starts(&all),
        [
            "2031-03-04T16:00:00Z",
            "2031-03-11T16:00:00Z",
            "2031-03-25T16:00:00Z",
            "2031-04-01T16:00:00Z",
            "2031-04-08T16:00:00Z"
        ]
    );
    assert!(all.iter().all(|e| e["status"] == "draft" && e["series"]["series_id"] == r.body["series"]["series_id"]));

    // Published as one; found in search as five events.
    let r = post_as(&v, &owner, &format!("/api/v1/events/{first}/publish?series=true"), json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let found = send(client().get(v.url("/api/v1/events?q=blitz&from=2031-03-01&limit=50"))).await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 5, "{found:?}");

    // Someone takes a seat on the 11th; the 25th is edited on its own.
    let second = all[1]["id"].as_str().unwrap().to_owned();
    let (guest, _) = signed_up(&v, "guest@example.org").await;
    assert_eq!(post_as(&v, &guest, &format!("/api/v1/events/{second}/registrations"), json!({})).await.status, 201);
    let special = all[2]["id"].as_str().unwrap().to_owned();
    let r = patch_as(&v, &owner, &format!("/api/v1/events/{special}"), json!({"title": "Blitz finals"})).await;
    assert_eq!((r.status, &r.body["series"]["edited"]), (200, &json!(true)), "{r:?}");

    // The series moves an hour later and changes its description.
    let r = patch_as(
        &v,
        &owner,
        &format!("/api/v1/events/{second}?series=true"),
        json!({"start": "2031-03-04T17:00:00Z", "end": "2031-03-04T19:00:00Z", "description": "Now in the big hall"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.body["start"].as_str(), r.body["description"].as_str()),
        (Some("2031-03-11T17:00:00Z"), Some("Now in the big hall"))
    );
    let mail = v.wait_mail("guest@example.org", "New time: Blitz evening");
    assert!(mail.contains("changed the time"), "{mail}");
    let all = occurrences(&v, &owner, &first).await;
    let special_now = all.iter().find(|e| e["id"] == special.as_str()).unwrap();
    assert_eq!(
        (special_now["title"].as_str(), special_now["start"].as_str()),
        (Some("Blitz finals"), Some("2031-03-25T16:00:00Z"))
    );
    assert_eq!(special_now["series"]["occurrence"], "2031-03-25T17:00:00Z", "it stands for the moved slot");

    // One evening is cancelled on its own.
    let april = all.iter().find(|e| e["start"] == "2031-04-01T17:00:00Z").unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(post_as(&v, &owner, &format!("/api/v1/events/{april}/cancel"), json!({})).await.status, 200);
    let all = occurrences(&v, &owner, &first).await;

    // A calendar program reads the series' file as the API lists it.
    let ics = send(client().get(v.url(&format!("/api/v1/events/{first}.ics")))).await;
    assert_eq!(ics.status, 200);
    let text = ics.body.as_str().unwrap().to_owned();
    assert!(text.contains("RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=6"), "{text}");
    assert!(text.contains("RECURRENCE-ID;TZID=Europe/Moscow:20310325T200000"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("series.ics");
    std::fs::write(&file, &text).unwrap();
    let expanded = run_python("expand_series.py", &[file.to_str().unwrap(), "2031-03-01", "2031-05-01"]);
    let read: Vec<(String, String)> = expanded
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["start"].as_str().unwrap().to_owned(), e["summary"].as_str().unwrap().to_owned()))
        .collect();
    let listed: Vec<(String, String)> = live(&all)
        .iter()
        .map(|e| (e["start"].as_str().unwrap().to_owned(), e["title"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(read, listed, "{text}");
    assert_eq!(listed.len(), 4);

    // A shorter rule cancels the occurrences it no longer gives.
    let r = patch_as(
        &v,
        &owner,
        &format!("/api/v1/events/{first}?series=true"),
        json!({"recurrence": {"rule": "FREQ=WEEKLY;BYDAY=TU;COUNT=3", "exceptions": ["2031-03-18T17:00:00Z"]}}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let all = occurrences(&v, &owner, &first).await;
    assert_eq!(starts(&live(&all)), ["2031-03-04T17:00:00Z", "2031-03-11T17:00:00Z"], "{all:?}");
    let last =
        get_auth(&v, &format!("/api/v1/events/{}", all.last().map(|e| e["id"].as_str().unwrap()).unwrap()), &owner)
            .await;
    assert!(last.status == 200);
}

#[tokio::test]
async fn bad_series_requests_say_what_is_wrong() {
    let v = Veche::start();
    let (owner, _) = signed_up(&v, "host@example.org").await;
    let org = create_org(&v, &owner, json!({"name": "Chess club"})).await;
    let event = |recurrence: Value| {
        json!({"title": "Blitz", "start": FIRST, "end": "2031-03-04T18:00:00Z", "time_zone": "Europe/Moscow",
            "format": "online", "online_url": "https://example.org/live", "organization_id": org["id"], "recurrence": recurrence})
    };
    for rule in ["FREQ=SECONDLY", "FREQ=WEEKLY;BYDAY=MO", "FREQ=WEEKLY;BYDAY=XX", "DTSTART:20310304T160000Z"] {
        let r = post_as(&v, &owner, "/api/v1/events", event(json!({"rule": rule}))).await;
        r.assert_problem(422);
        assert_eq!(r.body["errors"][0]["field"], "recurrence.rule", "{rule}: {r:?}");
    }
    post_as(&v, &owner, "/api/v1/events", event(json!({"rule": "FREQ=DAILY", "extra": 1}))).await.assert_problem(422);
    let single = post_as(&v, &owner, "/api/v1/events", event(Value::Null)).await;
    assert_eq!(single.status, 201, "{single:?}");
    let id = single.body["id"].as_str().unwrap();
    let r = patch_as(&v, &owner, &format!("/api/v1/events/{id}?series=true"), json!({"title": "x"})).await;
    r.assert_problem(422);
    let r = patch_as(&v, &owner, &format!("/api/v1/events/{id}"), json!({"recurrence": {"rule": "FREQ=DAILY"}})).await;
    r.assert_problem(422);
    let series = post_as(&v, &owner, "/api/v1/events", event(json!({"rule": "FREQ=DAILY;COUNT=3"}))).await;
    assert_eq!(series.status, 201, "{series:?}");
    let id = series.body["id"].as_str().unwrap();
    let r =
        patch_as(&v, &owner, &format!("/api/v1/events/{id}"), json!({"recurrence": {"rule": "FREQ=DAILY;COUNT=9"}}))
            .await;
    r.assert_problem(422);
    let r = patch_as(&v, &owner, &format!("/api/v1/events/{id}?series=true"), json!({"recurrence": null})).await;
    r.assert_problem(422);
}

#[tokio::test]
async fn a_series_moved_by_a_week_moves_every_occurrence_and_a_cancelled_one_stays_so() {
    let v = Veche::start();
    let (owner, _) = signed_up(&v, "host@example.org").await;
    let org = create_org(&v, &owner, json!({"name": "Chess club"})).await;
    let body = json!({"title": "Rapid", "start": FIRST, "end": "2031-03-04T18:00:00Z", "time_zone": "Europe/Moscow",
        "format": "online", "online_url": "https://example.org/live", "organization_id": org["id"],
        "recurrence": {"rule": "FREQ=WEEKLY;COUNT=3"}});
    let r = post_as(&v, &owner, "/api/v1/events", body).await;
    assert_eq!(r.status, 201, "{r:?}");
    let first = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        post_as(&v, &owner, &format!("/api/v1/events/{first}/publish?series=true"), json!({})).await.status,
        200
    );
    let before = occurrences(&v, &owner, &first).await;
    let second = before[1]["id"].as_str().unwrap().to_owned();

    // A week later: each occurrence takes the next one's slot (they trade places).
    let r = patch_as(
        &v,
        &owner,
        &format!("/api/v1/events/{first}?series=true"),
        json!({"start": "2031-03-11T16:00:00Z", "end": "2031-03-11T18:00:00Z"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let after = occurrences(&v, &owner, &first).await;
    assert_eq!(starts(&after), ["2031-03-11T16:00:00Z", "2031-03-18T16:00:00Z", "2031-03-25T16:00:00Z"]);
    let moved = after.iter().find(|e| e["id"] == second.as_str()).unwrap();
    assert_eq!(moved["start"], "2031-03-18T16:00:00Z", "the same event, a week later");
    assert!(after.iter().all(|e| e["status"] == "published"));

    // Cancelled as a whole, it stays cancelled, and the file says so.
    assert_eq!(post_as(&v, &owner, &format!("/api/v1/events/{first}/cancel?series=true"), json!({})).await.status, 200);
    let after = occurrences(&v, &owner, &first).await;
    assert!(after.iter().all(|e| e["status"] == "cancelled"), "{after:?}");
    let ics = send(client().get(v.url(&format!("/api/v1/events/{first}.ics")))).await;
    assert!(ics.body.as_str().unwrap().contains("STATUS:CANCELLED"), "{ics:?}");
}
