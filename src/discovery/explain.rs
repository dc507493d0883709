//! The discovery chain explained: one model, rendered by `mxping check` (text) and the detail
//! page (HTML), so the two can never tell a different story. [`steps`] lists every lookup and
//! what it gave; [`sentence`] is the chain in one plain sentence (a `locales/` key and its
//! placeholders, so each language words it).

use super::well_known::{WellKnownStatus, cache_words};
use super::{Method, Resolution, SrvOutcome};
use crate::error::ErrorKind;
use crate::i18n::{Key, Locale, key};

/// One step of the chain, as a person reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// What was looked up: `well-known`, `SRV`, `DNS` (protocol names), or the method.
    pub label: String,
    /// What was asked and what it gave, in one line.
    pub summary: String,
    /// What went wrong, as the lookup reported it (technical words, quoted as they are).
    pub said: Option<String>,
    /// Further lines: redirects, the body, SRV records, the cache lifetime.
    pub details: Vec<Detail>,
}

/// One further line of a step: words, and what a server said, quoted as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Detail {
    /// In the reader's words.
    pub text: String,
    /// Quoted as the server sent it (a body), after the words.
    pub said: Option<String>,
}

impl Detail {
    fn words(text: String) -> Detail {
        Detail { text, said: None }
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.said {
            Some(said) => write!(f, "{}: {said}", self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// Every lookup discovery made, in order, and what it gave, in `t`'s words (what servers and
/// DNS said is quoted as it was).
pub(crate) fn steps(r: &Resolution, t: &Locale) -> Vec<Step> {
    let mut out = Vec::new();
    let wk = &r.well_known;
    if wk.status == WellKnownStatus::Skipped {
        out.push(Step {
            label: "well-known".into(),
            summary: t.t(key::STEP_SKIPPED).to_owned(),
            said: None,
            details: Vec::new(),
        });
    } else {
        let url = wk.url.clone().unwrap_or_default();
        let http = wk
            .http_status
            .map(|c| format!("HTTP {c}"))
            .unwrap_or_else(|| t.t(key::STEP_NO_ANSWER).to_owned());
        let cached = if wk.from_cache {
            t.t(key::STEP_FROM_CACHE)
        } else {
            ""
        };
        let mut details: Vec<Detail> = wk
            .redirects
            .iter()
            .map(|hop| Detail::words(t.f(key::STEP_REDIRECTED, &[("to", hop)])))
            .collect();
        if let Some(body) = &wk.body {
            details.push(Detail {
                text: t.t(key::STEP_BODY).to_owned(),
                said: Some(body.clone()),
            });
        }
        details.push(Detail::words(match wk.status {
            WellKnownStatus::Delegated => t.f(key::STEP_DELEGATES, &[("name", &r.delegated_name)]),
            status => t.t(well_known_key(status)).to_owned(),
        }));
        if let Some(c) = &wk.cache {
            details.push(Detail::words(t.f(
                key::STEP_CACHED_UNTIL,
                &[
                    ("time", &t.datetime(c.expires_at)),
                    ("why", &cache_words(t, c.ttl_s, c.why)),
                ],
            )));
        }
        out.push(Step {
            label: "well-known".into(),
            summary: format!("{url} → {http}{cached}"),
            // A 404 says all there is in the details' words; other failures are quoted.
            said: wk.problem.clone().filter(|_| {
                !matches!(
                    wk.status,
                    WellKnownStatus::Delegated | WellKnownStatus::NotFound
                )
            }),
            details,
        });
    }
    for srv in &r.srv {
        let outcome = match srv.outcome {
            SrvOutcome::Found => key::STEP_SRV_FOUND,
            SrvOutcome::NotFound => key::STEP_SRV_NOT_FOUND,
            SrvOutcome::Failed => key::STEP_SRV_FAILED,
            SrvOutcome::Unavailable => key::STEP_SRV_UNAVAILABLE,
        };
        out.push(Step {
            label: "SRV".into(),
            summary: format!("{} → {}", srv.name, t.t(outcome)),
            said: srv.error.clone(),
            details: srv
                .records
                .iter()
                .map(|rec| {
                    Detail::words(t.f(
                        key::STEP_SRV_RECORD,
                        &[
                            ("priority", &rec.priority.to_string()),
                            ("weight", &rec.weight.to_string()),
                            ("port", &rec.port.to_string()),
                            ("target", &rec.target),
                        ],
                    ))
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
            parts.push(t.t(key::STEP_NO_ADDRESSES).to_owned());
        } else {
            parts.push(
                h.addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(t.t(key::LIST_SEP)),
            );
        }
        out.push(Step {
            label: "DNS".into(),
            summary: format!(
                "{}{}{}",
                h.host,
                t.t(key::LABEL_SEP),
                parts.join(t.t(key::CLAUSE_SEP))
            ),
            said: (!h.errors.is_empty()).then(|| h.errors.join("; ")),
            details: Vec::new(),
        });
    }
    if let Some(m) = r.method {
        let delegated = r.well_known.status == WellKnownStatus::Delegated;
        out.push(Step {
            label: t.t(key::STEP_METHOD).to_owned(),
            summary: t.f(
                key::STEP_METHOD_SUMMARY,
                &[
                    ("method", m.as_str()),
                    ("step", t.t(spec_step(m, delegated))),
                ],
            ),
            said: None,
            details: Vec::new(),
        });
    }
    out
}

/// The word for a well-known answer that is not a delegation.
pub(crate) fn well_known_key(status: WellKnownStatus) -> Key {
    match status {
        WellKnownStatus::NotFound => key::WK_NOT_FOUND,
        WellKnownStatus::Invalid => key::WK_INVALID,
        WellKnownStatus::Error | WellKnownStatus::Delegated | WellKnownStatus::Skipped => {
            key::WK_ERROR
        }
    }
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
pub(crate) fn spec_step(method: Method, delegated: bool) -> Key {
    match (method, delegated) {
        (Method::IpLiteral, false) => key::SPEC_STEP_IP,
        (Method::IpLiteral, true) => key::SPEC_STEP_IP_DELEGATED,
        (Method::ExplicitPort, false) => key::SPEC_STEP_PORT,
        (Method::ExplicitPort, true) => key::SPEC_STEP_PORT_DELEGATED,
        (Method::SrvMatrixFed, false) => key::SPEC_STEP_SRV_FED,
        (Method::SrvMatrixFed, true) => key::SPEC_STEP_SRV_FED_DELEGATED,
        (Method::SrvMatrix, false) => key::SPEC_STEP_SRV_LEGACY,
        (Method::SrvMatrix, true) => key::SPEC_STEP_SRV_LEGACY_DELEGATED,
        (Method::DefaultPort, false) => key::SPEC_STEP_DEFAULT,
        (Method::DefaultPort, true) => key::SPEC_STEP_DEFAULT_DELEGATED,
    }
}
