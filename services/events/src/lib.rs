//! The events service: the event lifecycle, search, registrations with a waitlist,
//! check-in and iCalendar.
//!
//! Rooms: [`model`] (types, validation), [`search`] (text analysis and query parsing),
//! [`store`] (trait and SQLite backend), [`api`] (handlers), and the helpers they use:
//! [`orgs`] (who manages an organization, asked over HTTP), [`ics`], [`views`],
//! [`compaction`] (keeps the text index in few segments), [`import`] (events from
//! outside calendars and feeds), [`notices`] (mail to attendees), [`webhooks`] (signed
//! posts to an organization's URLs), and
//! [`fixtures`] (a seeded corpus for tests and benchmarks).

mod api;
mod compaction;
pub mod fixtures;
mod ics;
pub mod import;
pub mod model;
mod notices;
pub mod search;
pub mod store;
mod ticket;
mod views;
mod webhooks;

use crate::store::{EventStore, SeriesStore, SourceStore, SqliteStore, WebhookStore};
use kit::platform::Context;
use std::sync::Arc;

/// The name this service answers to as an audience and in logs.
pub const SERVICE: &str = catalog::Service::Events.as_str();

/// Settings of the events service.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EventsConfig {
    /// Hosts that sources may be fetched from although their addresses are not public
    /// (`host` or `host:port`, comma-separated): an intranet calendar server, say. Every
    /// other private, loopback, link-local or metadata address is refused.
    #[arg(long, env = "VECHE_FETCH_ALLOW_HOSTS", default_value = "")]
    pub fetch_allow_hosts: kit::fetch::AllowList,

    /// How often to look for reminders due (seconds): each goes out within this much
    /// of a day before its event.
    #[arg(long, env = "VECHE_REMINDER_SCAN_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub reminder_scan_seconds: u64,

    /// The first pause (seconds) after a failed webhook delivery; each next one is twice
    /// as long, ten attempts in all.
    #[arg(long, env = "VECHE_WEBHOOK_RETRY_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub webhook_retry_seconds: u64,
}

/// Everything a handler needs, shared: axum hands each request its own clone of the
/// state, so cloning it must cost one reference count, not a copy of every field.
pub type App = Arc<AppState>;

pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub sources: Arc<dyn SourceStore>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub series: Arc<dyn SeriesStore>,
    pub importer: import::sync::Importer,
    pub orgs: clients::organizations::Organizations,
    /// Names of the people behind registrations.
    pub people: clients::people::Directory,
    pub views: views::Views,
    pub public_url: String,
}

pub async fn build(config: EventsConfig, ctx: &Context) -> anyhow::Result<kit::server::Service> {
    let sqlite = SqliteStore::open(ctx.db_path(SERVICE)).await?;
    let db = sqlite.db();
    clients::analytics::spawn_relay(ctx, SERVICE, db.clone());
    compaction::start(sqlite.clone());
    let sources: Arc<dyn SourceStore> = Arc::new(sqlite.clone());
    let webhooks: Arc<dyn WebhookStore> = Arc::new(sqlite.clone());
    let series: Arc<dyn SeriesStore> = Arc::new(sqlite.clone());
    let store: Arc<dyn EventStore> = Arc::new(sqlite);
    let fetcher = kit::fetch::Fetcher::new(config.fetch_allow_hosts, kit::fetch::Limits::default());
    let importer = import::sync::Importer::new(sources.clone(), fetcher);
    importer.clone().start();
    let dispatcher = webhooks::Dispatcher {
        store: webhooks.clone(),
        fetcher: importer.fetcher().clone(),
        retry_base: std::time::Duration::from_secs(config.webhook_retry_seconds.max(1)),
    };
    tokio::spawn(dispatcher.run());
    let people = clients::people::Directory::new(&ctx.common.platform.users_url(), ctx.service_tokens(SERVICE));
    let mailer = ctx.mailer()?;
    let notices =
        notices::Notices { store: store.clone(), people: people.clone(), public_url: ctx.common.platform.public_url() };
    tokio::spawn(kit::notify::run(SERVICE, db.clone(), mailer.clone(), notices.clone(), Default::default()));
    keep_series_expanded(series.clone());
    tokio::spawn(notices.remind(db, mailer, std::time::Duration::from_secs(config.reminder_scan_seconds.max(1))));
    let app = Arc::new(AppState {
        store: store.clone(),
        sources,
        webhooks,
        series: series.clone(),
        importer,
        orgs: clients::organizations::Organizations::new(
            ctx.common.platform.organizations_url(),
            ctx.service_tokens(SERVICE),
        ),
        people,
        views: views::Views::start(store.clone()),
        public_url: ctx.common.platform.public_url(),
    });
    Ok(ctx.service(SERVICE, api::router(app), api::openapi(), move || {
        let store = store.clone();
        async move { store.ping().await.map_err(|e| e.to_string()) }
    }))
}

/// Keeps every series expanded a year ahead as time passes: at start, then hourly.
fn keep_series_expanded(series: Arc<dyn SeriesStore>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = series.extend_series(kit::now_unix()).await {
                tracing::warn!(error = %e, "could not extend series");
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    });
}
