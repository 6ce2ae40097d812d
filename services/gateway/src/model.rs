//! The route table: which upstream serves a path prefix, and whether it needs a token.
//! It comes from a JSON file (the operator renders it into a ConfigMap) or, in `veche up`,
//! from [`RouteTable::platform`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use catalog::Access;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A path prefix on segment boundaries: `/api/v1/events` serves `/api/v1/events` and
    /// `/api/v1/events/...`, not `/api/v1/eventsfoo`. A `*` segment matches any one
    /// segment: `/api/v1/organizations/*/sources`.
    pub prefix: String,
    pub upstream: String,
    pub auth: Access,
    /// Largest request body, in bytes (default: the gateway's body limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    /// Upstream name → its endpoints (`http://host:port`), used in turn.
    pub upstreams: BTreeMap<String, Vec<String>>,
    pub routes: Vec<Route>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TableError {
    #[error("route {0}: the prefix must start with `/` and not end with one (`*` stands for a whole segment)")]
    Prefix(String),
    #[error("route {0}: no upstream named `{1}`")]
    UnknownUpstream(String, String),
    #[error("route {0} is listed twice")]
    Duplicate(String),
    #[error("upstream `{0}`: {1}")]
    Endpoint(String, String),
}

impl RouteTable {
    /// The platform's routes ([`catalog::ROUTES`]), with each domain service's endpoints
    /// from `endpoint(service)`.
    pub fn platform(endpoint: impl Fn(&str) -> String) -> Self {
        Self::of(catalog::ROUTES, endpoint)
    }

    /// A table of `routes`, with each domain service's endpoints from `endpoint(service)`.
    pub fn of(routes: &[catalog::Route], endpoint: impl Fn(&str) -> String) -> Self {
        let upstreams =
            catalog::Service::DOMAIN.into_iter().map(|s| (s.as_str().to_owned(), vec![endpoint(s.as_str())])).collect();
        let routes = routes
            .iter()
            .map(|r| Route {
                prefix: r.prefix.into(),
                upstream: r.upstream.as_str().into(),
                auth: r.access,
                max_body_bytes: None,
            })
            .collect();
        Self { upstreams, routes }
    }

    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let table: Self = serde_json::from_str(text)?;
        table.validate()?;
        Ok(table)
    }

    pub fn validate(&self) -> Result<(), TableError> {
        let mut seen = std::collections::HashSet::new();
        for route in &self.routes {
            let p = &route.prefix;
            let stray_star = p.split('/').any(|segment| segment.contains('*') && segment != "*");
            if !p.starts_with('/') || (p.len() > 1 && p.ends_with('/')) || stray_star {
                return Err(TableError::Prefix(p.clone()));
            }
            if !self.upstreams.contains_key(&route.upstream) {
                return Err(TableError::UnknownUpstream(p.clone(), route.upstream.clone()));
            }
            if !seen.insert(p.as_str()) {
                return Err(TableError::Duplicate(p.clone()));
            }
        }
        for (name, endpoints) in &self.upstreams {
            if endpoints.is_empty() {
                return Err(TableError::Endpoint(name.clone(), "no endpoints".into()));
            }
            for e in endpoints {
                let url =
                    url::Url::parse(e).map_err(|err| TableError::Endpoint(name.clone(), format!("{e}: {err}")))?;
                if url.scheme() != "http" || url.host().is_none() || url.path() != "/" {
                    return Err(TableError::Endpoint(name.clone(), format!("{e}: expected http://host:port")));
                }
            }
        }
        Ok(())
    }
}

/// Routes sorted for lookup: longest prefix first.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(table: &RouteTable) -> Self {
        let mut routes = table.routes.clone();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self { routes }
    }

    /// The route serving `path`: the longest prefix that matches on a segment boundary.
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.find_index(path).map(|i| &self.routes[i])
    }

    /// The position of the route for `path` in [`Router::routes`] (for state kept per
    /// route alongside, like its meters).
    pub fn find_index(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|r| matches_prefix(&r.prefix, path))
    }

    /// The routes, longest prefix first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// Whether `path` is under `prefix` on segment boundaries; a `*` segment of the prefix
/// stands for any one segment (`/api/v1/organizations/*/sources`).
fn matches_prefix(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let under = |rest: &str| rest.is_empty() || rest.starts_with('/');
    if !prefix.contains('*') {
        return path.strip_prefix(prefix).is_some_and(under);
    }
    let mut rest = path;
    for want in prefix.split('/').skip(1) {
        let Some(after) = rest.strip_prefix('/') else { return false };
        let (segment, tail) = after.split_at(after.find('/').unwrap_or(after.len()));
        if segment.is_empty() || (want != "*" && want != segment) {
            return false;
        }
        rest = tail;
    }
    under(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::platform(|s| format!("http://{s}:8080"))
    }

    #[test]
    fn longest_prefix_on_segment_boundaries_wins() {
        let router = Router::new(&table());
        let upstream = |path: &str| router.find(path).map(|r| r.upstream.as_str());
        assert_eq!(upstream("/api/v1/users/me"), Some("users"));
        assert_eq!(upstream("/api/v1/users/me/organizations"), Some("organizations"));
        assert_eq!(upstream("/api/v1/users/me/registrations/x"), Some("events"));
        assert_eq!(upstream("/api/v1/events"), Some("events"));
        assert_eq!(upstream("/api/v1/events/abc.ics"), Some("events"));
        assert_eq!(upstream("/api/v1/eventsfoo"), None);
        assert_eq!(upstream("/.well-known/jwks.json"), Some("users"));
        assert_eq!(upstream("/api/v2/events"), None);
        // A `*` segment: an organization's sources belong to the events service.
        assert_eq!(upstream("/api/v1/organizations/42/sources"), Some("events"));
        assert_eq!(upstream("/api/v1/organizations/42/sources/7/sync"), Some("events"));
        assert_eq!(upstream("/api/v1/organizations/42/sourcesx"), Some("organizations"));
        assert_eq!(upstream("/api/v1/organizations//sources"), Some("organizations"));
        assert_eq!(upstream("/api/v1/organizations/42/members"), Some("organizations"));
        assert_eq!(upstream("/api/v1/organizations/sources"), Some("organizations"));
        assert_eq!(upstream("/"), None);
    }

    #[test]
    fn the_calendar_feed_needs_no_token_but_the_rest_of_me_does() {
        let router = Router::new(&table());
        assert_eq!(router.find("/api/v1/calendar/abc.ics").unwrap().auth, Access::None);
        assert_eq!(router.find("/api/v1/calendar/abc.ics").unwrap().upstream, "events");
        assert_eq!(router.find("/api/v1/users/me/calendar").unwrap().auth, Access::Required);
        assert_eq!(router.find("/api/v1/users/me/preferences").unwrap().auth, Access::Required);
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let mut t = table();
        t.routes[0].prefix = "api".into();
        assert_eq!(t.validate(), Err(TableError::Prefix("api".into())));
        t.routes[0].prefix = "/api/v1/organizations/x*/sources".into();
        assert!(matches!(t.validate(), Err(TableError::Prefix(_))), "a star stands for a whole segment");
        let mut t = table();
        t.routes[0].upstream = "nowhere".into();
        assert!(matches!(t.validate(), Err(TableError::UnknownUpstream(_, _))));
        let mut t = table();
        t.routes.push(t.routes[0].clone());
        assert!(matches!(t.validate(), Err(TableError::Duplicate(_))));
        let mut t = table();
        t.upstreams.insert("users".into(), vec!["ftp://x".into()]);
        assert!(matches!(t.validate(), Err(TableError::Endpoint(_, _))));
        assert!(RouteTable::from_json(r#"{"upstreams": {}, "routes": [], "extra": 1}"#).is_err());
    }

    #[test]
    fn the_file_format_round_trips() {
        let json = serde_json::to_string(&table()).unwrap();
        assert_eq!(RouteTable::from_json(&json).unwrap(), table());
    }
}
