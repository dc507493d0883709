//! The floor: the least a probe can do with the same libraries as mxping (tokio, rustls with
//! ring, hyper): a fresh TCP connection, a full verified TLS handshake (no resumption) and one
//! `GET /_matrix/federation/v1/version`, at `--rate` probes per second spread over the targets
//! in `--targets` (`IP:PORT TLS_NAME` per line), for `--seconds`. With `--requests N`, each
//! probe sends N requests one after the other on its connection (mxping's pings). With
//! `--well-known-rate R`, it also makes R connections per second to port 443 of the same
//! targets, each a full handshake and one `GET /.well-known/matrix/server` (answered 404 by the
//! benchmark's fleet): the well-known fetches the spec's caching has the monitor make in the
//! same time. Prints a JSON summary.
// A benchmark tool connecting to the loopback servers the benchmark starts: the monitor's
// rule (every connection through NetGuard::connect, clippy.toml) is not for it.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use mxping_bench::required;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What one connection asks for.
#[derive(Clone, Copy)]
enum Ask {
    /// `requests` × the version endpoint, each answered 200.
    Version { requests: u32 },
    /// The well-known file once, on port 443; any HTTP answer counts (the fleet has none).
    WellKnown,
}

async fn probe(
    connector: TlsConnector,
    addr: std::net::SocketAddr,
    name: String,
    ask: Ask,
) -> bool {
    let Ok(tcp) = TcpStream::connect(addr).await else {
        return false;
    };
    let _ = tcp.set_nodelay(true);
    let Ok(server_name) = ServerName::try_from(name.clone()) else {
        return false;
    };
    let Ok(tls) = connector.connect(server_name, tcp).await else {
        return false;
    };
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tls)).await
    else {
        return false;
    };
    let task = tokio::spawn(conn);
    let (path, requests, success_only) = match ask {
        Ask::Version { requests } => ("/_matrix/federation/v1/version", requests, true),
        Ask::WellKnown => ("/.well-known/matrix/server", 1, false),
    };
    let mut ok = true;
    for _ in 0..requests {
        let req = Request::get(path)
            .header("host", name.clone())
            .body(Empty::new())
            .expect("a valid request");
        ok &= match sender.send_request(req).await {
            Ok(resp) => {
                (resp.status().is_success() || !success_only)
                    && resp.into_body().collect().await.is_ok()
            }
            Err(_) => false,
        };
    }
    task.abort();
    ok
}

/// Connections at `rate` per second for `seconds`, spread over `targets`; (ok, failed).
async fn drive(
    connector: TlsConnector,
    targets: Arc<Vec<(std::net::SocketAddr, String)>>,
    rate: f64,
    seconds: f64,
    ask: Ask,
) -> (u64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let total = (rate * seconds) as usize;
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let (addr, name) = targets[i % targets.len()].clone();
        let (connector, ok, failed) = (connector.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let counter = if probe(connector, addr, name, ask).await {
                ok
            } else {
                failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() {
    let ca = required("--ca");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut std::fs::read(ca).unwrap().as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    // A full handshake every time, as mxping measures one every round: with rustls' default
    // session cache the floor resumed its sessions, skipping the certificate check and the
    // server's signature that every mxping round pays for.
    config.resumption = rustls::client::Resumption::disabled();
    let connector = TlsConnector::from(Arc::new(config));
    let targets: Vec<(std::net::SocketAddr, String)> =
        std::fs::read_to_string(required("--targets"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut p = l.split_whitespace();
                (
                    p.next().unwrap().parse().unwrap(),
                    p.next().unwrap().to_owned(),
                )
            })
            .collect();
    let rate: f64 = required("--rate").parse().unwrap();
    let seconds: f64 = required("--seconds").parse().unwrap();
    let requests: u32 =
        mxping_bench::arg("--requests").map_or(1, |v| v.parse().expect("--requests: a count"));
    let well_known_rate: f64 = mxping_bench::arg("--well-known-rate").map_or(0.0, |v| {
        v.parse()
            .expect("--well-known-rate: connections per second")
    });
    let well_known_targets: Vec<_> = targets
        .iter()
        .map(|(addr, name)| (std::net::SocketAddr::new(addr.ip(), 443), name.clone()))
        .collect();
    let version = drive(
        connector.clone(),
        Arc::new(targets),
        rate,
        seconds,
        Ask::Version { requests },
    );
    let well_known = async {
        if well_known_rate > 0.0 {
            drive(
                connector.clone(),
                Arc::new(well_known_targets),
                well_known_rate,
                seconds,
                Ask::WellKnown,
            )
            .await
        } else {
            (0, 0)
        }
    };
    let ((ok, failed), (wk_ok, wk_failed)) = tokio::join!(version, well_known);
    println!(
        "{}",
        serde_json::json!({
            "probes": ok + failed, "ok": ok, "failed": failed,
            "well_known": wk_ok + wk_failed, "well_known_ok": wk_ok, "well_known_failed": wk_failed,
        })
    );
}
