//! The time of one argon2id password hash, as `bench/users.sh` needs it for the login
//! ceiling (cores ÷ one hash time).
//!
//! Hashes sequentially through the same `Passwords` the server uses (so the same
//! parameters and the same blocking-pool hop), after a few warm-ups, and prints the
//! median milliseconds of one hash as a bare number on stdout.
//!
//! ```sh
//! cargo run --release -p veche-users --example hash_time -- [runs] [warmups]
//! ```

use std::time::Instant;
use users::password::Passwords;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(Ok(20), |a| a.parse())?;
    let warmups: usize = args.next().map_or(Ok(2), |a| a.parse())?;
    anyhow::ensure!(runs > 0, "runs must be at least 1");

    let passwords = Passwords::default();
    let password = || "correct horse battery staple".to_owned();
    for _ in 0..warmups {
        passwords.hash(password()).await?;
    }
    let mut millis = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        passwords.hash(password()).await?;
        millis.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    millis.sort_by(f64::total_cmp);
    let mid = runs / 2;
    let median = if runs.is_multiple_of(2) { (millis[mid - 1] + millis[mid]) / 2.0 } else { millis[mid] };
    println!("{median:.2}");
    Ok(())
}
