//! A delay proxy: every chunk is held `--delay-ms` in each direction (netem is not available
//! on these machines), so a TLS 1.3 handshake and a request each take 2 × delay longer. Listens
//! on `--listen` and forwards to `--target`; several pairs may be given as `--pairs FILE`
//! (`LISTEN TARGET` per line).
// A benchmark tool connecting to the loopback servers the benchmark starts: the monitor's
// rule (every connection through NetGuard::connect, clippy.toml) is not for it.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use mxping_bench::{arg, required};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = tx.send((Instant::now() + delay, Vec::new()));
                    return;
                }
                Ok(n) => {
                    let _ = tx.send((Instant::now() + delay, buf[..n].to_vec()));
                }
            }
        }
    });
    while let Some((due, data)) = rx.recv().await {
        wait_until(due).await;
        if data.is_empty() || to.write_all(&data).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    reader.abort();
}

/// Waits until `due` precisely. Tokio's timer has millisecond granularity, which alone would
/// add up to a millisecond of error per direction; spinning through that millisecond, with
/// several proxies and the monitor on two cores, took the CPU the measured side needed and
/// added milliseconds of scheduling noise. So the wait is a thread sleep (high-resolution
/// timer, ~60 µs late at worst) to just before `due`, then a spin of at most [`SPIN`].
async fn wait_until(due: Instant) {
    const SPIN: Duration = Duration::from_micros(150);
    let due = due.into_std();
    if due.saturating_duration_since(std::time::Instant::now()) <= SPIN {
        spin_until(due);
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(rest) = due
            .checked_sub(SPIN)
            .map(|early| early.saturating_duration_since(std::time::Instant::now()))
        {
            std::thread::sleep(rest);
        }
        spin_until(due);
    })
    .await;
}

fn spin_until(due: std::time::Instant) {
    while std::time::Instant::now() < due {
        std::hint::spin_loop();
    }
}

async fn forward(listen: String, target: String, delay: Duration) {
    let listener = TcpListener::bind(&listen)
        .await
        .unwrap_or_else(|e| panic!("bind {listen}: {e}"));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let target = target.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(pump(cr, sw, delay), pump(sr, cw, delay));
        });
    }
}

#[tokio::main]
async fn main() {
    let delay =
        Duration::from_micros((required("--delay-ms").parse::<f64>().unwrap() * 1000.0) as u64);
    let mut pairs = Vec::new();
    if let Some(file) = arg("--pairs") {
        for line in std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let mut p = line.split_whitespace();
            pairs.push((p.next().unwrap().to_owned(), p.next().unwrap().to_owned()));
        }
    } else {
        pairs.push((required("--listen"), required("--target")));
    }
    for (listen, target) in pairs {
        tokio::spawn(forward(listen, target, delay));
    }
    println!("proxy: ready");
    std::future::pending::<()>().await;
}
