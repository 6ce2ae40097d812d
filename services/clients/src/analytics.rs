//! The analytics service, as the others call it: deliveries of the domain facts their
//! outboxes hold (`kit::outbox` reads and acknowledges them; this delivers them).

use kit::db::Db;
use kit::outbox::{Deliver, RelayTiming};
use kit::platform::Context;
use kit::service_token::ServiceTokens;
use std::sync::Arc;
use std::time::Duration;

/// Where analytics takes deliveries (service tokens of the services with an outbox).
pub const FACTS_PATH: &str = "/internal/v1/analytics/facts";

/// The audience of this service's tokens.
const AUDIENCE: &str = catalog::Service::Analytics.as_str();

/// Posts batches of facts to analytics with the caller's service tokens.
pub struct Facts {
    url: String,
    tokens: Arc<ServiceTokens>,
    http: reqwest::Client,
}

impl Facts {
    pub fn new(analytics_url: &str, tokens: Arc<ServiceTokens>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Self { url: format!("{}{FACTS_PATH}", analytics_url.trim_end_matches('/')), tokens, http }
    }
}

impl Deliver for Facts {
    async fn deliver(&self, facts: Vec<&serde_json::Value>) -> anyhow::Result<()> {
        let token = self.tokens.token_for(AUDIENCE).await?;
        let body = serde_json::json!({ "facts": facts });
        let answer = self.http.post(&self.url).bearer_auth(token).json(&body).send().await?;
        let status = answer.status();
        if !status.is_success() {
            let body = answer.text().await.unwrap_or_default();
            anyhow::bail!("analytics answered {status}: {}", body.chars().take(300).collect::<String>());
        }
        Ok(())
    }
}

/// Starts relaying `service`'s outbox (in `db`) to analytics, when the platform says
/// where analytics is and `service` can get service tokens; otherwise says why not.
pub fn spawn_relay(context: &Context, service: &'static str, db: Db) {
    let (Some(url), Some(tokens)) = (context.common.platform.analytics_url.clone(), context.service_tokens(service))
    else {
        tracing::info!(service, "no analytics URL or client secret: domain facts stay in the outbox");
        return;
    };
    tokio::spawn(kit::outbox::relay(service, db, Facts::new(&url, tokens), RelayTiming::default()));
}
