//! A second factor over real HTTP, with codes from an independent TOTP implementation
//! (Python's pyotp reads the otpauth URI as an authenticator app would): enrolment and
//! confirmation, login asking for the code, a replayed code refused within its window,
//! recovery codes that work once, wrong codes throttled like passwords, mails on every
//! change, and administrators who act as such only with a second factor when the
//! platform asks for it.

use crate::common::second_factor::{codes, early_in_a_step, login_with, post_auth_json, turn_on};
use crate::common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn totp_from_an_independent_app_guards_the_login() {
    let v = Veche::start();
    let email = "ann@example.org";
    let (token, _) = signed_up(&v, email).await;
    let status = get_auth(&v, "/api/v1/users/me/second-factor", &token).await;
    assert_eq!((status.body["state"].as_str(), status.body["required"].as_bool()), (Some("off"), Some(false)));

    // Enrolment asks for the password again.
    let path = "/api/v1/users/me/second-factor/totp";
    let r = post_auth_json(&v, &token, path, json!({"password": "not the password at all"})).await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "password");
    let r = post_auth_json(&v, &token, path, json!({"password": PASSWORD})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let uri = r.body["otpauth_uri"].as_str().unwrap().to_owned();
    assert!(r.body["qr_svg"].as_str().unwrap().contains("<svg"));
    let seen = run_python("totp_codes.py", &[&uri]);
    assert_eq!(
        (&seen["issuer"], &seen["account"], &seen["digits"], &seen["interval"]),
        (&json!("Veche"), &json!(email), &json!(6), &json!(30))
    );
    assert_eq!(get_auth(&v, "/api/v1/users/me/second-factor", &token).await.body["state"], "pending");

    // A wrong code does not confirm; the app's code does, and gives recovery codes once.
    let t = early_in_a_step().await;
    let [before, now, next] = <[String; 3]>::try_from(codes(&uri, &[t - 30, t, t + 30])).unwrap();
    let confirm = "/api/v1/users/me/second-factor/totp/confirm";
    let wrong = if before == "123456" { "654321" } else { "123456" };
    post_auth_json(&v, &token, confirm, json!({"code": wrong})).await.assert_problem(422);
    let r = post_auth_json(&v, &token, confirm, json!({"code": before})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let recovery: Vec<String> =
        r.body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(recovery.len(), 10);
    post_auth_json(&v, &token, confirm, json!({"code": now})).await.assert_problem(409);
    assert_eq!(get_auth(&v, "/api/v1/users/me", &token).await.body["second_factor"], true);
    v.wait_mail(email, "Two-step login is on");

    // The login now asks for the code, in a problem of its own type.
    let r = login_with(&v, email, None).await;
    r.assert_problem(401);
    assert_eq!(r.body["type"], "https://veche.dev/problems/second-factor-required", "{r:?}");
    // The confirming code's step is spent, so is every code once used.
    login_with(&v, email, Some(&before)).await.assert_problem(401);
    assert_eq!(login_with(&v, email, Some(&now)).await.status, 200);
    login_with(&v, email, Some(&now)).await.assert_problem(401);
    assert_eq!(login_with(&v, email, Some(&next)).await.status, 200);
    // A wrong password with a right-looking code is still a wrong password.
    let r =
        post(&v, "/api/v1/auth/login", json!({"email": email, "password": "wrong wrong wrong", "code": next})).await;
    r.assert_problem(401);

    // A recovery code works once, however it is typed, and its use is mailed.
    let typed = recovery[0].to_uppercase().replace('-', " ");
    assert_eq!(login_with(&v, email, Some(&typed)).await.status, 200);
    login_with(&v, email, Some(&recovery[0])).await.assert_problem(401);
    v.wait_mail(email, "9 are left");
    assert_eq!(get_auth(&v, "/api/v1/users/me/second-factor", &token).await.body["recovery_codes_left"], 9);

    // A new set replaces the old one.
    let r = post_auth_json(&v, &token, "/api/v1/users/me/second-factor/recovery-codes", json!({"password": PASSWORD}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let renewed = r.body["recovery_codes"][0].as_str().unwrap().to_owned();
    login_with(&v, email, Some(&recovery[1])).await.assert_problem(401);
    assert_eq!(login_with(&v, email, Some(&renewed)).await.status, 200);

    // Turning it off asks for the password, and the login takes the password alone again.
    let disable = "/api/v1/users/me/second-factor/disable";
    post_auth_json(&v, &token, disable, json!({"password": "not the password at all"})).await.assert_problem(422);
    assert_eq!(post_auth_json(&v, &token, disable, json!({"password": PASSWORD})).await.status, 204);
    v.wait_mail(email, "Two-step login is off");
    assert_eq!(login_with(&v, email, None).await.status, 200);
    assert_eq!(get_auth(&v, "/api/v1/users/me/second-factor", &token).await.body["state"], "off");
}

/// Guessing codes is throttled like guessing passwords: past the free failures this
/// client waits, and after ten wrong codes the account's codes wait for a quarter of an
/// hour from any address, so even the right code is refused (by whichever wait is the
/// longer then). The test honours each wait it is given, so it shows the same on a fast
/// machine and a busy one.
#[tokio::test]
async fn wrong_codes_are_throttled_like_passwords() {
    let v = Veche::start();
    let email = "bob@example.org";
    let (token, _) = signed_up(&v, email).await;
    let t = early_in_a_step().await;
    let (uri, _) = turn_on(&v, &token, t).await;
    let right = codes(&uri, &[t])[0].clone();
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let mut statuses = Vec::new();
    let mut wrong_codes = 0;
    while wrong_codes < 10 {
        assert!(statuses.len() < 40, "no lock after many wrong codes: {statuses:?}");
        let r = login_with(&v, email, Some(wrong)).await;
        statuses.push(r.status);
        match r.status {
            401 => wrong_codes += 1,
            429 => tokio::time::sleep(retry_after(&r)).await,
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    assert!(statuses[..5].iter().all(|s| *s == 401), "the first five are free: {statuses:?}");
    v.wait_mail(email, "Wrong login codes");
    let r = login_with(&v, email, Some(&right)).await;
    r.assert_problem(429);
    assert!(retry_after(&r) > Duration::ZERO, "{r:?}");
}

fn retry_after(r: &Reply) -> Duration {
    let seconds = r.headers.get("retry-after").and_then(|h| h.to_str().ok()).and_then(|s| s.parse().ok());
    Duration::from_secs(seconds.unwrap_or_else(|| panic!("429 without Retry-After: {r:?}")))
}

/// With `VECHE_REQUIRE_ADMIN_SECOND_FACTOR`, an administrator's tokens carry the admin
/// role only once the account has a second factor, which it then cannot turn off.
#[tokio::test]
async fn administrators_act_as_such_only_with_a_second_factor_when_required() {
    let v = Veche::start_with(&[("VECHE_REQUIRE_ADMIN_SECOND_FACTOR", "true")]);
    let email = "root@example.org";
    let token = admin(&v, email).await;
    get_auth(&v, "/api/v1/users", &token).await.assert_problem(403);
    let status = get_auth(&v, "/api/v1/users/me/second-factor", &token).await;
    assert_eq!(status.body["required"], true, "{status:?}");

    let t = early_in_a_step().await;
    let (uri, _) = turn_on(&v, &token, t).await;
    let code = codes(&uri, &[t])[0].clone();
    let r = login_with(&v, email, Some(&code)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let admin_token = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get_auth(&v, "/api/v1/users", &admin_token).await.status, 200);
    let r =
        post_auth_json(&v, &admin_token, "/api/v1/users/me/second-factor/disable", json!({"password": PASSWORD})).await;
    r.assert_problem(403);
}

/// The key that seals second-factor secrets must not be lost silently: with it gone and
/// accounts enrolled, `veche up` refuses to start and says why, rather than making a new
/// key that opens nothing.
#[tokio::test]
async fn a_lost_sealing_key_stops_the_start_instead_of_locking_people_out() {
    let mut v = Veche::start();
    let (token, _) = signed_up(&v, "kept@example.org").await;
    let t = early_in_a_step().await;
    turn_on(&v, &token, t).await;
    v.kill();
    let key = v.data.join("second-factor.key");
    std::fs::remove_file(&key).expect("the key was in the data directory");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_veche"))
        .arg("up")
        .env("VECHE_DATA_DIR", &v.data)
        .env("VECHE_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("VECHE_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success(), "veche up started without the key");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("second-factor.key is missing"), "{said}");
    assert!(!key.exists(), "no new key was made");
}
