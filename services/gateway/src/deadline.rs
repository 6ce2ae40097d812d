//! One timer for a run of timeouts: a connection's head, upstream and relay timeouts on
//! the own transport, an answer's body on hyper's. Armed anew for every request, timers
//! cost 2% of the gateway's CPU; this one is moved only when it would fire late, and
//! otherwise re-armed when it fires before the deadline, about once per timeout period.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub(crate) struct Deadline {
    timer: Pin<Box<Sleep>>,
    at: Instant,
}

impl Deadline {
    pub(crate) fn new(after: Duration) -> Self {
        let at = Instant::now() + after;
        Self { timer: Box::pin(tokio::time::sleep_until(at)), at }
    }

    /// From now on, the deadline is `at`. The timer is moved only when it would fire late.
    pub(crate) fn set(&mut self, at: Instant) {
        self.at = at;
        if self.timer.deadline() > at {
            self.timer.as_mut().reset(at);
        }
    }

    /// Ready once the deadline has passed.
    pub(crate) fn poll_passed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            if Instant::now() >= self.at {
                return Poll::Ready(());
            }
            let at = self.at;
            self.timer.as_mut().reset(at);
        }
    }

    /// Resolves once the deadline has passed.
    pub(crate) async fn passed(&mut self) {
        std::future::poll_fn(|cx| self.poll_passed(cx)).await
    }
}
