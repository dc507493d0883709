//! The agent's side: after every interval, the latest view of each server it probes (the hub's
//! list, read like a `[[source]]`) goes to the hub as one signed report. Agents only connect
//! outwards, so one can sit behind NAT. While the hub cannot be reached, reports wait in a
//! bounded backlog (oldest dropped first) and go out in order when it returns, each signed
//! again with a new send time (the hub refuses anything older than the last it accepted).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use hyper::header::{AUTHORIZATION, HeaderValue};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Board;
use crate::config::Config;
use crate::net::fetch::Endpoint;
use crate::signing::Key;
use crate::vantage::{REPORT_PATH, Report, Seen, addresses};

/// Reports kept while the hub is unreachable (two hours at the default 30 s interval).
pub(crate) const MAX_BACKLOG: usize = 240;

/// The report of everything `board` shows, as vantage `name`.
pub(crate) fn report(board: &Board, name: &str, interval: Duration) -> Report {
    let snap = board.snapshot();
    let servers = snap
        .servers
        .iter()
        .map(|v| {
            let r = &v.report;
            let reached = v.reached();
            Seen {
                server: r.name.clone(),
                status: r.status,
                up: reached == Some(true),
                measured: reached.is_some(),
                latency_ms: r.latency_ms,
                checked_at: r.checked_at.map(crate::timestamp::format),
                error: r.error.as_ref().map(|e| e.kind.as_str().to_owned()),
                delegated_name: r.discovery.as_ref().map(|d| d.delegated_name.clone()),
                addresses: addresses(r),
            }
        })
        .collect();
    Report {
        vantage: name.to_owned(),
        sent_at_ms: 0,
        interval_s: interval.as_secs().max(1),
        servers,
    }
}

/// Sends reports to the hub of `config` until `stop`.
pub(crate) async fn run(config: Arc<Config>, board: Arc<Board>, stop: CancellationToken) {
    let Some(hub) = config.hub.clone() else {
        return;
    };
    let name = config.web.vantage_name().to_owned();
    let key = match Key::read(&hub.key_file) {
        Ok(k) => k,
        Err(e) => {
            warn!("vantage: cannot report to the hub: {e}");
            return;
        }
    };
    let fetcher = match crate::services::trusted_fetcher(&config) {
        Ok(f) => f,
        Err(e) => {
            warn!("vantage: cannot report to the hub: {e}");
            return;
        }
    };
    let to = match url::Url::parse(&format!("{}{REPORT_PATH}", hub.url))
        .map_err(|e| e.to_string())
        .and_then(|u| Endpoint::from_url(&u))
    {
        Ok(t) => t,
        Err(e) => {
            warn!("vantage: the hub URL cannot be used: {e}");
            return;
        }
    };
    info!("vantage: reporting as {name} ({}) to {}", key.id, hub.url);
    let interval = config.monitor.interval;
    let mut backlog: VecDeque<Report> = VecDeque::new();
    let mut last_sent = 0i64;
    let mut hub_down = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        backlog.push_back(report(&board, &name, interval));
        if backlog.len() > MAX_BACKLOG {
            backlog.pop_front();
        }
        while let Some(next) = backlog.front() {
            let mut r = next.clone();
            let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
            r.sent_at_ms = now_ms.max(last_sent + 1);
            let body = match serde_json::to_vec(&r) {
                Ok(b) => b,
                Err(_) => {
                    backlog.pop_front();
                    continue;
                }
            };
            let auth = match HeaderValue::from_str(&key.authorization(&name, &body)) {
                Ok(a) => a,
                Err(e) => {
                    // Cannot happen for a percent-encoded name; said rather than dropped.
                    warn!("vantage: the report cannot be signed into a header: {e}");
                    backlog.pop_front();
                    continue;
                }
            };
            let headers = [(AUTHORIZATION, auth)];
            let sent = fetcher.request(Method::POST, &to, &headers, Bytes::from(body), 16 * 1024);
            match tokio::time::timeout(Duration::from_secs(15), sent).await {
                Ok(Ok(resp)) if resp.status.is_success() => {
                    last_sent = r.sent_at_ms;
                    backlog.pop_front();
                    if hub_down {
                        info!("vantage: the hub takes reports again");
                        hub_down = false;
                    }
                }
                Ok(Ok(resp))
                    if resp.status.is_client_error()
                        && !matches!(resp.status.as_u16(), 408 | 429) =>
                {
                    // Refused for what it is (key, name, clock): sending it again cannot help.
                    // (Too slow, 408, or too many, 429, are kept and sent again, as 503 is.)
                    last_sent = r.sent_at_ms;
                    backlog.pop_front();
                    warn!(
                        "vantage: the hub refused the report (HTTP {}): {}",
                        resp.status.as_u16(),
                        crate::text::excerpt(&resp.body, 300)
                    );
                }
                outcome => {
                    if !hub_down {
                        let why = match outcome {
                            Ok(Ok(resp)) => format!("HTTP {}", resp.status.as_u16()),
                            Ok(Err(e)) => e.message,
                            Err(_) => "no answer within 15s".to_owned(),
                        };
                        warn!(
                            "vantage: the hub cannot be reached ({why}); keeping up to {MAX_BACKLOG} reports until it returns"
                        );
                        hub_down = true;
                    }
                    break;
                }
            }
        }
    }
}
