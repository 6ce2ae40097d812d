//! The gateway's own HTTP/1.1 transport, which `veche serve gateway` serves its
//! connections with. nginx's way: one task per client connection parses each request head
//! in place ([`wire`]), runs the shared admission ([`admission::admit`]), writes the head
//! upstream on a pooled connection of this thread (endpoints, pool and retries are
//! [`Remote::send`]'s, as for hyper's), and relays the answer back as bytes. No request or
//! response objects, no task per upstream connection, no channel between them: through
//! hyper's server and client, the same request cost the gateway 19–20 µs of CPU against
//! 12–13 µs this way, and the gateway ran at 0.90 of nginx's throughput rather than level
//! with it (bench/gateway.sh).
//!
//! It only shortens the common way. Whatever it does not take (HTTP/2, HTTP/1.0, chunked
//! or `Expect` request bodies, upgrades, CORS requests, the gateway's own pages, a route
//! to an in-process upstream, a head it cannot parse) goes to hyper with the bytes read so
//! far, and hyper serves the rest of that connection as it serves every other service.
//! Every answer the gateway makes itself is the same [`kit::ApiError`] on both ways.
//!
//! This module is the client's side (its connection, request heads, refusals, the
//! handover); [`upward`] is the upstream's (the tries, pooled sockets, the relay back).

use crate::Gateway;
use crate::admission;
use crate::deadline::Deadline;
use crate::failure::Failure;
use crate::headers::{self, Forwarding, Value};
use crate::model::Route;
use crate::proxy::Front;
use crate::upstream::Remote;
use crate::wire;
use axum::response::IntoResponse;
use bytes::{Buf, Bytes, BytesMut};
use kit::ApiError;
use kit::server::Handoff;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;
use upward::{Sent, Upward};

mod upward;

/// The gateway's connections: its own HTTP/1.1 path first, hyper for the rest.
#[derive(Clone)]
pub struct Edge {
    front: Front,
}

impl Edge {
    pub fn new(front: Front) -> Self {
        Self { front }
    }
}

impl kit::server::Connections for Edge {
    fn serve_connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        mut hyper: Handoff,
    ) -> impl Future<Output = ()> + Send + 'static {
        let front = self.front.clone();
        async move {
            let gateway = front.gateway.clone();
            let mut client = Client::new(stream, peer, &gateway);
            if let End::HandOver = client.serve(&gateway, hyper.stopping()).await {
                let replay = Replay { pending: client.inbuf.freeze(), io: client.stream };
                hyper.serve(replay, peer, front).await;
            }
        }
    }
}

/// How a connection's own loop ended.
enum End {
    Closed,
    /// hyper takes the connection, replaying the bytes read so far.
    HandOver,
}

enum ReadHead {
    /// A complete head of this many bytes is at the front of the buffer.
    Complete(usize),
    Closed,
    NotOurs,
}

/// One request on its way upstream.
#[derive(Clone, Copy)]
struct Call<'a> {
    route: &'a Route,
    remote: &'a Remote,
    req: &'a wire::Request<'a>,
    request_id: &'a str,
    /// The gateway made the request id (the client sent none).
    made: bool,
    started: Instant,
}

/// What became of one request.
enum Outcome {
    /// The upstream's answer went to the client (`keep`: the connection may go on).
    Relayed { status: u16, keep: bool },
    /// Nothing was written yet: the gateway answers with this problem.
    Refused(ApiError),
    /// The client went away.
    Gone,
}

struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    /// CORS applies to the gateway's answers (their `Vary`).
    cors: bool,
    /// Bytes from the client not used yet: a head, a body, requests sent ahead.
    inbuf: BytesMut,
    /// Body bytes of the current request not read from the client yet.
    unread: u64,
    /// Bytes from the upstream.
    upbuf: BytesMut,
    /// What goes out next, upstream or to the client.
    out: Vec<u8>,
    /// Longest the client may go without reading while an answer is relayed to it, as
    /// long as it may go without sending while a head is read (the header timeout).
    client_timeout: Duration,
    /// Longest the upstream may go without sending while its answer's body is relayed.
    upstream_timeout: Duration,
}

impl Client {
    fn new(stream: TcpStream, peer: SocketAddr, gw: &Gateway) -> Self {
        Self {
            stream,
            peer,
            cors: gw.cors,
            inbuf: BytesMut::with_capacity(8192),
            unread: 0,
            upbuf: BytesMut::with_capacity(8192),
            out: Vec::with_capacity(4096),
            client_timeout: gw.header_timeout,
            upstream_timeout: gw.upstream_timeout,
        }
    }

    async fn serve(&mut self, gw: &Gateway, stopping: &mut watch::Receiver<bool>) -> End {
        if *stopping.borrow_and_update() {
            return End::Closed;
        }
        // The server's shutdown, waited for by one future for the connection's life: made
        // anew for every request, it locked the channel twice a request.
        // A second receiver answers "has it come?" without waiting, for a client whose
        // next request is always buffered already and so never waits in `read_head`.
        let check = stopping.clone();
        let mut stop = Stop { signal: Box::pin(stopping.changed()), seen: false };
        let mut deadline = Deadline::new(gw.header_timeout);
        // The head being served, out of `inbuf`, which reads on for its body.
        let mut head = BytesMut::with_capacity(8192);
        loop {
            // Shutting down: the connection closes between requests.
            if stop.seen || check.has_changed().unwrap_or(true) {
                return End::Closed;
            }
            deadline.set(Instant::now() + gw.header_timeout);
            let head_len = match self.read_head(&mut deadline, &mut stop).await {
                ReadHead::Complete(n) => n,
                ReadHead::Closed => return End::Closed,
                ReadHead::NotOurs => return End::HandOver,
            };
            // The head leaves `inbuf` without a copy: the buffers swap, and only what
            // followed the head (a body, requests sent ahead; mostly nothing) goes back.
            std::mem::swap(&mut head, &mut self.inbuf);
            self.inbuf.clear();
            self.inbuf.extend_from_slice(&head[head_len..]);
            head.truncate(head_len);
            match self.one_request(gw, &head, &mut deadline).await {
                Some(true) => {}
                Some(false) => return End::Closed,
                None => {
                    // Not this path's: the head goes back in front of what followed it.
                    let mut all = BytesMut::with_capacity(head.len() + self.inbuf.len());
                    all.extend_from_slice(&head);
                    all.extend_from_slice(&self.inbuf);
                    self.inbuf = all;
                    return End::HandOver;
                }
            }
        }
    }

    /// Reads until a whole request head is buffered, by the deadline (the header timeout,
    /// which also ends an idle kept-alive connection, as hyper's does).
    async fn read_head(&mut self, deadline: &mut Deadline, stop: &mut Stop<'_>) -> ReadHead {
        loop {
            if !self.inbuf.is_empty() {
                let seen = &self.inbuf[..self.inbuf.len().min(wire::H2_PREFACE.len())];
                if wire::H2_PREFACE.starts_with(seen) {
                    if seen.len() == wire::H2_PREFACE.len() {
                        return ReadHead::NotOurs;
                    }
                } else if let Some(end) = memchr::memmem::find(&self.inbuf, b"\r\n\r\n") {
                    // Where a head ends, found without parsing it: it is parsed once, after.
                    return ReadHead::Complete(end + 4);
                } else {
                    // No blank line yet, or lines that end in a bare LF: httparse decides.
                    let mut headers = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
                    match httparse::Request::new(&mut headers).parse(&self.inbuf) {
                        Ok(httparse::Status::Complete(n)) => return ReadHead::Complete(n),
                        Ok(httparse::Status::Partial) if self.inbuf.len() <= wire::MAX_HEAD => {}
                        // Malformed or too large: hyper answers it.
                        _ => return ReadHead::NotOurs,
                    }
                }
            }
            if self.inbuf.capacity() - self.inbuf.len() < 1024 {
                self.inbuf.reserve(8192);
            }
            tokio::select! {
                biased;
                read = self.stream.read_buf(&mut self.inbuf) => match read {
                    Ok(0) | Err(_) => return ReadHead::Closed,
                    Ok(_) => {}
                },
                () = deadline.passed() => return ReadHead::Closed,
                // Idle, the connection closes at once; a head begun is read and served first.
                _ = &mut stop.signal, if !stop.seen => {
                    stop.seen = true;
                    if self.inbuf.is_empty() {
                        return ReadHead::Closed;
                    }
                }
            }
        }
    }

    /// Serves the request whose head is `head`: `Some(keep-alive)`, or `None` when it is
    /// not this path's to serve (nothing was done with it then).
    async fn one_request(&mut self, gw: &Gateway, head: &[u8], deadline: &mut Deadline) -> Option<bool> {
        let mut headers = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        // The head must end where it was found to end (a bare-LF head could end sooner).
        match parsed.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            _ => return None,
        }
        let req = wire::admissible(&parsed, gw.cors)?;
        let index = gw.proxied_route(req.path)?;
        let remote = gw.route_upstreams[index].endpoints()?;

        // An id that is not text (obs-text bytes) is passed on as it is by hyper's path.
        let theirs = match req.header("x-request-id") {
            Some(id) => Some(std::str::from_utf8(id).ok()?),
            None => None,
        };

        let started = Instant::now();
        let _in_flight = gw.meters.start();
        let mut made = [0; kit::server::REQUEST_ID_LENGTH];
        let (request_id, made) = match theirs {
            Some(id) => (id, false),
            None => (kit::server::new_request_id(&mut made), true),
        };
        let span = kit::server::request_span_of(req.method, req.path, request_id, || req.header("traceparent"));
        self.unread = req.body_len;
        deadline.set(started + gw.upstream_timeout);
        let route = &gw.routes.routes()[index];
        let call = Call { route, remote, req: &req, request_id, made, started };
        let exchange = self.exchange(gw, &call, deadline);
        // Entering a span on every poll costs even when nothing is logged at its level.
        let outcome = if span.is_disabled() { exchange.await } else { exchange.instrument(span.clone()).await };
        let (status, keep) = match outcome {
            Outcome::Relayed { status, keep } => (status, keep),
            Outcome::Gone => return Some(false),
            Outcome::Refused(problem) => {
                let status = problem.status().as_u16();
                (status, self.refuse(problem, &req, request_id).await)
            }
        };
        let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        gw.account(index, req.method, status, started, &span);
        Some(keep)
    }

    /// Answers with the gateway's own problem; whether the connection may go on.
    async fn refuse(&mut self, problem: ApiError, req: &wire::Request<'_>, request_id: &str) -> bool {
        // A body the upstream never got is skipped when it is all here; otherwise the
        // connection closes rather than read it.
        if self.unread > 0 && self.inbuf.len() as u64 >= self.unread {
            self.inbuf.advance(self.unread as usize);
            self.unread = 0;
        }
        let keep = !req.close && self.unread == 0;
        let (head, body) = problem.into_response().into_parts();
        let body = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes()).unwrap_or_default();
        self.out.clear();
        wire::local_response(&mut self.out, &head, &body, request_id, req.is_head(), !keep, self.cors);
        self.stream.write_all(&self.out).await.is_ok() && keep
    }

    async fn exchange(&mut self, gw: &Gateway, call: &Call<'_>, deadline: &mut Deadline) -> Outcome {
        let Call { route, remote, req, request_id, made, started } = *call;
        let client = match admission::admit(gw, route, Some(self.peer), req.headers).await {
            Ok(admitted) => admitted.client.and_then(headers::forwarded_for),
            Err(problem) => return Outcome::Refused(problem),
        };
        let name = &route.upstream;
        let forwarding = Forwarding {
            client: client.as_ref(),
            made_request_id: made.then_some(Value::Text(request_id)),
            keep_proto: gw.proxies.trusts_any(),
        };
        let mut upward = Upward { client: self, name, req, forwarding };
        let sent = tokio::select! {
            biased;
            sent = remote.send(name, &mut upward, req.replayable(), started) => sent,
            () = deadline.passed() => return Outcome::Refused(Failure::Timeout(name.clone()).problem(route)),
        };
        let (upstream, key) = match sent {
            Ok(sent) => sent,
            Err(Sent::Failed(failure)) => return Outcome::Refused(failure.problem(route)),
            Err(Sent::ClientGone) => return Outcome::Gone,
        };
        self.relay(upstream, key, call, deadline).await
    }
}

/// The server's shutdown as one connection waits for it.
struct Stop<'a> {
    signal: Pin<Box<dyn Future<Output = Result<(), watch::error::RecvError>> + Send + 'a>>,
    /// It came (or the server is gone).
    seen: bool,
}

/// The client's connection for hyper: the bytes this path read first, then the socket.
struct Replay {
    pending: Bytes,
    io: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if !self.pending.is_empty() {
            let n = self.pending.len().min(buf.remaining());
            buf.put_slice(&self.pending[..n]);
            self.pending.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
