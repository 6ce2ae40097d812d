//! Checks every service applies to the same kinds of input: emails, web URLs, lengths,
//! and the rule that only free text (descriptions, bios) may hold control characters.

use crate::problem::Violations;
use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

/// Longest email address SMTP can carry (RFC 5321 path limit minus the brackets).
const EMAIL_MAX: usize = 254;
const URL_MAX: usize = 2048;

/// NFKC-normalizes, trims and lower-cases an address, so `Anna@Example.ORG `,
/// `anna@example.org` and its full-width twin `ａｎｎａ@example.org` are one person.
/// Lower-casing the local part is not RFC-pure, but every large provider treats it
/// case-insensitively and people type it both ways.
pub fn normalize_email(email: &str) -> String {
    email.trim().nfkc().collect::<String>().to_lowercase()
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted domain of
/// letters, digits and hyphens, no spaces. Deliverability is proven by mail, not here.
/// Invisible characters (zero-width joiners, bidi marks) are refused anywhere, and each
/// label of the domain must be written in one script, so `pаypal.com` with a Cyrillic `а`
/// cannot pose as its Latin twin (the per-label rule browsers apply to IDNs).
pub fn is_valid_email(email: &str) -> bool {
    if email.len() > EMAIL_MAX || email.chars().any(|c| c.is_whitespace() || c.is_control() || is_invisible(c)) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    !local.is_empty() && local.len() <= 64 && !local.contains('@') && is_email_domain(domain)
}

/// The part of an email address after the `@`: dot-separated labels of letters, digits
/// and inner hyphens, each in one script, at least two of them.
pub fn is_email_domain(domain: &str) -> bool {
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            && l.is_single_script()
    });
    domain.len() <= 253 && domain.contains('.') && labels_ok
}

/// Characters that render as nothing: zero-width spaces and joiners, bidi controls, the
/// BOM, soft hyphens (Unicode's default-ignorable format characters that matter here).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

/// An absolute http(s) URL with a host, of reasonable length.
pub fn is_web_url(s: &str) -> bool {
    web_url(s).is_some()
}

/// The normalized form of an absolute http(s) URL, or `None` when `s` is not one. Raw
/// control characters and spaces are refused before parsing: the URL parser silently
/// drops tabs and newlines, and a stored raw value would then carry them into
/// calendars and mail.
pub fn web_url(s: &str) -> Option<String> {
    if s.len() > URL_MAX || s.chars().any(|c| c.is_control() || c.is_whitespace() || is_invisible(c)) {
        return None;
    }
    let u = url::Url::parse(s).ok()?;
    // Normalizing may lengthen it (a `/` path, percent-encoding): the stored form is what
    // must fit.
    (matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.as_str().len() <= URL_MAX).then(|| u.to_string())
}

/// True when `s` holds a control character (C0, DEL, C1) or an invisible format
/// character: fine in free text such as a description, never in a name, title, tag or id.
pub fn has_hidden_chars(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || is_invisible(c))
}

/// Records a violation when a one-line string (a name, title, city) holds control or
/// invisible characters: such strings reach mail headers, calendars and pages.
pub fn check_plain(v: &mut Violations, field: &str, value: &str) {
    if has_hidden_chars(value) {
        v.add(field, "must not contain control or invisible characters");
    }
}

/// Records a violation when free text (a description, a bio) holds control characters
/// other than tab and newlines.
pub fn check_free_text(v: &mut Violations, field: &str, value: &str) {
    if value.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        v.add(field, "must not contain control characters other than tab and newline");
    }
}

/// An IANA time zone name the bundled tz database knows (`Europe/Moscow`, `UTC`).
pub fn is_time_zone(name: &str) -> bool {
    time_zone(name).is_some()
}

/// The canonical spelling of a time zone name the bundled tz database knows: its lookup
/// ignores case, and `europe/moscow` must be stored (and written into calendars) as
/// `Europe/Moscow`.
pub fn time_zone(name: &str) -> Option<String> {
    if has_hidden_chars(name) {
        return None;
    }
    let zone = jiff::tz::db().get(name).ok()?;
    Some(zone.iana_name().unwrap_or(name).to_owned())
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
    fn lookalike_and_invisible_addresses_are_refused() {
        // Full-width letters fold to ASCII: one person, not two.
        assert_eq!(normalize_email("ａｎｎａ@ｅｘａｍｐｌｅ.org"), "anna@example.org");
        for bad in [
            "anna@p\u{0430}ypal.com",   // Cyrillic а inside a Latin label
            "anna@exa\u{200B}mple.org", // zero-width space
            "an\u{200D}na@example.org", // zero-width joiner in the local part
            "anna@example.org\u{202E}", // right-to-left override
            "anna@\u{FEFF}example.org", // BOM
        ] {
            assert!(!is_valid_email(&normalize_email(bad)), "{bad:?}");
        }
        assert!(is_valid_email("anna@почта.рф"), "one script per label is fine");
    }

    #[test]
    fn plain_strings_refuse_control_characters() {
        for bad in ["a\r\nb", "a\rb", "a\nb", "a\tb", "a\0b", "a\u{7f}b", "a\u{85}b", "a\u{200B}b"] {
            let mut v = Violations::new();
            check_plain(&mut v, "name", bad);
            assert!(v.into_result().is_err(), "{bad:?}");
        }
        let mut v = Violations::new();
        check_plain(&mut v, "name", "Анна Smith-Jones, «Клуб»");
        check_free_text(&mut v, "description", "line one\r\n\tline two");
        assert!(v.into_result().is_ok());
        let mut v = Violations::new();
        check_free_text(&mut v, "description", "a\0b");
        assert!(v.into_result().is_err());
    }

    #[test]
    fn web_urls_are_stored_normalized_and_never_with_control_characters() {
        assert_eq!(web_url("HTTPS://Example.ORG").as_deref(), Some("https://example.org/"));
        for bad in [
            "https://a.example/x\r\nBEGIN:VEVENT",
            "https://a.example/x\rUID:1",
            "https://a.example/x\nUID:1",
            "https://a.example/x\ty",
            "https://a.example/x\0",
            "https://a.example/x y",
        ] {
            assert_eq!(web_url(bad), None, "{bad:?}");
        }
        // 2048 characters as written, 2049 once normalized (the path's `/`): too long to store.
        let host = format!("https://{}.example", "a".repeat(2048 - "https://.example".len()));
        assert_eq!(host.len(), 2048);
        assert_eq!(web_url(&host), None);
        assert!(web_url(&format!("{}/", &host[..2047])).is_some());
    }

    #[test]
    fn web_urls() {
        assert!(is_web_url("https://example.org/a.png"));
        for bad in ["javascript:alert(1)", "ftp://example.org/x", "/relative", "https://"] {
            assert!(!is_web_url(bad), "{bad}");
        }
    }
}
