//! `/api/v1/auth/*`: registration, login, token refresh and logout, email verification,
//! and password reset.

use crate::App;
use crate::model::{self, Purpose, User, UserView};
use crate::store::{NewSession, NewUser, Refresh, StoreError};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::Json;
use kit::secret::{new_token, token_hash};
use kit::server::Peer;
use kit::{ApiError, Violations, now_unix};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// Verification links live a day; reset links an hour (OWASP Forgot Password).
const VERIFY_TTL: i64 = 24 * 3600;
const RESET_TTL: i64 = 3600;
/// At most one mail of each kind per account per minute.
const MAIL_COOLDOWN: i64 = 60;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(schema_with = kit::schemas::email)]
    pub email: String,
    /// At least 12 characters by default (`VECHE_PASSWORD_MIN_LENGTH`), at most 128.
    #[schema(example = "correct horse battery staple", min_length = 12, max_length = 128)]
    pub password: String,
    #[schema(schema_with = kit::schemas::one_line::<100>, example = "Anna")]
    pub display_name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// For an account with a second factor: six digits from the authenticator app, or a
    /// recovery code. Without it, such an account's login answers 401 of type
    /// `second-factor-required`.
    #[schema(example = "123456", max_length = 64)]
    pub code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// Tokens are never cached, by the browser or anything between (RFC 6749 §5.1).
impl IntoResponse for TokenPair {
    fn into_response(self) -> Response {
        let mut response = Json(self).into_response();
        super::token::no_store(response.headers_mut());
        response
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    pub email: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmRequest {
    pub token: String,
    pub password: String,
}

/// Tokens and emails are bounded before any work is done on them.
const TOKEN_MAX: usize = 128;

pub(crate) fn client_ip(app: &App, headers: &HeaderMap, peer: Peer) -> Option<std::net::IpAddr> {
    kit::server::client_ip(headers, peer, &app.proxies)
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| ua.chars().take(256).collect())
}

#[utoipa::path(post, path = "/api/v1/auth/register", operation_id = "registerUser", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 409, description = "email taken", body = kit::problem::Problem),
              (status = 403, description = "(type `sso-required`) the email's domain signs in through its identity provider, named in `provider`", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn register(
    State(app): State<App>,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<RegisterRequest>,
) -> Result<Response, ApiError> {
    let email = model::normalize_email(&req.email);
    let mut v = Violations::new();
    v.check(model::is_valid_email(&email), "email", "is not an email address");
    model::check_display_name(&mut v, &req.display_name);
    model::check_password(&mut v, "password", &req.password, app.config.password_min_length, &email);
    v.into_result()?;
    no_password_for(&app, &email)?;
    // The cheap checks first: a request that would fail anyway costs no hash. (Creating
    // the account still refuses a taken email when two registrations race.)
    if app.store.user_by_email(&email).await?.is_some() {
        return Err(StoreError::EmailTaken.into());
    }
    app.hash_limits.admit(client_ip(&app, &headers, peer))?;
    let hash = app.passwords.hash(req.password).await?;
    let new = NewUser {
        email,
        password_hash: Some(hash),
        display_name: req.display_name.trim().to_owned(),
        roles: Vec::new(),
        email_verified: false,
    };
    let user = app.store.create_user(new, now_unix()).await?;
    // The account exists now, and the answer must say so: a link that could not be stored
    // (a full disk, say) is asked for again with `/verify-email/resend`.
    if let Err(e) = send_verification(&app, &user).await {
        tracing::warn!(error = %e, user = %user.id, "the verification link of a new account could not be made");
    }
    Ok((StatusCode::CREATED, Json(UserView::from(&user))).into_response())
}

#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "logIn", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair),
              (status = 401, description = "wrong email, password or code; or (type `second-factor-required`) the account needs a `code`", body = kit::problem::Problem),
              (status = 403, description = "the account is disabled, or its email must be verified first; or (type `sso-required`) its domain signs in through the identity provider named in `provider`", body = kit::problem::Problem),
              (status = 429, body = kit::problem::Problem)))]
pub async fn login(
    State(app): State<App>,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> Result<TokenPair, ApiError> {
    let email = model::normalize_email(&req.email);
    if email.len() > 254 || req.password.chars().count() > model::PASSWORD_MAX {
        return Err(ApiError::Unauthorized("invalid email or password".into()));
    }
    no_password_for(&app, &email)?;
    let ip = client_ip(&app, &headers, peer);
    let now = now_unix();
    app.throttle.check(&email, ip, now as u64).map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let user = app.store.user_by_email(&email).await?;
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    // Always one argon2 verification, so "no such user" takes as long as "wrong password".
    let ok = app.passwords.verify(req.password, stored).await?;
    let user = match user {
        Some(u) if ok => u,
        _ => {
            app.throttle.failed(&email, ip, now as u64);
            return Err(ApiError::Unauthorized("invalid email or password".into()));
        }
    };
    super::second_factor::check_at_login(&app, &user, req.code.as_deref(), ip, now).await?;
    app.throttle.succeeded(&email, ip);
    start_session(&app, &user, &headers, ip, now).await
}

/// A new session for an account that proved who it is: refused when the account is
/// disabled or (when the platform asks) unverified.
/// People of a domain bound to an identity provider sign in there, never with a password.
pub(crate) fn no_password_for(app: &App, email: &str) -> Result<(), ApiError> {
    match app.config.auth_providers.bound(email) {
        Some(p) => Err(ApiError::SsoRequired {
            provider: p.id.clone(),
            detail: format!("accounts of this email domain sign in through {}", p.name),
        }),
        None => Ok(()),
    }
}

pub(crate) async fn start_session(
    app: &App,
    user: &User,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
    now: i64,
) -> Result<TokenPair, ApiError> {
    if user.disabled {
        return Err(ApiError::Forbidden("this account is disabled".into()));
    }
    if app.config.require_verified_email && !user.email_verified {
        return Err(ApiError::Forbidden("verify your email address before logging in".into()));
    }
    let refresh = new_token();
    let session = app
        .store
        .create_session(
            NewSession {
                user_id: user.id,
                refresh_hash: token_hash(&refresh),
                expires_at: now + app.config.refresh_token_ttl,
                user_agent: user_agent(headers),
                ip: ip.map(|i| i.to_string()),
            },
            now,
        )
        .await?;
    token_pair(app, user, session.id, refresh, now)
}

fn token_pair(
    app: &App,
    user: &User,
    session_id: uuid::Uuid,
    refresh_token: String,
    now: i64,
) -> Result<TokenPair, ApiError> {
    let access_token = app.issuer.access_token(user, session_id, now).map_err(ApiError::internal)?;
    Ok(TokenPair { access_token, refresh_token, token_type: "Bearer", expires_in: app.config.access_token_ttl })
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", operation_id = "refreshSession", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = kit::problem::Problem)))]
pub async fn refresh(State(app): State<App>, Json(req): Json<RefreshRequest>) -> Result<TokenPair, ApiError> {
    let invalid = || ApiError::Unauthorized("the refresh token is invalid or expired".into());
    if req.refresh_token.len() > TOKEN_MAX {
        return Err(invalid());
    }
    let now = now_unix();
    let next = new_token();
    let outcome = app
        .store
        .rotate_refresh(token_hash(&req.refresh_token), token_hash(&next), now, now + app.config.refresh_token_ttl)
        .await?;
    match outcome {
        Refresh::Rotated { session, user } => token_pair(&app, &user, session.id, next, now),
        Refresh::Reused => {
            tracing::warn!("a spent refresh token was presented again; its session is revoked");
            app.read_endings().await;
            Err(invalid())
        }
        Refresh::Invalid => Err(invalid()),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/logout", operation_id = "logOut", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "the session is ended (also when it already was)")))]
pub async fn logout(State(app): State<App>, Json(req): Json<RefreshRequest>) -> Result<StatusCode, ApiError> {
    if req.refresh_token.len() <= TOKEN_MAX
        && app.store.end_session_by_refresh(token_hash(&req.refresh_token), now_unix()).await?
    {
        app.read_endings().await;
    }
    // Idempotent: logging out twice, or with a stale token, is not an error worth showing.
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/auth/verify-email", operation_id = "verifyEmail", tag = "auth", request_body = TokenRequest,
    responses((status = 204), (status = 410, description = "unknown, spent or expired token", body = kit::problem::Problem)))]
pub async fn verify_email(State(app): State<App>, Json(req): Json<TokenRequest>) -> Result<StatusCode, ApiError> {
    let gone = || ApiError::Gone("this verification link is invalid, used or expired".into());
    if req.token.len() > TOKEN_MAX {
        return Err(gone());
    }
    match app.store.verify_email(token_hash(&req.token), now_unix()).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(gone()),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/verify-email/resend", operation_id = "resendVerificationEmail", tag = "auth", request_body = EmailRequest,
    responses((status = 202, description = "a new link is on its way if the account exists and is unverified")))]
pub async fn resend_verification(
    State(app): State<App>,
    caller: Option<AuthUser>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    // The body is optional: a signed-in caller needs none.
    let body: EmailRequest = if body.is_empty() { EmailRequest::default() } else { kit::extract::parse_json(&body)? };
    let user = match (caller, body.email) {
        (Some(me), _) => app.store.user_by_id(me.id).await?,
        (None, Some(email)) => app.store.user_by_email(&model::normalize_email(&email)).await?,
        (None, None) => return Err(ApiError::field("email", "is required when not signed in")),
    };
    if let Some(user) = user.filter(|u| !u.email_verified && !u.disabled) {
        send_verification(&app, &user).await?;
    }
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/v1/auth/password-reset", operation_id = "requestPasswordReset", tag = "auth", request_body = EmailRequest,
    responses((status = 202, description = "a reset link is on its way if the account exists"),
              (status = 403, description = "(type `sso-required`) the email's domain signs in through its identity provider", body = kit::problem::Problem)))]
pub async fn password_reset(State(app): State<App>, Json(req): Json<EmailRequest>) -> Result<StatusCode, ApiError> {
    let email = model::normalize_email(req.email.as_deref().unwrap_or_default());
    if !model::is_valid_email(&email) {
        return Err(ApiError::field("email", "is not an email address"));
    }
    no_password_for(&app, &email)?;
    // The same answer whether or not the account exists (OWASP Forgot Password).
    if let Some(user) = app.store.user_by_email(&email).await?.filter(|u| !u.disabled)
        && cooled_down(&app, user.id, Purpose::ResetPassword)
    {
        let token = new_token();
        let now = now_unix();
        app.store.create_one_time(user.id, Purpose::ResetPassword, token_hash(&token), now + RESET_TTL, now).await?;
        // The page opens in the language the mail is written in.
        let link = format!("{}/reset-password?token={token}&lang={}", app.public_url, user.language().as_str());
        app.mailer.send_letter(
            &user.email,
            "reset_password",
            user.language(),
            json!({
                "name": user.profile.display_name, "link": link,
            }),
        );
    }
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", operation_id = "confirmPasswordReset", tag = "auth", request_body = ResetConfirmRequest,
    responses((status = 204, description = "password changed; every session of the account is ended"),
              (status = 410, body = kit::problem::Problem), (status = 422, body = kit::problem::Problem)))]
pub async fn password_reset_confirm(
    State(app): State<App>,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<ResetConfirmRequest>,
) -> Result<StatusCode, ApiError> {
    let gone = || ApiError::Gone("this reset link is invalid, used or expired".into());
    let mut v = Violations::new();
    model::check_password(&mut v, "password", &req.password, app.config.password_min_length, "");
    v.into_result()?;
    if req.token.len() > TOKEN_MAX {
        return Err(gone());
    }
    // A dead link costs no hash; the reset below spends the token, so a race still fails.
    if !app.store.one_time_is_live(token_hash(&req.token), Purpose::ResetPassword, now_unix()).await? {
        return Err(gone());
    }
    app.hash_limits.admit(client_ip(&app, &headers, peer))?;
    let hash = app.passwords.hash(req.password).await?;
    match app.store.reset_password(token_hash(&req.token), hash, now_unix()).await? {
        Some(_) => {
            app.read_endings().await;
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(gone()),
    }
}

/// Whether an account may be sent another mail of this kind now (and notes that it is).
fn cooled_down(app: &App, user: uuid::Uuid, purpose: Purpose) -> bool {
    let now = now_unix();
    let mut sent = app.mail_cooldown.lock().unwrap_or_else(|p| p.into_inner());
    if sent.len() > 100_000 {
        sent.retain(|_, at| now - *at < MAIL_COOLDOWN);
    }
    let key = (user, purpose.as_str());
    match sent.get(&key) {
        Some(at) if now - at < MAIL_COOLDOWN => false,
        _ => {
            sent.insert(key, now);
            true
        }
    }
}

async fn send_verification(app: &App, user: &User) -> Result<(), ApiError> {
    if !cooled_down(app, user.id, Purpose::VerifyEmail) {
        return Ok(());
    }
    let token = new_token();
    let now = now_unix();
    app.store.create_one_time(user.id, Purpose::VerifyEmail, token_hash(&token), now + VERIFY_TTL, now).await?;
    let link = format!("{}/verify-email?token={token}&lang={}", app.public_url, user.language().as_str());
    app.mailer.send_letter(
        &user.email,
        "verify_email",
        user.language(),
        json!({
            "name": user.profile.display_name, "link": link,
        }),
    );
    Ok(())
}
