//! `/api/v1/organizations/{id}/webhooks`: an organization's webhooks, for its admins and
//! owners, with the log of each one's deliveries.

use super::sources::may_manage;
use crate::App;
use crate::model::webhook::{Delivery, Webhook, WebhookInput, WebhookView};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::{Json, Path, Query};
use kit::page::{self, Page, PageParams};
use kit::patch::MergePatch;
use kit::{ApiError, now_unix};
use uuid::Uuid;

/// Webhooks an organization may have.
const WEBHOOKS_MAX: usize = 20;

/// The webhook, if it belongs to the organization (otherwise as if it did not exist).
async fn webhook_of(app: &App, organization: Uuid, id: Uuid) -> Result<Webhook, ApiError> {
    match app.webhooks.webhook(id).await? {
        Some(w) if w.organization_id == organization => Ok(w),
        _ => Err(ApiError::NotFound("no such webhook".into())),
    }
}

/// Validates an input and checks its URL as a delivery would (https, no credentials, no
/// inner address literal), so an admin hears of a refused URL now.
fn checked(app: &App, input: WebhookInput) -> Result<WebhookInput, ApiError> {
    let input = input.validate()?;
    app.importer.fetcher().check_post(&input.url).map_err(|e| ApiError::field("url", e.to_string()))?;
    Ok(input)
}

#[utoipa::path(post, path = "/api/v1/organizations/{id}/webhooks", operation_id = "createWebhook", tag = "webhooks",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization")), request_body = WebhookInput,
    responses((status = 201, description = "the webhook with its signing `secret`, shown this once", body = WebhookView),
              (status = 403, description = "organization admins and owners only", body = kit::problem::Problem),
              (status = 409, description = "the organization has the most webhooks it may have", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn create(
    State(app): State<App>,
    me: AuthUser,
    Path(organization): Path<Uuid>,
    Json(input): Json<WebhookInput>,
) -> Result<Response, ApiError> {
    may_manage(&app, organization, &me).await?;
    let input = checked(&app, input)?;
    let secret = crate::webhooks::new_secret();
    let webhook = app.webhooks.create_webhook(organization, input, secret, WEBHOOKS_MAX, now_unix()).await?;
    Ok((StatusCode::CREATED, Json(WebhookView::new(&webhook, true))).into_response())
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/webhooks", operation_id = "listWebhooks", tag = "webhooks",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization")),
    responses((status = 200, body = Page<WebhookView>), (status = 403, body = kit::problem::Problem)))]
pub async fn list(
    State(app): State<App>,
    me: AuthUser,
    Path(organization): Path<Uuid>,
) -> Result<Json<Page<WebhookView>>, ApiError> {
    may_manage(&app, organization, &me).await?;
    let webhooks = app.webhooks.webhooks(organization).await?;
    Ok(Json(Page { items: webhooks.iter().map(|w| WebhookView::new(w, false)).collect(), next_cursor: None }))
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/webhooks/{webhook_id}", operation_id = "getWebhook", tag = "webhooks",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization"), ("webhook_id" = Uuid, Path)),
    responses((status = 200, body = WebhookView), (status = 403, body = kit::problem::Problem), (status = 404, body = kit::problem::Problem)))]
pub async fn get(
    State(app): State<App>,
    me: AuthUser,
    Path((organization, id)): Path<(Uuid, Uuid)>,
) -> Result<Json<WebhookView>, ApiError> {
    may_manage(&app, organization, &me).await?;
    Ok(Json(WebhookView::new(&webhook_of(&app, organization, id).await?, false)))
}

#[utoipa::path(patch, path = "/api/v1/organizations/{id}/webhooks/{webhook_id}", operation_id = "updateWebhook", tag = "webhooks",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization"), ("webhook_id" = Uuid, Path)),
    request_body(content = serde_json::Value, description = "a JSON Merge Patch (RFC 7396) of the webhook's fields"),
    responses((status = 200, body = WebhookView), (status = 403, body = kit::problem::Problem), (status = 404, body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn patch(
    State(app): State<App>,
    me: AuthUser,
    Path((organization, id)): Path<(Uuid, Uuid)>,
    patch: MergePatch,
) -> Result<Json<WebhookView>, ApiError> {
    may_manage(&app, organization, &me).await?;
    let webhook = webhook_of(&app, organization, id).await?;
    let input: WebhookInput = patch.applied(&webhook.input)?;
    let input = checked(&app, input)?;
    let updated = app.webhooks.update_webhook(id, input, now_unix()).await?;
    Ok(Json(WebhookView::new(&updated, false)))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}/webhooks/{webhook_id}", operation_id = "deleteWebhook", tag = "webhooks",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "the organization"), ("webhook_id" = Uuid, Path)),
    responses((status = 204, description = "deleted, with its log; nothing more is delivered"),
              (status = 403, body = kit::problem::Problem), (status = 404, body = kit::problem::Problem)))]
pub async fn delete(
    State(app): State<App>,
    me: AuthUser,
    Path((organization, id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    may_manage(&app, organization, &me).await?;
    webhook_of(&app, organization, id).await?;
    app.webhooks.delete_webhook(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/webhooks/{webhook_id}/deliveries", operation_id = "listWebhookDeliveries", tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the organization"), ("webhook_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "the deliveries, newest first: what was posted, how each attempt went, when the next is due", body = Page<Delivery>),
              (status = 403, body = kit::problem::Problem), (status = 404, body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn deliveries(
    State(app): State<App>,
    me: AuthUser,
    Path((organization, id)): Path<(Uuid, Uuid)>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<Delivery>>, ApiError> {
    may_manage(&app, organization, &me).await?;
    webhook_of(&app, organization, id).await?;
    let limit = page::limit(params.limit)?;
    let before = params.cursor.as_deref().map(page::decode_cursor::<i64>).transpose()?.unwrap_or(0);
    let rows = app.webhooks.deliveries(id, before, limit + 1).await?;
    let page = page::paginate(rows, limit, |(position, _)| *position);
    Ok(Json(Page { items: page.items.into_iter().map(|(_, d)| d).collect(), next_cursor: page.next_cursor }))
}
