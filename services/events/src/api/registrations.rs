//! Registrations (seats and the waitlist), the caller's own, and calendars.

use super::{Access, access, calendar_response};
use crate::App;
use crate::ics::Entry;
use crate::model::{EventView, Registration, RegistrationStatus, Status};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::{Json, Path, Query};
use kit::page::{self, Page, PageParams};
use kit::{ApiError, now_unix};
use serde::Serialize;
use utoipa::ToSchema;
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
              (status = 404, body = kit::problem::Problem),
              (status = 409, description = "checked in at the door already", body = kit::problem::Problem)))]
pub async fn cancel(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Registration>, ApiError> {
    access(&app, id, Some(&me), Access::Read).await?;
    Ok(Json(app.store.cancel_registration(id, me.id, now_unix()).await?))
}

#[utoipa::path(get, path = "/api/v1/events/{id}/registrations/me", operation_id = "getMyRegistration", tag = "registrations", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "the caller's place (cancelled ones too)", body = Registration),
              (status = 404, description = "no such event, or the caller never registered", body = kit::problem::Problem)))]
pub async fn get_mine(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Registration>, ApiError> {
    access(&app, id, Some(&me), Access::Read).await?;
    let found = app.store.registration(id, me.id).await?;
    found.map(Json).ok_or_else(|| ApiError::NotFound("you never registered for this event".into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MyRegistrationView {
    pub registration: Registration,
    pub event: EventView,
    /// The ticket to show at the door (see `.../registrations/me/ticket` for its QR code).
    pub ticket: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users/me/registrations", operation_id = "listMyRegistrations", tag = "registrations", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, description = "the caller's seats and waitlist places, by the events' start", body = Page<MyRegistrationView>)))]
pub async fn mine(
    State(app): State<App>,
    me: AuthUser,
    Query(p): Query<PageParams>,
) -> Result<Json<Page<MyRegistrationView>>, ApiError> {
    let limit = page::limit(p.limit)?;
    let after = p.cursor.as_deref().map(page::decode_cursor::<(i64, Uuid)>).transpose()?;
    let found = app.store.my_registrations(me.id, after, Some(limit + 1)).await?;
    let page = page::paginate(found, limit, |m| (m.event.input.start.as_second(), m.event.id));
    let items = page
        .items
        .into_iter()
        .map(|m| MyRegistrationView {
            event: EventView::from(&m.event),
            registration: m.registration,
            ticket: m.ticket,
        })
        .collect();
    Ok(Json(Page { items, next_cursor: page.next_cursor }))
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
    let mine = app.store.my_registrations(user, None, None).await?;
    let entries: Vec<_> = mine
        .iter()
        .filter(|m| m.event.status != Status::Draft)
        // A waitlisted place opens no door: its code stays out of calendars.
        .map(|m| Entry {
            event: &m.event,
            ticket: m.ticket.as_deref().filter(|_| m.registration.status == RegistrationStatus::Registered),
        })
        .collect();
    let body = crate::ics::calendar("Veche", &entries, &app.public_url, jiff::Timestamp::now());
    Ok(calendar_response(body, "veche.ics"))
}
