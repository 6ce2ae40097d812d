//! Routes of the events service, the one access rule they share, and the OpenAPI document.

pub mod attendees;
pub mod events;
pub mod registrations;
pub mod sources;
pub mod tickets;
pub mod webhooks;

use crate::App;
use crate::model::{Event, Status};
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clients::organizations::Role as OrgRole;
use kit::ApiError;
use kit::auth::AuthUser;
use kit::openapi::BearerAuth;
use utoipa::OpenApi;
use uuid::Uuid;

/// What a caller wants to do with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// See it (and register for it).
    Read,
    /// Change, publish, cancel, delete it; see and check in its attendees.
    Manage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Forbidden,
    /// The caller may not know the event exists.
    Hidden,
}

/// The rule: published and cancelled events are visible to all; drafts only to the
/// organization's members; managing takes an organization admin or owner; platform
/// admins may do anything. Someone who cannot see an event learns nothing (404).
pub fn decide(status: Status, role: Option<OrgRole>, platform_admin: bool, want: Access) -> Decision {
    if platform_admin {
        return Decision::Allow;
    }
    let visible = status != Status::Draft || role.is_some();
    match want {
        _ if !visible => Decision::Hidden,
        Access::Read => Decision::Allow,
        Access::Manage if role.is_some_and(OrgRole::manages_events) => Decision::Allow,
        Access::Manage => Decision::Forbidden,
    }
}

/// Loads an event and applies [`decide`] for the caller.
pub async fn access(
    app: &App,
    id: Uuid,
    me: Option<&AuthUser>,
    want: Access,
) -> Result<(Event, Option<OrgRole>), ApiError> {
    let event = app.store.get(id).await?.ok_or_else(|| ApiError::NotFound("no such event".into()))?;
    let platform_admin = me.is_some_and(AuthUser::is_admin);
    // Only ask the organizations service when the answer can matter.
    let needs_role = !platform_admin && (want == Access::Manage || event.status == Status::Draft);
    let role = match me {
        Some(me) if needs_role && want == Access::Manage => {
            app.orgs.role_now(event.input.organization_id, me.id).await?
        }
        Some(me) if needs_role => app.orgs.role(event.input.organization_id, me.id).await?,
        _ => None,
    };
    match decide(event.status, role, platform_admin, want) {
        Decision::Allow => Ok((event, role)),
        Decision::Forbidden if me.is_none() => Err(ApiError::Unauthorized("sign in to manage events".into())),
        Decision::Forbidden => Err(ApiError::Forbidden("only admins of the organization may manage this event".into())),
        Decision::Hidden => Err(ApiError::NotFound("no such event".into())),
    }
}

pub(crate) fn calendar_response(body: String, filename: &str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/calendar; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/api/v1/events", post(events::create).get(events::search))
        .route("/api/v1/events/{id}", get(events::get).patch(events::patch).delete(events::delete))
        .route("/api/v1/events/{id}/publish", post(events::publish))
        .route("/api/v1/events/{id}/cancel", post(events::cancel))
        .route("/api/v1/events/{id}/detach", post(events::detach))
        .route("/api/v1/events/{id}/occurrences", get(events::occurrences))
        .route("/api/v1/organizations/{id}/sources", post(sources::create).get(sources::list))
        .route(
            "/api/v1/organizations/{id}/sources/{source_id}",
            get(sources::get).patch(sources::patch).delete(sources::delete),
        )
        .route("/api/v1/organizations/{id}/sources/{source_id}/sync", post(sources::sync))
        .route("/api/v1/organizations/{id}/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/api/v1/organizations/{id}/webhooks/{webhook_id}",
            get(webhooks::get).patch(webhooks::patch).delete(webhooks::delete),
        )
        .route("/api/v1/organizations/{id}/webhooks/{webhook_id}/deliveries", get(webhooks::deliveries))
        .route("/api/v1/events/{id}/registrations", post(registrations::register).get(attendees::list))
        .route("/api/v1/events/{id}/registrations/me", get(registrations::get_mine).delete(registrations::cancel))
        .route("/api/v1/events/{id}/registrations/me/ticket", get(tickets::mine))
        .route("/api/v1/events/{id}/registrations/{user_id}/check-in", post(tickets::by_user))
        .route("/api/v1/events/{id}/check-ins", post(tickets::by_ticket))
        .route("/api/v1/users/me/registrations", get(registrations::mine))
        .route("/api/v1/users/me/calendar", post(registrations::new_calendar))
        .route("/api/v1/calendar/{token}", get(registrations::calendar_feed))
        .with_state(app)
}

#[derive(OpenApi)]
#[openapi(
    paths(
        events::create, events::search, events::get, events::get_calendar, events::patch, events::publish, events::cancel, events::delete,
        events::detach, events::occurrences, sources::create, sources::list, sources::get, sources::patch, sources::delete, sources::sync,
        registrations::register, registrations::get_mine, registrations::cancel, attendees::list,
        tickets::mine, tickets::by_ticket, tickets::by_user, registrations::mine, registrations::new_calendar, registrations::calendar_feed,
        webhooks::create, webhooks::list, webhooks::get, webhooks::patch, webhooks::delete, webhooks::deliveries,
    ),
    modifiers(&BearerAuth),
    tags((name = "events", description = "Events: lifecycle and search"),
         (name = "registrations", description = "Seats, waitlists, check-in and calendars"),
         (name = "sources", description = "Outside calendars and feeds an organization imports events from"),
         (name = "webhooks", description = "Signed posts of an organization's event and registration facts to its own URLs"))
)]
struct EventsApi;

pub fn openapi() -> utoipa::openapi::OpenApi {
    EventsApi::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_rule() {
        use Access::*;
        use Decision::*;
        let roles = [None, Some(OrgRole::Member), Some(OrgRole::Admin), Some(OrgRole::Owner)];
        for status in [Status::Draft, Status::Published, Status::Cancelled] {
            for role in roles {
                for want in [Read, Manage] {
                    let expected = match (status, role, want) {
                        (Status::Draft, None, _) => Hidden,
                        (_, _, Read) => Allow,
                        (_, Some(OrgRole::Admin | OrgRole::Owner), Manage) => Allow,
                        (_, _, Manage) => Forbidden,
                    };
                    assert_eq!(decide(status, role, false, want), expected, "{status:?} {role:?} {want:?}");
                    assert_eq!(decide(status, role, true, want), Allow, "platform admins may do anything");
                }
            }
        }
    }
}
