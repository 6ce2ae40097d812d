//! Who the client is when proxies stand in front of a server, as nginx's `real_ip` module
//! decides it: `X-Forwarded-For` is believed only as far as the proxies that wrote it are
//! trusted. Each proxy appends the address it saw, so the client is read from the right:
//! the entry just left of the trusted proxies. The leftmost entry is whatever the client
//! chose to send, and never trusted for that reason.

use crate::server::Peer;
use ipnet::IpNet;
use std::net::IpAddr;
use std::str::FromStr;

/// Which proxies in front of this server may say who the client is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TrustedProxies {
    /// None: the client is the socket peer.
    #[default]
    None,
    /// This many proxies in front, each appending to `X-Forwarded-For`: the client is
    /// that many entries from its right (one proxy: the rightmost entry).
    Hops(usize),
    /// Proxies at these networks: when the peer is one, the client is the rightmost
    /// entry that is not (nginx's `set_real_ip_from` with `real_ip_recursive on`).
    Networks(Vec<IpNet>),
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// `""` or `none`; a count of hops (`1`); or networks and addresses separated by
    /// commas (`10.0.0.0/8, 192.0.2.7`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("none") || s == "0" {
            return Ok(Self::None);
        }
        if let Ok(hops) = s.parse::<usize>() {
            return Ok(Self::Hops(hops));
        }
        s.split(',')
            .map(str::trim)
            .map(|n| n.parse::<IpNet>().or_else(|_| n.parse::<IpAddr>().map(IpNet::from)))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::Networks)
            .map_err(|_| format!("{s:?}: expected a number of proxies, or addresses and CIDR networks"))
    }
}

impl TrustedProxies {
    /// Whether some proxy in front is trusted (so its `X-Forwarded-*` headers are).
    pub fn trusts_any(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// Whether a socket peer is one of the trusted proxies (with a count of hops, every
    /// peer is: nothing else reaches the server).
    pub fn is_proxy(&self, peer: IpAddr) -> bool {
        match self {
            Self::None => false,
            Self::Hops(_) => true,
            Self::Networks(nets) => nets.iter().any(|n| n.contains(&peer)),
        }
    }

    /// The client's address, from the socket peer and the `X-Forwarded-For` values (all
    /// of the request's lines, in order; read only when some proxy is trusted). A peer of
    /// `None` is a call within the process, trusted like a proxy.
    pub fn client<'a, I>(&self, peer: Option<IpAddr>, forwarded_for: impl FnOnce() -> I) -> Option<IpAddr>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let trusted = |ip: &IpAddr, nets: &[IpNet]| nets.iter().any(|n| n.contains(ip));
        match self {
            Self::None => peer,
            Self::Hops(hops) => {
                let entries = entries(forwarded_for());
                let Some(entries) = entries else { return peer };
                match entries.len().checked_sub(*hops) {
                    Some(i) => entries.get(i).copied(),
                    // Fewer entries than proxies: the leftmost is the best there is.
                    None => entries.first().copied(),
                }
                .or(peer)
            }
            Self::Networks(nets) => {
                if peer.is_some_and(|p| !trusted(&p, nets)) {
                    return peer;
                }
                let Some(entries) = entries(forwarded_for()) else { return peer };
                let mut client = peer;
                for ip in entries.iter().rev() {
                    client = Some(*ip);
                    if !trusted(ip, nets) {
                        break;
                    }
                }
                client
            }
        }
    }
}

/// The addresses of `X-Forwarded-For` lines, left to right; `None` when a value is not a
/// list of addresses (a forged or broken header is no evidence at all).
fn entries<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<IpAddr>> {
    let mut out = Vec::new();
    for value in values {
        for entry in std::str::from_utf8(value).ok()?.split(',') {
            out.push(entry.trim().parse().ok()?);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The caller's address from a header map (see [`TrustedProxies::client`]).
pub fn client_ip(headers: &http::HeaderMap, peer: Peer, proxies: &TrustedProxies) -> Option<IpAddr> {
    proxies.client(peer.0.map(|a| a.ip()), || headers.get_all("x-forwarded-for").iter().map(|v| v.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(p: &TrustedProxies, peer: &str, lines: &[&str]) -> Option<IpAddr> {
        p.client(Some(ip(peer)), || lines.iter().map(|l| l.as_bytes()))
    }

    #[test]
    fn settings_parse() {
        assert_eq!("".parse::<TrustedProxies>().unwrap(), TrustedProxies::None);
        assert_eq!("2".parse::<TrustedProxies>().unwrap(), TrustedProxies::Hops(2));
        assert_eq!(
            "10.0.0.0/8, 192.0.2.7".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::Networks(vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.7/32".parse().unwrap()])
        );
        assert!("10.0.0.0/8, proxy".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn the_client_cannot_choose_its_address_by_sending_the_header() {
        // The client sent `X-Forwarded-For: 6.6.6.6`; its proxy appended what it saw.
        let one = TrustedProxies::Hops(1);
        assert_eq!(client(&one, "10.0.0.2", &["6.6.6.6, 203.0.113.9"]), Some(ip("203.0.113.9")));
        assert_eq!(client(&one, "10.0.0.2", &["6.6.6.6", "203.0.113.9"]), Some(ip("203.0.113.9")), "split lines");
        let two = TrustedProxies::Hops(2);
        assert_eq!(client(&two, "10.0.0.3", &["6.6.6.6, 203.0.113.9, 10.0.0.2"]), Some(ip("203.0.113.9")));
        assert_eq!(client(&one, "10.0.0.2", &[]), Some(ip("10.0.0.2")), "no header: the peer");
        assert_eq!(client(&one, "10.0.0.2", &["nonsense"]), Some(ip("10.0.0.2")), "a broken header: the peer");
        assert_eq!(client(&TrustedProxies::None, "10.0.0.2", &["6.6.6.6"]), Some(ip("10.0.0.2")));
    }

    #[test]
    fn networks_are_walked_from_the_right() {
        let nets: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(client(&nets, "10.0.0.3", &["6.6.6.6, 203.0.113.9, 10.1.2.3"]), Some(ip("203.0.113.9")));
        assert_eq!(client(&nets, "198.51.100.1", &["6.6.6.6"]), Some(ip("198.51.100.1")), "an untrusted peer");
        assert_eq!(client(&nets, "10.0.0.3", &["10.9.9.9, 10.1.2.3"]), Some(ip("10.9.9.9")), "all trusted");
    }
}
