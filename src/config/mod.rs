//! `servers.toml` → a validated [`Config`], in two steps (style.md habit 4): raw serde structs
//! with `deny_unknown_fields`, then validation that checks every value and reports **every**
//! problem at once, each with file, line, column, key and what to write instead.
//!
//! Parsing takes a `&str` plus a name for messages, so tests never touch the environment. The
//! shipped `servers.toml` is compiled into the binary as the default.
//!
//! This file holds the validated types with their defaults (written once, here) and the entry
//! points; `raw.rs` is the file as written, `validate.rs` turns it into a `Config`, and
//! `problems.rs` collects what is wrong with file, line, column, key and fix.

mod alerts;
mod maintenance;
mod problems;
mod raw;
pub mod roots;
mod validate;

pub use maintenance::{MAX_NOTE, MaintenanceConfig, Weekly, When};
pub use problems::{ConfigError, Problem};
use problems::{Problems, fix_at, key_at};
use raw::RawConfig;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::server_name::ServerName;

use ipnet::IpNet;

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
    /// `[signup]`.
    pub signup: SignupConfig,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// `[[server]]`, in file order (with a list's servers after them once merged, see
    /// `sources::merge`).
    pub servers: Vec<ServerConfig>,
    /// `[[source]]`: public server lists whose servers are added.
    pub sources: Vec<SourceConfig>,
    /// `[[alert]]`: where confirmed status changes are announced.
    pub alerts: Vec<AlertConfig>,
    /// `[[maintenance]]`: windows planned ahead.
    pub maintenance: Vec<MaintenanceConfig>,
    /// `[hub]`: this instance is an agent reporting to a hub.
    pub hub: Option<HubConfig>,
    /// `[[vantage]]`: this instance is a hub, trusting these agents.
    pub vantages: Vec<VantageConfig>,
    /// `[federation]`: the name and key mxping takes part in federation with.
    pub federation: Option<FederationConfig>,
}

/// `[federation]`: mxping as a minimal federation server (design.md "Federation both ways"):
/// it serves its own signing key and `/version` on the web listener.
#[derive(Clone, Debug, PartialEq)]
pub struct FederationConfig {
    /// The server name mxping federates as (`status.example.org`).
    pub server_name: String,
    /// Its ed25519 key file (Synapse's format; `mxping keygen FILE`).
    pub key_file: PathBuf,
    /// Time between two checks of a server; the served key is valid for no longer.
    pub interval: Duration,
    /// Served at `/.well-known/matrix/server` as `m.server` when set (`host[:port]`).
    pub well_known: Option<String>,
}

/// `[hub]`: where an agent gets its servers and sends its reports.
#[derive(Clone, Debug, PartialEq)]
pub struct HubConfig {
    /// The hub's web address (its status page), e.g. `https://status.example.org`.
    pub url: String,
    /// The agent's ed25519 key file (`mxping keygen FILE`).
    pub key_file: PathBuf,
}

/// One `[[vantage]]` a hub trusts.
#[derive(Clone, Debug, PartialEq)]
pub struct VantageConfig {
    /// Its name (the agent's `[web] vantage`).
    pub name: String,
    /// Its public key (unpadded base64, as `mxping keygen` prints it).
    pub public_key: String,
}

/// One `[[alert]]`: a Matrix room or a webhook that hears of confirmed status changes.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertConfig {
    /// Where the alerts go.
    pub target: AlertTarget,
    /// Server names or globs (`*` stands for any run of characters); empty: every server.
    pub servers: Vec<String>,
    /// The confirmed statuses that alert (`green`: recovered).
    pub on: Vec<crate::status::Status>,
    /// The language of the messages.
    pub language: String,
    /// Changes confirmed within this long of each other go into one message (Matrix rooms;
    /// zero for webhooks, which get one POST per change).
    pub group_wait: Duration,
    /// Matrix rooms: the bot obeys `!mxping` commands from members with at least this power
    /// level (`commands = true`, `command_power`); `None`: it reads nothing.
    pub command_power: Option<i64>,
    /// `report = "monthly"`: the last month's report, once a month.
    pub monthly_report: bool,
}

/// Default `[[alert]] group_wait` of a Matrix room.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);

impl AlertConfig {
    /// True when alerts about `server` go to this target.
    pub fn covers(&self, server: &str) -> bool {
        self.servers.is_empty() || self.servers.iter().any(|g| glob_matches(g, server))
    }
}

/// `*` matches any run of characters (dots included); everything else matches itself, ASCII
/// case-insensitively (server names are).
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (glob, name) = (glob.to_ascii_lowercase(), name.to_ascii_lowercase());
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Where one `[[alert]]` sends.
#[derive(Clone, Debug, PartialEq)]
pub enum AlertTarget {
    /// A Matrix room, and optionally a second room (usually on another homeserver) used when
    /// the first cannot be reached.
    Matrix {
        /// The room alerts go to.
        room: MatrixRoom,
        /// Where they go while `room` cannot be reached.
        fallback: Option<MatrixRoom>,
    },
    /// An HTTP POST of a JSON document, signed with HMAC-SHA256.
    Webhook {
        /// The receiver.
        url: String,
        /// The file holding the signing secret.
        secret_file: PathBuf,
    },
}

/// A room, the homeserver to reach it through, and the bot's access token.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixRoom {
    /// The client API base URL, e.g. `https://matrix.example.org`.
    pub homeserver: String,
    /// Where the access token is read from.
    pub token: Secret,
    /// A room ID (`!…:server`, or room version 12's `!…` that names no server) or an alias
    /// (`#…:server`), as written.
    pub room: String,
    /// Servers to join the room through (`via`): the alias's or room ID's server, then the
    /// config's `via`. A version 12 room ID names no server, so joining it from outside needs
    /// these.
    pub via: Vec<String>,
}

/// Where a secret is read from: never the config file itself.
#[derive(Clone, Debug, PartialEq)]
pub enum Secret {
    /// A file holding only the secret (surrounding whitespace is ignored).
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// Why a secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The environment variable is not set (or not Unicode).
    #[error("the environment variable {0} is not set")]
    Unset(String),
    /// The file holds only whitespace.
    #[error("{} is empty", .0.display())]
    EmptyFile(PathBuf),
    /// The environment variable is empty.
    #[error("the environment variable {0} is empty")]
    EmptyEnv(String),
    /// A webhook secret file's `whsec_` secret is not base64.
    #[error("{}: the whsec_ secret is not base64 ({source})", path.display())]
    NotBase64 {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: base64::DecodeError,
    },
}

impl Secret {
    /// Reads the secret: a clear error when it is missing or empty.
    pub fn read(&self) -> Result<String, SecretError> {
        let value = match self {
            Secret::File(path) => {
                std::fs::read_to_string(path).map_err(|source| SecretError::Read {
                    path: path.clone(),
                    source,
                })?
            }
            Secret::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::Unset(name.clone()))?
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(match self {
                Secret::File(path) => SecretError::EmptyFile(path.clone()),
                Secret::Env(name) => SecretError::EmptyEnv(name.clone()),
            });
        }
        Ok(value.to_owned())
    }
}

/// The signing key a webhook secret stands for: a Standard Webhooks secret (`whsec_<base64>`)
/// is the bytes its base64 holds; anything else is used as written.
pub fn webhook_key(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine as _;
    match text.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64),
        None => Ok(text.as_bytes().to_vec()),
    }
}

/// A webhook's signing key from its secret file (surrounding whitespace trimmed), as
/// [`webhook_key`] reads it.
pub fn read_webhook_secret(file: &Path) -> Result<Vec<u8>, SecretError> {
    let text = Secret::File(file.to_owned()).read()?;
    webhook_key(&text).map_err(|source| SecretError::NotBase64 {
        path: file.to_owned(),
        source,
    })
}

/// Where a `[[source]]` list comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceLocation {
    /// A local file (resolved against the config file's directory).
    File(PathBuf),
    /// An HTTPS URL, fetched through the private-address guard.
    Url(String),
}

impl std::fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceLocation::File(p) => write!(f, "{}", p.display()),
            SourceLocation::Url(u) => f.write_str(u),
        }
    }
}

/// One `[[source]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceConfig {
    /// The file or URL.
    pub location: SourceLocation,
    /// How often it is read again.
    pub refresh: Duration,
    /// A list with more entries than this is rejected.
    pub max_servers: usize,
    /// Written by the operator as an endpoint (an agent's hub), so fetched without the
    /// private-address guard, like alert endpoints (design.md "Safety").
    pub trusted: bool,
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
    /// Also check how newcomers sign up (`[signup]`), unless a server turns it off.
    pub check_signup: bool,
}

/// What `/metrics` exports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsConfig {
    /// Phase histograms per server (with a `server` label) for every server, instead of one
    /// pooled set; a `[[server]]` can opt in alone.
    pub per_server_phases: bool,
}

/// Sign-up checks (design.md "Sign-up").
#[derive(Clone, Debug, PartialEq)]
pub struct SignupConfig {
    /// Time between two sign-up checks of a server (each jittered by ±10 %).
    pub interval: Duration,
}

impl Default for SignupConfig {
    fn default() -> Self {
        SignupConfig {
            interval: Duration::from_secs(6 * 3600),
        }
    }
}

/// Facts about a server that no probe can learn, from the config, shown beside the measured
/// ones (and in the public list).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Facts {
    /// Where the operator is, legally (free text, e.g. "Germany (EU)").
    pub jurisdiction: Option<String>,
    /// Languages the server's community and moderators use (tags such as "en", "zh-Hans").
    pub languages: Vec<String>,
    /// The server's rules.
    pub rules_url: Option<String>,
    /// The server's own website (public lists' `website`).
    pub homepage: Option<String>,
    /// Its privacy policy.
    pub privacy_url: Option<String>,
    /// A short note for newcomers.
    pub note: Option<String>,
}

/// The web app.
#[derive(Clone, Debug, PartialEq)]
pub struct WebConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Name of this monitoring location, shown on the page and in the API; `None` when not
    /// set (the API and feed say "default", the page "this monitor").
    pub vantage: Option<String>,
    /// How often the status page reloads itself.
    pub refresh: Duration,
    /// Where people reach the status page (`https://status.example.org`), for links in
    /// alerts; `None`: alerts carry no link.
    pub public_url: Option<String>,
    /// A request head must arrive within this long of the connection opening (or of its
    /// first byte on a kept-alive connection).
    pub header_timeout: Duration,
    /// A kept-alive connection with no request is closed after this long.
    pub idle_timeout: Duration,
    /// A response the client does not read is abandoned after this long without progress.
    pub write_timeout: Duration,
    /// At most this many open connections; `None`: a quarter of the open-file limit, at most
    /// [`MAX_CONNECTIONS_DEFAULT`].
    pub max_connections: Option<usize>,
    /// At most this many open connections from one address (an IPv6 /64); 0: no limit.
    pub max_connections_per_ip: usize,
    /// The bearer token of the admin API (`POST /api/v1/admin/…`) is in this file; `None`:
    /// no admin API.
    pub admin_token_file: Option<PathBuf>,
}

/// The most connections the web listener holds when `[web] max_connections` is not set.
pub const MAX_CONNECTIONS_DEFAULT: usize = 4096;

impl WebConfig {
    /// The vantage name for the API, metrics and feed: as set, or `default`.
    pub fn vantage_name(&self) -> &str {
        self.vantage.as_deref().unwrap_or("default")
    }
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
    pub roots: roots::Roots,
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
    pub name: ServerName,
    /// Display title; defaults to the name.
    pub title: String,
    /// Short description per language code (`en`, `zh`, ...).
    pub description: BTreeMap<String, String>,
    /// The web client a newcomer would open.
    pub client_url: Option<String>,
    /// Check sign-up facts of this server (with `[monitor] check_signup`).
    pub check_signup: bool,
    /// This server's own phase histograms (`None`: as `[metrics] per_server_phases`).
    pub per_server_phases: Option<bool>,
    /// Facts from the config (shared with every view of the server).
    pub facts: std::sync::Arc<Facts>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            vantage: None,
            refresh: Duration::from_secs(60),
            public_url: None,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections: None,
            max_connections_per_ip: 64,
            admin_token_file: None,
        }
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(3),
        }
    }
}

/// Default `[storage] data_dir`, relative to the config file (or the working directory for
/// the built-in list).
pub const DEFAULT_DATA_DIR: &str = "mxping-data";

impl Default for StorageConfig {
    /// `data_dir` is [`DEFAULT_DATA_DIR`], relative to the config file's directory.
    fn default() -> Self {
        StorageConfig {
            data_dir: Some(PathBuf::from(DEFAULT_DATA_DIR)),
            flush_interval: Duration::from_secs(5),
            raw_retention: Duration::from_secs(3 * 86_400),
            rollup_retention: Duration::from_secs(400 * 86_400),
        }
    }
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
            check_signup: true,
        }
    }
}

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
                let fix = span.clone().map_or_else(
                    || "see the example config shipped as servers.toml".to_owned(),
                    |s| fix_at(text, s.start),
                );
                problems.add(span, &key, message, fix);
                return Err(ConfigError {
                    file: name.to_owned(),
                    problems: problems.list,
                });
            }
        };
        let config = validate::validate(raw, name, base_dir, &mut problems);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_globs_match_whole_names_case_insensitively() {
        assert!(glob_matches("*", "matrix.org"));
        assert!(glob_matches("*.example.org", "chat.Example.org"));
        assert!(!glob_matches("*.example.org", "example.org"));
        assert!(!glob_matches("*.example.org", "example.org.evil.test"));
        assert!(glob_matches("matrix.org", "MATRIX.ORG"));
        assert!(!glob_matches("matrix.org", "matrix.org.test"));
        assert!(glob_matches("a*b*c", "a-x-b-y-c"));
        assert!(!glob_matches("a*b*c", "a-x-c-y-b"));
        assert!(glob_matches("*:8448", "127.0.0.9:8448"));
        let alert = |servers: &[&str]| AlertConfig {
            target: AlertTarget::Webhook {
                url: "https://x.test/".into(),
                secret_file: "s".into(),
            },
            servers: servers.iter().map(|s| s.to_string()).collect(),
            on: vec![],
            language: "en".into(),
            group_wait: Duration::ZERO,
            command_power: None,
            monthly_report: false,
        };
        assert!(alert(&[]).covers("anything.test"), "no list: every server");
        assert!(alert(&["a.test", "*.b.test"]).covers("x.b.test"));
        assert!(!alert(&["a.test", "*.b.test"]).covers("c.test"));
    }

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
    fn rooms_of_version_12_are_accepted_and_joined_through_the_servers_given() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bot.token"), "syt_x").unwrap();
        let alert = |room: &str, extra: &str| {
            format!(
                "[[alert]]\ntype = \"matrix\"\nhomeserver = \"https://hs.example.org\"\n\
                 access_token_file = \"bot.token\"\nroom = \"{room}\"\n{extra}\n{ONE}"
            )
        };
        let rooms = |text: &str| match Config::parse(text, "t", Some(dir.path())) {
            Ok(c) => match &c.alerts[0].target {
                AlertTarget::Matrix { room, fallback } => {
                    Ok((room.clone(), fallback.clone(), c.alerts[0].group_wait))
                }
                AlertTarget::Webhook { .. } => unreachable!(),
            },
            Err(e) => Err(e.to_string()),
        };
        // The ID Synapse 1.163 gives a new room: the create event's hash, no server part.
        let v12 = "!HVAyE2qiqmBDrVyZdNTJl9x4QdPTI8FmK0C_vqzd8Ao";
        let (room, _, wait) = rooms(&alert(v12, "via = [\"example.org\"]")).unwrap();
        assert_eq!(
            (room.room.as_str(), room.via.as_slice()),
            (v12, &["example.org".to_owned()][..])
        );
        assert_eq!(wait, Duration::from_secs(30));
        let (room, _, _) = rooms(&alert("!abc:example.org", "via = [\"other.org\"]")).unwrap();
        assert_eq!(room.via, ["example.org", "other.org"]);
        let (room, _, wait) = rooms(&alert("#alerts:example.org", "group_wait = \"0s\"")).unwrap();
        assert_eq!(
            (room.via.as_slice(), wait),
            (&["example.org".to_owned()][..], Duration::ZERO)
        );
        for bad in [
            "!",
            "#alerts",
            "#:example.org",
            "alerts:example.org",
            "! x",
            "!a:",
        ] {
            let e = rooms(&alert(bad, "")).unwrap_err();
            assert!(e.contains("is not a room ID or alias"), "{bad}: {e}");
            assert!(e.contains("version 12"), "{e}");
        }
        // A fallback on the same homeserver may use the main token; on another, never.
        let same = alert(
            "#a:example.org",
            "fallback_room = \"#b:example.org\"\nfallback_homeserver = \"https://hs.example.org/\"",
        );
        let (_, fallback, _) = rooms(&same).unwrap();
        assert_eq!(fallback.unwrap().homeserver, "https://hs.example.org");
        let other = alert(
            "#a:example.org",
            "fallback_room = \"#b:other.org\"\nfallback_homeserver = \"https://hs.other.org\"",
        );
        let e = rooms(&other).unwrap_err();
        assert!(e.contains("fallback_access_token_file: is not set"), "{e}");
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
