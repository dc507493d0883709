//! The discovery chain explained: one model, rendered by `mxping check` (text) and the detail
//! page (HTML), so the two can never tell a different story. [`steps`] lists every lookup and
//! what it gave; [`sentence`] is the chain in one plain sentence (a `locales/` key and its
//! placeholders, so each language words it).

use super::well_known::WellKnownStatus;
use super::{Method, Resolution, SrvOutcome};
use crate::error::ErrorKind;
use crate::i18n::{Key, key};

/// One step of the chain, as a person reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// What was looked up: `well-known`, `SRV`, `DNS` or `method`.
    pub label: &'static str,
    /// What was asked and what it gave, in one line.
    pub summary: String,
    /// Further lines: redirects, the body, SRV records, the cache lifetime.
    pub details: Vec<String>,
}

/// Every lookup discovery made, in order, and what it gave.
pub(crate) fn steps(r: &Resolution) -> Vec<Step> {
    let mut out = Vec::new();
    let wk = &r.well_known;
    if wk.status == WellKnownStatus::Skipped {
        out.push(Step {
            label: "well-known",
            summary: "skipped (IP literal or explicit port: spec steps 1–2)".into(),
            details: Vec::new(),
        });
    } else {
        let url = wk.url.clone().unwrap_or_default();
        let http = wk
            .http_status
            .map(|c| format!("HTTP {c}"))
            .unwrap_or_else(|| "no answer".into());
        let cached = if wk.from_cache { " (from cache)" } else { "" };
        let mut details: Vec<String> = wk
            .redirects
            .iter()
            .map(|hop| format!("redirected to {hop}"))
            .collect();
        if let Some(body) = &wk.body {
            details.push(format!("body: {body}"));
        }
        details.push(match wk.status {
            WellKnownStatus::Delegated => format!("delegates to {}", r.delegated_name),
            status => format!("{status:?}: {}", wk.problem.clone().unwrap_or_default()),
        });
        if let Some(c) = &wk.cache {
            details.push(format!(
                "cached until {} ({})",
                crate::timestamp::format(c.expires_at),
                c.reason
            ));
        }
        out.push(Step {
            label: "well-known",
            summary: format!("{url} → {http}{cached}"),
            details,
        });
    }
    for srv in &r.srv {
        let mut summary = format!("{} → {}", srv.name, srv.outcome.as_str().replace('_', " "));
        if let Some(e) = &srv.error {
            summary.push_str(&format!(": {e}"));
        }
        if srv.outcome == SrvOutcome::Unavailable {
            summary.push_str(" (target \".\": federation explicitly not offered)");
        }
        out.push(Step {
            label: "SRV",
            summary,
            details: srv
                .records
                .iter()
                .map(|rec| {
                    format!(
                        "priority {} weight {} port {} target {}",
                        rec.priority, rec.weight, rec.port, rec.target
                    )
                })
                .collect(),
        });
    }
    for h in &r.hosts {
        let mut parts = Vec::new();
        if !h.cnames.is_empty() {
            parts.push(format!("CNAME → {}", h.cnames.join(" → ")));
        }
        if h.addresses.is_empty() {
            parts.push("no addresses".into());
        } else {
            parts.push(
                h.addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        parts.extend(h.errors.iter().cloned());
        out.push(Step {
            label: "DNS",
            summary: format!("{}: {}", h.host, parts.join("; ")),
            details: Vec::new(),
        });
    }
    if let Some(m) = r.method {
        out.push(Step {
            label: "method",
            summary: format!(
                "{} ({})",
                m.as_str(),
                spec_step(m, r.well_known.status == WellKnownStatus::Delegated)
            ),
            details: Vec::new(),
        });
    }
    out
}

/// The chain in one plain sentence, for each language to word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sentence {
    /// The `locales/` key.
    pub key: Key,
    /// Its placeholders: `name`, `host`, `port`, `target`.
    pub args: Vec<(&'static str, String)>,
    /// Why discovery failed, for the `problem` placeholder (worded by each language).
    pub failure: Option<ErrorKind>,
}

/// The chain in one plain sentence.
pub(crate) fn sentence(r: &Resolution) -> Sentence {
    if let Some(e) = &r.error {
        return Sentence {
            key: key::EXPLAIN_FAILED,
            args: Vec::new(),
            failure: Some(e.kind),
        };
    }
    let first = r.targets.first();
    let port = first
        .map(|x| x.address.port().to_string())
        .unwrap_or_default();
    let target = first.map(|x| x.via.clone()).unwrap_or_default();
    let delegated = r.well_known.status == WellKnownStatus::Delegated;
    // The delegated host without its port (an IPv6 literal keeps its brackets).
    let host = match r.delegated_name.rsplit_once(':') {
        Some((h, p)) if !r.delegated_name.starts_with('[') || h.ends_with(']') => {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h.to_owned()
            } else {
                r.delegated_name.clone()
            }
        }
        _ => r.delegated_name.clone(),
    };
    let key = match (r.method, delegated) {
        (Some(Method::IpLiteral), false) => key::EXPLAIN_IP,
        (Some(Method::ExplicitPort), false) => key::EXPLAIN_EXPLICIT,
        (Some(Method::IpLiteral | Method::ExplicitPort), true) => key::EXPLAIN_DELEGATED_PORT,
        (Some(Method::SrvMatrixFed | Method::SrvMatrix), true) => key::EXPLAIN_DELEGATED_SRV,
        (Some(Method::DefaultPort), true) => key::EXPLAIN_DELEGATED_DEFAULT,
        (Some(Method::SrvMatrixFed | Method::SrvMatrix), false) => key::EXPLAIN_SRV,
        (Some(Method::DefaultPort), false) | (None, _) => key::EXPLAIN_DEFAULT,
    };
    Sentence {
        key,
        args: vec![
            ("name", r.server_name.clone()),
            ("host", host),
            ("port", port),
            ("target", target),
        ],
        failure: None,
    }
}

/// Which spec step a method is, for a name that was or was not delegated.
pub(crate) fn spec_step(method: Method, delegated: bool) -> &'static str {
    match (method, delegated) {
        (Method::IpLiteral, false) => "step 1: the name is an IP literal",
        (Method::IpLiteral, true) => "step 3.1: the delegated name is an IP literal",
        (Method::ExplicitPort, false) => "step 2: hostname with an explicit port",
        (Method::ExplicitPort, true) => "step 3.2: delegated hostname with an explicit port",
        (Method::SrvMatrixFed, false) => "step 4: SRV _matrix-fed._tcp",
        (Method::SrvMatrixFed, true) => "step 3.3: SRV _matrix-fed._tcp of the delegated name",
        (Method::SrvMatrix, false) => "step 5: deprecated SRV _matrix._tcp",
        (Method::SrvMatrix, true) => "step 3.4: deprecated SRV _matrix._tcp of the delegated name",
        (Method::DefaultPort, false) => "step 6: no SRV record, port 8448",
        (Method::DefaultPort, true) => "step 3.5: no SRV record for the delegated name, port 8448",
    }
}
