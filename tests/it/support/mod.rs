//! The loopback harness: a real DNS server, a test CA, HTTPS servers on distinct 127.x
//! addresses at the real ports 443 and 8448, and a config that points the production code at
//! them (the same settings a user would write).

pub mod browser;
pub mod dns;
pub mod hostile;
pub mod https;
pub mod netns;
pub mod pki;
pub mod serve;
pub mod web;

use std::sync::Arc;

use mxping::Services;
use mxping::config::Config;

pub use dns::{Fault, Rr, TestDns};
pub use https::{Handler, HttpsServer, Reply, Seen, TestHost, TlsOptions, Tripwire};
pub use pki::TestCa;

pub struct Harness {
    pub dns: TestDns,
    pub ca: TestCa,
    /// Extra TOML appended to the generated config (e.g. a [monitor] table).
    pub extra: String,
    /// Whether loopback is exempt from the private-address guard (true for most tests).
    pub allow_loopback: bool,
    /// When not empty, `[network] allow` lists exactly these addresses (and not loopback).
    pub allow_only: Vec<std::net::Ipv4Addr>,
    /// Servers listed in the config (a placeholder when empty).
    pub servers: Vec<String>,
    https: Vec<Arc<HttpsServer>>,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness {
            dns: TestDns::start().await,
            ca: TestCa::new(),
            extra: String::new(),
            allow_loopback: true,
            allow_only: Vec::new(),
            servers: Vec::new(),
            https: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The config text: the test DNS server, the test CA, loopback allowed, short timeouts.
    pub fn config_text(&self) -> String {
        let allow = if !self.allow_only.is_empty() {
            let list: Vec<String> = self
                .allow_only
                .iter()
                .map(|ip| format!("\"{ip}/32\""))
                .collect();
            format!("[{}]", list.join(", "))
        } else if self.allow_loopback {
            r#"["127.0.0.0/8", "::1/128"]"#.to_owned()
        } else {
            "[]".to_owned()
        };
        let monitor = if self.extra.contains("[monitor]") {
            ""
        } else {
            "[monitor]\ntimeout = \"3s\"\n"
        };
        let servers: String = if self.servers.is_empty() {
            "[[server]]\nname = \"placeholder.test\"\n".to_owned()
        } else {
            self.servers
                .iter()
                .map(|s| format!("[[server]]\nname = \"{s}\"\n"))
                .collect()
        };
        format!(
            "{monitor}{extra}\n[dns]\nnameservers = [\"{dns}\"]\ntimeout = \"1s\"\n\
             [tls]\nextra_ca_file = \"{ca}\"\n[network]\nallow = {allow}\n{servers}",
            extra = self.extra,
            dns = self.dns.addr,
            ca = self.ca.pem_path.display(),
        )
    }

    pub fn config(&self) -> Config {
        Config::parse(&self.config_text(), "harness.toml", None).unwrap()
    }

    /// Writes the config to a file (for the CLI) and returns its path.
    pub fn config_file(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("servers.toml");
        std::fs::write(&path, self.config_text()).unwrap();
        path
    }

    pub fn services(&self) -> Services {
        Services::new(&self.config()).unwrap()
    }

    /// Serves HTTPS with `tls` and `handler` on `host`'s `port`. The host's other held port is
    /// closed, so connections to it are refused rather than left hanging.
    pub fn serve(
        &mut self,
        host: &mut TestHost,
        port: u16,
        tls: impl Into<TlsOptions>,
        handler: Handler,
    ) -> Arc<HttpsServer> {
        let listener = host.take(port);
        host.release();
        let server = Arc::new(HttpsServer::start(listener, tls, handler));
        self.https.push(server.clone());
        server
    }

    /// The server this harness runs on `ip` (the first one started there).
    pub fn https_on(&self, ip: std::net::Ipv4Addr) -> Arc<HttpsServer> {
        self.https
            .iter()
            .find(|s| s.ip() == Some(ip))
            .cloned()
            .expect("a server on that address")
    }

    /// A new host named `name` in DNS (A record) with a certificate for `name`.
    pub fn host(&self, name: &str) -> TestHost {
        let host = TestHost::claim();
        self.dns.a(name, host.ip);
        host
    }

    /// A homeserver for `server_name` on `host`:`port` with a certificate for `cert_name`.
    pub fn homeserver(
        &mut self,
        host: &mut TestHost,
        port: u16,
        cert_name: &str,
        server_name: &str,
    ) -> Arc<HttpsServer> {
        let leaf = self.ca.leaf(&[cert_name]);
        self.serve(host, port, leaf, https::homeserver(server_name))
    }
}

/// The IP of a claimed host as a string.
pub fn ip(host: &TestHost) -> String {
    host.ip.to_string()
}
