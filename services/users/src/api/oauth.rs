//! Sign-in through outside identity providers:
//!
//! - `GET /api/v1/auth/providers`: who people may sign in with;
//! - `GET /api/v1/auth/oauth/{provider}/start?redirect_uri=&state=`: a 302 to the
//!   provider, for a frontend page on the allow-list;
//! - `GET /api/v1/auth/oauth/{provider}/callback`: where the provider sends the browser
//!   back. Our tokens never go into a URL: the browser goes on to the frontend with a
//!   one-time `code` (a minute, once), or with `error` and `error_description`;
//! - `POST /api/v1/auth/oauth/exchange {code}`: the code for the usual token pair;
//! - `/api/v1/users/me/identities/{provider}`: a signed-in person links (POST) or unlinks
//!   (DELETE) a provider; unlinking keeps at least one way in.
//!
//! A new identity joins an existing account only when the provider says it verified the
//! email (`email_verified`), or when the signed-in owner links it.

use super::auth::{TokenPair, client_ip, start_session};
use super::me::current_user;
use crate::App;
use crate::external::{ExternalPerson, ProviderError, Returned};
use crate::model::{self, User};
use crate::providers::{Provider, ProviderKind};
use crate::store::{Flow, Identity, NewUser, StoreError, Unlink};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::{Json, Path, Query};
use kit::secret::{new_token, token_hash};
use kit::server::Peer;
use kit::{ApiError, now_unix};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A flow waits this long for its callback.
const FLOW_TTL: i64 = 600;
/// The code handed to the frontend lives a minute.
const CODE_TTL: i64 = 60;
/// Our parameters and the provider's are bounded before any work.
const PARAM_MAX: usize = 2048;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    pub id: String,
    pub name: String,
    pub kind: ProviderKind,
}

#[utoipa::path(get, path = "/api/v1/auth/providers", operation_id = "listIdentityProviders", tag = "auth",
    responses((status = 200, description = "the providers people may sign in with", body = [ProviderView])))]
pub async fn providers(State(app): State<App>) -> Json<Vec<ProviderView>> {
    Json(
        app.config
            .auth_providers
            .0
            .iter()
            .map(|p| ProviderView { id: p.id.clone(), name: p.name.clone(), kind: p.kind })
            .collect(),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// The frontend page to come back to; it must be on the platform's allow-list
    /// (`VECHE_AUTH_REDIRECT_URIS`, and the dashboard).
    #[param(max_length = 2048)]
    pub redirect_uri: String,
    /// Anything the frontend wants back untouched (its own CSRF check).
    #[param(max_length = 512)]
    pub state: Option<String>,
}

fn provider<'a>(app: &'a App, id: &str) -> Result<&'a Provider, ApiError> {
    app.config.auth_providers.get(id).ok_or_else(|| ApiError::NotFound("no such identity provider".into()))
}

/// Where providers send the browser back to; registered with each provider.
fn callback_url(app: &App, provider: &str) -> String {
    format!("{}/api/v1/auth/oauth/{provider}/callback", app.public_url)
}

fn check_return(app: &App, redirect_uri: &str, state: Option<&str>) -> Result<(), ApiError> {
    if redirect_uri.len() > PARAM_MAX || !app.auth_returns.allows(redirect_uri) {
        return Err(ApiError::field("redirect_uri", "is not a page sign-ins may return to"));
    }
    if state.is_some_and(|s| s.len() > 512) {
        return Err(ApiError::field("state", "is longer than 512 characters"));
    }
    Ok(())
}

fn unavailable(e: ProviderError) -> ApiError {
    tracing::warn!(error = %e, "identity provider");
    ApiError::Unavailable("the identity provider cannot be reached; try again later".into())
}

/// Records a flow and answers where the browser must go.
async fn begin(
    app: &App,
    provider: &Provider,
    redirect_uri: String,
    client_state: Option<String>,
    link_user: Option<Uuid>,
) -> Result<String, ApiError> {
    let auth = app.providers.authorize(provider, &callback_url(app, &provider.id)).await.map_err(unavailable)?;
    let flow = Flow {
        provider: provider.id.clone(),
        nonce: auth.nonce,
        pkce_verifier: auth.pkce_verifier,
        return_to: redirect_uri,
        client_state,
        link_user,
        expires_at: now_unix() + FLOW_TTL,
    };
    app.store.begin_flow(token_hash(&auth.state), flow).await?;
    Ok(auth.url)
}

/// A redirect that keeps what it carries out of caches and referrers.
fn go_to(url: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    let h = response.headers_mut();
    match HeaderValue::from_str(url) {
        Ok(location) => h.insert(header::LOCATION, location),
        Err(_) => return ApiError::internal(anyhow::anyhow!("an unusable redirect")).into_response(),
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[utoipa::path(get, path = "/api/v1/auth/oauth/{provider}/start", operation_id = "startProviderSignIn", tag = "auth",
    params(("provider" = String, Path, description = "a provider's id"), StartQuery),
    responses((status = 302, description = "to the provider's sign-in page"),
              (status = 404, body = kit::problem::Problem), (status = 422, body = kit::problem::Problem),
              (status = 503, description = "the provider cannot be reached", body = kit::problem::Problem)))]
pub async fn start(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
) -> Result<Response, ApiError> {
    let provider = provider(&app, &id)?;
    check_return(&app, &q.redirect_uri, q.state.as_deref())?;
    let url = begin(&app, provider, q.redirect_uri, q.state, None).await?;
    Ok(go_to(&url))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// The provider's refusal (RFC 6749 §4.1.2.1).
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// The issuer that answers (RFC 9207): when sent, it must be the provider's.
    pub iss: Option<String>,
    /// VK ID: the device the code is bound to, sent back with it in the exchange.
    pub device_id: Option<String>,
}

/// Why the browser goes back to the frontend without a code (RFC 6749 error codes).
struct Refusal {
    error: &'static str,
    description: String,
}

impl Refusal {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self { error, description: description.into() }
    }
}

fn back_to(flow: &Flow, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(&flow.return_to) else {
        return ApiError::internal(anyhow::anyhow!("a stored return address does not parse")).into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        if let Some(state) = &flow.client_state {
            query.append_pair("state", state);
        }
    }
    go_to(url.as_str())
}

#[utoipa::path(get, path = "/api/v1/auth/oauth/{provider}/callback", operation_id = "finishProviderSignIn", tag = "auth",
    params(("provider" = String, Path, description = "a provider's id"), CallbackQuery),
    extensions(("x-open-query" = json!(true))),
    responses((status = 302, description = "to the frontend page, with `code` (or `linked`) and its `state`, or with `error` and `error_description`"),
              (status = 400, description = "no sign-in waits for this state (unknown, used or expired)", body = kit::problem::Problem),
              (status = 404, body = kit::problem::Problem),
              (status = 507, description = "the server's disk is full: the sign-in could not be stored", body = kit::problem::Problem)))]
pub async fn callback(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let provider = provider(&app, &id)?;
    let unknown =
        || ApiError::BadRequest("no sign-in waits for this state: it is unknown, used or expired; start again".into());
    let state = q.state.as_deref().filter(|s| s.len() <= PARAM_MAX).ok_or_else(unknown)?;
    let now = now_unix();
    let flow = app.store.take_flow(token_hash(state), now).await?.filter(|f| f.provider == provider.id);
    let flow = flow.ok_or_else(unknown)?;
    let outcome = match (verified_person(&app, provider, &flow, &q).await?, flow.link_user) {
        (Err(refusal), _) => Err(refusal),
        // Linking: the owner confirms with their own token, so a link flow started by
        // someone else and finished in a victim's browser links nothing.
        (Ok(person), Some(owner)) => {
            held_link(&app, provider, person, owner, now).await?.map(|code| ("link_code", code))
        }
        (Ok(person), None) => match account(&app, provider, person, now).await? {
            Ok(user) => {
                let code = new_token();
                app.store
                    .create_one_time(user.id, model::Purpose::SignIn, token_hash(&code), now + CODE_TTL, now)
                    .await?;
                Ok(("code", code))
            }
            Err(refusal) => Err(refusal),
        },
    };
    Ok(match outcome {
        Ok((name, code)) => back_to(&flow, &[(name, &code)]),
        Err(refusal) => back_to(&flow, &[("error", refusal.error), ("error_description", &refusal.description)]),
    })
}

/// The provider's answer, checked, and the account it leads to.
async fn verified_person(
    app: &App,
    provider: &Provider,
    flow: &Flow,
    q: &CallbackQuery,
) -> Result<Result<ExternalPerson, Refusal>, ApiError> {
    if let Some(error) = &q.error {
        let error = if error == "access_denied" { "access_denied" } else { "server_error" };
        let said = q.error_description.as_deref().unwrap_or("").chars().take(200).collect::<String>();
        return Ok(Err(Refusal::new(error, format!("the identity provider refused the sign-in: {said}"))));
    }
    // A mix-up attack sends another provider's answer here (RFC 9207 §2.4).
    let issuer = provider.issuer.as_deref().unwrap_or_default().trim_end_matches('/');
    if q.iss.as_deref().is_some_and(|iss| iss.trim_end_matches('/') != issuer) {
        return Ok(Err(Refusal::new("access_denied", "the answer came from another issuer")));
    }
    let Some(code) = q.code.as_deref().filter(|c| c.len() <= PARAM_MAX) else {
        return Ok(Err(Refusal::new("invalid_request", "the identity provider sent no code")));
    };
    let callback = callback_url(app, &provider.id);
    let back = Returned {
        code,
        state: q.state.as_deref().unwrap_or_default(),
        device_id: q.device_id.as_deref().filter(|d| d.len() <= PARAM_MAX),
        pkce_verifier: &flow.pkce_verifier,
        nonce: &flow.nonce,
    };
    let person = match app.providers.finish(provider, &callback, back).await {
        Ok(person) => person,
        Err(ProviderError::Unavailable(e)) => {
            tracing::warn!(provider = %provider.id, error = %e, "sign-in: provider unavailable");
            return Ok(Err(Refusal::new(
                "temporarily_unavailable",
                "the identity provider cannot be reached; try again",
            )));
        }
        Err(ProviderError::Refused(e)) => {
            tracing::warn!(provider = %provider.id, error = %e, "sign-in: the provider's answer was refused");
            return Ok(Err(Refusal::new("access_denied", "the identity provider's answer could not be verified")));
        }
    };
    Ok(Ok(person))
}

/// A domain bound to one provider signs in through it only, never through another that
/// vouches for the same address (a former employee's GitHub account, say).
fn bound_elsewhere(app: &App, email: &str, provider: &Provider) -> Option<Refusal> {
    let bound = app.config.auth_providers.bound(email)?;
    (bound.id != provider.id)
        .then(|| Refusal::new("access_denied", format!("accounts of this email domain sign in through {}", bound.name)))
}

const LINKED_ELSEWHERE: &str = "this account at the provider is linked to another Veche account";

/// A link the owner still has to confirm: the code the frontend confirms it with.
async fn held_link(
    app: &App,
    provider: &Provider,
    person: ExternalPerson,
    owner: Uuid,
    now: i64,
) -> Result<Result<String, Refusal>, ApiError> {
    if let Some(user) = app.store.user_by_identity(&provider.id, &person.subject).await?
        && user.id != owner
    {
        return Ok(Err(Refusal::new("access_denied", LINKED_ELSEWHERE)));
    }
    let Some(user) = app.store.user_by_id(owner).await? else {
        return Ok(Err(Refusal::new("access_denied", "the account that asked for this link is gone")));
    };
    if let Some(refusal) = bound_elsewhere(app, &user.email, provider) {
        return Ok(Err(refusal));
    }
    let email = person.email.as_deref().map(model::normalize_email).filter(|e| model::is_valid_email(e));
    let identity = Identity { provider: provider.id.clone(), subject: person.subject, email, created_at: now };
    let code = new_token();
    app.store.hold_link(token_hash(&code), owner, identity, now + FLOW_TTL).await?;
    Ok(Ok(code))
}

/// The account an external person signs in to: the one linked already; the one with the
/// same address, when both the provider and the account confirmed it; or a new one.
async fn account(
    app: &App,
    provider: &Provider,
    person: ExternalPerson,
    now: i64,
) -> Result<Result<User, Refusal>, ApiError> {
    if let Some(user) = app.store.user_by_identity(&provider.id, &person.subject).await? {
        return Ok(bound_elsewhere(app, &user.email, provider).map_or(Ok(user), Err));
    }
    let email = person.email.as_deref().map(model::normalize_email).filter(|e| model::is_valid_email(e));
    let Some(email) = email else {
        return Ok(Err(Refusal::new("access_denied", "the identity provider shared no email address")));
    };
    if !person.email_verified {
        return Ok(Err(Refusal::new(
            "access_denied",
            "the identity provider has not verified this email address: sign in another way, then link the provider from your account",
        )));
    }
    if let Some(refusal) = bound_elsewhere(app, &email, provider) {
        return Ok(Err(refusal));
    }
    let identity = Identity {
        provider: provider.id.clone(),
        subject: person.subject,
        email: Some(email.clone()),
        created_at: now,
    };
    if let Some(existing) = app.store.user_by_email(&email).await? {
        // Someone may have registered this address without owning it: joining that
        // account would hand the real owner's sign-ins to whoever knows its password.
        if !existing.email_verified {
            return Ok(Err(Refusal::new(
                "access_denied",
                "an account with this address exists and its address was never confirmed: confirm it, or reset its password, then sign in here",
            )));
        }
        app.store.link_identity(existing.id, identity).await?;
        tracing::info!(user = %existing.id, provider = %provider.id, "identity linked by verified email");
        return Ok(Ok(existing));
    }
    let new = NewUser {
        display_name: model::display_name_from(person.name.as_deref(), &email),
        email,
        password_hash: None,
        roles: Vec::new(),
        email_verified: true,
    };
    match app.store.create_user_with_identity(new, identity, now).await {
        Ok(user) => Ok(Ok(user)),
        Err(StoreError::EmailTaken) => Ok(Err(Refusal::new("temporarily_unavailable", "please try again"))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The `code` the callback put in the frontend page's address.
    #[schema(max_length = 128)]
    pub code: String,
    /// For an account with a second factor: its code (as at login).
    #[schema(max_length = 64)]
    pub second_factor_code: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/auth/oauth/exchange", operation_id = "exchangeSignInCode", tag = "auth",
    request_body = ExchangeRequest,
    responses((status = 200, body = TokenPair),
              (status = 401, description = "(type `second-factor-required`) the account needs `second_factor_code`; or that code is wrong", body = kit::problem::Problem),
              (status = 403, description = "the account is disabled", body = kit::problem::Problem),
              (status = 410, description = "the code is unknown, used or expired", body = kit::problem::Problem),
              (status = 429, body = kit::problem::Problem)))]
pub async fn exchange(
    State(app): State<App>,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<ExchangeRequest>,
) -> Result<TokenPair, ApiError> {
    let gone = || ApiError::Gone("this sign-in code is unknown, used or expired: sign in again".into());
    if req.code.len() > 128 {
        return Err(gone());
    }
    let now = now_unix();
    let hash = token_hash(&req.code);
    let owner = app.store.sign_in_code_owner(hash.clone(), now).await?.ok_or_else(gone)?;
    let user = app.store.user_by_id(owner).await?.ok_or_else(gone)?;
    let ip = client_ip(&app, &headers, peer);
    app.throttle.check(&user.email, ip, now as u64).map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    // The code stays until the second factor passes: a person who forgot it may retry.
    super::second_factor::check_at_login(&app, &user, req.second_factor_code.as_deref(), ip, now).await?;
    if !app.store.spend_sign_in_code(hash, now).await? {
        return Err(gone());
    }
    start_session(&app, &user, &headers, ip, now).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The frontend page to come back to (on the allow-list, as for sign-in).
    #[schema(max_length = 2048)]
    pub redirect_uri: String,
    #[schema(max_length = 512)]
    pub state: Option<String>,
    /// The account's password, asked again (an account without one signs in again).
    pub password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkStart {
    /// Send the browser here; it comes back to `redirect_uri` with a `link_code`, which
    /// the owner confirms at `POST /users/me/identities/{provider}/confirm`.
    pub authorization_url: String,
}

#[utoipa::path(post, path = "/api/v1/users/me/identities/{provider}", operation_id = "linkIdentity", tag = "profile",
    security(("bearer" = [])), request_body = LinkRequest,
    params(("provider" = String, Path, description = "a provider's id")),
    responses((status = 200, body = LinkStart), (status = 404, body = kit::problem::Problem),
              (status = 403, description = "an account without a password must have signed in within ten minutes", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem), (status = 503, body = kit::problem::Problem)))]
pub async fn link(
    State(app): State<App>,
    me: AuthUser,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<LinkRequest>,
) -> Result<Json<LinkStart>, ApiError> {
    let provider = provider(&app, &id)?;
    let user = current_user(&app, &me).await?;
    check_return(&app, &req.redirect_uri, req.state.as_deref())?;
    super::reauth::reauthenticate(&app, &user, &me, req.password, peer, &headers).await?;
    let authorization_url = begin(&app, provider, req.redirect_uri, req.state, Some(user.id)).await?;
    Ok(Json(LinkStart { authorization_url }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmLinkRequest {
    /// The `link_code` the provider's return put in the frontend page's address.
    #[schema(max_length = 128)]
    pub code: String,
}

#[utoipa::path(post, path = "/api/v1/users/me/identities/{provider}/confirm", operation_id = "confirmIdentityLink", tag = "profile",
    security(("bearer" = [])), request_body = ConfirmLinkRequest,
    params(("provider" = String, Path, description = "a provider's id")),
    responses((status = 200, description = "linked; the account's owner is told by mail", body = model::IdentityView),
              (status = 404, body = kit::problem::Problem),
              (status = 409, description = "that account at the provider is linked to another Veche account", body = kit::problem::Problem),
              (status = 410, description = "the code is unknown, used, expired, or not this account's", body = kit::problem::Problem)))]
pub async fn confirm_link(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<String>,
    Json(req): Json<ConfirmLinkRequest>,
) -> Result<Json<model::IdentityView>, ApiError> {
    let provider = provider(&app, &id)?;
    let user = current_user(&app, &me).await?;
    let gone = || ApiError::Gone("this link code is unknown, used, expired or for another account".into());
    if req.code.len() > 128 {
        return Err(gone());
    }
    let held = app.store.take_link(token_hash(&req.code), now_unix()).await?;
    let Some((owner, identity)) = held.filter(|(owner, i)| *owner == user.id && i.provider == provider.id) else {
        return Err(gone());
    };
    app.store.link_identity(owner, identity.clone()).await?;
    app.mailer.send_letter(
        &user.email,
        "identity_linked",
        user.language(),
        serde_json::json!({
            "name": user.profile.display_name, "provider": provider.name, "email": identity.email,
        }),
    );
    tracing::info!(user = %user.id, provider = %provider.id, "identity linked");
    Ok(Json(model::IdentityView {
        provider: identity.provider,
        email: identity.email,
        linked_at: kit::rfc3339(identity.created_at),
    }))
}

#[utoipa::path(delete, path = "/api/v1/users/me/identities/{provider}", operation_id = "unlinkIdentity", tag = "profile",
    security(("bearer" = [])), params(("provider" = String, Path, description = "a provider's id")),
    responses((status = 204), (status = 404, description = "not linked", body = kit::problem::Problem),
              (status = 409, description = "it is the account's last way in", body = kit::problem::Problem)))]
pub async fn unlink(State(app): State<App>, me: AuthUser, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let user = current_user(&app, &me).await?;
    if id.len() > 64 {
        return Err(ApiError::NotFound("no such identity is linked".into()));
    }
    match app.store.unlink_identity(user.id, &id).await? {
        Unlink::Done => Ok(StatusCode::NO_CONTENT),
        Unlink::NotLinked => Err(ApiError::NotFound("no such identity is linked".into())),
        Unlink::LastWayIn => Err(ApiError::Conflict(
            "this is the account's last way in: set a password (password reset) or link another provider first".into(),
        )),
    }
}
