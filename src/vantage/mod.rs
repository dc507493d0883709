//! Several vantage points: agents probe from elsewhere and push signed reports to a hub, which
//! combines every fresh view into one verdict per server ("down for everyone, or only from
//! somewhere?").
//!
//! Signed like homeservers sign: each agent has an ed25519 key in the file format Synapse uses
//! for its signing keys (`ed25519 <version> <unpadded base64 seed>`), written by `mxping keygen`.
//! A report is a JSON body signed as bytes; the signature travels in the `Authorization` header
//! (`MxpingVantage name="…",key="ed25519:…",sig="…"`), so nothing has to be canonicalised. The
//! hub checks the name, the key, the signature, that the body names the same vantage, that it
//! was sent within [`MAX_SKEW_S`] seconds of the hub's clock, and that it is newer than the last report
//! accepted from that vantage (no replay).

pub(crate) mod hub;
pub(crate) mod store;

use serde::{Deserialize, Serialize};

/// Where agents POST their reports, on the hub's web address.
pub const REPORT_PATH: &str = "/api/v1/vantage/report";
/// Largest report body the hub reads (a report of 10,000 servers is about 1.5 MB).
pub(crate) const MAX_REPORT_BYTES: usize = 8 * 1024 * 1024;
/// How far a report's send time may be from the hub's clock.
pub(crate) const MAX_SKEW_S: i64 = 300;

/// The addresses a round probed, sorted (what vantages compare).
pub(crate) fn addresses(r: &crate::report::ServerReport) -> Vec<String> {
    let mut list: Vec<String> = r.addresses.iter().map(|a| a.address.to_string()).collect();
    list.sort();
    list
}

/// One server as a vantage saw it in its latest round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Seen {
    /// The server name.
    pub server: String,
    /// The vantage's own status for it (with its hysteresis).
    pub status: crate::status::Status,
    /// Whether an address answered in the last round (an address that failed while another
    /// answered still counts the server as reached).
    pub up: bool,
    /// Whether the last round could say anything about the server: false when the vantage
    /// reached none of its addresses through no fault of the server (it has no IPv6 and the
    /// server only IPv6). Such a round is not counted, for the server or against the vantage.
    #[serde(default = "measured_by_default")]
    pub measured: bool,
    /// Headline latency of the last round, milliseconds.
    pub latency_ms: Option<f64>,
    /// When the last round finished (RFC 3339).
    pub checked_at: Option<String>,
    /// The error kind of a failing round.
    pub error: Option<String>,
    /// The delegation it found (`delegated_name`), to spot split DNS.
    pub delegated_name: Option<String>,
    /// The addresses it probed, sorted, to spot geo-DNS.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// Reports of agents from before `measured` existed counted every round.
fn measured_by_default() -> bool {
    true
}

/// Whether a vantage that saw `reached` (per server checked: whether an address answered) is
/// impaired: it checked two or more servers and reached none. Its probes are broken, not the
/// servers, so it must not vote (the hub's own view included).
pub(crate) fn impaired(reached: impl IntoIterator<Item = bool>) -> bool {
    let (mut checked, mut any) = (0usize, false);
    for r in reached {
        checked += 1;
        any |= r;
    }
    checked >= 2 && !any
}

/// What an agent sends after its rounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Report {
    /// The sending vantage.
    pub vantage: String,
    /// When it was sent, Unix milliseconds (freshness and replay).
    pub sent_at_ms: i64,
    /// The agent's probe interval, seconds (staleness is three of them).
    pub interval_s: u64,
    /// Every server it probes.
    pub servers: Vec<Seen>,
}
