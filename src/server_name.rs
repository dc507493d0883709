//! The Matrix server-name grammar (spec appendices § Server Name):
//!
//! ```text
//! server_name = hostname [ ":" port ]
//! port        = 1*5DIGIT
//! hostname    = IPv4address / "[" IPv6address "]" / dns-name
//! IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
//! IPv6address = 2*45IPv6char
//! dns-name    = 1*255dns-char
//! ```
//!
//! Parsing happens before any network activity; an invalid name is an `invalid_name` error.
//! The Rust pitfalls (see discovery.md §1) are handled here: brackets are stripped by hand,
//! the port is checked to be 1–5 ASCII digits *before* `parse::<u16>()` (which accepts `+80`),
//! and port 0 is refused because nothing can connect to it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{ErrorKind, ProbeError};

/// The host part of a server name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 literal such as `1.2.3.4`.
    Ipv4(Ipv4Addr),
    /// An IPv6 literal, written in brackets in the server name.
    Ipv6(Ipv6Addr),
    /// A DNS name, ASCII only, exactly as written (case preserved).
    Dns(String),
}

impl Host {
    /// The IP address when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
            Host::Dns(_) => None,
        }
    }
}

impl fmt::Display for Host {
    /// The host as it appears in a server name or `Host` header (IPv6 in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ipv4(ip) => write!(f, "{ip}"),
            Host::Ipv6(ip) => write!(f, "[{ip}]"),
            Host::Dns(name) => f.write_str(name),
        }
    }
}

/// A syntactically valid Matrix server name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerName {
    raw: String,
    host: Host,
    port: Option<u16>,
}

/// Names longer than this are allowed by the grammar but discouraged by the spec.
pub(crate) const RECOMMENDED_MAX_LEN: usize = 230;

impl ServerName {
    /// Parses `input` against the grammar. The error is always of kind `invalid_name` and says
    /// what is wrong and, where it can, what to write instead.
    pub fn parse(input: &str) -> Result<ServerName, ProbeError> {
        let invalid = |why: String| {
            ProbeError::new(
                ErrorKind::InvalidName,
                format!("invalid server name {input:?}: {why}"),
            )
        };
        if input.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        if !input.is_ascii() {
            let hint = match idna::domain_to_ascii(input) {
                Ok(ascii) if ascii != input => format!("; write its IDNA form {ascii:?} instead"),
                _ => String::new(),
            };
            return Err(invalid(format!(
                "server names are ASCII only (letters, digits, '-', '.'){hint}"
            )));
        }
        if let Some((_, rest)) = input.split_once("://") {
            let host = rest.split('/').next().unwrap_or(rest);
            return Err(invalid(format!(
                "a server name is not a URL; write just the host and optional port, e.g. {host:?}"
            )));
        }
        let (host_part, port_part) = split_host_port(input).map_err(invalid)?;
        let host = parse_host(host_part).map_err(invalid)?;
        let port = match port_part {
            None => None,
            Some(p) => Some(parse_port(p).map_err(invalid)?),
        };
        Ok(ServerName {
            raw: input.to_owned(),
            host,
            port,
        })
    }

    /// The name exactly as given (server names compare case-sensitively).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The host part.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The explicit port, if one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The host as written, without the port (IPv6 keeps its brackets).
    pub fn host_str(&self) -> String {
        self.host.to_string()
    }

    /// The DNS name ends with a dot (`example.org.`), when it does.
    pub fn has_trailing_dot(&self) -> bool {
        matches!(&self.host, Host::Dns(n) if n.ends_with('.'))
    }

    /// The placeholders of the trailing-dot finding (`name`: as written, `bare`: the host
    /// without the dot, `bare_name`: the server name without it), when the name has one.
    pub fn trailing_dot_args(&self) -> Option<Vec<(&'static str, String)>> {
        let Host::Dns(name) = &self.host else {
            return None;
        };
        let bare = name.strip_suffix('.')?;
        Some(vec![
            ("name", self.raw.clone()),
            ("bare", bare.to_owned()),
            ("bare_name", self.raw.replacen(name.as_str(), bare, 1)),
        ])
    }

    /// Notes about a valid but unusual name (upper case, very long, looks like a mistyped IP),
    /// each as a finding code (`upper_case`, `looks_like_ipv4`, `long_name`: `finding_<code>`
    /// in `locales/`) and its placeholders.
    pub fn advisories(&self) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
        let mut notes = Vec::new();
        if let Host::Dns(name) = &self.host {
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                notes.push((
                    "upper_case",
                    vec![
                        ("name", self.raw.clone()),
                        ("lower", self.raw.to_ascii_lowercase()),
                    ],
                ));
            }
            if looks_like_ipv4(name) {
                notes.push(("looks_like_ipv4", vec![("name", name.clone())]));
            }
        }
        if self.raw.len() > RECOMMENDED_MAX_LEN {
            notes.push((
                "long_name",
                vec![
                    ("length", self.raw.len().to_string()),
                    ("max", RECOMMENDED_MAX_LEN.to_string()),
                ],
            ));
        }
        notes
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl std::str::FromStr for ServerName {
    type Err = ProbeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServerName::parse(s)
    }
}

/// Splits at the port separator. A bracketed IPv6 literal may contain colons; anything else
/// splits at the only colon (a second colon means an unbracketed IPv6 address).
fn split_host_port(input: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = input.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err("'[' opens an IPv6 literal but there is no closing ']'".into());
        };
        let host = &input[..close + 2];
        let after = &rest[close + 1..];
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!(
                "unexpected {after:?} after the IPv6 literal; only \":port\" may follow"
            )),
        };
    }
    match input.matches(':').count() {
        0 => Ok((input, None)),
        1 => {
            let (host, port) = input.split_once(':').expect("one colon");
            Ok((host, Some(port)))
        }
        _ => {
            if input.parse::<Ipv6Addr>().is_ok() {
                Err(format!(
                    "IPv6 literals must be in brackets: write \"[{input}]\""
                ))
            } else {
                Err("more than one ':'; only an IPv6 literal in brackets may contain ':'".into())
            }
        }
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    if port.is_empty() {
        return Err("the port after ':' is empty".into());
    }
    // `u16::from_str` accepts "+80"; the grammar is 1*5DIGIT, so check digits first.
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {port:?} must be 1 to 5 digits"));
    }
    match port.parse::<u32>() {
        Ok(0) => Err("port 0 cannot be connected to; use a port from 1 to 65535".into()),
        Ok(p) if p <= u32::from(u16::MAX) => Ok(p as u16),
        _ => Err(format!("port {port} is larger than 65535")),
    }
}

fn parse_host(host: &str) -> Result<Host, String> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        if !(2..=45).contains(&inner.len())
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(format!("{inner:?} is not an IPv6 address"));
        }
        return inner
            .parse::<Ipv6Addr>()
            .map(Host::Ipv6)
            .map_err(|_| format!("{inner:?} is not an IPv6 address"));
    }
    if host.is_empty() {
        return Err("the host name is empty".into());
    }
    // A well-formed dotted quad is an IPv4 literal. `Ipv4Addr::from_str` rejects leading
    // zeros and values above 255; such strings are still valid dns-names (edge case A6).
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ipv4(ip));
    }
    if host.len() > 255 {
        return Err(format!(
            "the host name is {} characters long; at most 255 are allowed",
            host.len()
        ));
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "{bad:?} is not allowed in a host name (only letters, digits, '-' and '.')"
        ));
    }
    // The grammar allows any sequence of dns-chars, but a name with an empty label or a label
    // over 63 octets cannot exist in DNS, so no homeserver could ever reach it. One trailing
    // dot is the root label of a fully qualified name (`example.org.`): valid, and resolvable.
    let labels = host.strip_suffix('.').unwrap_or(host);
    for label in labels.split('.') {
        if label.is_empty() {
            return Err(
                "the host name has an empty label (a leading or doubled '.'), which DNS cannot resolve"
                    .into(),
            );
        }
        if label.len() > 63 {
            return Err(format!(
                "the label {:?}… is {} characters long; DNS allows at most 63",
                &label[..16],
                label.len()
            ));
        }
    }
    Ok(Host::Dns(host.to_owned()))
}

/// Four dot-separated groups of 1–3 digits: the IPv4 shape of the grammar.
fn looks_like_ipv4(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> ServerName {
        ServerName::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
    }

    fn err(input: &str) -> String {
        let e = ServerName::parse(input).expect_err(input);
        assert_eq!(e.kind, ErrorKind::InvalidName);
        e.message
    }

    #[test]
    fn ip_literals() {
        let n = ok("1.2.3.4");
        assert_eq!(n.host(), &Host::Ipv4("1.2.3.4".parse().unwrap()));
        assert_eq!(n.port(), None);
        let n = ok("1.2.3.4:443");
        assert_eq!(n.port(), Some(443));
        let n = ok("[2001:db8::1]");
        assert_eq!(n.host(), &Host::Ipv6("2001:db8::1".parse().unwrap()));
        assert_eq!(n.host_str(), "[2001:db8::1]");
        let n = ok("[2001:db8::1]:8443");
        assert_eq!(n.port(), Some(8443));
        let n = ok("[::ffff:127.0.0.1]");
        assert!(matches!(n.host(), Host::Ipv6(_)));
    }

    #[test]
    fn unbracketed_ipv6_is_invalid_with_a_fix() {
        assert!(err("2001:db8::1").contains("\"[2001:db8::1]\""));
        assert!(err("::1").contains("brackets"));
    }

    #[test]
    fn malformed_brackets() {
        assert!(err("[::1").contains("closing"));
        assert!(err("[::1]x").contains("after the IPv6 literal"));
        assert!(err("[::1]:").contains("empty"));
        assert!(err("[example.com]").contains("not an IPv6"));
        assert!(err("[]").contains("not an IPv6"));
        assert!(err("[fe80::1%eth0]").contains("not an IPv6"));
    }

    #[test]
    fn ports_follow_the_grammar_not_rust_parse() {
        assert!(err("example.com:+80").contains("1 to 5 digits"));
        assert!(err("example.com:65536").contains("larger than 65535"));
        assert!(err("example.com:").contains("empty"));
        assert!(err("example.com:abc").contains("1 to 5 digits"));
        assert!(err("example.com:000080").contains("1 to 5 digits"));
        assert!(err("example.com:0").contains("port 0"));
        assert!(err("example.com:00000").contains("port 0"));
        assert_eq!(ok("example.com:00080").port(), Some(80));
        assert_eq!(ok("example.com:65535").port(), Some(65535));
        assert!(err("example.com:1:2").contains("more than one"));
    }

    #[test]
    fn dns_names() {
        let n = ok("matrix.org");
        assert_eq!(n.host(), &Host::Dns("matrix.org".into()));
        assert!(n.advisories().is_empty());
        // Not valid dotted quads, but valid dns-names (A6): looked up in DNS, with a note.
        for s in ["256.1.1.1", "01.2.3.4"] {
            let n = ok(s);
            assert_eq!(n.host(), &Host::Dns(s.into()));
            assert_eq!(n.advisories()[0].0, "looks_like_ipv4", "{s}");
        }
        // Case is kept exactly (A9) and flagged.
        let n = ok("Example.COM");
        assert_eq!(n.as_str(), "Example.COM");
        assert_eq!(
            n.advisories()[0],
            (
                "upper_case",
                vec![
                    ("name", "Example.COM".to_owned()),
                    ("lower", "example.com".to_owned())
                ]
            )
        );
    }

    #[test]
    fn bad_dns_names() {
        assert!(err("").contains("empty"));
        assert!(err("matrix example.com").contains("' '"));
        assert!(err("matrix.example.com/").contains("'/'"));
        let url = err("https://matrix.example.com/path");
        assert!(
            url.contains("not a URL") && url.contains("e.g. \"matrix.example.com\""),
            "{url}"
        );
        assert!(err("a..b").contains("empty label"));
        assert!(err(".example.com").contains("empty label"));
        assert!(err("example.com..").contains("empty label"));
        assert!(err(".").contains("empty label"));
        let fq = ok("example.com.");
        assert_eq!(fq.host(), &Host::Dns("example.com.".into()));
        assert!(fq.has_trailing_dot());
        assert_eq!(ok("example.com.:8448").port(), Some(8448));
        let args = fq.trailing_dot_args().unwrap();
        assert_eq!(args[1], ("bare", "example.com".to_owned()));
        assert_eq!(
            ok("example.com.:8448").trailing_dot_args().unwrap()[2],
            ("bare_name", "example.com:8448".to_owned())
        );
        assert!(ok("example.com").trailing_dot_args().is_none());
        assert!(err(&format!("{}.com", "a".repeat(64))).contains("at most 63"));
        let long = vec!["abcdefghij"; 24].join(".");
        assert!(long.len() > 255);
        assert!(err(&long).contains("at most 255"));
    }

    #[test]
    fn long_but_valid_names_get_an_advisory() {
        let name = vec!["abcdefghi"; 24].join(".");
        assert!(name.len() > RECOMMENDED_MAX_LEN && name.len() <= 255);
        let n = ok(&name);
        assert!(
            n.advisories()
                .iter()
                .any(|(code, args)| *code == "long_name"
                    && args.contains(&("max", "230".to_owned())))
        );
    }

    #[test]
    fn non_ascii_suggests_the_idna_form() {
        let msg = err("bücher.com");
        assert!(msg.contains("xn--bcher-kva.com"), "{msg}");
        ok("xn--bcher-kva.com");
    }
}
