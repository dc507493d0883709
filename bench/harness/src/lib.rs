//! Shared pieces of the benchmark binaries: TLS from PEM files, argument parsing.

use std::sync::Arc;

/// A rustls server config from a certificate chain and key in PEM files.
pub fn server_tls(cert: &str, key: &str) -> Arc<rustls::ServerConfig> {
    let certs = rustls_pemfile::certs(&mut std::fs::read(cert).expect("cert file").as_slice())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates");
    let key = rustls_pemfile::private_key(&mut std::fs::read(key).expect("key file").as_slice())
        .expect("PEM key")
        .expect("a private key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("certificate and key match");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The value after `--name` in the arguments, if given.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Like [`arg`], required.
pub fn required(name: &str) -> String {
    arg(name).unwrap_or_else(|| panic!("missing {name}"))
}
