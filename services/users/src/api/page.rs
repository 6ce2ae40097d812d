//! `/verify-email` and `/reset-password`: where the account mails' links land. Small
//! pages that post the link's token to the public API, in the reader's language; their
//! files (under `/account/`) ship inside the binary.

use axum::extract::{Path, RawQuery};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use kit::ApiError;
use kit::assets::{JS, localized, serve};

pub async fn verify_email(RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    localized("verify_email", include_str!("../../assets/verify-email.html"), query.as_deref(), &headers)
}

pub async fn reset_password(RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    localized("reset_password", include_str!("../../assets/reset-password.html"), query.as_deref(), &headers)
}

pub async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, bytes): (&'static str, &'static [u8]) = match name.as_str() {
        "verify-email.js" => (JS, include_bytes!("../../assets/verify-email.js")),
        "reset-password.js" => (JS, include_bytes!("../../assets/reset-password.js")),
        shared => match kit::assets::shared(shared) {
            Some(file) => file,
            None => return ApiError::NotFound("no such file".into()).into_response(),
        },
    };
    serve(content_type, bytes, true)
}
