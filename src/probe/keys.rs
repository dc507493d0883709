//! `GET /_matrix/key/v2/server` checks, as the federation tester does them (discovery.md §3–4):
//! the `server_name` matches the requested name byte for byte, `valid_until_ts` is in the
//! future, an ed25519 key exists, and every ed25519 key's self-signature verifies over the
//! Canonical JSON of the response without `signatures` and `unsigned`. Padded and unpadded
//! base64 are both accepted (the spec asks decoders to accept both; padding gets a warning).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Serialize;
use serde_json::Value;

use crate::signing::canonical_json;

/// The outcome of checking one key response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyChecks {
    /// All checks passed.
    pub all_ok: bool,
    /// `server_name` equals the requested (original) server name.
    pub matching_server_name: bool,
    /// The `server_name` the response carries.
    pub server_name: Option<String>,
    /// `valid_until_ts` is after now.
    pub future_valid_until_ts: bool,
    /// `valid_until_ts`, milliseconds since the epoch.
    pub valid_until_ts: Option<i64>,
    /// At least one `ed25519:*` key in `verify_keys`.
    pub has_ed25519_key: bool,
    /// Per ed25519 key ID.
    pub ed25519: BTreeMap<String, Ed25519Check>,
    /// The ed25519 public keys by key ID, as served (capped), to compare across addresses.
    pub verify_keys: BTreeMap<String, String>,
    /// Problems and advisories in plain words.
    pub notes: Vec<String>,
}

/// At most this many keys per response are kept for comparing addresses.
const MAX_KEYS_COMPARED: usize = 16;

/// When the addresses of one server serve different `verify_keys`, which serves what
/// (`a:8448 serves ed25519:x AbCd…; b:8448 serves ed25519:y …`): a split brain (two servers answering for one name, a stale standby) that makes
/// other servers reject events signed with whichever key they did not fetch. `None` when every
/// address that answered serves the same keys (or fewer than two answered).
pub(crate) fn split_brain<'a>(
    served: impl IntoIterator<Item = (std::net::SocketAddr, &'a KeyChecks)>,
) -> Option<String> {
    let mut groups: Vec<(&BTreeMap<String, String>, Vec<String>)> = Vec::new();
    for (address, checks) in served {
        match groups
            .iter_mut()
            .find(|(keys, _)| **keys == checks.verify_keys)
        {
            Some((_, addresses)) => addresses.push(address.to_string()),
            None => groups.push((&checks.verify_keys, vec![address.to_string()])),
        }
    }
    if groups.len() < 2 {
        return None;
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(keys, addresses)| {
            let keys: Vec<String> = keys
                .iter()
                .map(|(id, key)| format!("{id} {}…", key.chars().take(8).collect::<String>()))
                .collect();
            let keys = if keys.is_empty() {
                "no ed25519 key".to_owned()
            } else {
                keys.join(", ")
            };
            format!(
                "{} serve{} {keys}",
                addresses.join(", "),
                if addresses.len() == 1 { "s" } else { "" }
            )
        })
        .collect();
    Some(parts.join("; "))
}

/// Checks for one ed25519 key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ed25519Check {
    /// The key decodes to 32 bytes.
    pub valid_key: bool,
    /// The self-signature by this key verifies.
    pub matching_signature: bool,
}

/// A base64 decoder that accepts standard or URL-safe alphabets, padded or not.
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    // Lenient on padding (the spec asks for it) and on non-zero trailing bits, which some
    // encoders leave (the spec's own test-vector seed has them).
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let alphabet = if s.contains(['-', '_']) {
        &base64::alphabet::URL_SAFE
    } else {
        &base64::alphabet::STANDARD
    };
    GeneralPurpose::new(alphabet, config).decode(s).ok()
}

/// Verifies the ed25519 signature by `key_id` of `entity` over `object` (spec appendices
/// § Checking for a Signature). Returns why it fails.
pub(crate) fn verify_signature(
    object: &Value,
    entity: &str,
    key_id: &str,
    public_key: &[u8],
) -> Result<(), String> {
    let Value::Object(map) = object else {
        return Err("the signed value is not a JSON object".into());
    };
    let sig_b64 = map
        .get("signatures")
        .and_then(|s| s.get(entity))
        .and_then(|s| s.get(key_id))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no signature by {entity} with {key_id}"))?;
    let sig = decode_b64(sig_b64).ok_or("the signature is not valid base64")?;
    let sig = Signature::from_slice(&sig)
        .map_err(|_| format!("the signature is {} bytes, not 64", sig.len()))?;
    let key_bytes: [u8; 32] = public_key
        .try_into()
        .map_err(|_| format!("the key is {} bytes, not 32", public_key.len()))?;
    let key =
        VerifyingKey::from_bytes(&key_bytes).map_err(|_| "the key is not a valid ed25519 point")?;
    let mut unsigned = map.clone();
    unsigned.remove("signatures");
    unsigned.remove("unsigned");
    let bytes = canonical_json(&Value::Object(unsigned))?;
    key.verify(bytes.as_bytes(), &sig)
        .map_err(|_| "the signature does not match the response".to_owned())
}

/// Runs every check on a parsed key response for `requested` at `now_ms`.
pub fn check_keys(response: &Value, requested: &str, now_ms: i64) -> KeyChecks {
    let mut checks = KeyChecks {
        all_ok: false,
        matching_server_name: false,
        server_name: None,
        future_valid_until_ts: false,
        valid_until_ts: None,
        has_ed25519_key: false,
        ed25519: BTreeMap::new(),
        verify_keys: BTreeMap::new(),
        notes: Vec::new(),
    };
    let Value::Object(map) = response else {
        checks
            .notes
            .push("the key response is not a JSON object".into());
        return checks;
    };
    checks.server_name = map
        .get("server_name")
        .and_then(Value::as_str)
        .map(crate::text::cap);
    checks.matching_server_name = checks.server_name.as_deref() == Some(requested);
    if !checks.matching_server_name {
        checks.notes.push(match &checks.server_name {
            Some(got) => format!(
                "server_name is {got:?}, expected {requested:?}: the server believes it is a \
                 different server (server names compare byte for byte)"
            ),
            None => "server_name is missing".into(),
        });
    }
    checks.valid_until_ts = map.get("valid_until_ts").and_then(Value::as_i64);
    match checks.valid_until_ts {
        Some(ts) if ts > now_ms => {
            checks.future_valid_until_ts = true;
            if ts < now_ms + 3_600_000 {
                checks.notes.push(
                    "valid_until_ts is less than an hour away; the spec advises longer validity"
                        .into(),
                );
            }
        }
        Some(_) => checks
            .notes
            .push("valid_until_ts is in the past: other servers will refuse these keys".into()),
        None => checks
            .notes
            .push("valid_until_ts is missing or not an integer".into()),
    }
    let empty = serde_json::Map::new();
    let keys = map
        .get("verify_keys")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let entity = checks.server_name.clone().unwrap_or_default();
    for (key_id, key) in keys.iter().filter(|(id, _)| id.starts_with("ed25519:")) {
        checks.has_ed25519_key = true;
        let encoded = key.get("key").and_then(Value::as_str).unwrap_or("");
        if encoded.ends_with('=') {
            checks.notes.push(format!(
                "{key_id} is padded base64; the spec uses unpadded base64 and some servers \
                 (those built on gomatrixserverlib) reject padding"
            ));
        }
        let decoded = decode_b64(encoded);
        let valid_key = decoded.as_ref().is_some_and(|k| k.len() == 32);
        let matching_signature = match &decoded {
            Some(bytes) if valid_key => match verify_signature(response, &entity, key_id, bytes) {
                Ok(()) => true,
                Err(why) => {
                    checks.notes.push(format!("{key_id}: {why}"));
                    false
                }
            },
            _ => {
                checks
                    .notes
                    .push(format!("{key_id}: the key is not 32 bytes of base64"));
                false
            }
        };
        if checks.verify_keys.len() < MAX_KEYS_COMPARED {
            checks
                .verify_keys
                .insert(crate::text::cap(key_id), crate::text::cap_to(encoded, 64));
        }
        checks.ed25519.insert(
            crate::text::cap(key_id),
            Ed25519Check {
                valid_key,
                matching_signature,
            },
        );
    }
    if !checks.has_ed25519_key {
        checks.notes.push("verify_keys has no ed25519 key".into());
    }
    let all_keys_ok = checks
        .ed25519
        .values()
        .all(|c| c.valid_key && c.matching_signature);
    checks.all_ok = checks.matching_server_name
        && checks.future_valid_until_ts
        && checks.has_ed25519_key
        && all_keys_ok;
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    const SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    const PUBLIC: &str = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";
    const FIXTURE: &str = r#"{"old_verify_keys":{},"server_name":"domain","signatures":{"domain":{"ed25519:1":"6QF4CTFsIRMNh9VP2byVov3dZqg09+Lg8u74zLtWnu7xHiWOvUOmXxfkJx5EvYS6UziJsbNpAxb5/5rkwiKOAg"}},"valid_until_ts":4102444800000,"verify_keys":{"ed25519:1":{"key":"XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"}}}"#;
    const NOW: i64 = 1_795_000_000_000;

    fn signing_key() -> SigningKey {
        let seed: [u8; 32] = decode_b64(SEED).unwrap().try_into().unwrap();
        SigningKey::from_bytes(&seed)
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    }

    #[test]
    fn spec_vector_seed_gives_the_public_key() {
        assert_eq!(b64(signing_key().verifying_key().as_bytes()), PUBLIC);
    }

    #[test]
    fn spec_vector_signatures() {
        let key = signing_key();
        let empty = canonical_json(&json!({})).unwrap();
        assert_eq!(
            b64(&key.sign(empty.as_bytes()).to_bytes()),
            "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
        );
        let obj = canonical_json(&json!({"two": "Two", "one": 1})).unwrap();
        assert_eq!(obj, r#"{"one":1,"two":"Two"}"#);
        assert_eq!(
            b64(&key.sign(obj.as_bytes()).to_bytes()),
            "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
        );
        // And verification of those published signatures through the public path.
        let public = decode_b64(PUBLIC).unwrap();
        let signed = json!({"one": 1, "two": "Two", "signatures": {"domain": {"ed25519:1":
            "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}}});
        verify_signature(&signed, "domain", "ed25519:1", &public).unwrap();
    }

    #[test]
    fn spec_fixture_passes_every_check() {
        let response: Value = serde_json::from_str(FIXTURE).unwrap();
        let checks = check_keys(&response, "domain", NOW);
        assert!(checks.all_ok, "{checks:?}");
        assert_eq!(
            checks.ed25519["ed25519:1"],
            Ed25519Check {
                valid_key: true,
                matching_signature: true
            }
        );
        assert!(checks.notes.is_empty(), "{:?}", checks.notes);
        // The signed bytes are the canonical form without `signatures`.
        let mut unsigned = response.clone();
        unsigned.as_object_mut().unwrap().remove("signatures");
        assert_eq!(
            canonical_json(&unsigned).unwrap(),
            r#"{"old_verify_keys":{},"server_name":"domain","valid_until_ts":4102444800000,"verify_keys":{"ed25519:1":{"key":"XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI"}}}"#
        );
    }

    #[test]
    fn server_name_compares_byte_for_byte() {
        let response: Value = serde_json::from_str(FIXTURE).unwrap();
        let checks = check_keys(&response, "Domain", NOW);
        assert!(!checks.matching_server_name);
        assert!(!checks.all_ok);
        assert!(checks.notes[0].contains("expected \"Domain\""));
    }

    #[test]
    fn expired_validity() {
        let response: Value = serde_json::from_str(FIXTURE).unwrap();
        let checks = check_keys(&response, "domain", 4_102_444_800_001);
        assert!(!checks.future_valid_until_ts);
        assert!(!checks.all_ok);
        let soon = check_keys(&response, "domain", 4_102_444_800_000 - 60_000);
        assert!(soon.all_ok);
        assert!(soon.notes[0].contains("less than an hour"));
    }

    #[test]
    fn tampered_response_fails_the_signature() {
        let mut response: Value = serde_json::from_str(FIXTURE).unwrap();
        response["old_verify_keys"] = json!({"ed25519:old": {"key": "x", "expired_ts": 1}});
        let checks = check_keys(&response, "domain", NOW);
        assert!(!checks.ed25519["ed25519:1"].matching_signature);
        assert!(!checks.all_ok);
    }

    #[test]
    fn unsigned_is_excluded_from_the_signed_bytes() {
        let mut response: Value = serde_json::from_str(FIXTURE).unwrap();
        response["unsigned"] = json!({"anything": "goes"});
        assert!(check_keys(&response, "domain", NOW).all_ok);
    }

    #[test]
    fn signature_by_another_entity_does_not_count() {
        let mut response: Value = serde_json::from_str(FIXTURE).unwrap();
        let sig = response["signatures"]["domain"].clone();
        response["signatures"] = json!({"other": sig});
        let checks = check_keys(&response, "domain", NOW);
        assert!(!checks.ed25519["ed25519:1"].matching_signature);
        assert!(
            checks
                .notes
                .iter()
                .any(|n| n.contains("no signature by domain"))
        );
    }

    #[test]
    fn padded_base64_is_accepted_with_a_warning() {
        let mut response: Value = serde_json::from_str(FIXTURE).unwrap();
        response["verify_keys"]["ed25519:1"]["key"] = json!(format!("{PUBLIC}="));
        // The key value is part of the signed bytes, so re-sign with the padded key.
        let mut unsigned = response.clone();
        unsigned.as_object_mut().unwrap().remove("signatures");
        let sig = signing_key().sign(canonical_json(&unsigned).unwrap().as_bytes());
        response["signatures"]["domain"]["ed25519:1"] =
            json!(format!("{}==", b64(&sig.to_bytes())));
        let checks = check_keys(&response, "domain", NOW);
        assert!(checks.all_ok, "{checks:?}");
        assert!(checks.notes.iter().any(|n| n.contains("padded base64")));
    }

    #[test]
    fn wrong_key_length_and_missing_keys() {
        let mut response: Value = serde_json::from_str(FIXTURE).unwrap();
        response["verify_keys"]["ed25519:1"]["key"] = json!("AAAA");
        let checks = check_keys(&response, "domain", NOW);
        assert!(!checks.ed25519["ed25519:1"].valid_key);
        assert!(!checks.all_ok);

        response["verify_keys"] = json!({"curve25519:x": {"key": PUBLIC}});
        let checks = check_keys(&response, "domain", NOW);
        assert!(!checks.has_ed25519_key);
        assert!(checks.ed25519.is_empty());
        assert!(!checks.all_ok);
    }

    #[test]
    fn floats_and_big_integers_are_not_canonical() {
        assert!(canonical_json(&json!({"a": 1.5})).is_err());
        assert!(canonical_json(&json!({"a": 9_007_199_254_740_992_i64})).is_err());
        assert!(canonical_json(&json!({"a": -9_007_199_254_740_991_i64})).is_ok());
    }

    #[test]
    fn canonical_json_sorts_by_code_point_and_keeps_utf8() {
        let v = json!({"b": "日本", "a": {"z": [1, 2], "é": null}, "A": true});
        assert_eq!(
            canonical_json(&v).unwrap(),
            r#"{"A":true,"a":{"z":[1,2],"é":null},"b":"日本"}"#
        );
    }

    #[test]
    fn non_object_response() {
        let checks = check_keys(&json!([1, 2]), "domain", NOW);
        assert!(!checks.all_ok);
        assert!(checks.notes[0].contains("not a JSON object"));
    }
}
