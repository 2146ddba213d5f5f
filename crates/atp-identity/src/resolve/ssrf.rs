//! Which addresses an untrusted URL may reach.
//!
//! [`is_forbidden`] is the single address rule; [`check_url`] applies it (and the https rule) to a
//! URL before any connection, for literal IP hosts and for redirect targets. Names are checked
//! after DNS, on every address returned, by the resolver plugged into the HTTP client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

use super::fetch::FetchError;

/// Whether `ip` must not be reached by an untrusted fetch: anything that is not a global unicast
/// address (private, loopback, link-local, CGNAT, multicast, broadcast, unspecified,
/// documentation, benchmarking, reserved, unique-local), including IPv4 addresses embedded in IPv6
/// (IPv4-mapped, IPv4-compatible, NAT64, 6to4).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network", includes 0.0.0.0
        || a == 10 // private
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local (cloud metadata)
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224 // multicast, reserved, broadcast
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    if let Some(v4) = embedded_v4(&ip) {
        return is_forbidden_v4(v4);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || (seg[0] & 0xfe00) == 0xfc00 // unique-local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (seg[0] & 0xff00) == 0xff00 // multicast
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation 2001:db8::/32
        || (seg[0] == 0x0100 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0) // discard 100::/64
        || (seg[0] == 0 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0 && seg[4] == 0) // ::/80 leftovers
}

/// The IPv4 address an IPv6 address stands for, if it embeds one: IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, or 6to4 `2002:AABB:CCDD::`.
fn embedded_v4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let octets = ip.octets();
    let tail = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    if seg[..5] == [0, 0, 0, 0, 0] && (seg[5] == 0xffff || (seg[5] == 0 && (seg[6] != 0))) {
        return Some(tail);
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

/// Checks a URL before it is fetched (or redirected to): the scheme must be `https` (or `http`
/// when `dev` allows it) and a literal IP host must not be forbidden (unless `dev`). Names are
/// left to the DNS-side check.
pub(crate) fn check_url(url: &Url, dev: bool) -> Result<(), FetchError> {
    match url.scheme() {
        "https" => {}
        "http" if dev => {}
        _ => {
            return Err(FetchError::InsecureScheme {
                url: url.to_string(),
            });
        }
    }
    let Some(host) = url.host_str() else {
        return Err(FetchError::InvalidUrl {
            url: url.to_string(),
            reason: "no host".to_owned(),
        });
    };
    // The URL parser has already normalised IP hosts (hex, octal, bare integers, brackets).
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(ip) = bare.parse::<IpAddr>() else {
        return Ok(());
    };
    if !dev && is_forbidden(ip) {
        return Err(FetchError::ForbiddenAddress {
            host: host.to_owned(),
            addr: ip,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(s: &str) -> bool {
        is_forbidden(s.parse().unwrap())
    }

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for bad in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:7f00:1::",
            "100::1",
        ] {
            assert!(forbidden(bad), "{bad} should be forbidden");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.1.1",
            "192.0.1.1",
            "198.17.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::",
        ] {
            assert!(!forbidden(good), "{good} should be allowed");
        }
    }

    #[test]
    fn urls_are_checked_before_connecting() {
        let check = |u: &str, dev: bool| check_url(&Url::parse(u).unwrap(), dev);
        assert!(check("https://example.com/x", false).is_ok());
        assert!(check("https://8.8.8.8/x", false).is_ok());
        assert!(matches!(
            check("http://example.com/x", false),
            Err(FetchError::InsecureScheme { .. })
        ));
        assert!(matches!(
            check("ftp://example.com/x", true),
            Err(FetchError::InsecureScheme { .. })
        ));
        for bad in [
            "https://127.0.0.1/",
            "https://10.1.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]:8443/",
            "https://[::ffff:192.168.0.1]/",
            "https://0x7f000001/",
            "https://2130706433/",
        ] {
            assert!(
                matches!(check(bad, false), Err(FetchError::ForbiddenAddress { .. })),
                "{bad}"
            );
            assert!(check(bad, true).is_ok(), "{bad} in dev mode");
        }
        assert!(check("http://127.0.0.1:2582/", true).is_ok());
    }
}
