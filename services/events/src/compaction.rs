//! Background merging of the text index. Every write adds a small segment to it, and a
//! search probe seeks once per segment, so probes slow down as segments pile up (ten
//! segments made them seventeen times slower on 100,000 events). Once the segment count
//! stops changing (writes have paused) or grows past a bound, merge toward one segment,
//! a few hundred pages per short write transaction so writers barely wait.

use crate::store::SqliteStore;
use std::time::Duration;

/// How often the segment count is checked.
const EVERY: Duration = Duration::from_secs(10);
/// Merge even while writes continue once there are this many segments.
const MAX_SEGMENTS: i64 = 8;
/// Pages written per merge step (each step is one write transaction).
const PAGES_PER_STEP: i64 = 256;

pub fn start(store: SqliteStore) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = -1;
        loop {
            tokio::time::sleep(EVERY).await;
            match store.search_index_segments().await {
                Ok(segments) if should_merge(segments, last) => last = merge(&store).await,
                Ok(segments) => last = segments,
                Err(e) => tracing::warn!(error = %e, "could not read the search index structure"),
            }
        }
    })
}

/// Merge when there is more than one segment and either writes have paused (the count
/// did not change since the last look) or there are too many to wait.
fn should_merge(segments: i64, last: i64) -> bool {
    segments > 1 && (segments == last || segments > MAX_SEGMENTS)
}

async fn merge(store: &SqliteStore) -> i64 {
    let started = std::time::Instant::now();
    let mut steps = 0;
    loop {
        steps += 1;
        match store.merge_search_index(PAGES_PER_STEP).await {
            Ok(left) if left <= 1 || steps >= 10_000 => {
                tracing::debug!(steps, left, ms = started.elapsed().as_millis() as u64, "search index merged");
                return left;
            }
            Ok(_) => tokio::task::yield_now().await,
            Err(e) => {
                tracing::warn!(error = %e, "could not merge the search index");
                return -1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_when_writes_pause_or_segments_pile_up() {
        assert!(!should_merge(1, 1), "one segment is already merged");
        assert!(!should_merge(3, 2), "writes are still coming in");
        assert!(should_merge(3, 3), "writes paused");
        assert!(should_merge(MAX_SEGMENTS + 1, 2), "too many to wait for a pause");
    }
}
