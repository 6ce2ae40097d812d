//! The gateway's route table of a platform: the platform's routes ([`catalog::ROUTES`])
//! to the services it runs. The gateway reads it as JSON from the route ConfigMap
//! (`VECHE_GATEWAY_ROUTES`); the longest matching prefix wins.

use super::Names;
use crate::crd::ServiceKind;
use serde::Serialize;
use std::collections::BTreeMap;

pub use catalog::{ROUTES as DEFAULT_ROUTES, Route};

/// The file the gateway reads.
#[derive(Debug, Serialize)]
pub struct RouteTable<'a> {
    pub upstreams: BTreeMap<ServiceKind, Vec<String>>,
    pub routes: Vec<&'a Route>,
}

/// The route table of a platform: routes to disabled services are left out (the
/// gateway then answers 404 for them rather than failing to connect).
pub fn route_table<'a>(names: &Names, enabled: &[ServiceKind], routes: &'a [Route]) -> RouteTable<'a> {
    let upstreams = enabled
        .iter()
        .filter(|kind| **kind != ServiceKind::Gateway)
        .map(|kind| (*kind, vec![names.service_url(*kind)]))
        .collect();
    let routes = routes.iter().filter(|route| enabled.contains(&route.upstream)).collect();
    RouteTable { upstreams, routes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names() -> Names {
        Names { platform: "demo".into(), namespace: "apps".into() }
    }

    #[test]
    fn route_table_matches_the_gateway_contract() {
        let table = route_table(&names(), &ServiceKind::ALL, DEFAULT_ROUTES);
        let value = serde_json::to_value(&table).unwrap();
        assert_eq!(value["upstreams"]["users"], json!(["http://demo-users.apps.svc:8080"]));
        assert_eq!(value["upstreams"]["analytics"], json!(["http://demo-analytics.apps.svc:8080"]));
        assert!(value["upstreams"].get("gateway").is_none(), "the gateway is nobody's upstream");
        assert_eq!(value["routes"][0], json!({"prefix": "/api/v1/auth", "upstream": "users", "auth": "optional"}));
        assert_eq!(value["routes"].as_array().unwrap().len(), catalog::ROUTES.len());
        assert_eq!(
            value["routes"][7],
            json!({"prefix": "/api/v1/organizations/*/sources", "upstream": "events", "auth": "required"})
        );
        assert_eq!(value["routes"][5], json!({"prefix": "/api/v1/calendar", "upstream": "events", "auth": "none"}));
    }

    #[test]
    fn disabled_services_get_no_routes() {
        let enabled = [ServiceKind::Users, ServiceKind::Organizations, ServiceKind::Gateway];
        let table = route_table(&names(), &enabled, DEFAULT_ROUTES);
        assert!(table.routes.iter().all(|r| r.upstream != ServiceKind::Events && r.upstream != ServiceKind::Analytics));
        assert_eq!(table.upstreams.len(), 2);
    }
}
