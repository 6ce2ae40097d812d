//! Fetching what users point the platform at (calendars, feeds): outbound HTTP that cannot
//! be turned against the platform's own network (OWASP's SSRF prevention cheat sheet).
//!
//! - Only `http` and `https`, at most [`Limits::redirects`] redirects, each one checked again.
//! - Every address a name resolves to must be public ([`non_public`]); the checked addresses
//!   are the ones the connection uses, so a name cannot resolve to another address between
//!   check and connect (DNS rebinding). Address literals in URLs are checked the same way.
//! - Hosts that an operator allows with `VECHE_FETCH_ALLOW_HOSTS` ([`AllowList`]) skip the
//!   address check, on the ports it names.
//! - A body is read up to [`Limits::max_bytes`] after decompression (a gzip bomb stops
//!   there), within connect, read and total timeouts.
//! - No proxy from the environment: a proxy would resolve names where we cannot check them.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Why an address is not public, or `None` when it is.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() || a == 0 => "an unspecified address",
        (169, 254, _) => "a link-local address (cloud metadata lives there)",
        _ if ip.is_private() => "a private address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address, where some clouds keep metadata",
        _ if ip.is_multicast() => "a multicast address",
        _ if ip.is_broadcast() || a >= 240 => "a reserved address",
        (192, 0, 0) | (192, 0, 2) | (192, 88, 99) | (198, 51, 100) | (203, 0, 113) => {
            "a reserved or documentation address"
        }
        (198, 18..=19, _) => "a benchmarking address",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // An IPv4 address carried in an IPv6 one reaches the IPv4 network: judge the carried one.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let s = ip.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return non_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    Some(match s[0] {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() => "an unspecified address",
        0xfe80..=0xfebf => "a link-local address",
        0xfec0..=0xfeff => "a site-local address",
        0xfc00..=0xfdff => "a unique local (private) address, where some clouds keep metadata",
        0xff00..=0xffff => "a multicast address",
        // 6to4 and Teredo tunnel to addresses we cannot see; the documentation range.
        0x2002 => "a 6to4 address",
        0x2001 if s[1] < 0x0200 || s[1] == 0x0db8 => "a reserved, tunnel or documentation address",
        0x0064 if s[1] == 0xff9b => "a local-use NAT64 address",
        0x0100 if s[1..4] == [0, 0, 0] => "a discard address",
        0x0000..=0x00ff => "a reserved address",
        _ => return None,
    })
}

/// Hosts an operator lets the platform fetch from although they are not public: `host`
/// (any port) or `host:port`, comma-separated (`VECHE_FETCH_ALLOW_HOSTS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<(String, Option<u16>)>);

impl FromStr for AllowList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut entries = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let url = url::Url::parse(&format!("http://{entry}/"))
                .map_err(|e| format!("{entry:?}: expected host or host:port ({e})"))?;
            let host = url.host_str().filter(|_| url.path() == "/" && url.username().is_empty());
            let host = host.ok_or_else(|| format!("{entry:?}: expected host or host:port"))?;
            let has_port = entry.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                && !entry.ends_with(']');
            let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
            entries.push((host, if has_port { url.port_or_known_default() } else { None }));
        }
        Ok(Self(entries))
    }
}

impl AllowList {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn names(&self, host: &str) -> impl Iterator<Item = Option<u16>> + '_ {
        let host = host.to_ascii_lowercase();
        self.0.iter().filter(move |(h, _)| *h == host).map(|(_, port)| *port)
    }

    /// Whether `host` is listed for `port`.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.names(host).any(|p| p.is_none_or(|p| p == port))
    }

    /// Whether `host` is listed at all (the resolver sees no port: the URL check
    /// has refused a listed host on a port it is not listed for).
    fn lists(&self, host: &str) -> bool {
        self.names(host).next().is_some()
    }
}

/// Turns a host name into addresses: the system's resolver, or a stub in tests.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The system's resolver (getaddrinfo on a blocking thread, as tokio does it).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let host = host.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect()) })
    }
}

/// The resolver reqwest connects through: it hands over only addresses that passed the check.
struct GuardedResolver {
    lookup: Arc<dyn Lookup>,
    allow: AllowList,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let listed = self.allow.lists(&host);
        let lookup = self.lookup.lookup(&host);
        Box::pin(async move {
            let addrs = lookup.await?;
            if addrs.is_empty() {
                return Err(Box::new(FetchError::Dns(format!("{host} has no address"))) as _);
            }
            if !listed {
                // One bad address refuses the name: a rebinding name often answers with both.
                // The address itself stays unsaid: an error is shown to whoever set the URL,
                // and must not map the inner network for them.
                if let Some(why) = addrs.iter().find_map(|ip| non_public(*ip)) {
                    return Err(Box::new(FetchError::Refused(format!("{host} resolves to {why}"))) as _);
                }
            }
            let addrs: Vec<SocketAddr> = addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// How far a fetch may go.
#[derive(Debug, Clone)]
pub struct Limits {
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes.
    pub read_timeout: Duration,
    /// The whole fetch, redirects and body included (a server dripping a byte a second
    /// never trips the read timeout; this stops it).
    pub total_timeout: Duration,
    /// Largest body after decompression.
    pub max_bytes: usize,
    pub redirects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(60),
            max_bytes: 10 * 1024 * 1024,
            redirects: 5,
        }
    }
}

/// Why a fetch failed, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Url(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("could not resolve: {0}")]
    Dns(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("the response is larger than {} MiB", .0 / (1024 * 1024))]
    TooLarge(usize),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("the server answered {0}")]
    Status(u16),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the response could not be read: {0}")]
    Body(String),
}

/// What a previous fetch said about the resource, for a conditional request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A fetched body, or the server's word that it has not changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    NotModified,
    Body(Body),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub validators: Validators,
    /// Where the body came from, after redirects.
    pub url: String,
}

impl Body {
    /// The `charset` parameter of the content type, if any.
    pub fn charset(&self) -> Option<&str> {
        let ct = self.content_type.as_deref()?;
        ct.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"'))
        })
    }
}

/// The platform's outbound HTTP client for user-given URLs. Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    /// For posts: the same guards, and no redirects followed.
    posting: reqwest::Client,
    allow: AllowList,
    limits: Limits,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher").field("allow", &self.allow).field("limits", &self.limits).finish()
    }
}

impl Fetcher {
    pub fn new(allow: AllowList, limits: Limits) -> Self {
        Self::with_lookup(allow, limits, Arc::new(SystemLookup))
    }

    /// A fetcher resolving names with `lookup` (tests map names to addresses with a stub).
    pub fn with_lookup(allow: AllowList, limits: Limits, lookup: Arc<dyn Lookup>) -> Self {
        let redirect_allow = allow.clone();
        let max = limits.redirects;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max {
                return attempt.error(FetchError::TooManyRedirects(max));
            }
            match check_url(attempt.url(), &redirect_allow) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e),
            }
        });
        let client = reqwest::Client::builder()
            .dns_resolver(GuardedResolver { lookup: lookup.clone(), allow: allow.clone() })
            .redirect(policy)
            .no_proxy()
            // A private calendar's link carries its secret: never hand it to a redirect's target.
            .referer(false)
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.read_timeout)
            .timeout(limits.total_timeout)
            .user_agent(concat!("Veche/", env!("CARGO_PKG_VERSION"), " (calendar and feed import)"))
            .build()
            .expect("a client without custom TLS settings builds");
        let posting = reqwest::Client::builder()
            .dns_resolver(GuardedResolver { lookup, allow: allow.clone() })
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .referer(false)
            .connect_timeout(limits.connect_timeout)
            .read_timeout(limits.read_timeout)
            .timeout(limits.total_timeout)
            .user_agent(concat!("Veche/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
            .build()
            .expect("a client without custom TLS settings builds");
        Self { client, posting, allow, limits }
    }

    /// Checks a URL as a fetch would, without fetching it (for validating a form).
    pub fn check(&self, url: &str) -> Result<url::Url, FetchError> {
        let url = url::Url::parse(url).map_err(|e| FetchError::Url(format!("not a URL: {e}")))?;
        check_url(&url, &self.allow)?;
        Ok(url)
    }

    /// GETs `url`, conditionally when `validators` has something to send.
    pub async fn get(&self, url: &str, validators: &Validators) -> Result<Fetched, FetchError> {
        let url = self.check(url)?;
        let total = self.limits.total_timeout;
        tokio::time::timeout(total + Duration::from_millis(100), self.get_checked(url, validators))
            .await
            .unwrap_or(Err(FetchError::Timeout("the whole fetch took too long")))
    }

    async fn get_checked(&self, url: url::Url, validators: &Validators) -> Result<Fetched, FetchError> {
        let mut request = self.client.get(url);
        if let Some(etag) = &validators.etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &validators.last_modified {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
        }
        let mut response = request.send().await.map_err(|e| self.failure(e))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if status.is_redirection() {
            // reqwest hands back a redirect it cannot follow, e.g. to `file:`.
            let to = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
            return Err(FetchError::Url(format!(
                "the server redirected to {}, and only http and https can be fetched",
                to.unwrap_or("nowhere")
            )));
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let max = self.limits.max_bytes;
        // The length a compressed body declares says nothing of its size once unpacked:
        // the count below is what holds.
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(FetchError::TooLarge(max));
        }
        let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let validators =
            Validators { etag: header(reqwest::header::ETAG), last_modified: header(reqwest::header::LAST_MODIFIED) };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let final_url = response.url().to_string();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.failure(e))? {
            if bytes.len() + chunk.len() > max {
                return Err(FetchError::TooLarge(max));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body(Body { bytes, content_type, validators, url: final_url }))
    }

    /// Whether `url` may be posted to: https, or plain http to a host allowed by name
    /// (an intranet receiver, a test's), so what is signed is not also readable on the way.
    pub fn check_post(&self, url: &str) -> Result<url::Url, FetchError> {
        let url = self.check(url)?;
        let name = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        if url.scheme() != "https" && !self.allow.allows(name, url.port_or_known_default().unwrap_or(80)) {
            return Err(FetchError::Url("must be an https URL".into()));
        }
        Ok(url)
    }

    /// POSTs `body` (JSON) to `url` with `headers`, following no redirect, and answers
    /// the receiver's status, whatever it is, if it comes within `within` (at most the
    /// fetcher's whole-fetch limit). The answer's body is not read.
    pub async fn post_json(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
        within: Duration,
    ) -> Result<u16, FetchError> {
        let url = self.check_post(url)?;
        let mut request = self.posting.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let total = within.min(self.limits.total_timeout);
        match tokio::time::timeout(total, request.send()).await {
            Ok(Ok(response)) => Ok(response.status().as_u16()),
            Ok(Err(e)) => Err(self.failure(e)),
            Err(_) => Err(FetchError::Timeout("the receiver took too long")),
        }
    }

    /// Our own errors come back wrapped in reqwest's: unwrap them; say the rest plainly.
    fn failure(&self, e: reqwest::Error) -> FetchError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if let Some(ours) = err.downcast_ref::<FetchError>() {
                return ours.clone();
            }
            source = err.source();
        }
        if e.is_timeout() {
            FetchError::Timeout(if e.is_connect() { "connecting" } else { "the server is too slow" })
        } else if e.is_redirect() {
            FetchError::TooManyRedirects(self.limits.redirects)
        } else if e.is_connect() {
            FetchError::Connect(innermost(&e))
        } else if e.is_decode() || e.is_body() {
            FetchError::Body(innermost(&e))
        } else {
            FetchError::Connect(innermost(&e))
        }
    }
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// The checks a URL passes before any connection: scheme, no credentials, and for an
/// address literal, a public address (names are checked when they resolve).
fn check_url(url: &url::Url, allow: &AllowList) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Url(format!("only http and https URLs can be fetched, not {}:", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::Url("a URL with credentials in it cannot be fetched".into()));
    }
    let host = url.host().ok_or_else(|| FetchError::Url("the URL has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let name = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    if allow.allows(name, port) {
        return Ok(());
    }
    let ip = match host {
        url::Host::Ipv4(ip) => IpAddr::V4(ip),
        url::Host::Ipv6(ip) => IpAddr::V6(ip),
        url::Host::Domain(_) if allow.lists(name) => {
            return Err(FetchError::Refused(format!(
                "{name} is allowed only on the ports VECHE_FETCH_ALLOW_HOSTS names"
            )));
        }
        url::Host::Domain(_) => return Ok(()),
    };
    match non_public(ip) {
        Some(why) => Err(FetchError::Refused(format!("{ip} is {why}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_that_are_not_public() {
        for s in [
            "127.0.0.1",
            "127.0.0.2",
            "0.0.0.0",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.100.100.200",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2001:db8::1",
            "2001::1",
            "2002:a9fe:a9fe::1",
            "fec0::1",
            "64:ff9b:1::1",
        ] {
            assert!(non_public(ip(s)).is_some(), "{s} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(non_public(ip(s)), None, "{s} is public");
        }
    }

    #[test]
    fn the_allow_list_reads_hosts_and_ports() {
        let allow: AllowList = "127.0.0.1:8080, feeds.internal ,[::1]:9000,[fd00::5]".parse().unwrap();
        assert!(allow.allows("127.0.0.1", 8080));
        assert!(!allow.allows("127.0.0.1", 8081));
        assert!(allow.allows("FEEDS.internal", 443));
        assert!(allow.allows("::1", 9000));
        assert!(!allow.allows("::1", 80));
        assert!(allow.allows("fd00::5", 1));
        assert!("".parse::<AllowList>().unwrap().is_empty());
        assert!("http://x/".parse::<AllowList>().is_err());
        assert!("a b".parse::<AllowList>().is_err());
    }

    #[test]
    fn urls_are_checked_before_any_connection() {
        let none = AllowList::default();
        let check = |u: &str, allow: &AllowList| check_url(&url::Url::parse(u).unwrap(), allow);
        assert!(check("https://example.org/cal.ics", &none).is_ok());
        for bad in [
            "ftp://example.org/x",
            "file:///etc/passwd",
            "http://user:pw@example.org/",
            "http://127.0.0.2/",
            "http://[::1]:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://[fd00::1]/",
            "http://0x7f000001/",
            "http://2130706433/",
        ] {
            assert!(check(bad, &none).is_err(), "{bad}");
        }
        let allow: AllowList = "127.0.0.1:8080,cal.internal:8443".parse().unwrap();
        assert!(check("http://127.0.0.1:8080/x", &allow).is_ok());
        assert!(check("http://127.0.0.1:8081/x", &allow).is_err());
        assert!(check("https://cal.internal:8443/", &allow).is_ok());
        assert!(matches!(check("https://cal.internal/", &allow), Err(FetchError::Refused(_))));
    }

    /// Names resolved by a stub: the check happens on the addresses the connection would use.
    struct Stub(Vec<(&'static str, Vec<IpAddr>)>);

    impl Lookup for Stub {
        fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
            let found = self.0.iter().find(|(h, _)| *h == host).map(|(_, a)| a.clone()).unwrap_or_default();
            Box::pin(async move { Ok(found) })
        }
    }

    async fn resolve(resolver: &GuardedResolver, host: &str) -> Result<Vec<IpAddr>, String> {
        use reqwest::dns::Resolve;
        match resolver.resolve(host.parse().unwrap()).await {
            Ok(addrs) => Ok(addrs.map(|a| a.ip()).collect()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[tokio::test]
    async fn names_resolving_to_inner_addresses_are_refused() {
        let stub = Stub(vec![
            ("metadata.test", vec![ip("169.254.169.254")]),
            ("intranet.test", vec![ip("10.1.2.3")]),
            ("v6.test", vec![ip("fd00::8")]),
            ("rebind.test", vec![ip("93.184.216.34"), ip("127.0.0.1")]),
            ("public.test", vec![ip("93.184.216.34")]),
            ("allowed.test", vec![ip("10.9.9.9")]),
        ]);
        let resolver = GuardedResolver { lookup: Arc::new(stub), allow: "allowed.test:8080".parse().unwrap() };
        for (host, needle) in [
            ("metadata.test", "link-local"),
            ("intranet.test", "private"),
            ("v6.test", "unique local"),
            ("rebind.test", "loopback"),
        ] {
            let err = resolve(&resolver, host).await.unwrap_err();
            assert!(err.contains(needle), "{host}: {err}");
            assert!(!err.contains("10.1.2.3") && !err.contains("169.254"), "no inner address is named: {err}");
        }
        assert!(resolve(&resolver, "nowhere.test").await.unwrap_err().contains("no address"));
        assert_eq!(resolve(&resolver, "public.test").await.unwrap(), vec![ip("93.184.216.34")]);
        assert_eq!(resolve(&resolver, "allowed.test").await.unwrap(), vec![ip("10.9.9.9")]);
    }

    #[test]
    fn the_charset_comes_from_the_content_type() {
        let body = |ct: Option<&str>| Body {
            bytes: vec![],
            content_type: ct.map(str::to_owned),
            validators: Validators::default(),
            url: String::new(),
        };
        assert_eq!(body(Some("text/calendar; charset=\"windows-1252\"")).charset(), Some("windows-1252"));
        assert_eq!(body(Some("text/calendar;CHARSET=utf-8")).charset(), Some("utf-8"));
        assert_eq!(body(Some("text/calendar")).charset(), None);
        assert_eq!(body(None).charset(), None);
    }
}
