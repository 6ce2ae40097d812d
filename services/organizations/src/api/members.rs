//! `/api/v1/organizations/{id}/members*`: who is in an organization, with which role,
//! and the membership lookup other services ask with a service token.

use super::actor;
use crate::App;
use crate::model::{self, Action, Member, MemberView, MembershipView, RoleChange};
use axum::extract::State;
use axum::http::StatusCode;
use kit::auth::{AuthUser, Caller};
use kit::extract::{Json, Path, Query};
use kit::page::PageParams;
use kit::page::{self, Page};
use kit::{ApiError, now_unix};
use uuid::Uuid;

/// 404 unless the organization exists; 403 unless the caller may do `action` in it.
pub(crate) async fn authorize_read(
    app: &App,
    organization: Uuid,
    me: &AuthUser,
    action: Action,
) -> Result<(), ApiError> {
    if app.store.get(organization).await?.is_none() {
        return Err(ApiError::NotFound("no such organization".into()));
    }
    let role = app.store.member(organization, me.id).await?.map(|m| m.role);
    if model::allows(role, me.is_admin(), action) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("your role in this organization does not allow this".into()))
    }
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/members", operation_id = "listOrganizationMembers", tag = "members", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageParams),
    responses((status = 200, description = "members in the order they joined", body = Page<MemberView>),
              (status = 403, description = "members only", body = kit::problem::Problem),
              (status = 404, body = kit::problem::Problem)))]
pub async fn list(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    Query(p): Query<PageParams>,
) -> Result<Json<Page<MemberView>>, ApiError> {
    let limit = page::limit(p.limit)?;
    let after = p.cursor.as_deref().map(page::decode_cursor::<(i64, Uuid)>).transpose()?;
    authorize_read(&app, id, &me, Action::ViewMembers).await?;
    let found = app.store.members(id, after, limit + 1).await?;
    let page = page::paginate(found, limit, |m: &Member| (m.joined_at, m.user_id));
    let items = views(&app, id, &me, &page.items, false).await?;
    Ok(Json(Page { items, next_cursor: page.next_cursor }))
}

/// `members` as `me` may see them: names for every member, addresses for managers.
/// After a write (`written`), a users service that cannot be reached leaves the names out
/// rather than fail what was done.
pub(crate) async fn views(
    app: &App,
    organization: Uuid,
    me: &AuthUser,
    members: &[Member],
    written: bool,
) -> Result<Vec<MemberView>, ApiError> {
    let ids: Vec<Uuid> = members.iter().map(|m| m.user_id).collect();
    let people =
        if written { app.people.look_up_after_write(&ids).await } else { app.people.look_up(&ids, None).await? };
    let role = app.store.member(organization, me.id).await?.map(|m| m.role);
    let show_email = model::allows(role, me.is_admin(), Action::ViewMemberEmails);
    Ok(members.iter().map(|m| MemberView::new(m, people.get(&m.user_id), show_email)).collect())
}

/// Who asks for a membership, and whether they may.
fn may_look_up(caller: &Caller, caller_role: Option<model::Role>, user_id: Uuid) -> bool {
    let claims = &caller.0;
    if claims.service().is_some() {
        // Other services (the events service checking an organizer) may always ask.
        return true;
    }
    match claims.user_id() {
        // Anyone may ask about themselves; members and platform admins about anyone.
        Some(me) => me == user_id || model::allows(caller_role, claims.is_admin(), Action::ViewMembers),
        None => false,
    }
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/members/{user_id}", operation_id = "getOrganizationMember", tag = "members", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, description = "the user's membership", body = MembershipView),
              (status = 403, description = "for services, platform admins and members", body = kit::problem::Problem),
              (status = 404, description = "no such organization, or the user is not a member", body = kit::problem::Problem)))]
pub async fn lookup(
    State(app): State<App>,
    caller: Caller,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<MembershipView>, ApiError> {
    if app.store.get(id).await?.is_none() {
        return Err(ApiError::NotFound("no such organization".into()));
    }
    let caller_role = match caller.0.user_id() {
        Some(me) => app.store.member(id, me).await?.map(|m| m.role),
        None => None,
    };
    if !may_look_up(&caller, caller_role, user_id) {
        return Err(ApiError::Forbidden("only services, platform admins and members may look up members".into()));
    }
    let member = app.store.member(id, user_id).await?.ok_or_else(|| ApiError::NotFound("not a member".into()))?;
    Ok(Json(MembershipView::from(&member)))
}

#[utoipa::path(patch, path = "/api/v1/organizations/{id}/members/{user_id}", operation_id = "changeMemberRole", tag = "members", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = RoleChange,
    responses((status = 200, body = MemberView),
              (status = 403, description = "admins manage members and admins; only owners touch owners", body = kit::problem::Problem),
              (status = 404, body = kit::problem::Problem),
              (status = 409, description = "the last owner cannot be demoted", body = kit::problem::Problem)))]
pub async fn change_role(
    State(app): State<App>,
    me: AuthUser,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
    Json(req): Json<RoleChange>,
) -> Result<Json<MemberView>, ApiError> {
    let member = app.store.change_role(id, actor(&me), user_id, req.role, now_unix()).await?;
    let mut view = views(&app, id, &me, std::slice::from_ref(&member), true).await?;
    Ok(Json(view.remove(0)))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}/members/{user_id}", operation_id = "removeOrganizationMember", tag = "members", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path, description = "a member, or yourself to leave")),
    responses((status = 204, description = "removed, or left"),
              (status = 403, body = kit::problem::Problem),
              (status = 404, body = kit::problem::Problem),
              (status = 409, description = "the last owner cannot leave or be removed", body = kit::problem::Problem)))]
pub async fn remove(
    State(app): State<App>,
    me: AuthUser,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    app.store.remove_member(id, actor(&me), user_id, now_unix()).await?;
    Ok(StatusCode::NO_CONTENT)
}
