//! Public server lists in (`[[source]]`): servers added from a list in the shape public lists
//! publish (a `public_servers` array of objects with a `name`, as servers.joinmatrix.org and
//! mxping's own `/api/v1/public_servers.json` do), read from a local file or fetched over
//! HTTPS through the private-address guard, and merged with the `[[server]]` entries, which
//! win. A list is taken whole or not at all: one that is not JSON, too large, has more entries
//! than `max_servers`, or names an invalid server is rejected with the reason, and the last
//! good copy keeps running.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::{Config, Facts, ServerConfig, SourceConfig, SourceLocation};
use crate::net::fetch::{Endpoint, Fetcher};
use crate::server_name::ServerName;
use crate::text;
use hyper::StatusCode;

/// Cap on a list's size, file or HTTP body.
pub(crate) const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;

/// Why a list was rejected (the last good copy keeps running).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListError {
    /// The body is not JSON.
    #[error("the list is not JSON ({0})")]
    NotJson(#[source] serde_json::Error),
    /// The JSON has no `public_servers` array.
    #[error("the list has no \"public_servers\" array")]
    NoArray,
    /// More entries than the source's `max_servers`.
    #[error("the list has {entries} entries, more than max_servers = {max}")]
    TooMany {
        /// Entries in the list.
        entries: usize,
        /// The source's `max_servers`.
        max: usize,
    },
    /// Entries without a valid server name (the first three are shown).
    #[error("{count} invalid entr{}: {shown}", if *.count == 1 { "y" } else { "ies" })]
    Invalid {
        /// How many.
        count: usize,
        /// The first ones, each with its reason.
        shown: String,
    },
    /// A list file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A list file larger than [`MAX_LIST_BYTES`].
    #[error("{} is {len} bytes, more than the {} MiB a list may be", path.display(), MAX_LIST_BYTES / (1024 * 1024))]
    TooLarge {
        /// The file.
        path: std::path::PathBuf,
        /// Its size.
        len: u64,
    },
    /// The URL cannot be fetched as written.
    #[error("{url}: {why}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// No answer within the monitor's timeout.
    #[error("{url}: no answer within {}", humantime::format_duration(*within))]
    NoAnswer {
        /// The URL.
        url: String,
        /// The timeout.
        within: Duration,
    },
    /// The fetch failed.
    #[error("{url}: {} ({})", source.message, source.kind.as_str())]
    Fetch {
        /// The URL.
        url: String,
        /// The failure.
        #[source]
        source: crate::error::ProbeError,
    },
    /// The server answered with another status than 200.
    #[error("{url}: HTTP {status}")]
    Http {
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
    },
}

/// Reads a list body: every entry's `name` must be a valid server name; descriptions,
/// languages, jurisdiction, rules and privacy links are kept as the list's facts.
pub(crate) fn parse_list(body: &[u8], max_servers: usize) -> Result<Vec<ServerConfig>, ListError> {
    let value: Value = serde_json::from_slice(body).map_err(ListError::NotJson)?;
    let entries = value
        .get("public_servers")
        .and_then(Value::as_array)
        .ok_or(ListError::NoArray)?;
    if entries.len() > max_servers {
        return Err(ListError::TooMany {
            entries: entries.len(),
            max: max_servers,
        });
    }
    let mut servers = Vec::with_capacity(entries.len());
    let mut seen = BTreeSet::new();
    let mut bad = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let Some(raw) = e.get("name").and_then(Value::as_str) else {
            bad.push(format!("entry {} has no \"name\"", i + 1));
            continue;
        };
        let name = match ServerName::parse(raw) {
            Ok(n) => n,
            Err(err) => {
                bad.push(format!("{:?}: {}", text::cap_to(raw, 80), err.message));
                continue;
            }
        };
        if !seen.insert(name.to_string()) {
            continue;
        }
        let s = |k: &str, max: usize| {
            e.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| text::cap_to(v, max))
        };
        let url = |k: &str| {
            s(k, 300).filter(|u| {
                url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "https" | "http"))
            })
        };
        let languages = e
            .get("languages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .take(16)
            .map(|l| text::cap_to(l, 16))
            .collect();
        servers.push(ServerConfig {
            title: name.to_string(),
            description: s("description", 200)
                .map(|d| [("en".to_owned(), d)].into())
                .unwrap_or_default(),
            client_url: None,
            check_signup: true,
            per_server_phases: None,
            facts: Arc::new(Facts {
                jurisdiction: s("staff_jur", 60),
                languages,
                rules_url: url("rules"),
                homepage: url("website"),
                privacy_url: url("privacy"),
                note: None,
            }),
            name,
        });
    }
    if !bad.is_empty() {
        let shown: Vec<&str> = bad.iter().take(3).map(String::as_str).collect();
        return Err(ListError::Invalid {
            count: bad.len(),
            shown: format!(
                "{}{}",
                shown.join("; "),
                if bad.len() > 3 { "; …" } else { "" }
            ),
        });
    }
    Ok(servers)
}

/// Reads or fetches `source` (bounded by `timeout` and [`MAX_LIST_BYTES`]) and parses it.
pub(crate) async fn load(
    source: &SourceConfig,
    fetcher: &Fetcher,
    timeout: Duration,
) -> Result<Vec<ServerConfig>, ListError> {
    let body = match &source.location {
        SourceLocation::File(path) => {
            let read = |source| ListError::Read {
                path: path.clone(),
                source,
            };
            let len = std::fs::metadata(path).map_err(read)?.len();
            if len > MAX_LIST_BYTES as u64 {
                return Err(ListError::TooLarge {
                    path: path.clone(),
                    len,
                });
            }
            std::fs::read(path).map_err(read)?
        }
        SourceLocation::Url(url) => {
            let unusable = |why: String| ListError::Url {
                url: url.clone(),
                why,
            };
            let parsed = url::Url::parse(url).map_err(|e| unusable(e.to_string()))?;
            let endpoint = Endpoint::from_url(&parsed).map_err(unusable)?;
            let mut conn = None;
            let fetched = tokio::time::timeout(
                timeout,
                fetcher.get_following(&endpoint, MAX_LIST_BYTES, &mut conn, &mut |_| {}),
            )
            .await
            .map_err(|_| ListError::NoAnswer {
                url: url.clone(),
                within: timeout,
            })?
            .map_err(|source| ListError::Fetch {
                url: url.clone(),
                source,
            })?;
            if fetched.response.status.as_u16() != 200 {
                return Err(ListError::Http {
                    url: url.clone(),
                    status: fetched.response.status,
                });
            }
            fetched.response.body.to_vec()
        }
    };
    parse_list(&body, source.max_servers)
}

/// The config with the servers of `lists` added after its own `[[server]]` entries: a server
/// the config lists keeps the config's entry, and the first list to name a server wins.
pub(crate) fn merge(config: &Config, lists: &[Option<Vec<ServerConfig>>]) -> Config {
    let mut merged = config.clone();
    let mut seen: BTreeSet<String> = config.servers.iter().map(|s| s.name.to_string()).collect();
    for server in lists.iter().flatten().flatten() {
        if seen.insert(server.name.to_string()) {
            merged.servers.push(server.clone());
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_is_taken_whole_or_rejected_with_the_reason() {
        let good = json!({"public_servers": [
            {"name": "a.example", "description": "First", "languages": ["en"], "staff_jur": "Finland",
             "rules": "https://a.example/rules", "privacy": "javascript:alert(1)",
             "website": "https://a.example/"},
            {"name": "b.example:8448"},
            {"name": "a.example"}]});
        let servers = parse_list(good.to_string().as_bytes(), 10).unwrap();
        let names: Vec<String> = servers.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["a.example", "b.example:8448"], "duplicates once");
        assert_eq!(servers[0].description["en"], "First");
        assert_eq!(servers[0].facts.jurisdiction.as_deref(), Some("Finland"));
        assert_eq!(
            servers[0].facts.rules_url.as_deref(),
            Some("https://a.example/rules")
        );
        assert_eq!(servers[0].facts.privacy_url, None, "not a web link");
        assert_eq!(
            servers[0].facts.homepage.as_deref(),
            Some("https://a.example/")
        );
        for (body, says) in [
            (b"<html>".to_vec(), "not JSON"),
            (json!({"servers": []}).to_string().into_bytes(), "no \"public_servers\" array"),
            (
                json!({"public_servers": (0..11).map(|i| json!({"name": format!("s{i}.example")})).collect::<Vec<_>>()})
                    .to_string()
                    .into_bytes(),
                "11 entries, more than max_servers = 10",
            ),
            (
                json!({"public_servers": [{"name": "ok.example"}, {"name": "bad name"}, {"nom": 1}]})
                    .to_string()
                    .into_bytes(),
                "2 invalid entries: \"bad name\":",
            ),
        ] {
            let e = parse_list(&body, 10).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
