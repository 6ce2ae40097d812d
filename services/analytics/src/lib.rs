//! The analytics service: domain facts from the other services, counted exactly once,
//! rolled up by hour, and reported per event, per organization and for the platform.
//!
//! Rooms: [`model`] (facts and their validation, rollup counters, report windows and
//! buckets), [`store`] (trait and SQLite backend), [`api`] (handlers), [`retention`]
//! (the raw-fact pruning job). This file assembles them.
//!
//! What exists:
//! - `POST /internal/v1/analytics/facts`: a batch of up to 1,000 outbox facts from the
//!   users, organizations and events services (their service tokens only). One bad fact
//!   refuses the whole batch; a batch is stored in one transaction; facts are keyed by id,
//!   and only a fact not seen before bumps the hourly rollups, so redelivery is harmless.
//!   The batch must also fit the platform's body limit (`VECHE_BODY_LIMIT`, 256 KiB by
//!   default, enforced for every route by `kit::server`, which has no per-route override):
//!   1,000 registration facts with all three ids take about 280 KB, so the relay must size
//!   its batches by bytes too (or this service run with a larger limit).
//! - Reports over `from`/`to` in `hour`, `day` or `week` buckets (UTC, weeks from
//!   Monday), JSON `{totals, series}` or CSV, for platform administrators.
//! - Raw facts are pruned after `--analytics-retention-days`; rollups stay. A fact older
//!   than what was pruned is answered `expired` and not counted.
//!
//! What comes next (issue 5): the relay that reads each service's outbox and delivers
//! here (the events service's facts carry no `organization_id` yet, so the relay or the
//! events service must add it for event facts to reach organization reports);
//! `POST /api/v1/analytics/track` for browsers (visitor ids, rate limits, bot filtering);
//! organization admins reading their own organizations' reports (via the organizations
//! membership lookup); the funnel, top events, attendance rate, active users and top
//! organizations; delivery lag metrics; the `/dashboard` page; and the SIGKILL test.

mod api;
mod limits;
pub mod model;
mod retention;
mod sketch;
pub mod store;

use crate::store::{AnalyticsStore, SqliteStore};
use kit::platform::Context;
use std::sync::Arc;
use std::time::Duration;

/// The name this service answers to as an audience and in logs.
pub const SERVICE: &str = catalog::Service::Analytics.as_str();

/// Ten years: longer than that, raw facts are an archive, not a retention period.
const MAX_RETENTION_DAYS: u32 = 3650;

/// Settings of the analytics service. Every flag is prefixed so it cannot clash with
/// another service's when the binary flattens them all into one command line.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyticsConfig {
    /// How long raw facts are kept, in days; hourly rollups are kept for ever.
    #[arg(
        id = "analytics_retention_days",
        long = "analytics-retention-days",
        env = "VECHE_ANALYTICS_RETENTION_DAYS",
        default_value_t = 90
    )]
    pub retention_days: u32,

    /// How often expired raw facts are deleted, in seconds.
    #[arg(
        id = "analytics_prune_interval",
        long = "analytics-prune-interval",
        env = "VECHE_ANALYTICS_PRUNE_INTERVAL",
        default_value_t = 3600
    )]
    pub prune_interval: u64,

    /// Batches per second one client address may send to `/track` (0: no limit).
    #[arg(
        id = "analytics_track_rps",
        long = "analytics-track-rps",
        env = "VECHE_ANALYTICS_TRACK_RPS",
        default_value_t = 2
    )]
    pub track_rps: u32,

    /// Batches one client address may send to `/track` at once before the rate applies.
    #[arg(
        id = "analytics_track_burst",
        long = "analytics-track-burst",
        env = "VECHE_ANALYTICS_TRACK_BURST",
        default_value_t = 20
    )]
    pub track_burst: u32,
}

impl AnalyticsConfig {
    /// Defaults for tests and embedding: everything as on the command line without flags.
    pub fn defaults() -> Self {
        use clap::{Args, FromArgMatches};
        let cmd = Self::augment_args(clap::Command::new("analytics").no_binary_name(true));
        let matches = cmd.try_get_matches_from(Vec::<String>::new()).expect("defaults parse");
        Self::from_arg_matches(&matches).expect("defaults parse")
    }

    /// The retention period in seconds.
    pub fn retention(&self) -> i64 {
        i64::from(self.retention_days) * 24 * 3600
    }
}

/// Everything a handler needs, shared: axum hands each request its own clone of the
/// state, so cloning it must cost one reference count, not a copy of every field.
pub type App = Arc<AppState>;

pub struct AppState {
    pub store: Arc<dyn AnalyticsStore>,
    pub track_limits: Arc<limits::TrackLimits>,
    /// Who manages which organization (for organization admins' reports).
    pub orgs: clients::organizations::Organizations,
    /// Whether the client's address comes from `X-Forwarded-For` (behind the gateway).
    pub proxies: kit::forwarded::TrustedProxies,
}

/// Opens the store under the data directory, starts the retention job and assembles the
/// router.
pub async fn build(config: AnalyticsConfig, ctx: &Context) -> anyhow::Result<kit::server::Service> {
    anyhow::ensure!(
        (1..=MAX_RETENTION_DAYS).contains(&config.retention_days),
        "the raw-fact retention must be between 1 day and {MAX_RETENTION_DAYS} days"
    );
    anyhow::ensure!(config.prune_interval >= 1, "the prune interval must be at least a second");
    let store = SqliteStore::open(ctx.db_path(SERVICE)).await?;
    let app = Arc::new(AppState {
        store: Arc::new(store),
        track_limits: limits::TrackLimits::new(config.track_rps, config.track_burst),
        orgs: clients::organizations::Organizations::new(
            ctx.common.platform.organizations_url(),
            ctx.service_tokens(SERVICE),
        ),
        proxies: ctx.common.http.proxies(),
    });
    tokio::spawn(retention::run(app.store.clone(), config.retention(), Duration::from_secs(config.prune_interval)));

    let store = app.store.clone();
    Ok(ctx.service(SERVICE, api::router(app), api::openapi(), move || {
        let store = store.clone();
        async move { store.ping().await.map_err(|e| e.to_string()) }
    }))
}
