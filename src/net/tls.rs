//! TLS settings shared by the well-known fetch and the probe: the trusted roots (the public
//! `webpki-roots` so the container needs no CA bundle, plus `[tls] extra_ca_file`), client
//! configurations, and the facts a person needs about a server's certificate.
//!
//! The probe uses a [`RecordingVerifier`]: it runs the standard WebPKI verification for the
//! expected name and *records* the verdict instead of aborting the handshake. A certificate
//! problem still fails the round (`tls_certificate`), but the report can also show what the
//! server would have answered — as the federation tester does with its separate certificate
//! check. Nothing secret is ever sent: the probe only requests public, unauthenticated endpoints.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::Serialize;
use time::OffsetDateTime;

/// The crypto provider used everywhere (ring: small, fast to build, no C toolchain quirks).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide default provider, for clients built without an explicit TLS
/// configuration (the plain-HTTP health check). Idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client configuration that verifies certificates normally (for the well-known fetch).
pub(crate) fn verifying_config(roots: Arc<RootCertStore>) -> ClientConfig {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// The probe's TLS setup: a base configuration and the verifier it wraps per connection.
#[derive(Clone)]
pub struct ProbeTls {
    base: ClientConfig,
    webpki: Arc<WebPkiServerVerifier>,
}

impl ProbeTls {
    /// Builds the probe's TLS setup from the trusted roots.
    pub fn new(roots: Arc<RootCertStore>) -> ProbeTls {
        let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .expect("a non-empty root store builds a verifier");
        let mut base = verifying_config(roots);
        // Every round measures a full handshake: no session resumption, no 0-RTT.
        base.resumption = rustls::client::Resumption::disabled();
        base.enable_early_data = false;
        ProbeTls { base, webpki }
    }

    /// A configuration for one connection plus the slot its verifier writes the verdict to.
    pub fn for_connection(&self) -> (Arc<ClientConfig>, Arc<RecordingVerifier>) {
        let verifier = Arc::new(RecordingVerifier {
            inner: self.webpki.clone(),
            verdict: Mutex::new(None),
        });
        let mut config = self.base.clone();
        config
            .dangerous()
            .set_certificate_verifier(verifier.clone());
        (Arc::new(config), verifier)
    }
}

/// Runs WebPKI verification and records its result; see the module docs for why.
#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    verdict: Mutex<Option<Result<(), rustls::Error>>>,
}

impl RecordingVerifier {
    /// The verification result, once the server's certificate has been seen.
    pub fn verdict(&self) -> Option<Result<(), rustls::Error>> {
        self.verdict.lock().expect("verdict lock").clone()
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ());
        *self.verdict.lock().expect("verdict lock") = Some(result);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The handshake signature is always checked: it proves the peer holds the key.
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a certificate says, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject common name, if any.
    pub subject: Option<String>,
    /// Issuer common name (or the whole issuer DN when it has no CN).
    pub issuer: String,
    /// DNS and IP subject alternative names.
    pub names: Vec<String>,
    /// Start of validity, RFC 3339.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub not_before: OffsetDateTime,
    /// End of validity, RFC 3339.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER encoding, hex.
    pub sha256: String,
}

impl CertInfo {
    /// Parses the end-entity certificate; `None` if it is not valid X.509.
    pub fn parse(der: &CertificateDer<'_>) -> Option<CertInfo> {
        use x509_parser::prelude::*;
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        let cn = |name: &X509Name<'_>| {
            name.iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_owned)
        };
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            names.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
        let mut sha256 = String::with_capacity(64);
        for b in digest.as_ref() {
            let _ = write!(sha256, "{b:02x}");
        }
        Some(CertInfo {
            subject: cn(cert.subject()),
            issuer: cn(cert.issuer()).unwrap_or_else(|| cert.issuer().to_string()),
            names,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            sha256,
        })
    }

    /// The names the certificate is valid for, or its CN when it has no SANs.
    pub fn names_for_display(&self) -> String {
        if self.names.is_empty() {
            self.subject
                .clone()
                .unwrap_or_else(|| "no name at all".into())
        } else {
            self.names.join(", ")
        }
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => Some(<[u8; 4]>::try_from(bytes).ok()?.into()),
        16 => Some(<[u8; 16]>::try_from(bytes).ok()?.into()),
        _ => None,
    }
}

/// A sentence explaining a certificate verification failure, naming the expected name and
/// what the certificate actually says.
pub(crate) fn explain_certificate_error(
    err: &rustls::Error,
    expected: &str,
    cert: Option<&CertInfo>,
) -> String {
    let presented = cert.map(CertInfo::names_for_display);
    match err {
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let names = presented.unwrap_or_else(|| "other names".into());
                format!("certificate is for {names}, expected {expected}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                let when = cert
                    .map(|c| format!(" on {}", c.not_after.date()))
                    .unwrap_or_default();
                format!("certificate for {expected} expired{when}; renew it")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                let when = cert
                    .map(|c| format!(" until {}", c.not_before.date()))
                    .unwrap_or_default();
                format!("certificate for {expected} is not valid yet{when}; check the server clock")
            }
            CertificateError::UnknownIssuer => {
                let issuer = cert
                    .map(|c| format!(" (issuer: {})", c.issuer))
                    .unwrap_or_default();
                format!(
                    "certificate for {expected} is not signed by a trusted CA{issuer}: it is \
                     self-signed, from a private CA, or the server does not send the \
                     intermediate certificates"
                )
            }
            CertificateError::BadSignature => {
                format!("certificate chain for {expected} has an invalid signature")
            }
            CertificateError::Revoked => format!("certificate for {expected} has been revoked"),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                format!("certificate for {expected} is not valid for TLS server authentication")
            }
            other => format!("certificate for {expected} was rejected: {other:?}"),
        },
        other => format!("certificate for {expected} was rejected: {other}"),
    }
}

/// Whole days from `now` until `t` (negative when in the past).
pub(crate) fn days_until(t: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (t - now).whole_days()
}
