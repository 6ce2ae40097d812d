//! Pieces every service's OpenAPI document shares, and the conventions that make the
//! document say what the code does: [`conventions`] declares, once for every operation,
//! the answers that come from shared layers rather than from the handler (a body that is
//! not JSON, a missing token, a rate limit, an unknown id), and sends every error as
//! `application/problem+json`.

use crate::problem::{FieldError, PROBLEM_JSON, Problem};
use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, PartialSchema};

/// Declares the security schemes handlers name: `bearer` (a JWT access or service token)
/// and `basic` (a service's client id and secret at the token endpoint).
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("a service's client id and secret (RFC 6749 §2.3.1)"))
                    .build(),
            ),
        );
    }
}

/// One object schema with the properties (and required names) of each part: the schema of
/// a view that `#[serde(flatten)]`s an input refusing unknown fields, where an `allOf` of
/// the input's `additionalProperties: false` would refuse every view.
pub fn flat_object(parts: impl IntoIterator<Item = RefOr<Schema>>, description: &str) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new().description(Some(description));
    for part in parts {
        if let RefOr::T(Schema::Object(part)) = part {
            for (name, schema) in part.properties {
                object = object.property(name, schema);
            }
            for name in part.required {
                object = object.required(name);
            }
        }
    }
    RefOr::T(Schema::Object(object.build()))
}

/// The shared answers, by status: name in `components.responses` and description.
const SHARED: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "The body is not well-formed JSON (or not the declared media type's syntax)."),
    ("401", "Unauthorized", "No token, or a token that is invalid, expired or revoked."),
    ("404", "NotFound", "Nothing lives at this path (an unknown or malformed id)."),
    ("413", "PayloadTooLarge", "The body is larger than the service accepts."),
    ("415", "UnsupportedMediaType", "The body is not of the declared media type."),
    ("422", "ValidationFailed", "A field or query parameter is invalid or unknown; `errors` names each one."),
    (
        "429",
        "TooManyRequests",
        "Over a rate limit (the gateway's per client, or an operation's own); see `Retry-After`.",
    ),
    ("507", "InsufficientStorage", "The server's disk is full: nothing was changed; try again later."),
];

/// What an error answer means when its handler did not say.
fn default_description(status: &str) -> &'static str {
    match status {
        "403" => "Signed in, but not allowed to do this.",
        "409" => "Conflicts with the current state of the resource.",
        "410" => "Used up or expired.",
        "503" => "Not available right now; try again later.",
        _ => SHARED
            .iter()
            .find(|(s, _, _)| *s == status)
            .map(|(_, _, d)| *d)
            .unwrap_or("An error, as a problem document."),
    }
}

/// Rewrites a service's document (as JSON) to the project's conventions:
/// - every 4xx/5xx answer is `application/problem+json` with the `Problem` schema;
/// - every operation declares 429 (the gateway limits every route);
/// - an operation with a body declares 400, 413, 415 and 422;
/// - a secured operation (even where a token is optional) declares 401;
/// - an operation with path parameters declares 404, with query parameters 422;
/// - an operation that writes (any method but GET) declares 507 (a full disk).
pub fn conventions(doc: &mut Value) {
    let Some(root) = doc.as_object_mut() else { return };
    let components = root.entry("components").or_insert_with(|| json!({}));
    add_shared_components(components);
    let Some(Value::Object(paths)) = root.get_mut("paths") else { return };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, op) in item.iter_mut() {
            if matches!(method.as_str(), "get" | "put" | "post" | "patch" | "delete") {
                shape_operation(op, method != "get");
            }
        }
    }
}

fn add_shared_components(components: &mut Value) {
    let Some(components) = components.as_object_mut() else { return };
    let schemas = components.entry("schemas").or_insert_with(|| json!({}));
    if let Some(schemas) = schemas.as_object_mut() {
        schemas.insert("Problem".into(), serde_json::to_value(Problem::schema()).unwrap_or_default());
        schemas.insert("FieldError".into(), serde_json::to_value(FieldError::schema()).unwrap_or_default());
    }
    let responses = components.entry("responses").or_insert_with(|| json!({}));
    if let Some(responses) = responses.as_object_mut() {
        for (status, name, description) in SHARED {
            let mut response = problem_response(description);
            if *status == "429" {
                response["headers"] = json!({"Retry-After": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer", "minimum": 1},
                }});
            }
            responses.insert((*name).into(), response);
        }
    }
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    })
}

/// Every list pages the same way ([`crate::page`]): `limit` is 1 to `MAX_LIMIT`, and
/// `cursor` is the opaque string the previous page gave.
fn paging_parameters(op: &mut Value) {
    let Some(Value::Array(params)) = op.get_mut("parameters") else { return };
    for p in params.iter_mut().filter(|p| p["in"] == "query") {
        match p["name"].as_str() {
            Some("limit") => {
                p["schema"] = json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": crate::page::MAX_LIMIT,
                                     "default": crate::page::DEFAULT_LIMIT});
                p["description"] = json!("Items per page.");
            }
            Some("cursor") => p["description"] = json!("The `next_cursor` of the previous page."),
            _ => {}
        }
    }
}

fn shape_operation(op: &mut Value, writes: bool) {
    paging_parameters(op);
    let has_body = op.get("requestBody").is_some();
    let secured = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|reqs| reqs.iter().any(|r| r.as_object().is_some_and(|r| !r.is_empty())));
    let params = op.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
    let has_in = |place: &str| params.iter().any(|p| p.get("in").and_then(Value::as_str) == Some(place));
    let (path_params, query_params) = (has_in("path"), has_in("query"));

    let responses = op.as_object_mut().map(|o| o.entry("responses").or_insert_with(|| json!({})));
    let Some(Value::Object(responses)) = responses else { return };
    for (status, response) in responses.iter_mut() {
        if let Some(Value::Object(links)) = response.get_mut("links") {
            links.values_mut().for_each(camel_case_link);
        }
        if status.starts_with('4') || status.starts_with('5') {
            as_problem(response, default_description(status));
        }
    }
    let mut wanted = vec!["429"];
    if has_body {
        wanted.extend(["400", "413", "415", "422"]);
    }
    if secured {
        wanted.push("401");
    }
    if path_params {
        wanted.push("404");
    }
    if query_params {
        wanted.push("422");
    }
    if writes {
        wanted.push("507");
    }
    for status in wanted {
        if !responses.contains_key(status) {
            let name = SHARED.iter().find(|(s, _, _)| *s == status).map(|(_, n, _)| *n).unwrap_or_default();
            responses.insert(status.into(), json!({"$ref": format!("#/components/responses/{name}")}));
        }
    }
}

/// utoipa 5 writes a Link Object's fields in snake case (`operation_id`); OpenAPI spells
/// them in camel case.
fn camel_case_link(link: &mut Value) {
    let Some(link) = link.as_object_mut() else { return };
    for (snake, camel) in
        [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
    {
        if let Some(value) = link.remove(snake) {
            link.insert(camel.into(), value);
        }
    }
}

/// An error answer declared by a handler keeps its description and becomes problem+json,
/// unless the handler declares a JSON body of another schema on purpose (the token
/// endpoint's RFC 6749 errors, which OAuth clients read).
fn as_problem(response: &mut Value, description: &str) {
    let Some(response) = response.as_object_mut() else { return };
    if response.contains_key("$ref") {
        return;
    }
    if response.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
        response.insert("description".into(), description.into());
    }
    let schema = &response.get("content").and_then(|c| c.get("application/json")).and_then(|j| j.get("schema"));
    if let Some(schema) = schema
        && schema.get("$ref").and_then(Value::as_str).is_some_and(|r| r != "#/components/schemas/Problem")
    {
        return;
    }
    let content = response.entry("content").or_insert_with(|| json!({}));
    let mut problem = Map::new();
    problem.insert(PROBLEM_JSON.into(), json!({"schema": {"$ref": "#/components/schemas/Problem"}}));
    *content = Value::Object(problem);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_of_another_declared_schema_keeps_its_content_type() {
        let doc = doc(json!({"responses": {
            "400": {"description": "RFC 6749", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenError"}}}},
            "401": {"description": "a problem", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
        }}));
        let responses = &doc["paths"]["/x/{id}"]["post"]["responses"];
        assert!(responses["400"]["content"]["application/json"].is_object(), "{responses}");
        assert!(responses["401"]["content"][PROBLEM_JSON].is_object(), "{responses}");
    }

    fn doc(op: Value) -> Value {
        let mut doc = json!({"openapi": "3.1.0", "paths": {"/x/{id}": {"post": op}}});
        conventions(&mut doc);
        doc
    }

    #[test]
    fn errors_are_problem_json_and_shared_answers_are_declared() {
        let doc = doc(json!({
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
            "security": [{"bearer": []}],
            "responses": {
                "201": {"description": "made", "content": {"application/json": {}},
                        "links": {"get": {"operation_id": "getX", "parameters": {"id": "$response.body#/id"}}}},
                "409": {"description": "taken", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
        }));
        let responses = &doc["paths"]["/x/{id}"]["post"]["responses"];
        assert!(responses["201"]["content"]["application/json"].is_object(), "success answers are left alone");
        assert_eq!(responses["201"]["links"]["get"]["operationId"], "getX", "links in OpenAPI's spelling");
        assert!(responses["409"]["content"][PROBLEM_JSON].is_object());
        assert!(responses["409"]["content"].get("application/json").is_none());
        assert_eq!(responses["409"]["description"], "taken");
        for status in ["400", "401", "404", "413", "415", "422", "429", "507"] {
            let target = responses[status]["$ref"].as_str().unwrap_or_else(|| panic!("{status} declared"));
            let name = target.rsplit('/').next().unwrap();
            assert!(doc["components"]["responses"][name]["content"][PROBLEM_JSON].is_object(), "{status}");
        }
        assert!(doc["components"]["schemas"]["Problem"]["properties"]["errors"].is_object());
    }

    #[test]
    fn an_open_operation_without_body_or_parameters_only_gets_the_rate_limit_and_a_full_disk() {
        let doc = doc(json!({"responses": {"200": {"description": "ok"}}}));
        let responses = doc["paths"]["/x/{id}"]["post"]["responses"].as_object().unwrap();
        let mut statuses: Vec<&str> = responses.keys().map(String::as_str).collect();
        statuses.sort();
        assert_eq!(statuses, ["200", "429", "507"], "a POST writes");
    }
}
