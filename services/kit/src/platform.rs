//! What a service needs to know about the rest of the platform at run time: the shared
//! settings, where token keys come from, and its own credentials as a client.

use crate::auth::{KeySource, Verifier};
use crate::config::CommonArgs;
use crate::revoked::RevokedSessions;
use crate::server::ReadyCheck;
use crate::service_token::{ClientCredentials, ServiceTokens};
use std::future::Future;
use std::sync::Arc;

#[derive(Clone)]
pub struct Context {
    pub common: CommonArgs,
    /// In `veche up`, the users service's key ring in-process; alone, its JWKS URL.
    pub keys: KeySource,
    /// Sessions ended before their tokens expire. In `veche up`, the users service's own
    /// list; alone, a copy kept by following it (the users client's `follow_ended_sessions`).
    pub revoked: RevokedSessions,
}

impl Context {
    /// A context for a service running alone: keys come from the users service's JWKS.
    pub fn standalone(common: CommonArgs) -> Self {
        let keys = KeySource::Url(common.platform.jwks_url());
        Self { common, keys, revoked: RevokedSessions::default() }
    }

    /// A verifier for `service` (which also accepts service tokens addressed to it), that
    /// refuses tokens of ended sessions.
    pub fn verifier(&self, service: &str) -> Verifier {
        Verifier::revoking(self.keys.clone(), self.common.platform.issuer(), service, self.revoked.clone())
    }

    /// Service `name` as the server bootstrap takes it: `router` behind token checks with
    /// this context's keys, and ready when its store answers `store_ping` and it holds keys.
    pub fn service<F, Fut>(
        &self,
        name: &'static str,
        router: axum::Router,
        openapi: utoipa::openapi::OpenApi,
        store_ping: F,
    ) -> crate::server::Service
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let verifier = self.verifier(name);
        let router = router.layer(crate::auth::JwtLayer::new(verifier.clone()));
        let ready = ready_check(verifier, store_ping);
        crate::server::Service { name, router, openapi, ready }
    }

    /// Service tokens for calls `service` makes, when it has a client secret.
    pub fn service_tokens(&self, service: &str) -> Option<Arc<ServiceTokens>> {
        let secret = self.common.platform.client_secret.clone()?;
        Some(Arc::new(ServiceTokens::new(ClientCredentials {
            token_url: self.common.platform.token_url(),
            client_id: service.to_owned(),
            client_secret: secret,
        })))
    }

    /// The database file of a service under the data directory.
    /// The platform's mailer: SMTP when configured, else the mailbox under the data
    /// directory (one for every service of `veche up`).
    pub fn mailer(&self) -> anyhow::Result<crate::mail::Mailer> {
        let mail = &self.common.mail;
        crate::mail::Mailer::new(mail.smtp_url.as_deref(), self.common.data_dir.join("mail"), &mail.mail_from)
    }

    pub fn db_path(&self, service: &str) -> std::path::PathBuf {
        self.common.data_dir.join(format!("{service}.db"))
    }
}

/// Readiness of a typical service: its store answers and it holds verification keys
/// (fetching them if it has none yet: the issuer may have started after it).
pub fn ready_check<F, Fut>(verifier: Verifier, store_ping: F) -> ReadyCheck
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let store_ping = Arc::new(store_ping);
    Arc::new(move || {
        let verifier = verifier.clone();
        let store_ping = store_ping.clone();
        Box::pin(async move {
            store_ping().await.map_err(|e| format!("store: {e}"))?;
            if !verifier.has_keys() {
                verifier.refresh_keys(false).await.map_err(|e| format!("keys: {e}"))?;
            }
            if verifier.has_keys() { Ok(()) } else { Err("no token verification keys".into()) }
        })
    })
}
