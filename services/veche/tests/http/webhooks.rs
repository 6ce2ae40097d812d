//! Webhooks end to end: the real binary posts an organization's facts to a receiver on
//! loopback (Python's http.server), whose signatures are checked with Python's own hmac,
//! as an integrator would. Subscriptions by kind, one organization's facts never reaching
//! another's webhook, a paused webhook getting nothing, a receiver that fails twice
//! getting the same delivery again until it takes it, one that always fails in the log,
//! and URLs a webhook may not have.

use crate::common::orgs::{create_org, patch_as, post_as};
use crate::common::peer::Peer;
use crate::common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn veche_posting_to(receiver: &Peer) -> Veche {
    Veche::start_with(&[
        ("VECHE_FETCH_ALLOW_HOSTS", &format!("127.0.0.1:{}", receiver.port)),
        ("VECHE_WEBHOOK_RETRY_SECONDS", "1"),
    ])
}

/// What reached `path`, each request checked against `secret` by Python.
fn received(receiver: &Peer, path: &str, secret: &str) -> Vec<Value> {
    if !receiver.dir.exists() {
        return Vec::new();
    }
    run_python("verify_webhooks.py", &[receiver.dir.to_str().unwrap(), path, secret]).as_array().unwrap().clone()
}

/// Waits until `path` received `n` requests; returns them.
fn wait_for(receiver: &Peer, path: &str, secret: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = received(receiver, path, secret);
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{path} received {} of {n}: {got:?}", got.len());
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn webhook(v: &Veche, owner: &str, org: &Value, url: String, events: &[&str]) -> Value {
    let path = format!("/api/v1/organizations/{}/webhooks", org["id"].as_str().unwrap());
    let r = post_as(v, owner, &path, json!({"url": url, "events": events, "description": "CRM"})).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body
}

async fn published(v: &Veche, owner: &str, org: &Value) -> String {
    let body = json!({"title": "Open day", "description": "", "start": "2031-03-01T10:00:00Z",
        "end": "2031-03-01T12:00:00Z", "time_zone": "UTC", "format": "online",
        "online_url": "https://example.org/live", "tags": [], "category": "meetup", "capacity": 10,
        "organization_id": org["id"]});
    let r = post_as(v, owner, "/api/v1/events", body).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(post_as(v, owner, &format!("/api/v1/events/{id}/publish"), json!({})).await.status, 200);
    id
}

async fn deliveries(v: &Veche, owner: &str, hook: &Value) -> Vec<Value> {
    let path = format!(
        "/api/v1/organizations/{}/webhooks/{}/deliveries",
        hook["organization_id"].as_str().unwrap(),
        hook["id"].as_str().unwrap()
    );
    let r = get_auth(v, &path, owner).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_organization_hears_of_its_facts_signed_and_retried() {
    let receiver = Peer::start("webhook_receiver.py");
    let v = veche_posting_to(&receiver);
    let base = format!("http://127.0.0.1:{}", receiver.port);
    let (owner, _) = signed_up(&v, "owner@example.org").await;
    let org = create_org(&v, &owner, json!({"name": "Hooks"})).await;
    let crm = webhook(&v, &owner, &org, format!("{base}/crm"), &["event.published", "registration.made"]).await;
    let secret = crm["secret"].as_str().expect("the secret, shown once").to_owned();
    assert!(secret.starts_with("whsec_"));
    let flaky = webhook(&v, &owner, &org, format!("{base}/flaky"), &["registration.made"]).await;
    let down = webhook(&v, &owner, &org, format!("{base}/down"), &["registration.made"]).await;
    let paused = webhook(&v, &owner, &org, format!("{base}/paused"), &["registration.made"]).await;
    let hook_path =
        format!("/api/v1/organizations/{}/webhooks/{}", org["id"].as_str().unwrap(), paused["id"].as_str().unwrap());
    let r = patch_as(&v, &owner, &hook_path, json!({"active": false})).await;
    assert_eq!((r.status, &r.body["active"]), (200, &json!(false)), "{r:?}");
    let listed = get_auth(&v, &format!("/api/v1/organizations/{}/webhooks", org["id"].as_str().unwrap()), &owner).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 4);
    assert!(listed.body["items"].as_array().unwrap().iter().all(|w| w.get("secret").is_none()), "never shown again");

    // Another organization's facts go to its own webhooks only.
    let (stranger, _) = signed_up(&v, "stranger@example.org").await;
    let other = create_org(&v, &stranger, json!({"name": "Others"})).await;
    published(&v, &stranger, &other).await;

    let event = published(&v, &owner, &org).await;
    let (guest, _) = signed_up(&v, "guest@example.org").await;
    assert_eq!(post_as(&v, &guest, &format!("/api/v1/events/{event}/registrations"), json!({})).await.status, 201);

    // Deliveries are posted side by side, so they may arrive in any order (receivers
    // order by `created_at`).
    let mut got = wait_for(&receiver, "/crm", &secret, 2);
    got.sort_by_key(|r| r["body"]["type"].as_str().unwrap().to_owned());
    let kinds: Vec<&str> = got.iter().map(|r| r["body"]["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["event.published", "registration.made"], "{got:?}");
    for r in &got {
        assert_eq!(r["valid"], true, "the signature checks out: {r}");
        assert!(r["age_seconds"].as_i64().unwrap().abs() <= 5, "signed when sent: {r}");
        assert_eq!(r["content_type"], "application/json");
        assert_eq!(r["event"], r["body"]["type"]);
        assert_eq!(r["body"]["organization_id"], org["id"]);
        assert_eq!(r["body"]["data"]["event_id"], event.as_str());
    }
    assert_eq!(got[1]["body"]["data"]["user_id"].as_str().unwrap(), crate::common::orgs::user_id(&guest));
    // A wrong secret does not verify.
    assert!(received(&receiver, "/crm", "whsec_wrong").iter().all(|r| r["valid"] == false));

    // The flaky receiver got the same delivery three times; the log says how it went.
    let tries = wait_for(&receiver, "/flaky", flaky["secret"].as_str().unwrap(), 3);
    assert!(tries.iter().all(|t| t["delivery"] == tries[0]["delivery"] && t["valid"] == true), "{tries:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = deliveries(&v, &owner, &flaky).await;
        if log.len() == 1 && log[0]["status"] == "delivered" {
            assert_eq!((log[0]["attempts"].as_u64(), log[0]["last_status_code"].as_u64()), (Some(3), Some(200)));
            assert_eq!(log[0]["id"], tries[0]["delivery"]);
            assert_eq!(log[0]["payload"]["type"], "registration.made");
            break;
        }
        assert!(Instant::now() < deadline, "the flaky delivery never settled: {log:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(&receiver, "/down", down["secret"].as_str().unwrap(), 2);
    let log = deliveries(&v, &owner, &down).await;
    assert_eq!(log[0]["status"], "pending", "{log:?}");
    assert_eq!(log[0]["last_status_code"], 500);
    assert_eq!(log[0]["last_error"], "the receiver answered 500");
    assert!(log[0]["next_attempt_at"].is_string(), "{log:?}");

    // Nothing for the paused webhook, nor from the other organization: both facts were
    // queued for every webhook at once, before the receiver got them.
    assert!(received(&receiver, "/paused", "x").is_empty());
    assert!(deliveries(&v, &owner, &paused).await.is_empty());
    assert_eq!(received(&receiver, "/crm", &secret).len(), 2);
}

#[tokio::test]
async fn webhooks_are_for_admins_and_public_https_urls() {
    let receiver = Peer::start("webhook_receiver.py");
    let v = veche_posting_to(&receiver);
    let (owner, _) = signed_up(&v, "owner@example.org").await;
    let org = create_org(&v, &owner, json!({"name": "Hooks"})).await;
    let path = format!("/api/v1/organizations/{}/webhooks", org["id"].as_str().unwrap());
    for (url, events) in [
        ("http://example.org/hook", json!(["registration.made"])),
        ("https://127.0.0.1/hook", json!(["registration.made"])),
        ("https://10.1.2.3/hook", json!(["registration.made"])),
        ("https://[::1]/hook", json!(["registration.made"])),
        ("https://user:pass@example.org/hook", json!(["registration.made"])),
        ("https://example.org/hook", json!(["event.viewed"])),
        ("https://example.org/hook", json!([])),
    ] {
        let r = post_as(&v, &owner, &path, json!({"url": url, "events": events})).await;
        r.assert_problem(422);
    }
    let r = post_as(
        &v,
        &owner,
        &path,
        json!({"url": "https://example.org/hook", "events": ["registration.made"], "extra": 1}),
    )
    .await;
    r.assert_problem(422);
    let (member, _) = signed_up(&v, "someone@example.org").await;
    let r =
        post_as(&v, &member, &path, json!({"url": "https://example.org/hook", "events": ["registration.made"]})).await;
    r.assert_problem(403);
    let r =
        post_as(&v, &owner, &path, json!({"url": "https://example.org/hook", "events": ["registration.made"]})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let one = format!("{path}/{}", r.body["id"].as_str().unwrap());
    assert_eq!(get_auth(&v, &one, &member).await.status, 403);
    assert_eq!(crate::common::orgs::delete_as(&v, &owner, &one).await.status, 204);
    get_auth(&v, &one, &owner).await.assert_problem(404);
}
