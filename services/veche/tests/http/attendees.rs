//! What organizers see of the people coming, over real HTTP against the real binary:
//! attendee and member lists with names (addresses only for managers), paged, filtered
//! and as CSV read by Python's csv module; tickets and check-in at the door by code.

use crate::common::orgs::{cast, delete_as, org_path, patch_as, post_as, user_id};
use crate::common::*;
use serde_json::{Value, json};
use std::collections::HashSet;

/// A published event of `org` with `capacity` seats; its id.
async fn published_event(v: &Veche, owner: &str, org: &Value, capacity: u32) -> String {
    let body = json!({"title": "Шахматный турнир", "description": "Блиц", "start": "2031-02-01T15:00:00Z",
        "end": "2031-02-01T19:00:00Z", "time_zone": "Europe/Moscow", "format": "offline",
        "venue": {"name": "Клуб", "address": "Баумана 1", "city": "Kazan", "latitude": null, "longitude": null},
        "online_url": null, "tags": ["chess"], "category": "meetup", "capacity": capacity, "price": null,
        "visibility": "public", "cover_image_url": null, "organization_id": org["id"]});
    let r = post_as(v, owner, "/api/v1/events", body).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(post_as(v, owner, &format!("/api/v1/events/{id}/publish"), json!({})).await.status, 200);
    id
}

/// Signs `email` up, names them `name`, registers them for `event`; their token.
async fn attendee(v: &Veche, event: &str, email: &str, name: &str) -> String {
    let (token, _) = signed_up(v, email).await;
    let r = patch_as(v, &token, "/api/v1/users/me", json!({"display_name": name})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post_as(v, &token, &format!("/api/v1/events/{event}/registrations"), json!({})).await;
    assert_eq!(r.status, 201, "{r:?}");
    token
}

fn names(page: &Reply) -> Vec<String> {
    page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{page:?}"))
        .iter()
        .map(|a| a["display_name"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn organizers_see_attendees_by_name_page_by_page_and_in_csv() {
    let v = Veche::start();
    let c = cast(&v).await;
    let event = published_event(&v, &c.owner, &c.org, 3).await;
    let list = format!("/api/v1/events/{event}/registrations");
    let people = [
        ("anna@example.org", "Анна Ёлкина"),
        ("boris@example.org", "Boris, \"the Rook\""),
        ("vera@example.org", "Вера Ёлкина"),
        ("gleb@example.org", "Глеб"),
    ];
    let mut tokens = Vec::new();
    for (email, name) in people {
        tokens.push(attendee(&v, &event, email, name).await);
    }

    // Everyone in the order they came, with names and addresses, two to a page.
    let first = get_auth(&v, &format!("{list}?limit=2"), &c.admin).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(names(&first), ["Анна Ёлкина", "Boris, \"the Rook\""]);
    assert_eq!(first.body["items"][0]["email"], "anna@example.org");
    let cursor = first.body["next_cursor"].as_str().expect("a second page").to_owned();
    let second = get_auth(&v, &format!("{list}?limit=2&cursor={cursor}"), &c.admin).await;
    assert_eq!(names(&second), ["Вера Ёлкина", "Глеб"]);
    assert_eq!(second.body["items"][1]["status"], "waitlisted");
    assert!(second.body.get("next_cursor").is_none(), "{second:?}");

    // Filters: by where people stand, and by name or address in any case and script.
    post_as(&v, &c.owner, &format!("/api/v1/events/{event}/registrations/{}/check-in", user_id(&tokens[0])), json!({}))
        .await;
    let by = |query: &str| {
        let (v, admin, list) = (&v, c.admin.clone(), list.clone());
        let query = query.to_owned();
        async move { names(&get_auth(v, &format!("{list}?{query}"), &admin).await) }
    };
    assert_eq!(by("status=checked_in").await, ["Анна Ёлкина"]);
    let anna = get_auth(&v, &format!("{list}?status=checked_in"), &c.admin).await;
    assert_eq!(anna.body["items"][0]["attendee_status"], "checked_in", "{anna:?}");
    assert_eq!(anna.body["items"][0]["status"], "registered", "the registration itself holds its seat");
    assert_eq!(by("status=registered").await, ["Boris, \"the Rook\"", "Вера Ёлкина"]);
    assert_eq!(by("status=waitlisted").await, ["Глеб"]);
    assert_eq!(by("q=%D1%91%D0%BB%D0%BA%D0%B8%D0%BD%D0%B0").await, ["Анна Ёлкина", "Вера Ёлкина"], "ёлкина");
    assert_eq!(by("q=BORIS%40EXAMPLE").await, ["Boris, \"the Rook\""]);
    assert_eq!(by("q=%D1%91%D0%BB%D0%BA%D0%B8%D0%BD%D0%B0&status=registered").await, ["Вера Ёлкина"]);
    assert_eq!(by("q=nobody").await, Vec::<String>::new());
    let bare = get_auth(&v, &format!("{list}?names=false&status=waitlisted"), &c.admin).await;
    assert_eq!(bare.body["items"][0]["display_name"], Value::Null, "{bare:?}");
    assert_eq!(bare.body["items"][0]["user_id"].as_str(), Some(user_id(&tokens[3]).as_str()), "{bare:?}");
    get_auth(&v, &format!("{list}?status=lost"), &c.admin).await.assert_problem(422);
    get_auth(&v, &format!("{list}?limit=0"), &c.admin).await.assert_problem(422);
    get_auth(&v, &format!("{list}?cursor=garbage"), &c.admin).await.assert_problem(422);
    get_auth(&v, &format!("{list}?q={}", "я".repeat(201)), &c.admin).await.assert_problem(422);

    // Members and strangers see no list.
    get_auth(&v, &list, &c.member).await.assert_problem(403);
    get_auth(&v, &list, &tokens[1]).await.assert_problem(403);

    // The whole list as CSV, with a byte-order mark for Excel, read by Python's csv module.
    let csv = send(client().get(v.url(&format!("{list}?format=csv&bom=true"))).bearer_auth(&c.owner)).await;
    assert!(csv.content_type.starts_with("text/csv"), "{csv:?}");
    let text = csv.body.as_str().unwrap();
    assert!(text.starts_with('\u{feff}'), "a byte-order mark");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("attendees.csv");
    std::fs::write(&file, text).unwrap();
    let rows = run_python("read_csv.py", &[file.to_str().unwrap()]);
    assert_eq!(rows.as_array().unwrap().len(), 4, "{rows}");
    assert_eq!(rows[1]["display_name"], "Boris, \"the Rook\"", "quoted and read back whole: {rows}");
    assert_eq!(rows[0]["status"], "checked_in");
    assert_eq!(rows[3]["email"], "gleb@example.org");
    let cut = format!("{list}?format=csv&limit=1&cursor={cursor}");
    let whole = send(client().get(v.url(&cut)).bearer_auth(&c.owner)).await;
    assert_eq!(whole.body.as_str().unwrap().lines().count(), 5, "a spreadsheet is the whole list: {whole:?}");
    let plain = send(client().get(v.url(&list)).bearer_auth(&c.owner).header("accept", "text/csv")).await;
    assert!(plain.body.as_str().unwrap().starts_with("display_name,"), "no mark unless asked: {plain:?}");

    // A deleted account leaves its registration nameless, not the list broken.
    let r = delete_as(&v, &tokens[3], "/api/v1/users/me").await;
    assert!(r.status < 300, "{r:?}");
    let after = get_auth(&v, &format!("{list}?status=waitlisted"), &c.admin).await;
    assert_eq!(after.body["items"][0]["display_name"], Value::Null, "{after:?}");
}

#[tokio::test]
async fn members_see_names_and_only_managers_see_addresses() {
    let v = Veche::start();
    let c = cast(&v).await;
    patch_as(&v, &c.member, "/api/v1/users/me", json!({"display_name": "Мария"})).await;
    let members = org_path(&c.org, "/members");
    for (who, sees_emails) in [(&c.owner, true), (&c.admin, true), (&c.member, false)] {
        let r = get_auth(&v, &members, who).await;
        assert_eq!(r.status, 200, "{r:?}");
        let items = r.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 3, "{r:?}");
        assert!(items.iter().all(|m| m["display_name"].is_string()), "{r:?}");
        let maria = items.iter().find(|m| m["display_name"] == "Мария").expect("the member by name");
        assert_eq!(maria["email"].is_string(), sees_emails, "{r:?}");
        if sees_emails {
            assert_eq!(maria["email"], "member@example.org");
        }
    }
    get_auth(&v, &members, &c.stranger).await.assert_problem(403);
}

#[tokio::test]
async fn tickets_check_people_in_at_the_door() {
    let v = Veche::start();
    let c = cast(&v).await;
    let event = published_event(&v, &c.owner, &c.org, 1).await;
    let anna = attendee(&v, &event, "anna@example.org", "Анна").await;
    let boris = attendee(&v, &event, "boris@example.org", "Борис").await;
    let ticket_path = format!("/api/v1/events/{event}/registrations/me/ticket");
    let check_ins = format!("/api/v1/events/{event}/check-ins");

    let ticket = get_auth(&v, &ticket_path, &anna).await;
    assert_eq!(ticket.status, 200, "{ticket:?}");
    let code = ticket.body["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 19, "{code}");
    assert_eq!(ticket.body["registration"]["status"], "registered");
    assert!(ticket.body["qr_svg"].as_str().unwrap().contains("<svg"), "{ticket:?}");
    let svg = send(client().get(v.url(&format!("{ticket_path}?format=svg"))).bearer_auth(&anna)).await;
    assert_eq!(svg.content_type, "image/svg+xml", "{svg:?}");
    assert_eq!(get_auth(&v, &ticket_path, &anna).await.body["code"], code.as_str(), "one ticket per registration");
    let waiting = get_auth(&v, &ticket_path, &boris).await;
    assert_eq!(waiting.body["registration"]["status"], "waitlisted", "{waiting:?}");
    get_auth(&v, &ticket_path, &c.stranger).await.assert_problem(404);
    // The ticket is in the attendee's own lists and calendar.
    let mine = get_auth(&v, "/api/v1/users/me/registrations", &anna).await;
    assert_eq!(mine.body["items"][0]["ticket"], code.as_str(), "{mine:?}");
    let feed = post_as(&v, &anna, "/api/v1/users/me/calendar", json!({})).await;
    let ics = send(client().get(feed.body["url"].as_str().unwrap())).await;
    assert!(ics.body.as_str().unwrap().replace("\r\n ", "").contains(&format!("Ticket: {code}")), "{ics:?}");

    // Only the event's managers check people in; the code is read as a person types it.
    let typed = code.replace('-', "").to_lowercase();
    post_as(&v, &c.member, &check_ins, json!({"ticket": typed})).await.assert_problem(403);
    let r = post_as(&v, &c.admin, &check_ins, json!({"ticket": typed})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["attendee"]["display_name"], "Анна");
    assert_eq!(r.body["already_checked_in"], false);
    assert!(r.body["attendee"]["checked_in_at"].is_string(), "{r:?}");
    let again = post_as(&v, &c.admin, &check_ins, json!({"ticket": code})).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["already_checked_in"], true, "a second scan says so");

    // A checked-in seat is not given up; a waitlisted ticket lets nobody in; nonsense is named.
    delete_as(&v, &anna, &format!("/api/v1/events/{event}/registrations/me")).await.assert_problem(409);
    let boris_code = waiting.body["code"].as_str().unwrap();
    post_as(&v, &c.admin, &check_ins, json!({"ticket": boris_code})).await.assert_problem(409);
    let unknown = if code.starts_with('0') { "1111-1111-1111-1111" } else { "0000-0000-0000-0000" };
    post_as(&v, &c.admin, &check_ins, json!({"ticket": unknown})).await.assert_problem(404);
    let r = post_as(&v, &c.admin, &check_ins, json!({"ticket": "not a ticket"})).await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "ticket", "{r:?}");
    post_as(&v, &c.admin, &check_ins, json!({})).await.assert_problem(422);
    // A ticket to one event opens no other.
    let other = published_event(&v, &c.owner, &c.org, 10).await;
    post_as(&v, &c.admin, &format!("/api/v1/events/{other}/check-ins"), json!({"ticket": code}))
        .await
        .assert_problem(404);
}

/// Twenty thousand registrations, listed page by page: each exactly once, in the order
/// they came, while more keep arriving. They are written straight into the events
/// store's SQLite file (signing up 20,000 people would spend the run hashing passwords);
/// the listing is over HTTP as any organizer's.
#[tokio::test]
async fn twenty_thousand_registrations_page_by_page_each_once() {
    let v = Veche::start();
    let c = cast(&v).await;
    let event = published_event(&v, &c.owner, &c.org, 100_000).await;
    let db = rusqlite::Connection::open(v.data.join("events.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
    let add = |from: usize, to: usize| {
        let tx = db.unchecked_transaction().unwrap();
        for n in from..to {
            tx.execute(
                "INSERT INTO registrations (event_id, user_id, status, position, created_at, updated_at)
                 VALUES (?1, ?2, 'registered', ?3, 1900000000, 1900000000)",
                rusqlite::params![event, format!("00000000-0000-4000-8000-{n:012}"), n as i64 + 1],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    };
    add(0, 20_000);
    let list = format!("/api/v1/events/{event}/registrations?limit=200");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cur) => format!("{list}&cursor={cur}"),
            None => list.clone(),
        };
        let page = get_auth(&v, &path, &c.admin).await;
        assert_eq!(page.status, 200, "{page:?}");
        seen.extend(page.body["items"].as_array().unwrap().iter().map(|a| a["user_id"].as_str().unwrap().to_owned()));
        if seen.len() == 10_000 {
            add(20_000, 20_010); // late arrivals join the end of the list
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 20_010);
    let expected: Vec<String> = (0..20_010).map(|n| format!("00000000-0000-4000-8000-{n:012}")).collect();
    assert_eq!(seen, expected, "every registration once, in arrival order");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 20_010);
}
