//! Pages and files compiled into the binary (the dashboard, the invitation and account
//! pages): served with a strict Content-Security-Policy (only our own files and the API,
//! no inline scripts, no framing), no sniffing, no referrer, and caching that follows the
//! binary.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

/// A page (revalidated on every visit) or a file it loads (`cacheable`: kept for a day).
pub fn serve(content_type: &'static str, body: &'static [u8], cacheable: bool) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Links may carry secrets (an invitation token): never pass them on.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let cache = if cacheable { "public, max-age=86400" } else { "no-cache" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const JS: &str = "text/javascript; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";

/// The files every small page shares (its style, and `page.js`: posting to the API and
/// showing problems field by field), served by each service under its own pages' prefix.
pub fn shared(name: &str) -> Option<(&'static str, &'static [u8])> {
    match name {
        "page.css" => Some((CSS, include_bytes!("../assets/page.css"))),
        "page.js" => Some((JS, include_bytes!("../assets/page.js"))),
        _ => None,
    }
}
