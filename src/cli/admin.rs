//! `mxping maintenance start|end` and `mxping note`: the admin API of a running monitor from
//! the command line
//! (design.md "Maintenance and incidents"). The address and the token file come from the
//! config (`[web] listen`, `[web] admin_token_file`) unless given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Config;

/// What to ask the monitor.
pub enum Call {
    /// A window on the servers `pattern` covers, for `duration`, with `note`, by `by`.
    Start {
        /// A server name or glob.
        pattern: String,
        /// How long (`2h`).
        duration: String,
        /// The note (may be empty).
        note: String,
        /// Who (defaults to the user running the command).
        by: Option<String>,
    },
    /// Ends the window of `server` now.
    End {
        /// The server.
        server: String,
    },
    /// A note on `server`'s incident.
    Note {
        /// The server.
        server: String,
        /// The text (may be empty to resolve).
        text: String,
        /// Who (defaults to the user running the command).
        by: Option<String>,
        /// It resolves the incident.
        resolve: bool,
        /// Opening an incident: resolved by itself once the server is green again.
        until_recovered: bool,
    },
}

/// Why the call failed, and its exit code: 2 for what the user fixes in the command or the
/// config, 1 for a refusal or no answer.
pub struct Failed {
    /// 1 or 2.
    pub code: u8,
    /// What to print.
    pub message: String,
}

fn usage(message: String) -> Failed {
    Failed { code: 2, message }
}

/// The admin API's base address: `url` when given, else the config's `[web] listen` (an
/// unspecified address is reached on loopback).
fn base(config: &Config, url: Option<&str>) -> String {
    if let Some(u) = url {
        return u.trim_end_matches('/').to_owned();
    }
    let mut listen = config.web.listen;
    if listen.ip().is_unspecified() {
        listen.set_ip(match listen {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{listen}")
}

fn token(config: &Config, file: Option<&Path>) -> Result<String, Failed> {
    let file: PathBuf = match (file, &config.web.admin_token_file) {
        (Some(f), _) => f.to_owned(),
        (None, Some(f)) => f.clone(),
        (None, None) => {
            return Err(usage(format!(
                "{} has no [web] admin_token_file, so the monitor has no admin API; set it (and restart the monitor) or pass --token-file",
                config.source
            )));
        }
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        usage(format!(
            "cannot read the token file {}: {e}",
            file.display()
        ))
    })?;
    Ok(text.trim().to_owned())
}

/// Sends `call` to the monitor and returns what to print.
pub async fn run(
    config: &Config,
    url: Option<&str>,
    token_file: Option<&Path>,
    call: Call,
) -> Result<String, Failed> {
    let token = token(config, token_file)?;
    let base = base(config, url);
    let who = |by: &Option<String>| {
        by.clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "admin".to_owned())
    };
    let (path, body) = match &call {
        Call::Start {
            pattern,
            duration,
            note,
            by,
        } => (
            "/api/v1/admin/maintenance",
            json!({"servers": pattern, "duration": duration, "note": note, "by": who(by)}),
        ),
        Call::End { server } => ("/api/v1/admin/maintenance/end", json!({"server": server})),
        Call::Note {
            server,
            text,
            by,
            resolve,
            until_recovered,
        } => (
            "/api/v1/admin/note",
            json!({"server": server, "text": text, "by": who(by), "resolve": resolve,
                   "until_recovered": until_recovered}),
        ),
    };
    let url = format!("{base}{path}");
    let (status, answer) = crate::net::post_trusted(
        &url,
        &token,
        body.to_string().into_bytes(),
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| Failed {
        code: 1,
        message: format!("{url}: {e}"),
    })?;
    let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = answer["message"].as_str().unwrap_or("no explanation given");
        return Err(Failed {
            code: 1,
            message: format!("{url}: HTTP {status}: {message}"),
        });
    }
    Ok(match call {
        Call::Start { .. } => {
            let servers: Vec<&str> = answer["servers"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "maintenance of {} server(s) until {}: {}",
                servers.len(),
                answer["end"].as_str().unwrap_or("?"),
                servers.join(", ")
            )
        }
        Call::End { server } => format!(
            "maintenance of {server} ended at {}",
            answer["ended"].as_str().unwrap_or("?")
        ),
        Call::Note { server, .. } => {
            let incident = &answer["incident"];
            let notes = incident["notes"].as_array().map_or(0, Vec::len);
            match incident["resolved_at"].as_str() {
                Some(at) => {
                    format!("the incident of {server} is resolved ({notes} note(s), at {at})")
                }
                None => format!("noted: the incident of {server} has {notes} note(s)"),
            }
        }
    })
}
