//! The public listener: accepts connections for the web app and keeps any one client from
//! holding them all, the way nginx (`client_header_timeout`, `keepalive_timeout`,
//! `limit_conn`) and Go's `http.Server` (`ReadHeaderTimeout`, `IdleTimeout`) do.
//!
//! - A request head must arrive within `header_timeout` of the connection opening, or of the
//!   first byte of a kept-alive connection's next request; a kept-alive connection with no
//!   request is closed after `idle_timeout`; a response the client stops reading is abandoned
//!   after `write_timeout` without progress. (hyper's own header timeout also runs while a
//!   connection is idle, so the three are timed here, from what the socket sees.)
//! - At most `max_connections` are open, and `max_connections_per_ip` from one address (an
//!   IPv6 /64). At the total cap a new connection takes the place of the one that has waited
//!   longest for a request head (since it was accepted or its last response was sent) — a slow
//!   client's, not one being answered, nor a visitor's kept-alive connection that was just
//!   used — and when every connection is being answered it is refused. Refused connections get
//!   a short 503.
//! - Requests have budgets of their own: agents' reports on a hub (so a flood of the page
//!   cannot starve them, nor a flood of reports the page), and `/metrics`, which takes tens of
//!   megabytes to render at 10,000 servers. Beyond its budget a request is answered 503.
//!
//! Everything refused or closed is counted (`mxping_web_*`) and logged at most once a minute.
//! The listener is also where the process's open-file limit matters: `raise_open_file_limit`
//! lifts the soft limit to the hard one at start, and the default cap stays a quarter of it,
//! so the monitor's own probes always have sockets to spare.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::WebConfig;
use crate::error::Trouble;
use crate::net::trouble::Troubles;

/// Reports an agent may have in flight at once on a hub (each is verified on a blocking thread).
pub const REPORTS_IN_FLIGHT: usize = 8;
/// `/metrics` renders in flight at once (each is megabytes at 10,000 servers).
pub const METRICS_IN_FLIGHT: usize = 4;
/// Other requests in flight at once: pages and the API are answered from built copies, so
/// this only bounds a flood's memory.
pub const OTHER_IN_FLIGHT: usize = 1024;
/// What a refused connection or request is told to wait before trying again.
const RETRY_AFTER_S: u64 = 5;

/// The listener's limits, from `[web]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// See [`WebConfig::header_timeout`].
    pub header_timeout: Duration,
    /// See [`WebConfig::idle_timeout`].
    pub idle_timeout: Duration,
    /// See [`WebConfig::write_timeout`].
    pub write_timeout: Duration,
    /// The connection cap in force (the config's, or the default for the open-file limit).
    pub max_connections: usize,
    /// See [`WebConfig::max_connections_per_ip`]; 0: no limit.
    pub max_connections_per_ip: usize,
}

impl Limits {
    /// The limits of `web`, with `open_files` (the soft limit) deciding the default cap.
    pub fn new(web: &WebConfig, open_files: Option<u64>) -> Limits {
        Limits {
            header_timeout: web.header_timeout,
            idle_timeout: web.idle_timeout,
            write_timeout: web.write_timeout,
            max_connections: web
                .max_connections
                .unwrap_or_else(|| default_max_connections(open_files)),
            max_connections_per_ip: web.max_connections_per_ip,
        }
    }
}

/// A quarter of the open-file limit, at most [`crate::config::MAX_CONNECTIONS_DEFAULT`] (and
/// at least 16: a limit that low leaves the probes little anyway).
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    let cap = crate::config::MAX_CONNECTIONS_DEFAULT;
    open_files.map_or(cap, |n| {
        usize::try_from(n / 4).unwrap_or(cap).clamp(16, cap)
    })
}

/// Lifts the soft open-file limit to the hard one; returns `(soft, hard)` as they are after.
pub fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    Ok((soft, hard))
}

/// The listener's metrics, registered with the app's registry.
#[derive(Clone)]
pub struct WebMetrics {
    open: IntGauge,
    rejected: IntCounterVec,
    closed: IntCounterVec,
    requests_rejected: IntCounterVec,
}

impl WebMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> WebMetrics {
        let open = IntGauge::new(
            "mxping_web_connections_open",
            "Connections open to the web listener.",
        )
        .expect("valid metric");
        let rejected = IntCounterVec::new(
            Opts::new(
                "mxping_web_connections_rejected_total",
                "Connections refused at once: per_ip ([web] max_connections_per_ip reached), total ([web] max_connections reached, every connection busy).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let closed = IntCounterVec::new(
            Opts::new(
                "mxping_web_connections_closed_total",
                "Connections the listener closed: header_timeout (no request head in time), idle_timeout (kept alive, unused), write_timeout (the client stopped reading), evicted (waiting for a head when the cap was reached).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let requests_rejected = IntCounterVec::new(
            Opts::new(
                "mxping_web_requests_rejected_total",
                "Requests answered 503 because their budget was in use: reports (agents' reports on a hub), metrics (/metrics renders), other.",
            ),
            &["budget"],
        )
        .expect("valid metric");
        for m in [&rejected, &closed, &requests_rejected] {
            registry
                .register(Box::new(m.clone()))
                .expect("registered once");
        }
        registry
            .register(Box::new(open.clone()))
            .expect("registered once");
        for refusal in Refusal::ALL {
            rejected.with_label_values(&[refusal.label()]);
        }
        for reason in ["header_timeout", "idle_timeout", "write_timeout", "evicted"] {
            closed.with_label_values(&[reason]);
        }
        for budget in ["reports", "metrics", "other"] {
            requests_rejected.with_label_values(&[budget]);
        }
        WebMetrics {
            open,
            rejected,
            closed,
            requests_rejected,
        }
    }
}

/// Which budget a request draws on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Budget {
    Reports,
    Metrics,
    Other,
}

impl Budget {
    fn of(method: &axum::http::Method, path: &str) -> Budget {
        if path == crate::vantage::REPORT_PATH && method == axum::http::Method::POST {
            Budget::Reports
        } else if path == "/metrics" {
            Budget::Metrics
        } else {
            Budget::Other
        }
    }

    fn label(self) -> &'static str {
        match self {
            Budget::Reports => "reports",
            Budget::Metrics => "metrics",
            Budget::Other => "other",
        }
    }
}

/// What a connection is doing, for its deadlines.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for (the rest of) a request head since this instant.
    Head(Instant),
    /// Kept alive, no byte of a next request yet, since this instant.
    Idle(Instant),
    /// A request is being answered.
    Busy,
}

#[derive(Debug)]
struct ConnState {
    phase: Phase,
    /// Since when a write has been waiting for the client to read.
    write_blocked: Option<Instant>,
}

/// One open connection, shared by its task, its socket wrapper and the registry.
struct Conn {
    id: u64,
    state: Mutex<ConnState>,
    /// Wakes the connection's watchdog when its deadlines change or it is evicted.
    changed: Notify,
    evicted: AtomicBool,
}

/// Why the watchdog closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    Header,
    Idle,
    Write,
}

impl Expiry {
    fn label(self) -> &'static str {
        match self {
            Expiry::Header => "header_timeout",
            Expiry::Idle => "idle_timeout",
            Expiry::Write => "write_timeout",
        }
    }
}

impl Conn {
    fn set_phase(&self, phase: Phase) {
        self.state.lock().expect("connection state").phase = phase;
        self.changed.notify_one();
    }

    /// The earliest deadline, with what expires then.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Expiry)> {
        let s = self.state.lock().expect("connection state");
        let read = match s.phase {
            Phase::Head(since) => Some((since + limits.header_timeout, Expiry::Header)),
            Phase::Idle(since) => Some((since + limits.idle_timeout, Expiry::Idle)),
            Phase::Busy => None,
        };
        let write = s
            .write_blocked
            .map(|since| (since + limits.write_timeout, Expiry::Write));
        match (read, write) {
            (Some(r), Some(w)) => Some(if w.0 < r.0 { w } else { r }),
            (r, w) => r.or(w),
        }
    }

    fn awaiting_head(&self) -> bool {
        !matches!(
            self.state.lock().expect("connection state").phase,
            Phase::Busy
        )
    }
}

/// The key a per-address cap counts under: the IPv4 address, or the /64 of an IPv6 one (a
/// single host commonly has a whole /64 to pick addresses from).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// One open connection in the registry.
struct Entry {
    key: IpAddr,
    conn: Arc<Conn>,
    /// Its place in [`Open::order`].
    seq: u64,
}

#[derive(Default)]
struct Open {
    conns: HashMap<u64, Entry>,
    /// Connections by when they last began to wait for a request head (accepted, or their
    /// last response sent): the first one waiting is the one a new connection replaces.
    order: BTreeMap<u64, u64>,
    per_ip: HashMap<IpAddr, usize>,
    next_id: u64,
    next_seq: u64,
}

impl Open {
    /// Removes connection `id`; false if it was gone already (evicted).
    fn remove(&mut self, id: u64) -> bool {
        let Some(entry) = self.conns.remove(&id) else {
            return false;
        };
        self.order.remove(&entry.seq);
        if let Some(n) = self.per_ip.get_mut(&entry.key) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&entry.key);
            }
        }
        true
    }

    /// The connection that has waited longest for a request head, if any is waiting.
    fn longest_waiting(&self) -> Option<u64> {
        self.order
            .values()
            .copied()
            .find(|id| self.conns[id].conn.awaiting_head())
    }

    /// Moves `id` to the end of the order: it has just begun to wait again.
    fn waiting_again(&mut self, id: u64) {
        let seq = self.next_seq;
        if let Some(entry) = self.conns.get_mut(&id) {
            self.order.remove(&entry.seq);
            entry.seq = seq;
            self.order.insert(seq, id);
            self.next_seq += 1;
        }
    }
}

/// What every connection task shares.
struct Shared {
    limits: Limits,
    metrics: WebMetrics,
    troubles: Arc<Troubles>,
    registry: Mutex<Open>,
    reports: Arc<Semaphore>,
    metrics_renders: Arc<Semaphore>,
    others: Arc<Semaphore>,
    /// When each kind of refusal was last logged (ms since `started`), so a flood is one line
    /// a minute.
    logged: [AtomicU64; LogSlot::COUNT],
    started: Instant,
}

/// What the listener logs at most once a minute each (slots of [`Shared::logged`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LogSlot {
    PerIp,
    Total,
    Evicted,
    Timeout,
    Budget,
    Accept,
}

impl LogSlot {
    const COUNT: usize = LogSlot::Accept as usize + 1;
}

/// Why a connection was refused at once: the `reason` label of
/// `mxping_web_connections_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// `[web] max_connections_per_ip` reached.
    PerIp,
    /// `[web] max_connections` reached, and every connection is being answered.
    Total,
}

impl Refusal {
    const ALL: [Refusal; 2] = [Refusal::PerIp, Refusal::Total];

    fn label(self) -> &'static str {
        match self {
            Refusal::PerIp => "per_ip",
            Refusal::Total => "total",
        }
    }
}

impl Shared {
    /// True at most once a minute per slot.
    fn may_log(&self, slot: LogSlot) -> bool {
        let slot = slot as usize;
        let now = self.started.elapsed().as_millis() as u64 + 60_001;
        let last = self.logged[slot].load(Ordering::Relaxed);
        now.saturating_sub(last) >= 60_000
            && self.logged[slot]
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Admits a connection from `ip`, or says why not.
    fn admit(&self, ip: IpAddr) -> Result<Arc<Conn>, Refusal> {
        let key = address_key(ip);
        let mut reg = self.registry.lock().expect("connection registry");
        let per_ip = self.limits.max_connections_per_ip;
        if per_ip > 0 && reg.per_ip.get(&key).copied().unwrap_or(0) >= per_ip {
            return Err(Refusal::PerIp);
        }
        if reg.conns.len() >= self.limits.max_connections {
            let Some(victim) = reg.longest_waiting() else {
                return Err(Refusal::Total);
            };
            let conn = reg.conns[&victim].conn.clone();
            reg.remove(victim);
            conn.evicted.store(true, Ordering::Relaxed);
            conn.changed.notify_one();
            self.metrics.closed.with_label_values(&["evicted"]).inc();
            if self.may_log(LogSlot::Evicted) {
                tracing::warn!(
                    "web: {} connections open ([web] max_connections); closing the one that \
                     waited longest for a request to make room (counted in \
                     mxping_web_connections_closed_total{{reason=\"evicted\"}})",
                    self.limits.max_connections
                );
            }
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let conn = Arc::new(Conn {
            id,
            state: Mutex::new(ConnState {
                phase: Phase::Head(Instant::now()),
                write_blocked: None,
            }),
            changed: Notify::new(),
            evicted: AtomicBool::new(false),
        });
        let seq = reg.next_seq;
        reg.next_seq += 1;
        reg.conns.insert(
            id,
            Entry {
                key,
                conn: conn.clone(),
                seq,
            },
        );
        reg.order.insert(seq, id);
        *reg.per_ip.entry(key).or_default() += 1;
        self.metrics.open.set(reg.conns.len() as i64);
        Ok(conn)
    }

    /// Forgets a closed connection (unless eviction already did).
    fn forget(&self, conn: &Conn) {
        let mut reg = self.registry.lock().expect("connection registry");
        reg.remove(conn.id);
        self.metrics.open.set(reg.conns.len() as i64);
    }

    /// A response on `conn` was sent: it waits for its next request from now on.
    fn answered(&self, conn: &Conn) {
        conn.set_phase(Phase::Idle(Instant::now()));
        self.registry
            .lock()
            .expect("connection registry")
            .waiting_again(conn.id);
    }

    fn budget(&self, budget: Budget) -> &Arc<Semaphore> {
        match budget {
            Budget::Reports => &self.reports,
            Budget::Metrics => &self.metrics_renders,
            Budget::Other => &self.others,
        }
    }
}

/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`, 4096 on
/// current Linux). A flood of new connections then fills the queue before it drops a
/// visitor's SYN, which would cost that visitor a one-second retransmission.
const BACKLOG: u32 = 4096;

/// A listening socket on `addr` with a deep accept queue (4096 places).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's and tokio's `bind` do: a restart can listen while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `app` on `listener` until `stop`; then lets open requests finish (the caller bounds
/// how long) and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: WebMetrics,
    troubles: Arc<Troubles>,
    stop: CancellationToken,
) {
    let shared = Arc::new(Shared {
        reports: Arc::new(Semaphore::new(REPORTS_IN_FLIGHT)),
        metrics_renders: Arc::new(Semaphore::new(METRICS_IN_FLIGHT)),
        others: Arc::new(Semaphore::new(OTHER_IN_FLIGHT)),
        limits,
        metrics,
        troubles,
        registry: Mutex::default(),
        logged: Default::default(),
        started: Instant::now(),
    });
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                accept_failed(&shared, &e).await;
                continue;
            }
        };
        let conn = match shared.admit(peer.ip()) {
            Ok(conn) => conn,
            Err(reason) => {
                refuse(&shared, stream, peer, reason);
                continue;
            }
        };
        let shared = shared.clone();
        let app = app.clone();
        let stop = stop.clone();
        let at_cap = shared.metrics.open.get() as usize >= shared.limits.max_connections;
        tracker.spawn(async move {
            serve_connection(stream, peer, conn.clone(), &shared, app, stop).await;
            shared.forget(&conn);
        });
        if at_cap {
            // In a burst of new connections at the cap, let the one just accepted read its
            // request (it runs next on this thread) before the next accept makes room: a
            // visitor whose request is already waiting is then being answered, not the
            // connection that has waited longest.
            tokio::task::yield_now().await;
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// An accept that failed: out of descriptors (the monitor's trouble, counted and shown; the
/// listener waits a moment so the probes can finish and free some) or a connection that
/// went away before it was accepted (nothing to do).
async fn accept_failed(shared: &Shared, e: &io::Error) {
    if let Some(trouble) = Trouble::of_io(e) {
        shared
            .troubles
            .record(trouble, "accepting a web connection");
        if shared.may_log(LogSlot::Accept) {
            tracing::warn!("web: cannot accept connections: {e}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Closes a refused connection, with a short 503 if the socket takes it at once.
fn refuse(shared: &Shared, stream: TcpStream, peer: SocketAddr, refusal: Refusal) {
    let reason = refusal.label();
    shared.metrics.rejected.with_label_values(&[reason]).inc();
    let (slot, why) = match refusal {
        Refusal::PerIp => (
            LogSlot::PerIp,
            format!(
                "{} has {} connections open ([web] max_connections_per_ip)",
                address_key(peer.ip()),
                shared.limits.max_connections_per_ip
            ),
        ),
        Refusal::Total => (
            LogSlot::Total,
            format!(
                "{} connections are open and all are being answered ([web] max_connections)",
                shared.limits.max_connections
            ),
        ),
    };
    if shared.may_log(slot) {
        tracing::warn!(
            "web: refusing connections: {why} (counted in mxping_web_connections_rejected_total{{reason=\"{reason}\"}})"
        );
    }
    let body = "too many connections; try again shortly\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_S}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// Serves one connection until it ends, expires, is evicted, or the listener stops.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    shared: &Arc<Shared>,
    app: Router,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Watched {
        inner: stream,
        conn: conn.clone(),
    });
    let service = Service {
        app,
        conn: conn.clone(),
        shared: shared.clone(),
        peer,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        if conn.evicted.load(Ordering::Relaxed) {
            return;
        }
        let deadline = conn.deadline(&shared.limits);
        let sleep = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            () = conn.changed.notified() => {}
            () = sleep => {
                let (at, expiry) = deadline.expect("slept until it");
                // The deadline may have moved while this slept (a state change's wake-up
                // can come after the timer's).
                if conn.deadline(&shared.limits).is_some_and(|(now_at, e)| now_at == at && e == expiry) {
                    shared.metrics.closed.with_label_values(&[expiry.label()]).inc();
                    if shared.may_log(LogSlot::Timeout) {
                        tracing::info!(
                            "web: closing connections that outlast their timeouts (first: {}; \
                             counted in mxping_web_connections_closed_total)",
                            expiry.label()
                        );
                    }
                    return;
                }
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The app behind a connection: marks the connection busy for each request and draws on the
/// request's budget.
#[derive(Clone)]
struct Service {
    app: Router,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    /// The peer, for handlers that ask (`ConnectInfo`).
    peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Tracked>, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.conn.set_phase(Phase::Busy);
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let budget = Budget::of(request.method(), request.uri().path());
        let permit = self.shared.budget(budget).clone().try_acquire_owned().ok();
        let app = self.app.clone();
        let conn = self.conn.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let response = match permit {
                Some(_) => app
                    .oneshot(request.map(Body::new))
                    .await
                    .unwrap_or_else(|never| match never {}),
                None => {
                    shared
                        .metrics
                        .requests_rejected
                        .with_label_values(&[budget.label()])
                        .inc();
                    if shared.may_log(LogSlot::Budget) {
                        tracing::warn!(
                            "web: answering 503: the {} budget is in use (counted in \
                             mxping_web_requests_rejected_total)",
                            budget.label()
                        );
                    }
                    busy()
                }
            };
            Ok(response.map(|body| Tracked {
                body,
                conn,
                shared,
                _permit: permit,
            }))
        })
    }
}

/// A 503 for a request over its budget.
fn busy() -> Response<Body> {
    let mut response = Response::new(Body::from("busy; try again shortly\n"));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(RETRY_AFTER_S),
    );
    response
}

/// A response body that, once sent (or dropped), returns its connection to waiting for the
/// next request head and its request's budget.
struct Tracked {
    body: Body,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.shared.answered(&self.conn);
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The socket, watched: the first byte of a kept-alive connection's next request starts its
/// header timeout, and a write the client does not take starts the write timeout.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl Watched {
    fn write_progress<T>(&self, poll: &Poll<T>) {
        let mut s = self.conn.state.lock().expect("connection state");
        match (poll.is_pending(), s.write_blocked) {
            (true, None) => {
                s.write_blocked = Some(Instant::now());
                drop(s);
                self.conn.changed.notify_one();
            }
            (false, Some(_)) => {
                s.write_blocked = None;
                drop(s);
                self.conn.changed.notify_one();
            }
            _ => {}
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let mut s = self.conn.state.lock().expect("connection state");
            if let Phase::Idle(_) = s.phase {
                s.phase = Phase::Head(Instant::now());
                drop(s);
                self.conn.changed.notify_one();
            }
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.write_progress(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.write_progress(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.write_progress(&poll);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_is_a_quarter_of_the_open_file_limit_and_at_most_4096() {
        assert_eq!(default_max_connections(Some(1024)), 256);
        assert_eq!(default_max_connections(Some(1_048_576)), 4096);
        assert_eq!(default_max_connections(Some(20)), 16);
        assert_eq!(default_max_connections(None), 4096);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    fn shared(max_connections: usize, max_connections_per_ip: usize) -> Shared {
        let registry = Registry::new();
        Shared {
            limits: Limits {
                header_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                write_timeout: Duration::from_secs(30),
                max_connections,
                max_connections_per_ip,
            },
            metrics: WebMetrics::register(&registry),
            troubles: Arc::new(Troubles::register(&registry)),
            registry: Mutex::default(),
            reports: Arc::new(Semaphore::new(1)),
            metrics_renders: Arc::new(Semaphore::new(1)),
            others: Arc::new(Semaphore::new(1)),
            logged: Default::default(),
            started: Instant::now(),
        }
    }

    #[tokio::test]
    async fn at_the_cap_the_connection_waiting_longest_since_its_last_answer_makes_room() {
        let s = shared(3, 0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = s.admit(ip).unwrap();
        let b = s.admit(ip).unwrap();
        let c = s.admit(ip).unwrap();
        // a is answered (a visitor's kept-alive connection), c is being answered now.
        a.set_phase(Phase::Busy);
        s.answered(&a);
        c.set_phase(Phase::Busy);
        let d = s.admit(ip).unwrap();
        assert!(b.evicted.load(Ordering::Relaxed), "b waited longest");
        assert!(!a.evicted.load(Ordering::Relaxed));
        // Next: a (waiting since its answer), never c (busy), then d.
        let _e = s.admit(ip).unwrap();
        assert!(a.evicted.load(Ordering::Relaxed));
        let _f = s.admit(ip).unwrap();
        assert!(d.evicted.load(Ordering::Relaxed));
        assert!(!c.evicted.load(Ordering::Relaxed));
        // All but c waiting, c busy: once every one is busy, a new connection is refused.
        for id in [4, 5] {
            let conn = s.registry.lock().unwrap().conns[&id].conn.clone();
            conn.set_phase(Phase::Busy);
        }
        assert_eq!(s.admit(ip).err(), Some(Refusal::Total));
        assert_eq!(s.metrics.open.get(), 3);
        s.forget(&c);
        assert_eq!(s.metrics.open.get(), 2);
        assert!(s.admit(ip).is_ok());
    }

    #[tokio::test]
    async fn one_address_is_refused_beyond_its_share_and_admitted_again_when_one_closes() {
        let s = shared(100, 2);
        let one: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let first = s.admit(one).unwrap();
        let _second = s.admit(same_64).unwrap();
        assert_eq!(s.admit(one).err(), Some(Refusal::PerIp));
        assert!(s.admit(other).is_ok());
        s.forget(&first);
        assert!(s.admit(one).is_ok());
    }

    #[test]
    fn each_kind_of_refusal_is_logged_at_most_once_a_minute() {
        let s = shared(1, 0);
        assert!(s.may_log(LogSlot::Evicted));
        assert!(
            !s.may_log(LogSlot::Evicted),
            "a second line within the minute"
        );
        assert!(s.may_log(LogSlot::PerIp), "another kind has its own minute");
    }

    #[test]
    fn deadlines_follow_what_the_connection_is_doing() {
        let limits = shared(1, 0).limits;
        let t0 = Instant::now();
        let conn = Conn {
            id: 0,
            state: Mutex::new(ConnState {
                phase: Phase::Head(t0),
                write_blocked: None,
            }),
            changed: Notify::new(),
            evicted: AtomicBool::new(false),
        };
        assert_eq!(
            conn.deadline(&limits),
            Some((t0 + limits.header_timeout, Expiry::Header))
        );
        conn.set_phase(Phase::Idle(t0));
        assert_eq!(
            conn.deadline(&limits),
            Some((t0 + limits.idle_timeout, Expiry::Idle))
        );
        conn.set_phase(Phase::Busy);
        assert_eq!(conn.deadline(&limits), None);
        conn.state.lock().unwrap().write_blocked = Some(t0);
        assert_eq!(
            conn.deadline(&limits),
            Some((t0 + limits.write_timeout, Expiry::Write))
        );
        // Blocked writing while waiting for a head: whichever comes first.
        conn.set_phase(Phase::Head(t0));
        assert_eq!(
            conn.deadline(&limits),
            Some((t0 + limits.header_timeout, Expiry::Header))
        );
    }

    #[test]
    fn reports_and_metrics_have_budgets_of_their_own() {
        use axum::http::Method;
        assert_eq!(
            Budget::of(&Method::POST, crate::vantage::REPORT_PATH),
            Budget::Reports
        );
        assert_eq!(
            Budget::of(&Method::GET, crate::vantage::REPORT_PATH),
            Budget::Other
        );
        assert_eq!(Budget::of(&Method::GET, "/metrics"), Budget::Metrics);
        assert_eq!(Budget::of(&Method::GET, "/"), Budget::Other);
    }
}
