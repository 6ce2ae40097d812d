//! The pages of `veche up` in a real browser: Debian's chromium, driven by playwright-core
//! (`tests/browser/*.cjs`) against a freshly started `veche up`.
//!
//! - The analytics dashboard: an organizer logs in, picks their event, and the page must
//!   show the numbers this test made happen: views, registrations and a check-in.
//! - The invitation page an invitation mail links to: a newcomer signs up there and joins.
//! - The verify-email and reset-password pages the account mails link to.
//! - A ticket's QR code, read back by jsQR from what chromium draws.
//! - Logging in to the dashboard with a second factor (a code from pyotp), and through
//!   an OpenID provider (npm's oidc-provider, its own login form).
//!
//! Screenshots are kept as artifacts in the cargo target directory (`tmp/`).
//!
//! scripts/test installs the browser and sets VECHE_CHROMIUM and VECHE_BROWSER_MODULES;
//! without them this test fails and says so (it is never skipped).

use crate::common::orgs::{create_org, invite, post_as};
use crate::common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test, which installs chromium and playwright-core")
    })
}

#[tokio::test]
async fn an_organizer_sees_the_events_numbers_in_the_dashboard() {
    let v = Veche::start();
    let (owner, _) = signed_up(&v, "organizer@example.org").await;
    let org = create_org(&v, &owner, json!({ "name": "Jazz club", "slug": "jazz-club" })).await;
    let org_id = org["id"].as_str().unwrap().to_owned();
    let event = json!({"title": "Jazz night", "description": "", "start": "2030-12-05T16:00:00Z",
        "end": "2030-12-05T18:00:00Z", "time_zone": "Europe/Moscow", "format": "online",
        "online_url": "https://example.org/live", "tags": ["jazz"], "category": "concert",
        "capacity": 10, "organization_id": org_id});
    let r = post_as(&v, &owner, "/api/v1/events", event).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(post_as(&v, &owner, &format!("/api/v1/events/{id}/publish"), json!({})).await.status, 200);

    // Three anonymous page views, two registrations, one check-in.
    for _ in 0..3 {
        assert_eq!(send(client().get(v.url(&format!("/api/v1/events/{id}")))).await.status, 200);
    }
    let mut attendees = Vec::new();
    for who in ["ann", "bob"] {
        let (token, _) = signed_up(&v, &format!("{who}@example.org")).await;
        let r = post_as(&v, &token, &format!("/api/v1/events/{id}/registrations"), json!({})).await;
        assert_eq!(r.status, 201, "{r:?}");
        attendees.push(crate::common::orgs::user_id(&token));
    }
    let r =
        post_as(&v, &owner, &format!("/api/v1/events/{id}/registrations/{}/check-in", attendees[0]), json!({})).await;
    assert!(r.status < 300, "{r:?}");

    // What the page must show, once the relay has delivered everything.
    let expect = json!({ "views": 3, "registrations": 2, "cancellations": 0, "check_ins": 1 });
    let report = format!("/api/v1/analytics/events/{id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let totals: Value = get_auth(&v, &report, &owner).await.body["totals"].clone();
        if ["views", "registrations", "check_ins"].iter().all(|m| totals[m] == expect[m]) {
            break;
        }
        assert!(Instant::now() < deadline, "analytics never caught up: {totals}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An organizer of their own club who reads Russian.
    let (russian, _) = signed_up(&v, "ilya@example.org").await;
    let r = send(
        client().put(v.url("/api/v1/users/me/preferences")).bearer_auth(&russian).json(&json!({"language": "ru"})),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    create_org(&v, &russian, json!({ "name": "Клуб" })).await;

    run_browser(
        "dashboard",
        &[
            ("VECHE_URL", v.url("")),
            ("RU_EMAIL", "ilya@example.org".into()),
            ("EMAIL", "organizer@example.org".into()),
            ("PASSWORD", PASSWORD.into()),
            ("ORG_ID", org_id),
            ("EVENT_ID", id),
            ("EXPECT", expect.to_string()),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_invitee_signs_up_and_joins_from_the_mail_link() {
    let v = Veche::start();
    let (owner, _) = signed_up(&v, "host@example.org").await;
    let org = create_org(&v, &owner, json!({ "name": "Book club", "slug": "book-club" })).await;
    invite(&v, &org, &owner, "newcomer@example.org", "member").await;
    let mail = v.wait_mail("newcomer@example.org", "/invitations/accept?token=");
    let link = mail
        .split_whitespace()
        .find(|w| w.contains("/invitations/accept?token="))
        .expect("the link in the mail")
        .to_owned();
    run_browser(
        "invitation",
        &[
            ("LINK", link),
            ("EMAIL", "newcomer@example.org".into()),
            ("PASSWORD", PASSWORD.into()),
            ("ORG_NAME", "Book club".into()),
        ],
    )
    .await;
    // The newcomer is a member, as the API says.
    let r = login(&v, "newcomer@example.org", PASSWORD).await;
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let mine = get_auth(&v, "/api/v1/users/me/organizations", &token).await;
    assert_eq!(mine.body["items"][0]["id"], org["id"], "{mine:?}");
    assert_eq!(mine.body["items"][0]["role"], "member", "{mine:?}");
}

/// The first link in the newest mail to `to` that contains `path`.
fn link_in_mail(v: &Veche, to: &str, path: &str) -> String {
    let mail = v.wait_mail(to, path);
    mail.split_whitespace().find(|w| w.contains(path)).expect("the link in the mail").to_owned()
}

#[tokio::test]
async fn a_newcomer_confirms_their_address_from_the_mail_link() {
    let v = Veche::start();
    let (token, _) = signed_up(&v, "newcomer@example.org").await;
    assert_eq!(get_auth(&v, "/api/v1/users/me", &token).await.body["email_verified"], false);
    let link = link_in_mail(&v, "newcomer@example.org", "/verify-email?token=");
    run_browser("verify-email", &[("LINK", link), ("EMAIL", "newcomer@example.org".into())]).await;
    let me = get_auth(&v, "/api/v1/users/me", &token).await;
    assert_eq!(me.body["email_verified"], true, "{me:?}");
}

#[tokio::test]
async fn a_forgotten_password_is_reset_from_the_mail_link() {
    let v = Veche::start();
    signed_up(&v, "forgetful@example.org").await;
    let r = post(&v, "/api/v1/auth/password-reset", json!({"email": "forgetful@example.org"})).await;
    assert_eq!(r.status, 202, "{r:?}");
    let link = link_in_mail(&v, "forgetful@example.org", "/reset-password?token=");
    let new_password = "a brand new passphrase";
    run_browser("reset-password", &[("LINK", link), ("NEW_PASSWORD", new_password.into())]).await;
    assert_eq!(login(&v, "forgetful@example.org", new_password).await.status, 200);
    login(&v, "forgetful@example.org", PASSWORD).await.assert_problem(401);
}

#[tokio::test]
async fn a_russian_reader_gets_mail_and_pages_in_russian() {
    let v = Veche::start();
    let (token, _) = signed_up(&v, "olga@example.org").await;
    let r = send(
        client()
            .put(v.url("/api/v1/users/me/preferences"))
            .bearer_auth(&token)
            .json(&json!({"language": "ru-RU", "time_zone": "Europe/Moscow"})),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(&v, "/api/v1/auth/password-reset", json!({"email": "olga@example.org"})).await;
    assert_eq!(r.status, 202, "{r:?}");
    let mail = v.wait_mail("olga@example.org", "Subject: Сброс пароля Veche");
    assert!(mail.contains("Кто-то попросил сбросить пароль"), "{mail}");
    let link = link_in_mail(&v, "olga@example.org", "/reset-password?token=");
    assert!(link.ends_with("&lang=ru"), "the link names the mail's language: {link}");
    let new_password = "новый длинный пароль";
    run_browser(
        "pages-ru",
        &[("LINK", link), ("VERIFY_URL", v.url("/verify-email")), ("NEW_PASSWORD", new_password.into())],
    )
    .await;
    assert_eq!(login(&v, "olga@example.org", new_password).await.status, 200);

    // Over plain HTTP: the browser's language, said in Content-Language; English else.
    for (accept, lang, heading) in
        [("ru-RU,ru;q=0.9", "ru", "Присоединиться к организации"), ("de, fr", "en", "Join an organization")]
    {
        let r = client().get(v.url("/invitations/accept")).header("accept-language", accept).send().await.unwrap();
        assert_eq!(r.headers()["content-language"], lang);
        assert_eq!(r.headers()["vary"], "accept-language");
        assert!(r.text().await.unwrap().contains(heading), "{accept}");
    }
}

#[tokio::test]
async fn a_person_with_a_second_factor_logs_in_to_the_dashboard() {
    use crate::common::second_factor::{codes, early_in_a_step, turn_on};
    let v = Veche::start();
    let (token, _) = signed_up(&v, "careful@example.org").await;
    let t = early_in_a_step().await;
    let (uri, _) = turn_on(&v, &token, t).await;
    let code = codes(&uri, &[t]).remove(0);
    run_browser(
        "dashboard-login-code",
        &[
            ("VECHE_URL", v.url("")),
            ("EMAIL", "careful@example.org".into()),
            ("PASSWORD", PASSWORD.into()),
            ("CODE", code),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_person_signs_in_to_the_dashboard_through_the_identity_provider() {
    let (v, _provider) = crate::common::oidc::with_provider();
    run_browser("dashboard-sso", &[("VECHE_URL", v.url("")), ("LOGIN", "gina".into())]).await;
    // The account was made from what the provider said, with a verified address.
    assert_eq!(register(&v, "gina@example.org").await.status, 409);
}

/// The pages are served with their strict headers, and their files too; an unknown file
/// is a problem, not a page.
#[tokio::test]
async fn the_mail_pages_are_served_with_a_strict_policy() {
    let v = Veche::start();
    for path in ["/verify-email", "/reset-password", "/invitations/accept"] {
        let r = client().get(v.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(h["content-security-policy"].to_str().unwrap().contains("script-src 'self'"), "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        let html = r.text().await.unwrap();
        assert!(!html.contains("<script>") && !html.contains("onclick"), "{path}: no inline script");
        // Every file the page loads is there.
        for file in html.split('"').filter(|s| s.starts_with("/account/") || s.starts_with("/invitations/")) {
            let r = client().get(v.url(file)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path} loads {file}");
        }
    }
    send(client().get(v.url("/account/nothing.js"))).await.assert_problem(404);
}

/// The ticket's QR code scans to its code with a decoder that is not ours (jsQR on the
/// pixels chromium draws from the SVG the API serves).
#[tokio::test]
async fn a_ticket_scans_to_its_code() {
    let v = Veche::start();
    let (owner, _) = signed_up(&v, "organizer@example.org").await;
    let org = create_org(&v, &owner, json!({ "name": "Chess club" })).await;
    let event = json!({"title": "Blitz", "description": "", "start": "2030-12-05T16:00:00Z",
        "end": "2030-12-05T18:00:00Z", "time_zone": "Europe/Moscow", "format": "online",
        "online_url": "https://example.org/live", "tags": [], "category": "meetup",
        "capacity": 10, "organization_id": org["id"]});
    let id = post_as(&v, &owner, "/api/v1/events", event).await.body["id"].as_str().unwrap().to_owned();
    assert_eq!(post_as(&v, &owner, &format!("/api/v1/events/{id}/publish"), json!({})).await.status, 200);
    let (guest, _) = signed_up(&v, "guest@example.org").await;
    assert_eq!(post_as(&v, &guest, &format!("/api/v1/events/{id}/registrations"), json!({})).await.status, 201);
    let ticket = format!("/api/v1/events/{id}/registrations/me/ticket");
    let code = get_auth(&v, &ticket, &guest).await.body["code"].as_str().unwrap().to_owned();
    let svg = send(client().get(v.url(&format!("{ticket}?format=svg"))).bearer_auth(&guest)).await;
    assert_eq!(svg.content_type, "image/svg+xml", "{svg:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ticket.svg");
    std::fs::write(&file, svg.body.as_str().unwrap()).unwrap();
    run_browser("ticket-qr", &[("TICKET_SVG", file.display().to_string()), ("TICKET_CODE", code)]).await;
}

/// Runs `tests/browser/<name>.cjs` with `vars` in chromium; fails with its output unless
/// it passes, and checks it left a real screenshot at `<target>/tmp/<name>.png`.
async fn run_browser(name: &str, vars: &[(&str, String)]) {
    let (chromium, modules) = (env("VECHE_CHROMIUM"), env("VECHE_BROWSER_MODULES"));
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
    let _ = std::fs::remove_file(&screenshot);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/browser/{name}.cjs"));
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script).env("NODE_PATH", &modules).env("VECHE_CHROMIUM", &chromium).env("SCREENSHOT", &screenshot);
    for (key, value) in vars {
        cmd.env(key, value);
    }
    let out = cmd.output().await.expect("running node");
    assert!(
        out.status.success(),
        "the {name} page check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&screenshot).expect("the screenshot was saved");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "a real screenshot");
    eprintln!("{name} screenshot: {}", screenshot.display());
}
