//! A server's status and the reason for it (design.md "Status"): a leaf every stage may use
//! (the config names statuses, alerts and pages put them in words), owned by none of them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::numbers::{self, Places};

/// Green, yellow, red, maintenance or unknown (design.md "Status").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Healthy and fast.
    Green,
    /// Reachable but slow, partly failing, failing but not yet confirmed, or recovering.
    Yellow,
    /// Confirmed down.
    Red,
    /// In a maintenance window: probed, but not counted in uptime and not alerting.
    Maintenance,
    /// No round has completed yet.
    Unknown,
}

impl Status {
    /// Every status, in display order.
    pub const ALL: [Status; 5] = [
        Status::Green,
        Status::Yellow,
        Status::Red,
        Status::Maintenance,
        Status::Unknown,
    ];

    /// The word used in JSON, metrics and on the page.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Green => "green",
            Status::Yellow => "yellow",
            Status::Red => "red",
            Status::Maintenance => "maintenance",
            Status::Unknown => "unknown",
        }
    }

    /// The status named `word` (the inverse of [`Status::as_str`]).
    pub fn parse(word: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// A symbol, so colour is never the only signal.
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Green => "●",
            Status::Yellow => "▲",
            Status::Red => "✖",
            Status::Maintenance => "◆",
            Status::Unknown => "?",
        }
    }
}

/// What a signed federation request found (design.md "Federation both ways"): a leaf here
/// so a status reason can name it; `probe::federation` judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server verified mxping's signature: it can fetch other servers' keys.
    BothWays,
    /// The server could not fetch or find mxping's key.
    CannotReachUs,
    /// The server federates only with servers on its allow list.
    AllowList,
    /// The server fetched a key and refused the signature.
    SignatureRefused,
    /// No judgement: the request failed another way (see `error`).
    Error,
}

impl Outcome {
    /// The word in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::BothWays => "both_ways",
            Outcome::CannotReachUs => "cannot_reach_us",
            Outcome::AllowList => "allow_list",
            Outcome::SignatureRefused => "signature_refused",
            Outcome::Error => "error",
        }
    }
}

/// Why a status is not green: structured, so pages can explain it in any language; shown in
/// English (and in the JSON API) through `Display`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// No address answered in a round.
    Failed {
        /// The error kind, if one explains it.
        kind: Option<ErrorKind>,
        /// The error message.
        message: String,
    },
    /// Some address (IP family) fails while another answers.
    Partial {
        /// `IPv4` or `IPv6`.
        family: String,
        /// The failing address.
        address: String,
        /// Its error kind.
        kind: Option<ErrorKind>,
    },
    /// Reachable but slower than `green_below`.
    Slow {
        /// Headline latency, ms.
        latency_ms: f64,
        /// `green_below`, ms.
        threshold_ms: f64,
    },
    /// Failing, fewer than `down_after` rounds in a row.
    Unconfirmed {
        /// Failed rounds in a row.
        failed: u32,
        /// `down_after`.
        of: u32,
        /// The last round's reason.
        cause: Box<Reason>,
    },
    /// Confirmed down.
    Down {
        /// Failed rounds in a row.
        failed: u32,
        /// The last round's reason.
        cause: Box<Reason>,
    },
    /// Reachable again after being down, not yet for `up_after` rounds.
    Recovering {
        /// Good rounds in a row.
        good: u32,
        /// `up_after`.
        of: u32,
    },
    /// No round has completed yet.
    NotChecked,
    /// On a hub: some vantage points cannot reach the server, but not a majority of them.
    Vantages {
        /// The vantages (names) that confirm it down.
        unreachable_from: Vec<String>,
        /// Voting vantages that reach it.
        reached: u32,
        /// Voting vantages.
        of: u32,
    },
    /// On a hub whose own probes do not vote (they reach nothing): the vantages that vote see
    /// the server degraded.
    DegradedFrom {
        /// The vantages (names) that see it yellow.
        vantages: Vec<String>,
    },
    /// Reachable, but it did not accept mxping's signed federation request (design.md
    /// "Federation both ways").
    Outbound {
        /// Anything but `both_ways`.
        outcome: Outcome,
        /// What the server said.
        detail: String,
    },
    /// In a maintenance window (design.md "Maintenance and incidents").
    Maintenance {
        /// When the window ends, Unix seconds.
        until: i64,
        /// The operator's note (may be empty).
        note: String,
    },
}

impl Reason {
    /// The error kind at the root of this reason, if any.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Reason::Failed { kind, .. } | Reason::Partial { kind, .. } => *kind,
            Reason::Unconfirmed { cause, .. } | Reason::Down { cause, .. } => cause.kind(),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Failed {
                kind: Some(k),
                message,
            } => write!(f, "{k}: {message}"),
            Reason::Failed { kind: None, .. } => f.write_str("no address answered"),
            Reason::Partial {
                family,
                address,
                kind,
            } => {
                let kind = kind.map_or("error", ErrorKind::as_str);
                write!(f, "{family} address {address} failing: {kind}")
            }
            Reason::Slow {
                latency_ms,
                threshold_ms,
            } => {
                write!(
                    f,
                    "latency {} ≥ {}",
                    numbers::ms(*latency_ms, Places::Whole),
                    numbers::ms(*threshold_ms, Places::Whole)
                )
            }
            Reason::Unconfirmed { failed, of, cause } => {
                write!(
                    f,
                    "failing, not yet confirmed ({failed} of {of} failed rounds): {cause}"
                )
            }
            Reason::Down { failed, cause } => write!(f, "{failed} failed rounds: {cause}"),
            Reason::Recovering { good, of } => write!(f, "recovering ({good} of {of} good rounds)"),
            Reason::NotChecked => f.write_str("no round has completed yet"),
            Reason::Vantages {
                unreachable_from,
                reached,
                of,
            } => write!(
                f,
                "unreachable from {} ({reached} of {of} vantages reach it)",
                unreachable_from.join(", ")
            ),
            Reason::DegradedFrom { vantages } => {
                write!(f, "degraded as seen from {}", vantages.join(", "))
            }
            Reason::Maintenance { until, note } => {
                let until = time::OffsetDateTime::from_unix_timestamp(*until)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                if note.is_empty() {
                    write!(f, "maintenance until {until}")
                } else {
                    write!(f, "maintenance until {until}: {note}")
                }
            }
            Reason::Outbound { outcome, detail } => {
                let what = match outcome {
                    Outcome::CannotReachUs => "cannot fetch other servers' keys",
                    Outcome::AllowList => "federates only with the servers on its allow list",
                    Outcome::SignatureRefused => "refuses other servers' signatures",
                    Outcome::BothWays | Outcome::Error => {
                        "does not answer signed federation requests"
                    }
                };
                if detail.is_empty() {
                    f.write_str(what)
                } else {
                    write!(f, "{what}: {detail}")
                }
            }
        }
    }
}

/// Serializes an optional reason as its English text.
pub(crate) fn reason_text<S: serde::Serializer>(
    r: &Option<Reason>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.collect_str(r),
        None => s.serialize_none(),
    }
}
