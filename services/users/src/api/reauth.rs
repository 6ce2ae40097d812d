//! Proof, for a sensitive change, that the person at the keyboard owns the account and
//! not only a token: the password again (throttled like a login), or, for an account
//! without one (made through an identity provider), a sign-in within the last minutes.

use super::auth::client_ip;
use crate::App;
use crate::model::{self, User};
use axum::http::HeaderMap;
use kit::auth::AuthUser;
use kit::server::Peer;
use kit::{ApiError, now_unix};

/// How recent a sign-in must be to stand in for a password.
const FRESH_SIGN_IN: i64 = 600;

pub async fn reauthenticate(
    app: &App,
    user: &User,
    caller: &AuthUser,
    password: Option<String>,
    peer: Peer,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let (ip, now) = (client_ip(app, headers, peer), now_unix());
    if user.password_hash.is_none() {
        let session = caller.claims.sid.as_deref().and_then(|s| s.parse::<uuid::Uuid>().ok());
        let sessions = app.store.sessions(user.id, now).await?;
        let fresh = sessions.iter().any(|s| Some(s.id) == session && now - s.created_at <= FRESH_SIGN_IN);
        if !fresh {
            return Err(ApiError::Forbidden(
                "sign in again (this account has no password, so a sign-in of the last ten minutes confirms it is you)"
                    .into(),
            ));
        }
        return Ok(());
    }
    let Some(password) = password else {
        return Err(ApiError::field("password", "is required: the account's password, asked again for this change"));
    };
    app.throttle.check(&user.email, ip, now as u64).map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    if password.chars().count() > model::PASSWORD_MAX
        || !app.passwords.verify(password, user.password_hash.clone()).await?
    {
        app.throttle.failed(&user.email, ip, now as u64);
        return Err(ApiError::field("password", "is not the account's password"));
    }
    app.throttle.succeeded(&user.email, ip);
    Ok(())
}
