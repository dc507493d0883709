//! A vantage point without probes, for the hub benchmark: every `--interval` seconds it signs
//! a report of every server in `--servers` (one name per line, all seen green at ~20 ms, as a
//! real agent would send them) with the key in `--key`, as vantage `--name`, and POSTs it to
//! the hub at `--hub` (`host:port`). Prints one line per report that was not accepted.
// A benchmark tool connecting to the loopback hub the benchmark starts: the monitor's rule
// (every connection through NetGuard::connect, clippy.toml) is not for it.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use mxping_bench::required;
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let hub = required("--hub");
    let name = required("--name");
    let key = mxping::testing::Key::read(std::path::Path::new(&required("--key")))
        .expect("a key file written by `mxping keygen`");
    let servers: Vec<String> = std::fs::read_to_string(required("--servers"))
        .expect("the servers file")
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect();
    let interval: u64 = required("--interval").parse().expect("seconds");
    let mut tick = tokio::time::interval(Duration::from_secs(interval));
    loop {
        tick.tick().await;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let checked_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let seen: Vec<serde_json::Value> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({
                    "server": s, "status": "green", "up": true,
                    "latency_ms": 18.0 + (i % 7) as f64, "checked_at": checked_at,
                    "error": null, "delegated_name": s, "addresses": [],
                })
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({
            "vantage": name, "sent_at_ms": now.as_millis() as i64, "interval_s": interval,
            "servers": seen,
        }))
        .unwrap();
        let auth = key.authorization(&name, &body);
        match post(&hub, &auth, body).await {
            Some(status) if status == 204 => {}
            other => println!("reporter {name}: report not accepted: {other:?}"),
        }
    }
}

/// POSTs a report; the answer's status.
async fn post(hub: &str, auth: &str, body: Vec<u8>) -> Option<u16> {
    let tcp = TcpStream::connect(hub).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = Request::post(mxping::testing::REPORT_PATH)
        .header("host", hub)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .ok()?;
    Some(sender.send_request(req).await.ok()?.status().as_u16())
}
