//! Signing in through an outside OpenID provider, end to end: a real, certified provider
//! (npm's oidc-provider) on loopback, a scripted browser (Python's requests) through its
//! login form, and Veche's public API. Also the ways it must fail: a wrong or replayed
//! state, a replayed code, an email the provider has not verified (no silent link), and
//! a provider that is down (503, or an error back to the frontend; nothing half-created),
//! and ID tokens that must not pass (a stand-in provider forges each kind).

use crate::common::oidc::{OidcProvider, StandIn, browse, with_provider};
use crate::common::*;
use serde_json::{Value, json};

fn start_url(v: &Veche, state: &str) -> String {
    start_url_of(v, "corp", state)
}

fn start_url_of(v: &Veche, provider: &str, state: &str) -> String {
    let back = v.url("/dashboard");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("redirect_uri", &back)
        .append_pair("state", state)
        .finish();
    v.url(&format!("/api/v1/auth/oauth/{provider}/start?{query}"))
}

async fn exchange(v: &Veche, code: &str) -> Reply {
    post(v, "/api/v1/auth/oauth/exchange", json!({"code": code})).await
}

/// Signs in as `login` at the provider; answers the access token.
async fn sign_in(v: &Veche, login: &str) -> String {
    let back = browse(&start_url(v, "s"), &v.url("/dashboard"), login, false);
    let code = back["code"].as_str().unwrap_or_else(|| panic!("no code: {back}"));
    let r = exchange(v, code).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["access_token"].as_str().unwrap().to_owned()
}

async fn me(v: &Veche, token: &str) -> Value {
    get_auth(v, "/api/v1/users/me", token).await.body
}

#[tokio::test]
async fn a_person_signs_in_through_an_openid_provider() {
    let (v, provider) = with_provider();
    let listed = send(client().get(v.url("/api/v1/auth/providers"))).await;
    assert_eq!(listed.body, json!([{"id": "corp", "name": "Corporate SSO", "kind": "oidc"}]));

    // The browser comes back with a one-time code and the frontend's own state; the
    // callback's redirect is never cached.
    let back = browse(&start_url(&v, "frontend-state-1"), &v.url("/dashboard"), "ann", false);
    assert_eq!(back["state"], "frontend-state-1", "{back}");
    let code = back["code"].as_str().unwrap_or_else(|| panic!("no code: {back}")).to_owned();
    assert!(back.get("access_token").is_none());
    let r = exchange(&v, &code).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.headers["cache-control"], "no-store", "tokens are never cached");
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let ann = me(&v, &token).await;
    assert_eq!((&ann["email"], &ann["email_verified"]), (&json!("ann@example.org"), &json!(true)), "{ann}");
    assert_eq!(ann["display_name"], "Person ann");
    assert_eq!(ann["identities"][0]["provider"], "corp", "{ann}");

    // The code works once; the callback's state works once; a made-up state not at all.
    exchange(&v, &code).await.assert_problem(410);
    let callback = back["_callback"].as_str().unwrap();
    send(client().get(callback)).await.assert_problem(400);
    let forged = v.url("/api/v1/auth/oauth/corp/callback?code=abc&state=not-a-state-we-made");
    send(client().get(forged)).await.assert_problem(400);

    // Signing in again finds the same account, also after the provider rotated its
    // signing key (Veche fetches the new key when a token names it).
    provider.rotate().await;
    let again = sign_in(&v, "ann").await;
    assert_eq!(me(&v, &again).await["id"], ann["id"]);

    // An account with no password keeps its last way in.
    send(client().delete(v.url("/api/v1/users/me/identities/corp")).bearer_auth(&token)).await.assert_problem(409);
}

#[tokio::test]
async fn only_a_verified_email_joins_an_existing_account() {
    let (v, _provider) = with_provider();
    // Verified by the provider and by the account: the identity joins the account.
    let (bob_password, _) = signed_up(&v, "bob@example.org").await;
    let bob = me(&v, &bob_password).await;
    // Not while the account never confirmed its address: whoever registered it may not
    // own it, and would share the owner's sign-ins.
    let back = browse(&start_url(&v, "s"), &v.url("/dashboard"), "bob", false);
    assert_eq!(back["error"], "access_denied", "{back}");
    assert!(back["error_description"].as_str().unwrap().contains("never confirmed"), "{back}");
    let token = token_in(&v.wait_mail("bob@example.org", "/verify-email?token="));
    assert_eq!(post(&v, "/api/v1/auth/verify-email", json!({"token": token})).await.status, 204);
    let via_provider = sign_in(&v, "bob").await;
    assert_eq!(me(&v, &via_provider).await["id"], bob["id"]);

    // Not verified: refused, nothing linked, nothing created.
    let (carol_password, _) = signed_up(&v, "unverified-carol@example.org").await;
    let back = browse(&start_url(&v, "s"), &v.url("/dashboard"), "unverified-carol", false);
    assert_eq!(back["error"], "access_denied", "{back}");
    assert!(back["error_description"].as_str().unwrap().contains("not verified"), "{back}");
    assert!(back.get("code").is_none());
    assert_eq!(me(&v, &carol_password).await["identities"], json!([]));
    let back = browse(&start_url(&v, "s"), &v.url("/dashboard"), "unverified-dave", false);
    assert_eq!(back["error"], "access_denied", "{back}");
    assert_eq!(register(&v, "unverified-dave@example.org").await.status, 201, "no account was made for dave");

    // The owner links a provider account with another email themselves (password again,
    // then confirming the code with their own token), and it signs in.
    let start_link = |password: &str| {
        send(
            client()
                .post(v.url("/api/v1/users/me/identities/corp"))
                .bearer_auth(&carol_password)
                .json(&json!({"redirect_uri": v.url("/dashboard"), "state": "link-1", "password": password})),
        )
    };
    start_link("not the password at all").await.assert_problem(422);
    let r = start_link(PASSWORD).await;
    assert_eq!(r.status, 200, "{r:?}");
    let back = browse(r.body["authorization_url"].as_str().unwrap(), &v.url("/dashboard"), "carol-at-work", false);
    assert_eq!(back["state"], "link-1", "{back}");
    let code = back["link_code"].as_str().unwrap_or_else(|| panic!("{back}")).to_owned();
    assert_eq!(me(&v, &carol_password).await["identities"], json!([]), "nothing linked before the owner confirms");
    let confirm = |token: &str| {
        send(
            client()
                .post(v.url("/api/v1/users/me/identities/corp/confirm"))
                .bearer_auth(token)
                .json(&json!({"code": code})),
        )
    };
    // Someone else's token cannot confirm it (a link flow finished in the wrong browser).
    let (eve, _) = signed_up(&v, "eve@elsewhere.example").await;
    confirm(&eve).await.assert_problem(410);
    let r = confirm(&carol_password).await;
    assert_eq!(r.status, 410, "the code went with the first try, right or wrong: {r:?}");
    let r = start_link(PASSWORD).await;
    let back = browse(r.body["authorization_url"].as_str().unwrap(), &v.url("/dashboard"), "carol-at-work", false);
    let code = back["link_code"].as_str().unwrap_or_else(|| panic!("{back}")).to_owned();
    let r = send(
        client()
            .post(v.url("/api/v1/users/me/identities/corp/confirm"))
            .bearer_auth(&carol_password)
            .json(&json!({"code": code})),
    )
    .await;
    assert_eq!((r.status, &r.body["provider"]), (200, &json!("corp")), "{r:?}");
    v.wait_mail("unverified-carol@example.org", "can now be signed in to through Corporate SSO");
    let carol = me(&v, &carol_password).await;
    assert_eq!(carol["identities"][0]["email"], "carol-at-work@example.org", "{carol}");
    assert_eq!(me(&v, &sign_in(&v, "carol-at-work").await).await["id"], carol["id"]);
    // She has a password, so the link may go.
    let unlink = || send(client().delete(v.url("/api/v1/users/me/identities/corp")).bearer_auth(&carol_password));
    assert_eq!(unlink().await.status, 204);
    unlink().await.assert_problem(404);
}

#[tokio::test]
async fn start_and_return_addresses_are_checked() {
    let (v, _provider) = with_provider();
    let elsewhere = v.url("/api/v1/auth/oauth/corp/start?redirect_uri=https%3A%2F%2Fevil.example%2F");
    let r = send(client().get(elsewhere)).await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "redirect_uri");
    send(client().get(v.url("/api/v1/auth/oauth/nobody/start?redirect_uri=x"))).await.assert_problem(404);
    // The redirect to the provider carries PKCE (S256), a state and a nonce.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirects.get(start_url(&v, "s")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let to = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["code_challenge"].len() >= 43 && q["state"].len() >= 16 && q["nonce"].len() >= 16, "{q:?}");
    assert_ne!(q["state"], "s", "the provider sees our state, not the frontend's");
    assert_eq!(q["redirect_uri"], v.url("/api/v1/auth/oauth/corp/callback"));
}

#[tokio::test]
async fn a_provider_that_is_down_leaves_nothing_half_done() {
    // Down before the start: a 503 problem.
    let port = free_port();
    let v = Veche::start_with(&[("VECHE_AUTH_PROVIDERS", &OidcProvider::config(port))]);
    send(client().get(start_url(&v, "s"))).await.assert_problem(503);

    // Down between the login and the callback: the frontend hears it, no account is made.
    let mut provider = OidcProvider::start(port, &v);
    let stopped = browse(&start_url(&v, "s"), &v.url("/dashboard"), "erin", true);
    provider.kill();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirects.get(stopped["_callback"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let to = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["error"], "temporarily_unavailable", "{q:?}");
    assert!(!q.contains_key("code"));
    assert_eq!(register(&v, "erin@example.org").await.status, 201, "no account was made for erin");
}

/// Each kind of bad ID token is refused, and the browser goes back to the frontend with
/// `access_denied` and no code; the same provider's good token then signs in, so each
/// refusal was for what was wrong.
#[tokio::test]
async fn forged_and_mismatched_id_tokens_are_refused() {
    let port = free_port();
    let v = Veche::start_with(&[("VECHE_AUTH_PROVIDERS", &OidcProvider::config(port))]);
    let hostile = StandIn::start("hostile_oidc.py", port);
    for mode in [
        "wrong_nonce",
        "expired",
        "foreign_key",
        "unknown_kid",
        "wrong_audience",
        "wrong_issuer",
        "bad_at_hash",
        "alg_none",
    ] {
        hostile.mode(mode).await;
        let back = browse(&start_url(&v, mode), &v.url("/dashboard"), "mallory", false);
        assert_eq!(back["error"], "access_denied", "{mode}: {back}");
        assert!(back.get("code").is_none(), "{mode}: {back}");
        assert_eq!(back["state"], mode);
    }
    hostile.mode("good").await;
    let token = sign_in(&v, "mallory").await;
    assert_eq!(me(&v, &token).await["email"], "mallory@example.org");
}

/// A domain bound to the provider (a company's staff) signs in there only: no password
/// sign-up, login or reset, each refused with a problem naming the provider.
#[tokio::test]
async fn a_bound_domain_signs_in_only_through_its_provider() {
    let port = free_port();
    let v = Veche::start_with(&[("VECHE_AUTH_PROVIDERS", &OidcProvider::config_binding(port, &["example.org"]))]);
    let _provider = OidcProvider::start(port, &v);
    let sso_required = |r: &Reply| {
        r.assert_problem(403);
        assert_eq!(r.body["type"], "https://veche.dev/problems/sso-required", "{r:?}");
        assert_eq!(r.body["provider"], "corp", "{r:?}");
        assert!(r.body["detail"].as_str().unwrap().contains("Corporate SSO"));
    };
    sso_required(&register(&v, "ann@example.org").await);
    // Through the provider, the account is made; its password login stays refused.
    let token = sign_in(&v, "ann").await;
    assert_eq!(me(&v, &token).await["email"], "ann@example.org");
    sso_required(&login(&v, "ann@EXAMPLE.org", PASSWORD).await);
    sso_required(&post(&v, "/api/v1/auth/password-reset", json!({"email": "ann@example.org"})).await);
    // Other domains keep their passwords.
    assert_eq!(register(&v, "ann@elsewhere.example").await.status, 201);
}

/// A GitHub-kind provider (OAuth 2.0 and a REST API, no OpenID Connect), against a
/// stand-in that speaks GitHub's documented endpoints: the account is the numeric id,
/// the email the primary one with GitHub's own `verified`.
#[tokio::test]
async fn a_person_signs_in_with_github() {
    let port = free_port();
    let v = Veche::start_with(&[
        ("VECHE_AUTH_PROVIDERS", &StandIn::github_config(port)),
        ("VECHE_AUTH_CLIENT_SECRET_GH", crate::common::oidc::CLIENT_SECRET),
    ]);
    let github = StandIn::start("github_standin.py", port);
    let listed = send(client().get(v.url("/api/v1/auth/providers"))).await;
    assert_eq!(listed.body, json!([{"id": "gh", "name": "GitHub", "kind": "github"}]));

    let back = browse(&start_url_of(&v, "gh", "gh-1"), &v.url("/dashboard"), "octo", false);
    assert_eq!(back["state"], "gh-1", "{back}");
    let r = exchange(&v, back["code"].as_str().unwrap_or_else(|| panic!("{back}"))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let octo = me(&v, r.body["access_token"].as_str().unwrap()).await;
    assert_eq!((&octo["email"], &octo["display_name"]), (&json!("octo@example.org"), &json!("Octo Cat")), "{octo}");
    assert_eq!(octo["identities"][0]["provider"], "gh");

    // The same GitHub account (by id, though renamed and with a new address) finds it again.
    github
        .person(json!({"id": 4242, "login": "octo-renamed", "name": null, "email": null,
                       "emails": [{"email": "new@example.org", "primary": true, "verified": true, "visibility": "private"}]}))
        .await;
    let back = browse(&start_url_of(&v, "gh", "gh-2"), &v.url("/dashboard"), "octo", false);
    let again = exchange(&v, back["code"].as_str().unwrap_or_else(|| panic!("{back}"))).await;
    assert_eq!(me(&v, again.body["access_token"].as_str().unwrap()).await["id"], octo["id"]);

    // An unverified primary address does not join the account that has it.
    signed_up(&v, "hubot@example.org").await;
    github
        .person(json!({"id": 7, "login": "hubot", "name": null, "email": "hubot@example.org",
                       "emails": [{"email": "hubot@example.org", "primary": true, "verified": false, "visibility": "public"}]}))
        .await;
    let back = browse(&start_url_of(&v, "gh", "gh-3"), &v.url("/dashboard"), "hubot", false);
    assert_eq!(back["error"], "access_denied", "{back}");
    assert!(back["error_description"].as_str().unwrap().contains("not verified"), "{back}");

    // A code GitHub refuses (a replayed callback reaches a spent state; a forged state
    // never reaches GitHub): nothing is signed in.
    let callback = back["_callback"].as_str().unwrap();
    send(client().get(callback)).await.assert_problem(400);
}

/// The operator's rendering of `spec.auth.providers` is what the users service reads: the
/// variables it puts in the users Deployment (the secret by reference, here filled as the
/// kubelet would from the Secret) start a Veche that signs people in through the provider.
#[tokio::test]
async fn the_operators_provider_settings_are_what_the_users_service_reads() {
    use operator::crd::{AuthProvider, Platform, PlatformSpec, ProviderKind, SecretKeyRef, ServiceDeployment};
    use operator::crd::{ServiceDeploymentSpec, ServiceKind};
    let port = free_port();
    let mut spec = PlatformSpec::default();
    spec.auth.providers.push(AuthProvider {
        id: "corp".into(),
        name: "Corporate SSO".into(),
        kind: ProviderKind::Oidc,
        issuer: Some(OidcProvider::issuer_on(port)),
        client_id: crate::common::oidc::CLIENT_ID.into(),
        client_secret: SecretKeyRef { name: "corp-client".into(), key: None },
        scopes: vec![],
        domains: vec!["corp.example".into()],
        authorization_url: None,
        token_url: None,
        api_url: None,
    });
    let mut platform = Platform::new("demo", spec);
    platform.metadata.namespace = Some("apps".into());
    platform.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    let mut sd = ServiceDeployment::new("demo-users", ServiceDeploymentSpec::new("demo", ServiceKind::Users));
    sd.metadata.namespace = Some("apps".into());
    sd.metadata.uid = Some("00000000-0000-0000-0000-000000000002".into());
    let deployment = operator::render::service::render(&platform, &sd).unwrap().deployment;
    let env = deployment.spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap();
    let mut vars: Vec<(String, String)> = Vec::new();
    for e in env.iter().filter(|e| e.name.starts_with("VECHE_AUTH_")) {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                let secret = from.secret_key_ref.as_ref().unwrap();
                assert_eq!((secret.name.as_str(), secret.key.as_str()), ("corp-client", "clientSecret"));
                crate::common::oidc::CLIENT_SECRET.to_owned()
            }
            _ => unreachable!(),
        };
        vars.push((e.name.clone(), value));
    }
    assert_eq!(vars.len(), 2, "{vars:?}");
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let v = Veche::start_with(&vars);
    let _provider = OidcProvider::start(port, &v);
    let token = sign_in(&v, "ann").await;
    assert_eq!(me(&v, &token).await["identities"][0]["provider"], "corp");
    let r = register(&v, "someone@corp.example").await;
    assert_eq!((r.status, r.body["provider"].as_str()), (403, Some("corp")), "{r:?}");
}

/// Yandex ID (OAuth 2.0 and its `/info` API): its default email is one its owner
/// confirmed, so a new person gets an account.
#[tokio::test]
async fn a_person_signs_in_with_yandex_id() {
    let port = free_port();
    let config = StandIn::plain_config(port, "yandex", "yandex", ["/authorize", "/token", ""]);
    let v = Veche::start_with(&[("VECHE_AUTH_PROVIDERS", &config)]);
    let _yandex = StandIn::start("yandex_standin.py", port);
    let back = browse(&start_url_of(&v, "yandex", "y-1"), &v.url("/dashboard"), "ivan", false);
    let r = exchange(&v, back["code"].as_str().unwrap_or_else(|| panic!("{back}"))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let ivan = me(&v, r.body["access_token"].as_str().unwrap()).await;
    assert_eq!((&ivan["email"], &ivan["display_name"]), (&json!("ivan@yandex.ru"), &json!("Ivan Petrov")), "{ivan}");
    assert_eq!(ivan["identities"][0]["provider"], "yandex");
}

/// VK ID (OAuth 2.1 with PKCE and a device id bound to the code, its `user_info` API):
/// it does not say the email is confirmed, so VK ID makes no account and joins none by
/// email; the owner links it, and then it signs in.
#[tokio::test]
async fn vk_id_signs_in_once_its_owner_linked_it() {
    let port = free_port();
    let config = StandIn::plain_config(port, "vkid", "vk", ["/authorize", "/oauth2/auth", ""]);
    let v = Veche::start_with(&[("VECHE_AUTH_PROVIDERS", &config)]);
    let vk = StandIn::start("vkid_standin.py", port);
    vk.person(json!({"user_id": "1234567", "first_name": "Ivan", "last_name": "Petrov", "email": "ivan@example.org",
                     "avatar": "https://example.org/a.jpg", "sex": 2, "verified": false, "birthday": "01.01.2000"}))
        .await;
    let (ivan_password, _) = signed_up(&v, "ivan@example.org").await;
    let back = browse(&start_url_of(&v, "vk", "vk-1"), &v.url("/dashboard"), "ivan", false);
    assert_eq!(back["error"], "access_denied", "{back}");

    let r = send(
        client()
            .post(v.url("/api/v1/users/me/identities/vk"))
            .bearer_auth(&ivan_password)
            .json(&json!({"redirect_uri": v.url("/dashboard"), "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let back = browse(r.body["authorization_url"].as_str().unwrap(), &v.url("/dashboard"), "ivan", false);
    let code = back["link_code"].as_str().unwrap_or_else(|| panic!("{back}"));
    let r = send(
        client()
            .post(v.url("/api/v1/users/me/identities/vk/confirm"))
            .bearer_auth(&ivan_password)
            .json(&json!({"code": code})),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let back = browse(&start_url_of(&v, "vk", "vk-2"), &v.url("/dashboard"), "ivan", false);
    let r = exchange(&v, back["code"].as_str().unwrap_or_else(|| panic!("{back}"))).await;
    assert_eq!(r.status, 200, "{r:?}");
    let ivan = me(&v, r.body["access_token"].as_str().unwrap()).await;
    assert_eq!(ivan["id"], me(&v, &ivan_password).await["id"]);
}

/// A domain bound to its company's provider is not reached through another provider that
/// vouches for the same address (a former employee's GitHub account, say).
#[tokio::test]
async fn a_bound_domain_is_not_reached_through_another_provider() {
    let (corp_port, gh_port) = (free_port(), free_port());
    let mut providers: Vec<Value> =
        serde_json::from_str(&OidcProvider::config_binding(corp_port, &["corp.example"])).unwrap();
    providers.extend(serde_json::from_str::<Vec<Value>>(&StandIn::github_config(gh_port)).unwrap());
    let v = Veche::start_with(&[
        ("VECHE_AUTH_PROVIDERS", &Value::from(providers).to_string()),
        ("VECHE_AUTH_CLIENT_SECRET_GH", crate::common::oidc::CLIENT_SECRET),
    ]);
    let github = StandIn::start("github_standin.py", gh_port);
    github
        .person(json!({"id": 99, "login": "former", "name": null, "email": null,
                       "emails": [{"email": "former@corp.example", "primary": true, "verified": true, "visibility": "private"}]}))
        .await;
    let back = browse(&start_url_of(&v, "gh", "gh-1"), &v.url("/dashboard"), "former", false);
    assert_eq!(back["error"], "access_denied", "{back}");
    assert!(back["error_description"].as_str().unwrap().contains("Corporate SSO"), "{back}");
    assert_eq!(
        register(&v, "someone@elsewhere.example").await.status,
        201,
        "and nothing else changed for other domains"
    );
}

/// An account made through a provider has no password: it re-confirms sensitive changes
/// by a recent sign-in (here, enrolling a second factor).
#[tokio::test]
async fn an_account_without_a_password_enrols_a_second_factor_after_signing_in() {
    let (v, _provider) = with_provider();
    let token = sign_in(&v, "ann").await;
    let r =
        send(client().post(v.url("/api/v1/users/me/second-factor/totp")).bearer_auth(&token).json(&json!({}))).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.body["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
}
