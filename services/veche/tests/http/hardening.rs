//! The outside review's findings, each over real HTTP against the real binary: calendar
//! injection, JSON that is not an object, hidden characters and lookalike addresses,
//! unknown query parameters, secrets in logs, metrics cardinality.

use crate::common::orgs::*;
use crate::common::*;
use serde_json::{Value, json};

fn online_event(org: &str, url: &str) -> Value {
    json!({"title": "Talk", "start": "2030-12-05T16:00:00Z", "end": "2030-12-05T17:00:00Z",
           "time_zone": "UTC", "format": "online", "online_url": url, "organization_id": org})
}

fn fields(r: &Reply) -> Vec<String> {
    r.body["errors"].as_array().into_iter().flatten().map(|e| e["field"].as_str().unwrap_or("").to_owned()).collect()
}

/// Finding 1: an organizer cannot forge calendar lines through an event's strings.
#[tokio::test]
async fn control_characters_never_reach_a_calendar() {
    let v = Veche::start();
    let root = admin(&v, "root@example.org").await;
    let org = create_org(&v, &root, json!({"name": "Calendar club"})).await;
    let org_id = org["id"].as_str().unwrap();
    let c = client();
    let forged = "BEGIN:VEVENT\r\nUID:victim@veche\r\nEND:VEVENT";
    for sep in ["\r\n", "\r", "\n", "\t", "\0"] {
        let body = online_event(org_id, &format!("https://meet.example.org/x{sep}{forged}"));
        let r = send(c.post(v.url("/api/v1/events")).bearer_auth(&root).json(&body)).await;
        r.assert_problem(422);
        assert_eq!(fields(&r), ["online_url"], "{sep:?}");
        let mut body = online_event(org_id, "https://meet.example.org/x");
        body["title"] = json!(format!("Talk{sep}UID:victim@veche"));
        let r = send(c.post(v.url("/api/v1/events")).bearer_auth(&root).json(&body)).await;
        assert_eq!(fields(&r), ["title"], "{sep:?}: {r:?}");
    }
    // Free text keeps its line breaks, escaped in the calendar; the URL is stored as parsed.
    let mut body = online_event(org_id, "HTTPS://Meet.Example.ORG/room");
    body["description"] = json!("line one\r\nEND:VEVENT\rline three\n\tindented");
    let r = send(c.post(v.url("/api/v1/events")).bearer_auth(&root).json(&body)).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["online_url"], "https://meet.example.org/room");
    let id = r.body["id"].as_str().unwrap().to_owned();
    send(c.post(v.url(&format!("/api/v1/events/{id}/publish"))).bearer_auth(&root)).await;
    let ics = c.get(v.url(&format!("/api/v1/events/{id}.ics"))).send().await.unwrap().text().await.unwrap();
    let unfolded = ics.replace("\r\n ", "");
    let lines: Vec<&str> = unfolded.split("\r\n").collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("END:VEVENT")).count(), 1, "{ics}");
    assert!(lines.contains(&"DESCRIPTION:line one\\nEND:VEVENT\\nline three\\n\tindented"), "{ics}");
    assert!(lines.contains(&"URL:https://meet.example.org/room"), "{ics}");
}

/// Finding 6: a top-level array or scalar is never read as an object.
#[tokio::test]
async fn bodies_that_are_not_objects_are_refused_and_change_nothing() {
    let v = Veche::start();
    let (access, _) = signed_up(&v, "anna@example.org").await;
    let c = client();
    let put = |body: &'static str| {
        c.put(v.url("/api/v1/users/me/preferences"))
            .bearer_auth(&access)
            .header("content-type", "application/json")
            .body(body)
    };
    assert_eq!(send(put(r#"{"language": "ru"}"#)).await.status, 200);
    for body in ["[]", "[\"en\"]", "null", "\"ru\"", "7"] {
        let r = send(put(body)).await;
        r.assert_problem(422);
        assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("JSON object"), "{body}: {r:?}");
    }
    let prefs = get_auth(&v, "/api/v1/users/me/preferences", &access).await;
    assert_eq!(prefs.body["language"], "ru", "the refused bodies reset nothing");
    let r = send(
        c.post(v.url("/api/v1/auth/login"))
            .header("content-type", "application/json")
            .body(format!(r#"["anna@example.org", "{PASSWORD}"]"#)),
    )
    .await;
    r.assert_problem(422);
}

/// Finding 8: names that reach mail and pages hold no hidden characters, and an address
/// has one spelling.
#[tokio::test]
async fn lookalike_accounts_and_hidden_characters_are_refused() {
    let v = Veche::start();
    signed_up(&v, "anna@example.org").await;
    // The full-width twin is the same person.
    let r = post(
        &v,
        "/api/v1/auth/register",
        json!({"email": "ａｎｎａ@ｅｘａｍｐｌｅ.org", "password": PASSWORD, "display_name": "Anna"}),
    )
    .await;
    assert!(r.status == 409 || r.status == 202, "{r:?}");
    assert_eq!(login(&v, "ａｎｎａ@example.org", PASSWORD).await.status, 200, "one account, found by either spelling");
    for email in ["anna@p\u{0430}ypal.com", "an\u{200B}na@example.org", "anna@example.org\u{202E}"] {
        let r =
            post(&v, "/api/v1/auth/register", json!({"email": email, "password": PASSWORD, "display_name": "A"})).await;
        assert_eq!(fields(&r), ["email"], "{email:?}: {r:?}");
    }
    for name in ["Anna\r\nBcc: all@example.org", "Anna\u{202E}nnA", "Anna\0"] {
        let r = post(
            &v,
            "/api/v1/auth/register",
            json!({"email": "new@example.org", "password": PASSWORD, "display_name": name}),
        )
        .await;
        assert_eq!(fields(&r), ["display_name"], "{name:?}: {r:?}");
    }
    let root = admin(&v, "root@example.org").await;
    let r = post_as(&v, &root, "/api/v1/organizations", json!({"name": "Club\u{200B}"})).await;
    assert_eq!(fields(&r), ["name"], "{r:?}");
}

/// One rule for query strings: an undeclared parameter is refused and named, on every
/// operation (lists that take parameters and ones that take none alike).
#[tokio::test]
async fn unknown_query_parameters_are_refused_by_name() {
    let v = Veche::start();
    let (access, _) = signed_up(&v, "anna@example.org").await;
    for (path, bad) in [
        ("/api/v1/events?sortt=date", "sortt"),
        ("/api/v1/events?q=jazz&limitt=5", "limitt"),
        ("/api/v1/users/me/registrations?limit=5&sort=start", "sort"),
        ("/api/v1/users/me?expand=all", "expand"),
        ("/api/v1/organizations?pagee=2", "pagee"),
    ] {
        let r = get_auth(&v, path, &access).await;
        r.assert_problem(422);
        assert_eq!(fields(&r), [bad], "{path}: {r:?}");
    }
    assert_eq!(get_auth(&v, "/api/v1/events?q=jazz&limit=5", &access).await.status, 200);
}

/// Finding 7: the personal calendar feed's secret never reaches the log.
#[tokio::test]
async fn secret_paths_stay_out_of_the_log() {
    let v = Veche::start_with(&[("VECHE_LOG", "debug")]);
    let (access, _) = signed_up(&v, "anna@example.org").await;
    let link = send(client().post(v.url("/api/v1/users/me/calendar")).bearer_auth(&access)).await;
    let url = link.body["url"].as_str().unwrap().to_owned();
    assert_eq!(send(client().get(&url)).await.status, 200);
    let token = url.rsplit('/').next().unwrap().trim_end_matches(".ics").to_owned();
    let log: String = std::fs::read_dir(&v.data)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("veche-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(log.contains("/api/v1/calendar/[redacted]"), "the request was logged, redacted");
    assert!(!log.contains(&token), "the feed's token is in the log");
}

/// Finding 3: made-up methods do not mint metric series.
#[tokio::test]
async fn made_up_methods_share_one_metrics_label() {
    let v = Veche::start();
    let c = client();
    for method in ["BREW", "WHEN", "XYZZY"] {
        let r = send(c.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), v.url("/api/v1/events"))).await;
        assert!((400..500).contains(&r.status), "{method}: {r:?}");
    }
    let metrics = client().get(v.internal_url("/metrics")).send().await.unwrap().text().await.unwrap();
    for method in ["BREW", "WHEN", "XYZZY"] {
        assert!(!metrics.contains(&format!("method=\"{method}\"")), "{method} has its own series");
    }
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

/// Finding 3: `/metrics` is not on the public listener (only the internal one has it).
#[tokio::test]
async fn metrics_are_not_public() {
    let v = Veche::start();
    send(client().get(v.url("/metrics"))).await.assert_problem(404);
    let internal = client().get(v.internal_url("/metrics")).send().await.unwrap();
    assert_eq!(internal.status(), 200);
    assert!(internal.text().await.unwrap().contains("http_requests_total"));
}

/// Finding 9: behind a proxy, the client is the address the proxy saw (the rightmost
/// `X-Forwarded-For` entry), not the leftmost one the client wrote itself: a client that
/// makes up a new leftmost address for every request is still one client to the limits.
#[tokio::test]
async fn a_client_cannot_escape_its_rate_limit_by_inventing_forwarded_addresses() {
    let v =
        Veche::start_with(&[("VECHE_TRUSTED_PROXIES", "1"), ("VECHE_CLIENT_RPS", "1"), ("VECHE_CLIENT_BURST", "3")]);
    let c = client();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = send(c.get(v.url("/api/v1/events")).header("x-forwarded-for", format!("6.6.6.{i}, 203.0.113.9"))).await;
        statuses.push(r.status);
    }
    assert!(statuses.contains(&429), "invented addresses escaped the limit: {statuses:?}");
    // Another client behind the same proxy is not limited by the first one.
    let other = send(c.get(v.url("/api/v1/events")).header("x-forwarded-for", "198.51.100.4")).await;
    assert_eq!(other.status, 200);
}

/// Finding 10: the internal listener (no edge checks) stays on loopback even when the
/// public one listens on every address.
#[tokio::test]
async fn the_internal_listener_binds_loopback_whatever_the_public_address() {
    let v = Veche::start_on("0.0.0.0", &[]);
    let (pid, port) = (v.pid(), v.port);
    let ss = std::process::Command::new("ss").args(["-Hltnp"]).output().expect("ss (iproute2) lists listeners");
    let listeners: Vec<String> = String::from_utf8_lossy(&ss.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .map(|l| l.split_whitespace().nth(3).unwrap_or("").to_owned())
        .collect();
    assert_eq!(listeners.len(), 2, "{listeners:?}");
    assert!(listeners.contains(&format!("0.0.0.0:{port}")), "{listeners:?}");
    assert!(listeners.iter().any(|l| l.starts_with("127.0.0.1:")), "{listeners:?}");
}

/// Finding 10: an admin removed from an organization loses event rights at once, though
/// they used them (and so had their role cached) a moment before.
#[tokio::test]
async fn a_removed_admin_loses_event_rights_at_once() {
    let v = Veche::start();
    let (owner, _) = signed_up(&v, "owner@example.org").await;
    let org = create_org(&v, &owner, json!({"name": "Quick club"})).await;
    let admin = join(&v, &org, &owner, "admin@example.org", "admin").await;
    let body = online_event(org["id"].as_str().unwrap(), "https://meet.example.org/a");
    let created = post_as(&v, &admin, "/api/v1/events", body.clone()).await;
    assert_eq!(created.status, 201, "{created:?}");
    let event = format!("/api/v1/events/{}", created.body["id"].as_str().unwrap());
    assert_eq!(patch_as(&v, &admin, &event, json!({"title": "Renamed"})).await.status, 200);
    assert_eq!(post_as(&v, &admin, &format!("{event}/publish"), json!({})).await.status, 200);

    let removed = delete_as(&v, &owner, &org_path(&org, &format!("/members/{}", user_id(&admin)))).await;
    assert_eq!(removed.status, 204, "{removed:?}");
    patch_as(&v, &admin, &event, json!({"title": "Still mine?"})).await.assert_problem(403);
    post_as(&v, &admin, &format!("{event}/cancel"), json!({})).await.assert_problem(403);
    post_as(&v, &admin, "/api/v1/events", body).await.assert_problem(403);
}

/// Finding 5: an access token stops working when its session ends, on the users service
/// and on every other service's writes, however the session ended: logout, a replayed
/// refresh token, a password reset, an account disabled, deleted, or a role taken away.
#[tokio::test]
async fn access_tokens_die_with_their_session() {
    let v = Veche::start();
    let c = client();
    let me = |token: &str| send(c.get(v.url("/api/v1/users/me")).bearer_auth(token));
    let new_org = |token: &str, name: &str| {
        send(c.post(v.url("/api/v1/organizations")).bearer_auth(token).json(&json!({"name": name})))
    };
    let refused = |r: Reply| {
        r.assert_problem(401);
        assert!(r.body["detail"].as_str().unwrap_or("").contains("session"), "{r:?}");
    };
    let session = |email: &'static str| {
        let v = &v;
        async move {
            let r = login(v, email, PASSWORD).await;
            assert_eq!(r.status, 200, "{r:?}");
            (r.body["access_token"].as_str().unwrap().to_owned(), r.body["refresh_token"].as_str().unwrap().to_owned())
        }
    };

    // Logout ends one session, not the others.
    let (kept, _) = signed_up(&v, "ada@example.org").await;
    let (access, refresh) = session("ada@example.org").await;
    assert_eq!(new_org(&access, "Before logout").await.status, 201);
    assert_eq!(post(&v, "/api/v1/auth/logout", json!({"refresh_token": refresh})).await.status, 204);
    refused(me(&access).await);
    refused(new_org(&access, "After logout").await);
    assert_eq!(me(&kept).await.status, 200);

    // A replayed refresh token ends its family, the newest access token with it.
    let (_, refresh) = session("ada@example.org").await;
    let r = post(&v, "/api/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    let newest = r.body["access_token"].as_str().unwrap().to_owned();
    post(&v, "/api/v1/auth/refresh", json!({"refresh_token": refresh})).await.assert_problem(401);
    refused(me(&newest).await);

    // Ending a session from the list of one's sessions.
    let (other, _) = session("ada@example.org").await;
    let sessions = send(c.get(v.url("/api/v1/users/me/sessions")).bearer_auth(&kept)).await;
    let sid = sessions.body.as_array().unwrap().iter().find(|s| s["current"] == false).unwrap()["id"].clone();
    let sid = sid.as_str().unwrap();
    let r = send(c.delete(v.url(&format!("/api/v1/users/me/sessions/{sid}"))).bearer_auth(&kept)).await;
    assert_eq!(r.status, 204, "{r:?}");
    refused(me(&other).await);

    // A password reset ends every session.
    assert_eq!(post(&v, "/api/v1/auth/password-reset", json!({"email": "ada@example.org"})).await.status, 202);
    let token = token_in(&v.wait_mail("ada@example.org", "reset-password?token="));
    let r =
        post(&v, "/api/v1/auth/password-reset/confirm", json!({"token": token, "password": "a brand new passphrase"}));
    assert_eq!(r.await.status, 204);
    refused(me(&kept).await);

    // Disabled, deleted, or demoted by an administrator; deleted by oneself.
    let root = admin(&v, "root@example.org").await;
    for (email, change) in [("disabled@example.org", Some(json!({"disabled": true}))), ("deleted@example.org", None)] {
        let (token, _) = signed_up(&v, email).await;
        let id = me(&token).await.body["id"].as_str().unwrap().to_owned();
        let path = v.url(&format!("/api/v1/users/{id}"));
        let r = match change {
            Some(change) => send(c.patch(path).bearer_auth(&root).json(&change)).await,
            None => send(c.delete(path).bearer_auth(&root)).await,
        };
        assert!(r.status == 200 || r.status == 204, "{r:?}");
        refused(new_org(&token, email).await);
    }
    let (leaving, _) = signed_up(&v, "leaving@example.org").await;
    assert_eq!(send(c.delete(v.url("/api/v1/users/me")).bearer_auth(&leaving)).await.status, 204);
    refused(new_org(&leaving, "Ghost club").await);
    let second = admin(&v, "second@example.org").await;
    let id = me(&second).await.body["id"].as_str().unwrap().to_owned();
    let r = send(c.patch(v.url(&format!("/api/v1/users/{id}"))).bearer_auth(&root).json(&json!({"roles": []}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    refused(send(c.get(v.url("/api/v1/users")).bearer_auth(&second)).await);
    assert_eq!(send(c.get(v.url("/api/v1/users")).bearer_auth(&root)).await.status, 200);
}

/// Finding 10: a deleted account leaves its organizations, and one it owned passes to its
/// longest-standing admin, whether the account deletes itself or an administrator does.
#[tokio::test]
async fn a_deleted_owner_hands_the_organization_on() {
    let v = Veche::start();
    let c = cast(&v).await;
    let owner_id = user_id(&c.owner);
    // Only the users service may take an account out: a person's token is refused there.
    let forget = v.internal_url(&format!("/internal/v1/organizations/members/{owner_id}"));
    send(client().delete(&forget).bearer_auth(&c.admin)).await.assert_problem(403);
    assert_eq!(role_of(&v, &c.org, &c.member, &c.owner).await, "owner");
    let r = delete_as(&v, &c.owner, "/api/v1/users/me").await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(role_of(&v, &c.org, &c.member, &c.admin).await, "owner");
    let r = get_auth(&v, &org_path(&c.org, &format!("/members/{owner_id}")), &c.admin).await;
    r.assert_problem(404);
    let members = get_auth(&v, &org_path(&c.org, "/members"), &c.admin).await;
    let ids: Vec<&str> =
        members.body["items"].as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    assert!(!ids.contains(&owner_id.as_str()), "{members:?}");
    assert_eq!(ids.len(), 2, "{members:?}");
    // The new owner owns for real: they can hand ownership on again.
    let r = post_as(&v, &c.admin, &org_path(&c.org, "/transfer"), json!({"user_id": user_id(&c.member)})).await;
    assert!(r.status < 300, "{r:?}");

    // An administrator deleting an owner: the same.
    let root = admin(&v, "root@example.org").await;
    let (solo, _) = signed_up(&v, "solo@example.org").await;
    let club = create_org(&v, &solo, json!({"name": "Solo club"})).await;
    let heir = join(&v, &club, &solo, "heir@example.org", "member").await;
    let r = delete_as(&v, &root, &format!("/api/v1/users/{}", user_id(&solo))).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(role_of(&v, &club, &heir, &heir).await, "owner");
}

/// Finding 10: while the organizations service cannot be reached, an account is not
/// deleted (503), so that no organization keeps a deleted owner.
#[tokio::test]
async fn an_account_is_not_deleted_while_its_organizations_cannot_be_told() {
    let secret = "a-test-secret-of-the-users-service".to_owned();
    let stopped = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let users = crate::common::served::Served::start(
        "users",
        &[
            ("VECHE_SERVICE_CLIENTS", format!("users={secret}")),
            ("VECHE_SERVICE_CLIENT_SECRET", secret.clone()),
            ("VECHE_ORGANIZATIONS_URL", format!("http://{stopped}")),
        ],
    );
    let c = client();
    let body = json!({"email": "stays@example.org", "password": PASSWORD, "display_name": "Stays"});
    assert_eq!(send(c.post(users.url("/api/v1/auth/register")).json(&body)).await.status, 201);
    let login = json!({"email": "stays@example.org", "password": PASSWORD});
    let r = send(c.post(users.url("/api/v1/auth/login")).json(&login)).await;
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let r = send(c.delete(users.url("/api/v1/users/me")).bearer_auth(&token)).await;
    r.assert_problem(503);
    assert_eq!(send(c.get(users.url("/api/v1/users/me")).bearer_auth(&token)).await.status, 200, "nothing was deleted");
}
