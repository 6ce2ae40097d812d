//! Errors on the wire: `application/problem+json` (RFC 9457).
//!
//! Every handler returns [`ApiError`]; each kind has a stable `type` URI so a frontend can
//! branch on it without parsing prose, and validation carries one entry per bad field.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Base of the stable `type` URIs; documented in the README.
const TYPE_BASE: &str = "https://veche.dev/problems/";

/// One bad field of a request, named by its JSON pointer-ish path (`venue.latitude`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// An RFC 9457 problem document, as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Per-field errors when the request failed validation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For `sso-required`: the identity provider (its id in `/api/v1/auth/providers`)
    /// this account signs in through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// Everything a handler can answer instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid: {0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The password was right, and the account also asks for a code from its second
    /// factor: a 401 of its own kind, so clients know to ask for the code.
    #[error("second factor required: {0}")]
    SecondFactorRequired(String),
    /// The account's email domain signs in through an identity provider only.
    #[error("sign in through {provider}: {detail}")]
    SsoRequired { provider: String, detail: String },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("gone: {0}")]
    Gone(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("too many requests")]
    TooManyRequests { retry_after: Duration },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The store has no room for the change (a full disk): nothing was written.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// An upstream answered with something that is not HTTP, or broke mid-answer.
    #[error("bad gateway: {0}")]
    BadGateway(String),
    /// An upstream did not answer in time.
    #[error("gateway timeout: {0}")]
    GatewayTimeout(String),
    /// Never shown to the caller: logged with the request id, answered as a bare 500.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A single-field validation failure, the most common case.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) | Self::SecondFactorRequired(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::SsoRequired { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable slug of this kind; also the last segment of its `type` URI.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad-request",
            Self::Validation(_) => "validation",
            Self::Unauthorized(_) => "unauthorized",
            Self::SecondFactorRequired(_) => "second-factor-required",
            Self::SsoRequired { .. } => "sso-required",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::Conflict(_) => "conflict",
            Self::Gone(_) => "gone",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::TooManyRequests { .. } => "rate-limited",
            Self::Unavailable(_) => "unavailable",
            Self::InsufficientStorage(_) => "insufficient-storage",
            Self::BadGateway(_) => "bad-gateway",
            Self::GatewayTimeout(_) => "gateway-timeout",
            Self::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "The request could not be read",
            Self::Validation(_) => "The request has invalid fields",
            Self::Unauthorized(_) => "Authentication is required",
            Self::SecondFactorRequired(_) => "A second factor is required",
            Self::SsoRequired { .. } => "Sign in through your organization's identity provider",
            Self::Forbidden(_) => "You may not do this",
            Self::NotFound(_) => "Not found",
            Self::Conflict(_) => "Conflict with the current state",
            Self::Gone(_) => "No longer valid",
            Self::MethodNotAllowed => "This method is not allowed here",
            Self::PayloadTooLarge => "The request body is too large",
            Self::UnsupportedMediaType(_) => "Unsupported media type",
            Self::TooManyRequests { .. } => "Too many requests",
            Self::Unavailable(_) => "Service unavailable",
            Self::InsufficientStorage(_) => "There is no room to store this",
            Self::BadGateway(_) => "The service behind the gateway failed",
            Self::GatewayTimeout(_) => "The service behind the gateway did not answer in time",
            Self::Internal(_) => "Internal server error",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let detail = match self {
            Self::BadRequest(d)
            | Self::Unauthorized(d)
            | Self::SecondFactorRequired(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::Gone(d)
            | Self::UnsupportedMediaType(d)
            | Self::Unavailable(d)
            | Self::InsufficientStorage(d)
            | Self::BadGateway(d)
            | Self::GatewayTimeout(d)
            | Self::SsoRequired { detail: d, .. } => Some(d.clone()),
            Self::TooManyRequests { retry_after } => Some(format!("retry after {} s", retry_after.as_secs().max(1))),
            Self::Validation(_) | Self::MethodNotAllowed | Self::PayloadTooLarge | Self::Internal(_) => None,
        };
        Problem {
            type_uri: format!("{TYPE_BASE}{}", self.kind()),
            title: self.title().to_owned(),
            status: self.status().as_u16(),
            detail,
            errors: match self {
                Self::Validation(errors) => errors.clone(),
                _ => Vec::new(),
            },
            provider: match self {
                Self::SsoRequired { provider, .. } => Some(provider.clone()),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "internal error");
        }
        let mut response = problem_response(self.status(), &self.to_problem());
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(_) | Self::SecondFactorRequired(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyRequests { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        response
    }
}

/// Serialises a problem with the right content type.
pub fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// Collects field errors during validation, then turns into `Ok` or one `Validation` error.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records `message` against `field` unless `ok` holds.
    pub fn check(&mut self, ok: bool, field: &str, message: &str) {
        if !ok {
            self.add(field, message);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.0)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_lists_fields_and_has_stable_type() {
        let p = ApiError::field("email", "is not an email address").to_problem();
        assert_eq!(p.type_uri, "https://veche.dev/problems/validation");
        assert_eq!(p.status, 422);
        assert_eq!(p.errors, vec![FieldError::new("email", "is not an email address")]);
    }

    #[test]
    fn internal_problem_hides_the_cause() {
        let p = ApiError::internal(anyhow::anyhow!("disk on fire at /var/secret")).to_problem();
        assert_eq!(p.status, 500);
        assert!(p.detail.is_none());
    }

    #[test]
    fn rate_limit_says_when_to_retry() {
        let r = ApiError::TooManyRequests { retry_after: Duration::from_secs(7) }.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
