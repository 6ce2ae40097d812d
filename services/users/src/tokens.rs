//! Issuing access and service tokens (the platform's JWTs).

use crate::keys::{KeyError, KeyRing};
use crate::model::User;
use kit::auth::{Claims, PLATFORM_AUDIENCE, TokenUse};
use uuid::Uuid;

/// Signs tokens for the platform.
#[derive(Clone)]
pub struct Issuer {
    pub keys: KeyRing,
    pub issuer: String,
    pub access_ttl: i64,
    pub service_ttl: i64,
    /// Whether the `admin` role needs an account with a second factor.
    pub admin_needs_second_factor: bool,
}

impl Issuer {
    /// An access token for a person's session.
    pub fn access_token(&self, user: &User, session_id: Uuid, now: i64) -> Result<String, KeyError> {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user.id.to_string(),
            aud: PLATFORM_AUDIENCE.to_owned(),
            exp: (now + self.access_ttl) as u64,
            nbf: now as u64,
            iat: now as u64,
            jti: Uuid::new_v4().to_string(),
            token_use: TokenUse::Access,
            sid: Some(session_id.to_string()),
            email: Some(user.email.clone()),
            email_verified: Some(user.email_verified),
            roles: self.roles(user),
        };
        self.keys.sign(&claims, now)
    }

    /// The roles a token carries: the account's, without `admin` while administrators
    /// must have a second factor and this one has none (it may still enrol one).
    fn roles(&self, user: &User) -> Vec<String> {
        let mut roles = user.roles.clone();
        if self.admin_needs_second_factor && !user.second_factor {
            roles.retain(|r| r != crate::model::ROLE_ADMIN);
        }
        roles
    }

    /// A token for service `client` to call service `audience`.
    pub fn service_token(&self, client: &str, audience: &str, now: i64) -> Result<String, KeyError> {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: format!("service:{client}"),
            aud: audience.to_owned(),
            exp: (now + self.service_ttl) as u64,
            nbf: now as u64,
            iat: now as u64,
            jti: Uuid::new_v4().to_string(),
            token_use: TokenUse::Service,
            sid: None,
            email: None,
            email_verified: None,
            roles: Vec::new(),
        };
        self.keys.sign(&claims, now)
    }
}
