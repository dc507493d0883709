//! The config file as written: serde structs that accept exactly the documented keys
//! (`deny_unknown_fields`), every value `Spanned` so a problem can name its line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) monitor: RawMonitor,
    #[serde(default)]
    pub(super) web: RawWeb,
    #[serde(default)]
    pub(super) dns: RawDns,
    #[serde(default)]
    pub(super) tls: RawTls,
    #[serde(default)]
    pub(super) network: RawNetwork,
    #[serde(default)]
    pub(super) storage: RawStorage,
    #[serde(default)]
    pub(super) signup: RawSignup,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default, rename = "server")]
    pub(super) servers: Vec<RawServer>,
    #[serde(default, rename = "source")]
    pub(super) sources: Vec<RawSource>,
    #[serde(default, rename = "alert")]
    pub(super) alerts: Vec<RawAlert>,
    #[serde(default, rename = "maintenance")]
    pub(super) maintenance: Vec<RawMaintenance>,
    pub(super) hub: Option<RawHub>,
    pub(super) federation: Option<RawFederation>,
    #[serde(default, rename = "vantage")]
    pub(super) vantages: Vec<RawVantage>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHub {
    pub(super) url: Option<Spanned<String>>,
    pub(super) key_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFederation {
    pub(super) server_name: Option<Spanned<String>>,
    pub(super) key_file: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) well_known: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVantage {
    pub(super) name: Option<Spanned<String>>,
    pub(super) public_key: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitor {
    pub(super) interval: Option<Spanned<String>>,
    pub(super) retry_interval: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) pings: Option<Spanned<i64>>,
    pub(super) green_below: Option<Spanned<String>>,
    pub(super) down_after: Option<Spanned<i64>>,
    pub(super) up_after: Option<Spanned<i64>>,
    pub(super) concurrency: Option<Spanned<i64>>,
    pub(super) check_keys: Option<bool>,
    pub(super) check_client: Option<bool>,
    pub(super) check_signup: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) per_server_phases: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSignup {
    pub(super) interval: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) vantage: Option<Spanned<String>>,
    pub(super) refresh: Option<Spanned<String>>,
    pub(super) public_url: Option<Spanned<String>>,
    pub(super) header_timeout: Option<Spanned<String>>,
    pub(super) idle_timeout: Option<Spanned<String>>,
    pub(super) write_timeout: Option<Spanned<String>>,
    pub(super) max_connections: Option<Spanned<i64>>,
    pub(super) max_connections_per_ip: Option<Spanned<i64>>,
    pub(super) admin_token_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    pub(super) nameservers: Option<Vec<Spanned<String>>>,
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) roots: Option<Spanned<String>>,
    pub(super) extra_ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub(super) allow: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) data_dir: Option<Spanned<String>>,
    pub(super) flush_interval: Option<Spanned<String>>,
    pub(super) raw_retention: Option<Spanned<String>>,
    pub(super) rollup_retention: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) name: Spanned<String>,
    pub(super) title: Option<Spanned<String>>,
    pub(super) description: Option<Spanned<BTreeMap<String, String>>>,
    pub(super) client_url: Option<Spanned<String>>,
    pub(super) check_signup: Option<bool>,
    pub(super) per_server_phases: Option<bool>,
    pub(super) jurisdiction: Option<Spanned<String>>,
    pub(super) languages: Option<Vec<Spanned<String>>>,
    pub(super) rules_url: Option<Spanned<String>>,
    pub(super) homepage: Option<Spanned<String>>,
    pub(super) privacy_url: Option<Spanned<String>>,
    pub(super) note: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) path: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) refresh: Option<Spanned<String>>,
    pub(super) max_servers: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlert {
    #[serde(rename = "type")]
    pub(super) kind: Option<Spanned<String>>,
    pub(super) homeserver: Option<Spanned<String>>,
    pub(super) access_token_file: Option<Spanned<String>>,
    pub(super) access_token_env: Option<Spanned<String>>,
    pub(super) room: Option<Spanned<String>>,
    pub(super) servers: Option<Vec<Spanned<String>>>,
    pub(super) on: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) language: Option<Spanned<String>>,
    pub(super) fallback_room: Option<Spanned<String>>,
    pub(super) fallback_homeserver: Option<Spanned<String>>,
    pub(super) fallback_access_token_file: Option<Spanned<String>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) secret_file: Option<Spanned<String>>,
    pub(super) via: Option<Vec<Spanned<String>>>,
    pub(super) group_wait: Option<Spanned<String>>,
    pub(super) commands: Option<Spanned<bool>>,
    pub(super) command_power: Option<Spanned<i64>>,
    pub(super) report: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMaintenance {
    pub(super) servers: Option<Vec<Spanned<String>>>,
    pub(super) start: Option<Spanned<String>>,
    pub(super) end: Option<Spanned<String>>,
    pub(super) every: Option<Spanned<String>>,
    pub(super) duration: Option<Spanned<String>>,
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) note: Option<Spanned<String>>,
}

/// What a key's value must be, for fixes that say what to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A quoted duration such as `"30s"`.
    Duration,
    /// A whole number, unquoted.
    Integer,
    /// `true` or `false`, unquoted.
    Bool,
    /// A quoted string.
    Text,
    /// A list of quoted strings.
    List,
    /// A table of strings (`description.en = "…"`).
    Table,
}

/// Every key the raw structs above accept, with its kind: the schema fixes are read from.
/// (A test checks it against the structs, so the two can't drift apart.)
pub(super) const SCHEMA: &[(&str, &[(&str, Kind)])] = &[
    (
        "monitor",
        &[
            ("interval", Kind::Duration),
            ("retry_interval", Kind::Duration),
            ("timeout", Kind::Duration),
            ("pings", Kind::Integer),
            ("green_below", Kind::Duration),
            ("down_after", Kind::Integer),
            ("up_after", Kind::Integer),
            ("concurrency", Kind::Integer),
            ("check_keys", Kind::Bool),
            ("check_client", Kind::Bool),
            ("check_signup", Kind::Bool),
        ],
    ),
    (
        "web",
        &[
            ("listen", Kind::Text),
            ("vantage", Kind::Text),
            ("refresh", Kind::Duration),
            ("public_url", Kind::Text),
            ("header_timeout", Kind::Duration),
            ("idle_timeout", Kind::Duration),
            ("write_timeout", Kind::Duration),
            ("max_connections", Kind::Integer),
            ("max_connections_per_ip", Kind::Integer),
            ("admin_token_file", Kind::Text),
        ],
    ),
    (
        "dns",
        &[("nameservers", Kind::List), ("timeout", Kind::Duration)],
    ),
    (
        "tls",
        &[("roots", Kind::Text), ("extra_ca_file", Kind::Text)],
    ),
    ("network", &[("allow", Kind::List)]),
    (
        "storage",
        &[
            ("data_dir", Kind::Text),
            ("flush_interval", Kind::Duration),
            ("raw_retention", Kind::Duration),
            ("rollup_retention", Kind::Duration),
        ],
    ),
    ("signup", &[("interval", Kind::Duration)]),
    ("metrics", &[("per_server_phases", Kind::Bool)]),
    ("hub", &[("url", Kind::Text), ("key_file", Kind::Text)]),
    (
        "federation",
        &[
            ("server_name", Kind::Text),
            ("key_file", Kind::Text),
            ("interval", Kind::Duration),
            ("well_known", Kind::Text),
        ],
    ),
    (
        "[vantage]",
        &[("name", Kind::Text), ("public_key", Kind::Text)],
    ),
    (
        "[server]",
        &[
            ("name", Kind::Text),
            ("title", Kind::Text),
            ("description", Kind::Table),
            ("client_url", Kind::Text),
            ("check_signup", Kind::Bool),
            ("per_server_phases", Kind::Bool),
            ("jurisdiction", Kind::Text),
            ("languages", Kind::List),
            ("rules_url", Kind::Text),
            ("homepage", Kind::Text),
            ("privacy_url", Kind::Text),
            ("note", Kind::Text),
        ],
    ),
    (
        "[source]",
        &[
            ("path", Kind::Text),
            ("url", Kind::Text),
            ("refresh", Kind::Duration),
            ("max_servers", Kind::Integer),
        ],
    ),
    (
        "[alert]",
        &[
            ("type", Kind::Text),
            ("homeserver", Kind::Text),
            ("access_token_file", Kind::Text),
            ("access_token_env", Kind::Text),
            ("room", Kind::Text),
            ("servers", Kind::List),
            ("on", Kind::List),
            ("language", Kind::Text),
            ("fallback_room", Kind::Text),
            ("fallback_homeserver", Kind::Text),
            ("fallback_access_token_file", Kind::Text),
            ("url", Kind::Text),
            ("secret_file", Kind::Text),
            ("via", Kind::List),
            ("group_wait", Kind::Duration),
            ("commands", Kind::Bool),
            ("command_power", Kind::Integer),
            ("report", Kind::Text),
        ],
    ),
    (
        "[maintenance]",
        &[
            ("servers", Kind::List),
            ("start", Kind::Text),
            ("end", Kind::Text),
            ("every", Kind::Text),
            ("duration", Kind::Duration),
            ("timezone", Kind::Text),
            ("note", Kind::Text),
        ],
    ),
];

/// The kind of `key` in `table` (`"[server]"` for `[[server]]`, `"[source]"` for
/// `[[source]]`, `"[alert]"` for `[[alert]]`), if the schema has it.
pub(super) fn kind_of(table: &str, key: &str) -> Option<Kind> {
    SCHEMA
        .iter()
        .find(|(t, _)| *t == table)?
        .1
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema lists exactly the keys the raw structs accept: a config using every schema
    /// key parses, and each struct's own list of keys is the schema's.
    #[test]
    fn the_schema_matches_the_raw_structs() {
        let mut text = String::new();
        for (table, keys) in SCHEMA {
            // "[server]" becomes the array table "[[server]]".
            text.push_str(&format!("[{table}]\n"));
            for (key, kind) in *keys {
                let value = match kind {
                    Kind::Duration => "\"1s\"",
                    Kind::Integer => "1",
                    Kind::Bool => "true",
                    Kind::Text => "\"x\"",
                    Kind::List => "[]",
                    Kind::Table => "{}",
                };
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        toml::from_str::<RawConfig>(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // The other way: each struct's own list of keys (as serde words an unknown key)
        // is the schema's list for that table.
        for (table, keys) in SCHEMA {
            let bad = if *table == "[server]" {
                "[[server]]\nname = \"x\"\nno_such_key = 1\n".to_owned()
            } else {
                format!("[{table}]\nno_such_key = 1\n")
            };
            let e = toml::from_str::<RawConfig>(&bad)
                .err()
                .expect(table)
                .to_string();
            let listed: Vec<&str> = e
                .rsplit_once("expected ")
                .unwrap_or_else(|| panic!("{table}: {e}"))
                .1
                .split('`')
                .skip(1)
                .step_by(2)
                .collect();
            let schema: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
            assert_eq!(listed, schema, "[{table}]");
        }
    }
}
