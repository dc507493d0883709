//! HTTPS servers for the tests: rustls + hyper on a given listener (127.x on the real ports
//! 443 and 8448), answering however a case needs, and recording the SNI and `Host` of every
//! request so tests can assert what the production code actually sent.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::Rng;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::pki::Leaf;

/// What the server saw of one request. Two are equal when everything but `headers` is
/// (discovery tests compare SNI, method, Host, path, User-Agent and body exactly).
#[derive(Clone, Debug)]
pub struct Seen {
    pub sni: Option<String>,
    pub method: String,
    pub host: Option<String>,
    pub path: String,
    /// The path and query, as sent.
    pub uri: String,
    /// The User-Agent, to tell the monitor's requests from a browser's.
    pub user_agent: Option<String>,
    /// The request body (at most 64 KiB are read).
    pub body: Vec<u8>,
    /// Every header, names in lowercase.
    pub headers: Vec<(String, String)>,
}

impl PartialEq for Seen {
    fn eq(&self, o: &Seen) -> bool {
        (
            &self.sni,
            &self.method,
            &self.host,
            &self.path,
            &self.user_agent,
            &self.body,
        ) == (&o.sni, &o.method, &o.host, &o.path, &o.user_agent, &o.body)
    }
}

impl Seen {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How to answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    pub close: bool,
}

impl Reply {
    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: body.into(),
            delay: Duration::ZERO,
            close: false,
        }
    }
    pub fn json(v: Value) -> Reply {
        Reply::status(200, v.to_string()).header("content-type", "application/json")
    }
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::status(status, "").header("location", location)
    }
    pub fn not_found() -> Reply {
        Reply::status(404, r#"{"errcode":"M_UNRECOGNIZED"}"#)
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
    pub fn close(mut self) -> Reply {
        self.close = true;
        self
    }
}

pub type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

pub fn handler(f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Handler {
    Arc::new(f)
}

/// Answers `/.well-known/matrix/server` with `body` and everything else with 404.
pub fn well_known(body: Value) -> Handler {
    handler(move |seen| match seen.path.as_str() {
        "/.well-known/matrix/server" => Reply::json(body.clone()),
        _ => Reply::not_found(),
    })
}

/// A homeserver called `name`: `/version` says Synapse 1.163.2, `/key/v2/server` is a valid
/// self-signed key response for `name`.
pub fn homeserver(name: &str) -> Handler {
    let keys = signed_keys(name, i64::MAX / 2);
    handler(move |seen| match seen.path.as_str() {
        "/_matrix/federation/v1/version" => {
            Reply::json(json!({"server": {"name": "Synapse", "version": "1.163.2"}}))
                .header("access-control-allow-origin", "*")
        }
        "/_matrix/key/v2/server" => Reply::json(keys.clone()),
        _ => Reply::not_found(),
    })
}

/// A key response for `server_name` signed by a fresh ed25519 key.
pub fn signed_keys(server_name: &str, valid_until_ts: i64) -> Value {
    // One key per server name, as a real server has: every address of it serves the same.
    let digest = ring::digest::digest(&ring::digest::SHA256, server_name.as_bytes());
    let seed: [u8; 32] = digest.as_ref().try_into().unwrap();
    signed_keys_with_seed(server_name, valid_until_ts, seed)
}

/// A key response for `server_name` signed by the ed25519 key made from `seed`.
pub fn signed_keys_with_seed(server_name: &str, valid_until_ts: i64, seed: [u8; 32]) -> Value {
    use base64::Engine as _;
    use ed25519_dalek::{Signer, SigningKey};
    let key = SigningKey::from_bytes(&seed);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD_NO_PAD.encode(b);
    let mut v = json!({
        "server_name": server_name,
        "valid_until_ts": valid_until_ts.min(4_102_444_800_000),
        "old_verify_keys": {},
        "verify_keys": {"ed25519:test": {"key": b64(key.verifying_key().as_bytes())}},
    });
    let sig = key.sign(mxping::testing::canonical_json(&v).unwrap().as_bytes());
    v["signatures"] = json!({server_name: {"ed25519:test": b64(&sig.to_bytes())}});
    v
}

#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// TLS options of a test server.
#[derive(Clone)]
pub struct TlsOptions {
    pub leaf: Leaf,
    /// Offer only the P-256 group, like Synapse's built-in TLS: clients that send an X25519
    /// key share first get a HelloRetryRequest.
    pub p256_only: bool,
}

impl From<Leaf> for TlsOptions {
    fn from(leaf: Leaf) -> Self {
        TlsOptions {
            leaf,
            p256_only: false,
        }
    }
}

pub fn server_config(opts: &TlsOptions) -> Arc<ServerConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    if opts.p256_only {
        provider.kx_groups = vec![rustls::crypto::ring::kx_group::SECP256R1];
    }
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(OneCert(opts.leaf.key.clone())));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A running HTTPS server. Stops when dropped.
pub struct HttpsServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpsServer {
    pub fn start(
        listener: std::net::TcpListener,
        tls: impl Into<TlsOptions>,
        handler: Handler,
    ) -> HttpsServer {
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(server_config(&tls.into()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_owned);
                    let service = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let seen = seen.clone();
                        let sni = sni.clone();
                        async move {
                            let (req, body) = req.into_parts();
                            let body = http_body_util::Limited::new(body, 64 * 1024)
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let s = Seen {
                                sni,
                                method: req.method.to_string(),
                                body,
                                headers: req
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("").to_owned())
                                    })
                                    .collect(),
                                host: req
                                    .headers
                                    .get("host")
                                    .and_then(|h| h.to_str().ok())
                                    .map(str::to_owned),
                                path: req.uri.path().to_owned(),
                                uri: req
                                    .uri
                                    .path_and_query()
                                    .map_or_else(|| req.uri.path().to_owned(), |p| p.to_string()),
                                user_agent: req
                                    .headers
                                    .get("user-agent")
                                    .and_then(|h| h.to_str().ok())
                                    .map(str::to_owned),
                            };
                            seen.lock().unwrap().push(s.clone());
                            let reply = handler(&s);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            let mut resp = Response::builder().status(reply.status);
                            for (k, v) in &reply.headers {
                                resp = resp.header(k, v);
                            }
                            if reply.close {
                                resp = resp.header("connection", "close");
                            }
                            Ok::<_, Infallible>(
                                resp.body(Full::new(Bytes::from(reply.body))).unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        HttpsServer { addr, seen, task }
    }

    /// The IPv4 address it listens on.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        match self.addr.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(_) => None,
        }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests for `path`.
    pub fn hits(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

/// A fresh loopback address, with listeners on the real ports 443 and 8448 held until taken.
/// The address is random in 127/8 and claimed by binding, so parallel test processes never
/// collide; ports left untaken are closed when this is dropped (connections are then refused).
pub struct TestHost {
    pub ip: Ipv4Addr,
    listeners: Vec<(u16, std::net::TcpListener)>,
}

impl TestHost {
    pub fn claim() -> TestHost {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let ip = Ipv4Addr::new(
                127,
                rng.random_range(1..=254),
                rng.random(),
                rng.random_range(2..=254),
            );
            let Ok(l443) = std::net::TcpListener::bind((ip, 443)) else {
                continue;
            };
            let Ok(l8448) = std::net::TcpListener::bind((ip, 8448)) else {
                continue;
            };
            return TestHost {
                ip,
                listeners: vec![(443, l443), (8448, l8448)],
            };
        }
        panic!(
            "could not claim a loopback address with ports 443 and 8448 free (are the tests running as root or in `unshare -rn`?)"
        );
    }

    /// The listener for `port`: the one held since `claim`, or a new bind on this address.
    pub fn take(&mut self, port: u16) -> std::net::TcpListener {
        match self.listeners.iter().position(|(p, _)| *p == port) {
            Some(i) => self.listeners.remove(i).1,
            None => std::net::TcpListener::bind((self.ip, port)).unwrap(),
        }
    }

    /// Closes every listener not taken yet.
    pub fn release(&mut self) {
        self.listeners.clear();
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.ip, port))
    }
}

/// A listener on a random port of [::1].
pub fn ipv6_listener() -> std::net::TcpListener {
    std::net::TcpListener::bind("[::1]:0").unwrap()
}

/// Listeners on an address outside `[network] allow` that count every connection made to
/// them: a test fails if the monitor touches one.
pub struct Tripwire {
    pub ip: Ipv4Addr,
    hits: Arc<Mutex<Vec<u16>>>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Tripwire {
    /// A fresh 127.x address with ports 443, 8448 and 8080.
    pub fn claim() -> Tripwire {
        let mut host = TestHost::claim();
        let ip = host.ip;
        let mut listeners = vec![(443, host.take(443)), (8448, host.take(8448))];
        listeners.push((8080, host.take(8080)));
        Tripwire::on(ip, listeners)
    }

    /// Tripwires on `ip` at `ports` (for fixed addresses such as 127.0.0.1).
    pub fn at(ip: Ipv4Addr, ports: &[u16]) -> Tripwire {
        let listeners = ports
            .iter()
            .map(|p| {
                let l = std::net::TcpListener::bind((ip, *p))
                    .unwrap_or_else(|e| panic!("tripwire {ip}:{p}: {e}"));
                (*p, l)
            })
            .collect();
        Tripwire::on(ip, listeners)
    }

    fn on(ip: Ipv4Addr, listeners: Vec<(u16, std::net::TcpListener)>) -> Tripwire {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (port, l) in listeners {
            l.set_nonblocking(true).unwrap();
            let l = TcpListener::from_std(l).unwrap();
            let hits = hits.clone();
            tasks.push(tokio::spawn(async move {
                while l.accept().await.is_ok() {
                    hits.lock().unwrap().push(port);
                }
            }));
        }
        Tripwire {
            ip,
            hits,
            _tasks: tasks,
        }
    }

    /// Panics if anything connected.
    pub async fn assert_untouched(&self, what: &str) {
        // Let any connection in flight be accepted first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let hits = self.hits.lock().unwrap().clone();
        assert!(
            hits.is_empty(),
            "{what}: something connected to {} (outside [network] allow) on ports {hits:?}",
            self.ip
        );
    }
}
