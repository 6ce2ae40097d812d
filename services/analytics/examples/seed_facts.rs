//! Fills an analytics database with facts, for the analytics benchmark.
//!
//! usage: seed_facts <data dir> <facts> [<seed>]
//! Facts of the last 30 days, in the order they happened, over 1,000 organizations and
//! 20,000 events: 85% event views (400,000 visitors), 10% registrations, 3%
//! cancellations, 2% check-ins; random ids, as the outboxes make them. They go through
//! the store's own ingest (the relay's path: dedup, rollups, visitors) in batches of
//! 100,000. Prints `<organization> <event>`: the busiest of each, as targets for their
//! reports.

use analytics::model::{Fact, FactKind};
use analytics::store::{AnalyticsStore, SqliteStore};
use kit::fixture_rng::Rng;
use uuid::Uuid;

const ORGANIZATIONS: u64 = 1_000;
const EVENTS: u64 = 20_000;
const VISITORS: u64 = 400_000;
const USERS: u64 = 100_000;
const DAYS: i64 = 30;
const BATCH: usize = 100_000;

/// Skewed towards small values: a few popular events take most of the traffic.
fn skewed(rng: &mut Rng, n: u64) -> u64 {
    let u = rng.unit();
    ((u * u * u) * n as f64) as u64 % n
}

/// Random bytes for a fact id, as the outboxes' v4 ids are.
fn random_bytes(rng: &mut Rng) -> [u8; 16] {
    ((rng.next_u64() as u128) << 64 | rng.next_u64() as u128).to_be_bytes()
}

fn id(kind: u128, n: u64) -> Uuid {
    Uuid::from_u128((kind << 96) | 0x4000_8000_0000_0000_0000 | n as u128)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 3, "usage: seed_facts <data dir> <facts> [<seed>]");
    let dir = std::path::PathBuf::from(&args[1]);
    let count: u64 = args[2].parse()?;
    let mut rng = Rng::new(args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(42));
    let store = SqliteStore::open(dir.join("analytics.db")).await?;
    let span = DAYS * 86_400;
    let start = kit::now_unix() - span;
    let started = std::time::Instant::now();
    let mut made = 0u64;
    while made < count {
        let n = BATCH.min((count - made) as usize);
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            made += 1;
            let event = skewed(&mut rng, EVENTS);
            let kind = match rng.below(100) {
                0..85 => FactKind::EventViewed,
                85..95 => FactKind::RegistrationMade,
                95..98 => FactKind::RegistrationCancelled,
                _ => FactKind::RegistrationCheckedIn,
            };
            let viewed = kind == FactKind::EventViewed;
            batch.push(Fact {
                id: uuid::Builder::from_random_bytes(random_bytes(&mut rng)).into_uuid(),
                kind,
                occurred_at: start + (made as i64 * span) / count as i64,
                event_id: Some(id(0xe7e7, event)),
                organization_id: Some(id(0x0e9a, event % ORGANIZATIONS)),
                user_id: (!viewed).then(|| id(0x05e5, rng.below(USERS))),
                visitor_id: viewed.then(|| format!("visitor-{}", rng.below(VISITORS))),
                imported: false,
            });
        }
        let done = store.ingest(batch).await?;
        anyhow::ensure!(done.accepted == n as u64, "a fresh fact was not counted: {done:?}");
        if made % 1_000_000 < BATCH as u64 {
            eprintln!("  {made} facts in {:.1}s", started.elapsed().as_secs_f64());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("seeded {count} facts in {seconds:.1}s ({:.0} facts/s through the store)", count as f64 / seconds);
    // `skewed` favours index 0: event 0 (of organization 0) is the busiest of both.
    println!("{} {}", id(0x0e9a, 0), id(0xe7e7, 0));
    Ok(())
}
