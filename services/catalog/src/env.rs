//! The names of the settings the operator renders into a pod's environment and `veche
//! serve` reads: the contract between them. A service's own flags that the operator
//! never sets keep their names beside their flags.

/// Where the service listens (`host:port`).
pub const LISTEN: &str = "VECHE_LISTEN";
/// Where `/metrics` is served, apart from the API.
pub const METRICS_LISTEN: &str = "VECHE_METRICS_LISTEN";
/// The directory of the embedded store, mail and generated keys.
pub const DATA_DIR: &str = "VECHE_DATA_DIR";
/// `text` or `json`.
pub const LOG_FORMAT: &str = "VECHE_LOG_FORMAT";
/// Where people reach the platform: the base of links in mail.
pub const PUBLIC_URL: &str = "VECHE_PUBLIC_URL";
/// The `iss` of every token.
pub const ISSUER: &str = "VECHE_ISSUER";
/// The users service's base URL (keys, service tokens, ended sessions).
pub const USERS_URL: &str = "VECHE_USERS_URL";
/// The organizations service's base URL (memberships, deleted accounts).
pub const ORGANIZATIONS_URL: &str = "VECHE_ORGANIZATIONS_URL";
/// The analytics service's base URL (where outboxes are relayed).
pub const ANALYTICS_URL: &str = "VECHE_ANALYTICS_URL";
/// This service's secret as a client of the token endpoint.
pub const SERVICE_CLIENT_SECRET: &str = "VECHE_SERVICE_CLIENT_SECRET";
/// The users service's list of clients: `name=secret,...`.
pub const SERVICE_CLIENTS: &str = "VECHE_SERVICE_CLIENTS";
/// Whether the peer is a proxy whose `X-Forwarded-For` names the client.
pub const TRUST_FORWARDED_FOR: &str = "VECHE_TRUST_FORWARDED_FOR";
/// The directory of signing keys (a mounted Secret in a cluster).
pub const SIGNING_KEYS_DIR: &str = "VECHE_SIGNING_KEYS_DIR";
/// Days after which the users service rotates its own keys (0: it does not).
pub const KEY_ROTATION_DAYS: &str = "VECHE_KEY_ROTATION_DAYS";
/// Lifetime of access tokens, in seconds.
pub const ACCESS_TOKEN_TTL: &str = "VECHE_ACCESS_TOKEN_TTL";
/// Lifetime of a session without use, in seconds.
pub const REFRESH_TOKEN_TTL: &str = "VECHE_REFRESH_TOKEN_TTL";
/// The gateway's route table (a JSON file).
pub const GATEWAY_ROUTES: &str = "VECHE_GATEWAY_ROUTES";
/// Origins the gateway answers CORS for, comma-separated.
pub const CORS_ORIGINS: &str = "VECHE_CORS_ORIGINS";
/// The gateway's per-client and per-user rates and bursts.
pub const CLIENT_RPS: &str = "VECHE_CLIENT_RPS";
pub const CLIENT_BURST: &str = "VECHE_CLIENT_BURST";
pub const USER_RPS: &str = "VECHE_USER_RPS";
pub const USER_BURST: &str = "VECHE_USER_BURST";
/// Where a YDB database is, and its token.
pub const YDB_ENDPOINT: &str = "VECHE_YDB_ENDPOINT";
pub const YDB_DATABASE: &str = "VECHE_YDB_DATABASE";
pub const YDB_TOKEN: &str = "VECHE_YDB_TOKEN";

/// Where users, organizations and events send mail (an SMTP URL, from a Secret), and
/// as whom.
pub const SMTP_URL: &str = "VECHE_SMTP_URL";
pub const MAIL_FROM: &str = "VECHE_MAIL_FROM";

/// Identity providers people may sign in with (users: a JSON array; see the README).
pub const AUTH_PROVIDERS: &str = "VECHE_AUTH_PROVIDERS";
/// Frontend pages a provider sign-in may return to (users: exact URIs, comma-separated).
pub const AUTH_REDIRECT_URIS: &str = "VECHE_AUTH_REDIRECT_URIS";
/// The environment variable a provider's client secret is read from, named in its
/// `client_secret_env` (so the operator can take it from a Secret): one per provider id.
pub fn auth_client_secret(provider_id: &str) -> String {
    format!("VECHE_AUTH_CLIENT_SECRET_{}", provider_id.to_ascii_uppercase().replace('-', "_"))
}
