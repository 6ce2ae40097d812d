//! Routes of the users service, and its OpenAPI document.

pub mod admin;
pub mod auth;
pub mod internal;
pub mod me;
pub mod oauth;
pub mod page;
mod reauth;
pub mod second_factor;
pub mod token;
pub mod well_known;

use crate::App;
use axum::Router;
use axum::routing::{get, post};
use kit::openapi::BearerAuth;
use utoipa::OpenApi;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/api/v1/auth/register", post(auth::register))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/verify-email", post(auth::verify_email))
        .route("/api/v1/auth/verify-email/resend", post(auth::resend_verification))
        .route("/api/v1/auth/password-reset", post(auth::password_reset))
        .route("/api/v1/auth/password-reset/confirm", post(auth::password_reset_confirm))
        .route("/api/v1/auth/token", post(token::service_token))
        .route("/api/v1/auth/providers", get(oauth::providers))
        .route("/api/v1/auth/oauth/{provider}/start", get(oauth::start))
        .route("/api/v1/auth/oauth/{provider}/callback", get(oauth::callback))
        .route("/api/v1/auth/oauth/exchange", post(oauth::exchange))
        .route("/api/v1/users/me/identities/{provider}", post(oauth::link).delete(oauth::unlink))
        .route("/api/v1/users/me/identities/{provider}/confirm", post(oauth::confirm_link))
        .route("/api/v1/users/me", get(me::get_me).patch(me::patch_me).delete(me::delete_me))
        .route("/api/v1/users/me/preferences", get(me::get_preferences).put(me::put_preferences))
        .route("/api/v1/users/me/sessions", get(me::sessions))
        .route("/api/v1/users/me/second-factor", get(second_factor::status))
        .route("/api/v1/users/me/second-factor/totp", post(second_factor::enrol))
        .route("/api/v1/users/me/second-factor/totp/confirm", post(second_factor::confirm))
        .route("/api/v1/users/me/second-factor/recovery-codes", post(second_factor::renew_recovery_codes))
        .route("/api/v1/users/me/second-factor/disable", post(second_factor::disable))
        .route("/api/v1/users/me/sessions/{id}", axum::routing::delete(me::end_session))
        .route("/api/v1/users", get(admin::list))
        .route("/api/v1/users/{id}", get(admin::get).patch(admin::patch).delete(admin::delete))
        .route(clients::users::ENDED_PATH, get(internal::ended_sessions))
        .route(clients::people::PEOPLE_PATH, post(internal::people))
        .route("/.well-known/jwks.json", get(well_known::jwks))
        .route("/.well-known/openid-configuration", get(well_known::openid_configuration))
        .route("/verify-email", get(page::verify_email))
        .route("/reset-password", get(page::reset_password))
        .route("/account/{name}", get(page::asset))
        .with_state(app)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Veche API", description = "The events platform's HTTP API. Errors are application/problem+json (RFC 9457)."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::verify_email, auth::resend_verification,
        auth::password_reset, auth::password_reset_confirm, token::service_token,
        oauth::providers, oauth::start, oauth::callback, oauth::exchange, oauth::link, oauth::confirm_link, oauth::unlink,
        me::get_me, me::patch_me, me::delete_me, me::get_preferences, me::put_preferences, me::sessions, me::end_session,
        second_factor::status, second_factor::enrol, second_factor::confirm, second_factor::renew_recovery_codes,
        second_factor::disable,
        admin::list, admin::get, admin::patch, admin::delete,
        well_known::jwks, well_known::openid_configuration,
        internal::ended_sessions, internal::people,
    ),
    modifiers(&BearerAuth),
    tags((name = "auth", description = "Accounts, sessions and tokens"),
         (name = "profile", description = "The signed-in person's account"),
         (name = "admin", description = "Account administration (platform admins)"),
         (name = "discovery", description = "Keys and metadata of the token issuer"),
         (name = "internal", description = "Calls between services, with service tokens"))
)]
struct UsersApi;

pub fn openapi() -> utoipa::openapi::OpenApi {
    UsersApi::openapi()
}
