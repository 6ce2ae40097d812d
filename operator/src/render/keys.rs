//! The signing-key Secret: RS256 private keys (PKCS#8 PEM) named `key-<unix time>.pem`,
//! as the users service reads them from `VECHE_SIGNING_KEYS_DIR`.
//!
//! Rotation follows the users service's own rules (`services/users/src/keys.rs`): a new
//! key is published at once but signs only after [`PUBLISH_AHEAD`]; a key stops signing
//! when its successor starts, and is kept until the last token it signed has expired.
//! Making a key is the one impure step; it is passed in, so planning stays pure.

use super::RenderError;
use k8s_openapi::ByteString;
use std::collections::BTreeMap;

pub use catalog::keys::{PUBLISH_AHEAD, SKEW, created_at, file_name};

/// Timing of rotation, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// A key older than this gets a successor.
    pub period: i64,
    /// Lifetime of the longest token a key signs (the access token TTL).
    pub token_ttl: i64,
}

/// What rotation does to a set of keys.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// Whether a new key is due.
    pub generate: bool,
    /// Creation times of keys nobody can need any more.
    pub retire: Vec<i64>,
}

/// What to do with keys created at `created` (any order) at time `now`.
pub fn plan(created: &[i64], now: i64, rotation: Rotation) -> Plan {
    let mut sorted = created.to_vec();
    sorted.sort_unstable();
    let generate = sorted.last().is_none_or(|newest| now - newest >= rotation.period);
    // Key i stopped signing when key i+1 started (its creation + PUBLISH_AHEAD); its
    // tokens are valid for token_ttl after that. The newest key is never retired.
    let retire = sorted
        .windows(2)
        .filter(|pair| now - (pair[1] + PUBLISH_AHEAD) > rotation.token_ttl + SKEW)
        .map(|pair| pair[0])
        .collect();
    Plan { generate, retire }
}

/// The Secret's data after rotation: the existing keys minus the retired ones, plus a
/// new one from `generate` when one is due. `generate` is called at most once.
pub fn rotate(
    existing: &BTreeMap<String, ByteString>,
    now: i64,
    rotation: Rotation,
    generate: impl FnOnce() -> Result<String, RenderError>,
) -> Result<BTreeMap<String, ByteString>, RenderError> {
    let mut keys = BTreeMap::new();
    for (name, pem) in existing {
        let created = created_at(name).ok_or_else(|| RenderError::BadKeyEntry(name.clone()))?;
        keys.insert(created, pem.clone());
    }
    let created: Vec<i64> = keys.keys().copied().collect();
    let plan = plan(&created, now, rotation);
    for retired in &plan.retire {
        keys.remove(retired);
    }
    if plan.generate {
        // Never overwrite a key made within the same second (a clock that went back).
        let mut at = now;
        while keys.contains_key(&at) {
            at += 1;
        }
        keys.insert(at, ByteString(generate()?.into_bytes()));
    }
    Ok(keys.into_iter().map(|(created, pem)| (file_name(created), pem)).collect())
}

/// Makes a fresh RSA-2048 key as PKCS#8 PEM: the impure step, used by the controller.
pub fn generate_rsa_pem() -> Result<String, RenderError> {
    use aws_lc_rs::encoding::AsDer;
    let failed = || RenderError::BadKeyEntry("(key generation failed)".into());
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| failed())?;
    let der = pair.as_der().map_err(|_| failed())?;
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86400;
    const ROT: Rotation = Rotation { period: 90 * DAY, token_ttl: 900 };

    fn fake(tag: &str) -> impl FnOnce() -> Result<String, RenderError> {
        let pem = format!("PEM {tag}");
        move || Ok(pem)
    }

    #[test]
    fn first_reconcile_makes_one_key() {
        let data = rotate(&BTreeMap::new(), 1000, ROT, fake("a")).unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["key-1000.pem"]);
    }

    #[test]
    fn a_young_key_is_kept_and_nothing_is_generated() {
        let existing = BTreeMap::from([(file_name(1000), ByteString(b"old".to_vec()))]);
        let data = rotate(&existing, 1000 + DAY, ROT, || panic!("no key is due")).unwrap();
        assert_eq!(data, existing);
    }

    #[test]
    fn rotation_adds_a_key_and_keeps_the_old_one_while_its_tokens_live() {
        let existing = BTreeMap::from([(file_name(1000), ByteString(b"old".to_vec()))]);
        let now = 1000 + ROT.period;
        let data = rotate(&existing, now, ROT, fake("new")).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[&file_name(1000)], ByteString(b"old".to_vec()));
        assert_eq!(data[&file_name(now)], ByteString(b"PEM new".to_vec()));
        // Just before the old key's last token expires it is still there.
        let edge = now + PUBLISH_AHEAD + ROT.token_ttl + SKEW;
        assert_eq!(plan(&[1000, now], edge, ROT).retire, Vec::<i64>::new());
        // One second later it goes; the newest stays.
        assert_eq!(plan(&[1000, now], edge + 1, ROT).retire, vec![1000]);
    }

    #[test]
    fn the_newest_key_is_never_retired_even_when_ancient() {
        let p = plan(&[5], 100 * 365 * DAY, ROT);
        assert!(p.generate);
        assert!(p.retire.is_empty());
    }

    #[test]
    fn several_generations_retire_oldest_first() {
        let p = plan(&[300, 100, 200], 10_000, Rotation { period: 100, token_ttl: 100 });
        assert_eq!(p.retire, vec![100, 200]);
        assert!(p.generate);
    }

    #[test]
    fn a_foreign_entry_is_an_error_not_a_silent_drop() {
        let existing = BTreeMap::from([("notes.txt".to_string(), ByteString(vec![]))]);
        assert_eq!(rotate(&existing, 1, ROT, fake("x")), Err(RenderError::BadKeyEntry("notes.txt".into())));
    }

    #[test]
    fn a_clock_that_went_back_does_not_overwrite_a_key() {
        let existing = BTreeMap::from([(file_name(500), ByteString(b"old".to_vec()))]);
        let data = rotate(&existing, 500, Rotation { period: 0, token_ttl: 900 }, fake("n")).unwrap();
        assert_eq!(data[&file_name(500)], ByteString(b"old".to_vec()));
        assert_eq!(data[&file_name(501)], ByteString(b"PEM n".to_vec()));
    }

    #[test]
    fn generated_keys_are_pkcs8_rsa_pem() {
        let pem = generate_rsa_pem().unwrap();
        let parsed = pem::parse(&pem).unwrap();
        assert_eq!(parsed.tag(), "PRIVATE KEY");
        aws_lc_rs::rsa::KeyPair::from_pkcs8(parsed.contents()).expect("a PKCS#8 RSA key");
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(created_at(&file_name(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(created_at("key-x.pem"), None);
        assert_eq!(created_at("key-1.txt"), None);
    }
}
