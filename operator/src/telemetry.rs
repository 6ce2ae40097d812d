//! The operator's metrics and its probe server (`/healthz`, `/readyz`, `/metrics`); logs,
//! the recorder and the stop signal are set up as in every Veche process (the `process` crate).
//!
//! Metric names (Prometheus):
//! - `veche_operator_reconciles_total{controller}`
//! - `veche_operator_reconcile_failures_total{controller, error}`: `error` is the
//!   [`crate::controller::Error`] variant, so each failure mode is countable by name
//! - `veche_operator_reconcile_duration_seconds{controller}` (histogram)
//! - `veche_operator_leader` (1 while this replica leads)

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Counts one reconcile of `controller` and how long it took.
pub fn record_reconcile(controller: &'static str, took: Duration, error: Option<&'static str>) {
    metrics::counter!("veche_operator_reconciles_total", "controller" => controller).increment(1);
    metrics::histogram!("veche_operator_reconcile_duration_seconds", "controller" => controller)
        .record(took.as_secs_f64());
    if let Some(error) = error {
        metrics::counter!("veche_operator_reconcile_failures_total", "controller" => controller, "error" => error)
            .increment(1);
    }
}

/// The watched Platforms by readiness (`ready="true"` / `"false"`).
pub fn record_platforms(ready: u64, not_ready: u64) {
    metrics::gauge!("veche_operator_platforms", "ready" => "true").set(ready as f64);
    metrics::gauge!("veche_operator_platforms", "ready" => "false").set(not_ready as f64);
}

/// What the probes report. Ready means: this replica can do its job, either leading
/// with its controllers running or standing by with the API server reachable.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct Probes {
    health: Health,
    metrics: PrometheusHandle,
}

/// The probe and metrics router.
pub fn router(health: Health) -> Router {
    let state = Probes { health, metrics: process::metrics_handle() };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(p): State<Probes>| async move {
                if p.health.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .route("/metrics", get(|State(p): State<Probes>| async move { p.metrics.render() }))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let response = router.oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readyz_follows_health_and_metrics_count_reconciles() {
        let health = Health::default();
        assert_eq!(get(router(health.clone()), "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(router(health.clone()), "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        health.set_ready(true);
        assert_eq!(get(router(health.clone()), "/readyz").await.0, StatusCode::OK);
        record_reconcile("test", Duration::from_millis(3), Some("Kube"));
        let (status, body) = get(router(health), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("veche_operator_reconciles_total{controller=\"test\"}"), "{body}");
        assert!(body.contains("veche_operator_reconcile_failures_total{controller=\"test\",error=\"Kube\"}"), "{body}");
        assert!(body.contains("veche_operator_reconcile_duration_seconds_bucket"), "{body}");
    }
}
