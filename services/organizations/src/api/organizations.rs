//! `/api/v1/organizations` and `/api/v1/organizations/{id}`: public profiles, creation,
//! editing, deletion and transfer of ownership; and `/api/v1/users/me/organizations`.

use super::actor;
use crate::App;
use crate::model::{
    self, CreateOrganization, MyOrganization, Organization, OrganizationView, PatchOrganization, Transfer,
};
use crate::store::OrganizationQuery;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::{Json, Path, Query};
use kit::page::PageParams;
use kit::page::{self, Page};
use kit::{ApiError, now_unix};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Part of a name or slug, case-insensitive.
    pub q: Option<String>,
    /// 1 to 200; 50 when left out.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such organization".into())
}

#[utoipa::path(post, path = "/api/v1/organizations", operation_id = "createOrganization", tag = "organizations", security(("bearer" = [])),
    request_body = CreateOrganization,
    responses((status = 201, description = "created; the caller is its owner", body = OrganizationView, links(
                  ("getOrganization" = (operation_id = "getOrganization", parameters(("id" = "$response.body#/id")))),
                  ("createInvitation" = (operation_id = "createInvitation", parameters(("id" = "$response.body#/id")))))),
              (status = 401, body = kit::problem::Problem),
              (status = 409, description = "the slug is taken", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn create(
    State(app): State<App>,
    me: AuthUser,
    Json(req): Json<CreateOrganization>,
) -> Result<Response, ApiError> {
    let new = req.validate()?;
    let org = app.store.create(new, me.id, now_unix()).await?;
    Ok((StatusCode::CREATED, Json(OrganizationView::from(&org))).into_response())
}

#[utoipa::path(get, path = "/api/v1/organizations", operation_id = "listOrganizations", tag = "organizations", params(ListParams),
    responses((status = 200, description = "organizations by name", body = Page<OrganizationView>),
              (status = 422, body = kit::problem::Problem)))]
pub async fn list(
    State(app): State<App>,
    Query(p): Query<ListParams>,
) -> Result<Json<Page<OrganizationView>>, ApiError> {
    let limit = page::limit(p.limit)?;
    let after = p.cursor.as_deref().map(page::decode_cursor::<(String, Uuid)>).transpose()?;
    let q = p.q.map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
    if q.as_ref().is_some_and(|q| q.chars().count() > model::QUERY_MAX) {
        return Err(ApiError::field("q", format!("must be at most {} characters", model::QUERY_MAX)));
    }
    // One extra row tells whether there is a next page.
    let found = app.store.search(OrganizationQuery { q, after, limit: limit + 1 }).await?;
    let page = page::paginate(found, limit, |o: &Organization| (o.name.to_lowercase(), o.id));
    Ok(Json(Page { items: page.items.iter().map(OrganizationView::from).collect(), next_cursor: page.next_cursor }))
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}", operation_id = "getOrganization", tag = "organizations",
    params(("id" = String, Path, description = "the organization's id, or its slug",
            pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[a-z0-9][a-z0-9-]{1,62}[a-z0-9])$")),
    responses((status = 200, description = "the public profile", body = OrganizationView),
              (status = 404, body = kit::problem::Problem)))]
pub async fn get(State(app): State<App>, Path(id): Path<String>) -> Result<Json<OrganizationView>, ApiError> {
    let found = match Uuid::parse_str(&id) {
        Ok(id) => app.store.get(id).await?,
        Err(_) if model::is_valid_slug(&id) => app.store.get_by_slug(&id).await?,
        Err(_) => None,
    };
    found.map(|o| Json(OrganizationView::from(&o))).ok_or_else(not_found)
}

#[utoipa::path(patch, path = "/api/v1/organizations/{id}", operation_id = "updateOrganization", tag = "organizations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PatchOrganization,
    responses((status = 200, body = OrganizationView),
              (status = 403, description = "admins and owners only", body = kit::problem::Problem),
              (status = 404, body = kit::problem::Problem),
              (status = 409, description = "the slug is taken", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn patch(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    Json(req): Json<PatchOrganization>,
) -> Result<Json<OrganizationView>, ApiError> {
    let change = req.validate()?;
    let org = app.store.update(id, actor(&me), change, now_unix()).await?;
    Ok(Json(OrganizationView::from(&org)))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}", operation_id = "deleteOrganization", tag = "organizations", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "deleted, with its members and invitations"),
              (status = 403, description = "owners only", body = kit::problem::Problem),
              (status = 404, body = kit::problem::Problem)))]
pub async fn delete(State(app): State<App>, me: AuthUser, Path(id): Path<Uuid>) -> Result<StatusCode, ApiError> {
    app.store.delete(id, actor(&me), now_unix()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/organizations/{id}/transfer", operation_id = "transferOrganization", tag = "members", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = Transfer,
    responses((status = 204, description = "the member is an owner now, and the caller an admin"),
              (status = 403, description = "owners only", body = kit::problem::Problem),
              (status = 404, body = kit::problem::Problem),
              (status = 422, description = "the user is not a member", body = kit::problem::Problem)))]
pub async fn transfer(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    Json(req): Json<Transfer>,
) -> Result<StatusCode, ApiError> {
    app.store.transfer(id, actor(&me), req.user_id, now_unix()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/users/me/organizations", operation_id = "listMyOrganizations", tag = "members", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, description = "the caller's organizations by name, with the caller's role", body = Page<MyOrganization>),
              (status = 401, body = kit::problem::Problem)))]
pub async fn mine(
    State(app): State<App>,
    me: AuthUser,
    Query(p): Query<PageParams>,
) -> Result<Json<Page<MyOrganization>>, ApiError> {
    let limit = page::limit(p.limit)?;
    let after = p.cursor.as_deref().map(page::decode_cursor::<(String, Uuid)>).transpose()?;
    let found = app.store.organizations_of(me.id, after, limit + 1).await?;
    Ok(Json(page::paginate(found, limit, |o: &MyOrganization| (o.name.to_lowercase(), o.id))))
}
