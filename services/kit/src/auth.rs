//! JWT verification for every service: a key set (JWKS URL, file or in-process), a
//! verifier that pins algorithms and checks `iss`/`aud`/`exp`/`nbf`, a cache of verified
//! tokens, and a tower layer that puts [`Claims`] into the request.

use crate::problem::ApiError;
use crate::revoked::RevokedSessions;
use axum::extract::{FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use thread_local::ThreadLocal;
use uuid::Uuid;

/// The audience of user access tokens: the platform API as a whole.
pub const PLATFORM_AUDIENCE: &str = "veche";

/// Only asymmetric algorithms verify. `none` and HMAC are never accepted, so a public
/// key can never be abused as an HMAC secret.
const ALLOWED: [Algorithm; 4] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256];

/// Clock skew we forgive on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// What a token is for: a person's session, or one service calling another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUse {
    Access,
    Service,
}

/// The claims Veche puts in its tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// A user id, or `service:<name>` for service tokens.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub token_use: TokenUse,
    /// The session this access token belongs to (absent on service tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl Claims {
    /// The user behind an access token; `None` for service tokens.
    pub fn user_id(&self) -> Option<Uuid> {
        match self.token_use {
            TokenUse::Access => Uuid::parse_str(&self.sub).ok(),
            TokenUse::Service => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.token_use == TokenUse::Access && self.roles.iter().any(|r| r == "admin")
    }

    /// The calling service's name, for service tokens.
    pub fn service(&self) -> Option<&str> {
        match self.token_use {
            TokenUse::Service => self.sub.strip_prefix("service:"),
            TokenUse::Access => None,
        }
    }
}

/// Why a token was refused. The message goes to the caller; it never echoes the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the Authorization header must be `Bearer <token>`")]
    BadHeader,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token names no known signing key")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    Immature,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token was issued by someone else")]
    Issuer,
    #[error("the token is meant for someone else")]
    Audience,
    #[error("the token is invalid")]
    Invalid,
    #[error("the signing keys could not be loaded")]
    KeysUnavailable,
    #[error("the session of this token has ended")]
    SessionEnded,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::KeysUnavailable => ApiError::Unavailable(e.to_string()),
            _ => ApiError::Unauthorized(e.to_string()),
        }
    }
}

/// Where verification keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// A JWKS document at a URL (`/.well-known/jwks.json` of the users service).
    Url(String),
    /// A JWKS document in a local file (a mounted Secret or ConfigMap).
    File(PathBuf),
    /// Keys handed over in-process (`veche up`), read afresh on every refresh.
    Provider(Arc<dyn Fn() -> JwkSet + Send + Sync>),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Url(u) => write!(f, "Url({u})"),
            Self::File(p) => write!(f, "File({})", p.display()),
            Self::Provider(_) => f.write_str("Provider"),
        }
    }
}

/// Verifies tokens for one service. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    source: KeySource,
    issuer: String,
    /// Audiences this service accepts: the platform's, and its own name for service tokens.
    audiences: Vec<String>,
    keys: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    /// Serialises refreshes and remembers the last one, so a flood of tokens with a
    /// made-up `kid` costs at most one fetch per interval.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    min_refresh_interval: Duration,
    http: reqwest::Client,
    /// Verified tokens, a cache per thread: threads serving requests side by side never
    /// wait on one lock, nor pass one reference count back and forth between their cores
    /// on every request. A token is verified at most once per thread.
    cache: ThreadLocal<RefCell<TokenCache>>,
    /// Bumped when the key set changes; each thread's cache empties itself at its next use.
    keys_generation: AtomicU64,
    /// Sessions ended before their tokens expire: their tokens are refused.
    revoked: RevokedSessions,
}

/// Tokens cached per thread, about 1 KB each: 50 MB for 50,000 people signed in at once.
const CACHED_TOKENS: usize = 50_000;

/// Verified tokens, until their expiry. A hit still checks `exp`, so caching never
/// lengthens a token's life; it only skips the signature check.
///
/// Keyed by the token's whole text, compared byte for byte on a hit: only the very token
/// that was verified matches. (A SHA-256 digest as the key matched as safely in a tenth
/// of the memory, but hashing a 1 KB token cost more than everything else the gateway
/// does with a request.) The hasher is randomly seeded, and only verified tokens get in,
/// so nobody can fill a bucket with colliding keys.
struct TokenCache {
    entries: HashMap<Box<str>, Arc<Claims>, foldhash::quality::RandomState>,
    capacity: usize,
    /// The key set's generation the entries were verified under.
    generation: u64,
}

impl TokenCache {
    fn new(capacity: usize) -> Self {
        Self { entries: HashMap::default(), capacity, generation: 0 }
    }

    /// Forgets every entry verified under an older key set.
    fn follow(&mut self, generation: u64) -> &mut Self {
        if self.generation != generation {
            self.entries.clear();
            self.generation = generation;
        }
        self
    }

    fn get(&self, token: &str, now: u64) -> Option<Arc<Claims>> {
        self.entries.get(token).filter(|c| c.exp + LEEWAY_SECS > now).cloned()
    }

    fn insert(&mut self, token: &str, claims: Arc<Claims>, now: u64) {
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, c| c.exp + LEEWAY_SECS > now);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries.insert(token.into(), claims);
    }
}

impl Verifier {
    /// `service` is this service's own name (the audience of service tokens sent to it).
    /// Tokens of ended sessions verify until they expire: see [`Verifier::revoking`].
    pub fn new(source: KeySource, issuer: impl Into<String>, service: &str) -> Self {
        Self::revoking(source, issuer, service, RevokedSessions::default())
    }

    /// A verifier that also refuses tokens whose session is in `revoked`.
    pub fn revoking(source: KeySource, issuer: impl Into<String>, service: &str, revoked: RevokedSessions) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                issuer: issuer.into(),
                audiences: vec![PLATFORM_AUDIENCE.to_owned(), service.to_owned()],
                keys: RwLock::new(HashMap::new()),
                refresh: tokio::sync::Mutex::new(None),
                min_refresh_interval: Duration::from_secs(10),
                http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default(),
                cache: ThreadLocal::new(),
                keys_generation: AtomicU64::new(0),
                revoked,
            }),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Verifies a compact JWS and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        let claims = self.verify_signed(token).await?;
        // Checked on every use, cached or not: a session may end after its token was cached.
        match &claims.sid {
            Some(sid) if self.inner.revoked.contains(sid) => Err(AuthError::SessionEnded),
            _ => Ok(claims),
        }
    }

    /// The signature, issuer, audience and times of a token (cached per thread).
    async fn verify_signed(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(hit) = self.with_cache(|cache| cache.get(token, now)) {
            return Ok(hit);
        }
        // Only what is needed from the header: it is large, and would be kept across the await.
        let (token_alg, kid) = {
            let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
            (header.alg, header.kid)
        };
        if !ALLOWED.contains(&token_alg) {
            return Err(AuthError::Algorithm);
        }
        let kid = kid.ok_or(AuthError::UnknownKey)?;
        let (alg, key) = match self.key(&kid) {
            Some(k) => k,
            None => {
                // Boxed: the fetch is rare, and inline it would make every verification's
                // future (and every request's around it) about ten times larger.
                Box::pin(self.refresh_keys(false)).await?;
                self.key(&kid).ok_or(AuthError::UnknownKey)?
            }
        };
        // The key decides the algorithm, never the token: an RSA key only verifies RS256.
        if alg != token_alg {
            return Err(AuthError::Algorithm);
        }
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&self.inner.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(map_jwt_error)?;
        let claims = Arc::new(data.claims);
        self.with_cache(|cache| cache.insert(token, claims.clone(), now));
        Ok(claims)
    }

    /// This thread's cache, emptied first if the key set changed since its last use.
    fn with_cache<T>(&self, f: impl FnOnce(&mut TokenCache) -> T) -> T {
        let generation = self.inner.keys_generation.load(Ordering::Acquire);
        let cache = self.inner.cache.get_or(|| RefCell::new(TokenCache::new(CACHED_TOKENS)));
        f(cache.borrow_mut().follow(generation))
    }

    fn key(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        let keys = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.get(kid).cloned()
    }

    /// Loads the key set. `force` skips the rate limit (start-up, readiness).
    pub async fn refresh_keys(&self, force: bool) -> Result<(), AuthError> {
        let mut last = self.inner.refresh.lock().await;
        if !force && last.is_some_and(|t| t.elapsed() < self.inner.min_refresh_interval) {
            return Ok(());
        }
        let set = self.fetch().await.map_err(|e| {
            tracing::warn!(error = %e, source = ?self.inner.source, "could not load signing keys");
            AuthError::KeysUnavailable
        });
        *last = Some(Instant::now());
        let set = set?;
        let keys = keys_from_set(&set);
        let changed = {
            let mut current = self.inner.keys.write().unwrap_or_else(|p| p.into_inner());
            let changed = current.len() != keys.len() || keys.keys().any(|k| !current.contains_key(k));
            *current = keys;
            changed
        };
        if changed {
            // A removed key must stop verifying now, not when its cached tokens expire.
            self.inner.keys_generation.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// Whether at least one key is loaded: a service without keys is not ready.
    pub fn has_keys(&self) -> bool {
        !self.inner.keys.read().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        Ok(match &self.inner.source {
            KeySource::Url(url) => self.inner.http.get(url).send().await?.error_for_status()?.json().await?,
            KeySource::File(path) => serde_json::from_slice(&tokio::fs::read(path).await?)?,
            KeySource::Provider(f) => f(),
        })
    }
}

/// Usable keys of a set: those with a `kid` and an asymmetric algorithm we accept.
fn keys_from_set(set: &JwkSet) -> HashMap<String, (Algorithm, DecodingKey)> {
    set.keys
        .iter()
        .filter_map(|jwk: &Jwk| {
            let kid = jwk.common.key_id.clone()?;
            let alg = match jwk.common.key_algorithm? {
                KeyAlgorithm::RS256 => Algorithm::RS256,
                KeyAlgorithm::PS256 => Algorithm::PS256,
                KeyAlgorithm::ES256 => Algorithm::ES256,
                KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                _ => return None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, (alg, key)))
        })
        .collect()
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::Immature,
        K::InvalidSignature => AuthError::Signature,
        K::InvalidIssuer => AuthError::Issuer,
        K::InvalidAudience => AuthError::Audience,
        K::InvalidAlgorithm | K::InvalidAlgorithmName => AuthError::Algorithm,
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => AuthError::Malformed,
        _ => AuthError::Invalid,
    }
}

/// Reads `Authorization: Bearer <token>`; `None` when there is no bearer credential
/// (no header, or another scheme such as the Basic of the token endpoint).
pub fn bearer_token(headers: &http::HeaderMap) -> Option<Result<&str, AuthError>> {
    bearer_token_of(headers.get(AUTHORIZATION)?.as_bytes())
}

/// [`bearer_token`] from the raw `Authorization` value.
pub fn bearer_token_of(value: &[u8]) -> Option<Result<&str, AuthError>> {
    // Visible ASCII only, as `HeaderValue::to_str` wants. Counted without an early exit,
    // so the loop is vectorised: a token is a kilobyte, and a byte at a time this check
    // was 4% of the gateway's CPU.
    let invisible = value.iter().fold(false, |seen, &b| seen | ((b < 0x20) & (b != b'\t')) | (b >= 0x7f));
    let Some(value) = std::str::from_utf8(value).ok().filter(|_| !invisible) else {
        return Some(Err(AuthError::BadHeader));
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    Some(if token.is_empty() { Err(AuthError::BadHeader) } else { Ok(token) })
}

/// A tower layer: a request with a bearer token either carries verified [`Claims`] on
/// to the handler or is answered 401 here; a request without one passes untouched, and
/// the handler's extractor decides whether it needed one.
#[derive(Clone)]
pub struct JwtLayer {
    verifier: Verifier,
}

impl JwtLayer {
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for JwtLayer {
    type Service = JwtService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtService { inner, verifier: self.verifier.clone() }
    }
}

#[derive(Clone)]
pub struct JwtService<S> {
    inner: S,
    verifier: Verifier,
}

impl<S> tower::Service<Request> for JwtService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let token = match bearer_token(req.headers()) {
                None => return inner.call(req).await,
                Some(Err(e)) => return Ok(ApiError::from(e).into_response()),
                Some(Ok(t)) => t.to_owned(),
            };
            match verifier.verify(&token).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(e) => Ok(ApiError::from(e).into_response()),
            }
        })
    }
}

/// Any authenticated caller: a user or a service.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Claims>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Arc<Claims>>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))
    }
}

/// A signed-in person (an access token, not a service token).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub claims: Arc<Claims>,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.claims.is_admin()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        let id =
            claims.user_id().ok_or_else(|| ApiError::Forbidden("this endpoint is for users, not services".into()))?;
        Ok(AuthUser { id, claims })
    }
}

/// `Option<AuthUser>`: `None` for anonymous callers, still an error for service tokens.
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, ApiError> {
        if parts.extensions.get::<Arc<Claims>>().is_none() {
            return Ok(None);
        }
        <AuthUser as FromRequestParts<S>>::from_request_parts(parts, state).await.map(Some)
    }
}

/// A signed-in user with the platform `admin` role.
#[derive(Debug, Clone)]
pub struct Admin(pub AuthUser);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.is_admin() { Ok(Admin(user)) } else { Err(ApiError::Forbidden("platform administrators only".into())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh Ed25519 key: its signing half, and its public JWK named `kid`.
    fn ed25519_key(kid: &str) -> (jsonwebtoken::EncodingKey, Jwk) {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap().public_key().as_ref().to_vec();
        let x = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, public);
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"});
        (jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()), serde_json::from_value(jwk).unwrap())
    }

    /// Over real keys: a cached token stops verifying once its key leaves the key set,
    /// on every thread, without waiting for the token to expire.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_removed_key_stops_its_cached_tokens_on_every_thread() {
        let (old_signer, old_jwk) = ed25519_key("old");
        let (_, new_jwk) = ed25519_key("new");
        let published = Arc::new(RwLock::new(JwkSet { keys: vec![old_jwk, new_jwk.clone()] }));
        let source = published.clone();
        let provider = move || source.read().unwrap().clone();
        let verifier = Verifier::new(KeySource::Provider(Arc::new(provider)), "https://veche.test", "users");
        verifier.refresh_keys(true).await.unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = serde_json::json!({"iss": "https://veche.test", "sub": "u1", "aud": PLATFORM_AUDIENCE,
            "exp": now + 600, "nbf": now - 1, "iat": now, "jti": "j1", "token_use": "access"});
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some("old".into());
        let token = Arc::new(jsonwebtoken::encode(&header, &claims, &old_signer).unwrap());
        // Cached on two threads (each keeps its own).
        let on_threads = |verifier: Verifier, token: Arc<String>| async move {
            let tasks = (0..4).map(|_| {
                let (verifier, token) = (verifier.clone(), token.clone());
                tokio::spawn(async move { verifier.verify(&token).await.map(|c| c.sub.clone()) })
            });
            joined(tasks).await
        };
        assert!(on_threads(verifier.clone(), token.clone()).await.iter().all(|r| matches!(r, Ok(sub) if sub == "u1")));

        *published.write().unwrap() = JwkSet { keys: vec![new_jwk] };
        verifier.refresh_keys(true).await.unwrap();
        let after = on_threads(verifier.clone(), token.clone()).await;
        assert!(after.iter().all(|r| matches!(r, Err(AuthError::UnknownKey))), "{after:?}");
    }

    async fn joined<T>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    }

    #[test]
    fn bearer_header_forms() {
        let mut h = http::HeaderMap::new();
        assert!(bearer_token(&h).is_none());
        h.insert(AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h).unwrap().unwrap(), "abc");
        h.insert(AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer_token(&h).unwrap().unwrap(), "abc");
        h.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(bearer_token(&h).is_none(), "other schemes are not ours to judge");
        h.insert(AUTHORIZATION, "Bearer".parse().unwrap());
        assert!(bearer_token(&h).unwrap().is_err());
        // Raw bytes (the gateway's HTTP/1 path): what `HeaderValue::to_str` refuses is refused.
        assert_eq!(bearer_token_of(b"Bearer abc\t").unwrap().unwrap(), "abc");
        for bad in [&b"Bearer ab\x01c"[..], b"Bearer ab\x7fc", "Bearer abç".as_bytes(), b"Bearer \xff\xfe"] {
            assert!(matches!(bearer_token_of(bad), Some(Err(AuthError::BadHeader))), "{bad:?}");
        }
    }

    #[test]
    fn cache_forgets_expired_tokens() {
        let claims = |exp| {
            Arc::new(Claims {
                iss: "i".into(),
                sub: "s".into(),
                aud: "a".into(),
                exp,
                nbf: 0,
                iat: 0,
                jti: "j".into(),
                token_use: TokenUse::Access,
                sid: None,
                email: None,
                email_verified: None,
                roles: vec![],
            })
        };
        let mut cache = TokenCache::new(2);
        cache.insert("a.b.c", claims(100), 0);
        assert!(cache.get("a.b.c", 50).is_some());
        assert!(cache.get("a.b.c", 100 + LEEWAY_SECS).is_none());
        assert!(cache.get("a.b.d", 50).is_none(), "another token, however close, is not a hit");
        assert!(cache.get("a.b.c ", 50).is_none());
        cache.insert("b.b.b", claims(10), 0);
        cache.insert("c.c.c", claims(1000), 200);
        assert!(cache.get("b.b.b", 200).is_none());
        assert!(cache.get("c.c.c", 200).is_some());
        assert!(cache.follow(0).get("c.c.c", 200).is_some(), "the same key set keeps its tokens");
        assert!(cache.follow(1).get("c.c.c", 200).is_none(), "a new key set empties the cache");
    }

    /// A verification runs inside every request's future; the rare key refresh (an HTTP
    /// fetch) stays boxed out of it, or it grows eightfold (1.6 KB).
    #[test]
    fn verifying_stays_small() {
        let verifier = Verifier::new(KeySource::Url("http://127.0.0.1:1/jwks".into()), "x", "y");
        let verifying = verifier.verify("a.b.c");
        let size = std::mem::size_of_val(&verifying);
        assert!(size <= 512, "Verifier::verify's future is {size} bytes");
    }
}
