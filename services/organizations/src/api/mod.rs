//! Routes of the organizations service, and its OpenAPI document.

pub mod internal;
pub mod invitations;
pub mod members;
pub mod organizations;
pub mod page;

use crate::App;
use crate::store::Actor;
use axum::Router;
use axum::routing::{delete, get, post};
use kit::auth::AuthUser;
use kit::openapi::BearerAuth;
use utoipa::OpenApi;

pub fn router(app: App) -> Router {
    Router::new()
        .route("/api/v1/organizations", get(organizations::list).post(organizations::create))
        .route(
            "/api/v1/organizations/{id}",
            get(organizations::get).patch(organizations::patch).delete(organizations::delete),
        )
        .route("/api/v1/organizations/{id}/transfer", post(organizations::transfer))
        .route("/api/v1/organizations/{id}/members", get(members::list))
        .route(
            "/api/v1/organizations/{id}/members/{user_id}",
            get(members::lookup).patch(members::change_role).delete(members::remove),
        )
        .route("/api/v1/organizations/{id}/invitations", get(invitations::list).post(invitations::create))
        .route("/api/v1/organizations/{id}/invitations/{invitation_id}", delete(invitations::revoke))
        .route("/api/v1/organizations/invitations/accept", post(invitations::accept))
        .route("/api/v1/users/me/organizations", get(organizations::mine))
        .route("/internal/v1/organizations/members/{user_id}", delete(internal::forget_user))
        .route("/invitations/accept", get(page::accept))
        .route("/invitations/{file}", get(page::asset))
        .with_state(app)
}

pub(crate) fn actor(me: &AuthUser) -> Actor {
    Actor { user_id: me.id, platform_admin: me.is_admin() }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Veche API", description = "The events platform's HTTP API. Errors are application/problem+json (RFC 9457)."),
    paths(
        organizations::create, organizations::list, organizations::get, organizations::patch, organizations::delete,
        organizations::transfer, organizations::mine,
        members::list, members::lookup, members::change_role, members::remove,
        invitations::create, invitations::list, invitations::revoke, invitations::accept,
        internal::forget_user,
    ),
    modifiers(&BearerAuth),
    tags((name = "organizations", description = "Organizations and their public profiles"),
         (name = "members", description = "Members, roles and ownership"),
         (name = "invitations", description = "Invitations to join by email"),
         (name = "internal", description = "Calls between services, with service tokens"))
)]
struct OrganizationsApi;

pub fn openapi() -> utoipa::openapi::OpenApi {
    OrganizationsApi::openapi()
}
