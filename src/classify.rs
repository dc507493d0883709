//! Turning library errors (io, rustls, hyper, reqwest) into one [`ErrorKind`] with a message a
//! person can act on. Errors nest: reqwest wraps hyper-util wraps io wraps rustls, and
//! `io::Error::source()` skips the wrapped error, so the chain is walked by hand.

use std::error::Error as StdError;
use std::io;

use crate::error::{ErrorKind, ProbeError};

/// An error produced by our own resolver inside reqwest, carried through its error chain.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.message)]
pub struct Resolution(pub ProbeError);

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

/// The innermost useful message of an error chain.
pub fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let parts: Vec<String> = chain(err).iter().map(|e| e.to_string()).collect();
    // The last element is usually the root cause; keep it short but specific.
    parts.last().cloned().unwrap_or_default()
}

/// Classifies an io error from a TCP connect.
pub fn connect_error(err: &io::Error, addr: &str) -> ProbeError {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ProbeError::new(
            ErrorKind::ConnectRefused,
            format!(
                "{addr} refused the connection: nothing listens on that port, or a firewall rejects it"
            ),
        ),
        io::ErrorKind::TimedOut => ProbeError::new(
            ErrorKind::ConnectTimeout,
            format!("connecting to {addr} timed out"),
        ),
        io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
            let family = if addr.starts_with('[') {
                "IPv6"
            } else {
                "IPv4"
            };
            ProbeError::new(
                ErrorKind::Connect,
                format!(
                    "{addr} is unreachable from the monitor ({err}); check the monitor's {family} connectivity"
                ),
            )
        }
        _ => ProbeError::new(
            ErrorKind::Connect,
            format!("connecting to {addr} failed: {err}"),
        ),
    }
}

/// Classifies a reqwest error for `url`.
pub fn reqwest_error(err: &reqwest::Error, url: &reqwest::Url) -> ProbeError {
    let links = chain(err);
    for e in &links {
        if let Some(Resolution(inner)) = e.downcast_ref::<Resolution>() {
            return inner.clone();
        }
    }
    for e in &links {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            let host = url.host_str().unwrap_or_default();
            return match tls {
                rustls::Error::InvalidCertificate(_) => ProbeError::new(
                    ErrorKind::TlsCertificate,
                    crate::tls::explain_certificate_error(tls, host, None),
                ),
                other => ProbeError::new(
                    ErrorKind::TlsHandshake,
                    format!("TLS handshake with {host} failed: {other}"),
                ),
            };
        }
    }
    for e in &links {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && io.get_ref().is_none()
        {
            let host = url.host_str().unwrap_or_default();
            let port = url.port_or_known_default().unwrap_or(443);
            return connect_error(io, &format!("{host}:{port}"));
        }
    }
    if err.is_timeout() {
        return ProbeError::new(ErrorKind::Timeout, format!("{url} did not answer in time"));
    }
    if err.is_connect() {
        return ProbeError::new(
            ErrorKind::Connect,
            format!("connecting for {url} failed: {}", chain_text(err)),
        );
    }
    ProbeError::new(
        ErrorKind::InvalidResponse,
        format!(
            "{url} did not give a valid HTTP answer: {}",
            chain_text(err)
        ),
    )
}
