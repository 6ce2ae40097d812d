//! `/internal/v1/analytics/facts`: deliveries of domain facts from the services' outboxes.

use crate::App;
use crate::model::{FactBatch, Ingested};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use kit::auth::Caller;
use kit::extract::Json;
use kit::{ApiError, now_unix};

/// The services whose outboxes analytics collects: only their service tokens may deliver.
pub const SENDERS: [&str; 3] = ["users", "organizations", "events"];

/// A caller holding a service token of one of the [`SENDERS`]. Checked before the body
/// is read, so nobody else makes this service parse a large batch.
#[derive(Debug, Clone)]
pub struct Sender(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Sender {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        match claims.service() {
            Some(name) if SENDERS.contains(&name) => Ok(Sender(name.to_owned())),
            _ => Err(ApiError::Forbidden("facts are delivered by the platform's services only".into())),
        }
    }
}

#[utoipa::path(post, path = "/internal/v1/analytics/facts", operation_id = "ingestFacts", tag = "internal", security(("bearer" = [])),
    request_body = FactBatch,
    responses((status = 200, description = "stored; each fact is counted once however often it is delivered", body = Ingested),
              (status = 401, body = kit::problem::Problem),
              (status = 403, description = "service tokens of users, organizations and events only", body = kit::problem::Problem),
              (status = 413, body = kit::problem::Problem),
              (status = 422, description = "a fact is invalid: nothing of the batch was stored", body = kit::problem::Problem)))]
pub async fn ingest(
    State(app): State<App>,
    Sender(sender): Sender,
    Json(batch): Json<FactBatch>,
) -> Result<Json<Ingested>, ApiError> {
    let facts = batch.validate(now_unix())?;
    let done = app.store.ingest(facts).await?;
    tracing::debug!(sender, accepted = done.accepted, duplicates = done.duplicates, "facts delivered");
    metrics::counter!("analytics_facts_total", "outcome" => "accepted").increment(done.accepted);
    metrics::counter!("analytics_facts_total", "outcome" => "duplicate").increment(done.duplicates);
    metrics::counter!("analytics_facts_total", "outcome" => "expired").increment(done.expired);
    Ok(Json(done))
}
