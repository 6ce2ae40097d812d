//! Webhooks: an organization's subscriptions of a URL to its event and registration
//! facts, and the log of their deliveries. No I/O here.

use kit::validate::{check_len, check_plain, web_url};
use kit::{ApiError, Violations};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The facts a webhook may subscribe to: what happens to an organization's events and
/// to the registrations for them.
pub const KINDS: [&str; 9] = [
    "event.published",
    "event.changed",
    "event.cancelled",
    "event.deleted",
    "registration.made",
    "registration.waitlisted",
    "registration.promoted",
    "registration.cancelled",
    "registration.checked_in",
];

const DESCRIPTION_MAX: usize = 200;
const URL_MAX: usize = 2048;

fn yes() -> bool {
    true
}

/// What an organization's admin writes: the body of `POST .../webhooks`, and the shape a
/// `PATCH` merges into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Where deliveries are posted: https (plain http only for hosts the platform allows
    /// by name, `VECHE_FETCH_ALLOW_HOSTS`).
    #[schema(schema_with = kit::schemas::web_url)]
    #[schema(example = "https://crm.example.org/hooks/veche")]
    pub url: String,
    /// The kinds of fact to deliver (at least one): `event.published`, `event.changed`,
    /// `event.cancelled`, `event.deleted`, `registration.made`, `registration.waitlisted`,
    /// `registration.promoted`, `registration.cancelled`, `registration.checked_in`.
    #[schema(min_items = 1, max_items = 9)]
    pub events: Vec<String>,
    /// A note for people.
    #[serde(default)]
    #[schema(schema_with = kit::schemas::optional_one_line::<DESCRIPTION_MAX>)]
    pub description: Option<String>,
    /// Paused webhooks get nothing (facts that happen meanwhile are not kept for them).
    #[serde(default = "yes")]
    pub active: bool,
}

impl WebhookInput {
    /// Normalises and validates, naming every bad field. The URL's address is checked
    /// again at each delivery (names resolve differently over time).
    pub fn validate(mut self) -> Result<Self, ApiError> {
        let mut v = Violations::new();
        match web_url(self.url.trim()) {
            Some(url) if url.len() <= URL_MAX => self.url = url,
            Some(_) => v.add("url", "must be at most 2048 characters"),
            None => v.add("url", "must be an http or https URL"),
        }
        v.check(!self.events.is_empty(), "events", "name at least one kind of fact");
        self.events.sort();
        self.events.dedup();
        for (i, kind) in self.events.iter().enumerate() {
            v.check(KINDS.contains(&kind.as_str()), &format!("events[{i}]"), "is not a kind of fact a webhook gets");
        }
        if let Some(d) = &mut self.description {
            *d = d.trim().to_owned();
            check_len(&mut v, "description", d, DESCRIPTION_MAX);
            check_plain(&mut v, "description", d);
        }
        v.into_result()?;
        Ok(self)
    }
}

/// A stored webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub input: WebhookInput,
    /// The key deliveries are signed with (`whsec_...`); shown once, when made.
    pub secret: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A webhook as the API shows it (never its secret, except once at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub active: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Only in the answer to `POST`: the signing key. Keep it; it is not shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookView {
    pub fn new(w: &Webhook, with_secret: bool) -> Self {
        Self {
            id: w.id,
            organization_id: w.organization_id,
            url: w.input.url.clone(),
            events: w.input.events.clone(),
            description: w.input.description.clone(),
            active: w.input.active,
            created_at: kit::rfc3339(w.created_at),
            updated_at: kit::rfc3339(w.updated_at),
            secret: with_secret.then(|| w.secret.clone()),
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not yet taken (with a 2xx) by the receiver; tried again at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up after the last attempt.
    Failed,
}
str_enum!(DeliveryStatus { Pending => "pending", Delivered => "delivered", Failed => "failed" });

/// One fact's delivery to one webhook, as the log shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// Also the `Veche-Delivery` header: the same on every attempt, for deduplication.
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The fact's kind (`registration.made`, ...).
    pub event: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// The receiver's HTTP status at the last attempt, if it answered.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    /// The body posted (the same on every attempt).
    pub payload: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str, events: &[&str]) -> WebhookInput {
        WebhookInput {
            url: url.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            description: Some("  CRM  ".into()),
            active: true,
        }
    }

    #[test]
    fn kinds_are_checked_sorted_and_deduplicated() {
        let ok = input("https://crm.example.org/h", &["registration.made", "event.changed", "registration.made"])
            .validate()
            .unwrap();
        assert_eq!(ok.events, ["event.changed", "registration.made"]);
        assert_eq!(ok.description.as_deref(), Some("CRM"));
        let Err(ApiError::Validation(bad)) = input("ftp://x", &["event.viewed"]).validate() else { panic!() };
        let fields: Vec<String> = bad.into_iter().map(|f| f.field).collect();
        assert_eq!(fields, ["url", "events[0]"]);
        assert!(input("https://x.example", &[]).validate().is_err());
    }
}
