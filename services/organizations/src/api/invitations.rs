//! `/api/v1/organizations/{id}/invitations*` and `/api/v1/organizations/invitations/accept`:
//! invitations by email, with a single-use link that expires.

use super::actor;
use super::members::authorize_read;
use crate::App;
use crate::model::{AcceptInvitation, Action, CreateInvitation, Invitation, InvitationView, MemberView};
use crate::store::{NewInvitation, StoreError};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kit::auth::AuthUser;
use kit::extract::{Json, Path, Query};
use kit::page::PageParams;
use kit::page::{self, Page};
use kit::secret::{new_token, token_hash};
use kit::{ApiError, now_unix};
use uuid::Uuid;

/// Tokens are bounded before any work is done on them (ours are 43 characters).
const TOKEN_MAX: usize = 128;

#[utoipa::path(post, path = "/api/v1/organizations/{id}/invitations", operation_id = "createInvitation", tag = "invitations", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CreateInvitation,
    responses((status = 201, description = "stored, and a mail with the link is on its way", body = InvitationView),
              (status = 403, description = "admins invite members and admins; owners also owners", body = kit::problem::Problem),
              (status = 404, body = kit::problem::Problem),
              (status = 422, body = kit::problem::Problem)))]
pub async fn create(
    State(app): State<App>,
    me: AuthUser,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(req): Json<CreateInvitation>,
) -> Result<Response, ApiError> {
    let (email, role) = req.validate()?;
    let token = new_token();
    let now = now_unix();
    let new = NewInvitation { email, role, token_hash: token_hash(&token), expires_at: now + app.invitation_ttl };
    let (invitation, org) = app.store.invite(id, actor(&me), new, now).await?;
    let inviter = me.claims.email.clone().unwrap_or_else(|| "A member".to_owned());
    // The invitee may have no account yet: the mail speaks the inviter's language.
    let language = kit::negotiate::language(&headers);
    let link = format!("{}/invitations/accept?token={token}&lang={}", app.public_url, language.as_str());
    let until = jiff::Timestamp::from_second(invitation.expires_at).unwrap_or_default();
    app.mailer.send_letter(
        &invitation.email,
        "invitation",
        language,
        serde_json::json!({
            "inviter": inviter, "organization": org.name, "role": role.as_str(), "link": link,
            "until": kit::mail::letters::when(until, "UTC", language),
        }),
    );
    Ok((StatusCode::CREATED, Json(InvitationView::from(&invitation))).into_response())
}

#[utoipa::path(get, path = "/api/v1/organizations/{id}/invitations", operation_id = "listInvitations", tag = "invitations", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageParams),
    responses((status = 200, description = "pending invitations, newest first", body = Page<InvitationView>),
              (status = 403, description = "admins and owners only", body = kit::problem::Problem),
              (status = 404, body = kit::problem::Problem)))]
pub async fn list(
    State(app): State<App>,
    me: AuthUser,
    Path(id): Path<Uuid>,
    Query(p): Query<PageParams>,
) -> Result<Json<Page<InvitationView>>, ApiError> {
    let limit = page::limit(p.limit)?;
    let after = p.cursor.as_deref().map(page::decode_cursor::<(i64, Uuid)>).transpose()?;
    authorize_read(&app, id, &me, Action::ViewInvitations).await?;
    let found = app.store.invitations(id, now_unix(), after, limit + 1).await?;
    let page = page::paginate(found, limit, |i: &Invitation| (i.created_at, i.id));
    Ok(Json(Page { items: page.items.iter().map(InvitationView::from).collect(), next_cursor: page.next_cursor }))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{id}/invitations/{invitation_id}", operation_id = "revokeInvitation", tag = "invitations",
    security(("bearer" = [])), params(("id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses((status = 204, description = "revoked: its link no longer works"),
              (status = 403, body = kit::problem::Problem),
              (status = 404, description = "no such pending invitation", body = kit::problem::Problem)))]
pub async fn revoke(
    State(app): State<App>,
    me: AuthUser,
    Path((id, invitation_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    app.store.revoke_invitation(id, actor(&me), invitation_id, now_unix()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/organizations/invitations/accept", operation_id = "acceptInvitation", tag = "invitations", security(("bearer" = [])),
    request_body = AcceptInvitation,
    responses((status = 200, description = "the caller is a member now", body = MemberView),
              (status = 403, description = "the invitation was sent to another email address", body = kit::problem::Problem),
              (status = 409, description = "already a member", body = kit::problem::Problem),
              (status = 410, description = "unknown, used, revoked or expired", body = kit::problem::Problem)))]
pub async fn accept(
    State(app): State<App>,
    me: AuthUser,
    Json(req): Json<AcceptInvitation>,
) -> Result<Json<MemberView>, ApiError> {
    if req.token.len() > TOKEN_MAX {
        return Err(StoreError::InvitationGone.into());
    }
    // Without an email claim nobody's address can match: the same answer as a mismatch.
    let email = me.claims.email.clone().ok_or(StoreError::WrongRecipient)?;
    let member = app.store.accept_invitation(token_hash(&req.token), me.id, email, now_unix()).await?;
    let organization = member.organization_id;
    let mut view = super::members::views(&app, organization, &me, std::slice::from_ref(&member), true).await?;
    Ok(Json(view.remove(0)))
}
