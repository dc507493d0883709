//! A test CA (rcgen) and leaf certificates: valid, expired, not yet valid, for other names,
//! for IP addresses, and self-signed ones from no CA at all.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

/// A certificate and its key, ready for a rustls server.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub key: Arc<CertifiedKey>,
}

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem_path: PathBuf,
    _dir: tempfile::TempDir,
}

fn certified(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> Leaf {
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der)
        .unwrap();
    Leaf {
        key: Arc::new(CertifiedKey::new(chain, signing)),
    }
}

fn leaf_params(
    names: &[&str],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
    params.not_before = not_before;
    params.not_after = not_after;
    params
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "mxping test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem_path = dir.path().join("ca.pem");
        std::fs::write(&pem_path, cert.pem()).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            pem_path,
            _dir: dir,
        }
    }

    /// A leaf valid now for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let now = OffsetDateTime::now_utc();
        self.leaf_valid(names, now - Duration::days(1), now + Duration::days(90))
    }

    pub fn leaf_valid(
        &self,
        names: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(names, not_before, not_after)
            .signed_by(&key, &self.issuer)
            .unwrap();
        certified(vec![cert.der().clone()], &key)
    }

    /// Expired yesterday.
    pub fn expired(&self, names: &[&str]) -> Leaf {
        let now = OffsetDateTime::now_utc();
        self.leaf_valid(names, now - Duration::days(90), now - Duration::days(1))
    }
}

/// Self-signed, trusted by nobody.
pub fn self_signed(names: &[&str]) -> Leaf {
    let now = OffsetDateTime::now_utc();
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(names, now - Duration::days(1), now + Duration::days(30))
        .self_signed(&key)
        .unwrap();
    certified(vec![cert.der().clone()], &key)
}
