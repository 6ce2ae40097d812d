//! The platform's token signing keys: RS256, as OpenID Connect requires every provider
//! to support and as the cheapest signature to verify (each request verifies one).
//!
//! Keys are PKCS#8 PEM files named `key-<unix time>.pem` in one directory: generated
//! there on first start, or mounted from a Kubernetes Secret. Rotation adds a new file;
//! the new key is published in the JWKS at once but signs only after `publish_ahead`,
//! so every verifier can learn it first; a retired key stays published until the last
//! token it signed has expired.

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use catalog::keys::file_name;

/// One signing key.
#[derive(Clone)]
struct Key {
    kid: String,
    created_at: i64,
    encoding: EncodingKey,
    public: Jwk,
}

/// Timing of rotation, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct RotationPolicy {
    /// A key older than this is replaced by a new one.
    pub rotate_after: i64,
    /// How long a new key is published before it signs.
    pub publish_ahead: i64,
    /// The longest-lived token a key signs (the access token lifetime), plus skew.
    pub token_lifetime: i64,
}

/// The loaded keys; cheap to clone, shared between signer and JWKS endpoint.
#[derive(Clone)]
pub struct KeyRing {
    dir: PathBuf,
    policy: RotationPolicy,
    keys: Arc<RwLock<Vec<Key>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {0}: {1}")]
    File(PathBuf, String),
    #[error("could not generate a key")]
    Generate,
    #[error("no signing key is available")]
    Empty,
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl KeyRing {
    /// Loads the keys in `dir`, generating the first one when there is none and
    /// `generate` allows (a read-only Secret mount does not).
    pub fn load(dir: impl Into<PathBuf>, policy: RotationPolicy, generate: bool, now: i64) -> Result<Self, KeyError> {
        let ring = Self { dir: dir.into(), policy, keys: Arc::new(RwLock::new(Vec::new())) };
        ring.reload()?;
        if ring.read().is_empty() {
            if !generate {
                return Err(KeyError::Empty);
            }
            ring.generate(now)?;
        }
        Ok(ring)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Key>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads every key file of the directory again (a Secret update lands as new files).
    pub fn reload(&self) -> Result<(), KeyError> {
        let mut keys = Vec::new();
        if self.dir.exists() {
            for entry in std::fs::read_dir(&self.dir)? {
                let path = entry?.path();
                if let Some(created_at) = created_at_of(&path) {
                    keys.push(load_key(&path, created_at)?);
                }
            }
        }
        keys.sort_by_key(|k| k.created_at);
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(())
    }

    /// Creates and stores a new RSA-2048 key.
    pub fn generate(&self, now: i64) -> Result<(), KeyError> {
        use aws_lc_rs::encoding::AsDer;
        let pair =
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let der = pair.as_der().map_err(|_| KeyError::Generate)?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        std::fs::create_dir_all(&self.dir)?;
        // Several keys may be made within one second (tests); never overwrite one.
        let mut created_at = now;
        while self.dir.join(file_name(created_at)).exists() {
            created_at += 1;
        }
        let path = self.dir.join(file_name(created_at));
        write_private(&path, pem.as_bytes())?;
        tracing::info!(path = %path.display(), "generated a new signing key");
        self.reload()
    }

    /// Adds a key when the signing one is due, retires keys nobody can need. Returns
    /// whether anything changed.
    pub fn rotate(&self, now: i64) -> Result<bool, KeyError> {
        let created: Vec<i64> = self.read().iter().map(|k| k.created_at).collect();
        let plan = plan_rotation(&created, now, &self.policy);
        if plan.generate {
            self.generate(now)?;
        }
        for created_at in &plan.retire {
            let path = self.dir.join(file_name(*created_at));
            std::fs::remove_file(&path)?;
            tracing::info!(path = %path.display(), "retired a signing key");
        }
        if !plan.retire.is_empty() {
            self.reload()?;
        }
        Ok(plan.generate || !plan.retire.is_empty())
    }

    /// Signs claims with the current key.
    pub fn sign<T: Serialize>(&self, claims: &T, now: i64) -> Result<String, KeyError> {
        let keys = self.read();
        let created: Vec<i64> = keys.iter().map(|k| k.created_at).collect();
        let index = signing_index(&created, now, self.policy.publish_ahead).ok_or(KeyError::Empty)?;
        let key = &keys[index];
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// The public keys, as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.read().iter().map(|k| k.public.clone()).collect() }
    }
}

/// Which key signs: the newest one published for at least `publish_ahead`, or the
/// oldest when none is that old yet (the very first key signs at once).
fn signing_index(created_sorted: &[i64], now: i64, publish_ahead: i64) -> Option<usize> {
    if created_sorted.is_empty() {
        return None;
    }
    Some(created_sorted.iter().rposition(|&c| c <= now - publish_ahead).unwrap_or(0))
}

#[derive(Debug, PartialEq, Eq)]
struct RotationPlan {
    generate: bool,
    retire: Vec<i64>,
}

/// What rotation should do, from the creation times of the keys (sorted, oldest first).
fn plan_rotation(created_sorted: &[i64], now: i64, policy: &RotationPolicy) -> RotationPlan {
    let newest = created_sorted.last().copied();
    let generate = newest.is_none_or(|n| now - n >= policy.rotate_after);
    let signing = signing_index(created_sorted, now, policy.publish_ahead);
    // A key older than the signing one stopped signing when its successor took over,
    // i.e. at the successor's creation + publish_ahead; its tokens live `token_lifetime`.
    let retire = match signing {
        Some(s) => (0..s)
            .filter(|&i| {
                let stopped_signing = created_sorted[i + 1] + policy.publish_ahead;
                now - stopped_signing > policy.token_lifetime
            })
            .map(|i| created_sorted[i])
            .collect(),
        None => Vec::new(),
    };
    RotationPlan { generate, retire }
}

fn created_at_of(path: &Path) -> Option<i64> {
    catalog::keys::created_at(path.file_name()?.to_str()?)
}

fn load_key(path: &Path, created_at: i64) -> Result<Key, KeyError> {
    let bad = |e: String| KeyError::File(path.to_path_buf(), e);
    let pem = std::fs::read(path)?;
    let encoding = EncodingKey::from_rsa_pem(&pem).map_err(|e| bad(e.to_string()))?;
    let mut public = Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(|e| bad(e.to_string()))?;
    let kid = public.thumbprint(ThumbprintHash::SHA256).map_err(|e| bad(e.to_string()))?;
    public.common.key_id = Some(kid.clone());
    public.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(Key { kid, created_at, encoding, public })
}

/// Private keys are readable by their owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RotationPolicy = RotationPolicy { rotate_after: 1000, publish_ahead: 60, token_lifetime: 900 };

    #[test]
    fn first_key_signs_at_once_and_a_new_one_only_after_publication() {
        assert_eq!(signing_index(&[100], 100, 60), Some(0));
        assert_eq!(signing_index(&[100, 1100], 1130, 60), Some(0));
        assert_eq!(signing_index(&[100, 1100], 1160, 60), Some(1));
        assert_eq!(signing_index(&[], 0, 60), None);
    }

    #[test]
    fn rotation_adds_a_key_when_due_and_retires_after_tokens_expire() {
        assert_eq!(plan_rotation(&[], 0, &POLICY), RotationPlan { generate: true, retire: vec![] });
        assert_eq!(plan_rotation(&[0], 999, &POLICY), RotationPlan { generate: false, retire: vec![] });
        assert_eq!(plan_rotation(&[0], 1000, &POLICY), RotationPlan { generate: true, retire: vec![] });
        // Key 0 stopped signing at 1060; its last token expires at 1960.
        assert_eq!(plan_rotation(&[0, 1000], 1960, &POLICY).retire, Vec::<i64>::new());
        assert_eq!(plan_rotation(&[0, 1000], 1961, &POLICY).retire, vec![0]);
    }

    #[test]
    fn generated_keys_persist_sign_and_publish() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load(dir.path(), POLICY, true, 100).unwrap();
        let token = ring.sign(&serde_json::json!({"sub": "x"}), 100).unwrap();
        let jwks = ring.jwks();
        assert_eq!(jwks.keys.len(), 1);
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        assert_eq!(jwks.keys[0].common.key_id.as_deref(), Some(kid.as_str()));
        // A second load finds the same key rather than making another.
        let again = KeyRing::load(dir.path(), POLICY, true, 200).unwrap();
        assert_eq!(again.jwks(), jwks);
        // Rotation publishes a second key; the first still signs until publish_ahead passes.
        assert!(again.rotate(1100).unwrap());
        assert_eq!(again.jwks().keys.len(), 2);
        let t = again.sign(&serde_json::json!({}), 1101).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&t).unwrap().kid.unwrap(), kid);
        let t = again.sign(&serde_json::json!({}), 1200).unwrap();
        assert_ne!(jsonwebtoken::decode_header(&t).unwrap().kid.unwrap(), kid);
    }

    #[test]
    fn a_read_only_mount_without_keys_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(KeyRing::load(dir.path(), POLICY, false, 0), Err(KeyError::Empty)));
    }
}
