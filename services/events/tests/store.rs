//! The events store against a real SQLite file: exact capacity under concurrency, the
//! waitlist order, and search results equal to a brute-force filter of the same corpus.

use events::fixtures;
use events::model::{EventInput, RegistrationStatus, Status, Visibility};
use events::search::{Search, SearchParams, distance_km, stems};
use events::store::{EventStore, RegistrationFilter, SqliteStore};
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

/// 2026-12-01T00:00:00Z: the corpus's year starts here; searches ask from before it.
const EPOCH: i64 = 1_796_083_200;

async fn open() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db")).await.unwrap();
    (dir, Arc::new(store))
}

fn one_event(capacity: u32) -> EventInput {
    let mut input = fixtures::corpus(1, 1, EPOCH, &[Uuid::new_v4()]).remove(0).0;
    input.capacity = Some(capacity);
    input
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capacity_holds_exactly_under_200_concurrent_registrations() {
    let (_dir, store) = open().await;
    let now = EPOCH - 86_400;
    let id = store.import(vec![(one_event(50), Status::Published)], Uuid::new_v4(), now).await.unwrap()[0];
    let people: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
    let tasks: Vec<_> = people
        .iter()
        .map(|&p| {
            let store = store.clone();
            tokio::spawn(async move { store.register(id, p, now).await.unwrap().registration })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let registered = results.iter().filter(|r| r.status == RegistrationStatus::Registered).count();
    let waitlisted: Vec<_> = results.iter().filter(|r| r.status == RegistrationStatus::Waitlisted).collect();
    assert_eq!(registered, 50);
    assert_eq!(waitlisted.len(), 150);
    let positions: HashSet<u32> = waitlisted.iter().map(|r| r.waitlist_position.unwrap()).collect();
    assert_eq!(positions, (1..=150).collect(), "every waitlist place is taken exactly once");
    let event = store.get(id).await.unwrap().unwrap();
    assert_eq!((event.registered, event.waitlisted), (50, 150));

    // Registering again is idempotent: same place, no new seat.
    let again = store.register(id, people[0], now).await.unwrap();
    assert!(!again.created);

    // Ten cancellations promote the first ten of the waitlist, in order.
    let queue: Vec<Uuid> = {
        let mut w = waitlisted.clone();
        w.sort_by_key(|r| r.waitlist_position);
        w.iter().map(|r| r.user_id).collect()
    };
    let seated: Vec<Uuid> =
        results.iter().filter(|r| r.status == RegistrationStatus::Registered).map(|r| r.user_id).collect();
    for (i, person) in seated.iter().take(10).enumerate() {
        let cancelled = store.cancel_registration(id, *person, now).await.unwrap();
        assert_eq!(cancelled.status, RegistrationStatus::Cancelled);
        let every = RegistrationFilter { status: None, after: 0, limit: 1000 };
        let all: Vec<_> = store.registrations(id, every).await.unwrap().into_iter().map(|l| l.registration).collect();
        let promoted = all.iter().find(|r| r.user_id == queue[i]).unwrap();
        assert_eq!(promoted.status, RegistrationStatus::Registered, "waitlist place {} is promoted", i + 1);
        let next = all.iter().find(|r| r.user_id == queue[i + 1]).unwrap();
        assert_eq!(next.waitlist_position, Some(1), "the next in line is now first");
    }
    let event = store.get(id).await.unwrap().unwrap();
    assert_eq!((event.registered, event.waitlisted), (50, 140));
}

#[tokio::test]
async fn registration_needs_a_published_running_event() {
    let (_dir, store) = open().await;
    let now = EPOCH - 86_400;
    let draft = store.import(vec![(one_event(5), Status::Draft)], Uuid::new_v4(), now).await.unwrap()[0];
    assert!(store.register(draft, Uuid::new_v4(), now).await.is_err());
    let published = store.import(vec![(one_event(5), Status::Published)], Uuid::new_v4(), now).await.unwrap()[0];
    let far_future = EPOCH + 2 * 365 * 86_400;
    assert!(store.register(published, Uuid::new_v4(), far_future).await.is_err(), "over");
}

/// What a search should return, computed by brute force over the inputs.
fn brute_force(corpus: &[(EventInput, Status)], ids: &[Uuid], s: &Search, now: i64) -> Vec<Uuid> {
    let mut hits: Vec<(i64, usize)> = corpus
        .iter()
        .enumerate()
        .filter(|(_, (e, status))| {
            *status == Status::Published
                && e.visibility == Visibility::Public
                && e.end.as_second() >= s.from.unwrap_or(now)
                && s.to.is_none_or(|to| e.start.as_second() < to)
                && s.city.as_ref().is_none_or(|c| e.venue.as_ref().is_some_and(|v| v.city.to_lowercase() == *c))
                && s.near.is_none_or(|(lat, lon, r)| {
                    e.venue
                        .as_ref()
                        .and_then(|v| Some(distance_km(v.latitude?, v.longitude?, lat, lon)))
                        .is_some_and(|d| d <= r)
                })
                && s.tags.iter().all(|t| e.tags.contains(t))
                && s.category.as_ref().is_none_or(|c| e.category.as_ref() == Some(c))
                && s.organization_id.is_none_or(|o| e.organization_id == o)
                && s.format.is_none_or(|f| e.format == f)
                && s.free.is_none_or(|f| e.price.is_none() == f)
                && s.fts.as_ref().is_none_or(|fts| holds_stems(e, fts.split(' ').map(|t| t.trim_matches('"'))))
        })
        .map(|(i, (e, _))| (e.start.as_second(), i))
        .collect();
    hits.sort();
    hits.into_iter().map(|(_, i)| ids[i]).collect()
}

/// Whether an event's text holds every stem of `q` (the text side of the brute force).
fn holds_stems<'a>(e: &EventInput, wanted: impl IntoIterator<Item = &'a str>) -> bool {
    let doc: HashSet<String> =
        stems(&format!("{} {} {}", e.title, e.description, e.tags.join(" "))).into_iter().collect();
    wanted.into_iter().all(|s| doc.contains(s))
}

/// What SQLite FTS5's `bm25()` scores each match of a text query (an FTS5 query string).
async fn fts5_bm25(store: &SqliteStore, fts: String) -> std::collections::HashMap<Uuid, f64> {
    store
        .db()
        .read(move |c| -> Result<_, kit::db::DbError> {
            let mut stmt = c.prepare(
                "SELECT e.id, bm25(events_fts) FROM events_fts JOIN events e ON e.seq = events_fts.rowid \
                 WHERE events_fts MATCH ?1",
            )?;
            let rows = stmt.query_map([fts], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
            let mut scores = std::collections::HashMap::new();
            for row in rows {
                let (id, score) = row?;
                scores.insert(id.parse().unwrap(), score);
            }
            Ok(scores)
        })
        .await
        .unwrap()
}

async fn all_pages(store: &SqliteStore, params: impl Fn(Option<String>) -> SearchParams, now: i64) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let search = params(cursor.clone()).validate().unwrap();
        let (page, next) = store.search(search, now).await.unwrap();
        out.extend(page.iter().map(|e| e.id));
        match next {
            Some(c) => cursor = Some(kit::page::encode_cursor(&c)),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_matches_brute_force_on_100k_events() {
    let (_dir, store) = open().await;
    let orgs: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    let corpus = fixtures::corpus(42, 100_000, EPOCH, &orgs);
    let now = EPOCH - 86_400;
    let mut ids = Vec::new();
    for chunk in corpus.chunks(10_000) {
        ids.extend(store.import(chunk.to_vec(), Uuid::new_v4(), now).await.unwrap());
    }
    let iso = |t: i64| jiff::Timestamp::from_second(t).unwrap().to_string();
    let cases: Vec<(&str, SearchParams)> = vec![
        ("everything upcoming", SearchParams::default()),
        (
            "date range",
            SearchParams {
                from: Some(iso(EPOCH + 30 * 86_400)),
                to: Some(iso(EPOCH + 37 * 86_400)),
                ..Default::default()
            },
        ),
        ("city", SearchParams { city: Some("Kazan".into()), to: Some(iso(EPOCH + 60 * 86_400)), ..Default::default() }),
        (
            "near Kazan 15 km",
            SearchParams { near: Some("55.79,49.12".into()), radius_km: Some(15.0), ..Default::default() },
        ),
        ("tags", SearchParams { tags: Some("music,kids".into()), ..Default::default() }),
        (
            "category, format, free",
            SearchParams {
                category: Some("workshop".into()),
                format: Some("online".into()),
                free: Some(true),
                ..Default::default()
            },
        ),
        ("organization", SearchParams { organization_id: Some(orgs[7]), ..Default::default() }),
        ("text", SearchParams { q: Some("концерты".into()), ..Default::default() }),
        (
            "text, category and city",
            SearchParams {
                q: Some("джаз".into()),
                city: Some("kazan".into()),
                category: Some("concert".into()),
                ..Default::default()
            },
        ),
        (
            "text with filters",
            SearchParams {
                q: Some("running jazz".into()),
                city: Some("moscow".into()),
                tags: Some("sport".into()),
                ..Default::default()
            },
        ),
        (
            "very common word in a week",
            SearchParams {
                q: Some("open".into()),
                from: Some(iso(EPOCH + 100 * 86_400)),
                to: Some(iso(EPOCH + 107 * 86_400)),
                ..Default::default()
            },
        ),
        (
            "everything at once",
            SearchParams {
                q: Some("festival".into()),
                near: Some("55.75,37.62".into()),
                radius_km: Some(30.0),
                category: Some("festival".into()),
                from: Some(iso(EPOCH)),
                to: Some(iso(EPOCH + 200 * 86_400)),
                free: Some(false),
                ..Default::default()
            },
        ),
    ];
    for (name, params) in cases {
        let search = params.clone().validate().unwrap();
        let expected = brute_force(&corpus, &ids, &search, now);
        let page = |cursor: Option<String>| SearchParams { limit: Some(200), cursor, ..params.clone() };
        let got = all_pages(&store, page, now).await;
        assert!(!expected.is_empty(), "{name}: the case should select something");
        assert_eq!(got.len(), expected.len(), "{name}: count");
        assert_eq!(got, expected, "{name}: same events in the same order");
    }
    // By popularity (no registrations here, so ties broken by creation): a common filter
    // walks the popularity index, a rare one reads its postings and sorts.
    let order: std::collections::HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for (name, params) in [
        ("popular concerts", SearchParams { category: Some("concert".into()), ..Default::default() }),
        ("popular in an organization", SearchParams { organization_id: Some(orgs[3]), ..Default::default() }),
        (
            "popular words in a city with a tag",
            SearchParams {
                q: Some("open".into()),
                city: Some("kazan".into()),
                tags: Some("music".into()),
                ..Default::default()
            },
        ),
    ] {
        let params = SearchParams { sort: Some("popularity".into()), ..params };
        let search = params.clone().validate().unwrap();
        let mut expected = brute_force(&corpus, &ids, &search, now);
        expected.sort_by_key(|id| order[id]);
        let got = all_pages(&store, |cursor| SearchParams { limit: Some(200), cursor, ..params.clone() }, now).await;
        assert!(!expected.is_empty(), "{name}: the case should select something");
        assert_eq!(got, expected, "{name}: same events in the same order");
    }
    // Relevance finds the same events, ordered as SQLite FTS5's own bm25() orders them
    // (the oracle): a rare word's matches scored whole, one organization's events scored
    // whole, and common words walked best first through their postings, with a filter and
    // with a second common word whose share bounds the walk.
    let week = |q: &str| SearchParams {
        q: Some(q.into()),
        sort: Some("relevance".into()),
        to: Some(iso(EPOCH + 60 * 86_400)),
        ..Default::default()
    };
    for (name, params) in [
        ("rare word", SearchParams { to: None, ..week("4242") }),
        ("word", week("джаз")),
        ("common word", week("open")),
        ("common word in a city", SearchParams { city: Some("kazan".into()), ..week("open") }),
        ("common word in an organization", SearchParams { organization_id: Some(orgs[3]), ..week("open") }),
        ("two common words", week("open community")),
        ("words repeated", week("open jazz Open джаз jazz")),
    ] {
        let search = params.clone().validate().unwrap();
        let expected: HashSet<Uuid> = brute_force(&corpus, &ids, &search, now).into_iter().collect();
        let got: Vec<Uuid> =
            all_pages(&store, |cursor| SearchParams { limit: Some(200), cursor, ..params.clone() }, now).await;
        assert!(!expected.is_empty(), "{name}: the case should select something");
        assert_eq!(got.len(), expected.len(), "{name}: count");
        assert_eq!(got.iter().copied().collect::<HashSet<_>>(), expected, "{name}: same events");
        let oracle = fts5_bm25(&store, search.fts.clone().unwrap()).await;
        for pair in got.windows(2) {
            let (a, b) = (oracle[&pair[0]], oracle[&pair[1]]);
            // bm25() is negative, better matches lower.
            assert!(a <= b + 1e-9, "{name}: {} ({a}) ranked before {} ({b})", pair[0], pair[1]);
        }
        let distinct = got.iter().map(|id| (oracle[id] * 1e9).round() as i64).collect::<HashSet<_>>().len();
        assert!(distinct > 1 || got.len() < 2, "{name}: the scores should differ somewhere");
    }
    // Stemming across word forms, both languages.
    let only = |q: &str| SearchParams { q: Some(q.into()), limit: Some(5), ..Default::default() };
    for (query, form) in [("концерт", "концерты"), ("run", "running")] {
        let (page, _) = store.search(only(query).validate().unwrap(), now).await.unwrap();
        assert!(page.iter().any(|e| e.input.title.contains(form)), "{query} finds {form}");
    }
}

#[tokio::test]
async fn merging_the_text_index_keeps_every_match() {
    let (_dir, store) = open().await;
    let orgs = [Uuid::new_v4()];
    let corpus = fixtures::corpus(7, 3_000, EPOCH, &orgs);
    let now = EPOCH - 86_400;
    // Each import is a transaction, and each transaction adds a segment.
    for chunk in corpus.chunks(100) {
        store.import(chunk.to_vec(), Uuid::new_v4(), now).await.unwrap();
    }
    let before = store.search_index_segments().await.unwrap();
    assert!(before > 1, "separate writes should leave several segments, found {before}");
    let query = |q: &str| SearchParams { q: Some(q.into()), limit: Some(100), ..Default::default() };
    let mut found = Vec::new();
    for q in ["open", "концерт", "running jazz"] {
        found.push(all_pages(&store, |cursor| SearchParams { cursor, ..query(q) }, now).await);
    }
    let mut steps = 0;
    while store.merge_search_index(16).await.unwrap() > 1 {
        steps += 1;
        assert!(steps < 1_000, "merging should converge");
    }
    assert_eq!(store.search_index_segments().await.unwrap(), 1);
    for (q, before) in ["open", "концерт", "running jazz"].into_iter().zip(found) {
        let after = all_pages(&store, |cursor| SearchParams { cursor, ..query(q) }, now).await;
        assert!(!after.is_empty(), "{q} should match something");
        assert_eq!(after, before, "{q}: the same events before and after merging");
    }
}

/// Filtered searches walk postings kept beside the events (`event_facets`); every kind of
/// change must move an event in or out of them, at once.
#[tokio::test]
async fn filtered_search_follows_every_change_to_an_event() {
    let (_dir, store) = open().await;
    let now = EPOCH - 86_400;
    let mut input = one_event(100);
    input.title = "Органный концерт".into();
    input.description = "Bach".into();
    input.tags = vec!["music".into()];
    input.category = Some("concert".into());
    input.venue.as_mut().unwrap().city = "Kazan".into();
    input.price = None;
    let found = |city: &'static str, tag: &'static str, q: Option<&'static str>| {
        let store = store.clone();
        async move {
            let params = SearchParams {
                city: Some(city.into()),
                tags: Some(tag.into()),
                free: Some(true),
                category: Some("concert".into()),
                q: q.map(str::to_owned),
                ..Default::default()
            };
            store.search(params.validate().unwrap(), now).await.unwrap().0.iter().map(|e| e.id).collect::<Vec<_>>()
        }
    };
    let id = store.create(input.clone(), Uuid::new_v4(), now).await.unwrap().id;
    assert!(found("kazan", "music", None).await.is_empty(), "a draft is not listed");
    store.set_status(id, Status::Published, now).await.unwrap();
    assert_eq!(found("kazan", "music", Some("концерты")).await, [id], "published: listed, its words checked");
    assert!(found("kazan", "music", Some("jazz")).await.is_empty(), "a word it lacks");

    input.venue.as_mut().unwrap().city = "Moscow".into();
    input.tags = vec!["art".into()];
    input.description = "Jazz".into();
    store.update(id, input.clone(), now).await.unwrap();
    assert!(found("kazan", "music", None).await.is_empty(), "moved away from the old city and tag");
    assert_eq!(found("moscow", "art", Some("jazz")).await, [id], "found by the new city, tag and words");

    input.visibility = Visibility::Unlisted;
    store.update(id, input.clone(), now).await.unwrap();
    assert!(found("moscow", "art", None).await.is_empty(), "unlisted");
    input.visibility = Visibility::Public;
    store.update(id, input.clone(), now).await.unwrap();
    assert_eq!(found("moscow", "art", None).await, [id], "public again");

    store.set_status(id, Status::Cancelled, now).await.unwrap();
    assert!(found("moscow", "art", None).await.is_empty(), "cancelled");

    let other = store.create(input.clone(), Uuid::new_v4(), now).await.unwrap().id;
    store.set_status(other, Status::Published, now).await.unwrap();
    assert_eq!(found("moscow", "art", None).await, [other]);
    store.delete(other, now).await.unwrap();
    assert!(found("moscow", "art", None).await.is_empty(), "deleted");
    let postings: i64 = store
        .db()
        .read(|c| c.query_row("SELECT count(*) FROM event_facets", [], |r| r.get(0)).map_err(kit::db::DbError::from))
        .await
        .unwrap();
    assert_eq!(postings, 0, "no postings outlive their listed events");
    // The relevance postings and statistics follow the one event left (cancelled).
    let (orphans, documents, words, own): (i64, i64, i64, i64) = store
        .db()
        .read(|c| {
            c.query_row(
                "SELECT (SELECT count(*) FROM event_terms WHERE seq NOT IN (SELECT seq FROM events)), \
                 documents, words, (SELECT sum(tf) FROM event_terms) FROM search_stats",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(kit::db::DbError::from)
        })
        .await
        .unwrap();
    assert_eq!((orphans, documents), (0, 1), "no relevance postings outlive their events");
    assert_eq!(words, own, "the corpus's words are the remaining event's");
}

/// Events stored before `events.terms` existed get theirs when the store opens, so words
/// checked on the row find them.
#[tokio::test]
async fn terms_missing_from_older_events_are_filled_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let now = EPOCH - 86_400;
    let corpus = fixtures::corpus(3, 500, EPOCH, &[Uuid::new_v4()]);
    let store = SqliteStore::open(&path).await.unwrap();
    store.import(corpus.clone(), Uuid::new_v4(), now).await.unwrap();
    let search = || SearchParams { q: Some("open".into()), city: Some("kazan".into()), ..Default::default() };
    let before = all_pages(&store, |cursor| SearchParams { cursor, limit: Some(100), ..search() }, now).await;
    assert!(!before.is_empty());
    let ranked = || SearchParams { sort: Some("relevance".into()), city: None, ..search() };
    let ranked_before = all_pages(&store, |cursor| SearchParams { cursor, limit: Some(100), ..ranked() }, now).await;
    store
        .db()
        .write(|tx| tx.execute("UPDATE events SET terms = NULL", []).map_err(kit::db::DbError::from))
        .await
        .unwrap();
    let forgotten = all_pages(&store, |cursor| SearchParams { cursor, limit: Some(100), ..search() }, now).await;
    assert!(forgotten.is_empty(), "without terms the row check finds nothing (the test would prove nothing)");
    drop(store);
    let store = SqliteStore::open(&path).await.unwrap();
    let after = all_pages(&store, |cursor| SearchParams { cursor, limit: Some(100), ..search() }, now).await;
    assert_eq!(after, before);
    let ranked_after = all_pages(&store, |cursor| SearchParams { cursor, limit: Some(100), ..ranked() }, now).await;
    assert_eq!(ranked_after, ranked_before, "the same ranking from the refilled counts and statistics");
    // A refill that ended before its recount (a crash between them) is recounted on open.
    store
        .db()
        .write(|tx| tx.execute("UPDATE search_stats SET documents = 0, words = 0", []).map_err(kit::db::DbError::from))
        .await
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path).await.unwrap();
    let recounted = all_pages(&store, |cursor| SearchParams { cursor, limit: Some(100), ..ranked() }, now).await;
    assert_eq!(recounted, ranked_before, "the statistics recounted on open");
}

/// Two replicas sharing one database: one sync of a source at a time, and a replica that
/// lost its lease (it outlived it) cannot record its sync over the one that took over.
#[tokio::test]
async fn one_sync_of_a_source_at_a_time() {
    use events::model::source::SourceInput;
    use events::store::{Outcome, SourceStore};
    let (_dir, store) = open().await;
    let input: SourceInput =
        serde_json::from_value(serde_json::json!({"kind": "ics", "url": "https://cal.example.org/a.ics"})).unwrap();
    let now = EPOCH;
    let source = store.create_source(Uuid::new_v4(), input.validate().unwrap(), Uuid::new_v4(), 50, now).await.unwrap();
    let org = source.organization_id;
    let again = store.create_source(org, source.input.clone(), Uuid::new_v4(), 1, now).await;
    assert!(matches!(again, Err(events::store::StoreError::Conflict(_))), "one source at most: {again:?}");
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let due = store.lease_source(None, first, now, now + 300).await.unwrap();
    assert_eq!(due.map(|s| s.id), Some(source.id), "a new source is due at once");
    assert!(store.lease_source(Some(source.id), second, now + 10, now + 310).await.unwrap().is_none());
    assert!(store.lease_source(None, second, now + 10, now + 310).await.unwrap().is_none(), "leased: not due");
    // The first replica stalls past its lease; the second takes over and finishes.
    let taken = store.lease_source(Some(source.id), second, now + 301, now + 601).await.unwrap();
    assert!(taken.is_some());
    let failed = || Outcome::Failed { error: "the server answered 500".into() };
    let seen = source.updated_at;
    let late = store.finish_sync(source.id, first, seen, failed(), now + 302, now + 900).await;
    assert!(matches!(late, Err(events::store::StoreError::Conflict(_))), "{late:?}");
    let done = store.finish_sync(source.id, second, seen, failed(), now + 303, now + 900).await.unwrap();
    assert_eq!(done.status.last_error.as_deref(), Some("the server answered 500"));
    assert!(done.failed && done.leased_until.is_none());
    assert!(
        store.lease_source(None, first, now + 899, now + 1199).await.unwrap().is_none(),
        "not due before its next run"
    );
    let leased = store.lease_source(None, first, now + 900, now + 1200).await.unwrap().unwrap();
    // Changed while it synced: the sync read what the source no longer is, and records nothing.
    let changed = store.update_source(source.id, leased.input.clone(), now + 950).await.unwrap();
    let after = store.finish_sync(source.id, first, leased.updated_at, failed(), now + 960, now + 2000).await.unwrap();
    assert_eq!(
        after.status.last_error.as_deref(),
        Some("the server answered 500"),
        "the earlier failure, not a new one"
    );
    assert_eq!(after.status.last_run_at, done.status.last_run_at);
    assert!(after.leased_until.is_none());
    assert_eq!(after.updated_at, changed.updated_at);
    assert!(
        store.lease_source(None, second, now + 961, now + 1261).await.unwrap().is_some(),
        "due at once after a change"
    );
}
