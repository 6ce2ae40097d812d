//! Fairness under floods: four abusive clients at once, each from an address of its own
//! (loopback has all of 127.0.0.0/8): one opens a thousand connections, one sends its
//! headers a byte at a time, one hammers the login, one hammers search by relevance.
//! A well-behaved client, within the published rate limits, keeps its p99 within three
//! times its quiet value.

use crate::common::orgs::create_org;
use crate::common::{Veche, signed_up};
use crate::load::{Sample, ms, open_model, percentile};
use crate::{ALONE, long_mode};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The well-behaved client's rate: under the gateway's default 20 a second per address.
const POLITE_RATE: f64 = 15.0;
const EVENTS: usize = 2000;

fn address(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn client_from(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .timeout(Duration::from_secs(30))
        .user_agent("Mozilla/5.0 (X11; Linux x86_64) reliability-suite")
        .build()
        .unwrap()
}

/// What a flood got: answers by status (0: no answer), connections opened and refused.
#[derive(Default)]
struct Tally {
    statuses: std::sync::Mutex<BTreeMap<u16, u64>>,
    connected: AtomicU64,
    closed_early: AtomicU64,
}

impl Tally {
    fn answer(&self, status: u16) {
        *self.statuses.lock().unwrap().entry(status).or_default() += 1;
    }
}

async fn connect_from(ip: IpAddr, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(to).await
}

/// Runs the four floods on a thread and runtime of their own (so that their work does not
/// delay the measuring client's), until `stop`.
fn floods(
    server: SocketAddr,
    expensive: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(&'static str, Arc<Tally>)>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let tallies: Vec<(&'static str, Arc<Tally>)> =
                ["1,000 connections", "slow headers", "login hammer", "search hammer"]
                    .into_iter()
                    .map(|name| (name, Arc::new(Tally::default())))
                    .collect();
            let mut tasks = Vec::new();
            // A person finding which flood costs what can run some of them only.
            let only = std::env::var("VECHE_FAIRNESS_FLOODS").unwrap_or_default();
            let on = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
            // A thousand connections from one address, held open, each asking for a page
            // now and then; a closed one is opened again at once.
            for _ in 0..if on("connections") { 1000 } else { 0 } {
                let (tally, stop) = (tallies[0].1.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut s) = connect_from(address(2), server).await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        tally.connected.fetch_add(1, Ordering::Relaxed);
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            let ask = b"GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n";
                            if s.write_all(ask).await.is_err() {
                                break;
                            }
                            match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                                Ok(Ok(n)) if n > 12 => tally.answer(std::str::from_utf8(&buf[9..12]).unwrap_or("0").parse().unwrap_or(0)),
                                _ => {
                                    tally.closed_early.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                            }
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                    }
                }));
            }
            // Slowloris: headers a byte a second, on two hundred connections.
            for _ in 0..if on("slow") { 200 } else { 0 } {
                let (tally, stop) = (tallies[1].1.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut s) = connect_from(address(3), server).await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        tally.connected.fetch_add(1, Ordering::Relaxed);
                        let _ = s.write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: slow\r\n").await;
                        while !stop.load(Ordering::Relaxed) && s.write_all(b"X").await.is_ok() {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        tally.closed_early.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            // Logins with wrong passwords, 32 at a time, at whatever pace the answers allow.
            let login = client_from(address(4));
            for n in 0..if on("login") { 32 } else { 0 } {
                let (tally, stop, login) = (tallies[2].1.clone(), stop.clone(), login.clone());
                tasks.push(tokio::spawn(async move {
                    let url = format!("http://{server}/api/v1/auth/login");
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let body = json!({"email": format!("guess{}@fair.test", (n * 1000 + i) % 50), "password": "wrong password guess"});
                        let status = login.post(&url).json(&body).send().await.map_or(0, |r| r.status().as_u16());
                        tally.answer(status);
                    }
                }));
            }
            // A very common word in a city by relevance, 32 at a time.
            let search = client_from(address(5));
            for _ in 0..if on("search") { 32 } else { 0 } {
                let (tally, stop, search, url) = (tallies[3].1.clone(), stop.clone(), search.clone(), expensive.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let status = match search.get(&url).send().await {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let _ = r.bytes().await;
                                status
                            }
                            Err(_) => 0,
                        };
                        tally.answer(status);
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
            tallies
        })
    })
}

#[tokio::test]
async fn a_polite_client_keeps_its_latency_while_others_flood() {
    let _alone = ALONE.lock().await;
    let window = Duration::from_secs(if long_mode() { 120 } else { 30 });
    // Seeded without limits, then started again on the same data with the limits a
    // deployment has by default (the harness turns them off for other tests).
    let mut seeded = Veche::start();
    let v = &seeded;
    let (organizer, _) = signed_up(v, "organizer@fair.test").await;
    signed_up(v, "polite@fair.test").await;
    let org = create_org(v, &organizer, json!({ "name": "Fair", "slug": "fair" })).await;
    let org = org["id"].as_str().unwrap().to_owned();
    let seeders: Vec<reqwest::Client> = (10..20).map(|i| client_from(address(i))).collect();
    let mut first = None;
    for chunk in 0..EVENTS / 100 {
        let made = (0..100).map(|i| {
            let n = chunk * 100 + i;
            let seeder = &seeders[n % seeders.len()];
            let body = json!({"title": format!("Open evening {n}"), "description": "an open talk, open to all",
                "start": "2031-03-05T16:00:00Z", "end": "2031-03-05T18:00:00Z", "time_zone": "Europe/Moscow",
                "format": "offline", "venue": {"name": "Hall", "address": "Street 1", "city": "Moscow"},
                "tags": ["open"], "category": "talk", "organization_id": org});
            let (url, organizer) = (v.url("/api/v1/events"), &organizer);
            async move {
                let r = seeder.post(url).bearer_auth(organizer).json(&body).send().await.unwrap();
                r.json::<serde_json::Value>().await.unwrap()["id"].as_str().map(str::to_owned)
            }
        });
        for id in futures::future::join_all(made).await {
            let id = id.expect("an event");
            first.get_or_insert(id.clone());
            let publish = seeders[0].post(v.url(&format!("/api/v1/events/{id}/publish"))).bearer_auth(&organizer);
            assert_eq!(publish.send().await.unwrap().status(), 200);
        }
    }
    let event = first.unwrap();
    seeded.kill();
    let v = Veche::start_in(
        seeded.data.clone(),
        &[
            ("VECHE_CLIENT_RPS", "20"),
            ("VECHE_USER_RPS", "10"),
            ("VECHE_PASSWORD_HASH_RPS", "1"),
            ("VECHE_CONNECTIONS_PER_CLIENT", "256"),
        ],
    );

    let polite = crate::common::login(&v, "polite@fair.test", crate::common::PASSWORD).await;
    let polite = polite.body["access_token"].as_str().expect("the polite client signs in").to_owned();
    let measure = || {
        let (client, base, polite, event) = (client_from(address(1)), v.base.clone(), polite.clone(), event.clone());
        async move {
            open_model(POLITE_RATE, window, |i| match i % 3 {
                0 => client.get(format!("{base}/api/v1/events?q=evening+1999")),
                1 => client.get(format!("{base}/api/v1/events/{event}")),
                _ => client.get(format!("{base}/api/v1/users/me")).bearer_auth(&polite),
            })
            .await
        }
    };
    let quiet = measure().await;
    let stop = Arc::new(AtomicBool::new(false));
    let expensive = v.url("/api/v1/events?q=open&city=moscow&sort=relevance");
    let server: SocketAddr = v.base.trim_start_matches("http://").parse().unwrap();
    let flooding = floods(server, expensive, stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let flooded = measure().await;
    stop.store(true, Ordering::Relaxed);
    let tallies = flooding.join().unwrap();

    let row = |name: &str, samples: &[Sample]| {
        let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        let failed = samples.iter().filter(|s| s.status != Some(200)).count();
        let by_kind: BTreeMap<(u64, Option<u16>), usize> =
            samples.iter().enumerate().fold(BTreeMap::new(), |mut m, (i, s)| {
                *m.entry((i as u64 % 3, s.status)).or_default() += 1;
                m
            });
        eprintln!("fairness: {name}: answers by (request kind, status): {by_kind:?}");
        let (p50, p99) = (percentile(&mut latencies, 50.0), percentile(&mut latencies, 99.0));
        eprintln!("fairness: {name:<22} {:>8} {:>7} {:>8.1} {:>8.1}", samples.len(), failed, ms(p50), ms(p99));
        (failed, p99)
    };
    eprintln!("fairness: the polite client, {POLITE_RATE} requests a second for {window:?} (open model)");
    eprintln!("fairness: {:<22} {:>8} {:>7} {:>8} {:>8}", "", "requests", "not 200", "p50 ms", "p99 ms");
    let (quiet_failed, quiet_p99) = row("quiet", &quiet);
    let (flooded_failed, flooded_p99) = row("under the four floods", &flooded);
    for (name, tally) in &tallies {
        eprintln!(
            "fairness: flood {name:<18} connections {:>6}, closed by the server {:>6}, answers {:?}",
            tally.connected.load(Ordering::Relaxed),
            tally.closed_early.load(Ordering::Relaxed),
            tally.statuses.lock().unwrap()
        );
    }
    assert_eq!((quiet_failed, flooded_failed), (0, 0), "the polite client is always answered, and with a 200");
    assert!(
        flooded_p99 <= quiet_p99 * 3,
        "the polite client's p99 went from {:.1} ms to {:.1} ms under the floods (more than 3x)",
        ms(quiet_p99),
        ms(flooded_p99)
    );
}
