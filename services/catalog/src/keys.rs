//! Signing keys as the users service reads them and the operator writes them: PKCS#8 PEM
//! files named `key-<unix time>.pem` (in a directory, or as the keys of a Secret), and
//! the timing both follow when a key is rotated.

const PREFIX: &str = "key-";
const SUFFIX: &str = ".pem";

/// How long a new key is published before it signs (seconds), so that every verifier
/// has fetched it before it sees a token it signed.
pub const PUBLISH_AHEAD: i64 = 60;

/// Clock skew allowed on top of a token's lifetime (seconds) before a retired key that
/// signed it may be forgotten.
pub const SKEW: i64 = 60;

/// The file name of a key made at `created_at`.
pub fn file_name(created_at: i64) -> String {
    format!("{PREFIX}{created_at}{SUFFIX}")
}

/// The creation time in a key's file name, or `None` for a name that is not a key's.
pub fn created_at(file_name: &str) -> Option<i64> {
    file_name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(1700000000), "key-1700000000.pem");
        assert_eq!(created_at(&file_name(42)), Some(42));
        for other in ["key-.pem", "key-12.txt", "cert-12.pem", "key-x.pem"] {
            assert_eq!(created_at(other), None, "{other}");
        }
    }
}
