//! The HTTP client for every request that is not a federation probe: the server well-known and
//! its redirects, the client well-known, `base_url` and `/versions`, and whatever comes next.
//!
//! It is small on purpose. A general client (reqwest, hyper-util's legacy client) resolves and
//! connects inside itself, where the private-address guard cannot see IP-literal URLs; here
//! every connection is [`NetGuard::connect`] to an address this module resolved itself, so a
//! URL can name a host, a DNS answer, an IP literal or a redirect, and the guard still judges
//! the exact socket address. Hosts are typed ([`Host`]): a server name made of digits such as
//! `2130706433` stays the DNS name the Matrix grammar says it is, never `127.0.0.1`.
//!
//! Bounded in every way a hostile server could stretch: response heads (16 KiB), bodies (the
//! caller's cap), and time (callers wrap requests in their deadline).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::client::conn::http1;
use hyper::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderValue, LOCATION, USER_AGENT,
};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName as TlsServerName;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::error::{ErrorKind, ProbeError};
use crate::net::classify;
use crate::net::dns::Dns;
use crate::net::guard::NetGuard;
use crate::server_name::Host;

/// Where a request goes: scheme, typed host, port and path (with query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` (true) or plain `http`.
    pub https: bool,
    /// The host: a DNS name exactly as written, or an IP.
    pub host: Host,
    /// The port.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Endpoint {
    /// `https://host:port/path`.
    pub fn https(host: Host, port: u16, path: &str) -> Endpoint {
        Endpoint {
            https: true,
            host,
            port,
            path: path.to_owned(),
        }
    }

    /// An endpoint from a URL that arrived from elsewhere (a `Location`, a `base_url`), as a
    /// browser reads it: `http` or `https` only, with a host.
    pub fn from_url(url: &url::Url) -> Result<Endpoint, String> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("{url} is not an http(s) URL (scheme {other:?})")),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => Host::Dns(d.to_owned()),
            Some(url::Host::Ipv4(ip)) => Host::Ipv4(ip),
            Some(url::Host::Ipv6(ip)) => Host::Ipv6(ip),
            None => return Err(format!("{url} has no host")),
        };
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Endpoint {
            https,
            host,
            port: url
                .port_or_known_default()
                .unwrap_or(if https { 443 } else { 80 }),
            path,
        })
    }

    /// The `Host` header: the host, with the port unless it is the scheme's default.
    pub fn host_header(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The same host and port with another path (`path` starts with `/`).
    pub fn with_path(&self, path: &str) -> Endpoint {
        Endpoint {
            path: path.to_owned(),
            ..self.clone()
        }
    }

    /// Where a `Location` header value leads from here. A relative reference keeps this host
    /// exactly as typed (it is never re-parsed, so a digit-only DNS name stays a name); an
    /// absolute one is read as a browser reads it.
    pub fn join(&self, location: &str) -> Result<Endpoint, String> {
        let absolute = location.starts_with("//") || url::Url::parse(location).is_ok();
        let scheme = if self.https { "https" } else { "http" };
        if absolute {
            let base =
                url::Url::parse(&format!("{scheme}://base.invalid/")).expect("a static URL parses");
            let next = base
                .join(location)
                .map_err(|e| format!("{location:?} is not a valid URL: {e}"))?;
            return Endpoint::from_url(&next);
        }
        let base = url::Url::parse(&format!("{scheme}://base.invalid{}", self.path))
            .map_err(|e| format!("cannot resolve {location:?} against {self}: {e}"))?;
        let next = base
            .join(location)
            .map_err(|e| format!("{location:?} is not a valid URL: {e}"))?;
        let mut path = next.path().to_owned();
        if let Some(q) = next.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(self.with_path(&path))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.path)
    }
}

/// A response with its body read in full (within the cap).
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// From sending the request to the response head.
    pub head_time: Duration,
}

/// How long one address gets before the next is tried alongside it (Happy Eyeballs; Synapse's
/// stagger).
pub(crate) const NEXT_ADDRESS_AFTER: Duration = Duration::from_millis(300);

/// Redirect hop limit (Go's default, which gomatrixserverlib uses).
pub(crate) const MAX_REDIRECTS: usize = 10;

/// A response reached by following redirects.
#[derive(Debug)]
pub struct Followed {
    /// The final (non-redirect) response.
    pub response: Response,
    /// The URL that gave it.
    pub url: Endpoint,
    /// Every redirect target followed, in order.
    pub redirects: Vec<Endpoint>,
}

/// The redirect statuses a browser follows.
pub(crate) fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The next URL of a redirect from `current`, refusing loops (`seen` holds every URL requested
/// so far), more than [`MAX_REDIRECTS`] hops, and a move from HTTPS to plain HTTP. The next
/// hop's addresses are guarded where it is connected, like every other connection.
pub(crate) fn next_hop(
    current: &Endpoint,
    headers: &HeaderMap,
    seen: &[Endpoint],
) -> Result<Endpoint, ProbeError> {
    let redirect_error = |msg: String| ProbeError::new(ErrorKind::InvalidResponse, msg);
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| redirect_error(format!("{current} redirects without a Location header")))?;
    let next = current
        .join(location)
        .map_err(|e| redirect_error(format!("{current} redirects to an invalid URL: {e}")))?;
    if current.https && !next.https {
        return Err(redirect_error(format!(
            "{current} redirects to {next}, which is not HTTPS; mxping does not follow a \
             redirect from HTTPS to plain HTTP"
        )));
    }
    if seen.contains(&next) {
        return Err(redirect_error(format!(
            "redirect loop: {current} redirects back to {next}"
        )));
    }
    if seen.len() > MAX_REDIRECTS {
        return Err(redirect_error(format!(
            "more than {MAX_REDIRECTS} redirects (last one to {next})"
        )));
    }
    Ok(next)
}

/// Opens guarded, verified connections. Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    dns: Dns,
    guard: NetGuard,
    tls: Arc<rustls::ClientConfig>,
}

/// Aborts the HTTP connection task when the connection (or the probe's round) is dropped.
pub(crate) struct ConnTask(JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One open HTTP/1.1 connection, for requests to one host and port.
pub struct Connection {
    host: Host,
    port: u16,
    https: bool,
    sender: http1::SendRequest<Full<Bytes>>,
    _task: ConnTask,
}

impl Fetcher {
    /// A client resolving through `dns`, connecting through `guard`, verifying certificates
    /// with `tls` (which must verify normally).
    pub fn new(dns: Dns, guard: NetGuard, tls: rustls::ClientConfig) -> Fetcher {
        Fetcher {
            dns,
            guard,
            tls: Arc::new(tls),
        }
    }

    /// A client for endpoints the operator wrote in the config (the health check's own
    /// address, alert homeservers and webhooks): trusted as written (design.md "Safety"), so
    /// every address is allowed, but certificates are verified with `roots` as everywhere.
    pub fn trusted(dns: Dns, roots: Arc<rustls::RootCertStore>) -> Fetcher {
        let everything = vec![
            "0.0.0.0/0".parse().expect("a CIDR"),
            "::/0".parse().expect("a CIDR"),
        ];
        Fetcher::new(
            dns,
            NetGuard::new(everything),
            crate::net::tls::verifying_config(roots),
        )
    }

    /// Connects to `to`'s host and port: each address of a name in turn (IPv6 first, as DNS
    /// gives them), every one through the guard; the first that connects is used. TLS is
    /// verified for the host (no SNI for an IP).
    pub async fn connect(&self, to: &Endpoint) -> Result<Connection, ProbeError> {
        let ips = match &to.host {
            Host::Dns(name) => {
                let lookup = self.dns.host(name).await;
                if lookup.addresses.is_empty() {
                    return Err(if lookup.errors.is_empty() {
                        ProbeError::new(
                            ErrorKind::NoAddress,
                            format!("{name} has no A or AAAA record"),
                        )
                    } else {
                        lookup.failure(format!("looking up {name} failed"))
                    });
                }
                lookup.addresses
            }
            other => vec![other.ip().expect("an IP literal")],
        };
        let tcp = self.connect_any(&ips, to.port).await?;
        let shown = format!("{}:{}", to.host, to.port);
        let (sender, connection) = if to.https {
            let (name, expected) = match &to.host {
                Host::Dns(n) => (
                    TlsServerName::try_from(n.clone()).map_err(|_| {
                        ProbeError::new(
                            ErrorKind::InvalidName,
                            format!("{n:?} is not a valid TLS name"),
                        )
                    })?,
                    n.clone(),
                ),
                other => {
                    let ip = other.ip().expect("an IP literal");
                    (TlsServerName::IpAddress(ip.into()), ip.to_string())
                }
            };
            let tls = TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| classify::tls_error(&e, &shown, &expected))?;
            handshake(TokioIo::new(tls)).await?
        } else {
            handshake(TokioIo::new(tcp)).await?
        };
        Ok(Connection {
            host: to.host.clone(),
            port: to.port,
            https: to.https,
            sender,
            _task: connection,
        })
    }

    /// Connects to the first of `ips` that answers, every attempt through the guard. Happy
    /// Eyeballs, as homeservers do (Synapse's `HostnameEndpoint`): the next address is tried
    /// [`NEXT_ADDRESS_AFTER`] after the previous one started, or at once when it failed, so a
    /// black-holed address (often a broken IPv6 route) doesn't eat the whole timeout.
    async fn connect_any(
        &self,
        ips: &[std::net::IpAddr],
        port: u16,
    ) -> Result<tokio::net::TcpStream, ProbeError> {
        use futures_util::StreamExt as _;
        let mut attempts = futures_util::stream::FuturesUnordered::new();
        let mut next = ips.iter();
        let mut first_error = None;
        loop {
            if let Some(ip) = next.next() {
                attempts.push(self.guard.connect(SocketAddr::new(*ip, port)));
            }
            let stagger = tokio::time::sleep(NEXT_ADDRESS_AFTER);
            tokio::pin!(stagger);
            loop {
                tokio::select! {
                    done = attempts.next() => match done {
                        Some(Ok(stream)) => return Ok(stream),
                        Some(Err(e)) => {
                            first_error.get_or_insert(e);
                            // Failed at once: start the next address now.
                            if next.len() > 0 {
                                break;
                            }
                            if attempts.is_empty() {
                                return Err(first_error.expect("an attempt failed"));
                            }
                        }
                        None => {
                            return Err(first_error.unwrap_or_else(|| {
                                ProbeError::new(ErrorKind::NoAddress, "no address to connect to")
                            }));
                        }
                    },
                    () = &mut stagger, if next.len() > 0 => break,
                }
            }
        }
    }

    /// GET `url` on a fresh connection, reading at most `max_body` bytes of body.
    pub async fn get(&self, url: &Endpoint, max_body: usize) -> Result<Response, ProbeError> {
        self.connect(url).await?.get(url, max_body).await
    }

    /// POST `body` as JSON to `url` on a fresh connection, without following redirects (a
    /// redirect is the answer), reading at most `max_body` bytes of the answer's body.
    pub async fn post_json(
        &self,
        url: &Endpoint,
        body: &'static [u8],
        max_body: usize,
    ) -> Result<Response, ProbeError> {
        self.connect(url)
            .await?
            .post_json(url, body, max_body)
            .await
    }

    /// Sends `method` to `url` on a fresh connection with `headers` and `body` (JSON when not
    /// empty), without following redirects, reading at most `max_body` bytes of the answer.
    pub async fn request(
        &self,
        method: hyper::Method,
        url: &Endpoint,
        headers: &[(hyper::header::HeaderName, HeaderValue)],
        body: Bytes,
        max_body: usize,
    ) -> Result<Response, ProbeError> {
        let mut request = Request::builder().method(method).uri(url.path.as_str());
        if !body.is_empty() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        self.connect(url)
            .await?
            .send(url, request, body, max_body)
            .await
    }

    /// GET `url`, following redirects as [`next_hop`] allows. `conn` is reused while it serves
    /// the next hop and left holding the connection of the final answer, so a caller can send
    /// a second request on a warm connection. `on_hop` sees every redirect as it is followed.
    pub async fn get_following(
        &self,
        url: &Endpoint,
        max_body: usize,
        conn: &mut Option<Connection>,
        on_hop: &mut (dyn FnMut(&Endpoint) + Send),
    ) -> Result<Followed, ProbeError> {
        self.get_following_with(url, &[], max_body, conn, on_hop)
            .await
    }

    /// [`Fetcher::get_following`] sending `headers` with every request (as a browser sends
    /// its `Origin` on each hop).
    pub async fn get_following_with(
        &self,
        url: &Endpoint,
        headers: &[(hyper::header::HeaderName, HeaderValue)],
        max_body: usize,
        conn: &mut Option<Connection>,
        on_hop: &mut (dyn FnMut(&Endpoint) + Send),
    ) -> Result<Followed, ProbeError> {
        let mut current = url.clone();
        let mut seen = vec![current.clone()];
        loop {
            let reusable = match conn.as_mut() {
                Some(c) if c.serves(&current) => c.is_open().await,
                _ => false,
            };
            if !reusable {
                *conn = Some(self.connect(&current).await?);
            }
            let c = conn.as_mut().expect("a connection was just opened");
            let response = c
                .request(hyper::Method::GET, &current, headers, max_body)
                .await?;
            if !is_redirect(response.status) {
                return Ok(Followed {
                    response,
                    url: current,
                    redirects: seen.split_off(1),
                });
            }
            let next = next_hop(&current, &response.headers, &seen)?;
            on_hop(&next);
            seen.push(next.clone());
            current = next;
        }
    }
}

/// GET a URL the operator wrote (the health check's own address): trusted as written
/// (design.md "Safety"), so every address is allowed, but it still goes through the one
/// connector. Returns the status.
pub async fn get_trusted(url: &str, timeout: Duration) -> Result<StatusCode, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let to = Endpoint::from_url(&parsed)?;
    let roots = crate::config::roots::load_roots(crate::config::roots::Roots::Webpki, None)
        .map_err(|e| e.to_string())?;
    let fetcher = Fetcher::trusted(Dns::new(&[], timeout), roots);
    match tokio::time::timeout(timeout, fetcher.get(&to, 64 * 1024)).await {
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
        Ok(Err(e)) => Err(e.message),
        Ok(Ok(r)) => Ok(r.status),
    }
}

/// POSTs `body` (JSON) to `url`, an address the operator gave (no private-address guard:
/// the monitor's own admin API is usually on loopback), with `Authorization: Bearer token`;
/// the status and the answer's body (at most 64 KiB). For `mxping maintenance`.
pub async fn post_trusted(
    url: &str,
    token: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let to = Endpoint::from_url(&parsed)?;
    let roots = crate::config::roots::load_roots(crate::config::roots::Roots::Webpki, None)
        .map_err(|e| e.to_string())?;
    let fetcher = Fetcher::trusted(Dns::new(&[], timeout), roots);
    let auth = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token holds characters a header cannot carry".to_owned())?;
    let headers = [(hyper::header::AUTHORIZATION, auth)];
    let sent = fetcher.request(
        hyper::Method::POST,
        &to,
        &headers,
        Bytes::from(body),
        64 * 1024,
    );
    match tokio::time::timeout(timeout, sent).await {
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
        Ok(Err(e)) => Err(e.message),
        Ok(Ok(r)) => Ok((r.status, r.body)),
    }
}

/// Sends `request` once the connection is ready, timing only the exchange itself: from the
/// request going out to the response head arriving (waiting for readiness is not counted).
/// With the connection's `stamps`, by the kernel's clock (see `net::stamp`): the time the
/// reading task took to be scheduled is left out. Without them, or when they cannot be right
/// (longer than the time measured here), by the time measured here.
pub(crate) async fn send_timed<B: Body + 'static>(
    sender: &mut http1::SendRequest<B>,
    request: Request<B>,
    path: &str,
    stamps: Option<&super::stamp::Stamps>,
) -> Result<(hyper::Response<hyper::body::Incoming>, Duration), ProbeError> {
    sender
        .ready()
        .await
        .map_err(|e| classify::http_error(&e, path))?;
    if let Some(s) = stamps {
        s.arm();
    }
    let started = Instant::now();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| classify::http_error(&e, path))?;
    let measured = started.elapsed();
    let by_kernel = stamps
        .and_then(super::stamp::Stamps::exchange)
        .filter(|d| *d <= measured);
    Ok((response, by_kernel.unwrap_or(measured)))
}

/// The HTTP/1.1 handshake on `io`, with the connection driven by a task that ends with it.
pub(crate) async fn handshake<T, B>(io: T) -> Result<(http1::SendRequest<B>, ConnTask), ProbeError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, connection) = http1::Builder::new()
        .max_buf_size(crate::net::MAX_HEAD_BUFFER)
        .handshake::<_, B>(io)
        .await
        .map_err(|e| {
            ProbeError::new(
                ErrorKind::InvalidResponse,
                format!("HTTP setup failed: {e}"),
            )
        })?;
    let task = ConnTask(tokio::spawn(async move {
        let _ = connection.await;
    }));
    Ok((sender, task))
}

impl Connection {
    /// True when `url` goes to the host and port this connection is for.
    pub fn serves(&self, url: &Endpoint) -> bool {
        self.host == url.host && self.port == url.port && self.https == url.https
    }

    /// True while the server keeps the connection open for another request.
    pub async fn is_open(&mut self) -> bool {
        self.sender.ready().await.is_ok()
    }

    /// GET `url` (which must be for this connection's host) and read the body through
    /// `max_body`.
    pub async fn get(&mut self, url: &Endpoint, max_body: usize) -> Result<Response, ProbeError> {
        let request = Request::get(url.path.as_str());
        self.send(url, request, Bytes::new(), max_body).await
    }

    /// Sends `method` with `headers` and no body to `url` (which must be for this
    /// connection's host) and reads the body through `max_body`.
    pub async fn request(
        &mut self,
        method: hyper::Method,
        url: &Endpoint,
        headers: &[(hyper::header::HeaderName, HeaderValue)],
        max_body: usize,
    ) -> Result<Response, ProbeError> {
        let mut request = Request::builder().method(method).uri(url.path.as_str());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        self.send(url, request, Bytes::new(), max_body).await
    }

    /// POST `body` as JSON to `url` (which must be for this connection's host) and read the
    /// answer's body through `max_body`.
    pub async fn post_json(
        &mut self,
        url: &Endpoint,
        body: &'static [u8],
        max_body: usize,
    ) -> Result<Response, ProbeError> {
        let request = Request::post(url.path.as_str()).header(CONTENT_TYPE, "application/json");
        self.send(url, request, Bytes::from_static(body), max_body)
            .await
    }

    async fn send(
        &mut self,
        url: &Endpoint,
        request: hyper::http::request::Builder,
        body: Bytes,
        max_body: usize,
    ) -> Result<Response, ProbeError> {
        let path = &url.path;
        let host = HeaderValue::from_str(&url.host_header()).map_err(|_| {
            ProbeError::new(
                ErrorKind::InvalidName,
                format!("{:?} is not a valid Host header", url.host_header()),
            )
        })?;
        let request = request
            .header(HOST, host)
            .header(USER_AGENT, crate::USER_AGENT)
            .header(ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|e| {
                ProbeError::new(
                    ErrorKind::InvalidResponse,
                    format!("cannot request {url}: {e}"),
                )
            })?;
        let (response, head_time) = send_timed(&mut self.sender, request, path, None).await?;
        let too_large = || {
            ProbeError::new(
                ErrorKind::BodyTooLarge,
                format!("the body is larger than {} KiB", max_body / 1024),
            )
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body as u64) {
            return Err(too_large());
        }
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    too_large()
                } else {
                    ProbeError::new(
                        ErrorKind::InvalidResponse,
                        format!(
                            "the body could not be read: {}",
                            classify::chain_text(e.as_ref())
                        ),
                    )
                }
            })?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
            head_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        Endpoint::from_url(&url::Url::parse(s).unwrap()).unwrap()
    }

    #[test]
    fn digit_names_stay_names_through_relative_redirects() {
        let here = Endpoint::https(Host::Dns("2130706433".into()), 443, "/.well-known/a/b");
        assert_eq!(here.to_string(), "https://2130706433/.well-known/a/b");
        let next = here.join("c?x=1").unwrap();
        assert_eq!(next.host, Host::Dns("2130706433".into()));
        assert_eq!(next.path, "/.well-known/a/c?x=1");
        assert_eq!(here.join("/z").unwrap().path, "/z");
        // An absolute URL is read as a browser reads it: the guard then judges the address.
        let abs = here.join("https://2130706433/x").unwrap();
        assert_eq!(abs.host, Host::Ipv4("127.0.0.1".parse().unwrap()));
        assert_eq!(
            here.join("//other.example:8443/p").unwrap().to_string(),
            "https://other.example:8443/p"
        );
        assert!(!here.join("http://other.example/").unwrap().https);
    }

    #[test]
    fn host_header_omits_only_the_default_port() {
        assert_eq!(ep("https://a.example/x").host_header(), "a.example");
        assert_eq!(
            ep("https://a.example:8448/x").host_header(),
            "a.example:8448"
        );
        assert_eq!(ep("http://[::1]:80/").host_header(), "[::1]");
        assert_eq!(ep("https://[::1]:8443/").host_header(), "[::1]:8443");
        assert!(Endpoint::from_url(&url::Url::parse("ftp://a.example/").unwrap()).is_err());
    }
}
