//! The one client address of a request. Behind the load balancer and CDN every connection
//! comes from a few proxy addresses; for a connection from a trusted proxy the client is the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left
//! were written by the client and prove nothing). That address is what the per-client limits,
//! the request log and the statistics use.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

use crate::config::TrustedProxies;

/// The key per-client limits count under: the address itself for IPv4, its /64 for IPv6,
/// since one IPv6 subscriber is routinely given a whole /64 to pick addresses from.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// The client a request is from, as the request extensions carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`[::1]:80`, `1.2.3.4:5`).
fn entry_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client address of a request that came over a connection from `peer`.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    // Every X-Forwarded-For header, in order, as one list; walked from the right, the hop
    // nearest us, while the hops are proxies we trust.
    // Split as bytes: a client may put anything (non-ASCII too) in the part it writes, and
    // that must not cost the entries our proxies appended after it.
    let entries: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        match std::str::from_utf8(entry).ok().and_then(entry_address) {
            Some(ip) if trusted.contains(ip) => client = ip,
            Some(ip) => return ip,
            // A trusted hop passed on something that is not an address: the last hop that
            // can be vouched for is the client as far as anyone knows.
            None => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn trusted(cidrs: &str) -> TrustedProxies {
        let toml = format!(
            "[site]\ntitle = \"t\"\nlink = \"https://e.cn/\"\nbase_url = \"https://f.e.cn/\"\n\
             language = \"zh-CN\"\ntime_zone = \"Asia/Shanghai\"\n[http]\ntrusted_proxies = {cidrs}\n"
        );
        crate::config::Settings::parse(&toml, Path::new("t.toml"))
            .unwrap()
            .trusted_proxies
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_entry() {
        let t = trusted(r#"["10.0.0.0/8", "192.0.2.1"]"#);
        let lb = ip("10.1.2.3");
        // Spoofed entries to the left of what our proxies wrote prove nothing.
        let h = forwarded(&["6.6.6.6, 203.0.113.7", "192.0.2.1"]);
        assert_eq!(client_address(lb, &h, &t), ip("203.0.113.7"));
        assert_eq!(
            client_address(lb, &forwarded(&["[2001:db8::9]:443"]), &t),
            ip("2001:db8::9")
        );
        // Only proxies: the furthest one is all that is known.
        assert_eq!(
            client_address(lb, &forwarded(&["10.9.9.9"]), &t),
            ip("10.9.9.9")
        );
        assert_eq!(client_address(lb, &HeaderMap::new(), &t), lb);
        // A proxy passed on garbage: the proxy that did is the client as far as is known.
        assert_eq!(
            client_address(lb, &forwarded(&["evil, 192.0.2.1"]), &t),
            ip("192.0.2.1")
        );
        // What the client wrote, however broken, does not hide what the proxies appended.
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes("é\t, 203.0.113.9".as_bytes()).unwrap(),
        );
        assert_eq!(client_address(lb, &h, &t), ip("203.0.113.9"));
    }

    #[test]
    fn an_ipv6_client_is_limited_by_its_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("2001:db8:1:2:ffff::9")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(limit_key(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
    }

    #[test]
    fn without_a_trusted_proxy_the_header_is_ignored() {
        let h = forwarded(&["203.0.113.7"]);
        let peer = ip("198.51.100.2");
        assert_eq!(client_address(peer, &h, &TrustedProxies::default()), peer);
        assert_eq!(
            client_address(peer, &h, &trusted(r#"["10.0.0.0/8"]"#)),
            peer
        );
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(
            client_address(mapped, &h, &trusted(r#"["10.0.0.0/8"]"#)),
            ip("203.0.113.7")
        );
    }
}
