//! Search: the text analysis shared by indexing and querying, and the parsed form of a
//! `GET /events` query. No I/O here.
//!
//! Full text uses SQLite FTS5 over *stems*: each word is lower-cased, `ё` folded to `е`,
//! and reduced by the Snowball stemmer of its script (Russian for Cyrillic, English
//! otherwise), so "концерты" finds "концерт" and "running" finds "run". Stemming in
//! Rust keeps the index's tokenizer plain (`unicode61`) and the two sides identical.

use kit::{ApiError, Violations, moment};
use rust_stemmers::{Algorithm, Stemmer};
use serde::Deserialize;
use std::sync::OnceLock;
use utoipa::IntoParams;
use uuid::Uuid;

fn stemmers() -> &'static (Stemmer, Stemmer) {
    static S: OnceLock<(Stemmer, Stemmer)> = OnceLock::new();
    S.get_or_init(|| (Stemmer::create(Algorithm::Russian), Stemmer::create(Algorithm::English)))
}

/// Words of a text, normalised and stemmed.
pub fn stems(text: &str) -> Vec<String> {
    let (ru, en) = stemmers();
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w.to_lowercase().replace('ё', "е");
            let cyrillic = w.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c));
            let stem = if cyrillic { ru.stem(&w) } else { en.stem(&w) };
            without_latin_diacritics(&stem)
        })
        .collect()
}

/// `é` → `e`, `ü` → `u`, as the text index's tokenizer (FTS5 `unicode61`) folds Latin
/// letters, so a word checked on the row (`events.terms`) matches exactly what the index
/// matches; other scripts keep their marks (`й` stays `й`).
fn without_latin_diacritics(stem: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    stem.chars()
        .map(|c| match c.is_ascii() {
            true => c,
            false => {
                let mut parts = std::iter::once(c).nfd();
                match (parts.next(), parts.all(unicode_normalization::char::is_combining_mark)) {
                    (Some(base), true) if base.is_ascii_alphabetic() => base,
                    _ => c,
                }
            }
        })
        .collect()
}

/// The indexed text of an event.
pub fn document(title: &str, description: &str, tags: &[String]) -> String {
    let mut words = stems(title);
    words.extend(stems(description));
    for tag in tags {
        words.extend(stems(tag));
    }
    words.join(" ")
}

/// The distinct stems of an event's text with how often each occurs, as ` stem:count`
/// pairs between spaces (` jazz:2 концерт:1 `): a row matches a query stem `s` when it
/// holds ` s:` (see [`term_needles`]), and relevance reads a stem's count from it
/// ([`term_count`]). The counts add up to the words of [`document`].
pub fn terms(title: &str, description: &str, tags: &[String]) -> String {
    let mut counts: Vec<(String, u32)> = Vec::new();
    for stem in stems(title).into_iter().chain(stems(description)).chain(tags.iter().flat_map(|t| stems(t))) {
        match counts.iter_mut().find(|(s, _)| *s == stem) {
            Some((_, n)) => *n += 1,
            None => counts.push((stem, 1)),
        }
    }
    let mut out = String::from(" ");
    for (stem, n) in counts {
        out.push_str(&format!("{stem}:{n} "));
    }
    out
}

/// The `(stem, count)` pairs of a [`terms`] text.
pub fn term_counts(terms: &str) -> impl Iterator<Item = (&str, u32)> {
    terms.split(' ').filter_map(|pair| {
        let (stem, n) = pair.rsplit_once(':')?;
        Some((stem, n.parse().ok()?))
    })
}

/// How often `stem` occurs in a [`terms`] text (0: not at all).
pub fn term_count(terms: &str, stem: &str) -> u32 {
    let needle = format!(" {stem}:");
    terms.find(&needle).map_or(0, |at| {
        let rest = &terms[at + needle.len()..];
        rest[..rest.find(' ').unwrap_or(rest.len())].parse().unwrap_or(0)
    })
}

/// The words of a [`terms`] text: the document length relevance normalises by.
pub fn terms_len(terms: &str) -> u32 {
    term_counts(terms).map(|(_, n)| n).sum()
}

/// What to look for in [`terms`] for each stem of an FTS query made by [`fts_query`].
pub fn term_needles(fts: &str) -> Vec<String> {
    query_stems(fts).map(|t| format!(" {t}:")).collect()
}

/// The stems of an FTS query made by [`fts_query`].
pub fn query_stems(fts: &str) -> impl Iterator<Item = &str> {
    fts.split(' ').map(|t| t.trim_matches('"'))
}

/// Okapi BM25 with SQLite FTS5's constants and inverse document frequency, so a ranking
/// computed here orders events as FTS5's `bm25()` would, from counts kept beside the
/// events instead of a walk of the word's whole list of documents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25 {
    /// Documents in the index, and their average length in words.
    pub documents: f64,
    pub average_len: f64,
}

impl Bm25 {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;

    pub fn new(documents: i64, words: i64) -> Self {
        let documents = documents.max(1) as f64;
        Self { documents, average_len: (words.max(1) as f64 / documents).max(1.0) }
    }

    /// The weight of a stem found in `df` documents; a stem in more than half of them
    /// weighs almost nothing, as in FTS5.
    pub fn idf(&self, df: i64) -> f64 {
        let df = df.max(0) as f64;
        // NaN too when counts remembered for a while exceed a corpus that shrank meanwhile.
        let idf = ((self.documents - df + 0.5) / (df + 0.5)).ln();
        if idf > 0.0 { idf } else { 1e-6 }
    }

    /// A stem's share of an event's score, without its weight: it grows with how often the
    /// stem occurs (`tf`) and shrinks with the event's length in words.
    pub fn saturation(&self, tf: u32, len: u32) -> f64 {
        let tf = f64::from(tf);
        tf * (Self::K1 + 1.0) / (tf + Self::K1 * (1.0 - Self::B + Self::B * f64::from(len) / self.average_len))
    }

    /// The most any stem's [`Self::saturation`] can be.
    pub const MAX_SATURATION: f64 = Self::K1 + 1.0;
}

/// An FTS5 query matching every stem of `q` (quoted, so no user input is FTS syntax).
pub fn fts_query(q: &str) -> Option<String> {
    // Each stem once: a ranking weighs each stem of the query once (see `store/rank.rs`).
    let mut distinct: Vec<String> = Vec::new();
    for stem in stems(q) {
        if distinct.len() < 16 && !distinct.contains(&stem) {
            distinct.push(stem);
        }
    }
    let terms: Vec<String> = distinct.into_iter().map(|s| format!("\"{s}\"")).collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    #[default]
    Start,
    Relevance,
    Popularity,
}

/// `GET /events` parameters as they arrive.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Full text over title, description and tags (Russian and English stemming).
    pub q: Option<String>,
    /// Events ending at or after this time: RFC 3339, or a date (that day's start in
    /// `time_zone`).
    #[param(schema_with = kit::schemas::date_or_date_time)]
    pub from: Option<String>,
    /// Events starting before this time: RFC 3339, or a date (the whole day included).
    #[param(schema_with = kit::schemas::date_or_date_time)]
    pub to: Option<String>,
    /// The IANA zone plain dates in `from` and `to` are read in (UTC when left out).
    #[param(schema_with = kit::schemas::time_zone)]
    pub time_zone: Option<String>,
    pub city: Option<String>,
    /// `lat,lon`; with `radius_km` (default 10).
    #[param(pattern = "^-?[0-9]+(\\.[0-9]+)?,-?[0-9]+(\\.[0-9]+)?$", example = "55.79,49.12")]
    pub near: Option<String>,
    #[param(exclusive_minimum = 0, maximum = 1000)]
    pub radius_km: Option<f64>,
    /// Comma-separated; an event matches when it has every tag.
    pub tags: Option<String>,
    pub category: Option<String>,
    pub organization_id: Option<Uuid>,
    #[param(value_type = Option<crate::model::Format>, inline)]
    pub format: Option<String>,
    pub free: Option<bool>,
    /// `start` (default), `relevance` (needs `q`: Okapi BM25 over every match, best
    /// first) or `popularity`.
    #[param(value_type = Option<Sort>, inline)]
    pub sort: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// With `organization_id`, for its members: comma-separated `draft`, `published`,
    /// `cancelled`.
    #[param(pattern = "^(draft|published|cancelled)(,(draft|published|cancelled))*$")]
    pub status: Option<String>,
}

/// A validated search.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub fts: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub city: Option<String>,
    pub near: Option<(f64, f64, f64)>,
    pub tags: Vec<String>,
    pub category: Option<String>,
    pub organization_id: Option<Uuid>,
    pub format: Option<crate::model::Format>,
    pub free: Option<bool>,
    pub sort: Sort,
    pub limit: u32,
    pub after: Option<Cursor>,
    /// `None`: only published public events. `Some(statuses)`: an organization's own view.
    pub statuses: Option<Vec<crate::model::Status>>,
}

/// Where the previous page ended, for each sort.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, Deserialize)]
pub enum Cursor {
    Start(i64, i64),
    Popularity(i64, i64),
    /// Relevance pages by offset: scores are not stable keys.
    Offset(u32),
}

impl SearchParams {
    pub fn validate(self) -> Result<Search, ApiError> {
        let mut v = Violations::new();
        let fts = match self.q.as_deref().map(str::trim) {
            Some(q) if q.chars().count() > 200 => {
                v.add("q", "must be at most 200 characters");
                None
            }
            Some(q) if !q.is_empty() => {
                let f = fts_query(q);
                if f.is_none() {
                    v.add("q", "has no words to search for");
                }
                f
            }
            _ => None,
        };
        let zone = moment::zone(&mut v, "time_zone", self.time_zone.as_deref());
        let from = moment::param(&mut v, "from", self.from.as_deref(), &zone, moment::End::Start);
        let to = moment::param(&mut v, "to", self.to.as_deref(), &zone, moment::End::Finish);
        let near = match self.near.as_deref() {
            None => {
                v.check(self.radius_km.is_none(), "radius_km", "needs `near`");
                None
            }
            Some(s) => {
                let parsed = s
                    .split_once(',')
                    .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)));
                let radius = self.radius_km.unwrap_or(10.0);
                v.check(
                    radius.is_finite() && radius > 0.0 && radius <= 1000.0,
                    "radius_km",
                    "must be between 0 and 1000",
                );
                match parsed {
                    Some((lat, lon)) if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) => {
                        Some((lat, lon, radius))
                    }
                    _ => {
                        v.add("near", "must be `latitude,longitude` in range");
                        None
                    }
                }
            }
        };
        let tags: Vec<String> = self
            .tags
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(crate::model::normalize_tag)
            .filter(|t| !t.is_empty())
            .collect();
        v.check(tags.len() <= 10, "tags", "at most 10 tags");
        let format = self.format.as_deref().and_then(|f| {
            let parsed = crate::model::Format::parse(f);
            v.check(parsed.is_some(), "format", "must be offline, online or hybrid");
            parsed
        });
        let sort = match self.sort.as_deref() {
            None | Some("start") => Sort::Start,
            Some("relevance") => {
                v.check(fts.is_some(), "sort", "relevance needs `q`");
                Sort::Relevance
            }
            Some("popularity") => Sort::Popularity,
            Some(_) => {
                v.add("sort", "must be start, relevance or popularity");
                Sort::Start
            }
        };
        let limit = match kit::page::limit(self.limit) {
            Ok(n) => n,
            Err(_) => {
                v.add("limit", format!("must be between 1 and {}", kit::page::MAX_LIMIT));
                0
            }
        };
        let after = match self.cursor.as_deref() {
            None => None,
            Some(c) => match kit::page::decode_cursor::<Cursor>(c) {
                Ok(cur) => {
                    let fits = matches!(
                        (sort, cur),
                        (Sort::Start, Cursor::Start(..))
                            | (Sort::Popularity, Cursor::Popularity(..))
                            | (Sort::Relevance, Cursor::Offset(_))
                    );
                    v.check(fits, "cursor", "belongs to another sort order");
                    Some(cur)
                }
                Err(_) => {
                    v.add("cursor", "is not a cursor this API issued");
                    None
                }
            },
        };
        let statuses = match self.status.as_deref() {
            None => None,
            Some(s) => {
                let parsed: Vec<_> = s.split(',').map(crate::model::Status::parse).collect();
                v.check(parsed.iter().all(Option::is_some), "status", "must be draft, published or cancelled");
                v.check(self.organization_id.is_some(), "status", "needs `organization_id`");
                Some(parsed.into_iter().flatten().collect())
            }
        };
        let text = |s: Option<String>, field: &str, v: &mut Violations| {
            let s = s.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
            if s.as_ref().is_some_and(|s| s.chars().count() > 200) {
                v.add(field, "must be at most 200 characters");
            }
            s
        };
        let city = text(self.city, "city", &mut v);
        let category = text(self.category, "category", &mut v).map(|c| crate::model::normalize_tag(&c));
        v.into_result()?;
        Ok(Search {
            fts,
            from,
            to,
            city,
            near,
            tags,
            category,
            organization_id: self.organization_id,
            format,
            free: self.free,
            sort,
            limit,
            after,
            statuses,
        })
    }
}

/// Great-circle distance in kilometres (haversine).
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0088 * a.sqrt().asin()
}

/// A latitude/longitude box that contains the circle, for an index range scan.
pub fn bounding_box(lat: f64, lon: f64, radius_km: f64) -> (f64, f64, f64, f64) {
    let dlat = radius_km / 111.0;
    let cos = lat.to_radians().cos().abs().max(0.01);
    let dlon = (radius_km / (111.0 * cos)).min(180.0);
    (lat - dlat, lat + dlat, lon - dlon, lon + dlon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_and_english_words_share_stems_with_their_forms() {
        assert_eq!(stems("концерты"), stems("концерт"));
        assert_eq!(stems("Концертов"), stems("концерт"));
        assert_eq!(stems("running"), stems("run"));
        assert_eq!(stems("Ёлка"), stems("елка"));
    }

    #[test]
    fn queries_are_quoted_terms() {
        assert_eq!(fts_query("Running  концерты!").unwrap(), "\"run\" \"концерт\"");
        assert_eq!(fts_query("\"OR* NEAR(\""), Some("\"or\" \"near\"".into()));
        assert_eq!(fts_query("  !!! "), None);
        assert_eq!(fts_query("Jazz jazz концерты концерт").unwrap(), "\"jazz\" \"концерт\"", "each stem once");
        assert_eq!(stems("Café Zürich"), ["cafe", "zurich"], "Latin letters lose their marks, as in the index");
        assert_eq!(stems("чай"), ["ча"], "stemmed first");
        assert_eq!(stems("йога"), ["йог"], "other scripts keep them");
        let t = terms("Jazz jazz", "концерты", &["jazz".into()]);
        assert_eq!(t, " jazz:3 концерт:1 ");
        assert_eq!((term_count(&t, "jazz"), term_count(&t, "концерт"), term_count(&t, "jaz")), (3, 1, 0));
        assert_eq!(terms_len(&t), document("Jazz jazz", "концерты", &["jazz".into()]).split(' ').count() as u32);
        assert_eq!(term_needles("\"jazz\" \"концерт\""), [" jazz:", " концерт:"]);
    }

    #[test]
    fn bm25_favours_more_occurrences_and_shorter_events_and_weighs_rare_stems_more() {
        let bm = Bm25::new(1000, 10_000);
        assert_eq!(bm.average_len, 10.0);
        assert!(bm.saturation(2, 10) > bm.saturation(1, 10));
        assert!(bm.saturation(1, 5) > bm.saturation(1, 20));
        assert!(bm.saturation(1000, 1) < Bm25::MAX_SATURATION);
        assert!(bm.idf(3) > bm.idf(300));
        assert_eq!(bm.idf(900), 1e-6, "a stem in most documents");
        assert_eq!(Bm25::new(1, 10).idf(3), 1e-6, "a count older than a corpus that shrank is no NaN");
        assert_eq!(Bm25::new(0, 0), Bm25 { documents: 1.0, average_len: 1.0 });
    }

    #[test]
    fn distances() {
        let kazan_moscow = distance_km(55.79, 49.12, 55.75, 37.62);
        assert!((715.0..730.0).contains(&kazan_moscow), "{kazan_moscow}");
        let (a, b, c, d) = bounding_box(55.79, 49.12, 10.0);
        assert!(a < 55.79 && b > 55.79 && c < 49.12 && d > 49.12);
    }

    #[test]
    fn params_validate() {
        let p = SearchParams { near: Some("95,10".into()), sort: Some("relevance".into()), ..Default::default() };
        match p.validate() {
            Err(ApiError::Validation(e)) => {
                let f: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(f, vec!["near", "sort"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
