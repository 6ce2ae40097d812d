//! Administration: the first admin from `veche admin create`, search and paging, disabling
//! and roles, and the guards that keep the platform administered.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn only_admins_administer() {
    let v = Veche::start();
    let (user, _) = signed_up(&v, "plain@example.org").await;
    get_auth(&v, "/api/v1/users", &user).await.assert_problem(403);
    let me = get_auth(&v, "/api/v1/users/me", &user).await;
    let id = me.body["id"].as_str().unwrap();
    get_auth(&v, &format!("/api/v1/users/{id}"), &user).await.assert_problem(403);
    let r = send(
        client().patch(v.url(&format!("/api/v1/users/{id}"))).bearer_auth(&user).json(&json!({"roles": ["admin"]})),
    )
    .await;
    r.assert_problem(403);
}

#[tokio::test]
async fn search_pages_through_users() {
    let v = Veche::start();
    let root = admin(&v, "root@example.org").await;
    for i in 0..7 {
        assert_eq!(register(&v, &format!("member{i}@club.example")).await.status, 201);
    }
    assert_eq!(register(&v, "other@example.org").await.status, 201);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?q=club&limit=3&cursor={c}"),
            None => "/api/v1/users?q=club&limit=3".into(),
        };
        let page = get_auth(&v, &path, &root).await;
        assert_eq!(page.status, 200, "{page:?}");
        for u in page.body["items"].as_array().unwrap() {
            seen.push(u["email"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen.sort();
    let expected: Vec<String> = (0..7).map(|i| format!("member{i}@club.example")).collect();
    assert_eq!(seen, expected);

    get_auth(&v, "/api/v1/users?cursor=garbage", &root).await.assert_problem(422);
    get_auth(&v, "/api/v1/users?limit=0", &root).await.assert_problem(422);
    get_auth(&v, "/api/v1/users?limit=banana", &root).await.assert_problem(422);
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_blocks_login() {
    let v = Veche::start();
    let root = admin(&v, "root@example.org").await;
    let (user, refresh) = signed_up(&v, "troll@example.org").await;
    let id = get_auth(&v, "/api/v1/users/me", &user).await.body["id"].as_str().unwrap().to_owned();
    let c = client();
    let r =
        send(c.patch(v.url(&format!("/api/v1/users/{id}"))).bearer_auth(&root).json(&json!({"disabled": true}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["disabled"], true);
    post(&v, "/api/v1/auth/refresh", json!({"refresh_token": refresh})).await.assert_problem(401);
    login(&v, "troll@example.org", PASSWORD).await.assert_problem(403);
    get_auth(&v, "/api/v1/users/me", &user).await.assert_problem(401);

    let r = send(
        c.patch(v.url(&format!("/api/v1/users/{id}")))
            .bearer_auth(&root)
            .json(&json!({"disabled": false, "roles": ["admin"]})),
    )
    .await;
    assert_eq!(r.body["roles"], json!(["admin"]));
    let promoted = login(&v, "troll@example.org", PASSWORD).await;
    let token = promoted.body["access_token"].as_str().unwrap();
    assert_eq!(get_auth(&v, "/api/v1/users", token).await.status, 200);

    send(c.patch(v.url(&format!("/api/v1/users/{id}"))).bearer_auth(&root).json(&json!({"roles": ["superuser"]})))
        .await
        .assert_problem(422);
    assert_eq!(send(c.delete(v.url(&format!("/api/v1/users/{id}"))).bearer_auth(&root)).await.status, 204);
    get_auth(&v, &format!("/api/v1/users/{id}"), &root).await.assert_problem(404);
}

#[tokio::test]
async fn admins_cannot_lock_the_platform_out() {
    let v = Veche::start();
    let root = admin(&v, "root@example.org").await;
    let id = get_auth(&v, "/api/v1/users/me", &root).await.body["id"].as_str().unwrap().to_owned();
    let c = client();
    send(c.patch(v.url(&format!("/api/v1/users/{id}"))).bearer_auth(&root).json(&json!({"disabled": true})))
        .await
        .assert_problem(409);
    send(c.patch(v.url(&format!("/api/v1/users/{id}"))).bearer_auth(&root).json(&json!({"roles": []})))
        .await
        .assert_problem(409);
    send(c.delete(v.url("/api/v1/users/me")).bearer_auth(&root)).await.assert_problem(409);
}

#[tokio::test]
async fn a_bootstrap_admin_is_created_once() {
    let v = Veche::start_with(&[
        ("VECHE_BOOTSTRAP_ADMIN_EMAIL", "boot@example.org"),
        ("VECHE_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD),
    ]);
    let r = login(&v, "boot@example.org", PASSWORD).await;
    assert_eq!(r.status, 200);
    let token = r.body["access_token"].as_str().unwrap();
    let me = get_auth(&v, "/api/v1/users/me", token).await;
    assert_eq!(me.body["roles"], json!(["admin"]));
    assert_eq!(me.body["email_verified"], true);
}
