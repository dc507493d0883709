//! The `Server` shape of the JSON contract (design.md "HTTP") and what one round means: the
//! headline latency, the software, the error that explains a failure, and the single-round
//! status `mxping check` reports. The monitor adds hysteresis on top (see `history`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::discovery::{Finding, Resolution, Severity};
use crate::error::ProbeError;
use crate::probe::client_api::ClientReport;
use crate::probe::{AddressReport, Software};
use crate::status::{Reason, Status, reason_text};

/// One completed round: discovery plus a report per target.
#[derive(Clone, Debug)]
pub struct Round {
    /// What discovery found (possibly from cache, shared with it and with the view).
    pub resolution: Arc<Resolution>,
    /// One report per target, in the order a homeserver would try them.
    pub addresses: Vec<AddressReport>,
    /// The client API check, when enabled.
    pub client: Option<ClientReport>,
    /// When the round finished.
    pub finished_at: OffsetDateTime,
}

impl Round {
    /// The addresses that count for the server: all but those this monitor cannot reach
    /// through no fault of the server (it has no IPv6).
    pub fn counted(&self) -> impl Iterator<Item = &AddressReport> {
        self.addresses
            .iter()
            .filter(|a| a.error.as_ref().is_none_or(|e| !e.monitor_side))
    }

    /// The round says something about the server: discovery failed (the server's doing), or
    /// at least one address counts. A round in which this monitor could reach none of the
    /// addresses (an IPv6-only server, a monitor without IPv6; no socket to spare) or could
    /// not make the discovery itself (no socket, no memory) is not counted at all.
    pub fn measurable(&self) -> bool {
        match &self.resolution.error {
            // Discovery failed: the server's doing, unless the monitor lacked a resource.
            Some(e) => !e.monitor_side,
            None => self.addresses.is_empty() || self.counted().next().is_some(),
        }
    }

    /// What the monitor ran out of in this round, if anything: the round's troubles are its
    /// own, counted and shown apart from the server's.
    pub fn monitor_trouble(&self) -> Option<crate::error::Trouble> {
        self.resolution
            .error
            .as_ref()
            .and_then(|e| e.trouble)
            .or_else(|| {
                self.addresses
                    .iter()
                    .find_map(|a| a.error.as_ref().and_then(|e| e.trouble))
            })
    }

    /// At least one address answered correctly.
    pub fn any_ok(&self) -> bool {
        self.addresses.iter().any(|a| a.ok)
    }

    /// Discovery worked and every counted address answered correctly.
    pub fn all_ok(&self) -> bool {
        self.resolution.error.is_none()
            && self.counted().next().is_some()
            && self.counted().all(|a| a.ok)
    }

    /// The headline latency: that of the first working address in the order a homeserver
    /// tries them, i.e. the one it would actually use.
    pub fn latency_ms(&self) -> Option<f64> {
        self.addresses
            .iter()
            .find(|a| a.ok)
            .and_then(|a| a.latency_ms)
    }

    /// The software reported by the first address that reported any.
    pub fn software(&self) -> Option<Software> {
        self.addresses.iter().find_map(|a| a.software.clone())
    }

    /// The error that explains why the round is not fully healthy: discovery's, else the first
    /// failing address's.
    pub fn error(&self) -> Option<ProbeError> {
        self.resolution
            .error
            .clone()
            .or_else(|| self.counted().find_map(|a| a.error.clone()))
            .or_else(|| self.addresses.iter().find_map(|a| a.error.clone()))
    }

    /// The status this round alone gives, with the reason for anything but green.
    pub fn status(&self, green_below: Duration) -> (Status, Option<Reason>) {
        if !self.any_ok() {
            let error = self.error();
            return (
                Status::Red,
                Some(Reason::Failed {
                    kind: error.as_ref().map(|e| e.kind),
                    message: error.map(|e| e.message).unwrap_or_default(),
                }),
            );
        }
        if let Some(failing) = self.counted().find(|a| !a.ok) {
            let family = failing.ip_family.name();
            return (
                Status::Yellow,
                Some(Reason::Partial {
                    family: family.to_owned(),
                    address: failing.address.to_string(),
                    kind: failing.error.as_ref().map(|e| e.kind),
                }),
            );
        }
        let threshold_ms = green_below.as_secs_f64() * 1000.0;
        match self.latency_ms() {
            Some(latency_ms) if latency_ms >= threshold_ms => (
                Status::Yellow,
                Some(Reason::Slow {
                    latency_ms,
                    threshold_ms,
                }),
            ),
            _ => (Status::Green, None),
        }
    }

    /// What probing found across addresses, beyond each address's own report: addresses
    /// serving different signing keys, and addresses this monitor cannot reach (no IPv6).
    pub fn findings(&self) -> Vec<Finding> {
        let served = self.addresses.iter().filter_map(|a| {
            a.keys
                .as_ref()
                .and_then(|k| k.checks.as_ref())
                .map(|c| (a.address, c))
        });
        let mut findings: Vec<Finding> = crate::probe::keys::split_brain(served)
            .map(|detail| Finding::coded(Severity::Error, "keys_split", Vec::new()).said(detail))
            .into_iter()
            .collect();
        let unreachable: Vec<String> = self
            .addresses
            .iter()
            .filter(|a| a.error.as_ref().is_some_and(|e| e.monitor_side))
            .map(|a| a.address.to_string())
            .collect();
        if !unreachable.is_empty() {
            findings.push(Finding::coded(
                Severity::Info,
                "monitor_no_ipv6",
                vec![("addresses", unreachable.join(", "))],
            ));
        }
        findings
    }

    /// Federation works: discovery, every address, every key check (when made), and no
    /// finding that breaks federation with some servers.
    pub fn federation_ok(&self) -> bool {
        self.all_ok()
            && self
                .addresses
                .iter()
                .all(|a| a.keys.as_ref().is_none_or(|k| k.all_ok()))
            && !self
                .resolution
                .findings
                .iter()
                .chain(&self.findings())
                .any(|f| f.severity == Severity::Error)
    }
}

/// The contract's `Server` object.
#[derive(Clone, Debug, Serialize)]
pub struct ServerReport {
    /// The Matrix server name.
    pub name: String,
    /// Current status.
    pub status: Status,
    /// Why the status is not green, in words.
    #[serde(serialize_with = "reason_text")]
    pub reason: Option<Reason>,
    /// Headline latency of the last round, milliseconds.
    pub latency_ms: Option<f64>,
    /// When the last round finished.
    #[serde(serialize_with = "crate::timestamp::serialize_option")]
    pub checked_at: Option<OffsetDateTime>,
    /// What `/version` reported.
    pub software: Option<Software>,
    /// The discovery chain (absent before the first round); shared with the round and the
    /// resolution cache, not copied.
    pub discovery: Option<Arc<Resolution>>,
    /// One entry per address probed in the last round.
    pub addresses: Vec<AddressReport>,
    /// What explains a failure, if anything failed.
    pub error: Option<ProbeError>,
    /// The client API, checked as Matrix clients discover it (when enabled).
    /// What probing found across the addresses (e.g. different signing keys per address).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    pub client: Option<ClientReport>,
}

impl ServerReport {
    /// The report for a single round with its own status (what `mxping check` prints).
    pub fn from_round(name: &str, round: &Round, green_below: Duration) -> ServerReport {
        let (status, reason) = round.status(green_below);
        ServerReport::with_status(name, round.clone(), status, reason)
    }

    /// The report for a round with a status decided elsewhere (the monitor's hysteresis).
    pub fn with_status(
        name: &str,
        round: Round,
        status: Status,
        reason: Option<Reason>,
    ) -> ServerReport {
        // The round is moved in, not copied: a view is built every round for every server.
        ServerReport {
            name: name.to_owned(),
            status,
            reason,
            latency_ms: round.latency_ms(),
            checked_at: Some(round.finished_at),
            software: round.software(),
            error: round.error(),
            findings: round.findings(),
            discovery: Some(round.resolution),
            addresses: round.addresses,
            client: round.client,
        }
    }
}
