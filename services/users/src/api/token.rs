//! `/api/v1/auth/token`: the token endpoint for services (RFC 6749 §4.4, client
//! credentials). OAuth clients read its errors in the RFC's own form (§5.2), so this one
//! endpoint answers `{"error", "error_description"}` rather than a problem document.

use crate::App;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use kit::ApiError;
use kit::secret::{constant_time_eq, token_hash};
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// The one grant this endpoint serves: services authenticating as themselves.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Documentation only: the form is read as text and checked.
pub enum GrantType {
    ClientCredentials,
}

/// The form a client posts (`application/x-www-form-urlencoded`).
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation only: see `Form`.
pub struct ClientCredentialsRequest {
    grant_type: GrantType,
    /// The service the token is for (`organizations`, `events`, ...).
    audience: String,
    /// Alternatively to HTTP Basic authentication (never both).
    client_id: Option<String>,
    client_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceTokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

/// The error codes of RFC 6749 §5.2 this endpoint uses, and RFC 8707's for an audience
/// that is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    UnsupportedGrantType,
    InvalidTarget,
}

/// An error as RFC 6749 §5.2 writes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenError {
    pub error: ErrorCode,
    pub error_description: String,
}

impl TokenError {
    fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        Self { error, error_description: description.into() }
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let status = match self.error {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, Json(self)).into_response();
        let h = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            // §5.2: the challenge of the scheme a client may use (and must get if it used it).
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="veche""#));
        }
        no_store(h);
        response
    }
}

/// §5.1: token responses, and errors about them, are never cached.
pub(crate) fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Services that may be a token's audience.
const AUDIENCES: [&str; 5] = ["users", "organizations", "events", "analytics", "gateway"];

/// The form, read strictly: §3.2 forbids repeated parameters.
struct Form(HashMap<String, String>);

impl Form {
    fn parse(body: &[u8]) -> Result<Self, TokenError> {
        let mut fields = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if fields.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(TokenError::new(ErrorCode::InvalidRequest, format!("`{name}` is given more than once")));
            }
        }
        Ok(Self(fields))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

#[utoipa::path(post, path = "/api/v1/auth/token", operation_id = "issueServiceToken", tag = "auth",
    request_body(content = ClientCredentialsRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = ServiceTokenResponse),
        (status = 400, description = "an RFC 6749 error: a malformed request, another grant, or an unknown audience", body = TokenError),
        (status = 401, description = "an RFC 6749 `invalid_client` error", body = TokenError,
            headers(("WWW-Authenticate" = String, description = "the Basic challenge")))))]
pub async fn service_token(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    match issue(&app, &headers, &body) {
        Ok(Ok(token)) => {
            let mut response = Json(token).into_response();
            no_store(response.headers_mut());
            response
        }
        Ok(Err(refused)) => refused.into_response(),
        Err(internal) => internal.into_response(),
    }
}

/// A token, an RFC 6749 refusal, or (outer) a failure of ours.
fn issue(app: &App, headers: &HeaderMap, body: &[u8]) -> Result<Result<ServiceTokenResponse, TokenError>, ApiError> {
    let checked = (|| {
        let form_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !form_type.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
            return Err(TokenError::new(
                ErrorCode::InvalidRequest,
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let form = Form::parse(body)?;
        match form.get("grant_type") {
            None => return Err(TokenError::new(ErrorCode::InvalidRequest, "`grant_type` is missing")),
            Some("client_credentials") => {}
            Some(_) => {
                return Err(TokenError::new(ErrorCode::UnsupportedGrantType, "only client_credentials is supported"));
            }
        }
        let audience = form.get("audience").ok_or_else(|| {
            TokenError::new(ErrorCode::InvalidRequest, "`audience` is missing: name the service the token is for")
        })?;
        if !AUDIENCES.contains(&audience) {
            return Err(TokenError::new(ErrorCode::InvalidTarget, "`audience` is not a Veche service"));
        }
        let (id, secret) = credentials(headers, &form)?;
        let known = app.config.service_clients.0.get(&id);
        // Compare against something even for unknown clients, in constant time.
        let ok =
            constant_time_eq(token_hash(known.map_or("", String::as_str)).as_bytes(), token_hash(&secret).as_bytes())
                && known.is_some();
        if !ok {
            return Err(TokenError::new(ErrorCode::InvalidClient, "unknown client or wrong secret"));
        }
        Ok((id, audience.to_owned()))
    })();
    let (id, audience) = match checked {
        Ok(found) => found,
        Err(refused) => return Ok(Err(refused)),
    };
    let token = app.issuer.service_token(&id, &audience, kit::now_unix()).map_err(ApiError::internal)?;
    Ok(Ok(ServiceTokenResponse { access_token: token, token_type: "Bearer", expires_in: app.config.service_token_ttl }))
}

/// The client's id and secret from HTTP Basic (whose parts are form-encoded, §2.3.1) or
/// from the form; never both (§2.3).
fn credentials(headers: &HeaderMap, form: &Form) -> Result<(String, String), TokenError> {
    let in_form = (form.get("client_id"), form.get("client_secret"));
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return match in_form {
            (Some(id), Some(secret)) => Ok((id.to_owned(), secret.to_owned())),
            _ => Err(TokenError::new(ErrorCode::InvalidClient, "client credentials are required")),
        };
    };
    if in_form != (None, None) {
        return Err(TokenError::new(ErrorCode::InvalidRequest, "use HTTP Basic or the form for credentials, not both"));
    }
    let malformed = || TokenError::new(ErrorCode::InvalidClient, "malformed Basic credentials");
    let (scheme, encoded) = value.to_str().ok().and_then(|v| v.split_once(' ')).ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
    let unform =
        |part: &str| url::form_urlencoded::parse(format!("x={part}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Ok((unform(id).unwrap_or_default(), unform(secret).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass));
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let form = Form::parse(b"grant_type=client_credentials").unwrap();
        let (id, secret) = credentials(&basic("events:a%2Bb+c%3A"), &form).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("events", "a+b c:"));
    }

    #[test]
    fn two_ways_of_authenticating_or_repeated_fields_are_refused() {
        let form = Form::parse(b"client_id=events&client_secret=x").unwrap();
        assert_eq!(credentials(&basic("events:x"), &form).unwrap_err().error, ErrorCode::InvalidRequest);
        assert_eq!(Form::parse(b"audience=a&audience=b").err().map(|e| e.error), Some(ErrorCode::InvalidRequest));
        let none = Form::parse(b"").unwrap();
        assert_eq!(credentials(&HeaderMap::new(), &none).unwrap_err().error, ErrorCode::InvalidClient);
        assert_eq!(credentials(&basic("no-colon"), &none).unwrap_err().error, ErrorCode::InvalidClient);
    }
}
