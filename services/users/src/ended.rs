//! Ended sessions, from the store to every verifier: the users service reads the list its
//! store keeps into the [`RevokedSessions`] its own verifier consults (at once after an
//! ending here, every second for endings on other replicas), and publishes it to the
//! other services at [`clients::users::ENDED_PATH`].

use crate::AppState;
use crate::store::EndedSession;
use clients::users::{PAGE_LIMIT, Revocation, RevokedPage};
use std::sync::Arc;
use std::time::Duration;

/// How often the list is read from the store, for endings on other replicas.
const READ_INTERVAL: Duration = Duration::from_secs(1);

/// How often endings older than every token they could have signed are deleted.
const FORGET_INTERVAL: Duration = Duration::from_secs(60);

impl AppState {
    /// How long an ending stays listed: the last access token of the session expires
    /// within the token lifetime, and verifiers forgive 30 s of clock skew on top.
    pub fn ended_window(&self) -> i64 {
        self.config.access_token_ttl + 60
    }

    /// A page of the list after position `after`, as published. A position beyond the
    /// list's end means the list was made anew (a restored database): the page starts
    /// from its beginning, and the follower's cursor goes back with it.
    pub async fn ended_page(&self, after: i64, now: i64) -> Result<RevokedPage, crate::store::StoreError> {
        let window = self.ended_window();
        let mut ended = self.store.ended_sessions(after, now - window, PAGE_LIMIT).await?;
        let mut after = after;
        if ended.is_empty() && after > 0 && self.store.last_ended_seq().await? < after {
            after = 0;
            ended = self.store.ended_sessions(0, now - window, PAGE_LIMIT).await?;
        }
        let cursor = ended.last().map_or(after, |e| e.seq);
        let sessions =
            ended.into_iter().map(|e: EndedSession| Revocation { sid: e.session_id, until: e.ended_at + window });
        Ok(RevokedPage { sessions: sessions.collect(), cursor })
    }

    /// Reads the endings this service's verifier has not seen yet. Called right after a
    /// session ends here, so that its tokens stop at once; a failure is logged, and the
    /// next periodic read catches up.
    pub async fn read_endings(&self) {
        loop {
            let now = kit::now_unix();
            match self.ended_page(self.revoked.cursor(), now).await {
                Ok(page) => {
                    if !page.record_into(&self.revoked, now) {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read ended sessions");
                    return;
                }
            }
        }
    }
}

/// Keeps the list read and pruned for as long as the service runs.
pub fn spawn_feed(app: Arc<AppState>) {
    tokio::spawn(async move {
        let mut read = tokio::time::interval(READ_INTERVAL);
        let mut forget = tokio::time::interval(FORGET_INTERVAL);
        loop {
            tokio::select! {
                _ = read.tick() => app.read_endings().await,
                _ = forget.tick() => {
                    if let Err(e) = app.store.forget_ended_sessions(kit::now_unix() - app.ended_window()).await {
                        tracing::warn!(error = %e, "could not forget old session endings");
                    }
                }
            }
        }
    });
}
