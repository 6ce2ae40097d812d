//! Mail that tells people what happened, end to end: the real binary sends through a
//! real SMTP server on loopback (Python's aiosmtpd), and every message is read back with
//! an independent MIME parser (Python's `email`, calendars by `icalendar`). Registration,
//! waitlist, promotion, a moved and a cancelled event, the reminder a day before, an
//! accepted invitation; each in its reader's language and zone, once, even across a
//! crash; preferences honoured; a refused address holding up nobody, a server that
//! turns a message away for now getting it again.

use crate::common::orgs::{create_org, delete_as, org_path, patch_as, post_as};
use crate::common::peer::Peer;
use crate::common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// aiosmtpd on a loopback port, keeping what it accepts in a directory.
struct SmtpServer(Peer);

impl SmtpServer {
    fn start() -> Self {
        Self(Peer::start("smtp_sink.py"))
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.0.port)
    }

    /// Every message received so far, as the independent parser reads it.
    fn messages(&self) -> Vec<Value> {
        if !self.0.dir.exists() {
            return Vec::new();
        }
        run_python("read_mail.py", &[self.0.dir.to_str().unwrap()]).as_array().unwrap().clone()
    }

    fn to(&self, to: &str) -> Vec<Value> {
        self.messages().into_iter().filter(|m| m["to"].as_str().unwrap_or("").contains(to)).collect()
    }

    /// Waits until `to` has a message whose subject contains `subject`; returns it.
    fn wait(&self, to: &str, subject: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.to(to).into_iter().find(|m| m["subject"].as_str().unwrap_or("").contains(subject));
            if let Some(m) = found {
                return m;
            }
            let seen: Vec<Value> = self.to(to).iter().map(|m| m["subject"].clone()).collect();
            assert!(Instant::now() < deadline, "no mail to {to} about {subject:?}; it has {seen:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The subjects of what `to` received about events (not the sign-up's own mail).
    fn subjects(&self, to: &str) -> Vec<String> {
        let subjects = self.to(to).into_iter().map(|m| m["subject"].as_str().unwrap().to_owned());
        subjects.filter(|s| s.contains("Rust & Tea")).collect()
    }
}

fn veche_sending_to(smtp: &SmtpServer) -> Veche {
    Veche::start_with(&[
        ("VECHE_SMTP_URL", &smtp.url()),
        ("VECHE_MAIL_FROM", "Veche <hello@veche.test>"),
        ("VECHE_REMINDER_SCAN_SECONDS", "1"),
    ])
}

/// Signs `email` up as `name` with these preferences; their token.
async fn person(v: &Veche, email: &str, name: &str, preferences: Value) -> String {
    let (token, _) = signed_up(v, email).await;
    assert_eq!(patch_as(v, &token, "/api/v1/users/me", json!({"display_name": name})).await.status, 200);
    let r = orgs_put(v, &token, "/api/v1/users/me/preferences", preferences).await;
    assert_eq!(r.status, 200, "{r:?}");
    token
}

async fn orgs_put(v: &Veche, token: &str, path: &str, body: Value) -> Reply {
    crate::common::orgs::call(v, "PUT", path, Some(token), Some(body)).await
}

/// A published event with `capacity` seats starting on `start`; its id.
async fn event(v: &Veche, owner: &str, org: &Value, capacity: u32, start: &str, end: &str) -> String {
    let body = json!({"title": "Rust & Tea", "description": "Talks, then tea", "start": start, "end": end,
        "time_zone": "Europe/Moscow", "format": "offline",
        "venue": {"name": "Library", "address": "Tverskaya 1", "city": "Moscow", "latitude": null, "longitude": null},
        "online_url": null, "tags": [], "category": "meetup", "capacity": capacity, "price": null,
        "visibility": "public", "cover_image_url": null, "organization_id": org["id"]});
    let r = post_as(v, owner, "/api/v1/events", body).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(post_as(v, owner, &format!("/api/v1/events/{id}/publish"), json!({})).await.status, 200);
    id
}

/// Registers `who` for a new event titled "Marker" and waits for its mail: the outbox is
/// mailed in order, so once it is there, everything before it has been sent (again, too,
/// if something were sent twice).
async fn marker(v: &Veche, smtp: &SmtpServer, owner: &str, org: &Value, who: (&str, &str)) {
    let id = event(v, owner, org, 5, "2031-03-07T16:00:00Z", "2031-03-07T19:00:00Z").await;
    let r = patch_as(v, owner, &format!("/api/v1/events/{id}"), json!({"title": "Marker"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    register(v, who.1, &id).await;
    smtp.wait(who.0, "Marker");
}

async fn register(v: &Veche, token: &str, event: &str) -> Value {
    let r = post_as(v, token, &format!("/api/v1/events/{event}/registrations"), json!({})).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body
}

async fn ticket(v: &Veche, token: &str, event: &str) -> String {
    let r = get_auth(v, &format!("/api/v1/events/{event}/registrations/me/ticket"), token).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["code"].as_str().unwrap().to_owned()
}

fn calendar(message: &Value) -> &Value {
    message["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["content_type"] == "text/calendar")
        .unwrap_or_else(|| panic!("no calendar attached: {message}"))
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test]
async fn attendees_are_told_what_happened_in_their_language_once() {
    let smtp = SmtpServer::start();
    let mut v = veche_sending_to(&smtp);
    let owner = person(&v, "owner@example.org", "Olga Owner", json!({})).await;
    let org = create_org(&v, &owner, json!({"name": "Tea Club"})).await;
    let id = event(&v, &owner, &org, 2, "2031-02-07T16:00:00Z", "2031-02-07T19:00:00Z").await;

    // Anna reads Russian in Moscow; Ben English in London; Quiet wants no news.
    let anna = person(&v, "anna@example.org", "Анна", json!({"language": "ru", "time_zone": "Europe/Moscow"})).await;
    let ben = person(&v, "ben@example.org", "Ben", json!({"language": "en-GB", "time_zone": "Europe/London"})).await;
    let quiet =
        person(&v, "quiet@example.org", "Quiet", json!({"notifications": {"email": false, "event_reminders": false}}))
            .await;

    register(&v, &anna, &id).await;
    let seat = smtp.wait("anna@example.org", "Вы зарегистрированы: Rust & Tea");
    let code = ticket(&v, &anna, &id).await;
    let text = seat["text"].as_str().unwrap();
    assert!(text.contains(&format!("Ваш билет: {code}")), "{text}");
    assert!(text.contains("пятница, 7 февраля 2031, 19:00 (Europe/Moscow)"), "{text}");
    assert!(text.contains("Library, Tverskaya 1, Moscow"), "{text}");
    assert_eq!(seat["from"], "Veche <hello@veche.test>");
    assert_eq!(seat["multipart"], "multipart/mixed");
    let html = seat["html"].as_str().expect("an HTML alternative");
    assert!(html.contains("lang=\"ru\"") && html.contains("Rust &amp; Tea"), "HTML is escaped: {html}");
    let cal = calendar(&seat);
    assert_eq!(cal["event"]["summary"], "Rust & Tea");
    assert!(cal["event"]["description"].as_str().unwrap().contains(&code), "{cal}");
    assert_eq!(cal["event"]["start"], "2031-02-07T19:00:00+03:00");
    let qr = seat["attachments"].as_array().unwrap().iter().find(|a| a["content_type"] == "image/svg+xml");
    assert!(qr.is_some_and(|q| q["text"].as_str().unwrap().contains("<svg")), "{seat}");

    register(&v, &quiet, &id).await;
    smtp.wait("quiet@example.org", "You are registered");
    register(&v, &ben, &id).await;
    let waiting = smtp.wait("ben@example.org", "You are on the waitlist: Rust & Tea");
    assert!(waiting["text"].as_str().unwrap().contains("Friday, 7 February 2031, 16:00 (Europe/London)"), "{waiting}");

    // Anna gives her seat up: Ben is promoted, with a ticket of his own.
    assert_eq!(delete_as(&v, &anna, &format!("/api/v1/events/{id}/registrations/me")).await.status, 200);
    let promoted = smtp.wait("ben@example.org", "A seat freed up for you");
    let bens = ticket(&v, &ben, &id).await;
    assert!(promoted["text"].as_str().unwrap().contains(&bens), "{promoted}");

    // Seats taken days ago (the store's clock moved back), then the event moves to three
    // hours from now: holders are told of the new time, and reminded, as they wish.
    let db = rusqlite::Connection::open(v.data.join("events.db")).unwrap();
    db.busy_timeout(Duration::from_secs(30)).unwrap();
    db.execute("UPDATE registrations SET created_at = created_at - 10 * 86400 WHERE event_id = ?1", [&id]).unwrap();
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(3);
    let r = patch_as(
        &v,
        &owner,
        &format!("/api/v1/events/{id}"),
        json!({"start": rfc3339(soon), "end": rfc3339(soon + jiff::SignedDuration::from_hours(2))}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let moved = smtp.wait("ben@example.org", "New time: Rust & Tea");
    assert!(moved["text"].as_str().unwrap().contains("changed the time"), "{moved}");
    let reminder = smtp.wait("ben@example.org", "Coming up: Rust & Tea");
    assert!(reminder["text"].as_str().unwrap().contains(&bens), "{reminder}");

    // A crash and a restart send nothing twice; then a cancellation reaches Ben.
    v.restart();
    assert_eq!(post_as(&v, &owner, &format!("/api/v1/events/{id}/cancel"), json!({})).await.status, 200);
    let cancelled = smtp.wait("ben@example.org", "Cancelled: Rust & Tea");
    assert_eq!(calendar(&cancelled)["event"]["status"], "CANCELLED");
    marker(&v, &smtp, &owner, &org, ("ben@example.org", &ben)).await;
    // Each once; the reminder scan and the outbox may pass each other, so in any order.
    let mut bens_mail = smtp.subjects("ben@example.org");
    bens_mail.sort();
    assert_eq!(
        bens_mail,
        [
            "A seat freed up for you: Rust & Tea",
            "Cancelled: Rust & Tea",
            "Coming up: Rust & Tea",
            "New time: Rust & Tea",
            "You are on the waitlist: Rust & Tea",
        ],
    );
    // Quiet hears of their own registration only; Anna, no longer coming, of nothing more.
    assert_eq!(smtp.subjects("quiet@example.org"), ["You are registered: Rust & Tea"]);
    assert_eq!(smtp.subjects("anna@example.org"), ["Вы зарегистрированы: Rust & Tea"]);
}

#[tokio::test]
async fn an_inviter_hears_that_the_invitation_was_accepted() {
    let smtp = SmtpServer::start();
    let v = veche_sending_to(&smtp);
    let owner = person(&v, "owner@example.org", "Olga Owner", json!({"language": "ru"})).await;
    let org = create_org(&v, &owner, json!({"name": "Чайный клуб"})).await;
    // The invitation speaks the inviter's browser's language.
    let invite = client()
        .post(v.url(&org_path(&org, "/invitations")))
        .bearer_auth(&owner)
        .header("accept-language", "ru-RU,ru;q=0.9,en;q=0.5")
        .json(&json!({"email": "ivan@example.org", "role": "member"}));
    assert_eq!(send(invite).await.status, 201);
    let mail = smtp.wait("ivan@example.org", "Приглашение в Чайный клуб");
    let text = mail["text"].as_str().unwrap();
    let token = token_in(text);
    let ivan = person(&v, "ivan@example.org", "Иван", json!({})).await;
    let r = post_as(&v, &ivan, "/api/v1/organizations/invitations/accept", json!({"token": token})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let joined = smtp.wait("owner@example.org", "Иван теперь в Чайный клуб");
    assert!(joined["text"].as_str().unwrap().contains("роль: member"), "{joined}");
}

#[tokio::test]
async fn a_refused_address_holds_up_nobody_and_a_message_turned_away_comes_again() {
    let smtp = SmtpServer::start();
    let v = veche_sending_to(&smtp);
    let owner = person(&v, "owner@example.org", "Olga Owner", json!({})).await;
    let org = create_org(&v, &owner, json!({"name": "Tea Club"})).await;
    let id = event(&v, &owner, &org, 10, "2031-02-07T16:00:00Z", "2031-02-07T19:00:00Z").await;
    // The server refuses bounce@ for good; it turns each new message to flaky@ away once.
    let bounce = person(&v, "bounce@example.org", "Bounce", json!({})).await;
    let flaky = person(&v, "flaky@example.org", "Flaky", json!({})).await;
    register(&v, &bounce, &id).await;
    register(&v, &flaky, &id).await;
    smtp.wait("flaky@example.org", "You are registered: Rust & Tea");
    marker(&v, &smtp, &owner, &org, ("flaky@example.org", &flaky)).await;
    let registered = smtp.subjects("flaky@example.org");
    assert_eq!(registered, ["You are registered: Rust & Tea"], "sent again after the 451, and only once");
    assert!(smtp.to("bounce@example.org").is_empty());
}

/// The operator's rendering of `spec.mail` is what the services read: the variables it
/// puts in the events Deployment (the SMTP URL by reference, filled as the kubelet would
/// from the Secret) start a Veche whose mail reaches the SMTP server.
#[tokio::test]
async fn the_operators_mail_settings_are_what_the_services_read() {
    use operator::crd::{MailSpec, Platform, PlatformSpec, SecretKeyRef, ServiceDeployment};
    use operator::crd::{ServiceDeploymentSpec, ServiceKind};
    let smtp = SmtpServer::start();
    let spec = PlatformSpec {
        mail: Some(MailSpec {
            smtp_url: SecretKeyRef { name: "smtp".into(), key: None },
            from: Some("Club <club@veche.test>".into()),
        }),
        ..PlatformSpec::default()
    };
    let mut platform = Platform::new("demo", spec);
    platform.metadata.namespace = Some("apps".into());
    platform.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    let mut sd = ServiceDeployment::new("demo-events", ServiceDeploymentSpec::new("demo", ServiceKind::Events));
    sd.metadata.namespace = Some("apps".into());
    sd.metadata.uid = Some("00000000-0000-0000-0000-000000000002".into());
    let deployment = operator::render::service::render(&platform, &sd).unwrap().deployment;
    let env = deployment.spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap();
    let mut vars: Vec<(String, String)> = Vec::new();
    for e in env.iter().filter(|e| e.name == "VECHE_SMTP_URL" || e.name == "VECHE_MAIL_FROM") {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                let secret = from.secret_key_ref.as_ref().unwrap();
                assert_eq!((secret.name.as_str(), secret.key.as_str()), ("smtp", "url"));
                smtp.url()
            }
            _ => unreachable!(),
        };
        vars.push((e.name.clone(), value));
    }
    assert_eq!(vars.len(), 2, "{vars:?}");
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let v = Veche::start_with(&vars);
    let owner = person(&v, "owner@example.org", "Olga Owner", json!({})).await;
    let org = create_org(&v, &owner, json!({"name": "Tea Club"})).await;
    let id = event(&v, &owner, &org, 5, "2031-02-07T16:00:00Z", "2031-02-07T19:00:00Z").await;
    let guest = person(&v, "guest@example.org", "Guest", json!({})).await;
    register(&v, &guest, &id).await;
    let mail = smtp.wait("guest@example.org", "You are registered: Rust & Tea");
    assert_eq!(mail["from"], "Club <club@veche.test>");
}
