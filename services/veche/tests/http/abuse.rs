//! Abuse of the sign-in endpoints from one client must not cost other clients: failed
//! logins slow the guesser, not the account's owner; a flood of registrations is refused
//! before it hashes, while others log in. Two clients are simulated with
//! `X-Forwarded-For`, which `VECHE_TRUST_FORWARDED_FOR=true` makes the client address.

use crate::common::*;
use serde_json::{Value, json};
use std::time::Duration;

const ATTACKER: &str = "203.0.113.9";
const OWNER: &str = "198.51.100.7";

async fn post_from(v: &Veche, ip: &str, path: &str, body: Value) -> Reply {
    send(client().post(v.url(path)).header("x-forwarded-for", ip).json(&body)).await
}

async fn login_from(v: &Veche, ip: &str, email: &str, password: &str) -> Reply {
    post_from(v, ip, "/api/v1/auth/login", json!({"email": email, "password": password})).await
}

async fn register_from(v: &Veche, ip: &str, email: &str) -> Reply {
    let body = json!({"email": email, "password": PASSWORD, "display_name": "Test"});
    post_from(v, ip, "/api/v1/auth/register", body).await
}

#[tokio::test]
async fn failed_logins_elsewhere_do_not_lock_the_owner_out() {
    let v = Veche::start_with(&[("VECHE_TRUST_FORWARDED_FOR", "true")]);
    assert_eq!(register_from(&v, OWNER, "anna@example.org").await.status, 201);

    // The attacker guesses until its waits reach 4 s (free failures, then 1 s, 2 s, 4 s).
    // A refused attempt is not counted, so each wait is sat out; the last one is not,
    // and is long enough that the logins below all fall inside it.
    let mut counted = 0;
    while counted < 8 {
        let r = login_from(&v, ATTACKER, "anna@example.org", "guess guess guess").await;
        match r.status {
            401 => counted += 1,
            429 => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => panic!("{r:?}"),
        }
    }

    // The owner, from elsewhere, logs in at once with the right password.
    let r = login_from(&v, OWNER, "anna@example.org", PASSWORD).await;
    assert_eq!(r.status, 200, "the attacker's failures locked the owner out: {r:?}");

    // The attacker is refused even with the right password, and told how long to wait.
    let r = login_from(&v, ATTACKER, "anna@example.org", PASSWORD).await;
    r.assert_problem(429);
    let retry_after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "{r:?}");
}

#[tokio::test]
async fn a_burst_of_registrations_is_refused_while_other_clients_log_in() {
    // The harness turns this limit off (tests sign many people up from one address).
    let v = Veche::start_with(&[
        ("VECHE_TRUST_FORWARDED_FOR", "true"),
        ("VECHE_PASSWORD_HASH_RPS", "1"),
        ("VECHE_PASSWORD_HASH_BURST", "3"),
    ]);
    assert_eq!(register_from(&v, OWNER, "bob@example.org").await.status, 201);

    // Ten registrations at once from one client: its burst is three.
    let burst = (0..10).map(|i| {
        let v = &v;
        async move { register_from(v, ATTACKER, &format!("spam{i}@example.org")).await }
    });
    let replies = futures::future::join_all(burst).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(created + refused.len(), 10, "{replies:?}");
    assert!(refused.len() >= 5, "a burst of ten passed an allowance of three: {replies:?}");
    for r in &refused {
        r.assert_problem(429);
        assert!(r.headers.contains_key("retry-after"), "{r:?}");
    }

    // Requests that fail on cheap checks are answered as such, not counted as hashes.
    let r = register_from(&v, ATTACKER, "bob@example.org").await;
    r.assert_problem(409);
    let body = json!({"token": "not-a-live-token", "password": "a brand new password"});
    post_from(&v, ATTACKER, "/api/v1/auth/password-reset/confirm", body).await.assert_problem(410);

    // Another client logs in and signs up as usual.
    assert_eq!(login_from(&v, OWNER, "bob@example.org", PASSWORD).await.status, 200);
    assert_eq!(register_from(&v, OWNER, "carol@example.org").await.status, 201);
}
