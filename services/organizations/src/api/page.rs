//! `/invitations/accept`: where an invitation mail's link lands. A small page that logs
//! the invitee in (or signs them up) and accepts with the token from the link, through
//! the public API, in the reader's language. Its files ship inside the binary.

use axum::extract::{Path, RawQuery};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use kit::ApiError;
use kit::assets::{JS, localized, serve};

pub async fn accept(RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    localized("invitation", include_str!("../../assets/invitation.html"), query.as_deref(), &headers)
}

pub async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, bytes): (&'static str, &'static [u8]) = match name.as_str() {
        "invitation.js" => (JS, include_bytes!("../../assets/invitation.js")),
        shared => match kit::assets::shared(shared) {
            Some(file) => file,
            None => return ApiError::NotFound("no such file".into()).into_response(),
        },
    };
    serve(content_type, bytes, true)
}
