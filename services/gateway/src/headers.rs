//! The header rules, each once for both transports: which headers describe a connection
//! rather than the message (dropped both ways), which a client may not claim, what a
//! request carries upstream (`X-Forwarded-*`, `X-Request-Id`) and what an answer carries
//! back. hyper's transport keeps headers in a [`HeaderMap`]; the own one has the lines it
//! parsed and writes heads out as bytes ([`crate::wire::HeadWriter`]). The rules read
//! either through [`Headers`] and edit either through [`EditHeaders`].

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::cell::RefCell;
use std::net::IpAddr;

/// A head's headers, by name (any case).
pub(crate) trait Headers: Sync {
    fn value(&self, name: &str) -> Option<&[u8]>;
    /// Every line of a header, in order.
    fn values(&self, name: &str) -> impl Iterator<Item = &[u8]>;
}

/// A head on its way through the gateway: a rule keeps some of its lines, then adds its own.
pub(crate) trait EditHeaders: Headers {
    /// Keeps only the lines whose name `keep` accepts. Called once, before any `add`.
    fn retain(&mut self, keep: impl Fn(&str) -> bool);
    /// Adds a line; the head has none of that name (`retain` dropped them, or it never had).
    fn add(&mut self, name: &HeaderName, value: Value<'_>);
}

/// A value a rule adds, in whichever form it has it (so neither transport copies it twice).
#[derive(Clone, Copy)]
pub(crate) enum Value<'a> {
    Static(&'static str),
    Header(&'a HeaderValue),
    Text(&'a str),
    /// The value of another header of the same head (`X-Forwarded-Host` is the `Host`).
    CopyOf(&'static str),
}

impl Headers for HeaderMap {
    fn value(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(HeaderValue::as_bytes)
    }

    fn values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.get_all(name).iter().map(HeaderValue::as_bytes)
    }
}

impl EditHeaders for HeaderMap {
    fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        // Most heads lose nothing: a look at each name costs less than removals.
        if self.keys().all(|name| keep(name.as_str())) {
            return;
        }
        let dropped: Vec<HeaderName> = self.keys().filter(|name| !keep(name.as_str())).cloned().collect();
        for name in dropped {
            self.remove(name);
        }
    }

    fn add(&mut self, name: &HeaderName, value: Value<'_>) {
        let value = match value {
            Value::Static(text) => HeaderValue::from_static(text),
            Value::Header(value) => value.clone(),
            Value::Text(text) => match HeaderValue::from_str(text) {
                Ok(value) => value,
                Err(_) => return,
            },
            Value::CopyOf(other) => match self.get(other) {
                Some(value) => value.clone(),
                None => return,
            },
        };
        self.insert(name.clone(), value);
    }
}

impl Headers for [httparse::Header<'_>] {
    fn value(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }

    fn values(&self, name: &str) -> impl Iterator<Item = &[u8]> {
        self.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
    }
}

/// Headers that describe one connection, not the message (RFC 9110, section 7.6.1): both
/// ways through the gateway drop them, and the headers a `Connection` header names.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The header names a head's `Connection` lines list, beyond the standard tokens (which
/// name no header to drop, or one dropped anyway). Mostly none, and then no allocation.
fn named_by_connection(head: &(impl Headers + ?Sized)) -> Vec<Box<str>> {
    let mut named = Vec::new();
    for value in head.values("connection") {
        let value = std::str::from_utf8(value).unwrap_or("");
        named.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
                .map(Box::from),
        );
    }
    named
}

/// Whether a header describes the connection it came on: hop-by-hop, or named by `Connection`.
fn is_connections(name: &str, named: &[Box<str>]) -> bool {
    is_hop_by_hop(name) || named.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Headers by which a client could tell services what only a proxy may: `Forwarded` and
/// `X-Real-IP` always (the gateway speaks through `X-Forwarded-For`), and
/// `X-Forwarded-Proto` unless a trusted proxy in front set it.
pub(crate) fn is_forged_claim(name: &str, keep_proto: bool) -> bool {
    name.eq_ignore_ascii_case("forwarded")
        || name.eq_ignore_ascii_case("x-real-ip")
        || (!keep_proto && name.eq_ignore_ascii_case("x-forwarded-proto"))
}

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the gateway tells the upstream about a request, beside the client's own headers.
pub(crate) struct Forwarding<'a> {
    /// The client's address ([`forwarded_for`]): it replaces any `X-Forwarded-For` sent.
    pub client: Option<&'a HeaderValue>,
    /// The request id, when the gateway made it (the client's passes as it is).
    pub made_request_id: Option<Value<'a>>,
    /// `X-Forwarded-Proto` passes: a trusted proxy in front set it (TLS ended there).
    pub keep_proto: bool,
}

/// The request as the upstream gets it: hop-by-hop headers and forged claims gone,
/// `X-Forwarded-For` (the client), `-Proto` (unless kept) and `-Host` (the `Host`) set,
/// and the request id the gateway made.
pub(crate) fn forward_request(head: &mut impl EditHeaders, fwd: &Forwarding<'_>) {
    let has_host = head.value("host").is_some();
    let proto_kept = fwd.keep_proto && head.value("x-forwarded-proto").is_some();
    let named = named_by_connection(head);
    let replaced_for = fwd.client.is_some();
    head.retain(|name| {
        !(is_connections(name, &named)
            || is_forged_claim(name, fwd.keep_proto)
            || (replaced_for && name.eq_ignore_ascii_case("x-forwarded-for"))
            || (has_host && name.eq_ignore_ascii_case("x-forwarded-host")))
    });
    if let Some(client) = fwd.client {
        head.add(&X_FORWARDED_FOR, Value::Header(client));
    }
    if !proto_kept {
        head.add(&X_FORWARDED_PROTO, Value::Static("http"));
    }
    if has_host {
        head.add(&X_FORWARDED_HOST, Value::CopyOf("host"));
    }
    if let Some(id) = fwd.made_request_id {
        head.add(&X_REQUEST_ID, id);
    }
}

/// A request without `Host` (HTTP/1.0, HTTP/2) names the endpoint it goes to; set on
/// each try, as endpoints differ.
pub(crate) fn host_for_endpoint(head: &mut impl EditHeaders, authority: &str) {
    if head.value("host").is_none() && !authority.is_empty() {
        head.add(&header::HOST, Value::Text(authority));
    }
}

/// An answer as the client gets it: the upstream's connection headers gone, and the
/// request id when the upstream sent none (the gateway's own answers get it too).
pub(crate) fn forward_answer(head: &mut impl EditHeaders, request_id: Value<'_>) {
    let named = named_by_connection(head);
    head.retain(|name| !is_connections(name, &named));
    if head.value("x-request-id").is_none() {
        head.add(&X_REQUEST_ID, request_id);
    }
}

/// The client's address as a header value. Formatting an address cost more than the rest
/// of the header work; each thread keeps the last one it made, and a client's requests
/// come on one connection, to one thread, so most of them reuse it.
pub(crate) fn forwarded_for(ip: IpAddr) -> Option<HeaderValue> {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((known, value)) if *known == ip => Some(value.clone()),
        _ => {
            let value = HeaderValue::try_from(ip.to_string()).ok()?;
            *last = Some((ip, value.clone()));
            Some(value)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn an_answer_loses_hop_by_hop_headers_and_those_connection_names() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("authorization", "Bearer t"),
        ]);
        forward_answer(&mut headers, Value::Static("id-1"));
        assert_eq!(headers.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["authorization", "x-request-id"]);
        assert_eq!(headers["x-request-id"], "id-1");

        let mut theirs = map(&[("upgrade", "websocket"), ("x-request-id", "theirs")]);
        forward_answer(&mut theirs, Value::Static("id-1"));
        assert_eq!(theirs.keys().collect::<Vec<_>>(), ["x-request-id"]);
        assert_eq!(theirs["x-request-id"], "theirs", "the upstream's id stays");
    }

    #[test]
    fn a_request_upstream_says_who_asked_and_nothing_a_client_may_not_claim() {
        let mut headers = map(&[
            ("host", "gw.example"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
        ]);
        let client = HeaderValue::from_static("192.0.2.1");
        let fwd = Forwarding { client: Some(&client), made_request_id: Some(Value::Text("id-1")), keep_proto: false };
        forward_request(&mut headers, &fwd);
        host_for_endpoint(&mut headers, "users:8081");
        let mut seen: Vec<_> = headers.iter().map(|(n, v)| format!("{n}: {}", v.to_str().unwrap())).collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                "host: gw.example",
                "x-forwarded-for: 192.0.2.1",
                "x-forwarded-host: gw.example",
                "x-forwarded-proto: http",
                "x-request-id: id-1"
            ]
        );

        // No Host (HTTP/2, HTTP/1.0): the endpoint's; a trusted proxy's proto passes.
        let mut headers = map(&[("x-forwarded-proto", "https"), ("x-request-id", "theirs")]);
        forward_request(&mut headers, &Forwarding { client: None, made_request_id: None, keep_proto: true });
        host_for_endpoint(&mut headers, "users:8081");
        assert_eq!(
            (&headers["host"], &headers["x-forwarded-proto"], &headers["x-request-id"]),
            (
                &HeaderValue::from_static("users:8081"),
                &HeaderValue::from_static("https"),
                &HeaderValue::from_static("theirs")
            )
        );
        assert!(!headers.contains_key("x-forwarded-host"));
    }

    #[test]
    fn forwarded_for_follows_the_address() {
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(forwarded_for(one).unwrap(), "192.0.2.1");
        assert_eq!(forwarded_for(one).unwrap(), "192.0.2.1");
        assert_eq!(forwarded_for(two).unwrap(), "2001:db8::2");
        assert_eq!(forwarded_for(one).unwrap(), "192.0.2.1");
    }
}
