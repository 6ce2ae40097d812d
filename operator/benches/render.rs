//! Rendering a full Platform: everything both controllers apply for the production
//! example (five services with their children), in the steady state (keys and client
//! secrets already exist, so no key is generated).
//!
//! Prints the baseline (serialising the same Platform to JSON, which every reconcile
//! pays anyway when the watch delivers it) and the subject from the same run, so the
//! ratio survives a noisy machine. Target: a full render under 1 ms.
//!
//!     cargo bench -p veche-operator --bench render --profile dev
//!
//! (`--profile dev` keeps to debug builds; dependencies are optimised in that profile,
//! the operator itself is not, so the number is an upper bound.)

use operator::crd::Platform;
use operator::render::platform::{self, CountingEntropy, Inputs};
use operator::render::service;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn load() -> Platform {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/platform-production.yaml");
    let text = std::fs::read_to_string(path).expect("the production example");
    let mut p: Platform = serde_saphyr::from_str(&text).expect("a Platform");
    p.metadata.namespace = Some("apps".into());
    p.metadata.uid = Some("uid".into());
    p
}

/// Median time of one call, over rounds of `per_round` calls.
fn measure(per_round: u32, rounds: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_round {
                f();
            }
            start.elapsed() / per_round
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let p = load();
    let first =
        platform::render(&p, &Inputs { now: 0, signing_keys: None, service_clients: None }, &mut CountingEntropy(0))
            .expect("renders");
    let keys = first.signing_keys.data.clone();
    let clients = first.service_clients.data.clone();
    let inputs = Inputs { now: 1, signing_keys: keys.as_ref(), service_clients: clients.as_ref() };

    let render_all = || {
        let objects = platform::render(&p, &inputs, &mut CountingEntropy(0)).expect("renders");
        for sd in &objects.services {
            let mut sd = sd.clone();
            sd.metadata.uid = Some("sd-uid".into());
            black_box(service::render(&p, &sd).expect("renders"));
        }
        black_box(objects);
    };
    let baseline = measure(200, 30, || {
        black_box(serde_json::to_vec(black_box(&p)).expect("serialises"));
    });
    let subject = measure(50, 30, render_all);

    println!("{:<48} {:>12}", "row", "median");
    println!("{:<48} {:>10.1} µs", "baseline: Platform to JSON", baseline.as_secs_f64() * 1e6);
    println!("{:<48} {:>10.1} µs", "full render (Platform + 5 services)", subject.as_secs_f64() * 1e6);
    println!("{:<48} {:>12.1}", "ratio full render / baseline", subject.as_secs_f64() / baseline.as_secs_f64());
    let verdict = if subject < Duration::from_millis(1) { "met" } else { "MISSED" };
    println!("target: full render < 1 ms: {verdict}");
}
