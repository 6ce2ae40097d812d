//! hyper's transport to an upstream: a request and its answer as objects over hyper's
//! HTTP/1 client connections (each driven by a task of its own), which the shared pool
//! keeps. One try per [`Exchange::try_once`]; which endpoint and connection, and whether
//! to try again, is [`Remote::send`]'s.

use crate::deadline::Deadline;
use crate::failure::Failure;
use crate::pool::{self, Idle, Key, Pooled};
use crate::retry::{self, Tried};
use crate::upstream::{Endpoint, Exchange, Remote};
use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::LocalKey;
use std::time::Duration;
use tokio::time::Instant;

type Sender = http1::SendRequest<Body>;

impl Pooled for Sender {
    fn is_open(&self) -> bool {
        !self.is_closed()
    }

    fn idle() -> &'static LocalKey<RefCell<Idle<Self>>> {
        thread_local! { static IDLE: RefCell<Idle<Sender>> = RefCell::default(); }
        &IDLE
    }
}

/// Sends `req` to one of `remote`'s endpoints; the answer's body may go silent for at most
/// `timeout` at a time.
pub(crate) async fn send(
    remote: &Remote,
    name: &str,
    req: http::Request<Body>,
    timeout: Duration,
) -> Result<http::Response<Body>, Failure> {
    let (mut parts, body) = req.into_parts();
    parts.uri = origin_form(&parts.uri);
    let replayable = retry::replayable(parts.method.as_str(), http_body::Body::size_hint(&body).exact() == Some(0));
    let mut exchange = HyperExchange { name, parts: Some(parts), body: Some(body), replayable, timeout };
    remote.send(name, &mut exchange, replayable, Instant::now()).await
}

struct HyperExchange<'a> {
    name: &'a str,
    /// The request's head and body while they are not sent: a replayable request keeps
    /// its head for another try (its body is empty).
    parts: Option<http::request::Parts>,
    body: Option<Body>,
    replayable: bool,
    timeout: Duration,
}

impl Exchange for HyperExchange<'_> {
    type Conn = Sender;
    type Answer = http::Response<Body>;
    type Error = Failure;

    async fn connect(&mut self, addr: &str) -> std::io::Result<Sender> {
        let stream = pool::dial(addr).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    async fn try_once(
        &mut self,
        mut sender: Sender,
        reused: bool,
        key: Key,
        endpoint: &Endpoint,
    ) -> Result<http::Response<Body>, Tried<Failure>> {
        if sender.ready().await.is_err() {
            return Err(Tried::NotSent);
        }
        // The head is copied only when another try may still need it.
        let head = if self.replayable && reused { self.parts.clone() } else { self.parts.take() };
        let body = if self.replayable { Some(Body::empty()) } else { self.body.take() };
        let (Some(mut head), Some(body)) = (head, body) else {
            return Err(Tried::Failed(Failure::Broken(self.name.to_owned(), "the request was sent already".into())));
        };
        crate::headers::host_for_endpoint(&mut head.headers, endpoint.authority());
        match sender.try_send_request(http::Request::from_parts(head, body)).await {
            Ok(response) => Ok(returning(key, sender, response, self.timeout)),
            Err(mut e) => match e.take_message() {
                // Not sent: the connection closed under it.
                Some(unsent) => {
                    let (head, body) = unsent.into_parts();
                    (self.parts, self.body) = (Some(head), Some(body));
                    Err(Tried::NotSent)
                }
                None => Err(self.tried(e.into_error())),
            },
        }
    }
}

impl HyperExchange<'_> {
    fn tried(&self, e: hyper::Error) -> Tried<Failure> {
        if caused_by::<http_body_util::LengthLimitError>(&e) {
            Tried::Failed(Failure::BodyTooLarge)
        } else if caused_by::<ClientBodyError>(&e) {
            Tried::Failed(Failure::ClientBody)
        } else if closed_unanswered(&e) {
            Tried::Unanswered(e.to_string())
        } else {
            Tried::Failed(Failure::Broken(self.name.to_owned(), e.to_string()))
        }
    }
}

/// Whether the connection closed (or was reset) before a whole answer head came.
fn closed_unanswered(e: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let io_kind = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()).map(|e| e.kind());
    e.is_incomplete_message()
        || e.is_canceled()
        || matches!(io_kind, Some(BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof))
}

/// The request target an origin server expects: path and query only (RFC 9112, 3.2.1).
fn origin_form(uri: &http::Uri) -> http::Uri {
    match uri.path_and_query() {
        Some(pq) => http::Uri::from(pq.clone()),
        None => http::Uri::from_static("/"),
    }
}

fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if err.is::<E>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// An error reading the client's body, marked so that a failed send can tell it from
/// the upstream's (see [`Failure::ClientBody`]).
#[derive(Debug, thiserror::Error)]
#[error("reading the client's body: {0}")]
pub(crate) struct ClientBodyError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The answer, its connection given back once its body is read to the end.
fn returning(key: Key, sender: Sender, response: http::Response<Incoming>, timeout: Duration) -> http::Response<Body> {
    if hyper::body::Body::is_end_stream(response.body()) {
        pool::give_back(key, sender, Instant::now());
        return response.map(Body::new);
    }
    response.map(|inner| Body::new(Returning { inner, back: Some((key, sender)), timeout, deadline: None }))
}

/// An answer's body on its way to the client: the upstream may go silent for at most
/// `timeout` at a time (then the answer is cut off, as the own transport cuts it).
struct Returning {
    inner: Incoming,
    back: Option<(Key, Sender)>,
    timeout: Duration,
    /// Made the first time the body has to be waited for (small bodies never are).
    deadline: Option<Deadline>,
}

/// The upstream sent no more of an answer's body within the upstream timeout.
#[derive(Debug, thiserror::Error)]
#[error("no more of the body in time")]
struct Stalled;

impl hyper::body::Body for Returning {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this.deadline.get_or_insert_with(|| Deadline::new(timeout));
                return match deadline.poll_passed(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Stalled.into()))),
                    Poll::Pending => Poll::Pending,
                };
            }
        };
        if let Some(deadline) = &mut this.deadline {
            deadline.set(Instant::now() + this.timeout);
        }
        let done = match &frame {
            None => true,
            Some(Ok(_)) => this.inner.is_end_stream(),
            Some(Err(_)) => false,
        };
        if done && let Some((key, sender)) = this.back.take() {
            pool::give_back(key, sender, Instant::now());
        }
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
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

    #[test]
    fn the_upstream_gets_path_and_query() {
        let uri: http::Uri = "http://gateway.example/api/v1/events?q=jazz&city=kazan".parse().unwrap();
        assert_eq!(origin_form(&uri).to_string(), "/api/v1/events?q=jazz&city=kazan");
        assert_eq!(origin_form(&"/healthz".parse().unwrap()).to_string(), "/healthz");
    }
}
