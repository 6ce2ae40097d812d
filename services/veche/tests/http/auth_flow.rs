//! The account lifecycle over real HTTP against the real binary and a real SQLite file.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn register_verify_login_refresh_logout() {
    let v = Veche::start();
    let r = register(&v, "Anna@Example.org").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["email"], "anna@example.org");
    assert_eq!(r.body["email_verified"], false);
    assert!(r.body.get("password_hash").is_none());

    // Unverified accounts may log in by default, and their token says so.
    let r = login(&v, "anna@example.org", PASSWORD).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let me = get_auth(&v, "/api/v1/users/me", &access).await;
    assert_eq!(me.body["email_verified"], false);

    // The verification mail's link verifies the address, once.
    let mail = v.wait_mail("anna@example.org", "verify-email?token=");
    assert!(mail.contains(&v.base), "links point at the public URL: {mail}");
    let token = token_in(&mail);
    assert_eq!(post(&v, "/api/v1/auth/verify-email", json!({"token": token})).await.status, 204);
    post(&v, "/api/v1/auth/verify-email", json!({"token": token})).await.assert_problem(410);

    let r = login(&v, "ANNA@example.org", PASSWORD).await;
    assert_eq!(r.status, 200);
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let refresh = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh.len(), 43, "256 random bits, base64url");
    let me = get_auth(&v, "/api/v1/users/me", &access).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["email_verified"], true);

    // Refresh rotates: a new pair, and the old refresh token is spent.
    let r = post(&v, "/api/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let refresh2 = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    let access2 = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get_auth(&v, "/api/v1/users/me", &access2).await.status, 200);

    // Logout ends the session: its refresh token no longer works.
    assert_eq!(post(&v, "/api/v1/auth/logout", json!({"refresh_token": refresh2})).await.status, 204);
    post(&v, "/api/v1/auth/refresh", json!({"refresh_token": refresh2})).await.assert_problem(401);
}

#[tokio::test]
async fn reused_refresh_token_revokes_the_session() {
    let v = Veche::start();
    let (_, refresh) = signed_up(&v, "reuse@example.org").await;
    let r = post(&v, "/api/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    let current = r.body["refresh_token"].as_str().unwrap().to_owned();
    // Someone replays the spent token: refused, and the whole session ends...
    post(&v, "/api/v1/auth/refresh", json!({"refresh_token": refresh})).await.assert_problem(401);
    // ...so even the legitimate holder's current token is dead.
    post(&v, "/api/v1/auth/refresh", json!({"refresh_token": current})).await.assert_problem(401);
}

#[tokio::test]
async fn email_is_unique_case_insensitively() {
    let v = Veche::start();
    assert_eq!(register(&v, "dup@example.org").await.status, 201);
    let r = register(&v, " DUP@Example.ORG ").await;
    r.assert_problem(409);
    assert_eq!(r.body["type"], "https://veche.dev/problems/conflict");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let v = Veche::start();
    signed_up(&v, "same@example.org").await;
    let wrong = login(&v, "same@example.org", "not the password at all").await;
    let unknown = login(&v, "nobody@example.org", "not the password at all").await;
    wrong.assert_problem(401);
    unknown.assert_problem(401);
    assert_eq!(wrong.body, unknown.body);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_client_but_successes_are_not() {
    let v = Veche::start();
    signed_up(&v, "victim@example.org").await;
    for _ in 0..5 {
        login(&v, "victim@example.org", "guess guess guess").await.assert_problem(401);
    }
    // Each failure past the free ones doubles the lock (1 s, 2 s, ...); a locked attempt
    // is refused unchecked and not counted, so wait out the lock to make two count.
    let mut counted = 0;
    while counted < 2 {
        let r = login(&v, "victim@example.org", "guess guess guess").await;
        match r.status {
            401 => counted += 1,
            429 => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => panic!("{r:?}"),
        }
    }
    // Locked for two seconds now: even the right password waits, from this address
    // (another address is not held back: tests/http/abuse.rs).
    let r = login(&v, "victim@example.org", PASSWORD).await;
    r.assert_problem(429);
    assert!(r.headers.contains_key("retry-after"));
    // Many people logging in from one address are not slowed.
    for i in 0..8 {
        signed_up(&v, &format!("crowd{i}@example.org")).await;
    }
}

#[tokio::test]
async fn a_restart_keeps_users_sessions_and_keys() {
    let mut v = Veche::start();
    let (access, refresh) = signed_up(&v, "persist@example.org").await;
    v.restart();
    // The access token still verifies: the signing key was persisted.
    assert_eq!(get_auth(&v, "/api/v1/users/me", &access).await.status, 200);
    // The session survived: its refresh token rotates.
    let r = post(&v, "/api/v1/auth/refresh", json!({"refresh_token": refresh})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(login(&v, "persist@example.org", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn password_reset_changes_the_password_and_ends_every_session() {
    let v = Veche::start();
    let (_, refresh) = signed_up(&v, "forgot@example.org").await;
    assert_eq!(post(&v, "/api/v1/auth/password-reset", json!({"email": "Forgot@example.org"})).await.status, 202);
    // Unknown addresses get the same answer, and no mail.
    assert_eq!(post(&v, "/api/v1/auth/password-reset", json!({"email": "ghost@example.org"})).await.status, 202);
    let token = token_in(&v.wait_mail("forgot@example.org", "reset-password?token="));

    post(&v, "/api/v1/auth/password-reset/confirm", json!({"token": token, "password": "short"}))
        .await
        .assert_problem(422);
    let r =
        post(&v, "/api/v1/auth/password-reset/confirm", json!({"token": token, "password": "a brand new passphrase"}))
            .await;
    assert_eq!(r.status, 204, "{r:?}");
    post(&v, "/api/v1/auth/password-reset/confirm", json!({"token": token, "password": "another new passphrase"}))
        .await
        .assert_problem(410);

    post(&v, "/api/v1/auth/refresh", json!({"refresh_token": refresh})).await.assert_problem(401);
    login(&v, "forgot@example.org", PASSWORD).await.assert_problem(401);
    assert_eq!(login(&v, "forgot@example.org", "a brand new passphrase").await.status, 200);
    assert_eq!(v.mails_to("ghost@example.org"), 0);
}

#[tokio::test]
async fn unverified_accounts_can_be_refused_by_setting() {
    let v = Veche::start_with(&[("VECHE_REQUIRE_VERIFIED_EMAIL", "true")]);
    assert_eq!(register(&v, "strict@example.org").await.status, 201);
    login(&v, "strict@example.org", PASSWORD).await.assert_problem(403);
    let token = token_in(&v.wait_mail("strict@example.org", "verify-email?token="));
    assert_eq!(post(&v, "/api/v1/auth/verify-email", json!({"token": token})).await.status, 204);
    assert_eq!(login(&v, "strict@example.org", PASSWORD).await.status, 200);
}

#[tokio::test]
async fn profile_preferences_and_sessions() {
    let v = Veche::start();
    let (access, _) = signed_up(&v, "me@example.org").await;
    let c = client();
    let r = send(
        c.patch(v.url("/api/v1/users/me"))
            .bearer_auth(&access)
            .json(&json!({"display_name": "Мария", "city": "Kazan", "interests": ["music", "Music", "chess"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["display_name"], "Мария");
    assert_eq!(r.body["interests"], json!(["music", "chess"]));

    let r = get_auth(&v, "/api/v1/users/me/preferences", &access).await;
    assert_eq!(
        r.body,
        json!({"language": "en", "time_zone": "UTC", "notifications": {"email": true, "event_reminders": true, "marketing": false}})
    );
    let r = send(
        c.put(v.url("/api/v1/users/me/preferences"))
            .bearer_auth(&access)
            .json(&json!({"language": "ru", "time_zone": "Europe/Moscow"})),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["time_zone"], "Europe/Moscow");
    send(c.put(v.url("/api/v1/users/me/preferences")).bearer_auth(&access).json(&json!({"time_zone": "Moon/Base"})))
        .await
        .assert_problem(422);

    // A second login is a second session; ending it kills its refresh token.
    let second = login(&v, "me@example.org", PASSWORD).await;
    let sessions = get_auth(&v, "/api/v1/users/me/sessions", &access).await;
    let list = sessions.body.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();
    let r = send(c.delete(v.url(&format!("/api/v1/users/me/sessions/{other}"))).bearer_auth(&access)).await;
    assert_eq!(r.status, 204);
    post(&v, "/api/v1/auth/refresh", json!({"refresh_token": second.body["refresh_token"]})).await.assert_problem(401);

    // Deleting the account: gone for good.
    assert_eq!(send(c.delete(v.url("/api/v1/users/me")).bearer_auth(&access)).await.status, 204);
    get_auth(&v, "/api/v1/users/me", &access).await.assert_problem(401);
    login(&v, "me@example.org", PASSWORD).await.assert_problem(401);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let mut v = Veche::start();
    signed_up(&v, "drain@example.org").await;
    // Logins take an argon2 hash each: long enough to be in flight when the signal lands.
    let logins: Vec<_> = (0..4)
        .map(|_| {
            let url = v.url("/api/v1/auth/login");
            tokio::spawn(async move {
                client()
                    .post(url)
                    .json(&json!({"email": "drain@example.org", "password": PASSWORD}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    // Signal only once the server reports them in flight (they, plus this /metrics call).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let m = send(client().get(v.internal_url("/metrics"))).await.body;
        let text = m.as_str().unwrap_or_default().to_owned();
        let in_flight = text
            .lines()
            .find_map(|l| l.strip_prefix("http_requests_in_flight "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if in_flight >= 5.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "logins never showed up in flight");
    }
    let pid = v.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    for l in logins {
        assert_eq!(l.await.unwrap().expect("in-flight request answered"), 200);
    }
    let status = v.child.as_mut().unwrap().wait().unwrap();
    assert!(status.success(), "clean exit after draining: {status}");
    v.child = None;
}
