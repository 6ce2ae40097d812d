//! The attendee list an organizer reads: registrations with the names (and addresses)
//! of the people behind them, page by page in arrival order or whole as CSV.

use super::{Access, access};
use crate::App;
use crate::model::{AttendeeStatus, Registration, RegistrationStatus};
use crate::store::{Listed, RegistrationFilter};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use clients::people::{LOOKUP_MAX, Person};
use kit::ApiError;
use kit::auth::AuthUser;
use kit::extract::{Json, Path, Query};
use kit::page::{self, Page};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A registration with who made it, as the event's managers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attendee {
    #[serde(flatten)]
    pub registration: Registration,
    /// Where the attendee stands, as the `status` filter reads it (`checked_in` apart).
    pub attendee_status: AttendeeStatus,
    /// Absent when the account has since been deleted.
    pub display_name: Option<String>,
    pub email: Option<String>,
}

impl Attendee {
    pub fn new(registration: Registration, person: Option<&Person>) -> Self {
        Self {
            attendee_status: status_of(&registration),
            registration,
            display_name: person.map(|p| p.display_name.clone()),
            email: person.map(|p| p.email.clone()),
        }
    }
}

fn status_of(r: &Registration) -> AttendeeStatus {
    match r.status {
        RegistrationStatus::Registered if r.checked_in_at.is_some() => AttendeeStatus::CheckedIn,
        RegistrationStatus::Registered => AttendeeStatus::Registered,
        RegistrationStatus::Waitlisted => AttendeeStatus::Waitlisted,
        RegistrationStatus::Cancelled => AttendeeStatus::Cancelled,
    }
}

/// How a list is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Json,
    Csv,
}

/// Longest `q`, in characters.
const Q_MAX: usize = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// JSON pages: 1 to 200; 50 when left out. CSV is always the whole list.
    pub limit: Option<u32>,
    /// JSON pages: `next_cursor` of the previous page (CSV ignores it).
    pub cursor: Option<String>,
    /// Only attendees who stand so: `registered` holds a seat not yet used at the door,
    /// `checked_in` used it.
    #[param(inline)]
    pub status: Option<AttendeeStatus>,
    /// Only attendees whose name or email contains every word of this (any case).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// `csv` for a spreadsheet of the whole list (or send `Accept: text/csv`).
    #[param(inline)]
    pub format: Option<ExportFormat>,
    /// CSV only: start with a byte-order mark, which Excel needs to read UTF-8 names.
    pub bom: Option<bool>,
    /// `false` leaves `display_name` and `email` out (null), for integrations that need
    /// only ids and statuses: without `q`, the list is then read without asking the
    /// users service.
    pub names: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/events/{id}/registrations", operation_id = "listEventRegistrations", tag = "registrations", security(("bearer" = [])),
    params(("id" = Uuid, Path), ListParams),
    responses((status = 200, description = "the event's attendees in the order they registered: a page of JSON, or (on request) the whole list as CSV",
                content((Page<Attendee> = "application/json"), (String = "text/csv"))),
              (status = 403, description = "organization admins and owners only", body = kit::problem::Problem),
              (status = 404, description = "no such event", body = kit::problem::Problem),
              (status = 422, description = "a bad `limit`, `cursor`, `status` or `q`", body = kit::problem::Problem),
              (status = 503, description = "the users service, which knows the names, cannot be reached", body = kit::problem::Problem)))]
pub async fn list(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let csv = kit::csv::wanted(params.format.map(|f| f == ExportFormat::Csv), &headers);
    let limit = page::limit(params.limit)?;
    let after = params.cursor.as_deref().map(page::decode_cursor::<i64>).transpose()?.unwrap_or(0);
    let q = params.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > Q_MAX) {
        return Err(ApiError::field("q", format!("must be at most {Q_MAX} characters")));
    }
    let (event, _) = access(&app, id, Some(&me), Access::Manage).await?;
    let wanted = Wanted { event: id, status: params.status, q, names: params.names != Some(false) };
    if !csv {
        let found = attendees(&app, &wanted, after, Some(limit as usize + 1)).await?;
        let page = page::paginate(found, limit, |(position, _)| *position);
        let items = page.items.into_iter().map(|(_, a)| a).collect();
        return Ok(Json(Page { items, next_cursor: page.next_cursor }).into_response());
    }
    // A spreadsheet is the whole list: a cursor left in a link must not cut it short.
    let found = attendees(&app, &wanted, 0, None).await?;
    let header = ["display_name", "email", "status", "waitlist_position", "registered_at", "checked_in_at", "user_id"];
    let rows = found.iter().map(|(_, a)| {
        let r = &a.registration;
        [
            a.display_name.clone().unwrap_or_default(),
            a.email.clone().unwrap_or_default(),
            a.attendee_status.as_str().to_owned(),
            r.waitlist_position.map(|p| p.to_string()).unwrap_or_default(),
            r.created_at.clone(),
            r.checked_in_at.clone().unwrap_or_default(),
            r.user_id.to_string(),
        ]
    });
    let mut body = kit::csv::table(&header, rows);
    if params.bom == Some(true) {
        body.insert(0, '\u{feff}');
    }
    Ok(kit::csv::download(body, &format!("registrations-{}.csv", event.id)))
}

/// Which attendees a list asks for.
struct Wanted<'a> {
    event: Uuid,
    status: Option<AttendeeStatus>,
    q: Option<&'a str>,
    /// Whether to show who the attendees are (a `q` asks the users service regardless).
    names: bool,
}

/// Attendees after arrival position `after`, with their positions, up to `most` (all
/// when `None`). Without `q` the store's page is the answer; with it, the store is read
/// in chunks the users service filters by name, until enough have matched.
async fn attendees(
    app: &App,
    wanted: &Wanted<'_>,
    mut after: i64,
    most: Option<usize>,
) -> Result<Vec<(i64, Attendee)>, ApiError> {
    let chunk = match (wanted.q, most) {
        (None, Some(most)) => most,
        _ => LOOKUP_MAX,
    };
    let mut found = Vec::new();
    loop {
        let filter = RegistrationFilter { status: wanted.status, after, limit: chunk as u32 };
        let listed: Vec<Listed> = app.store.registrations(wanted.event, filter).await?;
        let ids: Vec<Uuid> = listed.iter().map(|l| l.registration.user_id).collect();
        let people =
            if wanted.names || wanted.q.is_some() { app.people.look_up(&ids, wanted.q).await? } else { HashMap::new() };
        let exhausted = listed.len() < chunk;
        for l in listed {
            after = l.position;
            let person = people.get(&l.registration.user_id);
            if wanted.q.is_some() && person.is_none() {
                continue;
            }
            found.push((l.position, Attendee::new(l.registration, person.filter(|_| wanted.names))));
            if most.is_some_and(|most| found.len() >= most) {
                return Ok(found);
            }
        }
        if exhausted {
            return Ok(found);
        }
    }
}
