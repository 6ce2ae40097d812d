//! Access tokens against the published JWKS, checked by rules written here from the RFCs
//! (RFC 7515/7517/7519, RS256 with aws-lc directly), not by the jsonwebtoken crate that
//! signed them; and forged tokens, every one refused with 401.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

fn part(token: &str, i: usize) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn access_tokens_verify_against_the_published_jwks_independently() {
    let v = Veche::start();
    let (access, _) = signed_up(&v, "jwks@example.org").await;
    let jwks = send(client().get(v.url("/.well-known/jwks.json"))).await.body;
    let discovery = send(client().get(v.url("/.well-known/openid-configuration"))).await.body;
    assert_eq!(discovery["jwks_uri"], v.url("/.well-known/jwks.json"));
    assert_eq!(discovery["issuer"], v.base);

    let header = part(&access, 0);
    assert_eq!(header["alg"], "RS256");
    let kid = header["kid"].as_str().expect("a kid");
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("kid is published");
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["use"], "sig");
    assert!(jwk.get("d").is_none(), "no private parts are published");

    // Signature over `header.payload`, with the modulus and exponent from the JWKS.
    let (signing_input, signature) = access.rsplit_once('.').unwrap();
    let n = B64.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = B64.decode(jwk["e"].as_str().unwrap()).unwrap();
    assert!(n.len() >= 256, "at least 2048-bit RSA");
    let key = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e };
    key.verify(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        signing_input.as_bytes(),
        &B64.decode(signature).unwrap(),
    )
    .expect("the signature verifies");

    let claims = part(&access, 1);
    assert_eq!(claims["iss"], v.base);
    assert_eq!(claims["aud"], "veche");
    let (iat, exp, nbf) =
        (claims["iat"].as_u64().unwrap(), claims["exp"].as_u64().unwrap(), claims["nbf"].as_u64().unwrap());
    assert!(nbf <= now() + 1 && exp > now() && exp - iat == 900);
    assert_eq!(claims["email"], "jwks@example.org");
    assert_eq!(claims["email_verified"], false);
    assert!(uuid::Uuid::parse_str(claims["sub"].as_str().unwrap()).is_ok());
    assert!(claims["jti"].is_string() && claims["sid"].is_string());
}

/// Signs arbitrary claims with the platform's real private key (read from the data dir),
/// so only the claim under test is wrong.
fn sign_with_real_key(v: &Veche, header_kid: &str, claims: &Value) -> String {
    let keys = v.data.join("keys");
    let file = std::fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(file).unwrap()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(header_kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[tokio::test]
async fn forged_tokens_are_rejected() {
    let v = Veche::start();
    let (access, _) = signed_up(&v, "forge@example.org").await;
    assert_eq!(get_auth(&v, "/api/v1/users/me", &access).await.status, 200);
    let header = part(&access, 0);
    let kid = header["kid"].as_str().unwrap();
    let claims = part(&access, 1);
    let with = |k: &str, val: Value| {
        let mut c = claims.clone();
        c[k] = val;
        c
    };
    let enc = |v: &Value| B64.encode(serde_json::to_vec(v).unwrap());

    let mut forged: Vec<(&str, String)> = Vec::new();
    // alg none, no signature.
    forged.push(("alg none", format!("{}.{}.", enc(&json!({"alg": "none", "typ": "JWT", "kid": kid})), enc(&claims))));
    // HS256 keyed with the public key's bytes (the classic algorithm-confusion attack).
    let jwks = send(client().get(v.url("/.well-known/jwks.json"))).await.body;
    let jwk = &jwks["keys"][0];
    let public_bytes = serde_json::to_vec(jwk).unwrap();
    let hs_input = format!("{}.{}", enc(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})), enc(&claims));
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public_bytes),
        hs_input.as_bytes(),
    );
    forged.push(("HS256 with the public key", format!("{hs_input}.{}", B64.encode(tag.as_ref()))));
    let n_bytes = B64.decode(jwk["n"].as_str().unwrap()).unwrap();
    let tag =
        aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &n_bytes), hs_input.as_bytes());
    forged.push(("HS256 with the modulus", format!("{hs_input}.{}", B64.encode(tag.as_ref()))));
    // Properly signed, but expired, not yet valid, or for someone else.
    forged.push(("expired", sign_with_real_key(&v, kid, &with("exp", json!(now() - 3600)))));
    forged.push(("not yet valid", sign_with_real_key(&v, kid, &with("nbf", json!(now() + 3600)))));
    forged.push(("wrong issuer", sign_with_real_key(&v, kid, &with("iss", json!("https://evil.example")))));
    forged.push(("wrong audience", sign_with_real_key(&v, kid, &with("aud", json!("someone-else")))));
    forged.push(("unknown kid", sign_with_real_key(&v, "no-such-key", &claims)));
    // Tampered payload under the original signature.
    let sig = access.rsplit('.').next().unwrap();
    forged.push(("tampered payload", format!("{}.{}.{sig}", enc(&header), enc(&with("roles", json!(["admin"]))))));
    forged.push(("garbage", "not.a.jwt".to_owned()));
    forged.push(("truncated", access[..access.len() - 10].to_owned()));

    for (what, token) in forged {
        let r = get_auth(&v, "/api/v1/users/me", &token).await;
        assert_eq!(r.status, 401, "{what} must be refused: {r:?}");
        assert_eq!(r.content_type, "application/problem+json", "{what}");
        assert_eq!(r.headers["www-authenticate"], "Bearer", "{what}");
    }
}

#[tokio::test]
async fn service_tokens_are_for_their_audience_only() {
    let secret = "a-service-secret-of-some-length";
    let v = Veche::start_with(&[("VECHE_SERVICE_CLIENTS", &format!("events={secret}"))]);
    let tokens = kit::service_token::ServiceTokens::new(kit::service_token::ClientCredentials {
        token_url: v.url("/api/v1/auth/token"),
        client_id: "events".into(),
        client_secret: secret.into(),
    });
    let token = tokens.token_for("organizations").await.expect("a service token");
    // Cached: asking again gives the same token without a round trip.
    assert_eq!(tokens.token_for("organizations").await.unwrap(), token);

    let jwks = kit::auth::KeySource::Url(v.url("/.well-known/jwks.json"));
    let organizations = kit::auth::Verifier::new(jwks.clone(), v.base.clone(), "organizations");
    let claims = organizations.verify(&token).await.expect("the callee accepts it");
    assert_eq!(claims.service(), Some("events"));
    assert!(claims.user_id().is_none());
    let analytics = kit::auth::Verifier::new(jwks, v.base.clone(), "analytics");
    assert!(matches!(analytics.verify(&token).await, Err(kit::auth::AuthError::Audience)));

    // A service token is not a person, and from outside the gateway refuses it outright.
    let users_token = tokens.token_for("users").await.unwrap();
    get_auth(&v, "/api/v1/users/me", &users_token).await.assert_problem(401);

    // Wrong secret, unknown client: RFC 6749 errors, with the Basic challenge.
    for (id, secret) in [("events", "wrong-secret-wrong-secret"), ("nobody", secret)] {
        let bad = send(
            client()
                .post(v.url("/api/v1/auth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials"), ("audience", "organizations")]),
        )
        .await;
        assert_eq!((bad.status, bad.content_type.as_str()), (401, "application/json"), "{bad:?}");
        assert_eq!(bad.body["error"], "invalid_client", "{bad:?}");
        assert_eq!(bad.headers["www-authenticate"], r#"Basic realm="veche""#);
        assert_eq!(bad.headers["cache-control"], "no-store");
    }

    // The events service of `veche up` presents the configured secret too: creating an
    // event in an organization makes it ask organizations for the owner's role.
    let c = crate::common::orgs::cast(&v).await;
    let event = json!({"title": "Chess night", "start": "2030-12-05T16:00:00Z", "end": "2030-12-05T18:00:00Z",
                       "time_zone": "Europe/Moscow", "format": "online", "online_url": "https://meet.example.org/x",
                       "organization_id": c.org["id"]});
    let created = send(client().post(v.url("/api/v1/events")).bearer_auth(&c.owner).json(&event)).await;
    assert_eq!(created.status, 201, "{created:?}");
}

/// An OAuth library that owes Veche nothing (Python's Authlib) discovers the token
/// endpoint, gets tokens with both client authentication methods the metadata names, and
/// reads every refusal as the RFC 6749 error it is.
#[tokio::test]
async fn an_independent_oauth_client_reads_the_token_endpoint() {
    let secret = "a-service-secret-of-some-length";
    let v = Veche::start_with(&[("VECHE_SERVICE_CLIENTS", &format!("events={secret}"))]);
    let seen = run_python("oauth_client.py", &[&v.base, "events", secret]);
    let methods = seen["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 2, "{seen}");
    assert!(methods.iter().all(|m| m["wrong_secret"] == "invalid_client"), "{seen}");
    assert_eq!(seen["password_grant"], "unsupported_grant_type", "{seen}");
    assert_eq!(seen["unknown_audience"], "invalid_target", "{seen}");
    assert_eq!(seen["no_audience"], "invalid_request", "{seen}");
    // A body that is not a form, and two ways of authenticating at once.
    let r = send(client().post(v.url("/api/v1/auth/token")).json(&json!({"grant_type": "client_credentials"}))).await;
    assert_eq!((r.status, r.body["error"].as_str()), (400, Some("invalid_request")), "{r:?}");
    let both = [
        ("grant_type", "client_credentials"),
        ("audience", "events"),
        ("client_id", "events"),
        ("client_secret", secret),
    ];
    let r = send(client().post(v.url("/api/v1/auth/token")).basic_auth("events", Some(secret)).form(&both)).await;
    assert_eq!((r.status, r.body["error"].as_str()), (400, Some("invalid_request")), "{r:?}");
}
