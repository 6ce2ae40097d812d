//! Asking the organizations service who may act for an organization (the events and
//! analytics services ask). Decisions that change or reveal what only managers may (a
//! write, an attendee list) ask afresh every time, so a removed admin loses those rights
//! at once; reads that only widen what a member sees (drafts in a listing, a report) use
//! an answer up to `TTL` old.

use crate::ApiError;
use crate::service_token::ServiceTokens;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(10);

/// A member's role in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    Owner,
    Admin,
    Member,
}

impl OrgRole {
    /// Admins and owners manage the organization's events and read its reports.
    pub fn manages_events(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

#[derive(Deserialize)]
struct Membership {
    role: OrgRole,
}

/// Roles by (organization, user), with when they were learned.
type RoleCache = HashMap<(Uuid, Uuid), (Option<OrgRole>, Instant)>;

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
    pub async fn role(&self, organization: Uuid, user: Uuid) -> Result<Option<OrgRole>, ApiError> {
        if let Some((role, at)) = self.lock().get(&(organization, user))
            && at.elapsed() < TTL
        {
            return Ok(*role);
        }
        self.role_now(organization, user).await
    }

    /// The user's role as the organizations service says it now: for writes and for
    /// what only managers may see.
    pub async fn role_now(&self, organization: Uuid, user: Uuid) -> Result<Option<OrgRole>, ApiError> {
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

    async fn fetch(&self, organization: Uuid, user: Uuid) -> Result<Option<OrgRole>, ApiError> {
        let unavailable = |why: String| {
            tracing::warn!(%why, "membership lookup failed");
            ApiError::Unavailable("the organizations service cannot be reached".into())
        };
        let tokens = self.tokens.as_ref().ok_or_else(|| unavailable("no service credentials configured".into()))?;
        let token = tokens.token_for("organizations").await.map_err(|e| unavailable(e.to_string()))?;
        let url = format!("{}/api/v1/organizations/{organization}/members/{user}", self.base_url);
        let response = self.http.get(url).bearer_auth(token).send().await.map_err(|e| unavailable(e.to_string()))?;
        match response.status().as_u16() {
            200 => Ok(Some(response.json::<Membership>().await.map_err(|e| unavailable(e.to_string()))?.role)),
            404 => Ok(None),
            status => Err(unavailable(format!("status {status}"))),
        }
    }
}
