//! Agents' signing keys and the signed `Authorization` header (README "Several vantage
//! points"): ed25519 keys in the file format Synapse uses for its signing keys
//! (`ed25519 <version> <unpadded base64 seed>`), and `MxpingVantage name="…",key="…",sig="…"`.
//! A leaf: the config checks key files with it, agents sign and the hub verifies with it.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

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
    pub fn read(path: &Path) -> Result<Key, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Key::parse(&text).map_err(|problem| KeyError::Invalid {
            path: path.to_owned(),
            problem,
        })
    }

    /// Parses the key file's text.
    pub fn parse(text: &str) -> Result<Key, KeyProblem> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or(KeyProblem::Empty)?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [alg, version, seed] = parts[..] else {
            return Err(KeyProblem::NotOneLine);
        };
        if alg != "ed25519" {
            return Err(KeyProblem::Algorithm(alg.to_owned()));
        }
        let bytes = STANDARD_NO_PAD
            .decode(seed.trim_end_matches('='))
            .map_err(KeyProblem::NotBase64)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyProblem::Length)?;
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
pub(crate) fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyProblem> {
    let bytes = STANDARD_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(KeyProblem::NotBase64)?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyProblem::Length)?;
    VerifyingKey::from_bytes(&bytes).map_err(KeyProblem::NotEd25519)
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("{}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with its text.
        #[source]
        problem: KeyProblem,
    },
}

/// What is wrong with a key's text.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    /// No line that is not a comment.
    #[error("the file is empty; write one with `mxping keygen FILE`")]
    Empty,
    /// Not `ed25519 <version> <seed>`.
    #[error("expected one line `ed25519 <version> <base64 seed>` (as `mxping keygen` writes)")]
    NotOneLine,
    /// Another algorithm.
    #[error("{0:?} keys are not supported; use ed25519")]
    Algorithm(String),
    /// The key is not base64.
    #[error("not base64 ({0})")]
    NotBase64(#[source] base64::DecodeError),
    /// The key is not 32 bytes.
    #[error("not 32 bytes (an ed25519 key)")]
    Length,
    /// The bytes are not an ed25519 public key.
    #[error("not an ed25519 public key ({0})")]
    NotEd25519(#[source] ed25519_dalek::SignatureError),
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
pub(crate) fn parse_authorization(header: &str) -> Option<(String, String, Vec<u8>)> {
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
