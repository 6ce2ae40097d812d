//! Pages and files compiled into the binary (the dashboard, the invitation and account
//! pages): served with a strict Content-Security-Policy (only our own files and the API,
//! no inline scripts, no framing), no sniffing, no referrer, and caching that follows the
//! binary. Pages speak their reader's language ([`localized`]): their words live in one
//! file per language, `assets/text/<language>.json`.

use crate::mail::Language;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::LazyLock;

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

/// A page (revalidated on every visit) or a file it loads (`cacheable`: kept for a day).
pub fn serve(content_type: &'static str, body: impl IntoResponse, cacheable: bool) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Links may carry secrets (an invitation token): never pass them on.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let cache = if cacheable { "public, max-age=86400" } else { "no-cache" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const JS: &str = "text/javascript; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";

/// The files every small page shares (its style, and `page.js`: posting to the API and
/// showing problems field by field), served by each service under its own pages' prefix.
pub fn shared(name: &str) -> Option<(&'static str, &'static [u8])> {
    match name {
        "page.css" => Some((CSS, include_bytes!("../assets/page.css"))),
        "page.js" => Some((JS, include_bytes!("../assets/page.js"))),
        _ => None,
    }
}

/// The words of every page, by language: `common` ones, and each page's own.
static TEXT: LazyLock<HashMap<Language, serde_json::Value>> = LazyLock::new(|| {
    let parse = |json: &str| serde_json::from_str(json).expect("page texts are JSON (checked by the tests)");
    HashMap::from([
        (Language::En, parse(include_str!("../assets/text/en.json"))),
        (Language::Ru, parse(include_str!("../assets/text/ru.json"))),
    ])
});

/// The language a page is shown in: `lang` from its address (a mail's link names the
/// language its letter was written in, the reader's preference), else the browser's
/// `Accept-Language`, else English.
pub fn page_language(query: Option<&str>, headers: &HeaderMap) -> Language {
    let asked = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "lang").map(|(_, v)| Language::of_tag(&v))
    });
    asked.unwrap_or_else(|| crate::negotiate::language(headers))
}

/// The words of `page` in `language`: the page's own over the common ones.
fn words(page: &str, language: Language) -> serde_json::Value {
    let text = &TEXT[&language];
    let mut merged = text["common"].as_object().cloned().unwrap_or_default();
    if let Some(own) = text[page].as_object() {
        merged.extend(own.clone());
    }
    serde_json::Value::Object(merged)
}

/// Renders `template` (minijinja, HTML-escaped) with `t`, the words of `page` in
/// `language`, and `lang`; the page's script reads the same words from the JSON the
/// template puts in `<script type="application/json" id="text">` (data, which the
/// policy lets no browser run).
pub fn render_page(page: &str, template: &str, language: Language) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.render_named_str(
        &format!("{page}.html"),
        template,
        minijinja::context! { lang => language.as_str(), t => words(page, language) },
    )
}

/// A page in its reader's language ([`page_language`]), said in `Content-Language`.
pub fn localized(page: &str, template: &str, query: Option<&str>, headers: &HeaderMap) -> Response {
    let language = page_language(query, headers);
    match render_page(page, template, language) {
        Ok(html) => {
            let mut response = serve(HTML, html, false);
            let h = response.headers_mut();
            h.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(language.as_str()));
            h.insert(header::VARY, HeaderValue::from_static("accept-language"));
            response
        }
        Err(e) => {
            tracing::error!(page, error = %e, "could not render a page");
            crate::ApiError::Internal(anyhow::anyhow!("the page could not be rendered")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of `a` (nested, dotted) that `b` lacks.
    fn missing(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Vec<String> {
        let Some(a) = a.as_object() else { return Vec::new() };
        a.iter()
            .flat_map(|(k, v)| match b.get(k) {
                None => vec![format!("{at}{k}")],
                Some(w) => missing(v, w, &format!("{at}{k}.")),
            })
            .collect()
    }

    #[test]
    fn every_language_has_every_word() {
        let (en, ru) = (&TEXT[&Language::En], &TEXT[&Language::Ru]);
        assert_eq!(missing(en, ru, ""), Vec::<String>::new(), "missing in Russian");
        assert_eq!(missing(ru, en, ""), Vec::<String>::new(), "missing in English");
    }

    #[test]
    fn a_page_speaks_its_language_and_hands_its_words_to_its_script_as_data() {
        let template = r#"<html lang="{{ lang }}"><h1>{{ t.title }}</h1><script type="application/json" id="text">{{ t|tojson }}</script>"#;
        let html = render_page("verify_email", template, Language::Ru).unwrap();
        assert!(html.starts_with(r#"<html lang="ru"><h1>Подтвердите адрес почты</h1>"#), "{html}");
        let json = html.split("id=\"text\">").nth(1).unwrap().trim_end_matches("</script>");
        let words: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(words["confirmed"], "Адрес почты подтверждён.");
        assert_eq!(words["log_in"], "Войти", "the common words come along");
        // A word that could close the script element is escaped inside the JSON.
        assert!(!render_page("x", "{{ '</script>'|tojson }}", Language::En).unwrap().contains("</script>"));
        assert!(render_page("verify_email", "{{ t.nothing }}", Language::En).is_err(), "a missing word is an error");
    }

    #[test]
    fn the_address_wins_over_the_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_static("ru-RU,ru;q=0.9"));
        assert_eq!(page_language(Some("token=abc&lang=en"), &headers), Language::En);
        assert_eq!(page_language(Some("token=abc"), &headers), Language::Ru);
        assert_eq!(page_language(None, &HeaderMap::new()), Language::En);
        assert_eq!(page_language(Some("lang=ru"), &HeaderMap::new()), Language::Ru);
    }
}
