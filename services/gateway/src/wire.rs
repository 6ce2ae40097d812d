//! HTTP/1.1 as the gateway's own transport speaks it (see [`crate::edge`]): which requests
//! it takes, the heads it writes upstream and back (edited by the shared [`headers`]
//! rules), and where a message's body ends. Pure functions over bytes; [`httparse`] does
//! the parsing.

use crate::headers::{self, EditHeaders, Forwarding, Headers, Value};
use std::fmt::Write as _;

/// Headers a message may have on this path; more, and hyper takes the connection.
pub const MAX_HEADERS: usize = 64;
/// The largest head this path reads; a longer one goes to hyper, which answers 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// How an HTTP/2 connection with prior knowledge starts.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A request this path takes: what the rest of it needs to know.
pub struct Request<'h> {
    pub method: &'h str,
    /// The request target as sent: path and query.
    pub target: &'h str,
    /// The path alone (the target without its query).
    pub path: &'h str,
    pub headers: &'h [httparse::Header<'h>],
    /// The body's length (`Content-Length`; 0 without one).
    pub body_len: u64,
    /// The client asked to close the connection after this exchange.
    pub close: bool,
}

impl Request<'_> {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.value(name)
    }

    /// Whether it may be sent again (see [`crate::retry`]).
    pub fn replayable(&self) -> bool {
        crate::retry::replayable(self.method, self.body_len == 0)
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Whether a target has only the characters RFC 3986 allows in a path and query, all of
/// which `http::Uri` takes too; only other targets pay for its (allocating) parse.
fn plain_target(target: &str) -> bool {
    const ALLOWED: [bool; 256] = {
        let mut table = [false; 256];
        let extra = b"-._~%!$&'()*+,;=:@/?";
        let mut b = 0;
        while b < 256 {
            table[b] = (b as u8).is_ascii_alphanumeric();
            b += 1;
        }
        let mut i = 0;
        while i < extra.len() {
            table[extra[i] as usize] = true;
            i += 1;
        }
        table
    };
    target.bytes().all(|b| ALLOWED[usize::from(b)])
}

/// The parsed request, if this path takes it: HTTP/1.1 with an origin-form target that
/// `http::Uri` accepts, a body framed by one `Content-Length` (or none), no upgrade, no
/// `Expect`, no `Origin` when CORS applies, and a `Connection` that says at most
/// `keep-alive` or `close`. Anything else goes to hyper, which answers it as the rest of
/// the gateway does; this path only shortens the common way.
pub fn admissible<'h>(req: &'h httparse::Request<'h, 'h>, cors: bool) -> Option<Request<'h>> {
    if req.version != Some(1) {
        return None;
    }
    let (method, target) = (req.method?, req.path?);
    // A fragment is hyper's to drop (routing must not see it); CONNECT asks for a tunnel.
    if method == "CONNECT"
        || !target.starts_with('/')
        || target.contains('#')
        || !(plain_target(target) || http::uri::PathAndQuery::try_from(target).is_ok())
    {
        return None;
    }
    let mut body_len = None;
    let mut close = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value).ok().filter(|v| v.bytes().all(|b| b.is_ascii_digit()))?;
            if body_len.is_some() {
                return None;
            }
            body_len = Some(n.parse::<u64>().ok()?);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in std::str::from_utf8(h.value).ok()?.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case("keep-alive") && !token.is_empty() {
                    return None;
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
            || (cors && name.eq_ignore_ascii_case("origin"))
        {
            return None;
        }
    }
    // No Host, or several: hyper's path answers the same 400 (the rule is admission's).
    if crate::admission::host_problem(true, hosts).is_some() {
        return None;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Some(Request { method, target, path, headers: req.headers, body_len: body_len.unwrap_or(0), close })
}

/// Writes the head the upstream gets into `out`: the request line, then the headers as
/// the shared rule forwards them ([`headers::forward_request`]), `Host` being the
/// endpoint's `authority` when the request has none.
pub fn upstream_head(out: &mut Vec<u8>, req: &Request<'_>, fwd: &Forwarding<'_>, authority: &str) {
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut head = HeadWriter { out, source: req.headers, drop_length: false };
    headers::forward_request(&mut head, fwd);
    headers::host_for_endpoint(&mut head, authority);
    out.extend_from_slice(b"\r\n");
}

/// A head's lines in order, to copy.
pub(crate) trait Lines: Headers {
    fn lines(&self) -> impl Iterator<Item = (&str, &[u8])>;
}

impl Lines for [httparse::Header<'_>] {
    fn lines(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.iter().map(|h| (h.name, h.value))
    }
}

impl Lines for http::HeaderMap {
    fn lines(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.iter().map(|(name, value)| (name.as_str(), value.as_bytes()))
    }
}

/// A head written out as a shared rule edits it ([`EditHeaders`]): the lines it keeps,
/// copied from `source` in order, then those it adds.
pub(crate) struct HeadWriter<'a, S: ?Sized> {
    out: &'a mut Vec<u8>,
    source: &'a S,
    /// `Content-Length` is dropped too: the body goes with another framing, or the
    /// length is written anew.
    drop_length: bool,
}

impl<S: Lines + ?Sized> Headers for HeadWriter<'_, S> {
    fn value(&self, name: &str) -> Option<&[u8]> {
        self.source.value(name)
    }

    fn values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.source.values(name)
    }
}

impl<S: Lines + ?Sized> EditHeaders for HeadWriter<'_, S> {
    fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        for (name, value) in self.source.lines() {
            if keep(name) && !(self.drop_length && name.eq_ignore_ascii_case("content-length")) {
                put_header(self.out, name.as_bytes(), value);
            }
        }
    }

    fn add(&mut self, name: &http::HeaderName, value: Value<'_>) {
        let value = match value {
            Value::Static(text) => text.as_bytes(),
            Value::Header(value) => value.as_bytes(),
            Value::Text(text) => text.as_bytes(),
            Value::CopyOf(other) => match self.source.value(other) {
                Some(value) => value,
                None => return,
            },
        };
        put_header(self.out, name.as_str().as_bytes(), value);
    }
}

fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How a message's body is delimited (RFC 9112, section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// Whether `buf` begins with a whole response head that is not an interim 1xx answer,
/// found without parsing it (the relay parses it once, and answers 502 if it is broken).
/// `false` leaves the question to httparse: a head not complete yet, a 1xx, or lines
/// that end in a bare LF.
pub fn final_head_is_buffered(buf: &[u8]) -> bool {
    buf.len() > 12
        && buf.starts_with(b"HTTP/1.")
        && buf[9] != b'1'
        && memchr::memmem::find(&buf[12..], b"\r\n\r\n").is_some()
}

/// The upstream response as this path relays it.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub framing: Framing,
    /// The upstream said it closes the connection after this response.
    pub closes: bool,
}

/// Reads what the relay needs from a response head; `None` when its framing is broken
/// (two different lengths, say), which the gateway answers with 502.
pub fn answer(response: &httparse::Response<'_, '_>, request_was_head: bool) -> Option<Answer> {
    let status = response.code?;
    let mut length = None;
    let mut chunked = None;
    let mut closes = response.version == Some(0);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value).ok()?.trim();
            if !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n = n.parse::<u64>().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only when it is the last coding (a length beside it is ignored).
            let last = std::str::from_utf8(h.value).ok()?.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            let value = std::str::from_utf8(h.value).unwrap_or("");
            closes |= value.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
    }
    let framing = if request_was_head || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    // A length and a coding both: relayed by the coding, and the connection not trusted again.
    let ambiguous = length.is_some() && chunked.is_some();
    Some(Answer { status, framing, closes: closes || ambiguous || framing == Framing::UntilClose })
}

/// Writes the head the client gets into `out`: the upstream's status and end-to-end
/// headers, the framing this path relays the body with, the request id when the
/// upstream sent none, a `Date` (as hyper adds), and `Connection: close` when `close`.
pub fn client_head(
    out: &mut Vec<u8>,
    response: &httparse::Response<'_, '_>,
    answer: &Answer,
    request_id: &str,
    close: bool,
    cors: bool,
) {
    let status = answer.status;
    let reason = response.reason.filter(|r| !r.is_empty()).or_else(|| canonical_reason(status)).unwrap_or("");
    // A status is three digits (httparse checks), written without `fmt`'s machinery.
    let digit = |n: u16| b'0' + (n % 10) as u8;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[digit(status / 100), digit(status / 10), digit(status), b' ']);
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let drop_length = matches!(answer.framing, Framing::Chunked | Framing::UntilClose);
    let mut head = HeadWriter { out, source: response.headers, drop_length };
    headers::forward_answer(&mut head, Value::Text(request_id));
    if answer.framing == Framing::Chunked {
        put_header(out, b"transfer-encoding", b"chunked");
    }
    finish_head(out, response.headers.value("date").is_some(), close, cors);
}

/// What tower-http's CORS layer adds to every answer (its default `Vary`), so that caches
/// keep answers to CORS requests apart; this path takes no CORS request, but answers the
/// same URLs.
const CORS_VARY: &[u8] = b"origin, access-control-request-method, access-control-request-headers";

/// What hyper's server and the CORS layer add to an answer, as hyper's transport has it:
/// the CORS `Vary`, a `Date`, and `Connection: close` when the connection ends.
fn finish_head(out: &mut Vec<u8>, has_date: bool, close: bool, cors: bool) {
    if cors {
        put_header(out, b"vary", CORS_VARY);
    }
    if !has_date {
        put_header(out, b"date", httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    }
    if close {
        put_header(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a response the gateway made itself (a refusal) into `out`, as hyper would
/// serialize it: its headers, `Content-Length`, and no body for a HEAD request.
pub fn local_response(
    out: &mut Vec<u8>,
    head: &http::response::Parts,
    body: &[u8],
    request_id: &str,
    head_only: bool,
    close: bool,
    cors: bool,
) {
    let status = head.status;
    let _ = write!(Line(out), "HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut lines = HeadWriter { out, source: &head.headers, drop_length: true };
    headers::forward_answer(&mut lines, Value::Text(request_id));
    let _ = write!(Line(out), "content-length: {}\r\n", body.len());
    finish_head(out, head.headers.contains_key(http::header::DATE), close, cors);
    if !head_only {
        out.extend_from_slice(body);
    }
}

fn canonical_reason(status: u16) -> Option<&'static str> {
    http::StatusCode::from_u16(status).ok()?.canonical_reason()
}

/// `write!` into a byte buffer.
struct Line<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Line<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Finds where a chunked body ends as its bytes go by, so the relay can pass them on
/// unchanged and know when the connection is free for the next response.
#[derive(Debug, Default)]
pub struct Chunks {
    state: ChunkState,
    size: u64,
    /// The size line has a digit (an empty one is not chunked encoding).
    sized: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk's size.
    #[default]
    Size,
    /// After the size: an extension, up to the line's end.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// The bytes are not chunked encoding.
#[derive(Debug, PartialEq, Eq)]
pub struct BadChunks;

impl Chunks {
    /// Takes the next bytes of the body; `Some(n)`: the body ends after the first `n`.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, BadChunks> {
        use ChunkState::*;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                Size => match (b as char).to_digit(16) {
                    Some(d) => {
                        self.sized = true;
                        self.size = self.size.checked_mul(16).and_then(|s| s.checked_add(d.into())).ok_or(BadChunks)?;
                    }
                    None if !self.sized => return Err(BadChunks),
                    None if b == b'\r' => self.state = SizeLf,
                    None if b == b';' || b == b' ' || b == b'\t' => self.state = Extension,
                    None => return Err(BadChunks),
                },
                Extension => match b {
                    b'\r' => self.state = SizeLf,
                    b'\n' => return Err(BadChunks),
                    _ => {}
                },
                SizeLf => {
                    if b != b'\n' {
                        return Err(BadChunks);
                    }
                    self.state = if self.size == 0 { TrailerStart } else { Data };
                }
                Data => {
                    let take = self.size.min((bytes.len() - i) as u64);
                    self.size -= take;
                    i += take as usize;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr => self.state = if b == b'\r' { DataLf } else { return Err(BadChunks) },
                DataLf => {
                    if b != b'\n' {
                        return Err(BadChunks);
                    }
                    self.state = Size;
                    self.sized = false;
                }
                TrailerStart => self.state = if b == b'\r' { EndLf } else { TrailerLine },
                TrailerLine => {
                    if b == b'\r' {
                        self.state = TrailerLf;
                    }
                }
                TrailerLf => self.state = if b == b'\n' { TrailerStart } else { return Err(BadChunks) },
                EndLf => {
                    if b != b'\n' {
                        return Err(BadChunks);
                    }
                    self.state = Done;
                    return Ok(Some(i + 1));
                }
                Done => return Ok(Some(i)),
            }
            i += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_head_is_found_without_parsing_and_anything_else_is_left_to_httparse() {
        assert!(final_head_is_buffered(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
        assert!(final_head_is_buffered(b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert!(!final_head_is_buffered(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"), "not complete");
        assert!(!final_head_is_buffered(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"), "interim");
        assert!(!final_head_is_buffered(b"HTTP/1.1 200 OK\ncontent-length: 0\n\n"), "bare LF");
        assert!(!final_head_is_buffered(b"HTTP/1.1 200"));
        assert!(!final_head_is_buffered(b""));
    }

    fn parse<'h>(text: &'h [u8], headers: &'h mut [httparse::Header<'h>]) -> httparse::Request<'h, 'h> {
        let mut req = httparse::Request::new(headers);
        assert!(req.parse(text).unwrap().is_complete());
        req
    }

    #[test]
    fn plain_requests_are_taken_and_the_unusual_go_to_hyper() {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let req = parse(b"GET /api/v1/users/me?x=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", &mut h);
        let taken = admissible(&req, false).expect("a plain GET is taken");
        assert_eq!(
            (taken.path, taken.target, taken.body_len, taken.close),
            ("/api/v1/users/me", "/api/v1/users/me?x=1", 0, false)
        );
        assert!(taken.replayable());

        let mut h = [httparse::EMPTY_HEADER; 16];
        let req = parse(b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nConnection: close\r\n\r\n", &mut h);
        let taken = admissible(&req, false).unwrap();
        assert_eq!((taken.body_len, taken.close, taken.replayable()), (12, true, false));

        for text in [
            &b"GET /e HTTP/1.0\r\n\r\n"[..],
            b"GET http://a/e HTTP/1.1\r\n\r\n",
            b"POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST /e HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST /e HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"GET /e HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"GET /e HTTP/1.1\r\nConnection: x-secret\r\n\r\n",
        ] {
            let mut h = [httparse::EMPTY_HEADER; 16];
            let req = parse(text, &mut h);
            assert!(admissible(&req, false).is_none(), "{}", String::from_utf8_lossy(text));
        }
        // Targets that `http::Uri` refuses are hyper's to refuse; the others it takes.
        for target in ["/e?q=a%20b&c=[1]|{x}", "/e#frag", "/a\\b", "/a<b>", "/a^`b", "/e?q=\"x\"", "/%zz"] {
            let text = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            let mut h = [httparse::EMPTY_HEADER; 16];
            let Ok(httparse::Status::Complete(_)) = httparse::Request::new(&mut h).parse(text.as_bytes()) else {
                continue;
            };
            let mut h = [httparse::EMPTY_HEADER; 16];
            let taken = admissible(&parse(text.as_bytes(), &mut h), false).is_some();
            let valid = http::uri::PathAndQuery::try_from(target).is_ok();
            assert_eq!(taken, valid && !target.contains('#'), "{target}");
        }
        assert!(plain_target("/api/v1/events?q=jazz&city=kazan%20") && !plain_target("/e?q=[1]"));

        let mut h = [httparse::EMPTY_HEADER; 16];
        let req = parse(b"GET /e HTTP/1.1\r\nHost: a\r\nOrigin: https://x\r\n\r\n", &mut h);
        assert!(admissible(&req, false).is_some(), "no CORS: an origin changes nothing");
        assert!(admissible(&req, true).is_none(), "CORS: hyper's path with its CORS layer");
    }

    #[test]
    fn the_upstream_head_is_forwarded_like_the_hyper_path_does() {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let req = parse(
            b"GET /a?b HTTP/1.1\r\nHost: gw.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\n\
              Keep-Alive: timeout=5\r\nConnection: keep-alive\r\nAuthorization: Bearer t\r\n\
              Forwarded: for=6.6.6.6;proto=https\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n",
            &mut h,
        );
        let req = admissible(&req, false).unwrap();
        let mut out = Vec::new();
        let client = http::HeaderValue::from_static("192.0.2.1");
        let fwd = Forwarding { client: Some(&client), made_request_id: Some(Value::Text("id-1")), keep_proto: false };
        upstream_head(&mut out, &req, &fwd, "users:8081");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a?b HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer t\r\nx-forwarded-for: 192.0.2.1\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: gw.example\r\nx-request-id: id-1\r\n\r\n",
            "what a client claims about proxies is replaced or dropped"
        );

        // Behind a trusted proxy that ended TLS, its X-Forwarded-Proto passes.
        let mut h = [httparse::EMPTY_HEADER; 16];
        let req =
            parse(b"GET / HTTP/1.1\r\nHost: gw\r\nX-Forwarded-Proto: https\r\nX-Request-Id: theirs\r\n\r\n", &mut h);
        let req = admissible(&req, false).unwrap();
        let mut out = Vec::new();
        let fwd = Forwarding { client: None, made_request_id: None, keep_proto: true };
        upstream_head(&mut out, &req, &fwd, "users:8081");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nHost: gw\r\nX-Forwarded-Proto: https\r\nX-Request-Id: theirs\r\nx-forwarded-host: gw\r\n\r\n"
        );
    }

    #[test]
    fn requests_without_one_host_go_to_the_path_that_refuses_them() {
        for head in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"] {
            let mut h = [httparse::EMPTY_HEADER; 16];
            let req = parse(head, &mut h);
            assert!(admissible(&req, false).is_none(), "{}", String::from_utf8_lossy(head));
        }
    }

    fn answer_of(text: &[u8], head: bool) -> Option<Answer> {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut h);
        assert!(response.parse(text).unwrap().is_complete());
        answer(&response, head)
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let framing = |text: &[u8], head| answer_of(text, head).map(|a| a.framing);
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false), Some(Framing::Length(5)));
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true), Some(Framing::Empty));
        assert_eq!(framing(b"HTTP/1.1 204 No Content\r\n\r\n", false), Some(Framing::Empty));
        assert_eq!(framing(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", false), Some(Framing::Empty));
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n", false),
            Some(Framing::Chunked)
        );
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false), Some(Framing::UntilClose));
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\n\r\n", false), Some(Framing::UntilClose));
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", false), None);
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", false), None);
        assert!(
            answer_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false)
                .unwrap()
                .closes,
            "a length beside a coding: the connection is not trusted again"
        );
        let until_close = answer_of(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert!(until_close.closes, "a body up to the close leaves no connection to reuse");
        assert!(answer_of(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false).unwrap().closes);
        assert!(!answer_of(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false).unwrap().closes);
    }

    #[test]
    fn the_client_head_drops_hop_by_hop_headers_and_adds_the_request_id() {
        let text = b"HTTP/1.1 201 Created\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
                     Transfer-Encoding: chunked\r\nDate: Thu, 26 Nov 2026 08:00:00 GMT\r\nLocation: /e/1\r\n\r\n";
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut h);
        response.parse(text).unwrap();
        let answer = answer(&response, false).unwrap();
        let mut out = Vec::new();
        client_head(&mut out, &response, &answer, "id-1", false, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 201 Created\r\nDate: Thu, 26 Nov 2026 08:00:00 GMT\r\nLocation: /e/1\r\n\
             x-request-id: id-1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn a_local_answer_is_serialized_with_length_and_no_body_for_head() {
        let (head, ()) = http::Response::builder()
            .status(429)
            .header("content-type", "application/problem+json")
            .header("retry-after", "1")
            .header("date", "Thu, 26 Nov 2026 08:00:00 GMT")
            .body(())
            .unwrap()
            .into_parts();
        let mut out = Vec::new();
        local_response(&mut out, &head, b"{}", "id-2", false, false, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
             date: Thu, 26 Nov 2026 08:00:00 GMT\r\nx-request-id: id-2\r\ncontent-length: 2\r\n\r\n{}"
        );
        let mut out = Vec::new();
        local_response(&mut out, &head, b"{}", "id-2", true, true, true);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(
                "x-request-id: id-2\r\ncontent-length: 2\r\n\
                 vary: origin, access-control-request-method, access-control-request-headers\r\nconnection: close\r\n\r\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_end_of_a_chunked_body_is_found_however_the_bytes_arrive() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut whole = Chunks::default();
        assert_eq!(whole.feed(body), Ok(Some(body.len())));
        // Byte by byte, and with the next response's bytes behind it.
        let mut split = Chunks::default();
        for (i, b) in body.iter().enumerate() {
            let end = split.feed(std::slice::from_ref(b)).unwrap();
            assert_eq!(end.is_some(), i == body.len() - 1, "at byte {i}");
        }
        let mut more = body.to_vec();
        more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(Chunks::default().feed(&more), Ok(Some(body.len())));
        assert_eq!(Chunks::default().feed(b"0\r\n\r\n"), Ok(Some(5)));
        assert_eq!(Chunks::default().feed(b"zz\r\n"), Err(BadChunks));
        assert_eq!(Chunks::default().feed(b"3\r\nabcX"), Err(BadChunks));
        assert_eq!(Chunks::default().feed(b"ffffffffffffffffff\r\n"), Err(BadChunks));
        assert_eq!(Chunks::default().feed(b"3\r\nab"), Ok(None));
        assert_eq!(Chunks::default().feed(b"\r\n"), Err(BadChunks), "a size line needs a size");
    }
}
