//! Organization helpers shared by the tests: requests as a user, organizations, real
//! invitations by mail, and a cast of people with every role.

#![allow(dead_code)]

use super::*;
use serde_json::{Value, json};

/// One request with an optional bearer token and an optional JSON body.
pub async fn call(v: &Veche, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let mut req = client().request(method.parse().unwrap(), v.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    send(req).await
}

pub async fn post_as(v: &Veche, token: &str, path: &str, body: Value) -> Reply {
    call(v, "POST", path, Some(token), Some(body)).await
}

pub async fn patch_as(v: &Veche, token: &str, path: &str, body: Value) -> Reply {
    call(v, "PATCH", path, Some(token), Some(body)).await
}

pub async fn delete_as(v: &Veche, token: &str, path: &str) -> Reply {
    call(v, "DELETE", path, Some(token), None).await
}

/// Creates an organization as `token`'s user and returns its JSON.
pub async fn create_org(v: &Veche, token: &str, body: Value) -> Value {
    let r = post_as(v, token, "/api/v1/organizations", body).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body
}

pub fn org_path(org: &Value, rest: &str) -> String {
    format!("/api/v1/organizations/{}{rest}", org["id"].as_str().unwrap())
}

/// The user id (`sub`) inside an access token.
pub fn user_id(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

/// Invites `email` with `role` as `inviter` and returns the invitation link's token, read
/// from the mail the platform wrote.
pub async fn invite(v: &Veche, org: &Value, inviter: &str, email: &str, role: &str) -> String {
    let r = post_as(v, inviter, &org_path(org, "/invitations"), json!({"email": email, "role": role})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let mail = v.wait_mail(&email.to_lowercase(), &format!("{}/invitations/accept?token=", v.base));
    assert!(mail.contains(org["name"].as_str().unwrap()), "the mail names the organization: {mail}");
    let token = token_in(&mail);
    assert!(!r.body.to_string().contains(&token), "the token is only in the mail");
    assert!(!id.is_empty());
    token
}

pub async fn accept(v: &Veche, token: &str, invitation: &str) -> Reply {
    post_as(v, token, "/api/v1/organizations/invitations/accept", json!({"token": invitation})).await
}

/// Signs `email` up and makes them a member of `org` with `role` through a real invitation.
pub async fn join(v: &Veche, org: &Value, inviter: &str, email: &str, role: &str) -> String {
    let (token, _) = signed_up(v, email).await;
    let invitation = invite(v, org, inviter, email, role).await;
    let r = accept(v, &token, &invitation).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["role"], role);
    token
}

/// `whom`'s role in `org`, as `asker` (a member) sees it.
pub async fn role_of(v: &Veche, org: &Value, asker: &str, whom: &str) -> Value {
    let r = get_auth(v, &org_path(org, &format!("/members/{}", user_id(whom))), asker).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["role"].clone()
}

/// An organization with an owner, an admin and a member, plus a stranger and the owner
/// of another organization.
pub struct Cast {
    pub org: Value,
    pub owner: String,
    pub admin: String,
    pub member: String,
    pub stranger: String,
    pub other_owner: String,
}

pub async fn cast(v: &Veche) -> Cast {
    let (owner, _) = signed_up(v, "owner@example.org").await;
    let org = create_org(v, &owner, json!({"name": "Kazan Chess Club"})).await;
    let admin = join(v, &org, &owner, "admin@example.org", "admin").await;
    let member = join(v, &org, &owner, "member@example.org", "member").await;
    let (stranger, _) = signed_up(v, "stranger@example.org").await;
    let (other_owner, _) = signed_up(v, "other@example.org").await;
    create_org(v, &other_owner, json!({"name": "Other Club"})).await;
    Cast { org, owner, admin, member, stranger, other_owner }
}
