//! One rule for query strings on every operation: a parameter the OpenAPI document does
//! not declare is refused with a problem naming it (a typo such as `?sortt=date` must not
//! silently return an unsorted page). The document is the single source: an operation's
//! declared query parameters are exactly what it accepts, except where an operation is
//! marked `x-open-query` (called by outside parties that add parameters of their own).

use crate::problem::ApiError;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Declared query parameter names by path template, then method (looked up by `&str`, so
/// a request allocates nothing to be judged).
#[derive(Debug, Default, Clone)]
pub struct QueryRules(Arc<HashMap<String, HashMap<&'static str, HashSet<String>>>>);

impl QueryRules {
    /// Reads the rules from a (JSON) OpenAPI document.
    pub fn from_document(doc: &Value) -> Self {
        let mut rules = HashMap::new();
        let Some(paths) = doc["paths"].as_object() else { return Self::default() };
        for (path, item) in paths {
            let shared = query_names(&item["parameters"]);
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                let Some(op) = item.get(method) else { continue };
                // An operation others call with their own parameters (an identity
                // provider's callback: Google adds `authuser`, Keycloak `session_state`).
                if op["x-open-query"] == true {
                    continue;
                }
                let mut names = shared.clone();
                names.extend(query_names(&op["parameters"]));
                rules.entry(path.clone()).or_insert_with(HashMap::new).insert(upper(method), names);
            }
        }
        Self(Arc::new(rules))
    }

    /// The first parameter of `query` that the operation at (`method`, `route`) does not
    /// declare. Routes the document does not describe (ops endpoints, pages) are not judged.
    pub fn unknown<'q>(&self, method: &str, route: &str, query: &'q str) -> Option<std::borrow::Cow<'q, str>> {
        let declared = self.0.get(route)?.get(method)?;
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(name, _)| name)
            .find(|name| !declared.contains(name.as_ref()))
    }
}

fn upper(method: &str) -> &'static str {
    match method {
        "get" => "GET",
        "put" => "PUT",
        "post" => "POST",
        "delete" => "DELETE",
        "patch" => "PATCH",
        "head" => "HEAD",
        _ => "OPTIONS",
    }
}

fn query_names(parameters: &Value) -> HashSet<String> {
    parameters
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

/// The middleware: refuses a request whose query names an undeclared parameter.
pub async fn refuse_unknown(rules: QueryRules, req: Request, next: Next) -> Response {
    if let (Some(query), Some(route)) = (req.uri().query(), req.extensions().get::<MatchedPath>())
        && let Some(name) = rules.unknown(req.method().as_str(), route.as_str(), query)
    {
        return ApiError::field(name.into_owned(), "is not a parameter of this operation").into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_declared_parameters_pass() {
        let doc = json!({"paths": {
            "/events": {"get": {"parameters": [{"in": "query", "name": "q"}, {"in": "query", "name": "limit"}]}},
            "/events/{id}": {
                "parameters": [{"in": "path", "name": "id"}],
                "get": {},
                "patch": {"parameters": [{"in": "query", "name": "dry_run"}]}
            }
        }});
        let rules = QueryRules::from_document(&doc);
        assert_eq!(rules.unknown("GET", "/events", "q=jazz&limit=5"), None);
        assert_eq!(rules.unknown("GET", "/events", "q=jazz&sortt=date").as_deref(), Some("sortt"));
        assert_eq!(rules.unknown("GET", "/events/{id}", "id=1").as_deref(), Some("id"), "path params are not query");
        assert_eq!(rules.unknown("PATCH", "/events/{id}", "dry_run=true"), None);
        assert_eq!(rules.unknown("GET", "/events/{id}", "dry_run=true").as_deref(), Some("dry_run"));
        assert_eq!(rules.unknown("GET", "/metrics", "anything=1"), None, "undocumented routes are not judged");
        assert_eq!(rules.unknown("GET", "/events", "li%6Dit=5"), None, "names are percent-decoded");
    }
}
