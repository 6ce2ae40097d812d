//! Tickets and the door: the attendee's ticket with its QR code, and check-in by the
//! code scanned (or by the attendee's id, for a manager with the list in hand).

use super::attendees::Attendee;
use super::{Access, access};
use crate::App;
use crate::model::{Registration, RegistrationStatus};
use crate::store::CheckedIn;
use crate::ticket;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::{Json, Path, Query};
use kit::{ApiError, now_unix};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// An attendee's ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ticket {
    /// Shown at the door, scanned from `qr_svg` or typed (any case, dashes optional).
    pub code: String,
    pub registration: Registration,
    /// The code as a QR code (an SVG document).
    pub qr_svg: String,
}

/// How a ticket is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketFormat {
    Json,
    /// The QR code alone, as `image/svg+xml`.
    Svg,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketParams {
    /// `svg` for the QR code alone (or send `Accept: image/svg+xml`).
    #[param(inline)]
    pub format: Option<TicketFormat>,
}

#[utoipa::path(get, path = "/api/v1/events/{id}/registrations/me/ticket", operation_id = "getMyTicket", tag = "registrations", security(("bearer" = [])),
    params(("id" = Uuid, Path), TicketParams),
    responses((status = 200, description = "the caller's ticket (a waitlisted one lets nobody in until a seat is given)",
                content((Ticket = "application/json"), (String = "image/svg+xml"))),
              (status = 404, description = "no such event, or the caller holds no registration for it", body = kit::problem::Problem)))]
pub async fn mine(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Query(params): Query<TicketParams>,
) -> Result<Response, ApiError> {
    access(&app, id, Some(&me), Access::Read).await?;
    let (registration, code) = app
        .store
        .ticket(id, me.id)
        .await?
        .filter(|(r, _)| r.status != RegistrationStatus::Cancelled)
        .ok_or_else(|| ApiError::NotFound("you hold no registration for this event".into()))?;
    let qr_svg = ticket::qr_svg(&code);
    if params.format.map_or_else(|| kit::negotiate::accepts(&headers, "image/svg+xml"), |f| f == TicketFormat::Svg) {
        let mut response = qr_svg.into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
        return Ok(response);
    }
    Ok(Json(Ticket { code, registration, qr_svg }).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInByTicket {
    /// The ticket's code as scanned or typed.
    #[schema(max_length = 64, example = "7Q2M-XW4H-0P9B-KC3D")]
    pub ticket: String,
}

/// Who checked in.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckIn {
    pub attendee: Attendee,
    /// True when this registration had already been checked in (the door should look twice).
    pub already_checked_in: bool,
}

/// The answer to a check-in made: who it was (without the name when the users service
/// cannot say it now: the check-in stands).
async fn answer(app: &App, checked: CheckedIn) -> Result<Json<CheckIn>, ApiError> {
    let user = checked.registration.user_id;
    let people = app.people.look_up_after_write(&[user]).await;
    let attendee = Attendee::new(checked.registration, people.get(&user));
    Ok(Json(CheckIn { attendee, already_checked_in: checked.already }))
}

#[utoipa::path(post, path = "/api/v1/events/{id}/check-ins", operation_id = "checkInByTicket", tag = "registrations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CheckInByTicket,
    responses((status = 200, description = "checked in now, or before (see `already_checked_in`)", body = CheckIn),
              (status = 403, description = "organization admins and owners only", body = kit::problem::Problem),
              (status = 404, description = "no such event, or no such ticket to it", body = kit::problem::Problem),
              (status = 409, description = "the ticket's holder is waitlisted or cancelled", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn by_ticket(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<CheckInByTicket>,
) -> Result<Json<CheckIn>, ApiError> {
    let code = Some(body.ticket.as_str()).filter(|t| t.len() <= 64).and_then(ticket::normalize).ok_or_else(|| {
        ApiError::field("ticket", "is not a ticket code (16 letters and digits, e.g. 7Q2M-XW4H-0P9B-KC3D)")
    })?;
    access(&app, id, Some(&me), Access::Manage).await?;
    let checked = app.store.check_in_by_ticket(id, code, now_unix()).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => ApiError::NotFound("no such ticket to this event".into()),
        other => other.into(),
    })?;
    answer(&app, checked).await
}

#[utoipa::path(post, path = "/api/v1/events/{id}/registrations/{user_id}/check-in", operation_id = "checkInAttendee", tag = "registrations",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, description = "checked in now, or before (see `already_checked_in`)", body = CheckIn),
              (status = 403, description = "organization admins and owners only", body = kit::problem::Problem),
              (status = 404, description = "no such event, or the user has no registration for it", body = kit::problem::Problem),
              (status = 409, description = "not registered (waitlisted or cancelled)", body = kit::problem::Problem)))]
pub async fn by_user(
    State(app): State<App>,
    me: AuthUser,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<CheckIn>, ApiError> {
    access(&app, id, Some(&me), Access::Manage).await?;
    let checked = app.store.check_in(id, user_id, now_unix()).await?;
    answer(&app, checked).await
}
