//! Calls between services: the list of ended sessions that every verifier follows, and
//! the directory of people the other services show names from.

use crate::App;
use axum::extract::State;
use clients::people::{self, Lookup, People};
use clients::users::RevokedPage;
use kit::auth::Caller;
use kit::extract::{Json, Query};
use kit::{ApiError, now_unix};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EndedParams {
    /// The `cursor` of the last page read (0 at first).
    #[serde(default)]
    #[param(minimum = 0)]
    pub after: i64,
}

#[utoipa::path(get, path = "/internal/v1/sessions/revoked", operation_id = "listEndedSessions", tag = "internal",
    security(("bearer" = [])), params(EndedParams),
    responses((status = 200, description = "sessions ended after the cursor whose tokens may still be unexpired", body = RevokedPage),
              (status = 401, body = kit::problem::Problem),
              (status = 403, description = "service tokens only", body = kit::problem::Problem)))]
pub async fn ended_sessions(
    State(app): State<App>,
    Caller(caller): Caller,
    Query(params): Query<EndedParams>,
) -> Result<Json<RevokedPage>, ApiError> {
    if caller.service().is_none() {
        return Err(ApiError::Forbidden("for the platform's services only".into()));
    }
    if params.after < 0 {
        return Err(ApiError::field("after", "must not be negative"));
    }
    Ok(Json(app.ended_page(params.after, now_unix()).await?))
}

#[utoipa::path(post, path = "/internal/v1/users/people", operation_id = "lookUpPeople", tag = "internal",
    security(("bearer" = [])), request_body = Lookup,
    responses((status = 200, description = "the people behind the ids (unknown ones left out), matching `q` when given", body = People),
              (status = 401, body = kit::problem::Problem),
              (status = 403, description = "service tokens of the events and organizations services only", body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn people(
    State(app): State<App>,
    Caller(caller): Caller,
    Json(lookup): Json<Lookup>,
) -> Result<Json<People>, ApiError> {
    // Only the services that show people to their users; least privilege for the rest.
    let shows_people = [catalog::Service::Events.as_str(), catalog::Service::Organizations.as_str()];
    if !caller.service().is_some_and(|s| shows_people.contains(&s)) {
        return Err(ApiError::Forbidden("for the events and organizations services only".into()));
    }
    if lookup.ids.len() > people::LOOKUP_MAX {
        return Err(ApiError::field("ids", format!("at most {} in one lookup", people::LOOKUP_MAX)));
    }
    let mut found = app.store.people(lookup.ids).await?;
    if let Some(q) = lookup.q.as_deref() {
        found.retain(|p| people::matches(p, q));
    }
    Ok(Json(People { people: found }))
}
