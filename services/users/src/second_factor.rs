//! A second factor: time-based one-time codes (TOTP, RFC 6238, as every authenticator app
//! reads them: SHA-1, six digits, 30-second steps, one step of skew) and single-use
//! recovery codes. The logic is pure; the store keeps what it produces.
//!
//! What is kept, and how (OWASP Multifactor Authentication cheat sheet): the TOTP secret
//! sealed with AES-256-GCM under a key the database never holds, bound to its account, so
//! a copied database yields no secrets and a sealed secret cannot be moved to another
//! account; recovery codes only as SHA-256 hashes (each has 80 random bits, so a fast
//! hash loses nothing); the last time step used, so a code is accepted once.

use anyhow::Context as _;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::path::Path;
use totp_rs::{Algorithm, Totp};
use uuid::Uuid;

/// How accounts are named in authenticator apps.
pub const ISSUER: &str = "Veche";
/// Recovery codes handed out at once; a new set replaces the old one.
pub const RECOVERY_CODES: usize = 10;
/// 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
const STEP_SECONDS: u64 = 30;

/// A fresh TOTP secret.
pub fn new_secret() -> Vec<u8> {
    kit::secret::random_bytes::<SECRET_BYTES>().to_vec()
}

fn totp(secret: &[u8], account: &str) -> Totp {
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        // A colon would split the label; addresses with one are vanishingly rare.
        .with_account_name(account.replace(':', " "))
        .build_noncompliant()
}

/// What a person needs to add the account to an authenticator app.
#[derive(Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Enrolment {
    /// The secret in base32, for typing in by hand.
    pub secret: String,
    /// `otpauth://totp/...`: what the QR code holds.
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

pub fn enrolment(secret: &[u8], account: &str) -> anyhow::Result<Enrolment> {
    let totp = totp(secret, account);
    let otpauth_uri = totp.to_url().context("otpauth URI")?;
    let qr = qrcode::QrCode::new(otpauth_uri.as_bytes()).context("QR code")?;
    let qr_svg = qr.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).build();
    Ok(Enrolment { secret: totp.secret().to_base32(), otpauth_uri, qr_svg })
}

/// The time step a six-digit `code` belongs to, if it is right for `now` (give or take
/// one step). The caller must still refuse a step already used.
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let now = u64::try_from(now).ok()?;
    totp(secret, "").check(&code, now).and_then(|step| i64::try_from(step).ok())
}

/// Whether a code looks like one from an authenticator app rather than a recovery code.
pub fn is_app_code(code: &str) -> bool {
    let digits: Vec<char> = code.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == 6 && digits.iter().all(char::is_ascii_digit)
}

/// A fresh set of recovery codes: 16 base32 letters each (80 bits), shown in groups of
/// four (`abcd-efgh-ijkl-mnop`).
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes = kit::secret::random_bytes::<16>();
            let letters: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
            letters.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

/// The stored form of a recovery code, however it was typed (case, dashes, spaces).
pub fn recovery_code_hash(code: &str) -> String {
    let plain: String = code.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    kit::secret::token_hash(&plain)
}

/// The key that seals TOTP secrets.
pub struct SealKey(LessSafeKey);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| anyhow::anyhow!("the key must be 32 bytes"))?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// Reads the key file, or creates it (32 random bytes, readable by the owner only).
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => Self::from_bytes(&bytes).with_context(|| format!("second-factor key {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = kit::secret::random_bytes::<32>();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
                Self::from_bytes(&bytes)
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// `nonce ‖ ciphertext ‖ tag`, bound to `user`.
    pub fn seal(&self, user: Uuid, secret: &[u8]) -> Vec<u8> {
        let nonce = kit::secret::random_bytes::<NONCE_LEN>();
        let mut sealed = secret.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(user.as_bytes()), &mut sealed)
            .expect("AES-GCM sealing of a short secret");
        [nonce.as_slice(), &sealed].concat()
    }

    /// The secret, or None when the bytes were not sealed for `user` with this key.
    pub fn open(&self, user: Uuid, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, rest) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(user.as_bytes()), &mut buf).ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1: the secret "12345678901234567890" at 59 s is 94287082;
    /// its last six digits are what six-digit apps show.
    #[test]
    fn codes_match_rfc_6238_and_one_step_of_skew() {
        let secret = b"12345678901234567890";
        assert_eq!(matching_step(secret, "287082", 59), Some(1));
        assert_eq!(matching_step(secret, "287 082", 59 + 30), Some(1), "the step before is accepted");
        assert_eq!(matching_step(secret, "287082", 59 + 60), None, "two steps late is too late");
        assert_eq!(matching_step(secret, "081804", 1_111_111_109), Some(1_111_111_109 / 30));
        assert_eq!(matching_step(secret, "28708x", 59), None);
        assert_eq!(matching_step(secret, "287082", -5), None);
    }

    #[test]
    fn enrolment_names_the_account_and_draws_the_uri() {
        let e = enrolment(b"12345678901234567890", "ann@example.org").unwrap();
        assert_eq!(e.secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert!(e.otpauth_uri.starts_with("otpauth://totp/Veche:ann%40example.org?"), "{}", e.otpauth_uri);
        assert!(
            e.otpauth_uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ") && e.otpauth_uri.contains("issuer=Veche")
        );
        assert!(e.qr_svg.starts_with("<?xml") && e.qr_svg.contains("<svg"), "{}", &e.qr_svg[..60]);
    }

    #[test]
    fn recovery_codes_are_distinct_and_typed_loosely() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), RECOVERY_CODES);
        assert!(codes.iter().all(|c| c.len() == 19 && c.matches('-').count() == 3));
        assert_eq!(recovery_code_hash(&codes[0]), recovery_code_hash(&codes[0].to_uppercase().replace('-', " ")));
        assert!(!is_app_code(&codes[0]) && is_app_code("123 456") && !is_app_code("1234567"));
    }

    #[test]
    fn sealed_secrets_open_only_for_their_account_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/second-factor.key");
        let key = SealKey::load_or_create(&path).unwrap();
        let again = SealKey::load_or_create(&path).unwrap();
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = key.seal(ann, b"a secret");
        assert_ne!(key.seal(ann, b"a secret"), sealed, "a fresh nonce each time");
        assert_eq!(again.open(ann, &sealed).as_deref(), Some(&b"a secret"[..]));
        assert_eq!(key.open(bob, &sealed), None, "bound to its account");
        assert_eq!(SealKey::from_bytes(&[7; 32]).unwrap().open(ann, &sealed), None, "and to its key");
        assert_eq!(key.open(ann, &sealed[..5]), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
