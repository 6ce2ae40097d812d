//! OpenID Connect as a relying party, with the `openidconnect` crate: discovery (cached,
//! refetched when a signature names a key we have not seen, which is how providers
//! rotate keys), the authorization code flow with PKCE (S256), `state` and `nonce`, and
//! ID token validation: signature by the provider's JWKS, `iss`, `aud`, `exp`, `nonce`,
//! and `at_hash` when present; the profile from the UserInfo endpoint when the ID token
//! does not carry it.

use super::{Authorization, ExternalPerson, Http, ProviderError, error_chain};
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

/// Discovery documents by provider id, with when they were fetched.
#[derive(Default)]
pub struct Discovery(Mutex<HashMap<String, (CoreProviderMetadata, Instant)>>);

impl Discovery {
    async fn metadata(
        &self,
        http: &Http,
        provider: &Provider,
        fresh: bool,
    ) -> Result<CoreProviderMetadata, ProviderError> {
        if !fresh {
            let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((m, _)) = cache.get(&provider.id).filter(|(_, at)| at.elapsed() < METADATA_TTL) {
                return Ok(m.clone());
            }
        }
        let issuer = IssuerUrl::new(provider.issuer.clone().unwrap_or_default())
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let m = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("discovery: {}", error_chain(&e))))?;
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(provider.id.clone(), (m.clone(), Instant::now()));
        Ok(m)
    }
}

/// The type-state client the crate builds from discovery, with our redirect URI.
type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn new_client(provider: &Provider, metadata: CoreProviderMetadata, callback: &str) -> Result<Client, ProviderError> {
    let redirect = RedirectUrl::new(callback.to_owned()).map_err(|e| ProviderError::Refused(e.to_string()))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(provider.client_secret.clone())),
    )
    .set_redirect_uri(redirect))
}

/// The provider's authorization URL for a new flow that returns to `callback`.
pub async fn authorize(
    http: &Http,
    discovery: &Discovery,
    provider: &Provider,
    callback: &str,
) -> Result<Authorization, ProviderError> {
    let client = new_client(provider, discovery.metadata(http, provider, false).await?, callback)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request =
        client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
    for scope in provider.scopes().into_iter().filter(|s| s != "openid") {
        request = request.add_scope(Scope::new(scope));
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
    http: &Http,
    discovery: &Discovery,
    provider: &Provider,
    callback: &str,
    code: &str,
    pkce_verifier: &str,
    nonce: &str,
) -> Result<ExternalPerson, ProviderError> {
    let client = new_client(provider, discovery.metadata(http, provider, false).await?, callback)?;
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| ProviderError::Unavailable(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(http)
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(refusal) => ProviderError::Refused(format!("token endpoint: {refusal}")),
            other => ProviderError::Unavailable(format!("token endpoint: {}", error_chain(&other))),
        })?;
    let id_token = response.id_token().ok_or_else(|| ProviderError::Refused("no ID token in the answer".into()))?;
    let nonce = Nonce::new(nonce.to_owned());
    let fresh;
    let mut verifier = client.id_token_verifier();
    let claims = match id_token.claims(&verifier, &nonce) {
        Ok(claims) => claims.clone(),
        // A key we do not know may be a new one: refetch the keys once and retry.
        Err(ClaimsVerificationError::SignatureVerification(_)) => {
            fresh = new_client(provider, discovery.metadata(http, provider, true).await?, callback)?;
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
            return Err(ProviderError::Refused("the ID token's at_hash does not match the access token".into()));
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
        let info: CoreUserInfoClaims = request.request_async(http).await.map_err(|e| match e {
            UserInfoError::ClaimsVerification(e) => ProviderError::Refused(format!("userinfo: {e}")),
            other => ProviderError::Unavailable(format!("userinfo: {}", error_chain(&other))),
        })?;
        person.email = info.email().map(|e| e.as_str().to_owned());
        person.email_verified = info.email_verified() == Some(true);
        person.name = person.name.or_else(|| info.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()));
    }
    Ok(person)
}

fn refused(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Refused(format!("ID token: {e}"))
}
