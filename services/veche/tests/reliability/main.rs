//! The reliability suite (issue 25): what a client was told survives a crash, memory stays
//! flat under hours of traffic, a flood from one place does not starve the rest, and a
//! dependency that fails costs a clear error, never data.
//!
//! Each property is a test of its own over a real `veche` on loopback, driven by clients
//! that know nothing of the product's code. CI runs the short mode; a person runs the long
//! one with `VECHE_RELIABILITY=long` (more crash rounds, a ten-minute soak):
//!
//! ```text
//! VECHE_RELIABILITY=long cargo test -p veche --test reliability -- --nocapture --test-threads 1
//! ```
//!
//! The tests take one lock each: their figures (latencies, memory) mean nothing while
//! another of them loads the same two cores.

#[path = "../common/mod.rs"]
mod common;

mod dependencies;
mod durability;
mod fairness;
mod load;
mod soak;

/// One test at a time (see the module's documentation).
pub static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether a person asked for the long mode.
pub fn long_mode() -> bool {
    std::env::var("VECHE_RELIABILITY").is_ok_and(|v| v == "long")
}

/// The kit's SplitMix64, seeded from the clock (or `VECHE_RELIABILITY_SEED`): a failing
/// run prints its seed, and that variable replays it.
pub fn seeded_rng() -> kit::fixture_rng::Rng {
    let seed = std::env::var("VECHE_RELIABILITY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("reliability: seed {seed} (VECHE_RELIABILITY_SEED={seed} replays it)");
    kit::fixture_rng::Rng::new(seed)
}
