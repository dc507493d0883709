//! Turning library errors (io, rustls, hyper) into one [`ErrorKind`] with a message a
//! person can act on. Errors nest: hyper wraps io wraps rustls, and
//! `io::Error::source()` skips the wrapped error, so the chain is walked by hand.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;

use crate::error::{ErrorKind, ProbeError};

/// Every error in the chain, outermost first, looking inside `io::Error` wrappers.
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e);
        next = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
        if out.len() > 16 {
            break;
        }
    }
    out
}

/// The monitor's own trouble anywhere in an error chain (hyper wraps io, hickory wraps io).
pub(crate) fn trouble_in(err: &(dyn StdError + 'static)) -> Option<crate::error::Trouble> {
    chain(err).iter().find_map(|e| {
        e.downcast_ref::<io::Error>()
            .and_then(crate::error::Trouble::of_io)
    })
}

/// The innermost useful message of an error chain.
pub(crate) fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let parts: Vec<String> = chain(err).iter().map(|e| e.to_string()).collect();
    // The last element is usually the root cause; keep it short but specific.
    parts.last().cloned().unwrap_or_default()
}

/// Classifies an io error from a TCP connect to `addr`.
pub(crate) fn connect_error(err: &io::Error, addr: &SocketAddr) -> ProbeError {
    let shown = addr.to_string();
    if let Some(trouble) = crate::error::Trouble::of_io(err) {
        return ProbeError::monitor_trouble(
            ErrorKind::Connect,
            trouble,
            format!("could not open a socket to connect to {shown} ({err})"),
        );
    }
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ProbeError::new(
            ErrorKind::ConnectRefused,
            format!(
                "{shown} refused the connection: nothing listens on that port, or a firewall rejects it"
            ),
        ),
        io::ErrorKind::TimedOut => ProbeError::new(
            ErrorKind::ConnectTimeout,
            format!("connecting to {shown} timed out"),
        ),
        io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::AddrNotAvailable => {
            if addr.is_ipv6() && !monitor_has_route(addr) {
                let mut e = ProbeError::new(
                    ErrorKind::Connect,
                    format!(
                        "this monitor has no IPv6: it has no route to {shown} ({err}). The \
                         server is not at fault; this address is not counted in its status or \
                         uptime. Give the monitor IPv6 connectivity to check it"
                    ),
                );
                e.monitor_side = true;
                return e;
            }
            let family = if addr.is_ipv6() { "IPv6" } else { "IPv4" };
            ProbeError::new(
                ErrorKind::Connect,
                format!(
                    "{shown} is unreachable from the monitor ({err}); a router on the way \
                     reports no route, or the monitor's {family} connectivity is broken"
                ),
            )
        }
        _ => ProbeError::new(
            ErrorKind::Connect,
            format!("connecting to {shown} failed: {err}"),
        ),
    }
}

/// Whether this machine's routing table has a route to `addr`: a UDP socket "connected" to it
/// asks the kernel for the route and sends nothing. No IPv6 on the host (disabled, no address,
/// no default route) fails here, so a connect failure can be told apart from the server's.
fn monitor_has_route(addr: &SocketAddr) -> bool {
    let local: SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    std::net::UdpSocket::bind(local).is_ok_and(|s| s.connect(addr).is_ok())
}

/// Classifies a hyper error on a request for `path`.
pub(crate) fn http_error(e: &hyper::Error, path: &str) -> ProbeError {
    let detail = chain_text(e);
    let reset = detail.contains("reset by peer");
    let msg = if reset {
        format!("the server reset the connection (TCP RST) before a complete answer to {path}")
    } else if e.is_parse() || e.is_parse_status() {
        format!(
            "the answer to {path} is not valid HTTP/1.1 ({detail}); is this port serving something else?"
        )
    } else if e.is_parse_too_large() {
        return ProbeError::new(
            ErrorKind::BodyTooLarge,
            format!(
                "the response headers for {path} are larger than {} KiB",
                crate::net::MAX_HEAD_BUFFER / 1024
            ),
        );
    } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        format!("the connection closed before a complete answer to {path} ({detail})")
    } else {
        format!("the request for {path} failed: {detail}")
    };
    ProbeError::new(ErrorKind::InvalidResponse, msg)
}

/// Classifies a failed TLS handshake with `addr`; certificate problems are `tls_certificate`
/// with the name `expected` explained.
pub(crate) fn tls_error(e: &std::io::Error, addr: &str, expected: &str) -> ProbeError {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        if let rustls::Error::InvalidCertificate(_) = tls {
            return ProbeError::new(
                ErrorKind::TlsCertificate,
                crate::net::tls::explain_certificate_error(tls, expected, None),
            );
        }
        let why = match tls {
            rustls::Error::AlertReceived(alert) => {
                format!("the server sent the TLS alert {alert:?}")
            }
            rustls::Error::PeerIncompatible(p) => {
                format!("no TLS version or cipher in common ({p:?})")
            }
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                "the server does not speak TLS on this port (plain HTTP?)".to_owned()
            }
            other => other.to_string(),
        };
        return ProbeError::new(
            ErrorKind::TlsHandshake,
            format!("TLS handshake with {addr} failed: {why}"),
        );
    }
    let why = match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the handshake".to_owned()
        }
        std::io::ErrorKind::ConnectionReset => {
            "the server reset the connection during the handshake".to_owned()
        }
        _ => e.to_string(),
    };
    ProbeError::new(
        ErrorKind::TlsHandshake,
        format!("TLS handshake with {addr} failed: {why}"),
    )
}
