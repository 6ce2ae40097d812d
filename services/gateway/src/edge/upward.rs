//! The own transport's way upstream: its side of
//! [`Remote::send`](crate::upstream::Remote::send) (the head written as
//! bytes, the body relayed from the client's connection, the answer's head read), its
//! pooled connections (raw sockets), and the relay of the answer back to the client.

use super::{Call, Client, Outcome};
use crate::deadline::Deadline;
use crate::failure::Failure;
use crate::headers::Forwarding;
use crate::pool::{self, Idle, Key, Pooled};
use crate::retry::Tried;
use crate::upstream::{Endpoint, Exchange};
use crate::wire::{self, Framing};
use bytes::Buf;
use std::cell::RefCell;
use std::task::{Context, Poll, Waker};
use std::thread::LocalKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Why one try upstream failed (see [`Tried`]).
enum Attempt {
    /// The connection was closed before it answered a byte: a reused one may have been
    /// closed by the upstream while idle.
    Stale(String),
    Broken(String),
    ClientGone,
}

/// Why a request was not answered: the upstream failed, or the client went away.
pub(super) enum Sent {
    Failed(Failure),
    ClientGone,
}

enum Relay {
    Upstream(String),
    Client,
}

impl From<Failure> for Sent {
    fn from(failure: Failure) -> Self {
        Sent::Failed(failure)
    }
}

/// This transport's side of [`Remote::send`](crate::upstream::Remote::send): the head written as bytes, the body relayed
/// from the client's connection, the answer's head read into the client's `upbuf`.
pub(super) struct Upward<'c, 'r> {
    pub(super) client: &'c mut Client,
    pub(super) name: &'r str,
    pub(super) req: &'r wire::Request<'r>,
    pub(super) forwarding: Forwarding<'r>,
}

impl Exchange for Upward<'_, '_> {
    type Conn = TcpStream;
    type Answer = (TcpStream, Key);
    type Error = Sent;

    async fn connect(&mut self, addr: &str) -> std::io::Result<TcpStream> {
        pool::dial(addr).await
    }

    async fn try_once(
        &mut self,
        mut upstream: TcpStream,
        _reused: bool,
        key: Key,
        endpoint: &Endpoint,
    ) -> Result<(TcpStream, Key), Tried<Sent>> {
        self.client.out.clear();
        wire::upstream_head(&mut self.client.out, self.req, &self.forwarding, endpoint.authority());
        match self.client.try_once(&mut upstream).await {
            Ok(()) => Ok((upstream, key)),
            Err(Attempt::Stale(detail)) => Err(Tried::Unanswered(detail)),
            Err(Attempt::Broken(detail)) => Err(Tried::Failed(Failure::Broken(self.name.to_owned(), detail).into())),
            Err(Attempt::ClientGone) => Err(Tried::Failed(Sent::ClientGone)),
        }
    }
}

impl Pooled for TcpStream {
    /// An idle connection has nothing to read: anything there (the upstream's close,
    /// most likely) makes it useless. tokio knows without a system call unless the
    /// last read filled its buffer exactly.
    fn is_open(&self) -> bool {
        match self.poll_read_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0; 1];
                matches!(self.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
    }

    fn idle() -> &'static LocalKey<RefCell<Idle<Self>>> {
        thread_local! { static IDLE: RefCell<Idle<TcpStream>> = RefCell::default(); }
        &IDLE
    }
}

impl Client {
    /// Writes the head in `out` and the body, then reads the answer's head (past any
    /// interim 1xx) into `upbuf`.
    async fn try_once(&mut self, upstream: &mut TcpStream) -> Result<(), Attempt> {
        let here = (self.inbuf.len() as u64).min(self.unread) as usize;
        self.out.extend_from_slice(&self.inbuf[..here]);
        self.inbuf.advance(here);
        self.unread -= here as u64;
        upstream.write_all(&self.out).await.map_err(|e| Attempt::Stale(e.to_string()))?;
        while self.unread > 0 {
            if self.inbuf.is_empty() {
                self.inbuf.reserve(8192);
                match self.stream.read_buf(&mut self.inbuf).await {
                    Ok(0) | Err(_) => return Err(Attempt::ClientGone),
                    Ok(_) => {}
                }
            }
            let take = (self.inbuf.len() as u64).min(self.unread) as usize;
            upstream.write_all(&self.inbuf[..take]).await.map_err(|e| Attempt::Broken(e.to_string()))?;
            self.inbuf.advance(take);
            self.unread -= take as u64;
        }
        self.upbuf.clear();
        let mut answered = false;
        loop {
            if wire::final_head_is_buffered(&self.upbuf) {
                // Parsed once, by `relay`, which answers 502 if it is broken.
                return Ok(());
            }
            if !self.upbuf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.upbuf) {
                    Ok(httparse::Status::Complete(n)) => match response.code {
                        Some(101) => return Err(Attempt::Broken("an upgrade nobody asked for".into())),
                        // Interim answers are not passed on (hyper's client drops them too).
                        Some(100..=199) => {
                            self.upbuf.advance(n);
                            answered = true;
                            continue;
                        }
                        _ => return Ok(()),
                    },
                    Ok(httparse::Status::Partial) if self.upbuf.len() <= wire::MAX_HEAD => {}
                    Ok(httparse::Status::Partial) => return Err(Attempt::Broken("response head too large".into())),
                    Err(e) => return Err(Attempt::Broken(format!("bad response head: {e}"))),
                }
            }
            if self.upbuf.capacity() - self.upbuf.len() < 1024 {
                self.upbuf.reserve(8192);
            }
            match upstream.read_buf(&mut self.upbuf).await {
                Ok(0) if self.upbuf.is_empty() && !answered => return Err(Attempt::Stale("closed".into())),
                Ok(0) => return Err(Attempt::Broken("closed mid-answer".into())),
                Err(e) if self.upbuf.is_empty() && !answered => return Err(Attempt::Stale(e.to_string())),
                Err(e) => return Err(Attempt::Broken(e.to_string())),
                Ok(_) => {}
            }
        }
    }

    /// Relays the answer whose head is in `upbuf`, and its body, to the client; the
    /// upstream connection goes back to the pool when the body ended where it should.
    /// Neither side may stall it for longer than its timeout.
    pub(super) async fn relay(
        &mut self,
        mut upstream: TcpStream,
        key: Key,
        call: &Call<'_>,
        deadline: &mut Deadline,
    ) -> Outcome {
        let Call { route, req, request_id, started: now, .. } = *call;
        let name = &route.upstream;
        let (head_len, answer) = {
            let mut headers = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            let broken = |detail: &str| Failure::Broken(name.clone(), detail.into()).problem(route);
            let Ok(httparse::Status::Complete(head_len)) = response.parse(&self.upbuf) else {
                return Outcome::Refused(broken("a broken answer head"));
            };
            let Some(answer) = wire::answer(&response, req.is_head()) else {
                return Outcome::Refused(broken("an answer with a broken framing"));
            };
            let close = req.close || answer.framing == Framing::UntilClose;
            self.out.clear();
            wire::client_head(&mut self.out, &response, &answer, request_id, close, self.cors);
            (head_len, answer)
        };
        self.upbuf.advance(head_len);
        let status = answer.status;
        let keep = !(req.close || answer.framing == Framing::UntilClose);
        let ended = match answer.framing {
            Framing::Empty => self.write_out(deadline).await.map(|()| self.upbuf.is_empty()),
            Framing::Length(n) => self.relay_length(&mut upstream, n, deadline).await,
            Framing::Chunked => self.relay_chunks(&mut upstream, deadline).await,
            Framing::UntilClose => self.relay_until_close(&mut upstream, deadline).await.map(|()| false),
        };
        match ended {
            Ok(reusable) => {
                if reusable && !answer.closes {
                    pool::give_back(key, upstream, now);
                }
                Outcome::Relayed { status, keep }
            }
            // The head is out: all that is left is to close the connection.
            Err(Relay::Upstream(e)) => {
                tracing::warn!(upstream = %name, error = %e, "upstream failed mid-answer");
                Outcome::Relayed { status, keep: false }
            }
            Err(Relay::Client) => Outcome::Relayed { status, keep: false },
        }
    }

    /// Writes `out` to the client, which must take it within the client timeout: one that
    /// stops reading would otherwise hold this connection and an upstream one forever.
    async fn write_out(&mut self, deadline: &mut Deadline) -> Result<(), Relay> {
        deadline.set(Instant::now() + self.client_timeout);
        let written = tokio::select! {
            biased;
            written = self.stream.write_all(&self.out) => written.map_err(|_| Relay::Client),
            () = deadline.passed() => Err(Relay::Client),
        };
        self.out.clear();
        written
    }

    /// Reads more of the answer's body into `upbuf`, within the upstream timeout.
    async fn read_upstream(&mut self, upstream: &mut TcpStream, deadline: &mut Deadline) -> Result<(), Relay> {
        self.upbuf.clear();
        self.upbuf.reserve(16384);
        deadline.set(Instant::now() + self.upstream_timeout);
        tokio::select! {
            biased;
            read = upstream.read_buf(&mut self.upbuf) => match read {
                Ok(0) => Err(Relay::Upstream("closed mid-body".into())),
                Ok(_) => Ok(()),
                Err(e) => Err(Relay::Upstream(e.to_string())),
            },
            () = deadline.passed() => Err(Relay::Upstream("no more of the body in time".into())),
        }
    }

    /// A body of `n` bytes; `Ok(true)` when nothing followed it.
    async fn relay_length(
        &mut self,
        upstream: &mut TcpStream,
        mut n: u64,
        deadline: &mut Deadline,
    ) -> Result<bool, Relay> {
        loop {
            let here = (self.upbuf.len() as u64).min(n) as usize;
            self.out.extend_from_slice(&self.upbuf[..here]);
            self.upbuf.advance(here);
            n -= here as u64;
            self.write_out(deadline).await?;
            if n == 0 {
                return Ok(self.upbuf.is_empty());
            }
            self.read_upstream(upstream, deadline).await?;
        }
    }

    /// A chunked body, passed on as it is; `Ok(true)` when nothing followed it.
    async fn relay_chunks(&mut self, upstream: &mut TcpStream, deadline: &mut Deadline) -> Result<bool, Relay> {
        let mut chunks = wire::Chunks::default();
        loop {
            let end = chunks.feed(&self.upbuf).map_err(|_| Relay::Upstream("bad chunked body".into()))?;
            let here = end.unwrap_or(self.upbuf.len());
            self.out.extend_from_slice(&self.upbuf[..here]);
            self.upbuf.advance(here);
            self.write_out(deadline).await?;
            if end.is_some() {
                return Ok(self.upbuf.is_empty());
            }
            self.read_upstream(upstream, deadline).await?;
        }
    }

    /// A body that ends when the upstream closes.
    async fn relay_until_close(&mut self, upstream: &mut TcpStream, deadline: &mut Deadline) -> Result<(), Relay> {
        self.out.extend_from_slice(&self.upbuf);
        self.write_out(deadline).await?;
        loop {
            match self.read_upstream(upstream, deadline).await {
                Ok(()) => {
                    self.out.extend_from_slice(&self.upbuf);
                    self.write_out(deadline).await?;
                }
                Err(_) => return Ok(()),
            }
        }
    }
}
