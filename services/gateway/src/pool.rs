//! Idle keep-alive connections to upstream endpoints, one policy for both transports:
//! per serving thread, newest first, none older than [`IDLE_FOR`], at most [`MAX_IDLE`]
//! per endpoint, each checked to be still open when taken.
//!
//! Each serving thread of `veche serve gateway` has its own runtime, and a connection
//! waits in the pool of the thread that opened it, so taking and giving one back is a
//! thread-local push and pop with no lock. A connection goes back only when its answer
//! was read to the end; one dropped halfway is closed, as its bytes cannot be told apart
//! from the next answer's.

use foldhash::HashMap;
use std::cell::RefCell;
use std::thread::LocalKey;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long to wait for a TCP connection: a stopped upstream answers at once with a
/// refusal; one that does not answer at all should not hold the caller for long.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// An idle connection older than this is closed rather than reused: the upstream may be
/// about to close it (servers' keep-alive timeouts are usually a minute or more).
pub(crate) const IDLE_FOR: Duration = Duration::from_secs(50);
/// Idle connections kept per endpoint and thread; more are closed.
pub(crate) const MAX_IDLE: usize = 256;

/// Which endpoint a connection belongs to: (upstream id, endpoint index).
pub(crate) type Key = (usize, usize);

/// An upstream connection as a transport keeps it.
pub(crate) trait Pooled: Sized + 'static {
    /// Whether it can still take a request (the upstream has not closed it).
    fn is_open(&self) -> bool;
    /// This thread's idle connections of this kind.
    fn idle() -> &'static LocalKey<RefCell<Idle<Self>>>;
}

/// One thread's idle connections of one kind, by endpoint, each with the time it was
/// given back; the newest last.
pub(crate) struct Idle<C>(HashMap<Key, Vec<(C, Instant)>>);

impl<C> Default for Idle<C> {
    fn default() -> Self {
        Self(HashMap::default())
    }
}

/// An idle connection to `key` that is still good `now` (the request's start: the clock
/// is read once per request), if this thread has one.
pub(crate) fn take<C: Pooled>(key: Key, now: Instant) -> Option<C> {
    C::idle().with_borrow_mut(|idle| {
        let list = idle.0.get_mut(&key)?;
        while let Some((conn, since)) = list.pop() {
            if now.saturating_duration_since(since) < IDLE_FOR && conn.is_open() {
                return Some(conn);
            }
        }
        None
    })
}

/// Gives a connection whose answer was read to the end back to this thread's pool.
pub(crate) fn give_back<C: Pooled>(key: Key, conn: C, now: Instant) {
    C::idle().with_borrow_mut(|idle| {
        let list = idle.0.entry(key).or_default();
        // The oldest wait at the front: once it is too old, the old ones are closed (the
        // upstream has likely closed them already).
        if list.first().is_some_and(|(_, since)| now.saturating_duration_since(*since) >= IDLE_FOR) {
            list.retain(|(_, since)| now.saturating_duration_since(*since) < IDLE_FOR);
        }
        if list.len() < MAX_IDLE {
            list.push((conn, now));
        }
    });
}

/// A new TCP connection to an upstream endpoint, within [`CONNECT_TIMEOUT`], its small
/// writes sent at once.
pub(crate) async fn dial(addr: &str) -> std::io::Result<TcpStream> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(stream) => stream?,
        Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A connection that is open while its flag says so.
    struct Fake(u32, std::rc::Rc<Cell<bool>>);

    impl Pooled for Fake {
        fn is_open(&self) -> bool {
            self.1.get()
        }

        fn idle() -> &'static LocalKey<RefCell<Idle<Self>>> {
            thread_local! { static IDLE: RefCell<Idle<Fake>> = RefCell::default(); }
            &IDLE
        }
    }

    #[test]
    fn the_newest_open_connection_is_taken_and_old_or_closed_ones_never() {
        let open = std::rc::Rc::new(Cell::new(true));
        let closed = std::rc::Rc::new(Cell::new(false));
        let start = Instant::now();
        let key = (7, 0);
        give_back(key, Fake(1, open.clone()), start);
        give_back(key, Fake(2, closed.clone()), start);
        give_back(key, Fake(3, open.clone()), start);
        assert_eq!(take::<Fake>(key, start).map(|c| c.0), Some(3), "the newest");
        assert_eq!(take::<Fake>(key, start).map(|c| c.0), Some(1), "a closed one is skipped");
        assert!(take::<Fake>(key, start).is_none());
        assert!(take::<Fake>((7, 1), start).is_none(), "another endpoint's are apart");

        give_back(key, Fake(4, open.clone()), start);
        assert!(take::<Fake>(key, start + IDLE_FOR).is_none(), "too old");
        for i in 0..MAX_IDLE as u32 + 10 {
            give_back(key, Fake(i, open.clone()), start);
        }
        assert_eq!(Fake::idle().with_borrow(|idle| idle.0[&key].len()), MAX_IDLE);
        give_back(key, Fake(0, open.clone()), start + IDLE_FOR);
        assert_eq!(Fake::idle().with_borrow(|idle| idle.0[&key].len()), 1, "the old ones are closed");
    }
}
