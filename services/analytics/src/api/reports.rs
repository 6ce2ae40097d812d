//! `/api/v1/analytics/{events/{id},organizations/{id},platform}`: reports as JSON or CSV.
//!
//! Access ([`crate::model::may_read`]): platform administrators read every report;
//! admins and owners of an organization read its report and its events' reports (the
//! organizations service says who they are; an event's organization is learned from its
//! facts); nobody else reads any.

use crate::App;
use crate::model::may_read;
use crate::model::{Report, ReportFormat, ReportParams, Scope, assemble, to_csv};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use kit::auth::{Admin, AuthUser};
use kit::extract::{Json, Path, Query};
use kit::{ApiError, now_unix};
use uuid::Uuid;

/// How many top events or organizations a report lists.
const TOP: i64 = 5;

#[utoipa::path(get, path = "/api/v1/analytics/events/{id}", operation_id = "getEventReport", tag = "analytics", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the event's id"), ReportParams),
    responses((status = 200, description = "views, unique_visitors, registrations, cancellations, check_ins, link_clicks",
                content((Report = "application/json"), (String = "text/csv"))),
              (status = 401, body = kit::problem::Problem),
              (status = 403, description = "platform administrators, and admins and owners of the organization, only", body = kit::problem::Problem),
              (status = 422, description = "bad from, to, bucket or format", body = kit::problem::Problem)))]
pub async fn event(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    Query(p): Query<ReportParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let organization = app.store.organization_of(id).await?;
    authorize(&app, &me, organization).await?;
    report(&app, Scope::Event(id), &p, &headers).await
}

#[utoipa::path(get, path = "/api/v1/analytics/organizations/{id}", operation_id = "getOrganizationReport", tag = "analytics", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the organization's id"), ReportParams),
    responses((status = 200, description = "the event metrics over the organization's events, and members_joined",
                content((Report = "application/json"), (String = "text/csv"))),
              (status = 401, body = kit::problem::Problem),
              (status = 403, description = "platform administrators, and admins and owners of the organization, only", body = kit::problem::Problem),
              (status = 422, description = "bad from, to, bucket or format", body = kit::problem::Problem)))]
pub async fn organization(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    Query(p): Query<ReportParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&app, &me, Some(id)).await?;
    report(&app, Scope::Organization(id), &p, &headers).await
}

#[utoipa::path(get, path = "/api/v1/analytics/platform", operation_id = "getPlatformReport", tag = "analytics", security(("bearer" = [])),
    params(ReportParams),
    responses((status = 200, description = "sign_ups, events_published, registrations, organizations_created, searches",
                content((Report = "application/json"), (String = "text/csv"))),
              (status = 401, body = kit::problem::Problem),
              (status = 403, description = "platform administrators only", body = kit::problem::Problem),
              (status = 422, description = "bad from, to, bucket or format", body = kit::problem::Problem)))]
pub async fn platform(
    State(app): State<App>,
    _: Admin,
    Query(p): Query<ReportParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    report(&app, Scope::Platform, &p, &headers).await
}

/// Platform admins pass at once; anyone else needs to manage `organization` (asked of the
/// organizations service only then).
async fn authorize(app: &App, me: &AuthUser, organization: Option<Uuid>) -> Result<(), ApiError> {
    let role = match organization {
        Some(org) if !me.is_admin() => app.orgs.role(org, me.id).await?,
        _ => None,
    };
    if may_read(organization, role, me.is_admin()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins of the organization read its reports".into()))
    }
}

async fn report(app: &App, scope: Scope, p: &ReportParams, headers: &HeaderMap) -> Result<Response, ApiError> {
    let window = p.validate(now_unix())?;
    let counts = app.store.counts(scope, window).await?;
    let mut report = assemble(window, scope.metrics(), &counts);
    match scope {
        Scope::Organization(id) => report.top_events = Some(app.store.top(Some(id), window, TOP).await?),
        Scope::Platform => {
            report.top_organizations = Some(app.store.top(None, window, TOP).await?);
            report.active_users = Some(app.store.active_users(window).await?);
        }
        Scope::Event(_) => {}
    }
    if !kit::csv::wanted(p.format.map(|f| f == ReportFormat::Csv), headers) {
        return Ok(Json(report).into_response());
    }
    let name = scope.key().replace(':', "-");
    Ok(kit::csv::download(to_csv(&report, scope.metrics()), &format!("analytics-{name}.csv")))
}
