//! Times raw SQL against an events database: a tool for tuning search plans.
//! usage: probe <events.db> <sql> [<param>...]   (prints rows and the median of 20 runs)

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let conn = rusqlite::Connection::open(&args[1])?;
    conn.create_scalar_function("distance_km", 4, rusqlite::functions::FunctionFlags::SQLITE_UTF8, |ctx| {
        Ok(events::search::distance_km(ctx.get(0)?, ctx.get(1)?, ctx.get(2)?, ctx.get(3)?))
    })?;
    let sql = &args[2];
    let params: Vec<&str> = args[3..].iter().map(String::as_str).collect();
    let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let rows = plan.query_map(rusqlite::params_from_iter(params.iter()), |r| r.get::<_, String>(3))?;
    for r in rows {
        println!("plan: {}", r?);
    }
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        let mut stmt = conn.prepare_cached(sql)?;
        n = stmt.query_map(rusqlite::params_from_iter(params.iter()), |_| Ok(()))?.count();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("rows {n}  median {:.2} ms  max {:.2} ms", times[10], times[19]);
    Ok(())
}
