//! Fills an events database with the seeded fixture corpus, for benchmarks and demos.
//!
//! usage: seed <data dir> <count> [<seed>]
//! Events start over the year from tomorrow; 50 organizations; prints one published
//! public event's id (a stable target for `GET /events/{id}`).

use events::model::{Status, Visibility};
use events::store::{EventStore, SqliteStore};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 3, "usage: seed <data dir> <count> [<seed>]");
    let dir = std::path::PathBuf::from(&args[1]);
    let count: usize = args[2].parse()?;
    let seed: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(42);
    let store = SqliteStore::open(dir.join("events.db")).await?;
    let now = kit::now_unix();
    let epoch = now + 86_400;
    let orgs: Vec<Uuid> = (0..50).map(|i| Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 + i)).collect();
    let corpus = events::fixtures::corpus(seed, count, epoch, &orgs);
    let mut sample = None;
    let started = std::time::Instant::now();
    // Random keys (ids, start times, cities) spread every chunk's index writes over most
    // of each index, so a commit rewrites pages in proportion to the store's size: fewer,
    // larger chunks as the corpus grows keep the load from growing quadratically.
    for chunk in corpus.chunks((count / 10).max(20_000)) {
        let chunk_started = std::time::Instant::now();
        let ids = store.import(chunk.to_vec(), Uuid::nil(), now).await?;
        eprintln!("  {} events in {:.1}s", chunk.len(), chunk_started.elapsed().as_secs_f64());
        if sample.is_none() {
            sample = chunk
                .iter()
                .zip(&ids)
                .find(|((e, s), _)| *s == Status::Published && e.visibility == Visibility::Public)
                .map(|(_, id)| *id);
        }
    }
    // A bulk load leaves the text index in many segments; merge them as a server would.
    let merging = std::time::Instant::now();
    store.optimize_search_index().await?;
    eprintln!("merged the text index in {:.1}s", merging.elapsed().as_secs_f64());
    eprintln!("seeded {count} events in {:.1}s", started.elapsed().as_secs_f64());
    println!("{}", sample.ok_or_else(|| anyhow::anyhow!("no published event"))?);
    Ok(())
}
