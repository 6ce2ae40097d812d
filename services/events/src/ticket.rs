//! Tickets: each registration's unguessable code, shown as a QR code at the door and
//! typed in when a phone will not scan. 80 random bits in Crockford's base32 (no I, L, O
//! or U to misread), grouped by four for reading aloud; what a person types is taken in
//! any case, with or without the dashes, and with the letters Crockford reads as digits.

use base32::Alphabet;
use qrcode::QrCode;
use qrcode::render::svg;

/// Characters of a code, without the dashes.
const CODE_LEN: usize = 16;

/// A new code, as stored and shown: `XXXX-XXXX-XXXX-XXXX`.
pub fn new_code() -> String {
    let raw = base32::encode(Alphabet::Crockford, &kit::secret::random_bytes::<10>());
    grouped(&raw)
}

fn grouped(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// The stored form of what someone typed or scanned, or `None` when it cannot be a code.
pub fn normalize(input: &str) -> Option<String> {
    let raw: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect();
    let valid =
        raw.len() == CODE_LEN && raw.bytes().all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && b != b'U'));
    valid.then(|| grouped(&raw))
}

/// The code as a QR code, an SVG document that scales to any size.
pub fn qr_svg(code: &str) -> String {
    // A 16-character code always fits a QR code; were it not to, no image beats a broken one.
    QrCode::new(code.as_bytes())
        .map(|qr| qr.render::<svg::Color<'_>>().min_dimensions(256, 256).quiet_zone(true).build())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_crockford_and_differ() {
        let a = new_code();
        assert_eq!(a.len(), 19, "{a}");
        assert_eq!(normalize(&a).as_deref(), Some(a.as_str()));
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_digit() || "ABCDEFGHJKMNPQRSTVWXYZ".contains(c)), "{a}");
        assert_ne!(a, new_code());
    }

    #[test]
    fn what_people_type_is_read_as_they_meant_it() {
        assert_eq!(normalize("abcd efgh jkmn pq0o").as_deref(), Some("ABCD-EFGH-JKMN-PQ00"));
        assert_eq!(normalize("1il1-0000-0000-0000").as_deref(), Some("1111-0000-0000-0000"));
        assert_eq!(normalize("ABCD-EFGH-JKMN-PQRU"), None, "U is not in the alphabet");
        assert_eq!(normalize("ABCD-EFGH"), None);
        assert_eq!(normalize("ABCD-EFGH-JKMN-PQRS-T"), None);
        assert_eq!(normalize("ABCD-EFGH-JKMN-PQR!"), None);
        assert_eq!(normalize("АBCD-EFGH-JKMN-PQRS"), None, "a Cyrillic А");
    }

    #[test]
    fn the_qr_code_is_an_svg_document() {
        let svg = qr_svg("ABCD-EFGH-JKMN-PQRS");
        assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.ends_with("</svg>"), "{svg}");
    }
}
