//! The users service, as the others call it: the list of sessions that ended before their
//! access tokens expire, which every verifier consults. The users service publishes it
//! at [`ENDED_PATH`] (service tokens only); a service or gateway running on its own
//! follows it every [`FOLLOW_INTERVAL`] into the list its verifier checks.

use kit::platform::Context;
use kit::revoked::RevokedSessions;
use kit::service_token::ServiceTokens;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Where the users service publishes ended sessions.
pub const ENDED_PATH: &str = "/internal/v1/sessions/revoked";

/// How often a follower asks for sessions ended since its last look: the longest a
/// token of an ended session still passes a verifier in another process.
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

/// Most entries in one page of [`ENDED_PATH`].
pub const PAGE_LIMIT: usize = 1000;

/// The audience of this service's tokens.
const AUDIENCE: &str = catalog::Service::Users.as_str();

/// One ended session, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revocation {
    /// The session id (the `sid` of its access tokens).
    pub sid: String,
    /// Unix time after which no token of the session can verify anyway: forget it then.
    pub until: i64,
}

/// A page of [`ENDED_PATH`]: what ended after the asked cursor, and the cursor to ask
/// with next time. The publisher's cursor wins: when its list was made anew (a restored
/// database), it starts the follower again from its beginning.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevokedPage {
    pub sessions: Vec<Revocation>,
    pub cursor: i64,
}

impl RevokedPage {
    /// Takes the page into `list`; returns whether another page may follow at once.
    pub fn record_into(self, list: &RevokedSessions, now: i64) -> bool {
        let full = self.sessions.len() >= PAGE_LIMIT;
        let advanced = self.cursor > list.cursor();
        list.record(self.sessions.into_iter().map(|r| (r.sid, r.until)), self.cursor, now);
        full && advanced
    }
}

/// Keeps `context`'s list of ended sessions in step with the users service's, for
/// `service` running on its own. Without a client secret it cannot ask, and says so.
pub fn follow_ended_sessions(context: &Context, service: &str) {
    let Some(tokens) = context.service_tokens(service) else {
        tracing::warn!(service, "no client secret: tokens of ended sessions verify until they expire");
        return;
    };
    let users_url = context.common.platform.users_url();
    tokio::spawn(follow(users_url, tokens, context.revoked.clone(), FOLLOW_INTERVAL));
}

/// Keeps `revoked` up to date from the users service at `users_url`, every `interval`,
/// for ever. An unreachable users service is logged (once per outage) and asked again:
/// tokens keep verifying meanwhile, as they would without the list.
pub async fn follow(users_url: String, tokens: Arc<ServiceTokens>, revoked: RevokedSessions, interval: Duration) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    let url = format!("{}{ENDED_PATH}", users_url.trim_end_matches('/'));
    let mut failing = false;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match catch_up(&http, &url, &tokens, &revoked).await {
            Ok(()) if failing => {
                tracing::info!("ended sessions are followed again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!(error = %e, "could not read ended sessions from the users service");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// Reads every page after the list's cursor.
async fn catch_up(
    http: &reqwest::Client,
    url: &str,
    tokens: &ServiceTokens,
    revoked: &RevokedSessions,
) -> anyhow::Result<()> {
    loop {
        let token = tokens.token_for(AUDIENCE).await?;
        let page: RevokedPage = http
            .get(format!("{url}?after={}", revoked.cursor()))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if !page.record_into(revoked, kit::now_unix()) {
            return Ok(());
        }
    }
}
