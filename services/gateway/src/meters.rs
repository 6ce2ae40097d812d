//! The gateway's meters: per route, requests by status and their durations, and the
//! requests in flight; and beside them, each proxied request's access log line.
//!
//! Each serving thread batches its updates and adds them to the shared metrics when its
//! runtime goes idle, or every [`BATCH`] requests or [`STALE_AFTER`] while it stays busy.
//! Updated on every request, the shared counters' cache lines went back and forth between
//! the cores, which cost the gateway 6% of its throughput (bench/gateway.sh). On threads
//! that never go idle in that way (`veche up`'s shared runtime), updates go straight in.

use crate::Gateway;
use crate::model::Route;
use metrics::{Counter, Gauge, Histogram};
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use thread_local::ThreadLocal;
use tokio::time::Instant;

/// Requests a busy thread batches at most.
const BATCH: usize = 256;
/// How old a busy thread's batch gets at most.
const STALE_AFTER: Duration = Duration::from_millis(100);

pub struct Meters {
    routes: Vec<RouteMeters>,
    in_flight: OnceLock<Gauge>,
    batches: ThreadLocal<RefCell<Batch>>,
}

/// A route's counters by status and its latency histogram, looked up in the metrics
/// registry once rather than on every request. Lazily, at first use: the recorder is
/// installed when the server is assembled, after the routes are.
struct RouteMeters {
    labels: [(&'static str, String); 2],
    duration: OnceLock<Histogram>,
    by_status: Box<[OnceLock<Counter>]>,
}

#[derive(Default)]
struct Batch {
    /// Whether this thread defers its updates (decided at its first one).
    defers: Option<bool>,
    /// (route, status, requests).
    requests: Vec<(usize, u16, u64)>,
    /// (route, seconds).
    durations: Vec<(usize, f64)>,
    in_flight: i64,
    since: Option<Instant>,
}

impl Meters {
    pub fn new(routes: &[Route]) -> Arc<Self> {
        let routes = routes
            .iter()
            .map(|r| RouteMeters {
                labels: [("route", r.prefix.clone()), ("upstream", r.upstream.clone())],
                duration: OnceLock::new(),
                by_status: (0..1000).map(|_| OnceLock::new()).collect(),
            })
            .collect();
        Arc::new(Self { routes, in_flight: OnceLock::new(), batches: ThreadLocal::new() })
    }

    /// Counts a request in flight until the guard drops (also when the client goes away
    /// and the request's future is dropped).
    pub fn start(self: &Arc<Self>) -> InFlight<'_> {
        self.update(|batch| batch.in_flight += 1, |m| m.in_flight().increment(1.0));
        InFlight(self)
    }

    /// A request to route `index` answered with `status` after `elapsed`, at `now`.
    pub fn record(self: &Arc<Self>, index: usize, status: u16, elapsed: Duration, now: Instant) {
        let seconds = elapsed.as_secs_f64();
        let deferred = self.update(
            |batch| {
                match batch.requests.iter_mut().find(|(i, s, _)| (*i, *s) == (index, status)) {
                    Some((_, _, n)) => *n += 1,
                    None => batch.requests.push((index, status, 1)),
                }
                batch.durations.push((index, seconds));
                let since = *batch.since.get_or_insert(now);
                batch.durations.len() >= BATCH || now.saturating_duration_since(since) >= STALE_AFTER
            },
            |m| {
                m.counter(index, status).increment(1);
                m.histogram(index).record(seconds);
            },
        );
        if deferred == Some(true) {
            self.flush();
        }
    }

    /// Applies `deferred` to this thread's batch, or `direct` to the shared metrics on a
    /// thread that does not defer. Returns what `deferred` did.
    fn update<T>(self: &Arc<Self>, deferred: impl FnOnce(&mut Batch) -> T, direct: impl FnOnce(&Self)) -> Option<T> {
        let cell = self.batches.get_or_default();
        let mut batch = cell.borrow_mut();
        let defers = *batch.defers.get_or_insert_with(|| {
            let meters = Arc::downgrade(self);
            kit::server::when_idle(move || {
                if let Some(meters) = meters.upgrade() {
                    meters.flush();
                }
            })
        });
        if defers {
            Some(deferred(&mut batch))
        } else {
            drop(batch);
            direct(self);
            None
        }
    }

    /// Adds this thread's batch to the shared metrics.
    fn flush(&self) {
        let Some(cell) = self.batches.get() else { return };
        let mut batch = cell.borrow_mut();
        for (index, status, n) in batch.requests.drain(..) {
            self.counter(index, status).increment(n);
        }
        for (index, seconds) in batch.durations.drain(..) {
            self.histogram(index).record(seconds);
        }
        if batch.in_flight != 0 {
            self.in_flight().increment(batch.in_flight as f64);
            batch.in_flight = 0;
        }
        batch.since = None;
    }

    fn counter(&self, index: usize, status: u16) -> &Counter {
        let route = &self.routes[index];
        // httparse reads three digits; a status the gateway makes is below 600.
        route.by_status[usize::from(status) % 1000].get_or_init(|| {
            let mut labels = route.labels.to_vec();
            labels.push(("status", status.to_string()));
            metrics::counter!("gateway_requests_total", &labels)
        })
    }

    fn histogram(&self, index: usize) -> &Histogram {
        let route = &self.routes[index];
        route.duration.get_or_init(|| metrics::histogram!("gateway_request_duration_seconds", &route.labels))
    }

    fn in_flight(&self) -> &Gauge {
        // The same gauge every service's layer stack keeps (kit::server).
        self.in_flight.get_or_init(|| metrics::gauge!("http_requests_in_flight"))
    }
}

impl Gateway {
    /// The meters and the access log line of one proxied request, on either transport.
    pub(crate) fn account(
        &self,
        index: usize,
        method: &str,
        status: http::StatusCode,
        started: Instant,
        span: &tracing::Span,
    ) {
        let route = &self.routes.routes()[index];
        let now = Instant::now();
        let elapsed = now - started;
        self.meters.record(index, status.as_u16(), elapsed, now);
        // A 5xx is also a warning, so logs at `warn` still show upstream trouble.
        let ms = elapsed.as_secs_f64() * 1000.0;
        let (prefix, upstream, code) = (&route.prefix, &route.upstream, status.as_u16());
        span.in_scope(|| {
            if status.is_server_error() {
                tracing::warn!(target: "veche::access", method, route = %prefix, %upstream, status = code, ms, "request");
            } else {
                tracing::info!(target: "veche::access", method, route = %prefix, %upstream, status = code, ms, "request");
            }
        });
    }
}

/// See [`Meters::start`].
pub struct InFlight<'a>(&'a Arc<Meters>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.update(|batch| batch.in_flight -= 1, |m| m.in_flight().decrement(1.0));
    }
}
