//! Registrations (seats and the waitlist), check-in, and calendars.

use super::{Access, access, calendar_response};
use crate::App;
use crate::model::{EventView, Registration, Status};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::{Json, Path, Query};
use kit::{ApiError, now_unix};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[utoipa::path(post, path = "/api/v1/events/{id}/registrations", operation_id = "registerForEvent", tag = "registrations", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 201, description = "registered or waitlisted", body = Registration),
              (status = 200, description = "already registered or waitlisted", body = Registration),
              (status = 409, description = "not open for registration", body = kit::problem::Problem)))]
pub async fn register(State(app): State<App>, me: AuthUser, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    access(&app, id, Some(&me), Access::Read).await?;
    let outcome = app.store.register(id, me.id, now_unix()).await?;
    let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(outcome.registration)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/events/{id}/registrations/me", operation_id = "cancelMyRegistration", tag = "registrations", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "cancelled; a freed seat went to the waitlist", body = Registration),
              (status = 404, body = kit::problem::Problem)))]
pub async fn cancel(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Registration>, ApiError> {
    access(&app, id, Some(&me), Access::Read).await?;
    Ok(Json(app.store.cancel_registration(id, me.id, now_unix()).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `csv` for a spreadsheet (or send `Accept: text/csv`).
    #[param(inline)]
    pub format: Option<ExportFormat>,
}

/// How a list is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Json,
    Csv,
}

#[utoipa::path(get, path = "/api/v1/events/{id}/registrations", operation_id = "listEventRegistrations", tag = "registrations", security(("bearer" = [])),
    params(("id" = Uuid, Path), ListParams),
    responses((status = 200, description = "the event's registrations, as JSON or (on request) CSV",
                content((Vec<Registration> = "application/json"), (String = "text/csv"))),
              (status = 403, description = "organization admins and owners only", body = kit::problem::Problem)))]
pub async fn list(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let csv = kit::csv::wanted(params.format.map(|f| f == ExportFormat::Csv), &headers);
    let (event, _) = access(&app, id, Some(&me), Access::Manage).await?;
    let registrations = app.store.registrations(id).await?;
    if !csv {
        return Ok(Json(registrations).into_response());
    }
    let header = ["user_id", "status", "waitlist_position", "registered_at", "checked_in_at"];
    let rows = registrations.iter().map(|r| {
        [
            r.user_id.to_string(),
            r.status.as_str().to_owned(),
            r.waitlist_position.map(|p| p.to_string()).unwrap_or_default(),
            r.created_at.clone(),
            r.checked_in_at.clone().unwrap_or_default(),
        ]
    });
    Ok(kit::csv::download(kit::csv::table(&header, rows), &format!("registrations-{}.csv", event.id)))
}

#[utoipa::path(post, path = "/api/v1/events/{id}/registrations/{user_id}/check-in", operation_id = "checkInAttendee", tag = "registrations",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = Registration), (status = 403, description = "organization admins and owners only", body = kit::problem::Problem), (status = 409, description = "not registered (waitlisted or cancelled)", body = kit::problem::Problem)))]
pub async fn check_in(
    State(app): State<App>,
    me: AuthUser,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Registration>, ApiError> {
    access(&app, id, Some(&me), Access::Manage).await?;
    Ok(Json(app.store.check_in(id, user_id, now_unix()).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MyRegistrationView {
    pub registration: Registration,
    pub event: EventView,
}

#[utoipa::path(get, path = "/api/v1/users/me/registrations", operation_id = "listMyRegistrations", tag = "registrations", security(("bearer" = [])),
    responses((status = 200, body = Vec<MyRegistrationView>)))]
pub async fn mine(State(app): State<App>, me: AuthUser) -> Result<Json<Vec<MyRegistrationView>>, ApiError> {
    let mine = app.store.my_registrations(me.id).await?;
    Ok(Json(
        mine.iter()
            .map(|m| MyRegistrationView { registration: m.registration.clone(), event: EventView::from(&m.event) })
            .collect(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarLink {
    /// A secret URL of the caller's calendar (subscribe to it in a calendar program).
    pub url: String,
}

#[utoipa::path(post, path = "/api/v1/users/me/calendar", operation_id = "createMyCalendarFeed", tag = "registrations", security(("bearer" = [])),
    responses((status = 201, description = "a new secret feed URL; the previous one stops working", body = CalendarLink)))]
pub async fn new_calendar(State(app): State<App>, me: AuthUser) -> Result<Response, ApiError> {
    let token = kit::secret::new_token();
    app.store.set_calendar_token(me.id, kit::secret::token_hash(&token)).await?;
    let url = format!("{}/api/v1/calendar/{token}.ics", app.public_url);
    Ok((StatusCode::CREATED, Json(CalendarLink { url })).into_response())
}

#[utoipa::path(get, path = "/api/v1/calendar/{token}.ics", operation_id = "getCalendarFeed", tag = "registrations",
    params(("token" = String, Path, description = "the secret of the feed's URL", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    responses((status = 200, description = "the caller's registrations as iCalendar (RFC 5545)", content_type = "text/calendar", body = String),
              (status = 404, description = "no such feed (or one that was replaced)", body = kit::problem::Problem)))]
pub async fn calendar_feed(State(app): State<App>, Path(token): Path<String>) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("no such calendar".into());
    let token = token.strip_suffix(".ics").ok_or_else(not_found)?;
    if token.len() > 128 {
        return Err(not_found());
    }
    let user = app.store.calendar_owner(kit::secret::token_hash(token)).await?.ok_or_else(not_found)?;
    let mine = app.store.my_registrations(user).await?;
    let events: Vec<_> = mine.iter().filter(|m| m.event.status != Status::Draft).map(|m| &m.event).collect();
    let body = crate::ics::calendar("Veche", &events, &app.public_url, jiff::Timestamp::now());
    Ok(calendar_response(body, "veche.ics"))
}
