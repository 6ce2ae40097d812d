//! `/dashboard`: the reports as a page, for organizers and admins. Its files ship inside
//! the binary (uPlot vendored from npm, see `assets/uPlot.LICENSE`), so it works offline
//! and on air-gapped machines; the page calls the same API as everyone else.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit::ApiError;

/// Only our own files and the API; no inline scripts, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

pub async fn page() -> Response {
    serve("text/html; charset=utf-8", include_bytes!("../../assets/dashboard.html"), false)
}

pub async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, bytes): (&str, &'static [u8]) = match name.as_str() {
        "dashboard.js" => ("text/javascript; charset=utf-8", include_bytes!("../../assets/dashboard.js")),
        "dashboard.css" => ("text/css; charset=utf-8", include_bytes!("../../assets/dashboard.css")),
        "uPlot.iife.min.js" => ("text/javascript; charset=utf-8", include_bytes!("../../assets/uPlot.iife.min.js")),
        "uPlot.min.css" => ("text/css; charset=utf-8", include_bytes!("../../assets/uPlot.min.css")),
        _ => return ApiError::NotFound("no such file".into()).into_response(),
    };
    serve(content_type, bytes, true)
}

fn serve(content_type: &'static str, body: &'static [u8], cacheable: bool) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The page is small and changes with the binary: revalidate it; files for a day.
    let cache = if cacheable { "public, max-age=86400" } else { "no-cache" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
