//! The users service's directory of people, as the other services call it: names (and,
//! for those allowed to see them, addresses) of the accounts behind the ids they keep, so
//! an organizer's attendee list reads as people, not uuids. Service tokens only: the
//! caller decides who may see an email, the users service only answers services.

use kit::ApiError;
use kit::service_token::ServiceTokens;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Where the users service answers lookups.
pub const PEOPLE_PATH: &str = "/internal/v1/users/people";

/// Most ids in one lookup; a longer list is asked in several.
pub const LOOKUP_MAX: usize = 1000;

/// The audience of the users service's tokens.
const AUDIENCE: &str = catalog::Service::Users.as_str();

/// One lookup: the ids, and optionally words every answered person must match.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// Up to 1000 account ids; unknown and deleted ones are left out of the answer.
    pub ids: Vec<Uuid>,
    /// Only people whose name or email contains this (case-insensitive, any script).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

/// What the platform's services may know of a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Person {
    pub id: Uuid,
    pub display_name: String,
    pub email: String,
    /// The person's language preference (BCP 47), for mail and pages.
    pub language: String,
    /// The zone the person reads times in (IANA).
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Whether they want mail when an event they registered for changes or is cancelled.
    #[serde(default)]
    pub event_updates: bool,
    /// Whether they want a reminder before an event they registered for.
    #[serde(default)]
    pub event_reminders: bool,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// The people found, in no particular order.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct People {
    pub people: Vec<Person>,
}

/// Whether `person` matches the words `q` (each one, in the name or the email), compared
/// case-insensitively in any script ("ёлкин" finds "Ёлкин").
pub fn matches(person: &Person, q: &str) -> bool {
    let name = person.display_name.to_lowercase();
    let email = person.email.to_lowercase();
    q.split_whitespace().map(str::to_lowercase).all(|word| name.contains(&word) || email.contains(&word))
}

/// A client of [`PEOPLE_PATH`].
#[derive(Clone)]
pub struct Directory {
    url: String,
    tokens: Option<Arc<ServiceTokens>>,
    http: reqwest::Client,
}

impl Directory {
    pub fn new(users_url: &str, tokens: Option<Arc<ServiceTokens>>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Self { url: format!("{}{PEOPLE_PATH}", users_url.trim_end_matches('/')), tokens, http }
    }

    /// The people behind `ids` (matching `q` when given), by id. An unreachable users
    /// service is a 503: a list without names would look like a list without people.
    pub async fn look_up(&self, ids: &[Uuid], q: Option<&str>) -> Result<HashMap<Uuid, Person>, ApiError> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_MAX) {
            let lookup = Lookup { ids: chunk.to_vec(), q: q.map(str::to_owned) };
            let people = self.ask(&lookup).await.map_err(|why| {
                tracing::warn!(%why, "people lookup failed");
                ApiError::Unavailable("the users service cannot be reached".into())
            })?;
            found.extend(people.people.into_iter().map(|p| (p.id, p)));
        }
        Ok(found)
    }

    /// [`Self::look_up`] for an answer to a write already made: a users service that
    /// cannot be reached leaves the names out (logged) rather than fail what was done.
    pub async fn look_up_after_write(&self, ids: &[Uuid]) -> HashMap<Uuid, Person> {
        self.look_up(ids, None).await.unwrap_or_default()
    }

    async fn ask(&self, lookup: &Lookup) -> Result<People, String> {
        if lookup.ids.is_empty() {
            return Ok(People { people: Vec::new() });
        }
        let tokens = self.tokens.as_ref().ok_or("no service credentials configured")?;
        let token = tokens.token_for(AUDIENCE).await.map_err(|e| e.to_string())?;
        let response =
            self.http.post(&self.url).bearer_auth(token).json(lookup).send().await.map_err(|e| e.to_string())?;
        let response = response.error_for_status().map_err(|e| e.to_string())?;
        response.json().await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(name: &str, email: &str) -> Person {
        Person {
            id: Uuid::nil(),
            display_name: name.into(),
            email: email.into(),
            language: "ru".into(),
            time_zone: "UTC".into(),
            event_updates: true,
            event_reminders: true,
        }
    }

    #[test]
    fn every_word_must_match_the_name_or_the_email_in_any_case_and_script() {
        let p = person("Ёлкин Иван", "ivan@example.org");
        assert!(matches(&p, "ёлкин"));
        assert!(matches(&p, "ИВАН ёлКИН"));
        assert!(matches(&p, "ivan@EXAMPLE"));
        assert!(matches(&p, "иван example.org"));
        assert!(!matches(&p, "пётр"));
        assert!(!matches(&p, "иван петров"));
        assert!(matches(&p, "  "), "no words asks for nothing");
    }
}
