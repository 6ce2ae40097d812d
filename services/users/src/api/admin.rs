//! `/api/v1/users` and `/api/v1/users/{id}`: account administration for platform admins.

use crate::App;
use crate::model::{KNOWN_ROLES, ROLE_ADMIN, User, UserView};
use crate::store::{AdminChange, UserQuery};
use axum::extract::State;
use axum::http::StatusCode;
use kit::auth::Admin;
use kit::extract::{Json, Path, Query};
use kit::page::{self, Page};
use kit::{ApiError, Violations, now_unix};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Part of an email or display name.
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminPatch {
    pub disabled: Option<bool>,
    pub roles: Option<Vec<String>>,
    pub email_verified: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/users", operation_id = "listUsers", tag = "admin", security(("bearer" = [])), params(ListParams),
    responses((status = 200, body = Page<UserView>), (status = 403, description = "platform administrators only", body = kit::problem::Problem)))]
pub async fn list(
    State(app): State<App>,
    _: Admin,
    Query(p): Query<ListParams>,
) -> Result<Json<Page<UserView>>, ApiError> {
    let limit = page::limit(p.limit)?;
    let after = p.cursor.as_deref().map(page::decode_cursor::<(i64, Uuid)>).transpose()?;
    let q = p.q.map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
    if q.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::field("q", "must be at most 100 characters"));
    }
    // One extra row tells whether there is a next page.
    let users = app.store.search_users(UserQuery { q, after, limit: limit + 1 }).await?;
    let page = page::paginate(users, limit, |u| (u.created_at, u.id));
    Ok(Json(Page { items: page.items.iter().map(UserView::from).collect(), next_cursor: page.next_cursor }))
}

async fn find(app: &App, id: Uuid) -> Result<User, ApiError> {
    app.store.user_by_id(id).await?.ok_or_else(|| ApiError::NotFound("no such user".into()))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", operation_id = "getUser", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 403, description = "platform administrators only", body = kit::problem::Problem), (status = 404, body = kit::problem::Problem)))]
pub async fn get(State(app): State<App>, _: Admin, Path(id): Path<Uuid>) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(&find(&app, id).await?)))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", operation_id = "updateUser", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = AdminPatch,
    responses((status = 200, body = UserView), (status = 403, description = "platform administrators only", body = kit::problem::Problem), (status = 409, description = "an admin cannot lock themselves out", body = kit::problem::Problem)))]
pub async fn patch(
    State(app): State<App>,
    Admin(me): Admin,
    Path(id): Path<Uuid>,
    Json(change): Json<AdminPatch>,
) -> Result<Json<UserView>, ApiError> {
    let mut v = Violations::new();
    let roles = change.roles.map(|roles| {
        let mut out: Vec<String> = Vec::new();
        for (i, role) in roles.into_iter().enumerate() {
            if !KNOWN_ROLES.contains(&role.as_str()) {
                v.add(format!("roles[{i}]"), format!("unknown role; known roles: {}", KNOWN_ROLES.join(", ")));
            } else if !out.contains(&role) {
                out.push(role);
            }
        }
        out
    });
    v.into_result()?;
    let target = find(&app, id).await?;
    let demotes = roles.as_ref().is_some_and(|r| !r.iter().any(|x| x == ROLE_ADMIN));
    if target.id == me.id && (change.disabled == Some(true) || demotes) {
        return Err(ApiError::Conflict("you cannot disable yourself or remove your own admin role".into()));
    }
    let change = AdminChange { disabled: change.disabled, roles, email_verified: change.email_verified };
    let user = app.store.admin_update(id, change, now_unix()).await?;
    app.read_endings().await;
    Ok(Json(UserView::from(&user)))
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", operation_id = "deleteUser", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, description = "platform administrators only", body = kit::problem::Problem), (status = 404, body = kit::problem::Problem), (status = 409, description = "administrators cannot delete themselves here", body = kit::problem::Problem),
              (status = 503, description = "the account's organizations could not be handed on yet; nothing was deleted", body = kit::problem::Problem)))]
pub async fn delete(State(app): State<App>, Admin(me): Admin, Path(id): Path<Uuid>) -> Result<StatusCode, ApiError> {
    if id == me.id {
        return Err(ApiError::Conflict("delete your own account with DELETE /api/v1/users/me".into()));
    }
    let target = find(&app, id).await?;
    ensure_not_last_admin(&app, &target).await?;
    delete_account(&app, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an account: first out of every organization, so that none keeps a deleted
/// owner (nothing is deleted while the organizations service cannot be told), then the
/// account with its sessions, whose tokens stop at once; then out of organizations once
/// more, for whatever its tokens did in between.
pub(crate) async fn delete_account(app: &App, id: Uuid) -> Result<(), ApiError> {
    if let Some(organizations) = &app.organizations {
        organizations.forget(id).await?;
    }
    app.store.delete_user(id, now_unix()).await?;
    app.read_endings().await;
    if let Some(organizations) = &app.organizations
        && let Err(e) = organizations.forget(id).await
    {
        tracing::error!(user = %id, error = %e, "a deleted account may still be in an organization it joined while being deleted");
    }
    Ok(())
}

/// The platform must keep one administrator.
pub(crate) async fn ensure_not_last_admin(app: &App, user: &User) -> Result<(), ApiError> {
    if !user.roles.iter().any(|r| r == ROLE_ADMIN) {
        return Ok(());
    }
    if app.store.has_admin_other_than(user.id).await? {
        Ok(())
    } else {
        Err(ApiError::Conflict("the last administrator cannot be removed".into()))
    }
}
