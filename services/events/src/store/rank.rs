//! Search by relevance: Okapi BM25 over every match, computed here from the counts kept
//! beside the events (`events.terms`, `event_terms`, `search_stats`), reading only the
//! candidates a page needs rather than every document of a common word.

use super::plan::{Evidence, Ranking, Source, ranking, wanted};
use super::sql::candidates_sql;
use crate::search::{Bm25, Cursor, Search, term_count, terms_len};
use rusqlite::types::ToSql;
use rusqlite::{Connection, params};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A scored event.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored {
    score: f64,
    seq: i64,
}

impl Scored {
    /// Best first: the higher score, then the older event.
    fn rank(&self, other: &Self) -> Ordering {
        other.score.total_cmp(&self.score).then(self.seq.cmp(&other.seq))
    }
}

/// What a query's stems weigh in this corpus.
struct Query {
    bm25: Bm25,
    /// Each stem and its inverse document frequency.
    stems: Vec<(String, f64)>,
}

impl Query {
    fn new(ev: &Evidence) -> Self {
        let bm25 = Bm25::new(ev.documents, ev.words);
        Self { bm25, stems: ev.terms.iter().map(|(t, df)| (t.clone(), bm25.idf(*df))).collect() }
    }

    fn score(&self, terms: &str) -> f64 {
        let len = terms_len(terms);
        self.stems.iter().map(|(stem, idf)| idf * self.bm25.saturation(term_count(terms, stem), len)).sum()
    }
}

/// The seqs of a page by relevance (with one more when another page follows), best first.
pub(super) fn page(c: &Connection, s: &Search, now: i64, ev: &Evidence) -> rusqlite::Result<Vec<i64>> {
    let query = Query::new(ev);
    let mut found = match ranking(s, ev) {
        Ranking::Matches => score_all(c, s, now, ev, Source::Text, &query)?,
        Ranking::Facet => score_all(c, s, now, ev, Source::Facets, &query)?,
        Ranking::Walk => walk(c, s, now, ev, &query)?,
    };
    found.sort_by(Scored::rank);
    let skipped = match s.after {
        Some(Cursor::Offset(n)) => n as usize,
        _ => 0,
    };
    Ok(found.into_iter().skip(skipped).take(s.limit as usize + 1).map(|h| h.seq).collect())
}

/// How a search by relevance finds its candidates (a batch of postings stands for the
/// walk's), for `explain`.
pub(super) fn candidates(s: &Search, now: i64, ev: &Evidence) -> (String, Vec<Box<dyn ToSql>>) {
    let ranking = ranking(s, ev);
    let (sql, p) = match ranking {
        Ranking::Matches => candidates_sql(s, now, ev, Source::Text, None),
        Ranking::Facet => candidates_sql(s, now, ev, Source::Facets, None),
        Ranking::Walk => candidates_sql(s, now, ev, Source::Events, Some("[]".into())),
    };
    (format!("/* {ranking:?} */ {sql}"), p)
}

/// Scores every candidate of `source` that passes the filters.
fn score_all(
    c: &Connection,
    s: &Search,
    now: i64,
    ev: &Evidence,
    source: Source,
    query: &Query,
) -> rusqlite::Result<Vec<Scored>> {
    scored(c, candidates_sql(s, now, ev, source, None), query)
}

/// Runs a candidates query (see [`candidates_sql`]) and scores each event it yields.
fn scored(c: &Connection, (sql, p): (String, Vec<Box<dyn ToSql>>), query: &Query) -> rusqlite::Result<Vec<Scored>> {
    let refs: Vec<&dyn ToSql> = p.iter().map(|b| b.as_ref()).collect();
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(refs.as_slice(), |r| {
        let terms: String = r.get(1)?;
        Ok(Scored { score: query.score(&terms), seq: r.get(0)? })
    })?;
    rows.collect()
}

/// One `tf` run of a stem's relevance postings, walked by length: within it, the stem's
/// share of the score falls as the event grows longer.
struct Run {
    tf: u32,
    /// Read but not yet merged, as `(len, seq)`.
    ahead: std::collections::VecDeque<(u32, i64)>,
    /// Where reading stopped; `None` once the run is read to its end.
    next_after: Option<(u32, i64)>,
}

/// The head of a run in the merge: its score decides which run gives the next posting.
struct Head {
    best: Scored,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    /// The max-heap's top is the best head.
    fn cmp(&self, other: &Self) -> Ordering {
        other.best.rank(&self.best)
    }
}

/// Postings read per run at a time, and events checked per batch at most.
const READ_AHEAD: i64 = 512;
const MAX_BATCH: usize = 4096;

/// Walks the rarest stem's postings best first, checking them against the filters and
/// the other stems a batch at a time, until the best `wanted` are certain: no posting
/// not yet read can score above the worst of them.
fn walk(c: &Connection, s: &Search, now: i64, ev: &Evidence, query: &Query) -> rusqlite::Result<Vec<Scored>> {
    let Some((stem, _)) = ev.rarest_term() else { return Ok(Vec::new()) };
    let idf = query.stems.iter().find(|(t, _)| t == stem).map_or(0.0, |(_, idf)| *idf);
    // Whatever the other stems' counts in an event not read yet, they add at most this.
    let others: f64 = query.stems.iter().filter(|(t, _)| t != stem).map(|(_, idf)| idf * Bm25::MAX_SATURATION).sum();
    let wanted = wanted(s) as usize;
    let mut runs = Vec::new();
    let mut heap = BinaryHeap::new();
    let mut after_tf = 0;
    while let Some(tf) = c
        .prepare_cached("SELECT tf FROM event_terms WHERE term = ?1 AND tf > ?2 ORDER BY tf LIMIT 1")?
        .query_row(params![stem, after_tf], |r| r.get::<_, u32>(0))
        .map(Some)
        .or_else(none_when_no_rows)?
    {
        let mut run = Run { tf, ahead: Default::default(), next_after: Some((0, 0)) };
        if let Some(best) = next(c, stem, &mut run, idf, query)? {
            heap.push(Head { best, run: runs.len() });
        }
        runs.push(run);
        after_tf = tf;
    }
    let mut found: Vec<Scored> = Vec::new();
    let mut batch_size = (ev.cost(s) * 1.5).clamp(64.0, MAX_BATCH as f64) as usize;
    loop {
        let mut batch = Vec::with_capacity(batch_size);
        while batch.len() < batch_size
            && let Some(Head { best, run }) = heap.pop()
        {
            batch.push(best.seq);
            if let Some(best) = next(c, stem, &mut runs[run], idf, query)? {
                heap.push(Head { best, run });
            }
        }
        if batch.is_empty() {
            return Ok(found);
        }
        let seqs = serde_json::to_string(&batch).unwrap_or_default();
        found.extend(scored(c, candidates_sql(s, now, ev, Source::Events, Some(seqs)), query)?);
        found.sort_by(Scored::rank);
        found.truncate(wanted);
        let unread_bound = heap.peek().map_or(f64::NEG_INFINITY, |h| h.best.score + others);
        if found.len() == wanted && found[wanted - 1].score >= unread_bound {
            return Ok(found);
        }
        batch_size = (batch_size * 2).min(MAX_BATCH);
    }
}

/// The next posting of a run, scored by the walked stem's share alone.
fn next(c: &Connection, stem: &str, run: &mut Run, idf: f64, query: &Query) -> rusqlite::Result<Option<Scored>> {
    if run.ahead.is_empty()
        && let Some((len, seq)) = run.next_after
    {
        let read: Vec<(u32, i64)> = c
            .prepare_cached(
                "SELECT len, seq FROM event_terms WHERE term = ?1 AND tf = ?2 AND (len, seq) > (?3, ?4) \
                 ORDER BY len, seq LIMIT ?5",
            )?
            .query_map(params![stem, run.tf, len, seq, READ_AHEAD], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        run.next_after = (read.len() as i64 == READ_AHEAD).then(|| read[read.len() - 1]);
        run.ahead.extend(read);
    }
    Ok(run.ahead.pop_front().map(|(len, seq)| Scored { score: idf * query.bm25.saturation(run.tf, len), seq }))
}

fn none_when_no_rows<T>(e: rusqlite::Error) -> rusqlite::Result<Option<T>> {
    match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn better_scores_rank_first_and_ties_go_to_the_older_event() {
        let mut hits = [Scored { score: 1.0, seq: 3 }, Scored { score: 2.0, seq: 9 }, Scored { score: 1.0, seq: 1 }];
        hits.sort_by(Scored::rank);
        assert_eq!(hits.iter().map(|h| h.seq).collect::<Vec<_>>(), [9, 1, 3]);
        let mut heap = BinaryHeap::from(vec![
            Head { best: Scored { score: 1.0, seq: 3 }, run: 0 },
            Head { best: Scored { score: 1.5, seq: 7 }, run: 1 },
        ]);
        assert_eq!(heap.pop().map(|h| h.run), Some(1), "the heap gives the best head first");
    }
}
