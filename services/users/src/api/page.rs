//! `/verify-email` and `/reset-password`: where the account mails' links land. Small
//! pages that post the link's token to the public API; their files (under `/account/`)
//! ship inside the binary.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use kit::ApiError;
use kit::assets::{HTML, JS, serve};

pub async fn verify_email() -> Response {
    serve(HTML, include_bytes!("../../assets/verify-email.html"), false)
}

pub async fn reset_password() -> Response {
    serve(HTML, include_bytes!("../../assets/reset-password.html"), false)
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
