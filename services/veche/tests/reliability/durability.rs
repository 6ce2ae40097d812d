//! Crash durability: mixed writes through the gateway of a real `veche up`, SIGKILLed at
//! random moments and started again on the same data. After every restart, everything a
//! client was told succeeded is read back through the public API, nothing a client was
//! refused is there, the seats add up, the waitlist is a gapless line, every change has
//! its fact in its service's outbox, and every store passes `PRAGMA integrity_check`.
//! At the end, analytics' reports agree with the outboxes.
//!
//! A write whose answer never came (the kill landed mid-request) may or may not have
//! happened: the ledger keeps it as a possibility until a read settles it.

use crate::common::orgs::{create_org, join, user_id};
use crate::common::{PASSWORD, Veche, admin, signed_up};
use crate::load::{Outcome, attempt, event_body, eventually};
use crate::{ALONE, long_mode, seeded_rng};
use kit::fixture_rng::Rng;
use serde_json::{Value, json};
use std::time::Duration;

const WORKERS: usize = 4;
const PEOPLE_PER_WORKER: usize = 4;
const CROWDED_EVENTS: usize = 3;
const CAPACITY: u64 = 3;

/// A value clients change: the last one acknowledged, and those sent since whose answers
/// never came.
#[derive(Debug, Clone)]
struct Versioned {
    acked: String,
    maybe: Vec<String>,
}

impl Versioned {
    fn new(value: impl Into<String>) -> Self {
        Self { acked: value.into(), maybe: Vec::new() }
    }

    fn record(&mut self, value: &str, outcome: &Outcome) {
        match outcome {
            Outcome::Acked(..) => {
                self.acked = value.to_owned();
                self.maybe.clear();
            }
            Outcome::Unknown => self.maybe.push(value.to_owned()),
            Outcome::Refused(..) | Outcome::NotSent => {}
        }
    }

    /// Checks a value read back, and settles on it.
    fn settle(&mut self, read: &str, what: &str) {
        assert!(
            read == self.acked || self.maybe.iter().any(|m| m == read),
            "{what}: read {read:?}, but the last acknowledged value is {:?} (and unanswered: {:?})",
            self.acked,
            self.maybe
        );
        self.acked = read.to_owned();
        self.maybe.clear();
    }
}

/// Writes of one kind to one thing, each of which records one fact with its change: those
/// acknowledged, and those whose answer never came. The facts found must lie between.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    acked: i64,
    unknown: i64,
}

impl Tally {
    fn record(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Acked(..) => self.acked += 1,
            Outcome::Unknown => self.unknown += 1,
            Outcome::Refused(..) | Outcome::NotSent => {}
        }
    }

    /// Checks the facts found, and settles on them.
    fn settle(&mut self, facts: i64, what: &str) {
        assert!(
            (self.acked..=self.acked + self.unknown).contains(&facts),
            "{what}: {facts} facts, but {} such writes were acknowledged (and {} unanswered)",
            self.acked,
            self.unknown
        );
        *self = Tally { acked: facts, unknown: 0 };
    }
}

/// A write that was refused, and so must have left no trace.
#[derive(Debug)]
enum Refused {
    SignUp(String),
    Organization(String),
    DraftRegistration(String),
}

/// What every worker shares: the platform's people and things made before the load.
#[derive(Clone)]
struct Scene {
    base: String,
    organizer: String,
    org: String,
    crowded: Vec<String>,
    draft: String,
    tracked: String,
}

struct Person {
    token: String,
    id: String,
    name: Versioned,
    /// Per crowded event: `holding` (registered or waitlisted) or `free`.
    seats: Vec<Versioned>,
    /// Per crowded event: registrations and cancellations sent (each one fact).
    registrations: Vec<Tally>,
    cancellations: Vec<Tally>,
}

/// One client of the load, with the part of the ledger it alone writes (no two workers
/// change the same thing, so the order of one worker's answers is the order of its writes).
struct Worker {
    n: usize,
    rng: Rng,
    scene: Scene,
    http: reqwest::Client,
    seq: u64,
    people: Vec<Person>,
    member: (String, Versioned),
    /// Role changes of the member sent (each one fact).
    role_changes: Tally,
    /// Acknowledged writes by kind: each kind must have been exercised.
    kinds: std::collections::BTreeMap<&'static str, u64>,
    events: Vec<(String, Versioned)>,
    organizations: Vec<String>,
    sign_ups: Vec<String>,
    refused: Vec<Refused>,
    /// A batch of link clicks sent without an answer, sent again until one comes.
    pending_track: Option<Value>,
    clicks_acked: u64,
    acked: u64,
    /// Writes whose answer never came (the kill landed while they were in flight).
    unanswered: u64,
}

impl Worker {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.scene.base)
    }

    async fn step(&mut self) {
        self.seq += 1;
        let (n, seq) = (self.n, self.seq);
        let roll = self.rng.below(100);
        let (kind, outcome) = match roll {
            0..35 => self.seat().await,
            35..50 => {
                let p = self.rng.below(self.people.len() as u64) as usize;
                let name = format!("W{n} person {seq}");
                let req = self.http.patch(self.url("/api/v1/users/me")).bearer_auth(&self.people[p].token);
                let outcome = attempt(req.json(&json!({ "display_name": name }))).await;
                self.people[p].name.record(&name, &outcome);
                ("profile edit", outcome)
            }
            50..58 if !self.events.is_empty() => {
                let e = self.rng.below(self.events.len() as u64) as usize;
                let title = format!("Crash test event w{n} edit {seq}");
                let req = self.http.patch(self.url(&format!("/api/v1/events/{}", self.events[e].0)));
                let outcome = attempt(req.bearer_auth(&self.scene.organizer).json(&json!({ "title": title }))).await;
                self.events[e].1.record(&title, &outcome);
                ("event edit", outcome)
            }
            50..63 => {
                let title = format!("Crash test event w{n} new {seq}");
                let body = event_body(&self.scene.org, &title, None);
                let req = self.http.post(self.url("/api/v1/events")).bearer_auth(&self.scene.organizer);
                let outcome = attempt(req.json(&body)).await;
                if let Some(created) = outcome.acked() {
                    self.events.push((created["id"].as_str().unwrap().to_owned(), Versioned::new(title)));
                }
                ("event", outcome)
            }
            63..70 => {
                let role = if self.member.1.acked == "admin" { "member" } else { "admin" };
                let path = format!("/api/v1/organizations/{}/members/{}", self.scene.org, self.member.0);
                let req = self.http.patch(self.url(&path)).bearer_auth(&self.scene.organizer);
                let outcome = attempt(req.json(&json!({ "role": role }))).await;
                self.member.1.record(role, &outcome);
                self.role_changes.record(&outcome);
                ("role change", outcome)
            }
            70..74 => {
                let body = json!({ "name": format!("W{n} organization {seq}"), "slug": format!("w{n}-o{seq}") });
                let req = self.http.post(self.url("/api/v1/organizations")).bearer_auth(&self.people[0].token);
                let outcome = attempt(req.json(&body)).await;
                if let Some(org) = outcome.acked() {
                    self.organizations.push(org["id"].as_str().unwrap().to_owned());
                }
                ("organization", outcome)
            }
            74..77 => {
                let email = format!("w{n}-s{seq}@crash.test");
                let body = json!({ "email": email, "password": PASSWORD, "display_name": "Signed up" });
                let outcome = attempt(self.http.post(self.url("/api/v1/auth/register")).json(&body)).await;
                if outcome.acked().is_some() {
                    self.sign_ups.push(email);
                }
                ("sign-up", outcome)
            }
            77..82 => return self.refused_write().await,
            _ => ("clicks", self.track().await),
        };
        match outcome {
            Outcome::Acked(..) => {
                self.acked += 1;
                *self.kinds.entry(kind).or_default() += 1;
            }
            Outcome::Unknown => self.unanswered += 1,
            // Every state a worker writes from was settled by a read since the last kill,
            // so a refusal here means the platform lost or invented something.
            Outcome::Refused(status, body) => panic!("a {kind} was refused ({status}): {body}"),
            Outcome::NotSent => {}
        }
    }

    /// Takes or gives up a seat on a crowded event.
    async fn seat(&mut self) -> (&'static str, Outcome) {
        let p = self.rng.below(self.people.len() as u64) as usize;
        let e = self.rng.below(CROWDED_EVENTS as u64) as usize;
        let path = format!("/api/v1/events/{}/registrations", self.scene.crowded[e]);
        let person = &self.people[p];
        let (req, becomes) = if person.seats[e].acked == "holding" {
            (self.http.delete(self.url(&format!("{path}/me"))), "free")
        } else {
            (self.http.post(self.url(&path)), "holding")
        };
        let outcome = attempt(req.bearer_auth(&person.token)).await;
        let person = &mut self.people[p];
        person.seats[e].record(becomes, &outcome);
        if becomes == "holding" {
            person.registrations[e].record(&outcome);
            ("registration", outcome)
        } else {
            person.cancellations[e].record(&outcome);
            ("cancellation", outcome)
        }
    }

    /// A write the platform must refuse: a password too short, a slug taken, a seat on an
    /// event not open for registration.
    async fn refused_write(&mut self) {
        let (n, seq) = (self.n, self.seq);
        let (outcome, refused) = match seq % 3 {
            0 => {
                let email = format!("w{n}-r{seq}@crash.test");
                let body = json!({ "email": email, "password": "short", "display_name": "Refused" });
                (attempt(self.http.post(self.url("/api/v1/auth/register")).json(&body)).await, Refused::SignUp(email))
            }
            1 => {
                let name = format!("W{n} refused {seq}");
                let req = self.http.post(self.url("/api/v1/organizations")).bearer_auth(&self.people[1].token);
                let outcome = attempt(req.json(&json!({ "name": name, "slug": "crash" }))).await;
                (outcome, Refused::Organization(name))
            }
            _ => {
                let p = self.rng.below(self.people.len() as u64) as usize;
                let path = format!("/api/v1/events/{}/registrations", self.scene.draft);
                let req = self.http.post(self.url(&path)).bearer_auth(&self.people[p].token);
                (attempt(req).await, Refused::DraftRegistration(self.people[p].id.clone()))
            }
        };
        match &outcome {
            Outcome::Refused(..) => self.refused.push(refused),
            Outcome::Acked(status, body) => panic!("{refused:?} was accepted ({status}): {body}"),
            Outcome::NotSent | Outcome::Unknown => {}
        }
    }

    /// A browser's batch of ten link clicks; one whose answer never came is sent again
    /// (with the same ids, as a browser would) until one does.
    async fn track(&mut self) -> Outcome {
        let batch = self.pending_track.take().unwrap_or_else(|| {
            let at = jiff::Timestamp::now().to_string();
            let events: Vec<Value> = (0..10)
                .map(|_| {
                    json!({ "id": uuid::Uuid::new_v4(), "type": "link_click", "at": at,
                                 "event_id": self.scene.tracked, "url": "https://example.org/tickets" })
                })
                .collect();
            json!({ "visitor_id": format!("worker-{}", self.n), "events": events })
        });
        let outcome = attempt(self.http.post(self.url("/api/v1/analytics/track")).json(&batch)).await;
        match &outcome {
            Outcome::Acked(..) => self.clicks_acked += 10,
            Outcome::Refused(status, body) => panic!("a batch of clicks was refused ({status}): {body}"),
            Outcome::NotSent | Outcome::Unknown => self.pending_track = Some(batch),
        }
        outcome
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_hard_kills() {
    let _alone = ALONE.lock().await;
    let rounds = if long_mode() { 100 } else { 20 };
    let mut rng = seeded_rng();
    // Tokens outlive the long mode (a worker's writes must not turn into 401s).
    let mut v = Veche::start_with(&[("VECHE_ANALYTICS_TRACK_RPS", "0"), ("VECHE_ACCESS_TOKEN_TTL", "86400")]);
    let http = crate::load::client();
    let root = admin(&v, "root@crash.test").await;
    let (organizer, _) = signed_up(&v, "organizer@crash.test").await;
    let org = create_org(&v, &organizer, json!({ "name": "Crash", "slug": "crash" })).await;
    let org_id = org["id"].as_str().unwrap().to_owned();

    let create = |title: &str, capacity: Option<u64>, publish: bool| {
        let (http, v, organizer, org_id) = (&http, &v, &organizer, &org_id);
        let body = event_body(org_id, title, capacity);
        async move {
            let r = attempt(http.post(v.url("/api/v1/events")).bearer_auth(organizer).json(&body)).await;
            let id = r.acked().unwrap_or_else(|| panic!("{r:?}"))["id"].as_str().unwrap().to_owned();
            if publish {
                let r = attempt(http.post(v.url(&format!("/api/v1/events/{id}/publish"))).bearer_auth(organizer)).await;
                assert!(r.acked().is_some(), "{r:?}");
            }
            id
        }
    };
    let mut crowded = Vec::new();
    for e in 0..CROWDED_EVENTS {
        crowded.push(create(&format!("Crowded {e}"), Some(CAPACITY), true).await);
    }
    let scene = Scene {
        base: v.base.clone(),
        organizer: organizer.clone(),
        org: org_id.clone(),
        crowded,
        draft: create("Not open yet", Some(10), false).await,
        tracked: create("Tracked", None, true).await,
    };
    let mut workers = Vec::new();
    for n in 0..WORKERS {
        let member = join(&v, &org, &organizer, &format!("member{n}@crash.test"), "member").await;
        let mut people = Vec::new();
        for p in 0..PEOPLE_PER_WORKER {
            let (token, _) = signed_up(&v, &format!("w{n}-p{p}@crash.test")).await;
            let id = user_id(&token);
            people.push(Person {
                token,
                id,
                name: Versioned::new("Test"),
                seats: vec![Versioned::new("free"); CROWDED_EVENTS],
                registrations: vec![Tally::default(); CROWDED_EVENTS],
                cancellations: vec![Tally::default(); CROWDED_EVENTS],
            });
        }
        workers.push(Worker {
            n,
            rng: Rng::new(rng.next_u64()),
            scene: scene.clone(),
            http: crate::load::client(),
            seq: 0,
            people,
            member: (user_id(&member), Versioned::new("member")),
            role_changes: Tally::default(),
            kinds: Default::default(),
            events: Vec::new(),
            organizations: Vec::new(),
            sign_ups: Vec::new(),
            refused: Vec::new(),
            pending_track: None,
            clicks_acked: 0,
            acked: 0,
            unanswered: 0,
        });
    }

    let mut checked = 0;
    for round in 0..rounds {
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let tasks: Vec<_> = workers
            .drain(..)
            .map(|mut w| {
                let running = running.clone();
                tokio::spawn(async move {
                    while running.load(std::sync::atomic::Ordering::Relaxed) {
                        w.step().await;
                    }
                    w
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + rng.below(2200))).await;
        v.kill();
        running.store(false, std::sync::atomic::Ordering::Relaxed);
        for task in tasks {
            workers.push(task.await.unwrap());
        }
        crate::load::check_integrity(&v.data);
        v.restart();
        checked += verify(&v, &root, &scene, &mut workers).await;
        let acked: u64 = workers.iter().map(|w| w.acked).sum();
        eprintln!("durability: round {}/{rounds}: {acked} writes acknowledged so far, {checked} checks", round + 1);
    }

    // The last batches whose answers never came, until they come; then the reports must
    // count every fact of every outbox exactly once, and every click acknowledged.
    for w in &mut workers {
        while w.pending_track.is_some() {
            w.track().await;
        }
    }
    let clicks: u64 = workers.iter().map(|w| w.clicks_acked).sum();
    let count = |db: &str, sql: &str| -> i64 {
        let c = rusqlite::Connection::open(v.data.join(db)).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    let sign_ups = count("users.db", "SELECT count(*) FROM outbox WHERE kind = 'user.signed_up'");
    let report = |path: String| {
        let (http, v, root) = (&http, &v, &root);
        async move {
            let r = attempt(http.get(v.url(&path)).bearer_auth(root)).await;
            r.acked().unwrap_or_else(|| panic!("{path}: {r:?}"))["totals"].clone()
        }
    };
    eventually(Duration::from_secs(60), "analytics counts every sign-up once", || async {
        report("/api/v1/analytics/platform?bucket=day".into()).await["sign_ups"] == sign_ups
    })
    .await;
    for event in &scene.crowded {
        let facts = |kinds: &str| {
            count(
                "events.db",
                &format!(
                    "SELECT count(*) FROM outbox WHERE kind IN ({kinds}) AND payload ->> '$.event_id' = '{event}'"
                ),
            )
        };
        let (made, cancelled) =
            (facts("'registration.made', 'registration.waitlisted'"), facts("'registration.cancelled'"));
        let path = format!("/api/v1/analytics/events/{event}?bucket=day");
        eventually(Duration::from_secs(60), "analytics counts every registration once", || async {
            let totals = report(path.clone()).await;
            totals["registrations"] == made && totals["cancellations"] == cancelled
        })
        .await;
    }
    let path = format!("/api/v1/analytics/events/{}?bucket=day", scene.tracked);
    eventually(Duration::from_secs(60), "analytics counts every acknowledged click once", || async {
        report(path.clone()).await["link_clicks"] == clicks
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(report(path).await["link_clicks"], clicks, "and no more, once the relays had time to send again");
    let mut kinds = std::collections::BTreeMap::new();
    for w in &workers {
        for (kind, n) in &w.kinds {
            *kinds.entry(*kind).or_insert(0u64) += n;
        }
    }
    eprintln!("durability: acknowledged writes by kind: {kinds:?}");
    for kind in [
        "registration",
        "cancellation",
        "profile edit",
        "event edit",
        "event",
        "role change",
        "organization",
        "sign-up",
        "clicks",
    ] {
        assert!(kinds.get(kind).is_some_and(|n| *n > 0), "no {kind} was ever acknowledged: {kinds:?}");
    }
    let refused: usize = workers.iter().map(|w| w.refused.len()).sum();
    assert!(refused > 0, "refused writes were tried and checked");
    let acked: u64 = workers.iter().map(|w| w.acked).sum();
    let unanswered: u64 = workers.iter().map(|w| w.unanswered).sum();
    eprintln!(
        "durability: {rounds} hard kills survived; {acked} acknowledged writes, {unanswered} cut off by a kill, \
         {checked} checks, {clicks} clicks counted once"
    );
}

/// Reads everything back and settles the ledger on what it finds; returns how many
/// things it checked.
async fn verify(v: &Veche, root: &str, scene: &Scene, workers: &mut [Worker]) -> u64 {
    let http = crate::load::client();
    let get = |path: String, token: &str| {
        let req = http.get(v.url(&path)).bearer_auth(token);
        async move {
            let r = attempt(req).await;
            r.acked().unwrap_or_else(|| panic!("GET {path}: {r:?}")).clone()
        }
    };
    let mut checked = 0;

    // People, by the administrators' list.
    let mut users = std::collections::HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page = get(format!("/api/v1/users?limit=200{after}"), root).await;
        for u in page["items"].as_array().unwrap() {
            users.insert(u["email"].as_str().unwrap().to_owned(), u["display_name"].as_str().unwrap().to_owned());
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let db = |name: &str| rusqlite::Connection::open(v.data.join(name)).unwrap();
    let (users_db, orgs_db, events_db) = (db("users.db"), db("organizations.db"), db("events.db"));
    let count = |c: &rusqlite::Connection, sql: &str, arg: &str| -> i64 {
        c.query_row(sql, [arg], |r| r.get(0)).unwrap_or_else(|e| panic!("{sql}: {e}"))
    };

    for w in workers.iter_mut() {
        for email in &w.sign_ups {
            assert!(users.contains_key(email), "the acknowledged sign-up of {email} is gone");
            checked += 1;
        }
        for (p, person) in w.people.iter_mut().enumerate() {
            let email = format!("w{}-p{p}@crash.test", w.n);
            person.name.settle(&users[&email], &format!("{email}'s display name"));
            checked += 1;
        }
        for refused in &w.refused {
            let traces = match refused {
                Refused::SignUp(email) => count(&users_db, "SELECT count(*) FROM users WHERE email = ?1", email),
                Refused::Organization(name) => {
                    count(&orgs_db, "SELECT count(*) FROM organizations WHERE name = ?1", name)
                }
                Refused::DraftRegistration(user) => count(
                    &events_db,
                    "SELECT count(*) FROM registrations WHERE user_id = ?1 AND event_id = (SELECT id FROM events WHERE title = 'Not open yet')",
                    user,
                ),
            };
            assert_eq!(traces, 0, "{refused:?} was refused, yet left a trace");
            checked += 1;
        }
        let member = get(format!("/api/v1/organizations/{}/members/{}", scene.org, w.member.0), &scene.organizer).await;
        w.member.1.settle(member["role"].as_str().unwrap(), "a member's role");
        let changes = count(
            &orgs_db,
            "SELECT count(*) FROM outbox WHERE kind = 'member.role_changed' AND payload ->> '$.user_id' = ?1",
            &w.member.0,
        );
        w.role_changes.settle(changes, "a member's role changes");
        for org in &w.organizations {
            get(format!("/api/v1/organizations/{org}"), root).await;
        }
        for (id, title) in &mut w.events {
            let event = get(format!("/api/v1/events/{id}"), &scene.organizer).await;
            title.settle(event["title"].as_str().unwrap(), "an event's title");
        }
        checked += 1 + (w.organizations.len() + w.events.len()) as u64;
    }

    // The crowded events: seats as the ledger says, counts equal to rows, a gapless line.
    for (e, event_id) in scene.crowded.iter().enumerate() {
        let event = get(format!("/api/v1/events/{event_id}"), &scene.organizer).await;
        let rows =
            get(format!("/api/v1/events/{event_id}/registrations?names=false&limit=200"), &scene.organizer).await;
        let rows = rows["items"].as_array().unwrap();
        let status =
            |user: &str| rows.iter().find(|r| r["user_id"] == user).map(|r| r["status"].as_str().unwrap().to_owned());
        let facts_of = |kinds: &str, user: &str| -> i64 {
            events_db
                .query_row(
                    &format!(
                        "SELECT count(*) FROM outbox WHERE kind IN ({kinds}) AND payload ->> '$.event_id' = ?1 \
                         AND payload ->> '$.user_id' = ?2"
                    ),
                    [event_id.as_str(), user],
                    |r| r.get(0),
                )
                .unwrap()
        };
        for w in workers.iter_mut() {
            for person in &mut w.people {
                let holding = matches!(status(&person.id).as_deref(), Some("registered" | "waitlisted"));
                person.seats[e].settle(if holding { "holding" } else { "free" }, "a seat");
                // A seat read as free could be a cancellation that landed, or an
                // acknowledged registration that was lost: the facts tell which.
                let made = facts_of("'registration.made', 'registration.waitlisted'", &person.id);
                person.registrations[e].settle(made, "a person's registrations");
                let cancelled = facts_of("'registration.cancelled'", &person.id);
                person.cancellations[e].settle(cancelled, "a person's cancellations");
                assert_eq!(made - cancelled, holding as i64, "registrations less cancellations is the seat held");
                checked += 3;
            }
        }
        let registered = rows.iter().filter(|r| r["status"] == "registered").count() as u64;
        let mut line: Vec<u64> = rows
            .iter()
            .filter(|r| r["status"] == "waitlisted")
            .map(|r| r["waitlist_position"].as_u64().unwrap())
            .collect();
        line.sort_unstable();
        assert_eq!(event["registered_count"], registered, "seats taken equal registered rows: {event}");
        assert_eq!(event["waitlisted_count"], line.len() as u64, "the waitlist's count equals its rows: {event}");
        assert_eq!(line, (1..=line.len() as u64).collect::<Vec<_>>(), "no place in the line is repeated or skipped");
        assert!(registered <= CAPACITY, "no more seats than the capacity: {registered}");
        assert!(line.is_empty() || registered == CAPACITY, "no one waits while a seat is free");
        // Every registration's facts are in the outbox, committed with it.
        let facts = |kinds: &str| {
            count(
                &events_db,
                &format!("SELECT count(*) FROM outbox WHERE kind IN ({kinds}) AND payload ->> '$.event_id' = ?1"),
                event_id,
            )
        };
        let active = registered as i64 + line.len() as i64;
        assert_eq!(
            facts("'registration.made', 'registration.waitlisted'") - facts("'registration.cancelled'"),
            active,
            "registrations made less cancelled, by the outbox, equal the active rows"
        );
        checked += 6;
    }

    // Analytics catches up with the outboxes: every sign-up, registration and cancellation
    // counted once (the relays resend what the kill cut off; analytics drops repeats).
    let sign_ups: i64 =
        users_db.query_row("SELECT count(*) FROM outbox WHERE kind = 'user.signed_up'", [], |r| r.get(0)).unwrap();
    let mut expected = vec![("/api/v1/analytics/platform?bucket=day".to_owned(), "sign_ups", sign_ups)];
    for event_id in &scene.crowded {
        let facts = |kinds: &str| -> i64 {
            count(
                &events_db,
                &format!("SELECT count(*) FROM outbox WHERE kind IN ({kinds}) AND payload ->> '$.event_id' = ?1"),
                event_id,
            )
        };
        let path = format!("/api/v1/analytics/events/{event_id}?bucket=day");
        expected.push((path.clone(), "registrations", facts("'registration.made', 'registration.waitlisted'")));
        expected.push((path, "cancellations", facts("'registration.cancelled'")));
    }
    for (path, metric, want) in &expected {
        eventually(Duration::from_secs(60), &format!("analytics' {metric} at {path} reach {want}"), || async {
            get(path.clone(), root).await["totals"][metric] == *want
        })
        .await;
        checked += 1;
    }

    // Every change has its fact, committed with it.
    let total = |c: &rusqlite::Connection, sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        total(&users_db, "SELECT count(*) FROM users"),
        total(&users_db, "SELECT count(*) FROM outbox WHERE kind = 'user.signed_up'"),
        "one sign-up fact per account"
    );
    assert_eq!(
        total(&orgs_db, "SELECT count(*) FROM organizations"),
        total(&orgs_db, "SELECT count(*) FROM outbox WHERE kind = 'organization.created'"),
        "one fact per organization"
    );
    assert_eq!(
        total(&orgs_db, "SELECT count(*) FROM members"),
        total(
            &orgs_db,
            "SELECT (SELECT count(*) FROM outbox WHERE kind = 'member.joined') - (SELECT count(*) FROM outbox WHERE kind = 'member.left')"
        ),
        "members joined less members left, by the outbox, equal the members"
    );
    checked + 3
}
