//! What every Veche service shares, written once.
//!
//! - [`config`]: flags and `VECHE_*` variables common to all services;
//! - [`telemetry`]: logs (text or JSON);
//! - [`problem`] and [`extract`]: errors as `application/problem+json`;
//! - [`auth`]: JWT verification (JWKS, cache, tower layer, extractors);
//! - [`service_token`]: tokens for calling another service;
//! - [`revoked`]: sessions that ended before their access tokens expire;
//! - [`db`]: the embedded SQLite store's plumbing;
//! - [`mail`]: outgoing mail (SMTP, or a development mailbox directory);
//! - [`outbox`]: domain facts written with the change they describe;
//! - [`platform`]: where the rest of the platform is (keys, peers, credentials);
//! - [`server`]: the bootstrap (ops endpoints, layer stack, graceful shutdown);
//! - [`secret`] and [`page`]: random tokens and cursor pagination;
//! - [`validate`]: emails, web URLs and lengths, checked alike everywhere.

pub mod assets;
pub mod auth;
pub mod config;
pub mod db;
pub mod extract;
pub mod forwarded;
pub mod limits;
pub mod mail;
pub mod openapi;
pub mod orgs;
pub mod outbox;
pub mod page;
pub mod params;
pub mod platform;
pub mod problem;
pub mod revoked;
pub mod schemas;
pub mod secret;
pub mod server;
pub mod service_token;
pub mod telemetry;
pub mod validate;

pub use problem::{ApiError, FieldError, Violations};

/// Seconds since the Unix epoch, the unit of JWT times and of our stored timestamps.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 in UTC, the wire format of every time.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
