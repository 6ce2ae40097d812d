//! `/api/v1/organizations/{id}/sources`: an organization's outside sources of events,
//! for its admins and owners, and `POST .../sync` to sync one now.

use crate::App;
use crate::import::sync::SyncError;
use crate::model::source::{Source, SourceInput, SourceView};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::{Json, Path};
use kit::page::Page;
use kit::patch::MergePatch;
use kit::{ApiError, now_unix};
use std::time::Duration;
use uuid::Uuid;

/// Sources an organization may have: each costs a fetch every few minutes.
const SOURCES_MAX: usize = 50;
/// How long `sync` waits for the sync before answering 202 (below the gateway's
/// 25-second upstream timeout); the sync goes on either way.
const SYNC_WAIT: Duration = Duration::from_secs(20);

/// Only the organization's admins and owners (and platform admins) see and manage its
/// sources (their URLs may carry the secret of a private calendar) and its webhooks.
pub(super) async fn may_manage(app: &App, organization: Uuid, me: &AuthUser) -> Result<(), ApiError> {
    if me.is_admin() {
        return Ok(());
    }
    match app.orgs.role_now(organization, me.id).await? {
        Some(role) if role.manages_events() => Ok(()),
        _ => Err(ApiError::Forbidden("only admins of the organization manage its sources".into())),
    }
}

/// The source, if it belongs to the organization (otherwise as if it did not exist).
async fn source_of(app: &App, organization: Uuid, id: Uuid) -> Result<Source, ApiError> {
    match app.sources.source(id).await? {
        Some(s) if s.organization_id == organization => Ok(s),
        _ => Err(ApiError::NotFound("no such source".into())),
    }
}

/// Validates an input and checks its URL as a fetch would (scheme, credentials, an
/// address literal), so an admin hears of a refused URL now rather than at the sync.
fn checked(app: &App, input: SourceInput) -> Result<SourceInput, ApiError> {
    let input = input.validate()?;
    app.importer.fetcher().check(&input.url).map_err(|e| ApiError::field("url", e.to_string()))?;
    Ok(input)
}

#[utoipa::path(post, path = "/api/v1/organizations/{id}/sources", operation_id = "createSource", tag = "sources",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization")), request_body = SourceInput,
    responses((status = 201, description = "the source; its first sync follows within seconds", body = SourceView,
                  links(("syncSource" = (operation_id = "syncSource", parameters(("id" = "$response.body#/organization_id"), ("source_id" = "$response.body#/id")))))),
              (status = 403, description = "organization admins and owners only", body = kit::problem::Problem),
              (status = 409, description = "the organization has the most sources it may have", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn create(
    State(app): State<App>,
    me: AuthUser,
    Path(organization): Path<Uuid>,
    Json(input): Json<SourceInput>,
) -> Result<Response, ApiError> {
    may_manage(&app, organization, &me).await?;
    let input = checked(&app, input)?;
    let source = app.sources.create_source(organization, input, me.id, SOURCES_MAX, now_unix()).await?;
    app.importer.wake();
    Ok((StatusCode::CREATED, Json(SourceView::from(&source))).into_response())
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/sources", operation_id = "listSources", tag = "sources",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization")),
    responses((status = 200, body = Page<SourceView>), (status = 403, body = kit::problem::Problem)))]
pub async fn list(
    State(app): State<App>,
    me: AuthUser,
    Path(organization): Path<Uuid>,
) -> Result<Json<Page<SourceView>>, ApiError> {
    may_manage(&app, organization, &me).await?;
    let sources = app.sources.sources(organization).await?;
    Ok(Json(Page { items: sources.iter().map(SourceView::from).collect(), next_cursor: None }))
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/sources/{source_id}", operation_id = "getSource", tag = "sources",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization"), ("source_id" = Uuid, Path)),
    responses((status = 200, body = SourceView), (status = 403, body = kit::problem::Problem), (status = 404, body = kit::problem::Problem)))]
pub async fn get(
    State(app): State<App>,
    me: AuthUser,
    Path((organization, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<SourceView>, ApiError> {
    may_manage(&app, organization, &me).await?;
    Ok(Json(SourceView::from(&source_of(&app, organization, id).await?)))
}

#[utoipa::path(patch, path = "/api/v1/organizations/{id}/sources/{source_id}", operation_id = "updateSource", tag = "sources",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization"), ("source_id" = Uuid, Path)),
    request_body(content = serde_json::Value, description = "a JSON Merge Patch (RFC 7396) of the source's fields"),
    responses((status = 200, body = SourceView), (status = 403, body = kit::problem::Problem), (status = 404, body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn patch(
    State(app): State<App>,
    me: AuthUser,
    Path((organization, id)): Path<(Uuid, Uuid)>,
    patch: MergePatch,
) -> Result<Json<SourceView>, ApiError> {
    may_manage(&app, organization, &me).await?;
    let source = source_of(&app, organization, id).await?;
    let input: SourceInput = patch.applied(&source.input)?;
    if input.kind != source.input.kind {
        return Err(ApiError::field("kind", "a source cannot change its kind: create another"));
    }
    let input = checked(&app, input)?;
    let updated = app.sources.update_source(id, input, now_unix()).await?;
    app.importer.wake();
    Ok(Json(SourceView::from(&updated)))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}/sources/{source_id}", operation_id = "deleteSource", tag = "sources",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization"), ("source_id" = Uuid, Path)),
    responses((status = 204, description = "deleted; the events it imported stay, as the organization's own"),
              (status = 403, body = kit::problem::Problem), (status = 404, body = kit::problem::Problem)))]
pub async fn delete(
    State(app): State<App>,
    me: AuthUser,
    Path((organization, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    may_manage(&app, organization, &me).await?;
    source_of(&app, organization, id).await?;
    app.sources.delete_source(id, now_unix()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/organizations/{id}/sources/{source_id}/sync", operation_id = "syncSource", tag = "sources",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization"), ("source_id" = Uuid, Path)),
    responses((status = 200, description = "synced (or failed: see `state` and `status.last_error`)", body = SourceView),
              (status = 202, description = "the sync takes long: it goes on, and the source's status will say how it went", body = SourceView),
              (status = 403, body = kit::problem::Problem), (status = 404, body = kit::problem::Problem),
              (status = 409, description = "another sync of this source is still under way", body = kit::problem::Problem)))]
pub async fn sync(
    State(app): State<App>,
    me: AuthUser,
    Path((organization, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    may_manage(&app, organization, &me).await?;
    source_of(&app, organization, id).await?;
    // Its own task: a caller that hangs up does not cut a sync short.
    let importer = app.importer.clone();
    let mut task = tokio::spawn(async move { importer.sync(id, Duration::from_secs(15)).await });
    match tokio::time::timeout(SYNC_WAIT, &mut task).await {
        Ok(joined) => match joined.map_err(ApiError::internal)? {
            Ok(source) => Ok(Json(SourceView::from(&source)).into_response()),
            Err(SyncError::Busy) => Err(ApiError::Conflict("a sync of this source is under way".into())),
            Err(SyncError::Store(e)) => Err(e.into()),
        },
        Err(_) => {
            let source = source_of(&app, organization, id).await?;
            Ok((StatusCode::ACCEPTED, Json(SourceView::from(&source))).into_response())
        }
    }
}
