//! Providers that speak OAuth 2.0 but not OpenID Connect: GitHub (or GitHub Enterprise),
//! Yandex ID and VK ID. The authorization code flow with PKCE goes through the `oauth2`
//! crate; who signed in comes from each provider's own user API:
//!
//! - GitHub: `GET /user` (the numeric id: logins can be renamed, ids cannot) and
//!   `GET /user/emails` (the primary address, with GitHub's own `verified` flag);
//! - Yandex ID: `GET /info?format=json` (`id`, and `default_email`: Yandex ID lists
//!   only addresses its owner confirmed);
//! - VK ID: `POST /oauth2/user_info` (`user_id`; VK ID says nothing of its email being
//!   confirmed, so it is taken as unverified: such an account is linked by its owner).

use super::{Authorization, ExternalPerson, Http, ProviderError, Returned, error_chain};
use crate::providers::{Provider, ProviderKind};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn client(provider: &Provider, callback: &str) -> Result<Client, ProviderError> {
    let (authorize, token, _) = provider.plain_endpoints();
    let bad = |e: oauth2::url::ParseError| ProviderError::Unavailable(format!("a configured URL: {e}"));
    let client = BasicClient::new(ClientId::new(provider.client_id.clone()))
        .set_auth_uri(AuthUrl::new(authorize).map_err(bad)?)
        .set_token_uri(TokenUrl::new(token).map_err(bad)?)
        .set_redirect_uri(RedirectUrl::new(callback.to_owned()).map_err(bad)?)
        // GitHub and VK ID document the client's id (and secret) as form parameters.
        .set_auth_type(if provider.kind == ProviderKind::Yandex { AuthType::BasicAuth } else { AuthType::RequestBody });
    // VK ID's web clients are public: PKCE alone proves the client.
    Ok(match provider.kind {
        ProviderKind::Vkid => client,
        _ => client.set_client_secret(ClientSecret::new(provider.client_secret.clone())),
    })
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

pub async fn finish(
    http: &Http,
    provider: &Provider,
    callback: &str,
    back: &Returned<'_>,
) -> Result<ExternalPerson, ProviderError> {
    let client = client(provider, callback)?;
    let mut exchange = client
        .exchange_code(AuthorizationCode::new(back.code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(back.pkce_verifier.to_owned()));
    if provider.kind == ProviderKind::Vkid {
        // VK ID binds a code to the device it names on the callback, and wants the
        // state again.
        let device = back.device_id.ok_or_else(|| ProviderError::Refused("VK ID sent no device_id".into()))?;
        exchange =
            exchange.add_extra_param("device_id", device.to_owned()).add_extra_param("state", back.state.to_owned());
    }
    let token = exchange.request_async(http).await.map_err(|e| match e {
        RequestTokenError::Request(e) => ProviderError::Unavailable(format!("token endpoint: {}", error_chain(&e))),
        // GitHub refuses a code with a 200 and an error body, which is no token.
        other => ProviderError::Refused(format!("token endpoint: {}", error_chain(&other))),
    })?;
    let token = token.access_token().secret();
    let api = provider.plain_endpoints().2;
    match provider.kind {
        ProviderKind::Github => github_person(http, &api, token).await,
        ProviderKind::Yandex => yandex_person(http, &api, token).await,
        ProviderKind::Vkid => vkid_person(http, &api, &provider.client_id, token).await,
        ProviderKind::Oidc => Err(ProviderError::Refused("an OpenID provider is not a plain OAuth one".into())),
    }
}

async fn github_person(http: &Http, api: &str, token: &str) -> Result<ExternalPerson, ProviderError> {
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
    let github = |path: &str| {
        http.0
            .get(format!("{api}{path}"))
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    };
    let user: User = read(github("/user")).await?;
    let emails: Vec<Email> = read(github("/user/emails")).await?;
    let primary = emails.into_iter().find(|e| e.primary);
    Ok(ExternalPerson {
        subject: user.id.to_string(),
        email_verified: primary.as_ref().is_some_and(|e| e.verified),
        email: primary.map(|e| e.email),
        name: user.name.filter(|n| !n.trim().is_empty()).or(Some(user.login)),
    })
}

async fn yandex_person(http: &Http, api: &str, token: &str) -> Result<ExternalPerson, ProviderError> {
    #[derive(Deserialize)]
    struct Info {
        id: String,
        login: Option<String>,
        default_email: Option<String>,
        real_name: Option<String>,
        display_name: Option<String>,
    }
    let request =
        http.0.get(format!("{api}/info?format=json")).header(reqwest::header::AUTHORIZATION, format!("OAuth {token}"));
    let info: Info = read(request).await?;
    Ok(ExternalPerson {
        subject: info.id,
        email_verified: info.default_email.is_some(),
        email: info.default_email,
        name: info.real_name.or(info.display_name).or(info.login),
    })
}

async fn vkid_person(http: &Http, api: &str, client_id: &str, token: &str) -> Result<ExternalPerson, ProviderError> {
    #[derive(Deserialize)]
    struct Answer {
        user: User,
    }
    #[derive(Deserialize)]
    struct User {
        user_id: String,
        first_name: Option<String>,
        last_name: Option<String>,
        email: Option<String>,
    }
    let request =
        http.0.post(format!("{api}/oauth2/user_info")).form(&[("client_id", client_id), ("access_token", token)]);
    let user = read::<Answer>(request).await?.user;
    let name = [user.first_name, user.last_name].into_iter().flatten().collect::<Vec<_>>().join(" ");
    Ok(ExternalPerson {
        subject: user.user_id,
        email: user.email.filter(|e| !e.is_empty()),
        email_verified: false,
        name: Some(name).filter(|n| !n.is_empty()),
    })
}

/// One call of a provider's user API: refused (401, 403) or unavailable (anything else
/// that is not a success) are told apart.
async fn read<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, ProviderError> {
    let response =
        request.send().await.map_err(|e| ProviderError::Unavailable(format!("user API: {}", e.without_url())))?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(ProviderError::Refused(format!("user API: {status}")));
    }
    if !status.is_success() {
        return Err(ProviderError::Unavailable(format!("user API: {status}")));
    }
    response.json().await.map_err(|e| ProviderError::Unavailable(format!("user API: {}", e.without_url())))
}
