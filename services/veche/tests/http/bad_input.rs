//! Bad input never yields a 500: every endpoint answers problem+json 4xx, and nothing is
//! stored.

use crate::common::*;
use serde_json::json;

const JSON_ENDPOINTS: [(&str, &str); 11] = [
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/verify-email"),
    ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
    ("PATCH", "/api/v1/users/me"),
    ("PUT", "/api/v1/users/me/preferences"),
    ("PATCH", "/api/v1/users/00000000-0000-4000-8000-000000000000"),
    ("POST", "/api/v1/auth/verify-email/resend"),
];

#[tokio::test]
async fn malformed_bodies_get_problems_on_every_endpoint() {
    let v = Veche::start();
    let admin = admin(&v, "root@example.org").await;
    let bodies: Vec<(&str, String)> = vec![
        ("malformed", "{\"email\": ".into()),
        ("not an object", "[1,2,3]".into()),
        (
            "wrong types",
            r#"{"email": 5, "password": true, "display_name": [], "refresh_token": 1, "token": {}, "language": 7}"#
                .into(),
        ),
        (
            "unknown field",
            r#"{"email":"a@b.co","password":"correct horse battery","display_name":"A","is_admin":true,"nonsense":1}"#
                .into(),
        ),
        ("null", "null".into()),
        ("empty object", "{}".into()),
        ("invalid utf-8", String::from_utf8_lossy(&[0x7b, 0xff, 0xfe, 0x7d]).into_owned()),
    ];
    let c = client();
    for (method, path) in JSON_ENDPOINTS {
        for (what, body) in &bodies {
            let req = c
                .request(method.parse().unwrap(), v.url(path))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(body.clone());
            let r = send(req).await;
            // `{}` is a valid resend request for a signed-in caller; everything else is not valid.
            if path.ends_with("/resend") && *what == "empty object" {
                assert_eq!(r.status, 202, "{method} {path} {what}");
                continue;
            }
            if path.ends_with("/me") && method == "PATCH" && *what == "empty object" {
                assert_eq!(r.status, 200, "an empty patch changes nothing");
                continue;
            }
            if path.ends_with("/preferences") && *what == "empty object" {
                assert_eq!(r.status, 200, "omitted preferences take defaults");
                continue;
            }
            if path.ends_with("/logout") && *what == "empty object" {
                r.assert_problem(422);
                continue;
            }
            assert!((400..500).contains(&r.status), "{method} {path} {what}: {r:?}");
            r.assert_problem(r.status);
        }
        // The wrong media type.
        let r = send(
            c.request(method.parse().unwrap(), v.url(path))
                .bearer_auth(&admin)
                .header("content-type", "text/plain")
                .body("hi"),
        )
        .await;
        if !path.ends_with("/resend") {
            r.assert_problem(415);
        }
    }
    // Nothing was registered by any of that.
    let users = get_auth(&v, "/api/v1/users", &admin).await;
    assert_eq!(users.body["items"].as_array().unwrap().len(), 1, "{users:?}");
}

#[test]
fn ten_megabyte_bodies_are_refused_with_413() {
    let v = Veche::start();
    for path in ["/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/password-reset"] {
        for chunked in [false, true] {
            let status = raw_oversized_post(&v, path, 10 * 1024 * 1024, chunked);
            assert_eq!(status, 413, "{path} chunked={chunked}");
        }
    }
}

#[tokio::test]
async fn field_errors_name_each_bad_field() {
    let v = Veche::start();
    let r =
        post(&v, "/api/v1/auth/register", json!({"email": "not-an-email", "password": "short", "display_name": ""}))
            .await;
    r.assert_problem(422);
    let fields: Vec<&str> = r.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, vec!["email", "display_name", "password"]);

    let overlong = [
        json!({"email": format!("{}@example.org", "a".repeat(300)), "password": PASSWORD, "display_name": "A"}),
        json!({"email": "ok@example.org", "password": "p".repeat(1000), "display_name": "A"}),
        json!({"email": "ok@example.org", "password": PASSWORD, "display_name": "n".repeat(1000)}),
    ];
    for body in overlong {
        post(&v, "/api/v1/auth/register", body).await.assert_problem(422);
    }
    let r = post(&v, "/api/v1/auth/register", json!({"email": "ok@example.org", "password": PASSWORD})).await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "", "a missing field is reported at the root: {r:?}");
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("display_name"));

    // Overlong credentials at login are simply wrong, and cost no hashing.
    login(&v, "ok@example.org", &"p".repeat(100_000)).await;
    let (access, _) = signed_up(&v, "ok@example.org").await;
    let c = client();
    for body in [
        json!({"bio": "b".repeat(5000)}),
        json!({"avatar_url": "ftp://example.org/a.png"}),
        json!({"interests": vec!["x"; 100]}),
        json!({"interests": ["i".repeat(51)]}),
        json!({"display_name": null}),
    ] {
        send(c.patch(v.url("/api/v1/users/me")).bearer_auth(&access).json(&body)).await.assert_problem(422);
    }
}

#[tokio::test]
async fn routing_errors_are_problems_too() {
    let v = Veche::start();
    send(client().get(v.url("/api/v1/nope"))).await.assert_problem(404);
    send(client().put(v.url("/api/v1/auth/login"))).await.assert_problem(405);
    send(client().get(v.url("/api/v1/users/not-a-uuid")).bearer_auth("x")).await.assert_problem(401);
    send(client().get(v.url("/api/v1/users/me"))).await.assert_problem(401);
    send(client().get(v.url("/api/v1/users/me")).header("authorization", "Bearer ")).await.assert_problem(401);
    let r = send(client().get(v.url("/api/v1/users?limit=banana"))).await;
    r.assert_problem(401);
}
