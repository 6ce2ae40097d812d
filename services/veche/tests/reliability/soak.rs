//! Soak: minutes of mixed traffic at a fixed rate (an open model: a slow answer does not
//! slow the next request, and its latency counts from when it was due), with p50/p99 and
//! the resident memory of `veche up` per minute. Errors fail the test, and so does memory
//! that keeps growing once the first minute has warmed the caches.

use crate::common::orgs::create_org;
use crate::common::{Veche, signed_up};
use crate::load::{Sample, ms, open_model, percentile, rss_mib, sqlite_mib};
use crate::{ALONE, long_mode};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RATE: f64 = 150.0;
const PEOPLE: usize = 20;
const EVENTS: usize = 30;
/// Words of the events' titles, for searches that find something.
const WORDS: [&str; 6] = ["jazz", "lecture", "chess", "hackathon", "picnic", "concert"];
const CITIES: [&str; 3] = ["Kazan", "Moscow", "Perm"];

/// One look at the process's memory, in MiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: f64,
    /// The anonymous part of the resident memory.
    heap: f64,
    /// What SQLite allocated (inside `heap`).
    sqlite: f64,
}

#[tokio::test]
async fn memory_stays_flat_and_nothing_fails_under_minutes_of_traffic() {
    let _alone = ALONE.lock().await;
    let minutes = if long_mode() { 10 } else { 3 };
    let v = Veche::start_with(&[("VECHE_ANALYTICS_TRACK_RPS", "0")]);
    let http = crate::load::client();
    let (organizer, _) = signed_up(&v, "organizer@soak.test").await;
    let org = create_org(&v, &organizer, json!({ "name": "Soak", "slug": "soak" })).await;
    let org = org["id"].as_str().unwrap().to_owned();
    let mut events = Vec::new();
    for e in 0..EVENTS {
        let (word, city) = (WORDS[e % WORDS.len()], CITIES[e % CITIES.len()]);
        let body = json!({"title": format!("{word} evening {e}"), "description": format!("A {word} in {city}"),
            "start": "2031-03-05T16:00:00Z", "end": "2031-03-05T18:00:00Z", "time_zone": "Europe/Moscow",
            "format": "offline", "venue": {"name": "Hall", "address": "Street 1", "city": city},
            "tags": [word], "category": "talk", "capacity": 10, "organization_id": org});
        let r = http.post(v.url("/api/v1/events")).bearer_auth(&organizer).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let r = http.post(v.url(&format!("/api/v1/events/{id}/publish"))).bearer_auth(&organizer).send().await.unwrap();
        assert_eq!(r.status(), 200);
        events.push(id);
    }
    let mut people = Vec::new();
    for p in 0..PEOPLE {
        people.push(signed_up(&v, &format!("p{p}@soak.test")).await.0);
    }

    // Memory every five seconds, beside the load.
    let pid = v.pid();
    let memory = Arc::new(Mutex::new(Vec::<(Duration, Memory)>::new()));
    let sampler = {
        let (memory, metrics) = (memory.clone(), v.internal_url("/metrics"));
        tokio::spawn(async move {
            let (start, http) = (std::time::Instant::now(), crate::load::client());
            loop {
                let (rss, heap) = rss_mib(pid);
                let sqlite = sqlite_mib(&http, &metrics).await;
                memory.lock().unwrap().push((start.elapsed(), Memory { rss, heap, sqlite }));
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };
    let base = v.base.clone();
    let samples = open_model(RATE, Duration::from_secs(60 * minutes), |i| {
        let url = |path: &str| format!("{base}{path}");
        let person = &people[(i as usize / 20) % PEOPLE];
        let event = &events[(i as usize / 7) % EVENTS];
        let word = WORDS[(i as usize / 3) % WORDS.len()];
        match i % 20 {
            0..=6 => http.get(url(&format!("/api/v1/events?q={word}"))),
            7 => http.get(url(&format!("/api/v1/events?q={word}&city={}", CITIES[i as usize % 3]))),
            8 => http.get(url("/api/v1/events?sort=popularity")),
            9..=11 => http.get(url(&format!("/api/v1/events/{event}"))),
            12 | 13 => http.get(url("/api/v1/users/me")).bearer_auth(person),
            14 => http
                .patch(url("/api/v1/users/me"))
                .bearer_auth(person)
                .json(&json!({"display_name": format!("Soak {i}")})),
            15 => http.post(url(&format!("/api/v1/events/{event}/registrations"))).bearer_auth(person),
            16 | 17 => {
                let at = jiff::Timestamp::now().to_string();
                let clicks: Vec<_> = (0..10)
                    .map(|_| json!({"id": uuid::Uuid::new_v4(), "type": "page_view", "at": at, "event_id": event}))
                    .collect();
                http.post(url("/api/v1/analytics/track"))
                    .json(&json!({"visitor_id": format!("v{}", i % 500), "events": clicks}))
            }
            18 => http.get(url("/api/v1/users/me/registrations")).bearer_auth(person),
            _ => http.post(url("/api/v1/events")).bearer_auth(&organizer).json(
                &json!({"title": format!("Draft {i}"), "description": "", "start": "2031-04-05T16:00:00Z",
                    "end": "2031-04-05T18:00:00Z", "time_zone": "UTC", "format": "online",
                    "online_url": "https://example.org/live", "tags": [], "category": "talk", "organization_id": org}),
            ),
        }
    })
    .await;
    sampler.abort();
    let memory = memory.lock().unwrap().clone();

    // Per minute: latency and memory.
    eprintln!("soak: {RATE} requests a second for {minutes} min (open model), veche up's memory");
    eprintln!("soak: minute  requests  errors  p50 ms  p99 ms  max ms  RSS MiB  heap MiB  SQLite MiB  rest MiB");
    let mut rest_by_minute = Vec::new();
    let mut failed: Vec<Sample> = Vec::new();
    for minute in 0..minutes {
        let of_minute: Vec<&Sample> = samples.iter().filter(|s| s.due.as_secs() / 60 == minute).collect();
        let errors: Vec<Sample> =
            of_minute.iter().filter(|s| s.status.is_none_or(|st| st >= 500)).map(|s| **s).collect();
        let mut latencies: Vec<Duration> = of_minute.iter().map(|s| s.latency).collect();
        let most = |pick: fn(&Memory) -> f64| {
            memory.iter().filter(|(at, _)| at.as_secs() / 60 == minute).map(|(_, m)| pick(m)).fold(0.0f64, f64::max)
        };
        let (rss, heap, sqlite, rest) =
            (most(|m| m.rss), most(|m| m.heap), most(|m| m.sqlite), most(|m| m.heap - m.sqlite));
        rest_by_minute.push(rest);
        eprintln!(
            "soak: {:>6}  {:>8}  {:>6}  {:>6.1}  {:>6.1}  {:>6.1}  {:>7.1}  {:>8.1}  {:>10.1}  {:>8.1}",
            minute + 1,
            of_minute.len(),
            errors.len(),
            ms(percentile(&mut latencies, 50.0)),
            ms(percentile(&mut latencies, 99.0)),
            ms(percentile(&mut latencies, 100.0)),
            rss,
            heap,
            sqlite,
            rest
        );
        failed.extend(errors);
    }
    let statuses: std::collections::BTreeMap<Option<u16>, usize> =
        samples.iter().fold(Default::default(), |mut m, s| {
            *m.entry(s.status).or_default() += 1;
            m
        });
    eprintln!("soak: answers by status: {statuses:?}");
    assert!(
        failed.is_empty(),
        "{} requests failed (5xx or no answer): {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let client_errors = samples.iter().filter(|s| s.status.is_some_and(|st| (400..500).contains(&st))).count();
    assert_eq!(client_errors, 0, "every request of the mix is a valid one: {statuses:?}");

    // After the first minute the heap may settle but not climb. SQLite's page caches fill
    // as the stores grow (up to their set sizes) and the mapped store files grow with the
    // data: neither is counted. The rest holds in the last minute no more than in the
    // second, give or take a tenth and a few MiB of allocator pages.
    let (settled, last) = (rest_by_minute[1], *rest_by_minute.last().unwrap());
    assert!(
        last <= settled * 1.1 + 4.0,
        "the heap kept growing after the warm-up: {settled:.1} MiB in minute 2, {last:.1} MiB in minute {minutes} \
         (SQLite's caches apart)"
    );
}
