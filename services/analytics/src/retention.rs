//! The retention job: deletes raw facts older than the retention period, now and then.
//! Rollups are never pruned; reports over any past period keep working.

use crate::store::AnalyticsStore;
use std::sync::Arc;
use std::time::Duration;

/// Prunes at start and then every `every`, for as long as the process lives.
pub async fn run(store: Arc<dyn AnalyticsStore>, retention: i64, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.prune(kit::now_unix() - retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned raw facts past their retention"),
            Err(e) => tracing::warn!(error = %e, "could not prune raw facts"),
        }
    }
}
