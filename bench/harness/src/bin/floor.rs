//! The floor: the least a probe can do with the same libraries as mxping (tokio, rustls with
//! ring, hyper): a fresh TCP connection, a full verified TLS handshake (no resumption) and one
//! `GET /_matrix/federation/v1/version`, at `--rate` probes per second spread over the targets
//! in `--targets` (`IP:PORT TLS_NAME` per line), for `--seconds`. With `--requests N`, each
//! probe sends N requests one after the other on its connection (mxping's pings). Prints a
//! JSON summary.
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

async fn probe(
    connector: TlsConnector,
    addr: std::net::SocketAddr,
    name: String,
    requests: u32,
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
    let mut ok = true;
    for _ in 0..requests {
        let req = Request::get("/_matrix/federation/v1/version")
            .header("host", name.clone())
            .body(Empty::new())
            .expect("a valid request");
        ok &= match sender.send_request(req).await {
            Ok(resp) => resp.status().is_success() && resp.into_body().collect().await.is_ok(),
            Err(_) => false,
        };
    }
    task.abort();
    ok
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
            let counter = if probe(connector, addr, name, requests).await {
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
    println!(
        "{}",
        serde_json::json!({"probes": total, "ok": ok.load(Ordering::Relaxed), "failed": failed.load(Ordering::Relaxed)})
    );
}
