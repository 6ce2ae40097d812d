//! Content negotiation, the little the API does: whether `Accept` names a media type
//! among its ranges (parameters and quality ignored: a client that names one wants it),
//! and which of the platform's languages a browser prefers.

use axum::http::{HeaderMap, header};

/// Whether the request's `Accept` names `media_type` (case-insensitive).
pub fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| range.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(media_type))
}

/// The language the request's `Accept-Language` prefers among the platform's, else
/// English.
pub fn language(headers: &HeaderMap) -> crate::mail::Language {
    headers
        .get_all(header::ACCEPT_LANGUAGE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(crate::mail::Language::from_accept_language)
        .unwrap_or(crate::mail::Language::En)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_named_range_is_accepted_whatever_its_parameters() {
        let mut headers = HeaderMap::new();
        headers.append(header::ACCEPT, HeaderValue::from_static("application/json, Text/CSV;q=0.5"));
        headers.append(header::ACCEPT, HeaderValue::from_static("image/svg+xml"));
        assert!(accepts(&headers, "text/csv"));
        assert!(accepts(&headers, "image/svg+xml"));
        assert!(!accepts(&headers, "text/html"));
        assert!(!accepts(&HeaderMap::new(), "text/csv"));
    }
}
