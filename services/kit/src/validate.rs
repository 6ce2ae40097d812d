//! Checks every service applies to the same kinds of input: emails, web URLs, lengths.

use crate::problem::Violations;

/// Longest email address SMTP can carry (RFC 5321 path limit minus the brackets).
const EMAIL_MAX: usize = 254;
const URL_MAX: usize = 2048;

/// Lower-cases and trims an address so `Anna@Example.ORG ` and `anna@example.org` are one
/// person. Lower-casing the local part is not RFC-pure, but every large provider treats it
/// case-insensitively and people type it both ways.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted domain of
/// letters, digits and hyphens, no spaces. Deliverability is proven by mail, not here.
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > EMAIL_MAX || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    !local.is_empty() && local.len() <= 64 && !local.contains('@') && domain.contains('.') && labels_ok
}

/// An absolute http(s) URL with a host, of reasonable length.
pub fn is_web_url(s: &str) -> bool {
    s.len() <= URL_MAX && url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Records a violation when `value` has more than `max` characters.
pub fn check_len(v: &mut Violations, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(normalize_email("  Anna@Example.ORG "), "anna@example.org");
        for good in ["a@b.co", "first.last+tag@sub.example.com", "иван@почта.рф"] {
            assert!(is_valid_email(good), "{good}");
        }
        let long_local = format!("{}@b.co", "x".repeat(65));
        for bad in ["", "a", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@-b.co", "a@b..co", long_local.as_str()] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn web_urls() {
        assert!(is_web_url("https://example.org/a.png"));
        for bad in ["javascript:alert(1)", "ftp://example.org/x", "/relative", "https://"] {
            assert!(!is_web_url(bad), "{bad}");
        }
    }
}
