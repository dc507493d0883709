//! The public listener under a hostile client (issue: one anonymous client must not take the
//! page down or turn healthy servers red): slowloris beyond the connection cap from two
//! processes, the header and idle timeouts, the per-address cap, the hub's report budget, and
//! the monitor running out of file descriptors. All on loopback, each bounded in time.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::Harness;
use crate::support::serve::Serve;

const MONITOR: &str = "[monitor]\ninterval = \"1s\"\nretry_interval = \"400ms\"\ntimeout = \"900ms\"\n\
                       pings = 1\ngreen_below = \"600ms\"\ndown_after = 2\nup_after = 2\n";

/// A harness with `n` healthy homeservers (`ok0.test`…) and `web` as its `[web]` table.
async fn healthy_world(n: usize, web: &str) -> Harness {
    let mut h = Harness::new().await;
    h.extra = format!("{MONITOR}[web]\n{web}\n");
    for i in 0..n {
        let name = format!("ok{i}.test");
        let mut host = h.host(&name);
        h.homeserver(&mut host, 8448, &name, &name);
        h.servers.push(name);
    }
    h
}

/// A connection to `to` from `source` (any port).
async fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.into(), 0))?;
    socket.connect(to).await
}

/// Reads until the peer closes; returns what arrived, or `None` if it stayed open for `limit`.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Asserts the peer closes `stream` after a time in `range` from now.
async fn closes_within(stream: &mut TcpStream, range: std::ops::Range<Duration>) {
    let started = Instant::now();
    assert!(
        read_to_close(stream, range.end + Duration::from_secs(2))
            .await
            .is_some(),
        "still open"
    );
    let took = started.elapsed();
    assert!(
        range.contains(&took),
        "closed after {took:?}, not within {range:?}"
    );
}

/// Asks for `/healthz` on a kept-alive `stream` and checks the answer.
async fn ask(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// One sample of `name` in the `/metrics` text of `s` (0 when absent).
async fn metric(s: &Serve, name: &str) -> f64 {
    let text = s.text("/metrics").await.1;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// GETs `path` on a fresh connection (as a new visitor would) and returns status and time.
async fn visit(addr: SocketAddr, path: &str) -> (u16, Duration) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let status = match client.get(format!("http://{addr}{path}")).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }
        Err(_) => 0,
    };
    (status, started.elapsed())
}

/// Waits until every server is green.
async fn all_green(s: &Serve, n: usize) {
    s.wait_for(Duration::from_secs(20), "every server green", || async {
        let list = s.json("/api/v1/servers").await;
        let servers = list["servers"].as_array()?.clone();
        (servers.len() == n && servers.iter().all(|v| v["status"] == "green")).then_some(())
    })
    .await;
}

/// Every server is green with 100 % uptime over the last hour, and the feed has no change
/// away from green.
async fn still_healthy(s: &Serve, n: usize) {
    let list = s.json("/api/v1/servers").await;
    let servers = list["servers"].as_array().unwrap();
    assert_eq!(servers.len(), n);
    for v in servers {
        assert_eq!(v["status"], "green", "{v}");
        assert_eq!(v["uptime"]["1h"].as_f64(), Some(1.0), "{v}");
    }
    let feed = s.text("/feed.atom").await.1;
    assert!(
        !feed.contains("→ down") && !feed.contains("→ degraded"),
        "no change away from green: {feed}"
    );
}

fn slowloris(
    target: SocketAddr,
    connections: usize,
    sources: &str,
    seconds: u32,
) -> tokio::process::Command {
    let mut c =
        tokio::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slowloris"));
    c.args([
        &target.to_string(),
        &connections.to_string(),
        "--sources",
        sources,
        "--interval",
        "1",
        "--duration",
        &seconds.to_string(),
        "--reconnect",
    ])
    .stdout(std::process::Stdio::piped())
    .kill_on_drop(true);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_beyond_the_cap_neither_takes_the_page_down_nor_turns_servers_red() {
    let h = healthy_world(
        3,
        "max_connections = 200\nmax_connections_per_ip = 0\nheader_timeout = \"2s\"",
    )
    .await;
    let s = Serve::start(&h.config_file()).await;
    all_green(&s, 3).await;

    // Two processes, 300 connections each from their own 127.x addresses: 600 > 200.
    let attack_s = 8;
    let a = slowloris(s.addr, 300, "127.66.1.0/24", attack_s)
        .spawn()
        .unwrap();
    let b = slowloris(s.addr, 300, "127.66.2.0/24", attack_s)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let until = Instant::now() + Duration::from_secs(u64::from(attack_s) - 2);
    let mut visits = 0;
    // A regular visitor, on a kept-alive connection as browsers keep one. A burst of more new
    // slow connections than the cap can close it while it is idle (as nginx does at
    // worker_connections), even as a request goes out on it; a browser then asks again on a
    // new connection, once, and must be answered in time.
    let regular = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    while Instant::now() < until {
        for path in ["/healthz", "/"] {
            let (status, took) = visit(s.addr, path).await;
            assert_eq!(status, 200, "{path} during the attack");
            assert!(took < Duration::from_secs(1), "{path} took {took:?}");
            visits += 1;
        }
        let started = Instant::now();
        let answer = match regular.get(s.url("/api/v1/servers")).send().await {
            Ok(r) => Ok(r),
            Err(_) => regular.get(s.url("/api/v1/servers")).send().await,
        };
        assert_eq!(
            answer.map(|r| r.status().as_u16()).ok(),
            Some(200),
            "kept-alive visitor"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(visits > 20, "{visits} visits");
    let report =
        |out: std::process::Output| -> Value { serde_json::from_slice(&out.stdout).unwrap() };
    let (a, b) = (
        report(a.wait_with_output().await.unwrap()),
        report(b.wait_with_output().await.unwrap()),
    );
    for r in [&a, &b] {
        assert!(r["opened"].as_u64().unwrap() >= 300, "{r}");
        // Closed: evicted at the cap, or at the latest after the 2 s header timeout.
        assert!(r["closed_by_server"].as_u64().unwrap() > 100, "{r}");
        assert!(r["lifetime_max_s"].as_f64().unwrap() < 3.0, "{r}");
    }
    let evicted = metric(
        &s,
        "mxping_web_connections_closed_total{reason=\"evicted\"}",
    )
    .await;
    assert!(evicted > 100.0, "{evicted}");
    assert!(metric(&s, "mxping_web_connections_open").await <= 200.0);
    // The probes never lacked a socket, and no server changed.
    assert_eq!(
        metric(&s, "mxping_monitor_errors_total{kind=\"open_files\"}").await,
        0.0
    );
    still_healthy(&s, 3).await;
    assert!(s.log_contains("closing the one that waited longest"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_head_is_closed_after_the_header_timeout_and_an_idle_one_after_the_idle_timeout()
 {
    let h = healthy_world(1, "header_timeout = \"1s\"\nidle_timeout = \"3s\"").await;
    let s = Serve::start(&h.config_file()).await;

    let header = Duration::from_millis(900)..Duration::from_millis(2500);
    // Half a request head: closed after the header timeout.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    closes_within(&mut slow, header.clone()).await;

    // A connection that never sends a byte: the same.
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    closes_within(&mut silent, header.clone()).await;

    // A kept-alive connection after a complete answer waits for the idle timeout, not the
    // (shorter) header timeout; and a second request on it within that time is answered.
    let mut kept = TcpStream::connect(s.addr).await.unwrap();
    ask(&mut kept).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    ask(&mut kept).await;
    closes_within(
        &mut kept,
        Duration::from_millis(2800)..Duration::from_millis(4500),
    )
    .await;

    // A head started on a kept-alive connection must then be finished within the header
    // timeout, not the idle one.
    let mut started_head = TcpStream::connect(s.addr).await.unwrap();
    ask(&mut started_head).await;
    started_head
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    closes_within(&mut started_head, header).await;

    assert!(
        metric(
            &s,
            "mxping_web_connections_closed_total{reason=\"header_timeout\"}"
        )
        .await
            >= 3.0
    );
    assert!(
        metric(
            &s,
            "mxping_web_connections_closed_total{reason=\"idle_timeout\"}"
        )
        .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_share() {
    let h = healthy_world(1, "max_connections_per_ip = 4\nheader_timeout = \"30s\"").await;
    let s = Serve::start(&h.config_file()).await;
    let one = Ipv4Addr::new(127, 67, 0, 1);
    let other = Ipv4Addr::new(127, 67, 0, 2);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(one, s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The fifth from the same address is answered 503 and closed at once.
    let mut fifth = connect_from(one, s.addr).await.unwrap();
    let got = read_to_close(&mut fifth, Duration::from_secs(2))
        .await
        .expect("closed at once");
    assert!(
        got.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Another address is served as usual.
    let mut neighbour = connect_from(other, s.addr).await.unwrap();
    neighbour
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut neighbour, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(
        metric(
            &s,
            "mxping_web_connections_rejected_total{reason=\"per_ip\"}"
        )
        .await,
        1.0
    );
    // Once one of the four closes, the address may connect again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from(one, s.addr).await.unwrap();
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let got = read_to_close(&mut again, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(s.log_contains("max_connections_per_ip"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubs_reports_have_a_budget_of_their_own() {
    let key = mxping::testing::Key::generate();
    let mut h = healthy_world(
        1,
        "max_connections = 40\nmax_connections_per_ip = 0\nheader_timeout = \"30s\"",
    )
    .await;
    h.extra.push_str(&format!(
        "[[vantage]]\nname = \"asia\"\npublic_key = \"{}\"\n",
        key.public()
    ));
    let s = Serve::start(&h.config_file()).await;
    let head = |len: usize| {
        format!(
            "POST {} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\
             Authorization: {}\r\n\r\n",
            mxping::testing::REPORT_PATH,
            key.authorization("asia", b"{}")
        )
    };
    // Every report slot held by a report whose body never comes.
    let mut holders = Vec::new();
    for _ in 0..mxping::testing::REPORTS_IN_FLIGHT {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(head(1000).as_bytes()).await.unwrap();
        holders.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One more report is told to come back, at once; the page is not affected.
    let mut extra = TcpStream::connect(s.addr).await.unwrap();
    extra
        .write_all(format!("{}{{}}", head(2)).as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(1), extra.read(&mut buf))
        .await
        .expect("answered within a second")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 5"),
        "{answer}"
    );
    let (status, took) = visit(s.addr, "/").await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1));
    assert_eq!(
        metric(&s, "mxping_web_requests_rejected_total{budget=\"reports\"}").await,
        1.0
    );

    // A page flood at the connection cap does not keep a report out: it takes the place of a
    // connection waiting for its head.
    drop(holders);
    let mut flood = Vec::new();
    for _ in 0..40 {
        flood.push(TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut report = TcpStream::connect(s.addr).await.unwrap();
    report
        .write_all(format!("{}{{}}", head(2)).as_bytes())
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), report.read(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    // The hub read it and judged it (an empty object is not a report): not a 503.
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
}

/// The open-file limit of `mxping serve` lowered to `limit` (soft and hard), so a few
/// held connections exhaust it: the probes and lookups fail with EMFILE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_is_the_monitors_trouble_not_the_servers() {
    let h = healthy_world(
        3,
        "max_connections = 10000\nmax_connections_per_ip = 0\nheader_timeout = \"60s\"",
    )
    .await;
    let config = h.config_file();
    let mut command = tokio::process::Command::new("prlimit");
    command
        .arg("--nofile=80:80")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_mxping"))
        .args(Serve::args(&config, "127.0.0.1:0"));
    let s = Serve::spawn(command).await;
    all_green(&s, 3).await;
    let before = s.text("/feed.atom").await.1;

    // Hold connections until the process has no descriptor left.
    let mut held = Vec::new();
    for _ in 0..120 {
        held.push(TcpStream::connect(s.addr).await.unwrap());
    }
    // Six rounds of every server (down_after = 2) without a descriptor to spare.
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(held);

    // Nothing was counted against the servers, and the trouble is counted and shown.
    s.wait_for(Duration::from_secs(10), "the page again", || async {
        let (status, _) = visit(s.addr, "/healthz").await;
        (status == 200).then_some(())
    })
    .await;
    still_healthy(&s, 3).await;
    let errors = metric(&s, "mxping_monitor_errors_total{kind=\"open_files\"}").await;
    assert!(errors > 0.0, "{errors}");
    let health = s.text("/healthz").await.1;
    assert!(health.contains("monitor: short of open_files"), "{health}");
    let page = s.text("/").await.1;
    assert!(
        page.contains("This monitor is short of file descriptors"),
        "{}",
        &page[page.len().saturating_sub(3000)..]
    );
    let page = s.text("/?lang=zh").await.1;
    assert!(
        page.contains("本监测点的文件描述符不足"),
        "the footer in Chinese"
    );
    assert_eq!(
        s.text("/feed.atom").await.1.matches("<entry>").count(),
        before.matches("<entry>").count()
    );
    let log = s.log.lock().unwrap().join("\n");
    assert!(
        log.contains("these rounds are not counted against the servers"),
        "{log}"
    );
}

/// At start the soft open-file limit is raised to the hard one and both are logged, and the
/// default connection cap is a quarter of it.
#[tokio::test]
async fn serve_raises_its_open_file_limit_and_caps_connections_at_a_quarter_of_it() {
    let h = healthy_world(1, "").await;
    let config = h.config_file();
    let mut command = tokio::process::Command::new("prlimit");
    command
        .arg("--nofile=100:2000")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_mxping"))
        .args(Serve::args(&config, "127.0.0.1:0"));
    let s = Serve::spawn(command).await;
    assert!(
        s.log_contains("open-file limit: 2000 (hard limit 2000)"),
        "{}",
        s.log.lock().unwrap().join("\n")
    );
    assert!(s.log_contains("web: at most 500 connections (64 per address)"));
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", s.child.id().unwrap())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["2000", "2000"],
        "{open_files}"
    );
}
