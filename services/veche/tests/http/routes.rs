//! The route table file the operator renders into a Platform's ConfigMap is read by the
//! gateway (`VECHE_GATEWAY_ROUTES`): both are built from the catalogue's routes, and the
//! file must parse as the gateway's table and route like `veche up` does, or a page or API
//! that works on a laptop 404s in a cluster.

use catalog::Service;
use operator::render::Names;

#[test]
fn the_gateway_reads_the_operators_file_and_routes_like_veche_up() {
    let names = Names { platform: "demo".into(), namespace: "apps".into() };
    let rendered =
        operator::render::routes::route_table(&names, &Service::ALL, operator::render::routes::DEFAULT_ROUTES);
    let file = serde_json::to_string(&rendered).unwrap();
    let read = gateway::model::RouteTable::from_json(&file).expect("the gateway takes the operator's file");

    let laptop = gateway::model::RouteTable::platform(|s| format!("http://demo-{s}.apps.svc:8080"));
    assert!(!laptop.routes.is_empty());
    assert_eq!(read, laptop, "the cluster's table differs from veche up's");
    for path in ["/api/v1/users/me/organizations", "/api/v1/users/me", "/api/v1/calendar/abc.ics", "/dashboard/x"] {
        let (cluster, local) = (gateway::model::Router::new(&read), gateway::model::Router::new(&laptop));
        assert_eq!(cluster.find(path), local.find(path), "{path}");
    }
}
