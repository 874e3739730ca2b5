//! Client addresses: CIDR ranges, trusted proxies (`X-Forwarded-For`, `Forwarded`), and
//! the grouping of addresses into rate-limit keys (IPv6 by prefix, default /64).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::header::{FORWARDED, HeaderName};
use axum::http::request::Parts;

/// The `X-Forwarded-For` header name.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A range of addresses: `10.0.0.0/8`, `2001:db8::/32`, or one address (`127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR range that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError(String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid CIDR range `{}`: expected ADDRESS or ADDRESS/PREFIX",
            self.0
        )
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// The range of `addr` with its first `prefix` bits (at most 32 for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let addr = addr.to_canonical();
        (prefix <= max_prefix(addr)).then(|| Self {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// The first address of the range.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `ADDRESS/PREFIX` or a bare address (a /32 or /128 range).
    fn from_str(text: &str) -> Result<Self, CidrError> {
        let err = || CidrError(text.to_owned());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| err())?
            }
            Some(_) => return Err(err()),
            None => max_prefix(addr.to_canonical()),
        };
        Self::new(addr, prefix).ok_or_else(err)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// `ip` with all but its first `prefix` bits cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// Which forwarding header a trusted proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` when present, else `Forwarded` (default).
    #[default]
    Either,
    /// Only `X-Forwarded-For`.
    XForwardedFor,
    /// Only `Forwarded` (RFC 7239, its `for=` parameters).
    Forwarded,
}

/// How the client address is found and grouped into a key.
///
/// The peer address comes from axum's `ConnectInfo<SocketAddr>` request extension
/// (serve with `into_make_service_with_connect_info::<SocketAddr>()`). Forwarding
/// headers are read only when the peer is inside a trusted proxy range; the client is
/// then the right-most address of the chain that is not itself a trusted proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    trusted: Vec<Cidr>,
    header: ForwardedHeader,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
}

impl Default for ClientIp {
    fn default() -> Self {
        Self {
            trusted: Vec::new(),
            header: ForwardedHeader::Either,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }
}

impl ClientIp {
    /// No trusted proxy, IPv4 addresses as /32, IPv6 grouped by /64.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts forwarding headers from peers inside `ranges` (adds to any already set).
    pub fn trust(mut self, ranges: impl IntoIterator<Item = Cidr>) -> Self {
        self.trusted.extend(ranges);
        self
    }

    /// Which forwarding header the trusted proxies write (default: either).
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Groups IPv6 clients by their first `bits` bits (default 64, at most 128).
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// Groups IPv4 clients by their first `bits` bits (default 32, at most 32).
    pub fn ipv4_prefix(mut self, bits: u8) -> Self {
        self.ipv4_prefix = bits.min(32);
        self
    }

    /// The trusted proxy ranges.
    pub fn trusted(&self) -> &[Cidr] {
        &self.trusted
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client address of a request: the peer, or through trusted proxies the
    /// right-most forwarded address that is not a trusted proxy. `None` without a peer
    /// address (no `ConnectInfo<SocketAddr>` extension).
    pub fn resolve(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
        Some(self.resolve_from(peer, &parts.headers))
    }

    /// The client address given the peer address and the request headers.
    pub fn resolve_from(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let xff = || {
            let mut values = headers.get_all(X_FORWARDED_FOR).iter().peekable();
            values.peek().is_some().then(|| {
                self.walk(
                    peer,
                    values
                        .rev()
                        .flat_map(|v| v.to_str().unwrap_or("").rsplit(','))
                        .map(parse_xff_entry),
                )
            })
        };
        let fwd = || {
            let mut values = headers.get_all(FORWARDED).iter().peekable();
            values.peek().is_some().then(|| {
                self.walk(
                    peer,
                    values
                        .rev()
                        .flat_map(|v| v.to_str().unwrap_or("").rsplit(','))
                        .map(parse_forwarded_element),
                )
            })
        };
        let found = match self.header {
            ForwardedHeader::Either => xff().or_else(fwd),
            ForwardedHeader::XForwardedFor => xff(),
            ForwardedHeader::Forwarded => fwd(),
        };
        found.unwrap_or(peer)
    }

    /// Walks hops from the right: skips trusted proxies, returns the first other address.
    /// An entry that is not an address stops the walk at the last trusted hop; a chain
    /// of only trusted proxies yields its left-most address.
    fn walk(&self, peer: IpAddr, hops: impl Iterator<Item = Option<IpAddr>>) -> IpAddr {
        let mut last = peer;
        for hop in hops {
            match hop {
                Some(ip) if self.is_trusted(ip) => last = ip,
                Some(ip) => return ip,
                None => return last,
            }
        }
        last
    }

    /// The key for `ip`: the address grouped by the configured prefix.
    pub fn group(&self, ip: IpAddr) -> IpKey {
        let ip = ip.to_canonical();
        let prefix = if ip.is_ipv4() {
            self.ipv4_prefix
        } else {
            self.ipv6_prefix
        };
        IpKey::new(ip, prefix)
    }

    /// The key of a request's client (resolved, then grouped); `None` without a peer.
    pub fn key(&self, parts: &Parts) -> Option<IpKey> {
        self.resolve(parts).map(|ip| self.group(ip))
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`[::1]:80`, `1.2.3.4:5`).
fn parse_xff_entry(entry: &str) -> Option<IpAddr> {
    parse_node(entry.trim())
}

/// One `Forwarded` element (`for=192.0.2.60;proto=http`): its `for` address.
fn parse_forwarded_element(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        parse_node(value)
    })
}

/// An address, `[v6]`, `[v6]:port` or `v4:port`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    text.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

/// Longest key text: a full IPv6 address, `/` and a 3-digit prefix.
const IP_KEY_CAP: usize = 48;

/// A grouped client address as key text (`203.0.113.7`, `2001:db8:1:2::/64`), held
/// inline: no allocation.
#[derive(Clone, Copy)]
pub struct IpKey {
    buf: [u8; IP_KEY_CAP],
    len: u8,
}

impl IpKey {
    /// The key of `ip` grouped by `prefix`: the bare address for a full-length prefix,
    /// else the masked address and `/prefix`.
    pub fn new(ip: IpAddr, prefix: u8) -> Self {
        use std::io::Write;
        let ip = ip.to_canonical();
        let prefix = prefix.min(max_prefix(ip));
        let mut key = Self {
            buf: [0; IP_KEY_CAP],
            len: 0,
        };
        let full = prefix == max_prefix(ip);
        if let IpAddr::V4(v4) = mask(ip, prefix) {
            // The common case, written without `core::fmt` (a few times faster).
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    key.push(b".");
                }
                key.push_decimal(octet);
            }
            if !full {
                key.push(b"/");
                key.push_decimal(prefix);
            }
            return key;
        }
        let mut cursor = std::io::Cursor::new(&mut key.buf[..]);
        let written = if full {
            write!(cursor, "{ip}")
        } else {
            write!(cursor, "{}/{prefix}", mask(ip, prefix))
        };
        debug_assert!(written.is_ok(), "an address fits in {IP_KEY_CAP} bytes");
        key.len = cursor.position() as u8;
        key
    }

    fn push(&mut self, bytes: &[u8]) {
        let start = usize::from(self.len);
        self.buf[start..start + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len() as u8;
    }

    fn push_decimal(&mut self, n: u8) {
        let mut buf = [0; 20];
        self.push(crate::headers::decimal(u64::from(n), &mut buf));
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        // Only `write!` of addresses and numbers filled the buffer: ASCII.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpKey({:?})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn cidr_parses_and_matches() {
        let c = cidr("10.1.2.3/8");
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(
            c.contains(ip("::ffff:10.0.0.9")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(!c.contains(ip("::1")));
        let one = cidr("127.0.0.1");
        assert_eq!(one.prefix(), 32);
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(!cidr("::/0").contains(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_is_grouped_by_prefix_and_ipv4_kept_whole() {
        let c = ClientIp::new();
        assert_eq!(
            c.group(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")).as_str(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            c.group(ip("2001:db8:1:2::ffff")).as_str(),
            c.group(ip("2001:db8:1:2:1::")).as_str(),
            "same /64, same key"
        );
        assert_ne!(
            c.group(ip("2001:db8:1:2::1")).as_str(),
            c.group(ip("2001:db8:1:3::1")).as_str()
        );
        assert_eq!(c.group(ip("203.0.113.7")).as_str(), "203.0.113.7");
        assert_eq!(c.group(ip("::ffff:203.0.113.7")).as_str(), "203.0.113.7");
        let c = ClientIp::new().ipv6_prefix(48).ipv4_prefix(24);
        assert_eq!(c.group(ip("2001:db8:1:2::1")).as_str(), "2001:db8:1::/48");
        assert_eq!(c.group(ip("203.0.113.7")).as_str(), "203.0.113.0/24");
        let full = ClientIp::new().ipv6_prefix(128);
        let longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe";
        assert_eq!(full.group(ip(longest)).as_str(), longest);
        assert_eq!(
            IpKey::new(ip(longest), 127).as_str(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"
        );
    }

    #[test]
    fn ipv4_keys_read_as_the_address_and_prefix_display() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.100.255",
            "203.0.113.7",
            "255.255.255.255",
        ] {
            let v4: Ipv4Addr = text.parse().unwrap();
            for prefix in [0, 1, 7, 8, 9, 16, 24, 31, 32] {
                let expected = if prefix == 32 {
                    v4.to_string()
                } else {
                    format!("{}/{prefix}", mask(IpAddr::V4(v4), prefix))
                };
                assert_eq!(IpKey::new(IpAddr::V4(v4), prefix).as_str(), expected);
            }
        }
    }

    #[test]
    fn forwarding_headers_are_ignored_from_an_untrusted_peer() {
        let c = ClientIp::new().trust([cidr("10.0.0.0/8")]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(c.resolve_from(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        let none = ClientIp::new();
        assert_eq!(none.resolve_from(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn xff_takes_the_rightmost_untrusted_address() {
        let c = ClientIp::new().trust([cidr("10.0.0.0/8"), cidr("127.0.0.1")]);
        // The client spoofed 6.6.6.6; the first proxy appended the real 203.0.113.9.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(c.resolve_from(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        // Several header fields form one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(c.resolve_from(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        // Ports and brackets.
        let h = headers(&[("x-forwarded-for", "[2001:db8::7]:443, 10.0.0.3:8080")]);
        assert_eq!(c.resolve_from(ip("10.0.0.1"), &h), ip("2001:db8::7"));
        // Only trusted proxies: the left-most.
        let h = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(c.resolve_from(ip("127.0.0.1"), &h), ip("10.0.0.5"));
        // Garbage stops at the last trusted hop.
        let h = headers(&[("x-forwarded-for", "unknown, 10.0.0.6")]);
        assert_eq!(c.resolve_from(ip("127.0.0.1"), &h), ip("10.0.0.6"));
        let h = headers(&[("x-forwarded-for", "")]);
        assert_eq!(c.resolve_from(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn forwarded_for_parameters_are_honoured() {
        let c = ClientIp::new().trust([cidr("127.0.0.1")]);
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https;by=127.0.0.1",
        )]);
        assert_eq!(c.resolve_from(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "proto=http;For=198.51.100.4")]);
        assert_eq!(c.resolve_from(ip("127.0.0.1"), &h), ip("198.51.100.4"));
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(c.resolve_from(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn header_choice_decides_which_header_counts() {
        let base = ClientIp::new().trust([cidr("127.0.0.1")]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        let peer = ip("127.0.0.1");
        assert_eq!(base.resolve_from(peer, &h), ip("1.1.1.1"));
        let fwd = base.clone().forwarded_header(ForwardedHeader::Forwarded);
        assert_eq!(fwd.resolve_from(peer, &h), ip("2.2.2.2"));
        let xff = base.forwarded_header(ForwardedHeader::XForwardedFor);
        let only_fwd = headers(&[("forwarded", "for=2.2.2.2")]);
        assert_eq!(xff.resolve_from(peer, &only_fwd), peer);
    }
}
