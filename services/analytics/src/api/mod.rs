//! Routes of the analytics service, and its OpenAPI document.

pub mod dashboard;
pub mod facts;
pub mod reports;
pub mod track;

use crate::App;
use axum::Router;
use axum::routing::{get, post};
use kit::openapi::BearerAuth;
use utoipa::OpenApi;

pub fn router(app: App) -> Router {
    Router::new()
        .route(clients::analytics::FACTS_PATH, post(facts::ingest))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/{file}", get(dashboard::asset))
        .route("/api/v1/analytics/events/{id}", get(reports::event))
        .route("/api/v1/analytics/organizations/{id}", get(reports::organization))
        .route("/api/v1/analytics/platform", get(reports::platform))
        .route(
            "/api/v1/analytics/track",
            post(track::track).layer(axum::extract::DefaultBodyLimit::max(track::TRACK_BODY_MAX)),
        )
        .with_state(app)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Veche API", description = "The events platform's HTTP API. Errors are application/problem+json (RFC 9457)."),
    paths(facts::ingest, reports::event, reports::organization, reports::platform, track::track),
    modifiers(&BearerAuth),
    tags((name = "analytics", description = "Reports over events, organizations and the platform"),
         (name = "internal", description = "Calls between services, with service tokens"))
)]
struct AnalyticsApi;

pub fn openapi() -> utoipa::openapi::OpenApi {
    AnalyticsApi::openapi()
}
