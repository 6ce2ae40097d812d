//! OpenID Connect as a relying party, with the `openidconnect` crate: discovery (cached,
//! refetched when a signature names a key we have not seen, which is how providers
//! rotate keys), the authorization code flow with PKCE (S256), `state` and `nonce`, and
//! ID token validation: signature by the provider's JWKS, `iss`, `aud`, `exp`, `nonce`,
//! and `at_hash` when present; the profile from the UserInfo endpoint when the ID token
//! does not carry it.
//!
//! HTTP goes through our own reqwest client: no redirects followed (a token endpoint
//! that redirects is refused, as the crate's authors advise), short timeouts. Provider
//! URLs come from the platform's configuration, not from users.

use crate::providers::Provider;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse,
    UserInfoError,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Discovery documents (with their keys) are reused this long.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// Why a sign-in with a provider did not work.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
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

pub struct Oidc {
    http: Http,
    metadata: Mutex<HashMap<String, (CoreProviderMetadata, Instant)>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The HTTP client the crate calls, over our reqwest.
struct Http(reqwest::Client);

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

impl Default for Oidc {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .no_proxy()
            .build()
            .expect("an HTTP client");
        Self { http: Http(http), metadata: Mutex::default() }
    }
}

impl Oidc {
    async fn metadata(&self, provider: &Provider, fresh: bool) -> Result<CoreProviderMetadata, OidcError> {
        if !fresh {
            let cache = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((m, _)) = cache.get(&provider.id).filter(|(_, at)| at.elapsed() < METADATA_TTL) {
                return Ok(m.clone());
            }
        }
        let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(|e| OidcError::Unavailable(e.to_string()))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Unavailable(format!("discovery: {}", error_chain(&e))))?;
        self.metadata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(provider.id.clone(), (m.clone(), Instant::now()));
        Ok(m)
    }

    fn client(
        provider: &Provider,
        metadata: CoreProviderMetadata,
        callback: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect = RedirectUrl::new(callback.to_owned()).map_err(|e| OidcError::Refused(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(provider.client_id.clone()),
            Some(ClientSecret::new(provider.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// The provider's authorization URL for a new flow that returns to `callback`.
    pub async fn authorize(&self, provider: &Provider, callback: &str) -> Result<Authorization, OidcError> {
        let client = Self::client(provider, self.metadata(provider, false).await?, callback)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for scope in provider.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code the provider sent back and validates the ID token.
    pub async fn finish(
        &self,
        provider: &Provider,
        callback: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<ExternalPerson, OidcError> {
        let client = Self::client(provider, self.metadata(provider, false).await?, callback)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Unavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(refusal) => OidcError::Refused(format!("token endpoint: {refusal}")),
                other => OidcError::Unavailable(format!("token endpoint: {}", error_chain(&other))),
            })?;
        let id_token = response.id_token().ok_or_else(|| OidcError::Refused("no ID token in the answer".into()))?;
        let nonce = Nonce::new(nonce.to_owned());
        let fresh;
        let mut verifier = client.id_token_verifier();
        let claims = match id_token.claims(&verifier, &nonce) {
            Ok(claims) => claims.clone(),
            // A key we do not know may be a new one: refetch the keys once and retry.
            Err(ClaimsVerificationError::SignatureVerification(_)) => {
                fresh = Self::client(provider, self.metadata(provider, true).await?, callback)?;
                verifier = fresh.id_token_verifier();
                id_token.claims(&verifier, &nonce).map_err(refused)?.clone()
            }
            Err(e) => return Err(refused(e)),
        };
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token.signing_alg().map_err(refused)?;
            let key = id_token.signing_key(&verifier).map_err(refused)?;
            let actual = AccessTokenHash::from_token(response.access_token(), alg, key).map_err(refused)?;
            if actual != *expected {
                return Err(OidcError::Refused("the ID token's at_hash does not match the access token".into()));
            }
        }
        let mut person = ExternalPerson {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified() == Some(true),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()),
        };
        // Many providers keep the profile out of the ID token when an access token can
        // fetch it: ask the UserInfo endpoint, for this subject only (OIDC Core §5.3.2).
        if person.email.is_none()
            && let Ok(request) = client.user_info(response.access_token().clone(), Some(claims.subject().clone()))
        {
            let info: CoreUserInfoClaims = request.request_async(&self.http).await.map_err(|e| match e {
                UserInfoError::ClaimsVerification(e) => OidcError::Refused(format!("userinfo: {e}")),
                other => OidcError::Unavailable(format!("userinfo: {}", error_chain(&other))),
            })?;
            person.email = info.email().map(|e| e.as_str().to_owned());
            person.email_verified = info.email_verified() == Some(true);
            person.name = person.name.or_else(|| info.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()));
        }
        Ok(person)
    }
}

fn refused(e: impl std::fmt::Display) -> OidcError {
    OidcError::Refused(format!("ID token: {e}"))
}

/// An error with its causes, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
