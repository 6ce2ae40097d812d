//! `/.well-known/*`: the token issuer's public face.

use crate::App;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[utoipa::path(get, path = "/.well-known/jwks.json", operation_id = "getJwks", tag = "discovery",
    responses((status = 200, description = "the public signing keys (RFC 7517)")))]
pub async fn jwks(State(app): State<App>) -> Response {
    let mut r = Json(app.issuer.keys.jwks()).into_response();
    // Verifiers may cache briefly; rotation publishes new keys a minute ahead.
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=60"));
    r
}

#[utoipa::path(get, path = "/.well-known/openid-configuration", operation_id = "getOpenIdConfiguration", tag = "discovery",
    responses((status = 200, description = "OpenID Connect discovery metadata (the subset Veche implements)")))]
pub async fn openid_configuration(State(app): State<App>) -> Json<serde_json::Value> {
    let issuer = app.issuer.issuer.clone();
    let base = &app.public_url;
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/api/v1/auth/token"),
        // Only what the token endpoint grants: people log in at `/api/v1/auth/login`.
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "email", "email_verified", "roles", "token_use"],
    }))
}
