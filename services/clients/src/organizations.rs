//! The organizations service, as the others call it. Who may act for an organization
//! (the events and analytics services ask), and taking a deleted account out of every
//! organization (the users service asks, before it deletes one).
//!
//! Decisions that change or reveal what only managers may (a write, an attendee list)
//! ask afresh every time, so a removed admin loses those rights
//! at once; reads that only widen what a member sees (drafts in a listing, a report) use
//! an answer up to `TTL` old.

use kit::ApiError;
use kit::service_token::ServiceTokens;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(10);

/// The audience of this service's tokens.
const AUDIENCE: &str = catalog::Service::Organizations.as_str();

/// A member's role in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    /// Admins and owners manage the organization's events and read its reports.
    pub fn manages_events(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

#[derive(Deserialize)]
struct Membership {
    role: Role,
}

/// Roles by (organization, user), with when they were learned.
type RoleCache = HashMap<(Uuid, Uuid), (Option<Role>, Instant)>;

#[derive(Clone)]
pub struct Organizations {
    base_url: String,
    tokens: Option<Arc<ServiceTokens>>,
    http: reqwest::Client,
    cache: Arc<Mutex<RoleCache>>,
}

impl Organizations {
    pub fn new(base_url: String, tokens: Option<Arc<ServiceTokens>>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Self { base_url, tokens, http, cache: Arc::default() }
    }

    /// The user's role in the organization; `None` when not a member (or no such
    /// organization). Up to `TTL` old: for reads.
    pub async fn role(&self, organization: Uuid, user: Uuid) -> Result<Option<Role>, ApiError> {
        if let Some((role, at)) = self.lock().get(&(organization, user))
            && at.elapsed() < TTL
        {
            return Ok(*role);
        }
        self.role_now(organization, user).await
    }

    /// The user's role as the organizations service says it now: for writes and for
    /// what only managers may see.
    pub async fn role_now(&self, organization: Uuid, user: Uuid) -> Result<Option<Role>, ApiError> {
        let key = (organization, user);
        let role = self.fetch(organization, user).await?;
        let mut cache = self.lock();
        if cache.len() > 50_000 {
            cache.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        cache.insert(key, (role, Instant::now()));
        Ok(role)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RoleCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `method` to `path` of the organizations service with a service token; `Err`
    /// says why it could not be sent.
    async fn send(&self, method: reqwest::Method, path: &str) -> Result<reqwest::Response, String> {
        let tokens = self.tokens.as_ref().ok_or("no service credentials configured")?;
        let token = tokens.token_for(AUDIENCE).await.map_err(|e| e.to_string())?;
        let url = format!("{}{path}", self.base_url);
        self.http.request(method, url).bearer_auth(token).send().await.map_err(|e| e.to_string())
    }

    async fn fetch(&self, organization: Uuid, user: Uuid) -> Result<Option<Role>, ApiError> {
        let unavailable = |why: String| {
            tracing::warn!(%why, "membership lookup failed");
            ApiError::Unavailable("the organizations service cannot be reached".into())
        };
        let path = format!("/api/v1/organizations/{organization}/members/{user}");
        let response = self.send(reqwest::Method::GET, &path).await.map_err(unavailable)?;
        match response.status().as_u16() {
            200 => Ok(Some(response.json::<Membership>().await.map_err(|e| unavailable(e.to_string()))?.role)),
            404 => Ok(None),
            status => Err(unavailable(format!("status {status}"))),
        }
    }

    /// Takes `user` out of every organization; one it was the last owner of passes to
    /// someone still there. Until that has happened the account must not be deleted: an
    /// unreachable organizations service is a 503, to be retried.
    pub async fn forget(&self, user: Uuid) -> Result<(), ApiError> {
        let unavailable = |why: String| {
            tracing::warn!(%why, "could not take a deleted account out of its organizations");
            ApiError::Unavailable("the organizations service cannot be reached; try again shortly".into())
        };
        let path = format!("/internal/v1/organizations/members/{user}");
        let response = self.send(reqwest::Method::DELETE, &path).await.map_err(unavailable)?;
        match response.status().as_u16() {
            200 => Ok(()),
            // The platform's set-up is wrong (the caller's token is refused): not a
            // wait-and-retry, and not the end user's business.
            status @ (401 | 403) => {
                tracing::error!(status, "the organizations service refuses this service's token");
                Err(ApiError::internal(anyhow::anyhow!("organizations refused the caller ({status})")))
            }
            status => Err(unavailable(format!("status {status}"))),
        }
    }
}
