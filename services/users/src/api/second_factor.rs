//! `/api/v1/users/me/second-factor`: enrolling an authenticator app (TOTP), recovery
//! codes, turning it off; and the check that login runs when an account has one.
//!
//! Changes ask for the password again (a stolen access token alone cannot turn the factor
//! off or read new recovery codes), throttled like logins; every change is mailed.

use super::me::current_user;
use super::reauth::reauthenticate;
use crate::App;
use crate::model::{self, User};
use crate::second_factor::{self as factor, Enrolment};
use crate::store::SecondFactor;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::Json;
use kit::server::Peer;
use kit::{ApiError, now_unix};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Codes are short; anything longer is wrong without a lookup.
const CODE_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FactorState {
    /// Logging in takes the password only.
    Off,
    /// Enrolment started; a first code confirms it.
    Pending,
    /// Logging in takes a code too.
    On,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecondFactorStatus {
    pub state: FactorState,
    /// Unused recovery codes left.
    pub recovery_codes_left: u32,
    /// Whether this account must have one (administrators, when the platform says so).
    pub required: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The account's password, asked again for every change (an account without one,
    /// made through an identity provider, signs in again instead).
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// Six digits from the authenticator app.
    #[schema(example = "123456", max_length = 64)]
    pub code: String,
}

/// Shown once: only their hashes are kept.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Each works once, in place of a code from the app.
    pub recovery_codes: Vec<String>,
}

fn required(app: &App, user: &User) -> bool {
    app.config.require_admin_second_factor && user.roles.iter().any(|r| r == model::ROLE_ADMIN)
}

/// Mails the account's owner that `change` happened (a `security_notice` letter).
fn tell(app: &App, user: &User, change: &str, left: Option<u32>) {
    let context = serde_json::json!({"name": user.profile.display_name, "change": change, "left": left});
    app.mailer.send_letter(&user.email, "security_notice", user.language(), context);
}

#[utoipa::path(get, path = "/api/v1/users/me/second-factor", operation_id = "getSecondFactor", tag = "profile",
    security(("bearer" = [])),
    responses((status = 200, body = SecondFactorStatus), (status = 401, body = kit::problem::Problem)))]
pub async fn status(State(app): State<App>, caller: AuthUser) -> Result<Json<SecondFactorStatus>, ApiError> {
    let user = current_user(&app, &caller).await?;
    let stored = app.store.second_factor(user.id).await?;
    let state = match &stored {
        None => FactorState::Off,
        Some(f) if f.confirmed => FactorState::On,
        Some(_) => FactorState::Pending,
    };
    let recovery_codes_left = stored.filter(|f| f.confirmed).map_or(0, |f| f.recovery_codes_left);
    Ok(Json(SecondFactorStatus { state, recovery_codes_left, required: required(&app, &user) }))
}

#[utoipa::path(post, path = "/api/v1/users/me/second-factor/totp", operation_id = "enrolTotp", tag = "profile",
    security(("bearer" = [])), request_body = PasswordRequest,
    responses((status = 201, description = "scan the QR code (or type the secret), then confirm with a code", body = Enrolment),
              (status = 409, description = "a second factor is on already", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem), (status = 429, body = kit::problem::Problem)))]
pub async fn enrol(
    State(app): State<App>,
    caller: AuthUser,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<PasswordRequest>,
) -> Result<Response, ApiError> {
    let user = current_user(&app, &caller).await?;
    reauthenticate(&app, &user, &caller, req.password, peer, &headers).await?;
    let secret = factor::new_secret();
    let enrolment = factor::enrolment(&secret, &user.email).map_err(ApiError::internal)?;
    if !app.store.begin_second_factor(user.id, app.seal.seal(user.id, &secret), now_unix()).await? {
        return Err(ApiError::Conflict("a second factor is on already: turn it off first to enrol another".into()));
    }
    Ok((StatusCode::CREATED, Json(enrolment)).into_response())
}

#[utoipa::path(post, path = "/api/v1/users/me/second-factor/totp/confirm", operation_id = "confirmTotp", tag = "profile",
    security(("bearer" = [])), request_body = CodeRequest,
    responses((status = 200, description = "on; the recovery codes are shown this once", body = RecoveryCodes),
              (status = 409, description = "no enrolment is pending", body = kit::problem::Problem),
              (status = 422, description = "the code is wrong", body = kit::problem::Problem)))]
pub async fn confirm(
    State(app): State<App>,
    caller: AuthUser,
    Json(req): Json<CodeRequest>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let user = current_user(&app, &caller).await?;
    let pending = app.store.second_factor(user.id).await?.filter(|f| !f.confirmed);
    let Some(pending) = pending else {
        return Err(ApiError::Conflict("no enrolment is pending: start one first".into()));
    };
    let secret = app.seal.open(user.id, &pending.sealed_secret).ok_or_else(unsealable)?;
    let now = now_unix();
    let step = (req.code.len() <= CODE_MAX).then(|| factor::matching_step(&secret, &req.code, now)).flatten();
    let Some(step) = step else {
        return Err(ApiError::field("code", "is not the current code of the authenticator app"));
    };
    let codes = factor::new_recovery_codes();
    let hashes = codes.iter().map(|c| factor::recovery_code_hash(c)).collect();
    if !app.store.confirm_second_factor(user.id, step, hashes, now).await? {
        return Err(ApiError::Conflict("no enrolment is pending: start one first".into()));
    }
    tell(&app, &user, "second_factor_on", None);
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}

#[utoipa::path(post, path = "/api/v1/users/me/second-factor/recovery-codes", operation_id = "renewRecoveryCodes", tag = "profile",
    security(("bearer" = [])), request_body = PasswordRequest,
    responses((status = 200, description = "a new set; the old codes stop working", body = RecoveryCodes),
              (status = 409, description = "no second factor is on", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem), (status = 429, body = kit::problem::Problem)))]
pub async fn renew_recovery_codes(
    State(app): State<App>,
    caller: AuthUser,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<PasswordRequest>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let user = current_user(&app, &caller).await?;
    reauthenticate(&app, &user, &caller, req.password, peer, &headers).await?;
    let codes = factor::new_recovery_codes();
    let hashes = codes.iter().map(|c| factor::recovery_code_hash(c)).collect();
    if !app.store.replace_recovery_codes(user.id, hashes).await? {
        return Err(ApiError::Conflict("no second factor is on".into()));
    }
    tell(&app, &user, "recovery_codes_renewed", None);
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}

#[utoipa::path(post, path = "/api/v1/users/me/second-factor/disable", operation_id = "disableSecondFactor", tag = "profile",
    security(("bearer" = [])), request_body = PasswordRequest,
    responses((status = 204, description = "off (also when it was off); the recovery codes are gone"),
              (status = 403, description = "this account must keep a second factor", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem), (status = 429, body = kit::problem::Problem)))]
pub async fn disable(
    State(app): State<App>,
    caller: AuthUser,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<PasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let user = current_user(&app, &caller).await?;
    reauthenticate(&app, &user, &caller, req.password, peer, &headers).await?;
    if required(&app, &user) && user.second_factor {
        return Err(ApiError::Forbidden("administrators must keep a second factor on this platform".into()));
    }
    if app.store.remove_second_factor(user.id).await? && user.second_factor {
        tell(&app, &user, "second_factor_off", None);
    }
    Ok(StatusCode::NO_CONTENT)
}

fn unsealable() -> ApiError {
    ApiError::internal(anyhow::anyhow!("a second-factor secret does not open with this service's key"))
}

/// At login (with a password or through a provider): for an account with a factor on,
/// the code must come and be right. A wrong code counts as a failed login, so guessing
/// codes is throttled like guessing passwords.
pub async fn check_at_login(
    app: &App,
    user: &User,
    code: Option<&str>,
    ip: Option<std::net::IpAddr>,
    now: i64,
) -> Result<(), ApiError> {
    if !user.second_factor {
        return Ok(());
    }
    let Some(code) = code else {
        return Err(ApiError::SecondFactorRequired(
            "send the code from the authenticator app, or a recovery code, as `code`".into(),
        ));
    };
    let Some(stored) = app.store.second_factor(user.id).await?.filter(|f| f.confirmed) else {
        return Err(ApiError::Unauthorized("the code is wrong, expired or already used".into()));
    };
    // Past a few wrong codes the account's codes wait, whichever address they come from:
    // the address throttle alone would let a thousand addresses share a million guesses.
    if stored.locked_until > now {
        return Err(ApiError::TooManyRequests {
            retry_after: std::time::Duration::from_secs((stored.locked_until - now) as u64),
        });
    }
    if !passes(app, user, &stored, code, now).await? {
        app.throttle.failed(&user.email, ip, now as u64);
        if app.store.code_failed(user.id, now).await? {
            tell(app, user, "wrong_codes", None);
        }
        return Err(ApiError::Unauthorized("the code is wrong, expired or already used".into()));
    }
    app.store.code_passed(user.id).await?;
    Ok(())
}

/// For an account with a factor on: whether `code` (from the app, or a recovery
/// code) is right and unused; spends it if so. A recovery code used is mailed.
async fn passes(app: &App, user: &User, stored: &SecondFactor, code: &str, now: i64) -> Result<bool, ApiError> {
    if code.len() > CODE_MAX {
        return Ok(false);
    }
    if factor::is_app_code(code) {
        let secret = app.seal.open(user.id, &stored.sealed_secret).ok_or_else(unsealable)?;
        return match factor::matching_step(&secret, code, now) {
            Some(step) => Ok(app.store.spend_step(user.id, step).await?),
            None => Ok(false),
        };
    }
    let spent = app.store.spend_recovery_code(user.id, factor::recovery_code_hash(code), now).await?;
    if spent {
        let left = stored.recovery_codes_left.saturating_sub(1);
        tell(app, user, "recovery_code_used", Some(left));
    }
    Ok(spent)
}
