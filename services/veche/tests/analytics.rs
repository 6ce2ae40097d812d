//! Analytics inside `veche up`: its reports behind the gateway, for admins only, and its
//! paths in the merged API description.

mod common;

use common::*;

#[tokio::test]
async fn platform_reports_answer_admins_behind_the_gateway() {
    let v = Veche::start();
    let path = "/api/v1/analytics/platform?bucket=week";
    send(client().get(v.url(path))).await.assert_problem(401);
    let (user, _) = signed_up(&v, "curious@example.org").await;
    get_auth(&v, path, &user).await.assert_problem(403);
    let root = admin(&v, "root@example.org").await;
    let r = get_auth(&v, path, &root).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["totals"]["sign_ups"].is_i64(), "{r:?}");
    assert!(!r.body["series"].as_array().unwrap().is_empty(), "{r:?}");
    get_auth(&v, "/api/v1/analytics/platform?bucket=fortnight", &root).await.assert_problem(422);
    // Deliveries are for services on the internal network, not for the edge.
    let edge = send(client().post(v.url("/internal/v1/analytics/facts")).bearer_auth(&root)).await;
    assert_eq!(edge.status, 404, "{edge:?}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_analytics_api() {
    let v = Veche::start();
    let doc = send(client().get(v.url("/openapi.json"))).await.body;
    for path in [
        "/api/v1/analytics/events/{id}",
        "/api/v1/analytics/organizations/{id}",
        "/api/v1/analytics/platform",
        "/internal/v1/analytics/facts",
        "/api/v1/events",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["components"]["schemas"]["Report"].is_object());
    assert!(doc["components"]["schemas"]["FactBatch"].is_object());
}
