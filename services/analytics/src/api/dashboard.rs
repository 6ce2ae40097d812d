//! `/dashboard`: the reports as a page, for organizers and admins. Its files ship inside
//! the binary (uPlot vendored from npm, see `assets/uPlot.LICENSE`), so it works offline
//! and on air-gapped machines; the page calls the same API as everyone else, and speaks
//! Russian or English.

use axum::extract::{Path, RawQuery};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use kit::ApiError;
use kit::assets::{CSS, JS, localized, serve};

/// The page in its reader's language: `?lang=` (the page asks for the signed-in person's
/// preference this way), else the browser's.
pub async fn page(RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    localized("dashboard", include_str!("../../assets/dashboard.html"), query.as_deref(), &headers)
}

pub async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, bytes): (&'static str, &'static [u8]) = match name.as_str() {
        "dashboard.js" => (JS, include_bytes!("../../assets/dashboard.js")),
        "dashboard.css" => (CSS, include_bytes!("../../assets/dashboard.css")),
        "uPlot.iife.min.js" => (JS, include_bytes!("../../assets/uPlot.iife.min.js")),
        "uPlot.min.css" => (CSS, include_bytes!("../../assets/uPlot.min.css")),
        _ => return ApiError::NotFound("no such file".into()).into_response(),
    };
    serve(content_type, bytes, true)
}
