//! Shows how a search runs against an events database: its SQL, SQLite's plan, the
//! planner's evidence timing, and the median of 20 runs. A tool for tuning search.
//!
//! usage: probe <data dir> '<query string>'     e.g. probe ./veche-data 'q=open&city=kazan'

use events::search::SearchParams;
use events::store::{EventStore, SqliteStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 3, "usage: probe <data dir> '<query string>'");
    let store = SqliteStore::open(std::path::Path::new(&args[1]).join("events.db")).await?;
    let params: SearchParams = serde_urlencoded::from_str(&args[2])?;
    let now = kit::now_unix();
    let (sql, plan) = store.explain(params.clone().validate()?, now).await?;
    println!("{sql}");
    for step in plan {
        println!("  plan: {step}");
    }
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        rows = store.search(params.clone().validate()?, now).await?.0.len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!("rows {rows}  median {:.2} ms  max {:.2} ms", times[10], times[19]);
    Ok(())
}
