//! Service tokens: how one service calls another.
//!
//! Each service is an OAuth2 client of the users service. It asks the token endpoint
//! (`POST /api/v1/auth/token`, `grant_type=client_credentials`, RFC 6749 §4.4) for a
//! short-lived JWT whose audience is the callee, and keeps it until shortly before it
//! expires. The callee verifies it like any token: its [`Verifier`](crate::auth::Verifier)
//! accepts its own name as an audience.

use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Refresh a cached token this long before it expires.
const EARLY_REFRESH: Duration = Duration::from_secs(30);

/// Where and as whom to ask for tokens.
#[derive(Clone)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

/// Fetches and caches service tokens, one per audience.
pub struct ServiceTokens {
    credentials: ClientCredentials,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<HashMap<String, (String, Instant)>>,
}

impl ServiceTokens {
    pub fn new(credentials: ClientCredentials) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Self { credentials, http, cache: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// A valid token for calling `audience`.
    pub async fn token_for(&self, audience: &str) -> anyhow::Result<String> {
        let mut cache = self.cache.lock().await;
        if let Some((token, refresh_at)) = cache.get(audience)
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let response: TokenResponse = self
            .http
            .post(&self.credentials.token_url)
            .basic_auth(&self.credentials.client_id, Some(&self.credentials.client_secret))
            .form(&[("grant_type", "client_credentials"), ("audience", audience)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let lifetime = Duration::from_secs(response.expires_in);
        let refresh_at = Instant::now() + lifetime.saturating_sub(EARLY_REFRESH);
        cache.insert(audience.to_owned(), (response.access_token.clone(), refresh_at));
        Ok(response.access_token)
    }
}
