//! GitHub sign-in (or GitHub Enterprise): OAuth 2.0's authorization code flow with PKCE
//! through the `oauth2` crate, then who signed in from the REST API: the numeric user id
//! (logins can be renamed, ids cannot) and the primary email with GitHub's own
//! `verified` flag from `/user/emails`.

use super::{Authorization, ExternalPerson, Http, ProviderError, error_chain};
use crate::providers::Provider;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn client(provider: &Provider, callback: &str) -> Result<Client, ProviderError> {
    let (authorize, token, _) = provider.github_endpoints();
    let bad = |e: oauth2::url::ParseError| ProviderError::Unavailable(format!("a configured URL: {e}"));
    Ok(BasicClient::new(ClientId::new(provider.client_id.clone()))
        .set_client_secret(ClientSecret::new(provider.client_secret.clone()))
        .set_auth_uri(AuthUrl::new(authorize).map_err(bad)?)
        .set_token_uri(TokenUrl::new(token).map_err(bad)?)
        .set_redirect_uri(RedirectUrl::new(callback.to_owned()).map_err(bad)?)
        // GitHub documents the client's credentials as form parameters.
        .set_auth_type(AuthType::RequestBody))
}

pub fn authorize(provider: &Provider, callback: &str) -> Result<Authorization, ProviderError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = client(provider, callback)?;
    let mut request = client.authorize_url(CsrfToken::new_random);
    for scope in provider.scopes() {
        request = request.add_scope(Scope::new(scope));
    }
    let (url, state) = request.set_pkce_challenge(challenge).url();
    Ok(Authorization {
        url: url.to_string(),
        state: state.secret().clone(),
        nonce: String::new(),
        pkce_verifier: verifier.secret().clone(),
    })
}

#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

pub async fn finish(
    http: &Http,
    provider: &Provider,
    callback: &str,
    code: &str,
    pkce_verifier: &str,
) -> Result<ExternalPerson, ProviderError> {
    let token = client(provider, callback)?
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(http)
        .await
        .map_err(|e| match e {
            RequestTokenError::Request(e) => ProviderError::Unavailable(format!("token endpoint: {}", error_chain(&e))),
            // GitHub refuses a code with a 200 and an error body, which is no token.
            other => ProviderError::Refused(format!("token endpoint: {}", error_chain(&other))),
        })?;
    let token = token.access_token().secret();
    let api = provider.github_endpoints().2;
    let user: User = get(http, &format!("{api}/user"), token).await?;
    let emails: Vec<Email> = get(http, &format!("{api}/user/emails"), token).await?;
    let primary = emails.into_iter().find(|e| e.primary);
    Ok(ExternalPerson {
        subject: user.id.to_string(),
        email_verified: primary.as_ref().is_some_and(|e| e.verified),
        email: primary.map(|e| e.email),
        name: user.name.filter(|n| !n.trim().is_empty()).or(Some(user.login)),
    })
}

/// One call of GitHub's REST API with the person's token.
async fn get<T: serde::de::DeserializeOwned>(http: &Http, url: &str, token: &str) -> Result<T, ProviderError> {
    let response = http
        .0
        .get(url)
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await
        .map_err(|e| ProviderError::Unavailable(format!("{url}: {}", e.without_url())))?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(ProviderError::Refused(format!("{url}: {status}")));
    }
    if !status.is_success() {
        return Err(ProviderError::Unavailable(format!("{url}: {status}")));
    }
    response.json().await.map_err(|e| ProviderError::Unavailable(format!("{url}: {}", e.without_url())))
}
