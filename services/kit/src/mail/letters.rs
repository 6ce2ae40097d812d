//! What platform mail says, in the recipient's language. Every letter is a template per
//! language under `templates/` (`<letter>.<language>.txt`, minijinja, with a `subject`
//! and a `body` block), written once as plain text; the HTML alternative sets the same
//! paragraphs in one layout (`layout.html`, escaped), so the two never say different
//! things. A paragraph that is a bare link becomes a button.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::sync::LazyLock;

/// The languages the platform writes in. Problems (`title`, `detail`) stay English:
/// programs read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Ru,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Ru];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ru => "ru",
        }
    }

    /// The language of a BCP 47 tag (a preference): Russian for `ru` in any region,
    /// English for everything else.
    pub fn of_tag(tag: &str) -> Self {
        Self::spoken(tag).unwrap_or(Self::En)
    }

    fn spoken(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        Self::ALL.into_iter().find(|l| primary.eq_ignore_ascii_case(l.as_str()))
    }

    /// The language a browser's `Accept-Language` prefers among those spoken here (by
    /// q-value, then order; `q=0` means "not this one"), or `None` when it names none.
    pub fn from_accept_language(header: &str) -> Option<Self> {
        let mut best: Option<(f32, Self)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let Some(language) = parts.next().and_then(Self::spoken) else {
                continue;
            };
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, language));
            }
        }
        best.map(|(_, l)| l)
    }
}

/// A written letter: its subject, its text, and the same as HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Every template, compiled into the binary: a missing one is a build error.
macro_rules! templates {
    ($($name:literal),* $(,)?) => { &[$(($name, include_str!(concat!("templates/", $name)))),*] };
}

const TEMPLATES: &[(&str, &str)] = templates![
    "layout.html",
    "verify_email.en.txt",
    "verify_email.ru.txt",
    "reset_password.en.txt",
    "reset_password.ru.txt",
    "security_notice.en.txt",
    "security_notice.ru.txt",
    "identity_linked.en.txt",
    "identity_linked.ru.txt",
    "invitation.en.txt",
    "invitation.ru.txt",
    "invitation_accepted.en.txt",
    "invitation_accepted.ru.txt",
    "registered.en.txt",
    "registered.ru.txt",
    "waitlisted.en.txt",
    "waitlisted.ru.txt",
    "promoted.en.txt",
    "promoted.ru.txt",
    "event_changed.en.txt",
    "event_changed.ru.txt",
    "event_cancelled.en.txt",
    "event_cancelled.ru.txt",
    "reminder.en.txt",
    "reminder.ru.txt",
];

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A variable a caller forgot is an error, not an empty hole in someone's mail.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source).expect("mail templates compile (checked by the tests)");
    }
    env
});

/// Writes `letter` in `language` with `context` (the template's variables).
pub fn write(letter: &str, language: Language, context: impl Serialize) -> Result<Letter, minijinja::Error> {
    let template = ENVIRONMENT.get_template(&format!("{letter}.{}.txt", language.as_str()))?;
    let mut captured = template.render_captured(&context)?;
    let (subject, body) = captured.with_state_mut(|state| {
        Ok::<_, minijinja::Error>((state.render_block("subject")?, state.render_block("body")?))
    })?;
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = tidy(&body);
    let html = ENVIRONMENT.get_template("layout.html")?.render(minijinja::context! {
        lang => language.as_str(),
        subject => &subject,
        paragraphs => paragraphs(&text),
    })?;
    Ok(Letter { subject, text, html: Some(html) })
}

/// The body as written, without the template's indentation and with at most one blank
/// line between paragraphs.
fn tidy(body: &str) -> String {
    let mut out = String::new();
    let mut blank = true;
    for line in body.lines().map(str::trim) {
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
        } else {
            out.push_str(line);
            out.push('\n');
            blank = false;
        }
    }
    out.trim_end().to_owned() + "\n"
}

#[derive(Serialize)]
struct Paragraph<'a> {
    link: Option<&'a str>,
    lines: Vec<&'a str>,
}

fn paragraphs(text: &str) -> Vec<Paragraph<'_>> {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let link = (!p.contains(char::is_whitespace) && (p.starts_with("https://") || p.starts_with("http://")))
                .then_some(p);
            Paragraph { link, lines: p.lines().collect() }
        })
        .collect()
}

const MONTHS_RU: [&str; 12] = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
];
const WEEKDAYS_RU: [&str; 7] = ["понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"];

/// A moment as its reader says it, in their zone: "Friday, 12 February 2027, 19:00
/// (Europe/Moscow)" or "пятница, 12 февраля 2027, 19:00 (Europe/Moscow)". An unknown
/// zone reads as UTC.
pub fn when(at: Timestamp, zone: &str, language: Language) -> String {
    let (tz, zone) = match TimeZone::get(zone) {
        Ok(tz) => (tz, zone),
        Err(_) => (TimeZone::UTC, "UTC"),
    };
    let local = at.to_zoned_datetime(tz);
    match language {
        Language::En => format!("{} ({zone})", local.strftime("%A, %-d %B %Y, %H:%M")),
        Language::Ru => format!(
            "{}, {} {} {}, {} ({zone})",
            WEEKDAYS_RU[local.weekday().to_monday_zero_offset() as usize],
            local.day(),
            MONTHS_RU[local.month() as usize - 1],
            local.year(),
            local.strftime("%H:%M"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variable any template reads, so each renders under the strict rules.
    fn everything() -> serde_json::Value {
        serde_json::json!({
            "name": "Анна <script>", "link": "https://veche.example/x?token=a&b=c", "until": "Friday",
            "change": "recovery_code_used", "left": 3, "provider": "Corp", "email": "a@example.com",
            "inviter": "Boris", "organization": "Клуб", "role": "admin", "member": "Vera",
            "event": "Rust & Tea", "when": "Friday", "place": "Moscow", "ticket": "ABCD-EFGH-JKMN-PQRS",
            "ticket_link": "https://veche.example/t", "event_link": "https://veche.example/e",
            "time_changed": true, "place_changed": true, "online": "https://meet.example/1",
        })
    }

    #[test]
    fn every_letter_is_written_in_every_language() {
        for (name, _) in TEMPLATES.iter().filter(|(n, _)| n.ends_with(".en.txt")) {
            let letter = name.trim_end_matches(".en.txt");
            for language in Language::ALL {
                let written = write(letter, language, everything()).unwrap_or_else(|e| panic!("{letter}: {e:#}"));
                assert!(!written.subject.is_empty() && written.text.len() > 20, "{letter}: {written:?}");
                let html = written.html.unwrap();
                assert!(html.contains(&format!("lang=\"{}\"", language.as_str())), "{html}");
                assert!(!html.contains("<script>"), "HTML is escaped: {html}");
            }
        }
    }

    #[test]
    fn a_link_paragraph_becomes_a_button_and_text_keeps_its_lines() {
        let letter = write("verify_email", Language::En, everything()).unwrap();
        assert!(letter.text.contains("\nhttps://veche.example/x?token=a&b=c\n"), "{}", letter.text);
        // minijinja escapes `/` too (`&#x2f;`), which every HTML reader decodes.
        let html = letter.html.unwrap().replace("&#x2f;", "/");
        assert!(html.contains("href=\"https://veche.example/x?token=a&amp;b=c\""), "{html}");
        assert!(!letter.text.contains("\n\n\n"));
    }

    #[test]
    fn a_missing_variable_is_an_error() {
        assert!(write("verify_email", Language::Ru, serde_json::json!({"name": "x"})).is_err());
    }

    #[test]
    fn languages_come_from_tags_and_browsers() {
        assert_eq!(Language::of_tag("ru-RU"), Language::Ru);
        assert_eq!(Language::of_tag("en-GB"), Language::En);
        assert_eq!(Language::of_tag("de"), Language::En);
        assert_eq!(Language::from_accept_language("de-DE,ru;q=0.8,en;q=0.5"), Some(Language::Ru));
        assert_eq!(Language::from_accept_language("en;q=0.4, ru-RU;q=0.9"), Some(Language::Ru));
        assert_eq!(Language::from_accept_language("ru;q=0, en"), Some(Language::En));
        assert_eq!(Language::from_accept_language("fr, de"), None);
    }

    #[test]
    fn moments_read_in_the_readers_zone_and_words() {
        let at: Timestamp = "2027-02-12T16:00:00Z".parse().unwrap();
        assert_eq!(when(at, "Europe/Moscow", Language::En), "Friday, 12 February 2027, 19:00 (Europe/Moscow)");
        assert_eq!(when(at, "Europe/Moscow", Language::Ru), "пятница, 12 февраля 2027, 19:00 (Europe/Moscow)");
        assert_eq!(when(at, "Nowhere/Else", Language::En), "Friday, 12 February 2027, 16:00 (UTC)");
    }
}
