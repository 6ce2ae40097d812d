//! `POST /api/v1/analytics/track`: what browsers report (page views of events, searches,
//! link clicks), anonymous, in small batches. Validated whole, limited per client
//! address, and dropped unstored when the user agent says it is a robot.

use crate::App;
use crate::model::{Fact, FactKind, Ingested, is_visitor_id, parse_time};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use kit::extract::Json;
use kit::server::Peer;
use kit::{ApiError, Violations, now_unix};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Most client events in one batch.
pub const TRACK_MAX: usize = 50;
/// Largest body of a batch.
pub const TRACK_BODY_MAX: usize = 32 * 1024;
/// How late a client may report (a tab that was offline), in seconds.
const LATE_MAX: i64 = 24 * 3600;
/// How far ahead of our clock a client's clock may be, in seconds.
const EARLY_MAX: i64 = 5 * 60;
const QUERY_MAX: usize = 200;
const URL_MAX: usize = 2048;

/// User agents that announce themselves as robots: their reports are dropped.
const ROBOTS: [&str; 12] = [
    "bot",
    "crawl",
    "spider",
    "slurp",
    "facebookexternalhit",
    "preview",
    "curl/",
    "wget/",
    "python-requests",
    "go-http-client",
    "headless",
    "phantomjs",
];

/// A batch of a browser's events.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackBatch {
    /// The browser's anonymous id (1 to 64 of `A-Z a-z 0-9 - _`), kept by the frontend
    /// in local storage; never a user id.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub visitor_id: String,
    /// At most 50 events.
    #[schema(max_items = 50)]
    pub events: Vec<ClientEvent>,
}

/// One thing a visitor did.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientEvent {
    /// Made by the browser (`crypto.randomUUID()`): a retried batch counts once.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: ClientEventKind,
    /// When, RFC 3339: at most a day ago and 5 minutes ahead.
    #[schema(format = DateTime)]
    pub at: String,
    /// The event whose page it happened on (required for `page_view`).
    pub event_id: Option<Uuid>,
    /// The search text (`search`), at most 200 characters; not stored.
    #[schema(max_length = 200)]
    pub query: Option<String>,
    /// The link followed (`link_click`), http or https; not stored.
    #[schema(schema_with = kit::schemas::optional_web_url)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientEventKind {
    PageView,
    Search,
    LinkClick,
}

/// The answer to a batch.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
pub struct Tracked {
    /// Events counted now.
    pub accepted: u64,
    /// Events already reported (a retried batch).
    pub duplicates: u64,
    /// Events dropped because the sender is a robot.
    pub ignored: u64,
}

/// Whether `user_agent` is missing or names a robot.
pub fn is_robot(user_agent: Option<&str>) -> bool {
    let Some(ua) = user_agent.map(str::trim).filter(|ua| !ua.is_empty()) else { return true };
    let ua = ua.to_ascii_lowercase();
    ROBOTS.iter().any(|r| ua.contains(r))
}

impl TrackBatch {
    /// The facts this batch stands for, or every reason it is refused.
    pub fn validate(&self, now: i64) -> Result<Vec<Fact>, ApiError> {
        let mut v = Violations::new();
        v.check(is_visitor_id(&self.visitor_id), "visitor_id", "must be 1 to 64 of A-Z a-z 0-9 - _");
        v.check(!self.events.is_empty(), "events", "must not be empty");
        v.check(self.events.len() <= TRACK_MAX, "events", &format!("at most {TRACK_MAX} per batch"));
        let mut facts = Vec::with_capacity(self.events.len());
        for (i, e) in self.events.iter().enumerate().take(TRACK_MAX) {
            let at = |field: &str| format!("events[{i}].{field}");
            let time = parse_time(&e.at);
            match time {
                None => v.add(at("at"), "must be an RFC 3339 time"),
                Some(t) => {
                    v.check(t <= now + EARLY_MAX, &at("at"), "is in the future");
                    v.check(t >= now - LATE_MAX, &at("at"), "is more than a day ago");
                }
            }
            let kind = match e.kind {
                ClientEventKind::PageView => {
                    v.check(e.event_id.is_some(), &at("event_id"), "is required for a page view");
                    FactKind::PageViewed
                }
                ClientEventKind::Search => {
                    let query = e.query.as_deref().unwrap_or_default();
                    v.check(!query.trim().is_empty(), &at("query"), "is required for a search");
                    v.check(query.chars().count() <= QUERY_MAX, &at("query"), "is longer than 200 characters");
                    FactKind::SearchPerformed
                }
                ClientEventKind::LinkClick => {
                    let url = e.url.as_deref().unwrap_or_default();
                    let web = url.starts_with("https://") || url.starts_with("http://");
                    v.check(web && url.len() <= URL_MAX, &at("url"), "must be an http(s) URL of at most 2048 bytes");
                    FactKind::LinkClicked
                }
            };
            facts.push(Fact {
                id: e.id,
                kind,
                occurred_at: time.unwrap_or(now),
                event_id: e.event_id,
                organization_id: None,
                user_id: None,
                visitor_id: Some(self.visitor_id.clone()),
                imported: false,
            });
        }
        v.into_result()?;
        Ok(facts)
    }
}

#[utoipa::path(post, path = "/api/v1/analytics/track", operation_id = "trackEvents", tag = "analytics",
    request_body = TrackBatch,
    responses((status = 202, description = "taken (robots' batches are taken and dropped)", body = Tracked),
              (status = 413, body = kit::problem::Problem),
              (status = 422, description = "an event is invalid: nothing of the batch was stored", body = kit::problem::Problem),
              (status = 429, description = "too many batches from this address; see Retry-After", body = kit::problem::Problem)))]
pub async fn track(
    State(app): State<App>,
    peer: Peer,
    headers: HeaderMap,
    Json(batch): Json<TrackBatch>,
) -> Result<(StatusCode, axum::Json<Tracked>), ApiError> {
    if let Some(ip) = kit::server::client_ip(&headers, peer, &app.proxies) {
        app.track_limits.check(ip)?;
    }
    let facts = batch.validate(now_unix())?;
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    if is_robot(user_agent) {
        metrics::counter!("analytics_track_ignored_total").increment(facts.len() as u64);
        return Ok((StatusCode::ACCEPTED, axum::Json(Tracked { ignored: facts.len() as u64, ..Tracked::default() })));
    }
    let Ingested { accepted, duplicates, .. } = app.store.ingest(facts).await?;
    metrics::counter!("analytics_facts_total", "outcome" => "accepted").increment(accepted);
    metrics::counter!("analytics_facts_total", "outcome" => "duplicate").increment(duplicates);
    Ok((StatusCode::ACCEPTED, axum::Json(Tracked { accepted, duplicates, ignored: 0 })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(events: serde_json::Value) -> TrackBatch {
        serde_json::from_value(serde_json::json!({ "visitor_id": "v-1", "events": events })).unwrap()
    }

    #[test]
    fn robots_are_known_by_their_user_agent() {
        assert!(is_robot(None));
        assert!(is_robot(Some("  ")));
        assert!(is_robot(Some("Mozilla/5.0 (compatible; Googlebot/2.1)")));
        assert!(is_robot(Some("curl/8.5.0")));
        assert!(!is_robot(Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36")));
    }

    #[test]
    fn each_kind_needs_its_fields_and_times_are_bounded() {
        let now = 1_800_000_000;
        let id = Uuid::new_v4();
        let ok = batch(serde_json::json!([
            {"id": Uuid::new_v4(), "type": "page_view", "at": "2027-01-15T08:00:00Z", "event_id": id},
            {"id": Uuid::new_v4(), "type": "search", "at": "2027-01-15T08:00:00Z", "query": "jazz"},
            {"id": Uuid::new_v4(), "type": "link_click", "at": "2027-01-15T08:00:00Z", "url": "https://x.org"},
        ]));
        let facts = ok.validate(now).unwrap();
        let kinds: Vec<FactKind> = facts.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FactKind::PageViewed, FactKind::SearchPerformed, FactKind::LinkClicked]);
        assert!(facts.iter().all(|f| f.visitor_id.as_deref() == Some("v-1")));

        let bad = batch(serde_json::json!([
            {"id": Uuid::new_v4(), "type": "page_view", "at": "2027-01-15T08:00:00Z"},
            {"id": Uuid::new_v4(), "type": "search", "at": "2027-01-15T09:00:00Z", "query": " "},
            {"id": Uuid::new_v4(), "type": "link_click", "at": "2027-01-13T08:00:00Z", "url": "javascript:alert(1)"},
            {"id": Uuid::new_v4(), "type": "search", "at": "yesterday", "query": "x"},
        ]));
        let problem = format!("{:?}", bad.validate(now).unwrap_err());
        for field in
            ["events[0].event_id", "events[1].at", "events[1].query", "events[2].at", "events[2].url", "events[3].at"]
        {
            assert!(problem.contains(field), "{field} in {problem}");
        }
    }
}
