//! Keep-alive HTTP/1 connections to upstream endpoints, pooled per thread.
//!
//! Each serving thread of `veche serve gateway` has its own runtime; a connection is
//! driven by a task on the runtime that opened it, and its idle handle waits in that
//! thread's pool, so taking and giving back a connection is a thread-local push and pop
//! with no lock. A connection goes back to the pool when its response body has been read
//! to the end; one dropped halfway is closed, as its bytes cannot be told apart from the
//! next response's.

use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

/// How long to wait for a TCP connection: a stopped upstream answers at once with a
/// refusal; one that does not answer at all should not hold the caller for long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// An idle connection older than this is closed rather than reused: the upstream may be
/// about to close it (servers' keep-alive timeouts are usually a minute or more).
pub(crate) const IDLE_FOR: Duration = Duration::from_secs(50);
/// Idle connections kept per endpoint and thread; more are closed.
pub(crate) const MAX_IDLE: usize = 256;

/// Which endpoint a connection belongs to: (upstream id, endpoint index).
pub type Key = (usize, usize);

type Sender = http1::SendRequest<Body>;

thread_local! {
    static IDLE: RefCell<HashMap<Key, Vec<(Sender, Instant)>>> = RefCell::new(HashMap::new());
}

/// Why a request was not answered.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made: the request was not sent.
    Connect(std::io::Error),
    /// The connection failed after the request was (or may have been) sent.
    Request(hyper::Error),
}

/// Sends `req` (origin-form URI) to the endpoint `key` at `addr`, on an idle connection
/// of this thread or a new one. A request an idle connection could not take (the
/// upstream had closed it) goes on a new connection.
pub async fn send(key: Key, addr: &str, mut req: http::Request<Body>) -> Result<http::Response<Body>, SendError> {
    while let Some(mut sender) = take_idle(key) {
        if sender.ready().await.is_err() {
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(response) => return Ok(returning(key, sender, response)),
            Err(mut e) => match e.take_message() {
                // Not sent: the connection closed under it; try another.
                Some(unsent) => req = unsent,
                None => return Err(SendError::Request(e.into_error())),
            },
        }
    }
    let mut sender = connect(addr).await.map_err(SendError::Connect)?;
    match sender.send_request(req).await {
        Ok(response) => Ok(returning(key, sender, response)),
        Err(e) => Err(SendError::Request(e)),
    }
}

fn take_idle(key: Key) -> Option<Sender> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(&key)?;
        while let Some((sender, since)) = list.pop() {
            if !sender.is_closed() && since.elapsed() < IDLE_FOR {
                return Some(sender);
            }
        }
        None
    })
}

fn give_back(key: Key, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE {
            list.push((sender, Instant::now()));
        }
    });
}

/// A new TCP connection to an upstream endpoint, within [`CONNECT_TIMEOUT`], its small
/// writes sent at once (both ways through the gateway connect with it).
pub(crate) async fn dial(addr: &str) -> std::io::Result<tokio::net::TcpStream> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(stream) => stream?,
        Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn connect(addr: &str) -> std::io::Result<Sender> {
    let stream = dial(addr).await?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// The response, its connection given back once its body is read to the end.
fn returning(key: Key, sender: Sender, response: http::Response<Incoming>) -> http::Response<Body> {
    if hyper::body::Body::is_end_stream(response.body()) {
        give_back(key, sender);
        return response.map(Body::new);
    }
    response.map(|inner| Body::new(Returning { inner, back: Some((key, sender)) }))
}

struct Returning {
    inner: Incoming,
    back: Option<(Key, Sender)>,
}

impl hyper::body::Body for Returning {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let done = match &frame {
            None => true,
            Some(Ok(_)) => self.inner.is_end_stream(),
            Some(Err(_)) => false,
        };
        if done && let Some((key, sender)) = self.back.take() {
            give_back(key, sender);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An upstream on loopback that counts the connections it accepts and, unless
    /// `keep_alive`, closes each one after its response.
    async fn upstream(keep_alive: bool) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(|req: http::Request<Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(http::Response::new(format!("you asked {}", req.uri())))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (addr, accepted)
    }

    async fn get(key: Key, addr: &str, path: &str) -> String {
        let req = http::Request::get(path).header("host", addr).body(Body::empty()).unwrap();
        let response = send(key, addr, req).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_response_is_read() {
        let (addr, accepted) = upstream(true).await;
        for i in 0..5 {
            assert_eq!(get((1, 0), &addr, &format!("/n/{i}")).await, format!("you asked /n/{i}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "five requests, one connection");
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced() {
        let (addr, accepted) = upstream(false).await;
        for i in 0..3 {
            assert_eq!(get((2, 0), &addr, &format!("/n/{i}")).await, format!("you asked /n/{i}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let req = http::Request::get("/").body(Body::empty()).unwrap();
        assert!(matches!(send((3, 0), &addr, req).await, Err(SendError::Connect(_))));
    }
}
