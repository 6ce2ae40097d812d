//! The search planner: counts what a search asks for (the evidence) and picks where its
//! rows come from. Counting reads the database; choosing is pure.

use crate::search::{Search, Sort};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether a set of matching events (the text matches, the venues in a radius's box, the
/// events holding every tag) should drive a search: each fetched by key, then sorted. The
/// alternative walks the requested order and checks each row; it reads about
/// `limit × corpus ÷ matches` rows before a page fills. So the set drives while
/// `matches² ≤ limit × corpus × walked ÷ fetched`, the last factor being what checking a
/// walked row costs against fetching a match (measured with examples/probe.rs: about 1
/// when the walk reads the row, 1/15 when the walked index holds what it checks).
fn drives(matches: f64, corpus: i64, limit: i64, walked_per_fetched: f64) -> bool {
    matches * matches <= limit as f64 * corpus.max(1) as f64 * walked_per_fetched
}

/// A walked index entry that holds the coordinates (`events_listed`) against a venue
/// fetched from the R*Tree and sorted.
pub(super) const GEO_WALKED_PER_FETCHED: f64 = 1.0 / 15.0;

/// What the planner knows before writing the SQL.
pub(super) struct Evidence {
    /// Estimated events matching the text query, and the tags (`None`: not asked).
    pub(super) text: Option<f64>,
    pub(super) tags: Option<f64>,
    /// The documents of each stem of the text query, as asked.
    pub(super) terms: Vec<(String, i64)>,
    /// Venues in the radius's bounding box, counted up to just past where they stop driving.
    pub(super) geo: Option<i64>,
    /// The postings of each equality filter of a listed search, rarest first.
    pub(super) facets: Vec<(String, i64)>,
    pub(super) corpus: i64,
    pub(super) max_duration: i64,
    /// BM25's corpus statistics: events with stems, and their words in all.
    pub(super) documents: i64,
    pub(super) words: i64,
}

/// A plan estimated to read more than this many rows (index entries and events) takes a
/// core for tens of milliseconds: such searches run a few at a time
/// ([`ExpensiveSearches`]), so that a flood of them cannot take every reader and core
/// from the cheap ones.
pub const EXPENSIVE_ROWS: f64 = 20_000.0;

/// A ranking of more matches than this takes an expensive-search turn (see
/// [`Evidence::is_expensive`]).
pub const RANKED_IN_TURNS: f64 = 1000.0;

/// Of the events a walk reads, the share assumed listed and upcoming when no filter's
/// postings (which hold only listed events) say better.
const LISTED_SHARE: f64 = 0.5;

impl Evidence {
    /// Events estimated to pass every filter and the text.
    fn passing(&self) -> f64 {
        let n = self.corpus.max(1) as f64;
        let mut passing = match self.facets.is_empty() {
            true => n * LISTED_SHARE,
            false => combined(&self.facets.iter().map(|(_, c)| *c).collect::<Vec<_>>(), self.corpus),
        };
        for matches in [self.text, self.tags, self.geo.map(|g| g as f64)].into_iter().flatten() {
            passing *= matches / n;
        }
        passing
    }

    /// Rows read by a walk of `walked` entries that stops once `wanted` of them pass.
    fn walk(&self, walked: f64, wanted: f64) -> f64 {
        (wanted * walked / self.passing().max(f64::MIN_POSITIVE)).min(walked)
    }

    /// The rarest stem of the text query and its documents.
    pub(super) fn rarest_term(&self) -> Option<&(String, i64)> {
        self.terms.iter().min_by_key(|(_, n)| *n)
    }

    /// Rows the search's plan is estimated to read.
    pub(super) fn cost(&self, s: &Search) -> f64 {
        let wanted = wanted(s) as f64;
        let n = self.corpus.max(1) as f64;
        if s.sort == Sort::Relevance {
            return match ranking(s, self) {
                Ranking::Matches => self.text.unwrap_or(0.0),
                Ranking::Facet => self.facets.first().map_or(n, |(_, c)| *c as f64),
                Ranking::Walk => self.walk_cost(wanted),
            };
        }
        match source(s, self) {
            Source::Text => self.text.unwrap_or(0.0),
            Source::Geo => self.geo.unwrap_or(0) as f64,
            Source::Tags => self.tags.unwrap_or(0.0),
            Source::Facets => self.walk(self.facets.first().map_or(n, |(_, c)| *c as f64), wanted),
            Source::Events => self.walk(n, wanted),
        }
    }

    /// Postings (and their events) a relevance walk reads: its page, plus as much again
    /// when other stems' shares must be bounded before the page is certain.
    fn walk_cost(&self, wanted: f64) -> f64 {
        let postings = self.rarest_term().map_or(0.0, |(_, n)| *n as f64);
        let bounded = if self.terms.len() > 1 { 2.0 } else { 1.0 };
        self.walk(postings, wanted * bounded)
    }

    /// Whether the search this evidence is of is one of the expensive kind: a plan that
    /// reads many rows, or a ranking of a common word with no rare filter to score instead.
    /// The walk of a ranking reads few rows, but scores and sorts a page of matches each
    /// time: a client hammering it within its rate limit arrives in waves that would take
    /// every core at once (the fairness test of the reliability suite).
    pub(super) fn is_expensive(&self, s: &Search) -> bool {
        let ranks_common_word = s.sort == Sort::Relevance && ranking(s, self) == Ranking::Walk;
        self.cost(s) > EXPENSIVE_ROWS || (ranks_common_word && self.text.is_some_and(|n| n > RANKED_IN_TURNS))
    }
}

/// Results a search must find: its page, the pages before it (relevance pages by
/// offset), and one more to tell whether another page follows.
pub(super) fn wanted(s: &Search) -> i64 {
    let skipped = match s.after {
        Some(crate::search::Cursor::Offset(n)) => i64::from(n),
        _ => 0,
    };
    skipped + i64::from(s.limit) + 1
}

/// How a search by relevance finds its best matches (see `rank.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ranking {
    /// Every text match that passes the filters is scored: few matches, fetched by key.
    Matches,
    /// Every event of the rarest filter's postings holding the words is scored.
    Facet,
    /// The rarest stem's relevance postings, best first, until the page is certain.
    Walk,
}

pub(super) fn ranking(s: &Search, ev: &Evidence) -> Ranking {
    let matches = ev.text.unwrap_or(0.0);
    let facet = ev.facets.first().map_or(f64::INFINITY, |(_, c)| *c as f64);
    let walk = ev.walk_cost(wanted(s) as f64);
    if matches <= facet && matches <= walk {
        Ranking::Matches
    } else if facet <= walk {
        Ranking::Facet
    } else {
        Ranking::Walk
    }
}

/// Admission of expensive searches: one per two cores (at least one) at a time, waiting
/// for a turn at most [`ExpensiveSearches::PATIENCE`].
#[derive(Debug)]
pub struct ExpensiveSearches(Arc<tokio::sync::Semaphore>);

impl Default for ExpensiveSearches {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self(Arc::new(tokio::sync::Semaphore::new((cores / 2).max(1))))
    }
}

impl ExpensiveSearches {
    /// Longest an expensive search waits for its turn before it is refused (503).
    pub const PATIENCE: Duration = Duration::from_secs(5);

    /// A turn, or `None` when none came within [`Self::PATIENCE`]. The turn is owned, so
    /// that it can go with the query onto its blocking thread and end with the query, not
    /// with a request that was cancelled while SQLite still works for it.
    pub async fn turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        metrics::counter!("events_expensive_searches_total").increment(1);
        match tokio::time::timeout(Self::PATIENCE, self.0.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                metrics::counter!("events_expensive_searches_refused_total").increment(1);
                None
            }
        }
    }
}

/// Matches of several independent conditions, from each one's count: `N · Π(countᵢ / N)`.
fn combined(counts: &[i64], corpus: i64) -> f64 {
    let n = corpus.max(1) as f64;
    counts.iter().fold(n, |acc, &c| acc * (c as f64 / n))
}

/// Counts the planner needs only roughly (a stem's documents, a filter value's postings),
/// remembered for a while: counting a common one walks its whole list, about a
/// millisecond per 50,000 entries.
#[derive(Clone, Debug, Default)]
pub(super) struct Counts(Arc<Mutex<HashMap<String, (i64, Instant)>>>);

impl Counts {
    const FRESH_FOR: Duration = Duration::from_secs(30);
    const CAPACITY: usize = 10_000;

    fn get(&self, key: String, count: impl FnOnce() -> rusqlite::Result<i64>) -> rusqlite::Result<i64> {
        let remembered = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied();
        if let Some((n, at)) = remembered
            && at.elapsed() < Self::FRESH_FOR
        {
            return Ok(n);
        }
        let n = count()?;
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= Self::CAPACITY {
            map.retain(|_, (_, at)| at.elapsed() < Self::FRESH_FOR);
            if map.len() >= Self::CAPACITY {
                map.clear();
            }
        }
        map.insert(key, (n, Instant::now()));
        Ok(n)
    }

    fn term(&self, c: &Connection, term: &str) -> rusqlite::Result<i64> {
        self.get(format!("term {term}"), || {
            Ok(c.prepare_cached("SELECT doc FROM events_fts_vocab WHERE term = ?1")?
                .query_row([term], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        })
    }

    /// Postings of a filter value, counted up to a bound: past it only "common" matters.
    fn facet(&self, c: &Connection, facet: &str) -> rusqlite::Result<i64> {
        self.get(format!("facet {facet}"), || {
            c.prepare_cached("SELECT count(*) FROM (SELECT 1 FROM event_facets WHERE facet = ?1 LIMIT 200000)")?
                .query_row([facet], |r| r.get(0))
        })
    }
}

/// The equality filters of a search as posting keys (see the `event_facets` table).
fn facets_of(s: &Search) -> Vec<String> {
    let mut out = Vec::new();
    match (&s.category, &s.city) {
        // The pair's own postings (see the migrations) stand for both.
        (Some(category), Some(city)) => {
            out.push(format!("category+city:{}", serde_json::json!([category, city])));
        }
        (category, city) => {
            out.extend(city.as_ref().map(|c| format!("city:{c}")));
            out.extend(category.as_ref().map(|c| format!("category:{c}")));
        }
    }
    out.extend(s.format.map(|f| format!("format:{}", f.as_str())));
    out.extend(s.free.map(|f| format!("free:{}", i64::from(f))));
    out.extend(s.organization_id.map(|o| format!("organization:{o}")));
    out.extend(s.tags.iter().map(|t| format!("tag:{t}")));
    out
}

pub(super) fn evidence(c: &Connection, s: &Search, counts: &Counts) -> rusqlite::Result<Evidence> {
    let (max_duration, documents, words) = c
        .prepare_cached("SELECT max_duration, documents, words FROM search_stats")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .unwrap_or((0, 0, 0));
    // The largest rowid is the corpus size closely enough, and costs one index seek.
    let corpus: i64 = c.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?.query_row([], |r| r.get(0))?;
    let limit = s.limit as i64 + 1;
    let mut terms = Vec::new();
    for term in s.fts.iter().flat_map(|fts| crate::search::query_stems(fts)) {
        terms.push((term.to_owned(), counts.term(c, term)?));
    }
    let text = s.fts.is_some().then(|| combined(&terms.iter().map(|(_, n)| *n).collect::<Vec<_>>(), corpus));
    let tags = if s.tags.is_empty() {
        None
    } else {
        let mut n = Vec::new();
        for tag in &s.tags {
            n.push(counts.get(format!("tag {tag}"), || {
                c.prepare_cached("SELECT count(*) FROM event_tags WHERE tag = ?1")?.query_row([tag], |r| r.get(0))
            })?);
        }
        Some(combined(&n, corpus))
    };
    let geo = match s.near {
        None => None,
        Some((lat, lon, radius)) => {
            let (lat_lo, lat_hi, lon_lo, lon_hi) = crate::search::bounding_box(lat, lon, radius);
            let enough = (limit as f64 * corpus as f64 * GEO_WALKED_PER_FETCHED).sqrt() as i64 + 1;
            Some(
                c.prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM events_geo \
                     WHERE min_lat >= ?1 AND max_lat <= ?2 AND min_lon >= ?3 AND max_lon <= ?4 LIMIT ?5)",
                )?
                .query_row(params![lat_lo, lat_hi, lon_lo, lon_hi, enough], |r| r.get(0))?,
            )
        }
    };
    let mut facets = Vec::new();
    if s.statuses.is_none() {
        for facet in facets_of(s) {
            let n = counts.facet(c, &facet)?;
            facets.push((facet, n));
        }
        facets.sort_by_key(|(_, n)| *n);
    }
    Ok(Evidence { text, tags, terms, geo, facets, corpus, max_duration, documents, words })
}

/// Where a search's rows come from, cheapest first by the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Few text matches: they are fetched by key and sorted.
    Text,
    /// Few venues in the radius's box: from the R*Tree, fetched and sorted.
    Geo,
    /// Few events hold every tag: the tag index intersects them.
    Tags,
    /// Walk the rarest filter's postings in start order (a listed search by start).
    Facets,
    /// Walk an index of the events table in the requested order (or SQLite's choice).
    Events,
}

pub(super) fn source(s: &Search, ev: &Evidence) -> Source {
    let limit = s.limit as i64 + 1;
    let rarest_facet = ev.facets.first().map_or(f64::INFINITY, |(_, n)| *n as f64);
    let text = ev.text.filter(|&n| drives(n, ev.corpus, limit, 1.0) && n < rarest_facet);
    let geo =
        ev.geo.map(|n| n as f64).filter(|&n| drives(n, ev.corpus, limit, GEO_WALKED_PER_FETCHED) && n < rarest_facet);
    let tags = ev.tags.filter(|&n| drives(n, ev.corpus, limit, 1.0));
    // In start order the postings are walked in the order asked, however many; for
    // popularity they are read whole and sorted, so only when few.
    let facets = match s.sort {
        Sort::Start => !ev.facets.is_empty(),
        _ => ev.facets.first().is_some_and(|(_, n)| drives(*n as f64, ev.corpus, limit, 1.0)),
    };
    match (text, geo) {
        (Some(t), Some(g)) if g < t => Source::Geo,
        (Some(_), _) => Source::Text,
        (None, Some(_)) => Source::Geo,
        _ if facets => Source::Facets,
        _ if tags.is_some() => Source::Tags,
        _ => Source::Events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: i64 = 100_000;

    fn search(limit: u32) -> Search {
        Search { limit, ..Search::default() }
    }

    fn evidence() -> Evidence {
        Evidence {
            text: None,
            tags: None,
            terms: Vec::new(),
            geo: None,
            facets: Vec::new(),
            corpus: CORPUS,
            max_duration: 0,
            documents: CORPUS,
            words: CORPUS * 10,
        }
    }

    #[test]
    fn a_set_drives_while_its_square_stays_under_limit_times_corpus() {
        // limit 21 × 100,000 = 2,100,000: a set of 1,449 drives (1449² ≈ 2.1M), 1,450 walks.
        assert!(drives(1449.0, CORPUS, 21, 1.0));
        assert!(!drives(1450.0, CORPUS, 21, 1.0));
        // A cheap walk (the index holds what it checks) lowers the bar fifteenfold.
        assert!(!drives(1449.0, CORPUS, 21, GEO_WALKED_PER_FETCHED));
        // An empty table is treated as one event, not a division by zero.
        assert!(drives(0.0, 0, 1, 1.0));
    }

    #[test]
    fn independent_conditions_multiply_their_selectivities() {
        assert_eq!(combined(&[], CORPUS), CORPUS as f64);
        assert_eq!(combined(&[50_000], CORPUS), 50_000.0);
        assert_eq!(combined(&[50_000, 10_000], CORPUS), 5_000.0);
        assert_eq!(combined(&[0, 10_000], CORPUS), 0.0);
    }

    #[test]
    fn relevance_walks_a_common_words_postings_and_scores_a_rare_filters_events() {
        let relevance = Search { sort: Sort::Relevance, ..search(20) };
        let open =
            |facets| Evidence { text: Some(50_000.0), terms: vec![("open".into(), 50_000)], facets, ..evidence() };
        // Half the corpus holds the word: 21 of about 42 walked postings pass.
        assert_eq!(ranking(&relevance, &open(vec![])), Ranking::Walk);
        assert!(open(vec![]).cost(&relevance) < 100.0);
        // A city of a tenth: about 10 times as many, still cheaper than its 10,000 events.
        assert_eq!(ranking(&relevance, &open(vec![("city:moscow".into(), 10_000)])), Ranking::Walk);
        // One organization's 300 events are scored whole rather than walked for.
        assert_eq!(ranking(&relevance, &open(vec![("organization:x".into(), 300)])), Ranking::Facet);
        // A rare word's matches are scored whole.
        let rare = Evidence { text: Some(12.0), terms: vec![("4242".into(), 12)], ..evidence() };
        assert_eq!(ranking(&relevance, &rare), Ranking::Matches);
    }

    #[test]
    fn expensive_means_many_rows_read_not_a_common_word() {
        let open = Evidence { text: Some(50_000.0), terms: vec![("open".into(), 50_000)], ..evidence() };
        assert!(!open.is_expensive(&search(20)), "a page in start order is found within a few rows");
        let relevance = Search { sort: Sort::Relevance, ..search(20) };
        assert!(open.cost(&relevance) < 100.0, "and so is a page by relevance...");
        assert!(open.is_expensive(&relevance), "...but ranking a common word takes a turn");
        let in_an_organization = Evidence { facets: vec![("organization:x".into(), 300)], ..open };
        assert!(!in_an_organization.is_expensive(&relevance), "unless a rare filter's events are scored");
        // By popularity at a million events, common words in a city, a category and a
        // tag: about 70 events pass, and the popularity walk reads ~300,000 to find 21.
        let rare_combination = Evidence {
            text: Some(100_000.0),
            terms: vec![("open".into(), 500_000), ("jazz".into(), 200_000)],
            tags: Some(50_000.0),
            facets: vec![("city:kazan".into(), 90_000), ("category:concert".into(), 160_000)],
            corpus: 1_000_000,
            ..evidence()
        };
        let popular = Search { sort: Sort::Popularity, ..search(20) };
        assert!(rare_combination.is_expensive(&popular), "{}", rare_combination.cost(&popular));
    }

    #[test]
    fn a_search_with_nothing_selective_walks_the_events() {
        assert_eq!(source(&search(20), &evidence()), Source::Events);
        // A common word (half the corpus) is checked on the walked rows.
        let ev = Evidence { text: Some(50_000.0), ..evidence() };
        assert_eq!(source(&search(20), &ev), Source::Events);
    }

    #[test]
    fn a_rare_word_drives_and_a_common_one_does_not() {
        let ev = Evidence { text: Some(12.0), ..evidence() };
        assert_eq!(source(&search(20), &ev), Source::Text);
    }

    #[test]
    fn the_rarer_of_text_and_radius_drives() {
        let ev = Evidence { text: Some(40.0), geo: Some(10), ..evidence() };
        assert_eq!(source(&search(20), &ev), Source::Geo);
        let ev = Evidence { text: Some(5.0), geo: Some(10), ..evidence() };
        assert_eq!(source(&search(20), &ev), Source::Text);
        // Venues in a wide box are walked: the listing index holds the coordinates.
        let ev = Evidence { geo: Some(5_000), ..evidence() };
        assert_eq!(source(&search(20), &ev), Source::Events);
    }

    #[test]
    fn a_filter_rarer_than_the_text_walks_its_postings_in_start_order() {
        let ev = Evidence { text: Some(200.0), facets: vec![("city:kazan".into(), 30)], ..evidence() };
        assert_eq!(source(&search(20), &ev), Source::Facets);
        // In start order the postings serve however many there are...
        let ev = Evidence { facets: vec![("city:moscow".into(), 60_000)], ..evidence() };
        assert_eq!(source(&search(20), &ev), Source::Facets);
        // ...by popularity they are read whole and sorted, so only when few.
        let popular = Search { sort: Sort::Popularity, ..search(20) };
        assert_eq!(source(&popular, &ev), Source::Events);
        let ev = Evidence { facets: vec![("city:kazan".into(), 30)], ..evidence() };
        assert_eq!(source(&popular, &ev), Source::Facets);
    }

    #[test]
    fn few_events_holding_every_tag_are_intersected() {
        let ev = Evidence { tags: Some(100.0), ..evidence() };
        assert_eq!(source(&search(20), &ev), Source::Tags);
        let ev = Evidence { tags: Some(20_000.0), ..evidence() };
        assert_eq!(source(&search(20), &ev), Source::Events);
    }

    #[test]
    fn filters_become_posting_keys_in_a_fixed_order() {
        let org = uuid::Uuid::nil();
        let s = Search {
            city: Some("kazan".into()),
            category: Some("music".into()),
            free: Some(true),
            organization_id: Some(org),
            tags: vec!["jazz".into(), "live".into()],
            ..search(20)
        };
        assert_eq!(
            facets_of(&s),
            [r#"category+city:["music","kazan"]"#, "free:1", &format!("organization:{org}"), "tag:jazz", "tag:live"]
        );
        let s = Search { category: None, ..s };
        assert_eq!(facets_of(&s)[0], "city:kazan", "one of the pair alone is its own posting");
    }
}
