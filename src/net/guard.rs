//! Which addresses mxping may contact (design.md "Safety"). A well-known or SRV record can point
//! anywhere, so every address discovery produces — from DNS answers, IP literals, well-known
//! redirects — is checked here before anything connects to it, and the probe connects to exactly
//! the address that was checked. `[network] allow` exempts CIDRs (tests allow 127.0.0.0/8).
//!
//! The check sits where sockets are connected: [`NetGuard::connect`] is the only function in
//! mxping that opens a TCP connection to a remote host (the probe, the well-known fetch and its
//! redirects, the client-API check and the key fetch all go through it), and `clippy.toml`
//! forbids calling `TcpStream::connect` anywhere else, so no new code path can skip the guard —
//! not one whose URL holds an IP literal, which never asks a resolver.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use tokio::net::TcpStream;

use crate::error::{ErrorKind, ProbeError};
use crate::net::classify;

/// The private-address guard.
#[derive(Clone, Debug, Default)]
pub struct NetGuard {
    allow: Vec<IpNet>,
}

impl NetGuard {
    /// A guard that blocks every non-public range except those in `allow`.
    pub fn new(allow: Vec<IpNet>) -> Self {
        NetGuard { allow }
    }

    /// Opens a TCP connection to `addr` if the guard allows its IP, else fails with
    /// `blocked_address` before any packet is sent. Connect errors are classified.
    pub async fn connect(&self, addr: SocketAddr) -> Result<TcpStream, ProbeError> {
        self.check(addr.ip())?;
        // The one sanctioned call: every other connection in mxping is made through here.
        #[allow(clippy::disallowed_methods)]
        let stream = TcpStream::connect(addr).await;
        let stream = stream.map_err(|e| classify::connect_error(&e, &addr))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// `Ok` when `ip` may be contacted, else a `blocked_address` error naming the range.
    pub fn check(&self, ip: IpAddr) -> Result<(), ProbeError> {
        // IPv4-mapped (::ffff:a.b.c.d) and NAT64/6to4 addresses reach an IPv4 host: judge that
        // host, so `::ffff:127.0.0.1` is loopback, not "public IPv6".
        let effective = embedded_ipv4(ip).map_or(ip, IpAddr::V4);
        let Some(range) = special_range(effective).or_else(|| special_range(ip)) else {
            return Ok(());
        };
        if self
            .allow
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&effective))
        {
            return Ok(());
        }
        Err(ProbeError::new(
            ErrorKind::BlockedAddress,
            format!(
                "{ip} is a {range} address; mxping does not contact such addresses unless \
                 [network] allow lists them (e.g. allow = [\"{}\"])",
                IpNet::from(effective).trunc()
            ),
        ))
    }
}

/// The IPv4 address an IPv6 address stands for, if it embeds one in a well-known way.
fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let o = v6.octets();
    // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    // 6to4 2002:AABB:CCDD::/48 (RFC 3056).
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// The name of the non-public range `ip` falls in, if any.
fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        _ if ip.is_unspecified() => "unspecified",
        [0, ..] => "\"this network\" (0.0.0.0/8)",
        [127, ..] => "loopback",
        [10, ..] => "private (10.0.0.0/8)",
        [172, b, ..] if (16..32).contains(&b) => "private (172.16.0.0/12)",
        [192, 168, ..] => "private (192.168.0.0/16)",
        [100, b, ..] if (64..128).contains(&b) => "carrier-grade NAT (100.64.0.0/10)",
        [169, 254, ..] => "link-local",
        [192, 0, 0, _] => "IETF protocol assignment (192.0.0.0/24)",
        [198, b, ..] if b == 18 || b == 19 => "benchmarking (198.18.0.0/15)",
        _ if ip.is_multicast() => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        [a, ..] if a >= 240 => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_multicast() => "multicast",
        [a, ..] if a & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        [a, ..] if a & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        [a, ..] if a & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        // ::a.b.c.d, the deprecated IPv4-compatible form.
        [0, 0, 0, 0, 0, 0, ..] => "IPv4-compatible (::/96)",
        [0x100, 0, 0, 0, ..] => "discard-only (100::/64)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(guard: &NetGuard, ip: &str) -> bool {
        match guard.check(ip.parse().unwrap()) {
            Ok(()) => false,
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::BlockedAddress);
                true
            }
        }
    }

    #[test]
    fn blocks_every_non_public_range_by_default() {
        let g = NetGuard::default();
        for ip in [
            "127.0.0.1",
            "127.45.3.2",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "::127.0.0.1",
        ] {
            assert!(blocked(&g, ip), "{ip} should be blocked");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let g = NetGuard::default();
        for ip in [
            "1.1.1.1",
            "203.0.113.10",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
        ] {
            assert!(!blocked(&g, ip), "{ip} should pass");
        }
    }

    #[test]
    fn allow_list_exempts_cidrs_including_mapped_forms() {
        let g = NetGuard::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        assert!(!blocked(&g, "127.0.0.2"));
        assert!(!blocked(&g, "::1"));
        assert!(!blocked(&g, "::ffff:127.0.0.1"));
        assert!(blocked(&g, "10.0.0.1"));
        assert!(blocked(&g, "fd00::1"));
    }

    #[test]
    fn message_names_the_range_and_the_fix() {
        let e = NetGuard::default()
            .check("10.9.8.7".parse().unwrap())
            .unwrap_err();
        assert!(e.message.contains("private (10.0.0.0/8)"), "{}", e.message);
        assert!(
            e.message.contains("allow = [\"10.9.8.7/32\"]"),
            "{}",
            e.message
        );
    }
}
