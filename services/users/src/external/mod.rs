//! Speaking to outside identity providers: what every kind shares (the HTTP client, the
//! flow's secrets, the person it yields, its errors), and the dispatch to each kind:
//! [`oidc`] (OpenID Connect) and [`plain`] (OAuth 2.0 with a user API: GitHub, Yandex
//! ID, VK ID).
//!
//! HTTP goes through our own reqwest client: no redirects followed (a token endpoint
//! that redirects is refused, as the protocol crates' authors advise), short timeouts,
//! no proxy from the environment. Provider URLs come from the platform's configuration,
//! not from users.

pub mod oidc;
pub mod plain;

use crate::providers::{Provider, ProviderKind};
use std::time::Duration;

/// Why a sign-in with a provider did not work.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached, or answered nonsense: try again later.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider answered, and what it said is not acceptable (a refused code, an ID
    /// token that fails validation).
    #[error("the identity provider's answer was refused: {0}")]
    Refused(String),
}

/// Where to send the browser, and what to keep until it comes back.
pub struct Authorization {
    pub url: String,
    pub state: String,
    /// OpenID Connect only (empty otherwise).
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalPerson {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The HTTP client the protocol crates call, over our reqwest.
#[derive(Clone)]
pub struct Http(pub reqwest::Client);

impl Default for Http {
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .no_proxy()
            .user_agent(concat!("veche/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client");
        Self(client)
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(send(self.0.clone(), request))
    }
}

async fn send(
    client: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let request = reqwest::Request::try_from(request).map_err(|e| HttpError(e.to_string()))?;
    let response = client.execute(request).await.map_err(|e| HttpError(e.without_url().to_string()))?;
    let mut out = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        out = out.header(name, value);
    }
    let body = response.bytes().await.map_err(|e| HttpError(e.without_url().to_string()))?;
    out.body(body.to_vec()).map_err(|e| HttpError(e.to_string()))
}

/// What a flow brings back to finish with: the provider's code, its state and device
/// (VK ID wants both again), and the secrets kept since the start.
pub struct Returned<'a> {
    pub code: &'a str,
    pub state: &'a str,
    pub device_id: Option<&'a str>,
    pub pkce_verifier: &'a str,
    pub nonce: &'a str,
}

/// The providers' client: one per service, shared.
#[derive(Default)]
pub struct Providers {
    http: Http,
    oidc: oidc::Discovery,
}

impl Providers {
    /// The provider's authorization URL for a new flow that returns to `callback`.
    pub async fn authorize(&self, provider: &Provider, callback: &str) -> Result<Authorization, ProviderError> {
        match provider.kind {
            ProviderKind::Oidc => oidc::authorize(&self.http, &self.oidc, provider, callback).await,
            ProviderKind::Github | ProviderKind::Yandex | ProviderKind::Vkid => plain::authorize(provider, callback),
        }
    }

    /// Exchanges the code the provider sent back, and says who signed in.
    pub async fn finish(
        &self,
        provider: &Provider,
        callback: &str,
        back: Returned<'_>,
    ) -> Result<ExternalPerson, ProviderError> {
        match provider.kind {
            ProviderKind::Oidc => {
                oidc::finish(&self.http, &self.oidc, provider, callback, back.code, back.pkce_verifier, back.nonce)
                    .await
            }
            ProviderKind::Github | ProviderKind::Yandex | ProviderKind::Vkid => {
                plain::finish(&self.http, provider, callback, &back).await
            }
        }
    }
}

/// An error with its causes, for the log.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
