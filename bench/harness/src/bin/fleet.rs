//! Fake homeservers for benchmarks: on every address listed in `--addresses` (one per line:
//! `IP [DELAY_MS]`) it serves HTTPS on 8448 (`/_matrix/federation/v1/version`, answered after
//! the address's delay) and on 443 (404 for every well-known, as for a server that does not
//! delegate). One process, one runtime, real TLS. On SIGUSR1 it prints how many requests each
//! port has answered so far (`fleet: requests 8448=N 443=M`), which the benchmark reads to give
//! the minimal loop the same connections the monitor made.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mxping_bench::{required, server_tls};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const VERSION: &[u8] = br#"{"server":{"name":"Synapse","version":"1.163.2"}}"#;

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    delay: Duration,
    answered: Arc<AtomicU64>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let answered = answered.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = service_fn(move |req: Request<Incoming>| {
                answered.fetch_add(1, Ordering::Relaxed);
                respond(req, delay)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn respond(
    req: Request<Incoming>,
    delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let found = req.uri().path() == "/_matrix/federation/v1/version";
    if found && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (status, body) = if found {
        (200, VERSION)
    } else {
        (404, &br#"{"errcode":"M_UNRECOGNIZED"}"#[..])
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .expect("a valid response"))
}

#[tokio::main]
async fn main() {
    let acceptor = TlsAcceptor::from(server_tls(&required("--cert"), &required("--key")));
    let list = std::fs::read_to_string(required("--addresses")).expect("the address list");
    let mut count = 0;
    // Requests answered on 8448 and on 443.
    let answered = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let ip: std::net::IpAddr = parts.next().unwrap().parse().expect("an IP address");
        let delay = Duration::from_micros(
            (parts.next().map_or(0.0, |d| d.parse::<f64>().unwrap()) * 1000.0) as u64,
        );
        for (port, answered) in [8448, 443].into_iter().zip(&answered) {
            let listener = TcpListener::bind((ip, port))
                .await
                .unwrap_or_else(|e| panic!("bind {ip}:{port}: {e}"));
            tokio::spawn(serve(
                listener,
                acceptor.clone(),
                if port == 8448 { delay } else { Duration::ZERO },
                answered.clone(),
            ));
        }
        count += 1;
    }
    println!("fleet: serving {count} addresses");
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .expect("a SIGUSR1 handler");
    while usr1.recv().await.is_some() {
        let [fed, well_known] = &answered;
        println!(
            "fleet: requests 8448={} 443={}",
            fed.load(Ordering::Relaxed),
            well_known.load(Ordering::Relaxed)
        );
    }
}
