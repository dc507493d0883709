//! The trust store `[tls]` chooses: the config owns the type and checks that its files load,
//! and the network code builds its TLS configurations from what this returns.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;

/// Which trust store certificates are checked against (`[tls] roots`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Roots {
    /// The public roots built into mxping (Mozilla's, via `webpki-roots`): the same everywhere,
    /// so the container image needs no CA bundle.
    #[default]
    Webpki,
    /// The operating system's trust store (`rustls-native-certs`), as the spec encourages:
    /// what the machine's administrator decided to trust, including a company CA.
    System,
}

impl Roots {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Roots::Webpki => "webpki",
            Roots::System => "system",
        }
    }
}

/// Why the trusted roots could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// `extra_ca_file` cannot be read.
    #[error("cannot read CA file {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The read error.
        source: std::io::Error,
    },
    /// `extra_ca_file` is not PEM.
    #[error("{} is not valid PEM: {detail}", path.display())]
    NotPem {
        /// The file.
        path: std::path::PathBuf,
        /// The parser's words.
        detail: String,
    },
    /// A certificate in `extra_ca_file` cannot be a trust anchor.
    #[error("{} holds a certificate that cannot be a trust anchor: {detail}", path.display())]
    BadAnchor {
        /// The file.
        path: std::path::PathBuf,
        /// The verifier's words.
        detail: String,
    },
    /// `extra_ca_file` has no certificate in it.
    #[error("{} holds no PEM certificates (expected -----BEGIN CERTIFICATE----- blocks)", path.display())]
    Empty {
        /// The file.
        path: std::path::PathBuf,
    },
    /// `roots = "system"` and the operating system's store gave nothing usable.
    #[error("the operating system's trust store has no usable certificates{why}")]
    SystemStore {
        /// What the loader said, `" (…)"`, or nothing.
        why: String,
    },
}

/// The roots chosen by `roots` plus the certificates in `extra_ca_file` (PEM), if given.
pub fn load_roots(
    roots_from: Roots,
    extra_ca_file: Option<&Path>,
) -> Result<Arc<RootCertStore>, RootsError> {
    let mut roots = RootCertStore::empty();
    match roots_from {
        Roots::Webpki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(RootsError::SystemStore {
                    why: if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({why})")
                    },
                });
            }
        }
    }
    if let Some(path) = extra_ca_file {
        let pem = std::fs::read(path).map_err(|source| RootsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut found = 0;
        for item in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = item.map_err(|e| RootsError::NotPem {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
            roots.add(cert).map_err(|e| RootsError::BadAnchor {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(RootsError::Empty {
                path: path.to_owned(),
            });
        }
    }
    Ok(Arc::new(roots))
}
