//! The organizations service: organizations with public profiles, their members and
//! roles, invitations by email, and the membership lookup other services ask ("is this
//! user an admin of that organization?").
//!
//! Rooms: [`model`] (types, validation, and the access policy [`model::allows`]),
//! [`store`] (trait and SQLite backend), [`api`] (handlers). This file assembles them.

mod api;
pub mod model;
mod notices;
mod store;

use crate::store::{OrganizationStore, SqliteStore};
use kit::platform::Context;
use std::sync::Arc;

/// The name this service answers to as an audience and in logs.
pub const SERVICE: &str = catalog::Service::Organizations.as_str();

/// A year: an invitation link older than that is more likely leaked than wanted.
const MAX_INVITATION_TTL: i64 = 365 * 24 * 3600;

/// Settings of the organizations service. Every flag is prefixed so it cannot clash with
/// another service's when the binary flattens them all into one command line.
#[derive(Debug, Clone, clap::Args)]
pub struct OrganizationsConfig {
    /// How long an invitation link stays valid, in seconds (default: 7 days).
    #[arg(id = "organizations_invitation_ttl", long = "organizations-invitation-ttl", env = "VECHE_ORGANIZATIONS_INVITATION_TTL", default_value_t = 7 * 24 * 3600)]
    pub invitation_ttl: i64,
}

impl OrganizationsConfig {
    /// Defaults for tests and embedding: everything as on the command line without flags.
    pub fn defaults() -> Self {
        use clap::{Args, FromArgMatches};
        let cmd = Self::augment_args(clap::Command::new("organizations").no_binary_name(true));
        let matches = cmd.try_get_matches_from(Vec::<String>::new()).expect("defaults parse");
        Self::from_arg_matches(&matches).expect("defaults parse")
    }
}

/// Everything a handler needs, shared: axum hands each request its own clone of the
/// state, so cloning it must cost one reference count, not a copy of every field.
pub type App = Arc<AppState>;

pub struct AppState {
    pub store: Arc<dyn OrganizationStore>,
    pub mailer: kit::mail::Mailer,
    /// Where people reach the platform: the base of invitation links.
    pub public_url: String,
    pub invitation_ttl: i64,
    /// Names (and addresses) of the people behind memberships.
    pub people: clients::people::Directory,
}

/// Opens the store under the data directory and assembles the router.
pub async fn build(config: OrganizationsConfig, ctx: &Context) -> anyhow::Result<kit::server::Service> {
    anyhow::ensure!(
        (1..=MAX_INVITATION_TTL).contains(&config.invitation_ttl),
        "the invitation lifetime must be between 1 second and a year"
    );
    let store = SqliteStore::open(ctx.db_path(SERVICE)).await?;
    clients::analytics::spawn_relay(ctx, SERVICE, store.db());
    let mailer = ctx.mailer()?;
    let people = clients::people::Directory::new(&ctx.common.platform.users_url(), ctx.service_tokens(SERVICE));
    let shared: Arc<dyn store::OrganizationStore> = Arc::new(store.clone());
    let notices = notices::Notices { store: shared.clone(), people: people.clone() };
    tokio::spawn(kit::notify::run(SERVICE, store.db(), mailer.clone(), notices, Default::default()));
    let app = Arc::new(AppState {
        store: shared,
        mailer,
        public_url: ctx.common.platform.public_url(),
        invitation_ttl: config.invitation_ttl,
        people,
    });

    let store = app.store.clone();
    Ok(ctx.service(SERVICE, api::router(app), api::openapi(), move || {
        let store = store.clone();
        async move { store.ping().await.map_err(|e| e.to_string()) }
    }))
}
