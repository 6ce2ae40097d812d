//! What every Veche service shares, written once: plumbing that knows no service (what a
//! service asks another lives in the `clients` crate; the platform's shared facts in the
//! `catalog` crate).
//!
//! - [`config`]: flags and `VECHE_*` variables common to all services;
//! - [`telemetry`]: logs (text or JSON);
//! - [`problem`] and [`extract`]: errors as `application/problem+json`, bodies and queries;
//! - [`auth`]: JWT verification (JWKS, cache, tower layer, extractors);
//! - [`revoked`]: sessions that ended before their access tokens expire;
//! - [`service_token`]: tokens for calling another service;
//! - [`platform`]: the context a service is built in (settings, keys, credentials);
//! - [`db`]: the embedded SQLite store's plumbing;
//! - [`outbox`]: domain facts written with the change they describe, and their relay;
//! - [`fetch`]: outbound HTTP to user-given URLs, refused for inner addresses (SSRF);
//! - [`mail`]: outgoing mail (SMTP, or a development mailbox directory), letters in ru and en;
//! - [`notify`]: mail about facts, read from the outbox after they commit;
//! - [`server`]: the bootstrap (ops endpoints, layer stack, graceful shutdown);
//! - [`limits`] and [`forwarded`]: rate limits, and the client's address behind proxies;
//! - [`openapi`], [`schemas`] and [`params`]: the documents' conventions and constraints,
//!   and undeclared query parameters refused from them;
//! - [`secret`] and [`page`]: random tokens and cursor pagination;
//! - [`validate`]: emails, web URLs, time zones and plain text, checked alike everywhere;
//! - [`assets`]: the pages' static files.

pub mod assets;
pub mod auth;
pub mod config;
pub mod csv;
pub mod db;
pub mod extract;
pub mod fetch;
pub mod fixture_rng;
pub mod forwarded;
pub mod limits;
pub mod mail;
pub mod moment;
pub mod negotiate;
pub mod notify;
pub mod openapi;
pub mod outbox;
pub mod page;
pub mod params;
pub mod patch;
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
    jiff::Timestamp::now().as_second()
}

/// RFC 3339 in UTC, the wire format of every time.
pub fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map(|t| t.to_string()).unwrap_or_default()
}

/// An RFC 3339 time as Unix seconds (`None`: not one).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}
