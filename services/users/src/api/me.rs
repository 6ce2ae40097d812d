//! `/api/v1/users/me*`: the signed-in person's own account.

use crate::App;
use crate::model::{IdentityView, Preferences, ProfilePatch, SessionView, UserView};
use axum::extract::State;
use axum::http::StatusCode;
use kit::auth::AuthUser;
use kit::extract::{Json, Path};
use kit::{ApiError, now_unix};
use uuid::Uuid;

/// Loads the caller's account; a deleted or disabled account is no longer signed in.
pub(crate) async fn current_user(app: &App, me: &AuthUser) -> Result<crate::model::User, ApiError> {
    match app.store.user_by_id(me.id).await? {
        Some(u) if !u.disabled => Ok(u),
        _ => Err(ApiError::Unauthorized("the account no longer exists or is disabled".into())),
    }
}

#[utoipa::path(get, path = "/api/v1/users/me", operation_id = "getMe", tag = "profile", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = kit::problem::Problem)))]
pub async fn get_me(State(app): State<App>, me: AuthUser) -> Result<Json<UserView>, ApiError> {
    let user = current_user(&app, &me).await?;
    let identities = app.store.identities(user.id).await?;
    let mut view = UserView::from(&user);
    view.identities = Some(
        identities
            .into_iter()
            .map(|i| IdentityView { provider: i.provider, email: i.email, linked_at: kit::rfc3339(i.created_at) })
            .collect(),
    );
    Ok(Json(view))
}

#[utoipa::path(patch, path = "/api/v1/users/me", operation_id = "updateMe", tag = "profile", security(("bearer" = [])), request_body = ProfilePatch,
    responses((status = 200, body = UserView), (status = 422, body = kit::problem::Problem)))]
pub async fn patch_me(
    State(app): State<App>,
    me: AuthUser,
    Json(patch): Json<ProfilePatch>,
) -> Result<Json<UserView>, ApiError> {
    let user = current_user(&app, &me).await?;
    let profile = patch.apply(&user.profile)?;
    let user = app.store.update_profile(user.id, profile, now_unix()).await?;
    Ok(Json(UserView::from(&user)))
}

#[utoipa::path(get, path = "/api/v1/users/me/preferences", operation_id = "getMyPreferences", tag = "profile", security(("bearer" = [])),
    responses((status = 200, body = Preferences)))]
pub async fn get_preferences(State(app): State<App>, me: AuthUser) -> Result<Json<Preferences>, ApiError> {
    Ok(Json(current_user(&app, &me).await?.preferences))
}

#[utoipa::path(put, path = "/api/v1/users/me/preferences", operation_id = "replaceMyPreferences", tag = "profile", security(("bearer" = [])), request_body = Preferences,
    responses((status = 200, body = Preferences), (status = 422, body = kit::problem::Problem)))]
pub async fn put_preferences(
    State(app): State<App>,
    me: AuthUser,
    Json(preferences): Json<Preferences>,
) -> Result<Json<Preferences>, ApiError> {
    let preferences = preferences.validate()?;
    let user = current_user(&app, &me).await?;
    Ok(Json(app.store.set_preferences(user.id, preferences, now_unix()).await?.preferences))
}

#[utoipa::path(get, path = "/api/v1/users/me/sessions", operation_id = "listMySessions", tag = "profile", security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionView>)))]
pub async fn sessions(State(app): State<App>, me: AuthUser) -> Result<Json<Vec<SessionView>>, ApiError> {
    let current = me.claims.sid.as_deref().and_then(|s| Uuid::parse_str(s).ok());
    let sessions = app.store.sessions(me.id, now_unix()).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionView {
                id: s.id,
                created_at: kit::rfc3339(s.created_at),
                last_used_at: kit::rfc3339(s.last_used_at),
                expires_at: kit::rfc3339(s.expires_at),
                user_agent: s.user_agent,
                ip: s.ip,
                current: Some(s.id) == current,
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/users/me/sessions/{id}", operation_id = "endMySession", tag = "profile", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, body = kit::problem::Problem)))]
pub async fn end_session(State(app): State<App>, me: AuthUser, Path(id): Path<Uuid>) -> Result<StatusCode, ApiError> {
    if app.store.end_session(me.id, id, now_unix()).await? {
        app.read_endings().await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such session".into()))
    }
}

#[utoipa::path(delete, path = "/api/v1/users/me", operation_id = "deleteMe", tag = "profile", security(("bearer" = [])),
    responses((status = 204, description = "the account and all its sessions are gone"),
              (status = 409, description = "the last administrator cannot leave", body = kit::problem::Problem),
              (status = 503, description = "the account's organizations could not be handed on yet; nothing was deleted", body = kit::problem::Problem)))]
pub async fn delete_me(State(app): State<App>, me: AuthUser) -> Result<StatusCode, ApiError> {
    let user = current_user(&app, &me).await?;
    super::admin::ensure_not_last_admin(&app, &user).await?;
    super::admin::delete_account(&app, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
