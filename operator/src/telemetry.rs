//! Logs, metrics and the probe server (`/healthz`, `/readyz`, `/metrics`).
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
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (containers).
    Json,
    /// Human-readable (terminals).
    Text,
}

/// Installs the global subscriber; `RUST_LOG` filters (default `info`).
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder (tests may ask for it more than once).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".into()),
                    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            builder.install_recorder().unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}

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
    let state = Probes { health, metrics: metrics_handle() };
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
