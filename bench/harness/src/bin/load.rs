//! An open-loop HTTP/1.1 load generator: `GET --url` at a constant `--rate` per second for
//! `--seconds`, on keep-alive connections taken from a pool (a new one is opened whenever all
//! are busy). Requests are sent on schedule whatever the answers do (open loop), so a stalled
//! server is charged for every request it delays (no coordinated omission); each latency
//! counts from when the request was sent, and how late the generator itself woke up (timer
//! granularity, CPU contention) is reported apart. Prints a JSON summary; the body of every
//! answer is read in full.
//!
//! wrk measures throughput at saturation, where latency only reflects how many connections it
//! keeps busy; this measures latency at a stated load.
// A benchmark tool connecting to the loopback servers the benchmark starts: the monitor's
// rule (every connection through NetGuard::connect, clippy.toml) is not for it.
#![allow(clippy::disallowed_methods)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mxping_bench::required;
use tokio::net::TcpStream;

type Pool = Arc<Mutex<Vec<SendRequest<Empty<Bytes>>>>>;

async fn connect(addr: &str) -> Option<SendRequest<Empty<Bytes>>> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// One request; `None` on any failure or a non-2xx answer. Returns the body size.
async fn request(pool: Pool, addr: &str, path: &str, gzip: bool) -> Option<usize> {
    let pooled = pool.lock().unwrap().pop();
    let mut sender = match pooled {
        Some(s) if !s.is_closed() => s,
        _ => connect(addr).await?,
    };
    sender.ready().await.ok()?;
    let mut req = Request::get(path).header("host", addr);
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    let resp = sender
        .send_request(req.body(Empty::new()).ok()?)
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    pool.lock().unwrap().push(sender);
    Some(body.len())
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let url = required("--url");
    let rate: f64 = required("--rate")
        .parse()
        .expect("--rate: requests per second");
    let seconds: f64 = required("--seconds").parse().expect("--seconds");
    let gzip = std::env::args().any(|a| a == "--gzip");
    let rest = url
        .strip_prefix("http://")
        .expect("--url: http://HOST:PORT/PATH");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (addr, path): (Arc<str>, Arc<str>) =
        (addr.into(), if path.is_empty() { "/" } else { path }.into());
    let pool: Pool = Arc::default();
    // Warm-up: one request, so the first measured one does not pay for building the page.
    request(pool.clone(), &addr, &path, gzip).await;

    let total = (rate * seconds).round() as u64;
    let start = Instant::now() + Duration::from_millis(10);
    let results = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (pool, addr, path, results) =
            (pool.clone(), addr.clone(), path.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let outcome =
                tokio::time::timeout(Duration::from_secs(30), request(pool, &addr, &path, gzip))
                    .await;
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            let late_ms = sent.duration_since(due).as_secs_f64() * 1000.0;
            results
                .lock()
                .unwrap()
                .push((ms, outcome.ok().flatten(), late_ms));
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let results = results.lock().unwrap();
    let mut ok: Vec<f64> = results
        .iter()
        .filter(|r| r.1.is_some())
        .map(|r| r.0)
        .collect();
    ok.sort_by(f64::total_cmp);
    let bytes = results.iter().filter_map(|r| r.1).max().unwrap_or(0);
    let late = results.iter().map(|r| r.2).fold(0.0, f64::max);
    println!(
        "{}",
        serde_json::json!({
            "requests": results.len(),
            "errors": results.len() - ok.len(),
            "rate": rate,
            "achieved_rate": results.len() as f64 / elapsed,
            "p50_ms": quantile(&ok, 0.5),
            "p90_ms": quantile(&ok, 0.9),
            "p99_ms": quantile(&ok, 0.99),
            "max_ms": ok.last().copied().unwrap_or(f64::NAN),
            "connections": pool.lock().unwrap().len(),
            "generator_max_late_ms": late,
            "body_bytes": bytes,
        })
    );
}
