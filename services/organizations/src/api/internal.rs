//! Calls between services: the users service takes a deleted account out of every
//! organization before it deletes it.

use crate::App;
use crate::store::Departure;
use axum::extract::State;
use kit::auth::Caller;
use kit::extract::{Json, Path};
use kit::{ApiError, now_unix};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// The organizations a deleted account was taken out of.
#[derive(Debug, Serialize, ToSchema)]
pub struct Departures {
    pub departures: Vec<Departure>,
}

#[utoipa::path(delete, path = "/internal/v1/organizations/members/{user_id}", operation_id = "forgetDeletedAccount",
    tag = "internal", security(("bearer" = [])), params(("user_id" = Uuid, Path)),
    responses((status = 200, description = "the account is a member of no organization any more (also when it was of none)", body = Departures),
              (status = 401, body = kit::problem::Problem),
              (status = 403, description = "the users service's token only", body = kit::problem::Problem)))]
pub async fn forget_user(
    State(app): State<App>,
    Caller(caller): Caller,
    Path(user_id): Path<Uuid>,
) -> Result<Json<Departures>, ApiError> {
    if caller.service() != Some("users") {
        return Err(ApiError::Forbidden("only the users service deletes accounts".into()));
    }
    let departures = app.store.forget_user(user_id, now_unix()).await?;
    for d in &departures {
        tracing::info!(organization = %d.organization_id, new_owner = ?d.new_owner, "a deleted account left");
    }
    Ok(Json(Departures { departures }))
}
