//! `servers.toml` → a validated [`Config`], in two steps (style.md habit 4): raw serde structs
//! with `deny_unknown_fields`, then validation that checks every value and reports **every**
//! problem at once, each with file, line, column, key and what to write instead.
//!
//! Parsing takes a `&str` plus a name for messages, so tests never touch the environment. The
//! shipped `servers.toml` is compiled into the binary as the default.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::server_name::ServerName;

/// The shipped server list, built into the binary.
pub const BUILTIN: &str = include_str!("../../servers.toml");
/// How the built-in list is named in messages.
pub const BUILTIN_NAME: &str = "built-in servers.toml";

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from (a path, or [`BUILTIN_NAME`]).
    pub source: String,
    /// `[monitor]`.
    pub monitor: MonitorConfig,
    /// `[web]`.
    pub web: WebConfig,
    /// `[dns]`.
    pub dns: DnsConfig,
    /// `[tls]`.
    pub tls: TlsConfig,
    /// `[network]`.
    pub network: NetworkConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[[server]]`, in file order.
    pub servers: Vec<ServerConfig>,
}

/// Probe cadence, thresholds and hysteresis.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorConfig {
    /// Time between rounds for a healthy server.
    pub interval: Duration,
    /// Time between rounds while a server is failing (confirms outages sooner).
    pub retry_interval: Duration,
    /// Bound on one round against one address.
    pub timeout: Duration,
    /// `/version` requests per round.
    pub pings: u32,
    /// Headline latency below this is green.
    pub green_below: Duration,
    /// Consecutive failed rounds before red.
    pub down_after: u32,
    /// Consecutive good rounds before a red server is green again.
    pub up_after: u32,
    /// Rounds running at the same time, across all servers.
    pub concurrency: usize,
    /// Also check `/_matrix/key/v2/server` each round.
    pub check_keys: bool,
    /// Also check the client API (`/.well-known/matrix/client`, `/_matrix/client/versions`).
    pub check_client: bool,
}

/// The web app.
#[derive(Clone, Debug, PartialEq)]
pub struct WebConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Name of this monitoring location, shown on the page and in the API.
    pub vantage: String,
    /// How often the status page reloads itself.
    pub refresh: Duration,
}

/// DNS settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsConfig {
    /// Name servers; empty means the system resolver.
    pub nameservers: Vec<SocketAddr>,
    /// Per-query timeout.
    pub timeout: Duration,
}

/// TLS settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    /// Which trust store to check certificates against.
    pub roots: crate::net::tls::Roots,
    /// PEM bundle trusted in addition to the built-in roots (resolved against the config's
    /// directory).
    pub extra_ca_file: Option<PathBuf>,
}

/// Network settings.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// CIDRs exempt from the private-address guard.
    pub allow: Vec<IpNet>,
}

/// Where history is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    /// Directory of the SQLite store (resolved against the config file's directory); `None`
    /// keeps history in memory only.
    pub data_dir: Option<PathBuf>,
    /// Rounds are written in batches this often; a crash loses at most this much.
    pub flush_interval: Duration,
    /// Raw rounds are kept this long.
    pub raw_retention: Duration,
    /// Daily rollups are kept this long (at least 90 days, for the 90-day window).
    pub rollup_retention: Duration,
}

/// One monitored server.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// The Matrix server name.
    pub name: String,
    /// Display title; defaults to the name.
    pub title: String,
    /// Short description per language code (`en`, `zh`, ...).
    pub description: BTreeMap<String, String>,
    /// The web client a newcomer would open.
    pub client_url: Option<String>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: Duration::from_secs(30),
            retry_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            pings: 4,
            green_below: Duration::from_millis(200),
            down_after: 3,
            up_after: 2,
            concurrency: 64,
            check_keys: true,
            check_client: true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw, as written.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    monitor: RawMonitor,
    #[serde(default)]
    web: RawWeb,
    #[serde(default)]
    dns: RawDns,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default, rename = "server")]
    servers: Vec<RawServer>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    interval: Option<Spanned<String>>,
    retry_interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    pings: Option<Spanned<i64>>,
    green_below: Option<Spanned<String>>,
    down_after: Option<Spanned<i64>>,
    up_after: Option<Spanned<i64>>,
    concurrency: Option<Spanned<i64>>,
    check_keys: Option<bool>,
    check_client: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<Spanned<String>>,
    vantage: Option<Spanned<String>>,
    refresh: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDns {
    nameservers: Option<Vec<Spanned<String>>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    roots: Option<Spanned<String>>,
    extra_ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    allow: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    data_dir: Option<Spanned<String>>,
    flush_interval: Option<Spanned<String>>,
    raw_retention: Option<Spanned<String>>,
    rollup_retention: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: Spanned<String>,
    title: Option<Spanned<String>>,
    description: Option<Spanned<BTreeMap<String, String>>>,
    client_url: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key, e.g. `[monitor] interval` or `[[server]] #2 name`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub fix: String,
}

/// Everything wrong with a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or [`BUILTIN_NAME`]).
    pub file: String,
    /// Every problem found, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{} has {n} problem{}:",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            if p.line > 0 {
                write!(f, "  {}:{}:{}: ", self.file, p.line, p.column)?;
            } else {
                write!(f, "  {}: ", self.file)?;
            }
            write!(f, "{}: {}", p.key, p.message)?;
            if !p.fix.is_empty() {
                write!(f, "\n      fix: {}", p.fix)?;
            }
            if !std::ptr::eq(p, self.problems.last().expect("a problem")) {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems with their positions.
struct Problems<'a> {
    source: &'a str,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn add(
        &mut self,
        span: Option<Range<usize>>,
        key: &str,
        message: String,
        fix: impl Into<String>,
    ) {
        let (line, column) = span.map_or((0, 0), |s| line_col(self.source, s.start));
        self.list.push(Problem {
            line,
            column,
            key: key.to_owned(),
            message,
            fix: fix.into(),
        });
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, source[line_start..offset].chars().count() + 1)
}

/// The `[table] key` a byte offset belongs to, read from the text around it: the nearest table
/// header above and the `key =` at the start of the offset's line.
fn key_at(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[offset..]
        .find('\n')
        .map_or(source.len(), |i| offset + i);
    let line = &source[line_start..line_end];
    let mut table = String::new();
    let mut server_index = 0;
    for l in source[..line_start].lines() {
        let t = l.trim();
        if t.starts_with("[[server]]") {
            server_index += 1;
            table = format!("[[server]] #{server_index}");
        } else if t.starts_with('[') {
            table = t.split(']').next().unwrap_or(t).to_owned() + "]";
        }
    }
    let trimmed = line.trim();
    if trimmed.starts_with('[') {
        return trimmed.to_owned();
    }
    match trimmed.split_once('=') {
        Some((k, _)) if !k.trim().is_empty() => {
            if table.is_empty() {
                k.trim().to_owned()
            } else {
                format!("{table} {}", k.trim())
            }
        }
        _ => {
            if table.is_empty() {
                "(top level)".to_owned()
            } else {
                table
            }
        }
    }
}

/// A fix for a serde/TOML error message about `key`.
fn fix_for(message: &str, key: &str) -> String {
    if key == "server" || key.starts_with("server ") {
        "write each server as its own [[server]] table with name = \"matrix.org\"".into()
    } else if message.contains("invalid basic string") || message.contains("expected `\"`") {
        "close the string with a double quote on the same line".into()
    } else if message.contains("unclosed table") {
        "close the table name with ], e.g. [monitor]".into()
    } else if message.starts_with("unknown field") {
        "remove the key or correct its spelling (the valid keys are listed)".into()
    } else if message.contains("invalid type: string") && message.contains("expected i64") {
        "write the number without quotes".into()
    } else if message.contains("expected a string")
        || message.contains("expected a borrowed string")
        || message.contains("expected string")
    {
        "put the value in double quotes".into()
    } else if message.contains("missing field `name`") {
        "give every [[server]] a name, e.g. name = \"matrix.org\"".into()
    } else if message.contains("duplicate key") {
        "keep only one of the two definitions".into()
    } else if message.contains("expected a boolean") || message.contains("expected bool") {
        "write true or false, without quotes".into()
    } else if message.contains("expected a sequence") {
        "write a list, e.g. [\"a\", \"b\"]".into()
    } else {
        "see the example config shipped as servers.toml".into()
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

impl Config {
    /// Loads a config file from disk.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            problems: vec![Problem {
                line: 0,
                column: 0,
                key: "(file)".into(),
                message: format!("cannot be read: {e}"),
                fix: "check the path given to --config and the file's permissions".into(),
            }],
        })?;
        Config::parse(&text, &file, path.parent())
    }

    /// The config to use without `--config`: `./servers.toml` if present, else the built-in.
    pub fn load_default() -> Result<Config, ConfigError> {
        let local = Path::new("servers.toml");
        if local.exists() {
            Config::load(local)
        } else {
            Config::builtin()
        }
    }

    /// The built-in server list.
    pub fn builtin() -> Result<Config, ConfigError> {
        Config::parse(BUILTIN, BUILTIN_NAME, None)
    }

    /// Parses and validates `text`; `name` labels messages; relative paths (the CA file) are
    /// resolved against `base_dir`.
    pub fn parse(text: &str, name: &str, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let mut problems = Problems {
            source: text,
            list: Vec::new(),
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span();
                let key = span
                    .clone()
                    .map_or_else(|| "(file)".to_owned(), |s| key_at(text, s.start));
                let message = e.message().trim().replace('\n', " ");
                let fix = fix_for(&message, &key);
                problems.add(span, &key, message, fix);
                return Err(ConfigError {
                    file: name.to_owned(),
                    problems: problems.list,
                });
            }
        };
        let config = validate(raw, name, base_dir, &mut problems);
        if problems.list.is_empty() {
            Ok(config)
        } else {
            problems.list.sort_by_key(|p| (p.line, p.column));
            Err(ConfigError {
                file: name.to_owned(),
                problems: problems.list,
            })
        }
    }
}

fn duration(
    value: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
    problems: &mut Problems<'_>,
) -> Duration {
    let Some(v) = value else { return default };
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            problems.add(
                Some(v.span()),
                key,
                "must be longer than zero".into(),
                format!("e.g. {key} = \"{}\"", humantime::format_duration(default)),
            );
            default
        }
        Err(e) => {
            problems.add(
                Some(v.span()),
                key,
                format!("{:?} is not a duration ({e})", v.get_ref()),
                format!(
                    "write a duration such as \"{}\", \"1m 30s\" or \"250ms\"",
                    humantime::format_duration(default)
                ),
            );
            default
        }
    }
}

fn integer(
    value: &Option<Spanned<i64>>,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
    default: i64,
    problems: &mut Problems<'_>,
) -> i64 {
    let Some(v) = value else { return default };
    if range.contains(v.get_ref()) {
        *v.get_ref()
    } else {
        problems.add(
            Some(v.span()),
            key,
            format!("{} is out of range", v.get_ref()),
            format!(
                "use a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        );
        default
    }
}

fn validate(raw: RawConfig, name: &str, base_dir: Option<&Path>, p: &mut Problems<'_>) -> Config {
    let d = MonitorConfig::default();
    let m = &raw.monitor;
    let interval = duration(&m.interval, "[monitor] interval", d.interval, p);
    let retry_interval = duration(
        &m.retry_interval,
        "[monitor] retry_interval",
        d.retry_interval,
        p,
    );
    let timeout = duration(&m.timeout, "[monitor] timeout", d.timeout, p);
    let green_below = duration(&m.green_below, "[monitor] green_below", d.green_below, p);
    let monitor = MonitorConfig {
        interval,
        retry_interval,
        timeout,
        pings: integer(&m.pings, "[monitor] pings", 1..=20, 4, p) as u32,
        green_below,
        down_after: integer(&m.down_after, "[monitor] down_after", 1..=100, 3, p) as u32,
        up_after: integer(&m.up_after, "[monitor] up_after", 1..=100, 2, p) as u32,
        concurrency: integer(&m.concurrency, "[monitor] concurrency", 1..=10_000, 64, p) as usize,
        check_keys: m.check_keys.unwrap_or(true),
        check_client: m.check_client.unwrap_or(true),
    };
    // Values that contradict each other.
    if let Some(t) = &m.timeout
        && monitor.timeout >= monitor.interval
    {
        p.add(
            Some(t.span()),
            "[monitor] timeout",
            format!(
                "{} is not shorter than interval ({}), so rounds would overlap",
                humantime::format_duration(monitor.timeout),
                humantime::format_duration(monitor.interval)
            ),
            "make timeout shorter than interval, e.g. timeout = \"10s\" with interval = \"30s\"",
        );
    }
    if let Some(r) = &m.retry_interval
        && monitor.retry_interval > monitor.interval
    {
        p.add(
            Some(r.span()),
            "[monitor] retry_interval",
            format!(
                "{} is longer than interval ({}); failing servers are meant to be re-probed sooner",
                humantime::format_duration(monitor.retry_interval),
                humantime::format_duration(monitor.interval)
            ),
            "make retry_interval at most interval, e.g. retry_interval = \"10s\"",
        );
    }
    if let Some(g) = &m.green_below
        && monitor.green_below >= monitor.timeout
    {
        p.add(
            Some(g.span()),
            "[monitor] green_below",
            format!(
                "{} is not below timeout ({}), so a slow server could never turn yellow",
                humantime::format_duration(monitor.green_below),
                humantime::format_duration(monitor.timeout)
            ),
            "make green_below well below timeout, e.g. green_below = \"200ms\"",
        );
    }

    let listen = match &raw.web.listen {
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(v) => v.get_ref().trim().parse().unwrap_or_else(|_| {
            p.add(
                Some(v.span()),
                "[web] listen",
                format!("{:?} is not an address and port", v.get_ref()),
                "write ip:port, e.g. \"127.0.0.1:8080\" or \"[::]:8080\"",
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }),
    };
    let vantage = match &raw.web.vantage {
        None => "default".to_owned(),
        Some(v) if v.get_ref().trim().is_empty() || v.get_ref().chars().count() > 64 => {
            p.add(
                Some(v.span()),
                "[web] vantage",
                "must be 1 to 64 characters".into(),
                "name this monitoring location, e.g. vantage = \"frankfurt\"",
            );
            "default".to_owned()
        }
        Some(v) => v.get_ref().trim().to_owned(),
    };
    let web = WebConfig {
        listen,
        vantage,
        refresh: duration(
            &raw.web.refresh,
            "[web] refresh",
            Duration::from_secs(60),
            p,
        ),
    };

    let nameservers = raw
        .dns
        .nameservers
        .iter()
        .flatten()
        .filter_map(|v| {
            let s = v.get_ref().trim();
            s.parse::<SocketAddr>()
                .ok()
                .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
                .or_else(|| {
                    p.add(
                        Some(v.span()),
                        "[dns] nameservers",
                        format!("{s:?} is not an IP address with an optional port"),
                        "write \"ip:port\", e.g. \"127.0.0.53:53\" or \"[::1]:5353\"",
                    );
                    None
                })
        })
        .collect();
    let dns = DnsConfig {
        nameservers,
        timeout: duration(&raw.dns.timeout, "[dns] timeout", Duration::from_secs(3), p),
    };

    let extra_ca_file = raw.tls.extra_ca_file.as_ref().and_then(|v| {
        let s = v.get_ref().trim();
        if s.is_empty() {
            return None;
        }
        let path = match base_dir {
            Some(dir) if Path::new(s).is_relative() => dir.join(s),
            _ => PathBuf::from(s),
        };
        if let Err(e) = crate::net::tls::load_roots(crate::net::tls::Roots::Webpki, Some(&path)) {
            p.add(
                Some(v.span()),
                "[tls] extra_ca_file",
                e.to_string(),
                "point it at a readable PEM file of CA certificates (relative paths are relative to the config file), or set it to \"\"",
            );
        }
        Some(path)
    });

    let roots = match raw.tls.roots.as_ref().map(|v| (v, v.get_ref().trim())) {
        None => crate::net::tls::Roots::Webpki,
        Some((_, "webpki")) => crate::net::tls::Roots::Webpki,
        Some((v, "system")) => {
            if let Err(e) = crate::net::tls::load_roots(crate::net::tls::Roots::System, None) {
                p.add(
                    Some(v.span()),
                    "[tls] roots",
                    e.to_string(),
                    "install the system's CA certificates (Debian: the ca-certificates package), or write roots = \"webpki\"",
                );
            }
            crate::net::tls::Roots::System
        }
        Some((v, other)) => {
            p.add(
                Some(v.span()),
                "[tls] roots",
                format!("{other:?} is not a trust store"),
                "write roots = \"webpki\" (the public roots built into mxping) or roots = \"system\" (the operating system's store)",
            );
            crate::net::tls::Roots::Webpki
        }
    };

    let allow = raw
        .network
        .allow
        .iter()
        .flatten()
        .filter_map(|v| {
            let s = v.get_ref().trim();
            s.parse::<IpNet>()
                .ok()
                .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
                .or_else(|| {
                    p.add(
                        Some(v.span()),
                        "[network] allow",
                        format!("{s:?} is not a CIDR"),
                        "write an address range such as \"127.0.0.0/8\" or \"fd00::/8\"",
                    );
                    None
                })
        })
        .collect();

    let storage = validate_storage(&raw.storage, base_dir, p);

    let mut servers: Vec<ServerConfig> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    if raw.servers.is_empty() {
        p.add(
            None,
            "[[server]]",
            "no servers are listed".into(),
            "add at least one [[server]] table with name = \"matrix.org\"",
        );
    }
    for (i, s) in raw.servers.iter().enumerate() {
        let key = |field: &str| format!("[[server]] #{} {field}", i + 1);
        let server_name = s.name.get_ref();
        if let Err(e) = ServerName::parse(server_name) {
            p.add(
                Some(s.name.span()),
                &key("name"),
                e.message,
                "write a Matrix server name as in user IDs (@user:NAME), e.g. \"matrix.org\" or \"example.com:8448\"",
            );
        }
        let line = line_col(p.source, s.name.span().start).0;
        if let Some(first) = seen.insert(server_name.clone(), line) {
            p.add(
                Some(s.name.span()),
                &key("name"),
                format!("{server_name:?} is listed twice (first on line {first})"),
                "remove one of the two [[server]] tables",
            );
        }
        let client_url = s.client_url.as_ref().map(|v| {
            let url = v.get_ref().trim();
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url::Url::parse(url).is_err()
            {
                p.add(
                    Some(v.span()),
                    &key("client_url"),
                    format!("{url:?} is not an http(s) URL"),
                    "write the web client's full address, e.g. \"https://app.element.io\"",
                );
            }
            url.to_owned()
        });
        let description = s.description.as_ref().map(|d| {
            let languages = crate::i18n::codes();
            for lang in d.get_ref().keys() {
                if !languages.contains(&lang.as_str()) {
                    p.add(
                        Some(d.span()),
                        &key("description"),
                        format!("unknown language {lang:?}"),
                        format!(
                            "use one of: {} (a language is added with a file in locales/)",
                            languages.join(", ")
                        ),
                    );
                }
            }
            d.get_ref().clone()
        });
        servers.push(ServerConfig {
            name: server_name.clone(),
            title: s
                .title
                .as_ref()
                .map_or_else(|| server_name.clone(), |t| t.get_ref().clone()),
            description: description.unwrap_or_default(),
            client_url,
        });
    }

    Config {
        source: name.to_owned(),
        monitor,
        web,
        dns,
        tls: TlsConfig {
            roots,
            extra_ca_file,
        },
        network: NetworkConfig { allow },
        storage,
        servers,
    }
}

/// Default `[storage] data_dir`, relative to the config file (or the working directory for
/// the built-in list).
pub const DEFAULT_DATA_DIR: &str = "mxping-data";

fn validate_storage(
    raw: &RawStorage,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> StorageConfig {
    let data_dir = match raw.data_dir.as_ref().map(|v| v.get_ref().trim()) {
        Some("") => None,
        Some(dir) => Some(dir.to_owned()),
        None => Some(DEFAULT_DATA_DIR.to_owned()),
    }
    .map(|dir| match base_dir {
        Some(base) if Path::new(&dir).is_relative() => base.join(dir),
        _ => PathBuf::from(dir),
    });
    let flush_interval = duration(
        &raw.flush_interval,
        "[storage] flush_interval",
        Duration::from_secs(5),
        p,
    );
    if let Some(v) = &raw.flush_interval
        && !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&flush_interval)
    {
        p.add(
            Some(v.span()),
            "[storage] flush_interval",
            "must be between 100ms and 10m".into(),
            "e.g. flush_interval = \"5s\" (a crash loses at most this much history)",
        );
    }
    let raw_retention = duration(
        &raw.raw_retention,
        "[storage] raw_retention",
        Duration::from_secs(3 * 86_400),
        p,
    );
    if let Some(v) = &raw.raw_retention
        && raw_retention < Duration::from_secs(3600)
    {
        p.add(
            Some(v.span()),
            "[storage] raw_retention",
            "must be at least 1h".into(),
            "keep raw rounds for a few days, e.g. raw_retention = \"3d\"",
        );
    }
    let rollup_retention = duration(
        &raw.rollup_retention,
        "[storage] rollup_retention",
        Duration::from_secs(400 * 86_400),
        p,
    );
    if let Some(v) = &raw.rollup_retention
        && rollup_retention < Duration::from_secs(90 * 86_400)
    {
        p.add(
            Some(v.span()),
            "[storage] rollup_retention",
            "must be at least 90d, the longest uptime window".into(),
            "e.g. rollup_retention = \"400d\"",
        );
    }
    StorageConfig {
        data_dir,
        flush_interval,
        raw_retention,
        rollup_retention,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        Config::parse(text, "test.toml", None).unwrap_err().problems
    }

    const ONE: &str = "[[server]]\nname = \"matrix.org\"\n";

    #[test]
    fn builtin_list_loads() {
        let c = Config::builtin().unwrap();
        let names: Vec<_> = c.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "matrix.org",
                "mozilla.org",
                "gitter.im",
                "pcrbot.com",
                "yobot.homes"
            ]
        );
        assert_eq!(c.monitor, MonitorConfig::default());
        for s in &c.servers {
            assert!(
                s.description.contains_key("en") && s.description.contains_key("zh"),
                "{}",
                s.name
            );
            assert!(s.client_url.is_some(), "{}", s.name);
        }
    }

    #[test]
    fn defaults_apply() {
        let c = Config::parse(ONE, "t", None).unwrap();
        assert_eq!(c.monitor, MonitorConfig::default());
        assert_eq!(c.web.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(c.dns.nameservers.is_empty());
        assert!(c.network.allow.is_empty());
        assert_eq!(c.servers[0].title, "matrix.org");
    }

    #[test]
    fn unknown_key_names_line_column_and_key() {
        let p = problems("[monitor]\nintervall = \"30s\"\n[[server]]\nname = \"a.org\"\n");
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].line, p[0].column), (2, 1));
        assert_eq!(p[0].key, "[monitor] intervall");
        assert!(
            p[0].message.contains("unknown field `intervall`"),
            "{}",
            p[0].message
        );
        assert!(p[0].fix.contains("spelling"));
    }

    #[test]
    fn every_semantic_problem_is_listed_at_once() {
        let text = "[monitor]\ninterval = \"30 parsecs\"\npings = 0\n[web]\nlisten = \"localhost\"\n\
                    [network]\nallow = [\"10.0.0.0/33\"]\n[[server]]\nname = \"bad name\"\n";
        let p = problems(text);
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "[monitor] interval",
                "[monitor] pings",
                "[web] listen",
                "[network] allow",
                "[[server]] #1 name"
            ]
        );
        assert_eq!((p[0].line, p[0].column), (2, 12));
        assert!(p[0].fix.contains("\"30s\""));
    }

    #[test]
    fn contradictions_are_reported() {
        let p = problems(
            "[monitor]\ninterval = \"10s\"\ntimeout = \"20s\"\n[[server]]\nname = \"a.org\"\n",
        );
        assert_eq!(p[0].key, "[monitor] timeout");
        assert!(p[0].message.contains("overlap"));
        let p = problems("[monitor]\ngreen_below = \"20s\"\n[[server]]\nname = \"a.org\"\n");
        assert_eq!(p[0].key, "[monitor] green_below");
    }

    #[test]
    fn duplicate_servers() {
        let p = problems("[[server]]\nname = \"a.org\"\n[[server]]\nname = \"a.org\"\n");
        assert_eq!(p[0].line, 4);
        assert!(p[0].message.contains("first on line 2"));
    }

    #[test]
    fn display_is_one_line_per_problem_with_fix() {
        let e = Config::parse("[monitor]\npings = \"4\"\n", "x.toml", None).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("x.toml:2:9: [monitor] pings"), "{text}");
        assert!(
            text.contains("fix: write the number without quotes"),
            "{text}"
        );
    }

    #[test]
    fn nameservers_and_allow_accept_bare_addresses() {
        let c = Config::parse(
            "[dns]\nnameservers = [\"127.0.0.1:5353\", \"::1\"]\n[network]\nallow = [\"127.0.0.0/8\", \"::1\"]\n[[server]]\nname = \"a.org\"\n",
            "t",
            None,
        )
        .unwrap();
        assert_eq!(
            c.dns.nameservers,
            [
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(c.network.allow.len(), 2);
    }
}
