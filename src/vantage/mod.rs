//! Several vantage points: agents probe from elsewhere and push signed reports to a hub, which
//! combines every fresh view into one verdict per server ("down for everyone, or only from
//! somewhere?").
//!
//! Signed like homeservers sign: each agent has an ed25519 key in the file format Synapse uses
//! for its signing keys (`ed25519 <version> <unpadded base64 seed>`), written by `mxping keygen`.
//! A report is a JSON body signed as bytes; the signature travels in the `Authorization` header
//! (`MxpingVantage name="…",key="ed25519:…",sig="…"`), so nothing has to be canonicalised. The
//! hub checks the name, the key, the signature, that the body names the same vantage, that it
//! was sent within [`MAX_SKEW`] of the hub's clock, and that it is newer than the last report
//! accepted from that vantage (no replay).

pub mod agent;
pub mod hub;
pub mod store;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Where agents POST their reports, on the hub's web address.
pub const REPORT_PATH: &str = "/api/v1/vantage/report";
/// Largest report body the hub reads (a report of 10,000 servers is about 1.5 MB).
pub const MAX_REPORT_BYTES: usize = 8 * 1024 * 1024;
/// How far a report's send time may be from the hub's clock.
pub const MAX_SKEW_S: i64 = 300;
/// The header scheme.
const SCHEME: &str = "MxpingVantage";

/// An agent's signing key, as read from its key file.
pub struct Key {
    /// `ed25519:<version>`.
    pub id: String,
    signing: SigningKey,
}

impl Key {
    /// A new random key with a random version (`a_` and four letters, as Synapse makes them).
    pub fn generate() -> Key {
        let seed: [u8; 32] = rand::random();
        let letters: String = (0..4)
            .map(|_| {
                let i = rand::random::<u8>() % 52;
                (if i < 26 { b'a' + i } else { b'A' + i - 26 }) as char
            })
            .collect();
        Key {
            id: format!("ed25519:a_{letters}"),
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The key file's line: `ed25519 <version> <seed>`.
    pub fn to_file(&self) -> String {
        let version = self.id.trim_start_matches("ed25519:");
        format!(
            "ed25519 {version} {}\n",
            STANDARD_NO_PAD.encode(self.signing.to_bytes())
        )
    }

    /// Reads a key file (the first ed25519 line; a Synapse signing key file works as is).
    pub fn read(path: &Path) -> Result<Key, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Key::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the key file's text.
    pub fn parse(text: &str) -> Result<Key, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or("the file is empty; write one with `mxping keygen FILE`")?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [alg, version, seed] = parts[..] else {
            return Err(
                "expected one line `ed25519 <version> <base64 seed>` (as `mxping keygen` writes)"
                    .into(),
            );
        };
        if alg != "ed25519" {
            return Err(format!("{alg:?} keys are not supported; use ed25519"));
        }
        let bytes = STANDARD_NO_PAD
            .decode(seed.trim_end_matches('='))
            .map_err(|e| format!("the key is not base64 ({e})"))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the key is not 32 bytes".to_owned())?;
        Ok(Key {
            id: format!("ed25519:{version}"),
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The public key, unpadded base64 (what a hub's `[[vantage]] public_key` holds).
    pub fn public(&self) -> String {
        STANDARD_NO_PAD.encode(self.signing.verifying_key().to_bytes())
    }

    /// The `Authorization` header for `body` sent as vantage `name`. The name is
    /// percent-encoded (UTF-8), so any name a config can hold (`上海`, `a "b", c`) travels in
    /// a header, which carries ASCII only.
    pub fn authorization(&self, name: &str, body: &[u8]) -> String {
        let sig = STANDARD_NO_PAD.encode(self.signing.sign(body).to_bytes());
        format!(
            "{SCHEME} name=\"{}\",key=\"{}\",sig=\"{sig}\"",
            encode_name(name),
            self.id
        )
    }
}

/// A public key from config (unpadded base64; padding accepted).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes = STANDARD_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|e| format!("not base64 ({e})"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "not 32 bytes (an ed25519 public key)".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an ed25519 public key ({e})"))
}

/// A vantage name as the header carries it: UTF-8, every byte but RFC 3986's unreserved
/// characters percent-encoded (so `asia` stays `asia`).
fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name [`encode_name`] encoded; `None` when it is not valid percent-encoded UTF-8.
fn decode_name(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The parts of an `Authorization` header: vantage name (decoded), key ID, signature.
pub fn parse_authorization(header: &str) -> Option<(String, String, Vec<u8>)> {
    let rest = header.strip_prefix(SCHEME)?.trim();
    let (mut name, mut key, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim().strip_prefix('"')?.strip_suffix('"')?.to_owned();
        match k.trim() {
            "name" => name = Some(decode_name(&v)?),
            "key" => key = Some(v),
            "sig" => sig = STANDARD_NO_PAD.decode(v.trim_end_matches('=')).ok(),
            _ => {}
        }
    }
    Some((name?, key?, sig?))
}

/// One server as a vantage saw it in its latest round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// The server name.
    pub server: String,
    /// The vantage's own status for it (with its hysteresis).
    pub status: crate::report::Status,
    /// Whether an address answered in the last round (an address that failed while another
    /// answered still counts the server as reached).
    pub up: bool,
    /// Whether the last round could say anything about the server: false when the vantage
    /// reached none of its addresses through no fault of the server (it has no IPv6 and the
    /// server only IPv6). Such a round is not counted, for the server or against the vantage.
    #[serde(default = "measured_by_default")]
    pub measured: bool,
    /// Headline latency of the last round, milliseconds.
    pub latency_ms: Option<f64>,
    /// When the last round finished (RFC 3339).
    pub checked_at: Option<String>,
    /// The error kind of a failing round.
    pub error: Option<String>,
    /// The delegation it found (`delegated_name`), to spot split DNS.
    pub delegated_name: Option<String>,
    /// The addresses it probed, sorted, to spot geo-DNS.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// Reports of agents from before `measured` existed counted every round.
fn measured_by_default() -> bool {
    true
}

/// Whether a vantage that saw `reached` (per server checked: whether an address answered) is
/// impaired: it checked two or more servers and reached none. Its probes are broken, not the
/// servers, so it must not vote (the hub's own view included).
pub fn impaired(reached: impl IntoIterator<Item = bool>) -> bool {
    let (mut checked, mut any) = (0usize, false);
    for r in reached {
        checked += 1;
        any |= r;
    }
    checked >= 2 && !any
}

/// What an agent sends after its rounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The sending vantage.
    pub vantage: String,
    /// When it was sent, Unix milliseconds (freshness and replay).
    pub sent_at_ms: i64,
    /// The agent's probe interval, seconds (staleness is three of them).
    pub interval_s: u64,
    /// Every server it probes.
    pub servers: Vec<Seen>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    #[test]
    fn keys_round_trip_through_the_synapse_file_format_and_sign() {
        let key = Key::generate();
        let file = key.to_file();
        assert!(
            file.starts_with("ed25519 a_") && file.ends_with('\n'),
            "{file}"
        );
        assert_eq!(file.split_whitespace().count(), 3);
        let again = Key::parse(&file).unwrap();
        assert_eq!(
            (again.id.as_str(), again.public()),
            (key.id.as_str(), key.public())
        );
        let header = key.authorization("asia", b"body");
        let (name, id, sig) = parse_authorization(&header).unwrap();
        assert_eq!((name.as_str(), id.as_str()), ("asia", key.id.as_str()));
        let public = parse_public_key(&key.public()).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        assert!(public.verify(b"body", &sig).is_ok());
        assert!(public.verify(b"other", &sig).is_err());
    }

    #[test]
    fn a_synapse_signing_key_file_is_read() {
        // A key file Synapse generated, and the public key Synapse's own library
        // (signedjson) gives for it.
        let key =
            Key::parse("ed25519 a_RuDk JtXOg+md21rlNPG7D1H4ngwe05Fg1uZTHl+mlNInFAI\n").unwrap();
        assert_eq!(key.id, "ed25519:a_RuDk");
        assert_eq!(key.public(), "BgmJc/3d2sA6R9cB27/VhgPZ6v6cDEzN3xO7kF8Z9SI");
        for bad in [
            "",
            "rsa a_x AAAA",
            "ed25519 a_x",
            "ed25519 a_x !!!",
            "ed25519 a_x AAAA",
        ] {
            assert!(Key::parse(bad).is_err(), "{bad:?}");
        }
    }
}
