//! The organizations service, as the users service calls it: before an account is
//! deleted, it leaves every organization, and one it was the last owner of passes to
//! someone still there (the organizations service's `forgetDeletedAccount`).

use kit::ApiError;
use kit::service_token::ServiceTokens;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Clone)]
pub struct Organizations {
    base_url: String,
    tokens: Arc<ServiceTokens>,
    http: reqwest::Client,
}

impl Organizations {
    pub fn new(base_url: &str, tokens: Arc<ServiceTokens>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Self { base_url: base_url.trim_end_matches('/').to_owned(), tokens, http }
    }

    /// Takes `user` out of every organization. Until that has happened the account must
    /// not be deleted: an unreachable organizations service is a 503, to be retried.
    pub async fn forget(&self, user: Uuid) -> Result<(), ApiError> {
        let unavailable = |why: String| {
            tracing::warn!(%why, "could not take a deleted account out of its organizations");
            ApiError::Unavailable("the organizations service cannot be reached; try again shortly".into())
        };
        let token = self.tokens.token_for("organizations").await.map_err(|e| unavailable(e.to_string()))?;
        let url = format!("{}/internal/v1/organizations/members/{user}", self.base_url);
        let response = self.http.delete(url).bearer_auth(token).send().await.map_err(|e| unavailable(e.to_string()))?;
        match response.status().as_u16() {
            200 => Ok(()),
            // The platform's set-up is wrong (this service's token is refused): not a
            // wait-and-retry, and not the caller's business.
            status @ (401 | 403) => {
                tracing::error!(status, "the organizations service refuses the users service's token");
                Err(ApiError::internal(anyhow::anyhow!("organizations refused the users service ({status})")))
            }
            status => Err(unavailable(format!("status {status}"))),
        }
    }
}
