//! Veche over real HTTP against the real binary, one module per area. One test binary
//! rather than one per file: the shared helpers compile once and the whole workspace
//! links a single executable for them, instead of twenty.

#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod admin;
mod analytics;
mod attendees;
mod auth_flow;
mod bad_input;
mod events;
mod gateway;
mod hardening;
mod notices;
mod organizations;
mod pages;
mod routes;
mod second_factor;
mod series;
mod sources;
mod sso;
mod tokens;
mod walkthrough;
mod webhooks;
