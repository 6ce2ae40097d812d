//! Request extractors whose failures are problems, never axum's plain-text rejections.

use crate::problem::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// JSON body in, JSON body out. A bad body names the field that failed
/// (`interests[2]: invalid type: integer, expected a string`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        json_body(req, state, "application/json").await.and_then(|bytes| parse_json(&bytes)).map(Json)
    }
}

/// The bytes of a body whose media type is JSON (`application/json` or any `+json`, such
/// as `application/merge-patch+json`); `expected` names the type in the refusal.
pub(crate) async fn json_body<S: Send + Sync>(req: Request, state: &S, expected: &str) -> Result<Bytes, ApiError> {
    let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json")
    });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType(format!("expected Content-Type: {expected}")));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })
}

/// Parses a JSON document whose top level is an object (every body this API declares is
/// one), turning serde's complaint into a problem that names the field. serde would read
/// `["a@b.co","pw"]` into a struct by position, and `[]` into a struct of defaults: a
/// client that sends an array has made a mistake, and is told so.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    // Most bodies are fine: read them without tracking the path, which costs on every
    // field of a large batch, and read a refused one again to name its field.
    if is_object && let Ok(parsed) = serde_json::from_slice(bytes) {
        return Ok(parsed);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // serde reads a struct from an array by position and may stop early, so a
        // well-formed array can fail as "trailing characters": judge it as a document.
        if !is_object {
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => not_an_object(),
                Err(syntax) => ApiError::BadRequest(format!("malformed JSON: {syntax}")),
            }
        } else if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        } else {
            let field = if path == "." { String::new() } else { path };
            ApiError::field(field, strip_position(&inner.to_string()))
        }
    })?;
    if !is_object {
        return Err(not_an_object());
    }
    // A document must end where its object does: `{...} x` and `{...}{...}` are refused.
    de.end().map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(parsed)
}

fn not_an_object() -> ApiError {
    ApiError::field("", "the body must be a JSON object")
}

/// serde_json appends " at line 1 column 42", which means nothing to a frontend developer.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query string, with problems for bad parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|r: QueryRejection| query_problem(&r.body_text()))
    }
}

/// One rule for every list: an unknown query parameter is refused, named as the field
/// (serde says "unknown field `sortt`, expected one of ..."); other failures name the
/// parameter serde names, or the query as a whole.
fn query_problem(text: &str) -> ApiError {
    let message = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(text);
    let quoted = message.split('`').nth(1).filter(|_| message.contains('`'));
    match (message.starts_with("unknown field"), quoted) {
        (true, Some(name)) => ApiError::field(name, "is not a parameter of this operation"),
        (false, Some(name)) if !name.contains(' ') && message.starts_with("missing field") => {
            ApiError::field(name, "is required")
        }
        _ => ApiError::field("query", message),
    }
}

/// Path parameters, with problems for bad segments (a malformed id is a 404, not a 400:
/// no resource lives there).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|r: PathRejection| ApiError::NotFound(r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        tags: Vec<String>,
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse_json::<Body>(br#"{"name":"a","tags":["x",3]}"#).unwrap_err();
        match err {
            ApiError::Validation(f) => {
                assert_eq!(f[0].field, "tags[1]");
                assert!(!f[0].message.contains("line"), "{}", f[0].message);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert!(matches!(parse_json::<Body>(b"{\"name\":"), Err(ApiError::BadRequest(_))));
        for trailing in [&br#"{"name":"a","tags":[]} x"#[..], br#"{"name":"a","tags":[]}{"name":"b","tags":[]}"#] {
            let refused = parse_json::<Body>(trailing);
            assert!(matches!(refused, Err(ApiError::BadRequest(_))), "{:?}", String::from_utf8_lossy(trailing));
        }
        assert!(parse_json::<Body>(b" {\"name\":\"a\",\"tags\":[]} \n").is_ok(), "white space around is fine");
    }

    #[test]
    fn top_level_arrays_and_scalars_are_not_objects() {
        #[derive(Debug, serde::Deserialize, Default)]
        #[serde(default)]
        #[allow(dead_code)]
        struct Defaults {
            language: Option<String>,
        }
        for body in [&b"[]"[..], b"[\"a\", [\"x\"]]", b" 5", b"\"s\"", b"null", b"true"] {
            match parse_json::<Defaults>(body) {
                Err(ApiError::Validation(f)) => assert!(f[0].message.contains("JSON object"), "{f:?}"),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        assert!(matches!(parse_json::<Body>(br#"["a", ["x"]]"#), Err(ApiError::Validation(_))));
        assert!(parse_json::<Defaults>(b" {}").is_ok());
        assert!(matches!(parse_json::<Defaults>(b"[1,"), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn unknown_query_parameters_are_named() {
        let err =
            query_problem("Failed to deserialize query string: unknown field `sortt`, expected one of `q`, `sort`");
        match err {
            ApiError::Validation(f) => assert_eq!((f[0].field.as_str(), f.len()), ("sortt", 1)),
            other => panic!("unexpected {other:?}"),
        }
        match query_problem("Failed to deserialize query string: limit: invalid digit found in string") {
            ApiError::Validation(f) => assert_eq!(f[0].field, "query"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_field_is_a_validation_error() {
        let err = parse_json::<Body>(br#"{"name":"a","tags":[],"admin":true}"#).unwrap_err();
        assert!(matches!(err, ApiError::Validation(_)));
    }
}
