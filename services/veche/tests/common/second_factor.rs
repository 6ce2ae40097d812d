//! Second-factor helpers shared by the tests: codes from pyotp (an independent TOTP
//! implementation), enrolment, and logins with a code.

#![allow(dead_code)]

use super::*;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A moment with at least 20 seconds left in its 30-second step, so that three codes
/// (the step before, this one, the next) all stay valid while a test uses them.
pub async fn early_in_a_step() -> i64 {
    let now = unix_now();
    if now % 30 > 10 {
        tokio::time::sleep(Duration::from_secs((30 - now % 30 + 1) as u64)).await;
    }
    unix_now()
}

/// pyotp's codes for `uri` at `times`.
pub fn codes(uri: &str, times: &[i64]) -> Vec<String> {
    let times: Vec<String> = times.iter().map(i64::to_string).collect();
    let mut args = vec![uri];
    args.extend(times.iter().map(String::as_str));
    let out = run_python("totp_codes.py", &args);
    out["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
}

pub async fn post_auth_json(v: &Veche, token: &str, path: &str, body: Value) -> Reply {
    send(client().post(v.url(path)).bearer_auth(token).json(&body)).await
}

pub async fn login_with(v: &Veche, email: &str, code: Option<&str>) -> Reply {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let Some(code) = code {
        body["code"] = code.into();
    }
    post(v, "/api/v1/auth/login", body).await
}

/// Enrols and confirms a factor for the holder of `token`; returns the otpauth URI and
/// the recovery codes. The confirming code is the one of the step before `at`.
pub async fn turn_on(v: &Veche, token: &str, at: i64) -> (String, Vec<String>) {
    let r = post_auth_json(v, token, "/api/v1/users/me/second-factor/totp", json!({"password": PASSWORD})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let uri = r.body["otpauth_uri"].as_str().unwrap().to_owned();
    let code = &codes(&uri, &[at - 30])[0];
    let r = post_auth_json(v, token, "/api/v1/users/me/second-factor/totp/confirm", json!({"code": code})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let recovery =
        r.body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (uri, recovery)
}
