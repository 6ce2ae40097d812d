//! One OpenAPI document for the whole API, merged from the services' own, and `/docs`:
//! Swagger UI from npm's `swagger-ui-dist`, vendored in `assets/` and compiled into the
//! binary, so the page works offline and the build downloads nothing.

use crate::Gateway;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit::ApiError;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The merged document, rebuilt at most this often (services change on deploys only).
const FRESH_FOR: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct MergedOpenApi {
    /// Serialised once per rebuild: every answer in between is a cheap copy of the bytes.
    cached: Mutex<Option<(Instant, bytes::Bytes)>>,
}

fn json_response(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

pub async fn openapi(State(gw): State<Arc<Gateway>>) -> Response {
    let mut cached = gw.openapi.cached.lock().await;
    if let Some((at, doc)) = cached.as_ref()
        && at.elapsed() < FRESH_FOR
    {
        return json_response(doc.clone());
    }
    let mut names: Vec<&String> = gw.upstreams.keys().collect();
    names.sort();
    let mut parts = Vec::new();
    for name in names {
        match gw.upstreams[name].get_json("/openapi.json").await {
            Ok(doc) => parts.push(routable_only(doc, name, &gw.routes)),
            // A service that is down leaves a gap in the document, not an error page.
            Err(e) => tracing::warn!(upstream = %name, error = %e, "no OpenAPI document from upstream"),
        }
    }
    if parts.is_empty() {
        return ApiError::Unavailable("no service answered with its API description".into()).into_response();
    }
    let doc = bytes::Bytes::from(serde_json::to_vec(&merge(parts)).unwrap_or_default());
    *cached = Some((Instant::now(), doc.clone()));
    json_response(doc)
}

/// The paths of an upstream's document that the gateway routes to that upstream: a
/// service may document more (its internal endpoints), which the public document must
/// not offer.
/// Also declares the gateway's own answer on a route that checks tokens: 401 for a token
/// that is missing (where one is required) or invalid (wherever one is sent).
pub fn routable_only(mut doc: Value, upstream: &str, routes: &crate::model::Router) -> Value {
    let Some(Value::Object(paths)) = doc.get_mut("paths") else { return doc };
    paths.retain(|path, _| routes.find(path).is_some_and(|r| r.upstream == upstream));
    for (path, item) in paths.iter_mut() {
        let checks_tokens = routes.find(path).is_some_and(|r| r.auth != crate::model::Access::None);
        let Some(item) = item.as_object_mut().filter(|_| checks_tokens) else { continue };
        for op in item.values_mut() {
            if let Some(Value::Object(responses)) = op.get_mut("responses") {
                responses.entry("401").or_insert_with(|| json!({"$ref": "#/components/responses/Unauthorized"}));
            }
        }
    }
    doc
}

/// Paths and components of every document in one; the first wins on a clash (services
/// own disjoint paths, and shared schemas such as `Problem` are the same everywhere).
/// Merged as JSON, not with utoipa's `OpenApi::merge`: utoipa 5 cannot read back every
/// document it writes (a nullable reference, `oneOf: [{"type": "null"}, {"$ref"}]`, fails), and a
/// document the gateway cannot read would vanish from `/openapi.json`.
pub fn merge(docs: Vec<Value>) -> Value {
    let mut paths = Map::new();
    let mut components: Map<String, Value> = Map::new();
    let mut tags: Vec<Value> = Vec::new();
    for doc in docs {
        if let Some(Value::Object(p)) = doc.get("paths") {
            for (k, v) in p {
                paths.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if let Some(Value::Object(c)) = doc.get("components") {
            for (section, entries) in c {
                let Value::Object(entries) = entries else { continue };
                let target = components.entry(section.clone()).or_insert_with(|| json!({}));
                if let Value::Object(target) = target {
                    for (k, v) in entries {
                        target.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        if let Some(Value::Array(t)) = doc.get("tags") {
            for tag in t {
                if !tags.iter().any(|x| x.get("name") == tag.get("name")) {
                    tags.push(tag.clone());
                }
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Veche API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The events platform's HTTP API, through its gateway. Errors are RFC 9457 problem+json.",
        },
        // Relative to where the document was fetched: the gateway it came from.
        "servers": [{"url": "/", "description": "this gateway"}],
        "paths": paths,
        "components": components,
        "tags": tags,
    })
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Veche API</title>
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"#;

/// Kept out of the page so the Content-Security-Policy needs no inline scripts.
const INIT: &str = r##"window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
"##;

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'";

pub async fn page() -> Response {
    with_headers(StatusCode::OK, "text/html; charset=utf-8", PAGE.as_bytes(), false)
}

pub async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, bytes): (&str, &'static [u8]) = match name.as_str() {
        "swagger-ui-bundle.js" => ("text/javascript", include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js")),
        "swagger-ui.css" => ("text/css", include_bytes!("../assets/swagger-ui/swagger-ui.css")),
        "favicon-32x32.png" => ("image/png", include_bytes!("../assets/swagger-ui/favicon-32x32.png")),
        "init.js" => ("text/javascript", INIT.as_bytes()),
        _ => return ApiError::NotFound("no such file".into()).into_response(),
    };
    with_headers(StatusCode::OK, content_type, bytes, true)
}

fn with_headers(status: StatusCode, content_type: &str, body: &'static [u8], cacheable: bool) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Assets change only with the binary: a day's caching, revalidated after.
    let cache = if cacheable { "public, max-age=86400" } else { "no-cache" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_merge_paths_components_and_tags() {
        let a = json!({"paths": {"/a": {"get": {}}}, "components": {"schemas": {"Problem": {"type": "object"}, "A": {}}},
                       "tags": [{"name": "users"}]});
        let b = json!({"paths": {"/b": {"post": {}}}, "components": {"schemas": {"Problem": {"type": "string"}, "B": {}},
                       "securitySchemes": {"bearer": {}}}, "tags": [{"name": "users"}, {"name": "events"}]});
        let doc = merge(vec![a, b]);
        assert_eq!(doc["paths"].as_object().unwrap().len(), 2);
        assert_eq!(doc["components"]["schemas"]["Problem"]["type"], "object", "the first wins");
        assert!(doc["components"]["schemas"]["B"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        assert_eq!(doc["tags"].as_array().unwrap().len(), 2);
        assert_eq!(doc["servers"][0]["url"], "/");
    }

    #[test]
    fn only_paths_the_gateway_routes_to_their_upstream_are_public() {
        let routes = crate::model::Router::new(&crate::model::RouteTable::platform(|s| format!("http://{s}:80")));
        let doc = json!({"paths": {"/api/v1/analytics/track": {"post": {"responses": {}}},
                                   "/internal/v1/analytics/facts": {}, "/api/v1/events": {}}});
        let doc = routable_only(doc, "analytics", &routes);
        let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        assert_eq!(paths, ["/api/v1/analytics/track"]);
        let declared = &doc["paths"]["/api/v1/analytics/track"]["post"]["responses"]["401"];
        assert_eq!(declared["$ref"], "#/components/responses/Unauthorized", "the gateway refuses bad tokens there");

        let doc = json!({"paths": {"/.well-known/jwks.json": {"get": {"responses": {}}}}});
        let doc = routable_only(doc, "users", &routes);
        assert!(
            doc["paths"]["/.well-known/jwks.json"]["get"]["responses"].get("401").is_none(),
            "no token checks there"
        );
    }
}
