//! A search's SQL, written from its plan: where the rows come from, then each filter
//! checked where it is cheapest.

use super::crud::COLUMNS;
use super::plan::{Evidence, Source, source};
use crate::search::{Cursor, Search, Sort};
use rusqlite::types::ToSql;

/// Where a search's rows come from and the conditions they must meet, before an order.
struct Parts {
    from: String,
    /// The alias holding the sort key: the postings walked, or the event row itself.
    k: &'static str,
    conds: Vec<String>,
    p: Vec<Box<dyn ToSql>>,
}

/// The SQL and parameters of a search in start or popularity order. Filters are ANDed;
/// see [`source`] for where the rows come from. A rare text's matches drive (fetched by
/// key from the text index); any other text match is checked on the row, against its
/// stems (`events.terms`).
pub(super) fn search_sql(s: &Search, now: i64, ev: &Evidence) -> (String, Vec<Box<dyn ToSql>>) {
    let Parts { from, k, conds, p } = parts(s, now, ev, source(s, ev));
    let order = match s.sort {
        Sort::Popularity => "e.registered_count DESC, e.seq".into(),
        Sort::Start | Sort::Relevance => format!("{k}.start_at, {k}.seq"),
    };
    let conds = conds.join(" AND ");
    // The sort key columns come first (for the next page's cursor); one row more than
    // asked tells whether there is a next page.
    let sql = format!(
        "SELECT e.start_at, e.registered_count, e.seq, {COLUMNS}{from} WHERE {conds} ORDER BY {order} LIMIT {}",
        s.limit + 1
    );
    (sql, p)
}

/// The events a ranking scores, as `(seq, terms)`, in no order: those `source` yields
/// that pass every filter and hold every stem; with `among`, only the events of that
/// JSON array of seqs (a batch of relevance postings), looked up by key.
pub(super) fn candidates_sql(
    s: &Search,
    now: i64,
    ev: &Evidence,
    source: Source,
    among: Option<String>,
) -> (String, Vec<Box<dyn ToSql>>) {
    let Parts { mut from, conds, mut p, .. } = parts(s, now, ev, source);
    if let Some(seqs) = among {
        // The batch first, each event by key: the listing indexes must not drive.
        from = " FROM json_each(?) j CROSS JOIN events e ON e.seq = j.value".into();
        p.insert(0, Box::new(seqs));
    }
    (format!("SELECT e.seq, e.terms{from} WHERE {}", conds.join(" AND ")), p)
}

fn parts(s: &Search, now: i64, ev: &Evidence, source: Source) -> Parts {
    let mut p: Vec<Box<dyn ToSql>> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    let (from, k) = match source {
        Source::Facets => (String::from(" FROM event_facets k CROSS JOIN events e ON e.seq = k.seq"), "k"),
        // Walk by popularity and check each row: a page fills after `limit ÷ selectivity`
        // rows, where SQLite would rather read a filter's whole range and sort it.
        Source::Events if s.sort == Sort::Popularity && s.statuses.is_none() => {
            (String::from(" FROM events e INDEXED BY events_by_popularity"), "e")
        }
        _ => (String::from(" FROM events e"), "e"),
    };
    let mut needles = Vec::new();
    if let Some(fts) = &s.fts {
        if source == Source::Text {
            conds.push("e.seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)".into());
            p.push(Box::new(fts.clone()));
        } else {
            needles = crate::search::term_needles(fts);
        }
    }
    let mut facets: &[(String, i64)] = &[];
    if source == Source::Facets {
        // Postings exist only for listed events: the status needs no check.
        conds.push(format!("{k}.facet = ?"));
        p.push(Box::new(ev.facets[0].0.clone()));
        facets = &ev.facets[1..];
    } else {
        // Popularity walks its own index; the listing index would need a sort of everything.
        let unindexed = if s.sort == Sort::Popularity { "+" } else { "" };
        match &s.statuses {
            None => conds.push(format!("{unindexed}e.status = 'published' AND {unindexed}e.visibility = 'public'")),
            Some(statuses) if !statuses.is_empty() => {
                let list: Vec<String> = statuses.iter().map(|st| format!("'{}'", st.as_str())).collect();
                conds.push(format!("{unindexed}e.status IN ({})", list.join(", ")));
            }
            Some(_) => {}
        }
    }
    // Upcoming and ongoing events unless the caller asks for another window.
    let window_from = s.from.unwrap_or(now);
    conds.push(format!("{k}.end_at >= ? AND {k}.start_at >= ?"));
    p.push(Box::new(window_from));
    p.push(Box::new(window_from.saturating_sub(ev.max_duration)));
    if let Some(to) = s.to {
        conds.push(format!("{k}.start_at < ?"));
        p.push(Box::new(to));
    }
    match s.after {
        Some(Cursor::Start(start, seq)) => {
            conds.push(format!("({k}.start_at, {k}.seq) > (?, ?)"));
            p.push(Box::new(start));
            p.push(Box::new(seq));
        }
        Some(Cursor::Popularity(count, seq)) => {
            conds.push("(e.registered_count < ? OR (e.registered_count = ? AND e.seq > ?))".into());
            p.push(Box::new(count));
            p.push(Box::new(count));
            p.push(Box::new(seq));
        }
        Some(Cursor::Offset(_)) | None => {}
    }
    // The other postings, each one primary-key seek, before the event row is read.
    for (facet, _) in facets {
        conds.push(format!(
            "EXISTS (SELECT 1 FROM event_facets f WHERE f.facet = ? AND f.start_at = {k}.start_at AND f.seq = {k}.seq)"
        ));
        p.push(Box::new(facet.clone()));
    }
    if source != Source::Facets {
        if let Some(city) = &s.city {
            conds.push("e.city_key = ?".into());
            p.push(Box::new(city.clone()));
        }
        if let Some(category) = &s.category {
            conds.push("e.category = ?".into());
            p.push(Box::new(category.clone()));
        }
        if let Some(org) = s.organization_id {
            conds.push("e.organization_id = ?".into());
            p.push(Box::new(org.to_string()));
        }
        if let Some(format) = s.format {
            conds.push("e.format = ?".into());
            p.push(Box::new(format.as_str()));
        }
        if let Some(free) = s.free {
            conds.push("e.is_free = ?".into());
            p.push(Box::new(free));
        }
    }
    if let Some((lat, lon, radius)) = s.near {
        let (lat_lo, lat_hi, lon_lo, lon_hi) = crate::search::bounding_box(lat, lon, radius);
        conds.push(if source == Source::Geo {
            "e.seq IN (SELECT seq FROM events_geo WHERE min_lat >= ? AND max_lat <= ? AND min_lon >= ? AND max_lon <= ?) \
             AND distance_km(e.latitude, e.longitude, ?, ?) <= ?"
                .into()
        } else {
            // Checked on the walked row (`events_listed` holds the coordinates).
            "+e.latitude >= ? AND +e.latitude <= ? AND +e.longitude >= ? AND +e.longitude <= ? \
             AND distance_km(e.latitude, e.longitude, ?, ?) <= ?"
                .into()
        });
        for v in [lat_lo, lat_hi, lon_lo, lon_hi, lat, lon, radius] {
            p.push(Box::new(v));
        }
    }
    if source == Source::Tags {
        let sets = vec!["SELECT event_seq FROM event_tags WHERE tag = ?"; s.tags.len()];
        conds.push(format!("e.seq IN ({})", sets.join(" INTERSECT ")));
        for tag in &s.tags {
            p.push(Box::new(tag.clone()));
        }
    } else if source != Source::Facets {
        for tag in &s.tags {
            conds.push("EXISTS (SELECT 1 FROM event_tags t WHERE t.tag = ? AND t.event_seq = e.seq)".into());
            p.push(Box::new(tag.clone()));
        }
    }
    for needle in needles {
        conds.push("instr(e.terms, ?) > 0".into());
        p.push(Box::new(needle));
    }
    Parts { from, k, conds, p }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn evidence(text: Option<f64>, facets: Vec<(String, i64)>) -> Evidence {
        Evidence {
            text,
            tags: None,
            terms: Vec::new(),
            geo: None,
            facets,
            corpus: 100_000,
            max_duration: 3_600,
            documents: 100_000,
            words: 1_000_000,
        }
    }

    fn search() -> Search {
        Search { limit: 20, ..Search::default() }
    }

    #[test]
    fn a_listed_search_walks_listed_events_by_start_and_asks_one_row_more() {
        let (sql, params) = search_sql(&search(), NOW, &evidence(None, vec![]));
        assert!(sql.contains(" FROM events e WHERE e.status = 'published' AND e.visibility = 'public'"), "{sql}");
        assert!(sql.ends_with("ORDER BY e.start_at, e.seq LIMIT 21"), "{sql}");
        // The window: ending from now, starting no earlier than the longest event allows.
        assert_eq!(params.len(), 2);
    }

    #[test]
    fn the_rarest_posting_drives_and_the_others_are_probed() {
        let s = Search { city: Some("kazan".into()), category: Some("music".into()), ..search() };
        let facets = vec![("city:kazan".into(), 30), ("category:music".into(), 9_000)];
        let (sql, _) = search_sql(&s, NOW, &evidence(None, facets));
        assert!(sql.contains(" FROM event_facets k CROSS JOIN events e ON e.seq = k.seq"), "{sql}");
        assert!(sql.contains("k.facet = ?"), "{sql}");
        assert!(sql.contains("EXISTS (SELECT 1 FROM event_facets f WHERE f.facet = ?"), "{sql}");
        // Postings hold only listed events, and the filter they stand for is not checked twice.
        assert!(!sql.contains("e.status ="), "{sql}");
        assert!(!sql.contains("e.city_key"), "{sql}");
    }

    #[test]
    fn a_rare_word_is_fetched_by_key_and_a_common_one_checked_on_the_row() {
        let s = Search { fts: Some("jazz".into()), ..search() };
        let (sql, _) = search_sql(&s, NOW, &evidence(Some(12.0), vec![]));
        assert!(sql.contains("e.seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"), "{sql}");
        let (sql, _) = search_sql(&s, NOW, &evidence(Some(50_000.0), vec![]));
        assert!(!sql.contains("events_fts"), "{sql}");
        assert!(sql.contains("instr(e.terms, ?) > 0"), "{sql}");
    }

    #[test]
    fn a_ranking_batch_is_looked_up_by_key_with_every_filter_checked() {
        let s = Search { fts: Some("\"open\"".into()), sort: Sort::Relevance, city: Some("kazan".into()), ..search() };
        let (sql, params) = search_sql_among(&s);
        assert!(sql.starts_with("SELECT e.seq, e.terms FROM json_each(?) j CROSS JOIN events e ON e.seq = j.value"));
        assert!(sql.contains("e.city_key = ?") && sql.contains("instr(e.terms, ?) > 0"), "{sql}");
        assert!(!sql.contains("ORDER BY") && !sql.contains("LIMIT"), "{sql}");
        // The batch, the listing's window (2), the city, the word.
        assert_eq!(params.len(), 5);
    }

    fn search_sql_among(s: &Search) -> (String, Vec<Box<dyn ToSql>>) {
        candidates_sql(s, NOW, &evidence(Some(50_000.0), vec![]), Source::Events, Some("[1,2]".into()))
    }

    #[test]
    fn popularity_walks_its_own_index_and_pages_by_its_cursor() {
        let s = Search { sort: Sort::Popularity, after: Some(Cursor::Popularity(7, 42)), ..search() };
        let (sql, params) = search_sql(&s, NOW, &evidence(None, vec![]));
        assert!(sql.contains(" FROM events e INDEXED BY events_by_popularity"), "{sql}");
        // The listing index is kept out of the way with SQLite's unary plus.
        assert!(sql.contains("+e.status = 'published'"), "{sql}");
        assert!(sql.contains("(e.registered_count < ? OR (e.registered_count = ? AND e.seq > ?))"), "{sql}");
        assert_eq!(params.len(), 5);
    }

    #[test]
    fn an_organizations_own_view_lists_the_statuses_it_asks_for() {
        let s =
            Search { statuses: Some(vec![crate::model::Status::Draft, crate::model::Status::Cancelled]), ..search() };
        let (sql, _) = search_sql(&s, NOW, &evidence(None, vec![]));
        assert!(sql.contains("e.status IN ('draft', 'cancelled')"), "{sql}");
        assert!(!sql.contains("e.visibility"), "{sql}");
    }
}
