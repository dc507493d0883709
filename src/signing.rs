//! Signing keys, Canonical JSON and signed headers: ed25519 keys in the file format Synapse
//! uses for its signing keys (`ed25519 <version> <unpadded base64 seed>`); the agents'
//! `MxpingVantage name="…",key="…",sig="…"` header (README "Several vantage points"); and, for
//! taking part in federation, JSON signed as the spec's appendix says, a server's self-signed
//! key response, and the `X-Matrix` request authentication header. A leaf: the config checks
//! key files with it, agents sign and the hub verifies with it, probes check servers' keys.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde_json::{Value, json};

/// The header scheme.
const SCHEME: &str = "MxpingVantage";
/// Canonical JSON allows integers in this range only.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Encodes `value` as Matrix Canonical JSON: keys sorted by code point, no insignificant
/// whitespace, raw UTF-8, integers only within ±(2^53−1).
pub fn canonical_json(value: &Value) -> Result<String, String> {
    check_canonical_numbers(value)?;
    // serde_json's default map is a BTreeMap<String, _>: keys sort by byte order, which for
    // UTF-8 is code-point order. Compact output writes non-ASCII as raw UTF-8.
    serde_json::to_string(value).map_err(|e| e.to_string())
}

fn check_canonical_numbers(value: &Value) -> Result<(), String> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) => Ok(()),
            _ => Err(format!(
                "{n} cannot be encoded as Canonical JSON (integers within ±(2^53-1) only)"
            )),
        },
        Value::Array(items) => items.iter().try_for_each(check_canonical_numbers),
        Value::Object(map) => map.values().try_for_each(check_canonical_numbers),
        _ => Ok(()),
    }
}

/// A signing key (an agent's, or the one mxping federates with), as read from its key file.
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
        // As lenient as Synapse's reader: padding or not, and non-zero trailing bits (the
        // spec's own example seed has them).
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        let bytes = lenient.decode(seed).map_err(KeyProblem::NotBase64)?;
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

    /// The signature of `value` (a JSON object), as the spec's appendix signs JSON: over the
    /// Canonical JSON of the object without `signatures` and `unsigned`, unpadded base64.
    pub fn sign_json(&self, value: &Value) -> Result<String, String> {
        let Value::Object(map) = value else {
            return Err("only a JSON object can be signed".into());
        };
        let mut unsigned = map.clone();
        unsigned.remove("signatures");
        unsigned.remove("unsigned");
        let bytes = canonical_json(&Value::Object(unsigned))?;
        Ok(STANDARD_NO_PAD.encode(self.signing.sign(bytes.as_bytes()).to_bytes()))
    }

    /// `server_name`'s key response (`GET /_matrix/key/v2/server`), signed by this key and
    /// valid until `valid_until_ts` (milliseconds since the epoch).
    pub fn server_keys(&self, server_name: &str, valid_until_ts: i64) -> Value {
        let mut response = json!({
            "server_name": server_name,
            "valid_until_ts": valid_until_ts,
            "verify_keys": {self.id.as_str(): {"key": self.public()}},
            "old_verify_keys": {},
        });
        let sig = self
            .sign_json(&response)
            .expect("a key response is Canonical JSON");
        response["signatures"] = json!({server_name: {self.id.as_str(): sig}});
        response
    }

    /// The `Authorization` header of a federation request from `origin` to `destination`
    /// (spec "Request Authentication"): `uri` is the path with its query string, as sent;
    /// `content`, the JSON body, if any.
    pub fn x_matrix(
        &self,
        origin: &str,
        destination: &str,
        method: &str,
        uri: &str,
        content: Option<&Value>,
    ) -> String {
        let mut request = json!({
            "method": method,
            "uri": uri,
            "origin": origin,
            "destination": destination,
        });
        if let Some(c) = content {
            request["content"] = c.clone();
        }
        let sig = self
            .sign_json(&request)
            .expect("a request is Canonical JSON");
        format!(
            "X-Matrix origin=\"{origin}\",destination=\"{destination}\",key=\"{}\",sig=\"{sig}\"",
            self.id
        )
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
    crate::text::percent_encode(name)
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

    /// What an `X-Matrix` header says (spec "Request Authentication").
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct XMatrix {
        /// The sending server.
        origin: String,
        /// The receiving server, when given (required since Matrix 1.3).
        destination: Option<String>,
        /// The signing key's ID (`ed25519:…`).
        key: String,
        /// The signature, unpadded base64.
        sig: String,
    }

    /// Reads an `Authorization: X-Matrix …` header as a receiving server does (Synapse's and the
    /// spec's grammar), to check what [`Key::x_matrix`] writes: the scheme (any case), then comma-separated
    /// `name=value` pairs whose values are quoted strings (with `\` escapes) or tokens; unknown
    /// names are ignored, and `origin`, `key` and `sig` are required.
    fn parse_x_matrix(header: &str) -> Option<XMatrix> {
        let (scheme, params) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("X-Matrix") {
            return None;
        }
        let mut found: std::collections::BTreeMap<String, String> = Default::default();
        let mut rest = params.trim_start();
        while !rest.is_empty() {
            let (name, after) = rest.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            let after = after.trim_start();
            let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next()? {
                        (i, '"') => break i,
                        (_, '\\') => value.push(chars.next()?.1),
                        (_, c) => value.push(c),
                    }
                };
                (value, &quoted[end + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            };
            found.entry(name).or_insert(value);
            let next = next.trim_start();
            rest = match next.strip_prefix(',') {
                Some(r) => r.trim_start(),
                None if next.is_empty() => next,
                None => return None,
            };
        }
        Some(XMatrix {
            origin: found.remove("origin")?,
            destination: found.remove("destination"),
            key: found.remove("key")?,
            sig: found.remove("sig")?,
        })
    }

    /// The key of the spec's signing examples (appendices, "Signing JSON").
    fn spec_key() -> Key {
        Key::parse("ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1").unwrap()
    }

    #[test]
    fn json_is_signed_as_the_spec_examples_and_synapse_sign_it() {
        let key = spec_key();
        assert_eq!(key.public(), "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI");
        // The spec's two examples.
        assert_eq!(
            key.sign_json(&json!({})).unwrap(),
            "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
        );
        assert_eq!(
            key.sign_json(&json!({"two": "Two", "one": 1})).unwrap(),
            "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
        );
        // `signatures` and `unsigned` are not signed.
        assert_eq!(
            key.sign_json(
                &json!({"one": 1, "two": "Two", "signatures": {"x": {}}, "unsigned": {"age": 5}})
            )
            .unwrap(),
            key.sign_json(&json!({"one": 1, "two": "Two"})).unwrap()
        );
        assert!(key.sign_json(&json!([1])).is_err());
        assert!(
            key.sign_json(&json!({"a": 1.5})).is_err(),
            "not Canonical JSON"
        );
        // A federation request as Synapse's library (signedjson 1.1, sign_json) signs it.
        let header = key.x_matrix(
            "status.test",
            "remote.test",
            "GET",
            "/_matrix/federation/v1/query/profile?user_id=%40mxping-probe%3Aremote.test&field=displayname",
            None,
        );
        assert_eq!(
            header,
            "X-Matrix origin=\"status.test\",destination=\"remote.test\",key=\"ed25519:1\",\
             sig=\"wnKwbi57XlpcjuEEpwSWUw0HL18v/w1kQO4xm6AqzFsFTlcyqHlJphSacxYdsKIl/0t5dID2zH97bUt7o7oFDw\""
        );
    }

    #[test]
    fn x_matrix_headers_are_read_with_quoted_and_unquoted_values() {
        let parsed = parse_x_matrix(
            "X-Matrix origin=\"origin.hs.example.com\",destination=\"destination.hs.example.com\",key=\"ed25519:key1\",sig=\"ABCDEF...\"",
        )
        .unwrap();
        assert_eq!(
            parsed,
            XMatrix {
                origin: "origin.hs.example.com".into(),
                destination: Some("destination.hs.example.com".into()),
                key: "ed25519:key1".into(),
                sig: "ABCDEF...".into(),
            }
        );
        // Unquoted values, another order, spaces, another case of the scheme and the names,
        // an unknown parameter, an escaped quote, no destination (before Matrix 1.3).
        let parsed = parse_x_matrix(
            "x-matrix  Key=ed25519:a_b , sig = \"s\\\"ig\", future=1,origin=old.example:8448",
        )
        .unwrap();
        assert_eq!(parsed.origin, "old.example:8448");
        assert_eq!(parsed.key, "ed25519:a_b");
        assert_eq!(parsed.sig, "s\"ig");
        assert_eq!(parsed.destination, None);
        for bad in [
            "Bearer abc",
            "X-Matrix",
            "X-Matrix origin=\"a\",key=\"ed25519:1\"",
            "X-Matrix origin=\"a,key=\"ed25519:1\",sig=x",
            "X-Matrix origin=\"a\" key=\"ed25519:1\",sig=x",
        ] {
            assert_eq!(parse_x_matrix(bad), None, "{bad}");
        }
        // What this module writes, it reads.
        let key = spec_key();
        let header = key.x_matrix("a.test", "b.test", "GET", "/x?y=z", None);
        let parsed = parse_x_matrix(&header).unwrap();
        assert_eq!(
            (
                parsed.origin.as_str(),
                parsed.destination.as_deref(),
                parsed.key.as_str()
            ),
            ("a.test", Some("b.test"), "ed25519:1")
        );
    }

    #[test]
    fn a_key_response_is_self_signed_and_expires_when_asked() {
        let key = spec_key();
        let r = key.server_keys("status.test", 1_800_000_000_000);
        assert_eq!(r["server_name"], "status.test");
        assert_eq!(r["valid_until_ts"], 1_800_000_000_000_i64);
        assert_eq!(
            r["verify_keys"]["ed25519:1"]["key"],
            "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"
        );
        let sig = r["signatures"]["status.test"]["ed25519:1"]
            .as_str()
            .unwrap();
        assert_eq!(
            sig,
            key.sign_json(&r).unwrap(),
            "signed without its signatures"
        );
        let sig =
            ed25519_dalek::Signature::from_slice(&STANDARD_NO_PAD.decode(sig).unwrap()).unwrap();
        let mut unsigned = r.clone();
        unsigned.as_object_mut().unwrap().remove("signatures");
        let public = parse_public_key(&key.public()).unwrap();
        assert!(
            public
                .verify(canonical_json(&unsigned).unwrap().as_bytes(), &sig)
                .is_ok()
        );
    }

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
