//! The users service: accounts, sessions, profiles, preferences, administration, and the
//! platform's token issuer (JWKS, OpenID configuration, service tokens).
//!
//! Rooms: [`model`] (types, validation), [`store`] (trait and SQLite backend), [`api`]
//! (handlers), and the helpers they use: [`keys`], [`tokens`], [`password`],
//! [`second_factor`] (TOTP and recovery codes), [`throttle`], [`hash_limits`] and
//! [`ended`] (sessions ended before their tokens expire). This file assembles them.

mod api;
mod ended;
mod external;
mod hash_limits;
pub mod keys;
pub mod model;
pub mod password;
pub mod providers;
mod second_factor;
mod store;
mod throttle;
mod tokens;

use crate::keys::{KeyRing, RotationPolicy};
use crate::store::{CachedStore, NewUser, SecondFactorStore, SqliteStore, UserStore};
use kit::auth::{JwtLayer, KeySource, Verifier};
use kit::platform::Context;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The name this service answers to as an audience and in logs.
pub const SERVICE: &str = catalog::Service::Users.as_str();

/// Settings of the users service.
#[derive(Debug, Clone, clap::Args)]
pub struct UsersConfig {
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = catalog::env::ACCESS_TOKEN_TTL, default_value_t = 900)]
    pub access_token_ttl: i64,

    /// Lifetime of a session without use (each refresh extends it), in seconds.
    #[arg(long, env = catalog::env::REFRESH_TOKEN_TTL, default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl: i64,

    /// Lifetime of service tokens, in seconds.
    #[arg(long, env = "VECHE_SERVICE_TOKEN_TTL", default_value_t = 300)]
    pub service_token_ttl: i64,

    /// Directory of signing keys (`key-<unix time>.pem`); default `<data dir>/keys`.
    #[arg(long, env = catalog::env::SIGNING_KEYS_DIR)]
    pub signing_keys_dir: Option<PathBuf>,

    /// Rotate the signing key after this many days (0: never rotate here, e.g. when the
    /// operator rotates the Secret).
    #[arg(long, env = catalog::env::KEY_ROTATION_DAYS, default_value_t = 90)]
    pub key_rotation_days: i64,

    /// Refuse to log in accounts whose email is not verified.
    #[arg(long, env = "VECHE_REQUIRE_VERIFIED_EMAIL", default_value_t = false)]
    pub require_verified_email: bool,

    /// Registrations and password resets (each an argon2id hash) one client address may
    /// make per second once its burst is spent (0: no limit).
    #[arg(long, env = "VECHE_PASSWORD_HASH_RPS", default_value_t = 1)]
    pub password_hash_rps: u32,

    /// How many registrations and password resets one client address may make at once
    /// before the rate applies.
    #[arg(long, env = "VECHE_PASSWORD_HASH_BURST", default_value_t = 10)]
    pub password_hash_burst: u32,

    /// Shortest password accepted.
    #[arg(long, env = "VECHE_PASSWORD_MIN_LENGTH", default_value_t = 12)]
    pub password_min_length: usize,

    /// Email of an administrator to create at start when there is none.
    #[arg(long, env = "VECHE_BOOTSTRAP_ADMIN_EMAIL")]
    pub bootstrap_admin_email: Option<String>,

    /// Password of that administrator (from a Secret; never logged).
    #[arg(long, env = "VECHE_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true)]
    pub bootstrap_admin_password: Option<String>,

    /// The key (32 bytes) that seals second-factor secrets in the database; created on
    /// first start when missing. Default `<data dir>/second-factor.key`. Keep it apart
    /// from database backups.
    #[arg(long, env = "VECHE_SECOND_FACTOR_KEY_FILE")]
    pub second_factor_key_file: Option<PathBuf>,

    /// Platform administrators act as administrators only after logging in with a second
    /// factor: until they enrol one, their tokens carry no `admin` role.
    #[arg(long, env = "VECHE_REQUIRE_ADMIN_SECOND_FACTOR", default_value_t = false)]
    pub require_admin_second_factor: bool,

    /// Identity providers people may sign in with: a JSON array of `{id, name, kind:
    /// "oidc" | "github", issuer (oidc), client_id, client_secret (or client_secret_env:
    /// the variable holding it), scopes?, domains?,
    /// authorization_url?, token_url?, api_url? (github)}`. Each provider
    /// must know Veche's callback, `<public URL>/api/v1/auth/oauth/<id>/callback`.
    #[arg(long, env = catalog::env::AUTH_PROVIDERS, hide_env_values = true, value_parser = providers::parse_providers, default_value = "")]
    pub auth_providers: providers::Providers,

    /// Frontend pages a sign-in through a provider may return to (exact URIs,
    /// comma-separated); the dashboard (`<public URL>/dashboard`) always may.
    #[arg(long, env = catalog::env::AUTH_REDIRECT_URIS, value_parser = providers::parse_return_addresses, default_value = "")]
    pub auth_redirect_uris: providers::ReturnAddresses,

    /// Service clients allowed to get service tokens: `name=secret,name=secret`.
    #[arg(long, env = catalog::env::SERVICE_CLIENTS, hide_env_values = true, value_parser = parse_clients, default_value = "")]
    pub service_clients: Clients,
}

/// Service clients by name, with their secrets.
#[derive(Clone, Default)]
pub struct Clients(pub HashMap<String, String>);

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

fn parse_clients(s: &str) -> Result<Clients, String> {
    let mut map = HashMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, secret) = pair.split_once('=').ok_or("expected name=secret pairs")?;
        if name.is_empty() || secret.len() < 16 {
            return Err(format!("client `{name}` needs a name and a secret of at least 16 characters"));
        }
        map.insert(name.to_owned(), secret.to_owned());
    }
    Ok(Clients(map))
}

impl UsersConfig {
    /// Defaults for tests and embedding: everything as on the command line without flags.
    pub fn defaults() -> Self {
        use clap::{Args, FromArgMatches};
        let cmd = Self::augment_args(clap::Command::new("users").no_binary_name(true));
        let matches = cmd.try_get_matches_from(Vec::<String>::new()).expect("defaults parse");
        Self::from_arg_matches(&matches).expect("defaults parse")
    }
}

/// Everything a handler needs, shared: axum hands each request its own clone of the
/// state, so cloning it must cost one reference count, not a copy of every field.
pub type App = Arc<AppState>;

pub struct AppState {
    pub store: Arc<dyn UserStore>,
    pub issuer: tokens::Issuer,
    pub passwords: password::Passwords,
    pub throttle: Arc<throttle::LoginThrottle>,
    /// Per-client allowance of new-password hashes (registration, password reset).
    pub hash_limits: Arc<hash_limits::HashLimits>,
    /// When each account was last sent mail of each kind (at most one a minute).
    pub mail_cooldown: Arc<std::sync::Mutex<HashMap<(uuid::Uuid, &'static str), i64>>>,
    pub mailer: kit::mail::Mailer,
    /// Seals and opens second-factor secrets.
    pub seal: Arc<second_factor::SealKey>,
    /// Speaks to the configured identity providers.
    pub providers: Arc<external::Providers>,
    /// Where sign-ins through providers may return to.
    pub auth_returns: providers::ReturnAddresses,
    pub config: Arc<UsersConfig>,
    /// Where people reach the platform: the base of links in mail.
    pub public_url: String,
    pub proxies: kit::forwarded::TrustedProxies,
    /// Sessions ended before their access tokens expire, which every verifier refuses.
    pub revoked: kit::revoked::RevokedSessions,
    /// Where deleted accounts leave their organizations (when that service runs).
    pub organizations: Option<clients::organizations::Organizations>,
}

/// The users service opened: its state, and the key ring that verifiers in the same
/// process read directly (`veche up`, `veche admin`).
pub struct Users {
    pub app: App,
    pub keys: KeyRing,
}

/// The service, as every service is built.
pub async fn build(config: UsersConfig, ctx: &Context) -> anyhow::Result<kit::server::Service> {
    open(config, ctx).await?.service().await
}

/// Opens the store and keys under the data directory and starts the service's background
/// work. Tokens are verified with the ring itself, not `ctx.keys`: this is the issuer. The
/// ended sessions are listed in `ctx.revoked`, which in-process verifiers share.
pub async fn open(config: UsersConfig, ctx: &Context) -> anyhow::Result<Users> {
    let common = &ctx.common;
    let data_dir = common.data_dir.as_path();
    let store = SqliteStore::open(ctx.db_path(SERVICE)).await?;
    clients::analytics::spawn_relay(ctx, SERVICE, store.db());
    let organizations = match (&common.platform.organizations_url, ctx.service_tokens(SERVICE)) {
        (Some(url), Some(tokens)) => Some(clients::organizations::Organizations::new(url.clone(), Some(tokens))),
        _ => {
            tracing::info!(
                "no organizations URL or client secret: deleted accounts are not taken out of organizations"
            );
            None
        }
    };
    let now = kit::now_unix();
    let rotate_after = if config.key_rotation_days > 0 { config.key_rotation_days * 86_400 } else { i64::MAX / 2 };
    let policy = RotationPolicy {
        rotate_after,
        publish_ahead: catalog::keys::PUBLISH_AHEAD,
        token_lifetime: config.access_token_ttl + catalog::keys::SKEW,
    };
    let key_dir = config.signing_keys_dir.clone().unwrap_or_else(|| data_dir.join("keys"));
    let generate = config.signing_keys_dir.is_none();
    let keys = KeyRing::load(&key_dir, policy, generate, now)?;
    if generate {
        keys.rotate(now)?;
    }
    let mailer = ctx.mailer()?;
    let seal_path = config.second_factor_key_file.clone().unwrap_or_else(|| data_dir.join("second-factor.key"));
    // A lost key locks every enrolled account out; a new one would only hide that.
    if !seal_path.exists() && store.any_second_factor().await? {
        anyhow::bail!(
            "{} is missing, and accounts have second factors sealed with it: restore the key \
             (VECHE_SECOND_FACTOR_KEY_FILE) rather than starting with a new one",
            seal_path.display()
        );
    }
    let seal = Arc::new(second_factor::SealKey::load_or_create(&seal_path)?);
    let mut auth_returns = config.auth_redirect_uris.clone();
    auth_returns.0.push(format!("{}/dashboard", common.platform.public_url()));
    let app = Arc::new(AppState {
        // Two seconds bound how long another replica's change to an account goes unseen.
        store: Arc::new(CachedStore::new(store, Duration::from_secs(2))),
        issuer: tokens::Issuer {
            keys: keys.clone(),
            issuer: common.platform.issuer(),
            access_ttl: config.access_token_ttl,
            service_ttl: config.service_token_ttl,
            admin_needs_second_factor: config.require_admin_second_factor,
        },
        passwords: password::Passwords::default(),
        throttle: Arc::new(throttle::LoginThrottle::new(throttle::Policy::default())),
        hash_limits: hash_limits::HashLimits::new(config.password_hash_rps, config.password_hash_burst),
        mail_cooldown: Arc::default(),
        mailer,
        seal,
        providers: Arc::default(),
        auth_returns,
        config: Arc::new(config),
        public_url: common.platform.public_url(),
        proxies: common.http.proxies(),
        revoked: ctx.revoked.clone(),
        organizations,
    });
    bootstrap_admin(&app).await?;
    spawn_key_maintenance(keys.clone(), generate);
    app.read_endings().await;
    ended::spawn_feed(app.clone());
    Ok(Users { app, keys })
}

impl Users {
    /// The ring as a key source: the issuer's keys, read in-process.
    pub fn key_source(&self) -> KeySource {
        let keys = self.keys.clone();
        KeySource::Provider(Arc::new(move || keys.jwks()))
    }

    /// The router behind token checks with the ring and the ended sessions, ready while
    /// the store answers and the ring holds keys.
    pub async fn service(&self) -> anyhow::Result<kit::server::Service> {
        let app = &self.app;
        let verifier = Verifier::revoking(self.key_source(), app.issuer.issuer.clone(), SERVICE, app.revoked.clone());
        verifier.refresh_keys(true).await?;
        let router = api::router(app.clone()).layer(JwtLayer::new(verifier.clone()));
        let ready_store = app.store.clone();
        let ready: kit::server::ReadyCheck = Arc::new(move || {
            let store = ready_store.clone();
            let verifier = verifier.clone();
            Box::pin(async move {
                store.ping().await.map_err(|e| format!("store: {e}"))?;
                if !verifier.has_keys() {
                    return Err("no signing keys".into());
                }
                Ok(())
            })
        });
        Ok(kit::server::Service { name: SERVICE, router, openapi: api::openapi(), ready })
    }
}

/// Creates the configured administrator when the platform has none.
async fn bootstrap_admin(app: &App) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (&app.config.bootstrap_admin_email, &app.config.bootstrap_admin_password)
    else {
        return Ok(());
    };
    if app.store.has_admin().await? {
        return Ok(());
    }
    create_admin(app, email, password, "Administrator").await?;
    tracing::info!("created the bootstrap administrator");
    Ok(())
}

/// Creates a verified account with the admin role (`veche admin create`, bootstrap).
pub async fn create_admin(app: &App, email: &str, password: &str, display_name: &str) -> anyhow::Result<model::User> {
    let email = model::normalize_email(email);
    let mut v = kit::Violations::new();
    v.check(model::is_valid_email(&email), "email", "is not an email address");
    model::check_password(&mut v, "password", password, app.config.password_min_length, &email);
    if let Err(kit::ApiError::Validation(errors)) = v.into_result() {
        let list: Vec<String> = errors.iter().map(|e| format!("{} {}", e.field, e.message)).collect();
        anyhow::bail!("{}", list.join("; "));
    }
    let hash = app.passwords.hash(password.to_owned()).await?;
    let new = NewUser {
        email,
        password_hash: Some(hash),
        display_name: display_name.to_owned(),
        roles: vec![model::ROLE_ADMIN.to_owned()],
        email_verified: true,
    };
    Ok(app.store.create_user(new, kit::now_unix()).await?)
}

/// Hourly: rotate generated keys when due; pick up keys a Secret update brought.
fn spawn_key_maintenance(keys: KeyRing, owns_keys: bool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        tick.tick().await;
        loop {
            tick.tick().await;
            let result = if owns_keys { keys.rotate(kit::now_unix()).map(|_| ()) } else { keys.reload() };
            if let Err(e) = result {
                tracing::warn!(error = %e, "signing key maintenance failed");
            }
        }
    });
}
