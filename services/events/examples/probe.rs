//! Shows how a search runs against an events database: its SQL, SQLite's plan, the
//! planner's evidence timing, and the median of 20 runs (`PROBE_RUNS` to change). A tool
//! for tuning search.
//!
//! usage: probe <data dir> '<query string>'     e.g. probe ./veche-data 'q=open&city=kazan'
//!        probe <data dir> 'sql:<SELECT ...>'   times a hand-written statement instead
//!                                              (`:now` is bound to the current time)

use events::search::SearchParams;
use events::store::{EventStore, SqliteStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 3, "usage: probe <data dir> '<query string>' | 'sql:<statement>'");
    let store = SqliteStore::open(std::path::Path::new(&args[1]).join("events.db")).await?;
    let now = kit::now_unix();
    let runs: usize = std::env::var("PROBE_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(20).max(1);
    let mut times = Vec::new();
    let mut rows = 0;
    if let Some(sql) = args[2].strip_prefix("sql:") {
        let sql = sql.to_owned();
        let explained = sql.clone();
        let plan: Vec<String> = store
            .db()
            .read(move |c| -> Result<_, kit::db::DbError> {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {explained}"))?;
                bind_now(&mut stmt, now)?;
                let mut rows = stmt.raw_query();
                let mut plan = Vec::new();
                while let Some(r) = rows.next()? {
                    plan.push(r.get::<_, String>(3)?);
                }
                Ok(plan)
            })
            .await?;
        for step in plan {
            println!("  plan: {step}");
        }
        for _ in 0..runs {
            let sql = sql.clone();
            let t = std::time::Instant::now();
            rows = store
                .db()
                .read(move |c| -> Result<usize, kit::db::DbError> {
                    let mut stmt = c.prepare_cached(&sql)?;
                    bind_now(&mut stmt, now)?;
                    let mut rows = stmt.raw_query();
                    let mut n = 0;
                    while rows.next()?.is_some() {
                        n += 1;
                    }
                    Ok(n)
                })
                .await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    } else {
        let params: SearchParams = serde_urlencoded::from_str(&args[2])?;
        let (sql, plan) = store.explain(params.clone().validate()?, now).await?;
        println!("{sql}");
        for step in plan {
            println!("  plan: {step}");
        }
        for _ in 0..runs {
            let t = std::time::Instant::now();
            rows = store.search(params.clone().validate()?, now).await?.0.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!("rows {rows}  median {:.2} ms  max {:.2} ms", times[runs / 2], times[runs - 1]);
    Ok(())
}

fn bind_now(stmt: &mut rusqlite::Statement<'_>, now: i64) -> rusqlite::Result<()> {
    if let Some(i) = stmt.parameter_index(":now")? {
        stmt.raw_bind_parameter(i, now)?;
    }
    Ok(())
}
