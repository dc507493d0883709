//! The bounded set of failure kinds (design.md "Error kinds") and the error value that carries
//! one kind plus a message a person can act on. The scheduler, the page, the JSON API and the
//! metrics all branch on [`ErrorKind`], so the set never grows without a design change.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

/// Why a discovery or probe failed. Serialized in snake_case; used as the `result` metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The server name does not follow the Matrix server-name grammar.
    InvalidName,
    /// A DNS lookup failed for a reason other than "no such record" (SERVFAIL, timeout, ...).
    Dns,
    /// Every lookup succeeded but no address was found.
    NoAddress,
    /// The address is loopback/private/... and not listed in `[network] allow`.
    BlockedAddress,
    /// The SRV record's target is `.`: the service is explicitly not offered (RFC 2782).
    ServiceUnavailable,
    /// The TCP connection was actively refused (RST).
    ConnectRefused,
    /// The TCP connection did not complete in time.
    ConnectTimeout,
    /// Any other TCP connection failure (unreachable network or host, ...).
    Connect,
    /// The TLS handshake failed for a reason other than the certificate.
    TlsHandshake,
    /// The certificate is not valid for the expected name, expired, or not trusted.
    TlsCertificate,
    /// The round did not finish within the configured timeout.
    Timeout,
    /// The server answered with a non-success HTTP status.
    HttpStatus,
    /// The answer was not the JSON the endpoint should return, or not HTTP at all.
    InvalidResponse,
    /// The response body exceeded the size cap.
    BodyTooLarge,
}

impl ErrorKind {
    /// Every kind, in a stable order (used to pre-create metric series).
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::InvalidName,
        ErrorKind::Dns,
        ErrorKind::NoAddress,
        ErrorKind::BlockedAddress,
        ErrorKind::ServiceUnavailable,
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::Connect,
        ErrorKind::TlsHandshake,
        ErrorKind::TlsCertificate,
        ErrorKind::Timeout,
        ErrorKind::HttpStatus,
        ErrorKind::InvalidResponse,
        ErrorKind::BodyTooLarge,
    ];

    /// The snake_case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::Dns => "dns",
            ErrorKind::NoAddress => "no_address",
            ErrorKind::BlockedAddress => "blocked_address",
            ErrorKind::ServiceUnavailable => "service_unavailable",
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::TlsHandshake => "tls_handshake",
            ErrorKind::TlsCertificate => "tls_certificate",
            ErrorKind::Timeout => "timeout",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::InvalidResponse => "invalid_response",
            ErrorKind::BodyTooLarge => "body_too_large",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of one kind with a human-readable explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ProbeError {
    /// Which of the bounded kinds this is.
    pub kind: ErrorKind,
    /// What happened and, where possible, what to do about it.
    pub message: String,
    /// The failure is the monitor's own, not the server's: this monitor has no route to the
    /// address (no IPv6). Such an address is not counted in the server's status or uptime.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monitor_side: bool,
    /// What the monitor ran out of, when that is why this failed (`monitor_side` is then
    /// true): the round says nothing about the server.
    #[serde(
        default,
        rename = "monitor_trouble",
        skip_serializing_if = "Option::is_none"
    )]
    pub trouble: Option<Trouble>,
}

impl ProbeError {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProbeError {
            kind,
            message: message.into(),
            monitor_side: false,
            trouble: None,
        }
    }

    /// The monitor's own failure: it ran out of `trouble` while doing this.
    pub fn monitor_trouble(kind: ErrorKind, trouble: Trouble, message: impl Into<String>) -> Self {
        ProbeError {
            kind,
            message: format!(
                "{}: {}. The server is not at fault; this round is not counted",
                message.into(),
                trouble.explain()
            ),
            monitor_side: true,
            trouble: Some(trouble),
        }
    }
}

/// What the monitor ran out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trouble {
    /// EMFILE or ENFILE: no file descriptor for a socket (the process's or the system's
    /// open-file limit).
    OpenFiles,
    /// ENOBUFS: the kernel had no buffer space for the socket.
    Buffers,
    /// ENOMEM: no memory.
    Memory,
}

impl Trouble {
    /// Every kind, in the order they are shown.
    pub const ALL: [Trouble; 3] = [Trouble::OpenFiles, Trouble::Buffers, Trouble::Memory];

    /// The contract name (metric label, JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Trouble::OpenFiles => "open_files",
            Trouble::Buffers => "buffers",
            Trouble::Memory => "memory",
        }
    }

    /// What it means, for a log line or `/healthz`.
    pub fn explain(self) -> &'static str {
        match self {
            Trouble::OpenFiles => {
                "the monitor ran out of file descriptors (its open-file limit); raise \
                 LimitNOFILE / ulimit -n, or lower [web] max_connections or [monitor] concurrency"
            }
            Trouble::Buffers => "the kernel had no buffer space for the monitor's sockets",
            Trouble::Memory => "the monitor could not allocate memory",
        }
    }

    /// The trouble an io error reports, if it is one.
    pub fn of_io(e: &io::Error) -> Option<Trouble> {
        use nix::errno::Errno;
        if e.kind() == io::ErrorKind::OutOfMemory {
            return Some(Trouble::Memory);
        }
        let code = e.raw_os_error()?;
        match Errno::from_raw(code) {
            Errno::EMFILE | Errno::ENFILE => Some(Trouble::OpenFiles),
            Errno::ENOBUFS => Some(Trouble::Buffers),
            Errno::ENOMEM => Some(Trouble::Memory),
            _ => None,
        }
    }

    /// Whether this process can open a socket now: `Some(trouble)` when it cannot for one
    /// of these reasons. For failures whose cause a library does not pass on (a resolver
    /// that says only "no connections").
    pub fn now() -> Option<Trouble> {
        match std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)) {
            Ok(_) => None,
            Err(e) => Trouble::of_io(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_their_contract_names() {
        for kind in ErrorKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: ErrorKind = serde_json::from_str(&json).unwrap();
            assert_eq!(back, kind);
        }
    }

    #[test]
    fn all_lists_every_kind_once() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }
}
