//! The gateway's built-in route table (what `veche up` routes) and the one the operator
//! renders into a Platform's ConfigMap are written in two crates; they must say the same,
//! or a page or API that works on a laptop 404s in a cluster.

use std::collections::BTreeSet;

#[test]
fn the_operator_routes_what_the_gateway_routes() {
    let gateway: BTreeSet<(String, String, String)> = gateway::model::RouteTable::platform(|_| String::new())
        .routes
        .into_iter()
        .map(|r| (r.prefix, r.upstream, serde_json::to_string(&r.auth).unwrap()))
        .collect();
    let operator: BTreeSet<(String, String, String)> = operator::render::routes::DEFAULT_ROUTES
        .iter()
        .map(|r| (r.prefix.to_owned(), r.upstream.as_str().to_owned(), serde_json::to_string(&r.auth).unwrap()))
        .collect();
    assert!(!gateway.is_empty());
    assert_eq!(gateway, operator, "the two route lists differ");
}
