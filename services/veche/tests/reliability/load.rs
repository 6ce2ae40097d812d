//! The suite's clients: what an answer tells a client about its write, and an open-model
//! load driver (requests leave on a fixed schedule whatever the server does, and each
//! latency counts from the moment its request was due, queueing included).

use serde_json::Value;
use std::time::{Duration, Instant};

/// What a client knows about a write after asking.
#[derive(Debug)]
pub enum Outcome {
    /// A 2xx with its body: the write happened and must survive anything.
    Acked(u16, Value),
    /// A 4xx: the write was refused and must have left no trace.
    Refused(u16, Value),
    /// The connection was refused: nothing was sent.
    NotSent,
    /// The connection broke, or a 5xx came back: the write may or may not have happened.
    Unknown,
}

impl Outcome {
    pub fn acked(&self) -> Option<&Value> {
        match self {
            Outcome::Acked(_, body) => Some(body),
            _ => None,
        }
    }
}

pub async fn attempt(req: reqwest::RequestBuilder) -> Outcome {
    let response = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Outcome::NotSent,
        Err(_) => return Outcome::Unknown,
    };
    let status = response.status().as_u16();
    let Ok(bytes) = response.bytes().await else { return Outcome::Unknown };
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    match status {
        200..=299 => Outcome::Acked(status, body),
        400..=499 => Outcome::Refused(status, body),
        _ => Outcome::Unknown,
    }
}

/// A request with an optional bearer token and an optional JSON body.
pub fn request(
    http: &reqwest::Client,
    method: &str,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::RequestBuilder {
    let mut req = http.request(method.parse().unwrap(), url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    req
}

/// An online event of `org` in 2031, as the suite's organizers create them.
pub fn event_body(org: &str, title: &str, capacity: Option<u64>) -> Value {
    serde_json::json!({"title": title, "description": "", "start": "2031-03-05T16:00:00Z",
        "end": "2031-03-05T18:00:00Z", "time_zone": "Europe/Moscow", "format": "online",
        "online_url": "https://example.org/live", "tags": [], "category": "talk", "capacity": capacity,
        "organization_id": org})
}

/// A client for the load: short timeouts (a killed server must not hold a worker for
/// long) and a browser's user agent (analytics ignores robots).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent("Mozilla/5.0 (X11; Linux x86_64) reliability-suite")
        .build()
        .unwrap()
}

/// One request of an open-model run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was due, from the start of the run.
    pub due: Duration,
    /// From when it was due to its whole answer.
    pub latency: Duration,
    /// The status, or `None` when no answer came.
    pub status: Option<u16>,
}

/// Sends `rate` requests a second for `length`, request `i` made by `make(i)`, each on its
/// own task so that a slow answer never delays the next request.
pub async fn open_model(rate: f64, length: Duration, make: impl Fn(u64) -> reqwest::RequestBuilder) -> Vec<Sample> {
    let start = tokio::time::Instant::now();
    let total = (rate * length.as_secs_f64()) as u64;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(start + due).await;
        let request = make(i);
        let due_at = start.into_std() + due;
        tasks.push(tokio::spawn(async move {
            let status = match request.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    r.bytes().await.ok().map(|_| status)
                }
                Err(_) => None,
            };
            Sample { due, latency: due_at.elapsed(), status }
        }));
    }
    let mut samples = Vec::with_capacity(tasks.len());
    for task in tasks {
        samples.push(task.await.unwrap());
    }
    samples
}

/// The `p`-th percentile (0 to 100) of `latencies`, nearest rank.
pub fn percentile(latencies: &mut [Duration], p: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort_unstable();
    let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The resident memory of process `pid` in MiB (Linux): all of it, and the anonymous part
/// (the heap: what a leak grows; the rest is mapped files, SQLite's stores among them,
/// which grow with the data).
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> f64 {
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/<pid>/status"));
        kib / 1024.0
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// What SQLite holds in process memory (its page caches above all), in MiB, from the
/// `/metrics` at `url`.
pub async fn sqlite_mib(http: &reqwest::Client, url: &str) -> f64 {
    let text = http.get(url).send().await.unwrap().text().await.unwrap();
    let bytes: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("sqlite_memory_used_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("sqlite_memory_used_bytes in /metrics");
    bytes / (1024.0 * 1024.0)
}

/// Every store of the data directory passes SQLite's own check (the process is dead).
/// The check reads copies (each store and its WAL): opened in place, SQLite would
/// recover and checkpoint what the kill left, and the restart would not meet it.
pub fn check_integrity(data: &std::path::Path) {
    let copies = tempfile::tempdir().unwrap();
    let mut stores = 0;
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "db") {
            let copy = copies.path().join(path.file_name().unwrap());
            std::fs::copy(&path, &copy).unwrap();
            let wal = path.with_extension("db-wal");
            if wal.exists() {
                std::fs::copy(&wal, copy.with_extension("db-wal")).unwrap();
            }
            let c = rusqlite::Connection::open(&copy).unwrap();
            let verdict: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
            assert_eq!(verdict, "ok", "{}", path.display());
            stores += 1;
        }
    }
    assert!(stores >= 4, "the four services' stores: {stores}");
}

/// Waits until `check` holds, asking every 100 ms, for at most `within`.
pub async fn eventually<F: std::future::Future<Output = bool>>(within: Duration, what: &str, check: impl Fn() -> F) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
