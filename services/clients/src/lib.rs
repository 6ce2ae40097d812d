//! What the services ask each other, each as a typed client of the service it calls, so
//! that the kit stays plumbing and knows no service:
//!
//! - [`organizations`]: who may act for an organization; a deleted account leaving them;
//! - [`users`]: the list of sessions that ended before their tokens expire;
//! - [`people`]: the names behind account ids (the users service's directory);
//! - [`analytics`]: deliveries of the domain facts of an outbox.

pub mod analytics;
pub mod organizations;
pub mod people;
pub mod users;
