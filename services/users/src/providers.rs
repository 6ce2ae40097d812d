//! Outside identity providers people may sign in with, as configured
//! (`VECHE_AUTH_PROVIDERS`, a JSON array), and the frontend addresses a sign-in may
//! return to. Pure: parsing and checks, no I/O.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How Veche speaks to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenID Connect, found by discovery from its issuer (Keycloak, Google, corporate
    /// identity providers, any certified provider).
    Oidc,
    /// GitHub (or GitHub Enterprise): OAuth 2.0, and who signed in from its REST API.
    Github,
    /// Yandex ID: OAuth 2.0, and who signed in from its `/info` API.
    Yandex,
    /// VK ID: OAuth 2.1 with PKCE, and who signed in from its `user_info` API.
    Vkid,
}

/// One provider, as configured.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Short name in URLs: `keycloak`, `google`, `corp`.
    pub id: String,
    /// What people see on the button.
    pub name: String,
    pub kind: ProviderKind,
    /// OpenID Connect: the issuer URL (discovery at
    /// `<issuer>/.well-known/openid-configuration`).
    #[serde(default)]
    pub issuer: Option<String>,
    pub client_id: String,
    /// The client secret, or (below) the environment variable that holds it.
    #[serde(default)]
    pub client_secret: String,
    /// Where the secret is when it is not inline: an environment variable's name (the
    /// operator sets `VECHE_AUTH_CLIENT_SECRET_<ID>` from a Secret).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Scopes asked for; by default `openid email profile` (OpenID Connect) or
    /// `read:user user:email` (GitHub).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Plain OAuth providers (GitHub, Yandex ID, VK ID): where people authorize, the
    /// token endpoint, and the user API; the public services' by default (set them for
    /// GitHub Enterprise).
    #[serde(default)]
    pub authorization_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub api_url: Option<String>,
    /// Email domains whose people sign in only through this provider (a company's
    /// identity provider): no password sign-up, login or reset for them.
    #[serde(default)]
    pub domains: Vec<String>,
}

impl Provider {
    pub fn scopes(&self) -> Vec<String> {
        let defaults: &[&str] = match self.kind {
            ProviderKind::Oidc => &["openid", "email", "profile"],
            ProviderKind::Github => &["read:user", "user:email"],
            ProviderKind::Yandex => &["login:info", "login:email"],
            ProviderKind::Vkid => &["vkid.personal_info", "email"],
        };
        self.scopes.clone().unwrap_or_else(|| defaults.iter().map(|s| s.to_string()).collect())
    }

    /// A plain OAuth provider's authorization URL, token URL and user API base.
    pub fn plain_endpoints(&self) -> (String, String, String) {
        let (authorize, token, api) = match self.kind {
            ProviderKind::Yandex => {
                ("https://oauth.yandex.ru/authorize", "https://oauth.yandex.ru/token", "https://login.yandex.ru")
            }
            ProviderKind::Vkid => ("https://id.vk.com/authorize", "https://id.vk.com/oauth2/auth", "https://id.vk.com"),
            _ => (
                "https://github.com/login/oauth/authorize",
                "https://github.com/login/oauth/access_token",
                "https://api.github.com",
            ),
        };
        let or = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_owned());
        (
            or(&self.authorization_url, authorize),
            or(&self.token_url, token),
            or(&self.api_url, api).trim_end_matches('/').to_owned(),
        )
    }
}

/// Secrets stay out of logs and `--help`.
impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The configured providers, in the order given.
#[derive(Debug, Clone, Default)]
pub struct Providers(pub Vec<Provider>);

impl Providers {
    pub fn get(&self, id: &str) -> Option<&Provider> {
        self.0.iter().find(|p| p.id == id)
    }

    /// The provider an email's domain must sign in through, if its domain is bound.
    pub fn bound(&self, email: &str) -> Option<&Provider> {
        let domain = email.rsplit_once('@')?.1.to_ascii_lowercase();
        self.0.iter().find(|p| p.domains.contains(&domain))
    }
}

/// `VECHE_AUTH_PROVIDERS`: a JSON array of providers (empty: none).
pub fn parse_providers(s: &str) -> Result<Providers, String> {
    if s.trim().is_empty() {
        return Ok(Providers::default());
    }
    let mut list: Vec<Provider> = serde_json::from_str(s).map_err(|e| format!("a JSON array of providers: {e}"))?;
    for p in &mut list {
        match (&p.client_secret_env, p.client_secret.is_empty()) {
            (Some(var), true) => {
                p.client_secret = std::env::var(var).map_err(|_| format!("provider `{}`: {var} is not set", p.id))?;
            }
            (Some(_), false) => {
                return Err(format!("provider `{}`: client_secret or client_secret_env, not both", p.id));
            }
            (None, _) => {}
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in &list {
        let slug = !p.id.is_empty()
            && p.id.len() <= 32
            && p.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !slug {
            return Err(format!("provider id `{}`: 1 to 32 of a-z, 0-9 and -", p.id));
        }
        if !seen.insert(p.id.as_str()) {
            return Err(format!("provider id `{}` is given twice", p.id));
        }
        if p.name.trim().is_empty() || p.client_id.is_empty() || p.client_secret.is_empty() {
            return Err(format!("provider `{}` needs a name, a client_id and a client_secret", p.id));
        }
        let github_urls =
            [("authorization_url", &p.authorization_url), ("token_url", &p.token_url), ("api_url", &p.api_url)];
        match p.kind {
            ProviderKind::Oidc => {
                let issuer = p.issuer.as_deref().ok_or_else(|| format!("provider `{}` needs an issuer", p.id))?;
                check_base_url(issuer).map_err(|e| format!("provider `{}`: issuer {e}", p.id))?;
                if !p.scopes().iter().any(|s| s == "openid") {
                    return Err(format!("provider `{}`: OpenID Connect needs the `openid` scope", p.id));
                }
                if let Some((name, _)) = github_urls.iter().find(|(_, v)| v.is_some()) {
                    return Err(format!(
                        "provider `{}`: `{name}` is for plain OAuth providers; OpenID Connect finds its endpoints",
                        p.id
                    ));
                }
            }
            ProviderKind::Github | ProviderKind::Yandex | ProviderKind::Vkid => {
                if p.issuer.is_some() {
                    return Err(format!(
                        "provider `{}`: a plain OAuth provider has no issuer; set its URLs instead",
                        p.id
                    ));
                }
                for (name, value) in github_urls {
                    if let Some(url) = value {
                        check_base_url(url).map_err(|e| format!("provider `{}`: {name} {e}", p.id))?;
                    }
                }
            }
        }
    }
    let mut bound = std::collections::HashSet::new();
    for p in &mut list {
        for d in &mut p.domains {
            *d = d.trim().to_ascii_lowercase();
            if !kit::validate::is_email_domain(d) {
                return Err(format!("provider `{}`: `{d}` is not a domain name", p.id));
            }
            if !bound.insert(d.clone()) {
                return Err(format!("domain `{d}` is bound to two providers"));
            }
        }
    }
    Ok(Providers(list))
}

/// https, or http to a loopback host (a provider on the same machine, in tests).
fn check_base_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("is not a URL: {e}"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("must be https (http only on loopback)".into()),
    }
}

/// Where a sign-in may send the browser back to: exact URIs (OAuth 2.1 compares redirect
/// URIs as strings), here the frontends' pages that finish a sign-in.
#[derive(Debug, Clone, Default)]
pub struct ReturnAddresses(pub Vec<String>);

impl ReturnAddresses {
    pub fn allows(&self, uri: &str) -> bool {
        self.0.iter().any(|allowed| allowed == uri)
    }
}

/// `VECHE_AUTH_REDIRECT_URIS`: comma-separated absolute URIs without fragments.
pub fn parse_return_addresses(s: &str) -> Result<ReturnAddresses, String> {
    let mut list = Vec::new();
    for uri in s.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let url = url::Url::parse(uri).map_err(|e| format!("`{uri}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") || url.fragment().is_some() {
            return Err(format!("`{uri}`: an http(s) URI without a fragment"));
        }
        list.push(uri.to_owned());
    }
    Ok(ReturnAddresses(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_parse_with_defaults_and_are_checked() {
        let ps = parse_providers(
            r#"[{"id": "corp", "name": "Corporate SSO", "kind": "oidc", "issuer": "https://sso.example.org/realms/x",
                 "client_id": "veche", "client_secret": "s3cret", "domains": ["Corp.Example"]}]"#,
        )
        .unwrap();
        assert_eq!(ps.bound("ann@corp.example").map(|p| p.id.as_str()), Some("corp"));
        assert!(ps.bound("ann@sub.corp.example").is_none() && ps.bound("ann@example.org").is_none());
        let corp = ps.get("corp").unwrap();
        assert_eq!(corp.scopes(), ["openid", "email", "profile"]);
        let gh = parse_providers(
            r#"[{"id": "gh", "name": "GitHub", "kind": "github", "client_id": "c", "client_secret": "s"}]"#,
        )
        .unwrap();
        let gh = gh.get("gh").unwrap();
        assert_eq!(gh.scopes(), ["read:user", "user:email"]);
        assert_eq!(gh.plain_endpoints().2, "https://api.github.com");
        assert!(!format!("{corp:?}").contains("s3cret"), "no secret in Debug");
        assert!(parse_providers("").unwrap().0.is_empty());

        let bad = |json: &str| parse_providers(json).unwrap_err();
        let one = |fields: &str| {
            format!(r#"[{{"name": "N", "kind": "oidc", "client_id": "c", "client_secret": "s", {fields}}}]"#)
        };
        assert!(bad(&one(r#""id": "Corp", "issuer": "https://a.example""#)).contains("a-z"));
        assert!(bad(&one(r#""id": "corp", "issuer": "http://a.example""#)).contains("https"));
        assert!(bad(&one(r#""id": "corp""#)).contains("needs an issuer"));
        assert!(
            bad(&one(r#""id": "corp", "issuer": "https://a.example", "api_url": "https://a.example""#))
                .contains("plain OAuth")
        );
        assert!(parse_providers(&one(r#""id": "corp", "issuer": "http://127.0.0.1:9000""#)).is_ok());
        assert!(bad(&one(r#""id": "corp", "issuer": "https://a.example", "scopes": ["email"]"#)).contains("openid"));
        assert!(bad(&one(r#""id": "corp", "issuer": "https://a.example", "extra": 1"#)).contains("unknown field"));
        assert!(
            bad(&one(r#""id": "corp", "issuer": "https://a.example", "domains": ["not a domain"]"#)).contains("domain")
        );
        let twice =
            format!("[{0}, {0}]", &one(r#""id": "corp", "issuer": "https://a.example""#)[1..].trim_end_matches(']'));
        assert!(bad(&twice).contains("twice"), "{twice}");
    }

    #[test]
    fn return_addresses_match_exactly() {
        let r = parse_return_addresses("https://app.example.org/signed-in, http://127.0.0.1:8080/dashboard").unwrap();
        assert!(r.allows("https://app.example.org/signed-in"));
        assert!(!r.allows("https://app.example.org/signed-in/evil"));
        assert!(!r.allows("https://app.example.org/signed-in?x=1"));
        assert!(parse_return_addresses("https://a.example/#x").is_err());
        assert!(parse_return_addresses("javascript:alert(1)").is_err());
    }
}
