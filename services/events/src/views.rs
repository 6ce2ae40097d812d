//! `event.viewed` facts, batched: a page view must not cost a write transaction of its
//! own, so views queue in memory and are written every half second in one transaction.
//! A crash loses at most that half second of views (views are statistics, not state).

use crate::store::EventStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

const FLUSH_EVERY: Duration = Duration::from_millis(500);
const QUEUE: usize = 10_000;

#[derive(Clone)]
pub struct Views {
    tx: mpsc::Sender<(Uuid, Option<Uuid>, i64)>,
}

impl Views {
    pub fn start(store: Arc<dyn EventStore>) -> Self {
        let (tx, mut rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                let deadline = tokio::time::sleep(FLUSH_EVERY);
                tokio::pin!(deadline);
                let open = loop {
                    tokio::select! {
                        item = rx.recv() => match item {
                            Some(v) => batch.push(v),
                            None => break false,
                        },
                        _ = &mut deadline => break true,
                    }
                };
                if !batch.is_empty()
                    && let Err(e) = store.record_views(std::mem::take(&mut batch)).await
                {
                    tracing::warn!(error = %e, "could not record event views");
                }
                if !open {
                    return;
                }
            }
        });
        Self { tx }
    }

    /// Queues a view; under overload, views are dropped rather than slowing reads.
    pub fn record(&self, event: Uuid, user: Option<Uuid>) {
        let _ = self.tx.try_send((event, user, kit::now_unix()));
    }
}
