//! From the file as written to a validated [`Config`]: every value checked, every problem
//! reported at once, defaults taken from the types' `Default` impls.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use super::problems::{Problems, line_col};
use super::raw::{
    RawConfig, RawDns, RawFederation, RawMonitor, RawNetwork, RawServer, RawSignup, RawSource,
    RawStorage, RawTls, RawWeb,
};
use super::{
    Config, DnsConfig, Facts, FederationConfig, MetricsConfig, MonitorConfig, NetworkConfig,
    ServerConfig, SignupConfig, SourceConfig, SourceLocation, StorageConfig, TlsConfig, WebConfig,
};
use crate::server_name::ServerName;

/// An http(s) URL with a host, as written (trimmed); a problem naming `key` otherwise.
pub(super) fn http_url(
    v: &Spanned<String>,
    key: &str,
    fix: &str,
    p: &mut Problems<'_>,
) -> Option<String> {
    let text = v.get_ref().trim();
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Some(text.to_owned())
        }
        _ => {
            p.add(
                Some(v.span()),
                key,
                format!("{text:?} is not an http(s) URL"),
                fix,
            );
            None
        }
    }
}

pub(super) fn duration(
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

pub(super) fn validate(
    raw: RawConfig,
    name: &str,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Config {
    let mut config = validate_sections(raw, name, base_dir, p);
    // An agent probes the hub's servers: its list is read like a [[source]] (every 5
    // minutes), from the address the operator wrote.
    if let Some(hub) = &config.hub {
        config.sources.push(SourceConfig {
            location: SourceLocation::Url(format!(
                "{}/api/v1/public_servers.json?all=true",
                hub.url
            )),
            refresh: Duration::from_secs(300),
            max_servers: 20_000,
            trusted: true,
        });
    }
    config
}

fn validate_sections(
    raw: RawConfig,
    name: &str,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Config {
    let servers = validate_servers(
        &raw.servers,
        !raw.sources.is_empty() || raw.hub.is_some(),
        p,
    );
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let maintenance = super::maintenance::validate_maintenance(
        &raw.maintenance,
        &names,
        !raw.sources.is_empty() || raw.hub.is_some(),
        p,
    );
    Config {
        source: name.to_owned(),
        monitor: validate_monitor(&raw.monitor, p),
        web: validate_web(&raw.web, base_dir, p),
        dns: validate_dns(&raw.dns, p),
        tls: validate_tls(&raw.tls, base_dir, p),
        network: validate_network(&raw.network, p),
        storage: validate_storage(&raw.storage, base_dir, p),
        signup: validate_signup(&raw.signup, p),
        federation: raw
            .federation
            .as_ref()
            .and_then(|f| validate_federation(f, base_dir, p)),
        metrics: MetricsConfig {
            per_server_phases: raw.metrics.per_server_phases.unwrap_or(false),
        },
        servers,
        maintenance,
        sources: validate_sources(&raw.sources, base_dir, p),
        alerts: super::alerts::validate_alerts(&raw.alerts, base_dir, p),
        hub: super::alerts::validate_hub(raw.hub.as_ref(), raw.web.vantage.is_some(), base_dir, p),
        vantages: super::alerts::validate_vantages(&raw.vantages, p),
    }
}

/// `[monitor]`, and the values in it that contradict each other.
fn validate_monitor(m: &RawMonitor, p: &mut Problems<'_>) -> MonitorConfig {
    let d = MonitorConfig::default();
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
        pings: integer(&m.pings, "[monitor] pings", 1..=20, d.pings.into(), p) as u32,
        green_below,
        down_after: integer(
            &m.down_after,
            "[monitor] down_after",
            1..=100,
            d.down_after.into(),
            p,
        ) as u32,
        up_after: integer(
            &m.up_after,
            "[monitor] up_after",
            1..=100,
            d.up_after.into(),
            p,
        ) as u32,
        concurrency: integer(
            &m.concurrency,
            "[monitor] concurrency",
            1..=10_000,
            d.concurrency as i64,
            p,
        ) as usize,
        check_keys: m.check_keys.unwrap_or(d.check_keys),
        check_client: m.check_client.unwrap_or(d.check_client),
        check_signup: m.check_signup.unwrap_or(d.check_signup),
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

    monitor
}

/// `[web]`.
fn validate_web(raw: &RawWeb, base_dir: Option<&Path>, p: &mut Problems<'_>) -> WebConfig {
    let web_default = WebConfig::default();
    let listen = match &raw.listen {
        None => web_default.listen,
        Some(v) => v.get_ref().trim().parse().unwrap_or_else(|_| {
            p.add(
                Some(v.span()),
                "[web] listen",
                format!("{:?} is not an address and port", v.get_ref()),
                "write ip:port, e.g. \"127.0.0.1:8080\" or \"[::]:8080\"",
            );
            web_default.listen
        }),
    };
    let vantage = match &raw.vantage {
        None => web_default.vantage.clone(),
        Some(v) if v.get_ref().trim().is_empty() || v.get_ref().chars().count() > 64 => {
            p.add(
                Some(v.span()),
                "[web] vantage",
                "must be 1 to 64 characters".into(),
                "name this monitoring location, e.g. vantage = \"frankfurt\"",
            );
            web_default.vantage.clone()
        }
        Some(v) => Some(v.get_ref().trim().to_owned()),
    };

    let public_url = raw.public_url.as_ref().and_then(|v| {
        http_url(
            v,
            "[web] public_url",
            "write where people open this status page, e.g. public_url = \"https://status.example.org\"",
            p,
        )
        // A base address: pages are linked as {public_url}/server/….
        .map(|u| u.trim_end_matches('/').to_owned())
    });
    let max_connections = raw.max_connections.as_ref().map(|_| {
        integer(
            &raw.max_connections,
            "[web] max_connections",
            1..=1_000_000,
            super::MAX_CONNECTIONS_DEFAULT as i64,
            p,
        ) as usize
    });
    WebConfig {
        listen,
        vantage,
        refresh: duration(&raw.refresh, "[web] refresh", web_default.refresh, p),
        public_url,
        header_timeout: duration(
            &raw.header_timeout,
            "[web] header_timeout",
            web_default.header_timeout,
            p,
        ),
        idle_timeout: duration(
            &raw.idle_timeout,
            "[web] idle_timeout",
            web_default.idle_timeout,
            p,
        ),
        write_timeout: duration(
            &raw.write_timeout,
            "[web] write_timeout",
            web_default.write_timeout,
            p,
        ),
        max_connections,
        max_connections_per_ip: integer(
            &raw.max_connections_per_ip,
            "[web] max_connections_per_ip",
            0..=1_000_000,
            web_default.max_connections_per_ip as i64,
            p,
        ) as usize,
        admin_token_file: raw.admin_token_file.as_ref().and_then(|f| {
            let text = f.get_ref().trim();
            if text.is_empty() {
                p.add(
                    Some(f.span()),
                    "[web] admin_token_file",
                    "is empty".into(),
                    "name a file holding the admin API's token, e.g. \"/etc/mxping/admin.token\", or remove the key (no admin API)",
                );
                return None;
            }
            Some(match base_dir {
                Some(dir) if Path::new(text).is_relative() => dir.join(text),
                _ => PathBuf::from(text),
            })
        }),
    }
}

/// `[dns]`.
fn validate_dns(raw: &RawDns, p: &mut Problems<'_>) -> DnsConfig {
    let nameservers = raw
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

    DnsConfig {
        nameservers,
        timeout: duration(
            &raw.timeout,
            "[dns] timeout",
            DnsConfig::default().timeout,
            p,
        ),
    }
}

/// `[tls]`: the extra CA file (read now, so a bad one is a config error) and the trust store.
fn validate_tls(raw: &RawTls, base_dir: Option<&Path>, p: &mut Problems<'_>) -> TlsConfig {
    let extra_ca_file = raw.extra_ca_file.as_ref().and_then(|v| {
        let s = v.get_ref().trim();
        if s.is_empty() {
            return None;
        }
        let path = match base_dir {
            Some(dir) if Path::new(s).is_relative() => dir.join(s),
            _ => PathBuf::from(s),
        };
        if let Err(e) = super::roots::load_roots(super::roots::Roots::Webpki, Some(&path)) {
            p.add(
                Some(v.span()),
                "[tls] extra_ca_file",
                e.to_string(),
                "point it at a readable PEM file of CA certificates (relative paths are relative to the config file), or set it to \"\"",
            );
        }
        Some(path)
    });

    let roots = match raw.roots.as_ref().map(|v| (v, v.get_ref().trim())) {
        None => super::roots::Roots::Webpki,
        Some((_, "webpki")) => super::roots::Roots::Webpki,
        Some((v, "system")) => {
            if let Err(e) = super::roots::load_roots(super::roots::Roots::System, None) {
                p.add(
                    Some(v.span()),
                    "[tls] roots",
                    e.to_string(),
                    "install the system's CA certificates (Debian: the ca-certificates package), or write roots = \"webpki\"",
                );
            }
            super::roots::Roots::System
        }
        Some((v, other)) => {
            p.add(
                Some(v.span()),
                "[tls] roots",
                format!("{other:?} is not a trust store"),
                "write roots = \"webpki\" (the public roots built into mxping) or roots = \"system\" (the operating system's store)",
            );
            super::roots::Roots::Webpki
        }
    };

    TlsConfig {
        roots,
        extra_ca_file,
    }
}

/// `[network]`.
fn validate_network(raw: &RawNetwork, p: &mut Problems<'_>) -> NetworkConfig {
    let allow = raw
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

    NetworkConfig { allow }
}

/// Every `[[server]]`: a valid name listed once, a web client URL, descriptions in known
/// languages.
fn validate_servers(
    raw: &[RawServer],
    has_sources: bool,
    p: &mut Problems<'_>,
) -> Vec<ServerConfig> {
    let mut servers: Vec<ServerConfig> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    if raw.is_empty() && !has_sources {
        p.add(
            None,
            "[[server]]",
            "no servers are listed".into(),
            "add at least one [[server]] table with name = \"matrix.org\"",
        );
    }
    for (i, s) in raw.iter().enumerate() {
        let key = |field: &str| format!("[[server]] #{} {field}", i + 1);
        let server_name = s.name.get_ref();
        let parsed = ServerName::parse(server_name);
        if let Err(e) = &parsed {
            p.add(
                Some(s.name.span()),
                &key("name"),
                e.message.clone(),
                "write a Matrix server name as in user IDs (@user:NAME), e.g. \"matrix.org\" or \"example.com:8448\"",
            );
        }
        // The first one's offset, not its line: counting lines for every server would read the
        // file once per server (seconds at 10,000 servers).
        if let Some(first) = seen.insert(server_name.clone(), s.name.span().start) {
            let first = line_col(p.source, first).0;
            p.add(
                Some(s.name.span()),
                &key("name"),
                format!("{server_name:?} is listed twice (first on line {first})"),
                "remove one of the two [[server]] tables",
            );
        }
        let mut web_url = |v: &Option<Spanned<String>>, field: &str, example: &str| {
            v.as_ref().map(|v| {
                let url = v.get_ref().trim();
                if !(url.starts_with("https://") || url.starts_with("http://"))
                    || url::Url::parse(url).is_err()
                {
                    p.add(
                        Some(v.span()),
                        &key(field),
                        format!("{url:?} is not an http(s) URL"),
                        format!("write the full address, e.g. \"{example}\""),
                    );
                }
                url.to_owned()
            })
        };
        let client_url = web_url(&s.client_url, "client_url", "https://app.element.io");
        let rules_url = web_url(&s.rules_url, "rules_url", "https://example.org/rules");
        let homepage = web_url(&s.homepage, "homepage", "https://example.org");
        let privacy_url = web_url(&s.privacy_url, "privacy_url", "https://example.org/privacy");
        let mut short_text = |v: &Option<Spanned<String>>, field: &str, max: usize| {
            v.as_ref().map(|v| {
                let t = v.get_ref().trim();
                if t.is_empty() || t.chars().count() > max {
                    p.add(
                        Some(v.span()),
                        &key(field),
                        format!(
                            "must be 1 to {max} characters (it has {})",
                            t.chars().count()
                        ),
                        format!("shorten it, or remove {field} to show nothing"),
                    );
                }
                t.to_owned()
            })
        };
        let jurisdiction = short_text(&s.jurisdiction, "jurisdiction", 60);
        let note = short_text(&s.note, "note", 200);
        let languages = s
            .languages
            .iter()
            .flatten()
            .map(|v| {
                let tag = v.get_ref().trim();
                if !is_language_tag(tag) {
                    p.add(
                        Some(v.span()),
                        &key("languages"),
                        format!("{tag:?} is not a language tag"),
                        "write tags such as \"en\", \"zh\", \"zh-Hans\" or \"pt-BR\"",
                    );
                }
                tag.to_owned()
            })
            .collect();
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
        // An invalid name is reported above; the config is refused, so nothing is lost here.
        let Ok(name) = parsed else { continue };
        servers.push(ServerConfig {
            name,
            title: s
                .title
                .as_ref()
                .map_or_else(|| server_name.clone(), |t| t.get_ref().clone()),
            description: description.unwrap_or_default(),
            client_url,
            check_signup: s.check_signup.unwrap_or(true),
            per_server_phases: s.per_server_phases,
            facts: std::sync::Arc::new(Facts {
                jurisdiction,
                languages,
                rules_url,
                homepage,
                privacy_url,
                note,
            }),
        });
    }

    servers
}

/// A language tag as BCP 47 writes the common ones: a 2–3 letter language, then subtags of
/// 1–8 letters or digits (`en`, `zh-Hans`, `pt-BR`).
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let lang = parts.next().unwrap_or("");
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `[[source]]`: exactly one of `path` and `url` (https), a refresh of at least a minute.
fn validate_sources(
    raw: &[RawSource],
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Vec<SourceConfig> {
    let mut sources = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let key = |field: &str| format!("[[source]] #{} {field}", i + 1);
        let location = match (&s.path, &s.url) {
            (Some(path), None) => {
                let text = path.get_ref().trim();
                SourceLocation::File(match base_dir {
                    Some(dir) if Path::new(text).is_relative() => dir.join(text),
                    _ => PathBuf::from(text),
                })
            }
            (None, Some(url)) => {
                let text = url.get_ref().trim();
                if !text.starts_with("https://") || url::Url::parse(text).is_err() {
                    p.add(
                        Some(url.span()),
                        &key("url"),
                        format!("{text:?} is not an https URL"),
                        "write the list's full https address, e.g. \"https://example.org/servers.json\"",
                    );
                }
                SourceLocation::Url(text.to_owned())
            }
            (Some(_), Some(url)) => {
                p.add(
                    Some(url.span()),
                    &key("url"),
                    "path and url are both set".into(),
                    "keep one: path = \"lists/servers.json\" for a file, or url = \"https://…\"",
                );
                continue;
            }
            (None, None) => {
                p.add(
                    None,
                    &key("path"),
                    "neither path nor url is set".into(),
                    "add path = \"lists/servers.json\" or url = \"https://example.org/servers.json\"",
                );
                continue;
            }
        };
        let refresh = duration(
            &s.refresh,
            &key("refresh"),
            Duration::from_secs(6 * 3600),
            p,
        );
        if let Some(v) = &s.refresh
            && refresh < Duration::from_secs(1)
        {
            p.add(
                Some(v.span()),
                &key("refresh"),
                "must be at least 1s".into(),
                "lists change slowly: e.g. refresh = \"6h\"",
            );
        }
        let max_servers =
            integer(&s.max_servers, &key("max_servers"), 1..=20_000, 1000, p) as usize;
        sources.push(SourceConfig {
            location,
            refresh,
            max_servers,
            trusted: false,
        });
    }
    sources
}

/// `[federation]`: a server name (and a delegation target) that parse as the spec's grammar,
/// a key file that reads, an interval of at least a minute.
fn validate_federation(
    raw: &RawFederation,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Option<FederationConfig> {
    // A host and an optional port, as the spec's server-name grammar has them.
    fn host_port(
        v: &Spanned<String>,
        key: &str,
        what: &str,
        fix: &str,
        p: &mut Problems<'_>,
    ) -> Option<String> {
        let text = v.get_ref().trim();
        match ServerName::parse(text) {
            Ok(_) => Some(text.to_owned()),
            Err(e) => {
                p.add(
                    Some(v.span()),
                    key,
                    format!("{text:?} is not {what}: {e}"),
                    fix,
                );
                None
            }
        }
    }
    let server_name = match &raw.server_name {
        Some(v) => host_port(
            v,
            "[federation] server_name",
            "a Matrix server name",
            "write a host name (and port), e.g. server_name = \"status.example.org\"",
            p,
        ),
        None => {
            p.add(
                None,
                "[federation] server_name",
                "is not set".into(),
                "write the name mxping federates as, e.g. server_name = \"status.example.org\"",
            );
            None
        }
    };
    let well_known = raw.well_known.as_ref().and_then(|v| {
        host_port(
            v,
            "[federation] well_known",
            "a host and port",
            "write where federation reaches mxping, e.g. well_known = \"status.example.org:443\"",
            p,
        )
    });
    let key_file = super::alerts::key_file(
        raw.key_file.as_ref(),
        "[federation] key_file",
        "federation.key",
        base_dir,
        p,
    );
    let interval = duration(
        &raw.interval,
        "[federation] interval",
        Duration::from_secs(600),
        p,
    );
    if let Some(v) = &raw.interval
        && interval < Duration::from_secs(60)
    {
        p.add(
            Some(v.span()),
            "[federation] interval",
            "must be at least 1m".into(),
            "a server fetches mxping's key for each check: e.g. interval = \"10m\"",
        );
    }
    Some(FederationConfig {
        server_name: server_name?,
        key_file: key_file?,
        interval,
        well_known,
    })
}

/// `[signup]`.
fn validate_signup(raw: &RawSignup, p: &mut Problems<'_>) -> SignupConfig {
    let defaults = SignupConfig::default();
    let interval = duration(&raw.interval, "[signup] interval", defaults.interval, p);
    if let Some(v) = &raw.interval
        && interval < Duration::from_secs(1)
    {
        p.add(
            Some(v.span()),
            "[signup] interval",
            "must be at least 1s".into(),
            "sign-up rules change rarely: e.g. interval = \"6h\"",
        );
    }
    SignupConfig { interval }
}

fn validate_storage(
    raw: &RawStorage,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> StorageConfig {
    let defaults = StorageConfig::default();
    let data_dir = match raw.data_dir.as_ref().map(|v| v.get_ref().trim()) {
        Some("") => None,
        Some(dir) => Some(dir.to_owned()),
        None => defaults.data_dir.map(|d| d.display().to_string()),
    }
    .map(|dir| match base_dir {
        Some(base) if Path::new(&dir).is_relative() => base.join(dir),
        _ => PathBuf::from(dir),
    });
    let flush_interval = duration(
        &raw.flush_interval,
        "[storage] flush_interval",
        defaults.flush_interval,
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
        defaults.raw_retention,
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
        defaults.rollup_retention,
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
