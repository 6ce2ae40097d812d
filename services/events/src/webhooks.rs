//! Webhook deliveries: facts of the outbox queued per subscribed webhook (see
//! [`crate::store::WebhookStore`]), posted through the SSRF-safe fetcher, signed as
//! Stripe signs (`Veche-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
//! a fresh time on every attempt so receivers can refuse replays), and retried with
//! growing pauses until the receiver answers 2xx or the attempts run out.

use crate::store::{Attempt, AttemptOutcome, WebhookStore};
use kit::fetch::Fetcher;
use std::sync::Arc;
use std::time::Duration;

/// The signature's header; its `v1` is the HMAC of `"<t>.<body>"` under the secret.
pub const SIGNATURE: &str = "Veche-Signature";
/// The delivery's id, the same on every attempt (receivers deduplicate by it).
pub const DELIVERY: &str = "Veche-Delivery";
/// The fact's kind.
pub const EVENT: &str = "Veche-Event";
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 10;
/// Attempts made at once.
const PARALLEL: u32 = 16;
/// How long a receiver has to answer: as GitHub gives, so that a slow receiver holds up
/// a round of deliveries (everyone's) for at most this long.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A new signing secret: `whsec_` and 256 random bits.
pub fn new_secret() -> String {
    format!("whsec_{}", kit::secret::new_token())
}

/// The `Veche-Signature` of `body` posted at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let v1 = kit::secret::hmac_sha256_hex(secret.as_bytes(), format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={v1}")
}

/// When to try again after `attempts` failed ones: `base`, then twice as long each time
/// (30 s, 1 min, 2 min, ... about four hours in all with the default base); `None` once
/// the attempts are spent.
pub fn retry_at(now: i64, attempts: u32, base: Duration) -> Option<i64> {
    (attempts < MAX_ATTEMPTS).then(|| now + base.as_secs().max(1) as i64 * (1 << (attempts - 1).min(20)))
}

/// Queues and posts deliveries for ever.
pub struct Dispatcher {
    pub store: Arc<dyn WebhookStore>,
    pub fetcher: Fetcher,
    /// The first pause after a failed attempt.
    pub retry_base: Duration,
}

impl Dispatcher {
    pub async fn run(self) {
        loop {
            let busy = match self.round().await {
                Ok(busy) => busy,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook deliveries failed");
                    false
                }
            };
            if !busy {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// Queues new facts and makes the attempts due; whether there was anything to do.
    async fn round(&self) -> anyhow::Result<bool> {
        let now = kit::now_unix();
        let read = self.store.fan_out(now).await?;
        let due = self.store.due_attempts(now, PARALLEL).await?;
        let made = due.len();
        let outcomes = futures::future::join_all(due.into_iter().map(|a| async move {
            let outcome = self.attempt(&a).await;
            (a, outcome)
        }))
        .await;
        for (attempt, outcome) in outcomes {
            if let AttemptOutcome::Failed { error, .. } = &outcome {
                tracing::info!(webhook = %attempt.webhook_id, delivery = %attempt.id, %error, "a webhook delivery failed");
            }
            self.store.record_attempt(attempt.id, outcome, kit::now_unix()).await?;
        }
        Ok(read > 0 || made > 0)
    }

    async fn attempt(&self, a: &Attempt) -> AttemptOutcome {
        let now = kit::now_unix();
        let headers =
            [(SIGNATURE, signature(&a.secret, now, &a.payload)), (DELIVERY, a.id.to_string()), (EVENT, a.kind.clone())];
        let made = a.attempts + 1;
        match self.fetcher.post_json(&a.url, a.payload.clone().into_bytes(), &headers, ANSWER_WITHIN).await {
            Ok(status) if (200..300).contains(&status) => AttemptOutcome::Delivered { status },
            Ok(status) => AttemptOutcome::Failed {
                status: Some(status),
                error: format!("the receiver answered {status}"),
                retry_at: retry_at(now, made, self.retry_base),
            },
            Err(e) => AttemptOutcome::Failed {
                status: None,
                error: e.to_string(),
                retry_at: retry_at(now, made, self.retry_base),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_time_and_the_body() {
        let s = signature("whsec_test", 1_700_000_000, r#"{"a":1}"#);
        assert_eq!(
            s,
            format!("t=1700000000,v1={}", kit::secret::hmac_sha256_hex(b"whsec_test", br#"1700000000.{"a":1}"#))
        );
        assert_ne!(s, signature("whsec_test", 1_700_000_001, r#"{"a":1}"#));
        assert!(new_secret().starts_with("whsec_") && new_secret().len() == 49);
    }

    #[test]
    fn pauses_double_until_the_attempts_run_out() {
        let base = Duration::from_secs(30);
        assert_eq!(retry_at(0, 1, base), Some(30));
        assert_eq!(retry_at(0, 2, base), Some(60));
        assert_eq!(retry_at(0, 9, base), Some(30 * 256));
        assert_eq!(retry_at(0, MAX_ATTEMPTS, base), None);
    }
}
