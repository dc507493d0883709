//! `mxping check SERVER_NAME`: one discovery and one round against every address, printed as
//! the whole chain a person needs to debug federation, or as the JSON `Server` shape.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::Services;
use crate::discovery::{Resolution, Severity};
use crate::net::tls::days_until;
use crate::numbers::{self, Places};
use crate::probe::AddressReport;
use crate::probe::apps::{App, Check, Clients};
use crate::probe::federation::{Directory, Outbound, Outcome, PROFILE_PATH};
use crate::probe::signup::Signup;
use crate::report::{Round, ServerReport};
use crate::status::Status;

/// What `check --json` prints: the `Server` shape plus the verdict.
#[derive(Serialize)]
pub struct CheckReport {
    /// The `Server` object.
    #[serde(flatten)]
    pub server: ServerReport,
    /// Discovery, every address, every key check and no federation-breaking finding.
    pub federation_ok: bool,
    /// One sentence.
    pub verdict: String,
    /// How newcomers sign up (`null` when sign-up checks are off or the name is invalid).
    pub signup: Option<Signup>,
    /// Which apps work there, measured with the sign-up check (`null` likewise).
    pub clients: Option<Clients>,
    /// With `--federation`: the signed request sent as the config's `[federation]` name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federation: Option<Outbound>,
}

impl CheckReport {
    /// Federation works into the server and, when it was checked, out of it.
    pub fn ok(&self) -> bool {
        self.federation_ok
            && self
                .federation
                .as_ref()
                .is_none_or(|f| f.outbound == Outcome::BothWays)
    }
}

/// Runs the check (the sign-up check and, with `signed`, the federation check alongside the
/// round).
pub async fn run(
    services: &Services,
    name: &str,
    green_below: Duration,
    signed: bool,
) -> CheckReport {
    let signup = async {
        let parsed = crate::server_name::ServerName::parse(name).ok()?;
        Some(services.signup.as_ref()?.check(&parsed).await)
    };
    let resolution = std::sync::Arc::new(services.discovery.resolve(name).await);
    let outbound = async {
        match (&services.federation, signed) {
            // No listener here: who fetched the key is not known.
            (Some(checker), true) => Some(checker.check(&resolution, None).await),
            _ => None,
        }
    };
    let (round, newcomer, federation) =
        tokio::join!(services.probe(resolution.clone(), name), signup, outbound);
    let server = ServerReport::from_round(name, &round, green_below);
    let federation_ok = round.federation_ok();
    let verdict = verdict(&round, &server, federation_ok);
    let (signup, clients) = newcomer.map(|n| (n.signup, n.clients)).unzip();
    CheckReport {
        server,
        federation_ok,
        verdict,
        signup,
        clients,
        federation,
    }
}

fn verdict(round: &Round, server: &ServerReport, ok: bool) -> String {
    let n = round.counted().count();
    let working = round.counted().filter(|a| a.ok).count();
    let unchecked = round.addresses.len() - n;
    let unchecked_note = if unchecked > 0 {
        format!(
            "; {unchecked} IPv6 address{} not checked: this monitor has no IPv6",
            if unchecked == 1 { "" } else { "es" }
        )
    } else {
        String::new()
    };
    if let Some(trouble) = round.monitor_trouble()
        && !round.measurable()
    {
        return format!(
            "cannot be checked now: {}; run the check again",
            trouble.explain()
        );
    }
    if !round.measurable() {
        return format!(
            "cannot be checked from here: this monitor has no IPv6 and every address of the \
             server is IPv6 ({unchecked}); run the check from a machine with IPv6"
        );
    }
    if ok {
        let latency = server
            .latency_ms
            .map(|l| format!(", latency {}", numbers::ms(l, Places::Tenth)))
            .unwrap_or_default();
        return format!(
            "federation works: {n} address{} answered{latency}{unchecked_note}",
            if n == 1 { "" } else { "es" }
        );
    }
    if let Some(e) = &round.resolution.error {
        return format!("federation is broken: {} ({})", e.message, e.kind);
    }
    if working == 0 {
        let e = round
            .error()
            .map(|e| format!("{}: {}", e.kind, e.message))
            .unwrap_or_default();
        return format!("federation is broken: no address answered ({e})");
    }
    if working < n {
        return format!(
            "federation partly works: {working} of {n} addresses answered; servers that pick a \
             failing address cannot reach this server"
        );
    }
    let keys_bad = round
        .addresses
        .iter()
        .any(|a| a.keys.as_ref().is_some_and(|k| !k.all_ok()));
    if keys_bad {
        return "federation is broken: every address answers, but the signing-key checks fail"
            .into();
    }
    "federation works with spec-following servers, but a finding above breaks it for some \
     implementations"
        .into()
}

/// The human-readable report.
pub fn render_text(report: &CheckReport) -> String {
    let mut out = String::new();
    let s = &report.server;
    let _ = writeln!(
        out,
        "{} — {} {}",
        s.name,
        s.status.symbol(),
        s.status.as_str()
    );
    if let Some(r) = &s.discovery {
        render_discovery(&mut out, r);
    }
    if !s.addresses.is_empty() {
        let _ = writeln!(out, "\nAddresses");
        let now = OffsetDateTime::now_utc();
        for a in &s.addresses {
            render_address(&mut out, a, now);
        }
    }
    if let Some(c) = &s.client {
        let _ = writeln!(out, "\nClient API (as Matrix clients discover it)");
        let base = c.base_url.clone().unwrap_or_else(|| "–".into());
        let how = match c.discovery {
            crate::probe::client_api::Discovery::Found => "from /.well-known/matrix/client",
            crate::probe::client_api::Discovery::Ignore => {
                "no /.well-known/matrix/client (404): the server name itself"
            }
            crate::probe::client_api::Discovery::FailPrompt => {
                "broken /.well-known/matrix/client: clients ask the user"
            }
            crate::probe::client_api::Discovery::FailError => "clients show an error",
        };
        let _ = writeln!(out, "  base URL     {base} ({how})");
        if !c.redirects.is_empty() {
            let _ = writeln!(out, "  redirects    {}", c.redirects.join(" → "));
        }
        if let Some(is) = &c.identity_server {
            let state = if is.ok { "answers" } else { "does not answer" };
            let _ = writeln!(out, "  identity     {} ({state})", is.base_url);
        }
        match (&c.error, c.latency_ms) {
            (Some(e), _) => {
                let _ = writeln!(out, "  ✖ {e}");
            }
            (None, latency) => {
                let _ = writeln!(
                    out,
                    "  ✔ /_matrix/client/versions in {}; spec versions {}",
                    numbers::ms(latency.unwrap_or_default(), Places::Tenth),
                    c.versions.join(", ")
                );
            }
        }
    }
    if let Some(signup) = &report.signup {
        render_signup(&mut out, signup);
    }
    if let Some(clients) = &report.clients {
        render_apps(&mut out, clients);
    }
    if let Some(f) = &report.federation {
        render_outbound(&mut out, f);
    }
    if let Some(r) = &s.discovery {
        let notes: Vec<String> = r
            .findings
            .iter()
            .chain(&s.findings)
            .map(|f| {
                let tag = match f.severity {
                    Severity::Info => "info",
                    Severity::Warning => "warning",
                    Severity::Error => "ERROR",
                };
                format!("  {tag}: {}", f.message)
            })
            .chain(s.addresses.iter().flat_map(|a| {
                a.notes
                    .iter()
                    .map(move |n| format!("  note ({}): {n}", a.address))
            }))
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "\nFindings");
            for n in notes {
                let _ = writeln!(out, "{n}");
            }
        }
    }
    let _ = writeln!(
        out,
        "\nVerdict: {} {}{}",
        if report.federation_ok {
            "OK —"
        } else {
            "FAIL —"
        },
        report.verdict,
        match (&s.reason, s.status) {
            (Some(r), Status::Yellow) => format!(" (status yellow: {r})"),
            _ => String::new(),
        }
    );
    out
}

fn render_outbound(out: &mut String, f: &Outbound) {
    let _ = writeln!(
        out,
        "\nFederation both ways (a signed request to {PROFILE_PATH})"
    );
    let took = f
        .elapsed_ms
        .map(|ms| format!(" in {}", numbers::ms(ms, Places::Tenth)))
        .unwrap_or_default();
    let said = f
        .error
        .as_ref()
        .map(|e| format!(": {}", e.message))
        .unwrap_or_default();
    let line = match f.outbound {
        Outcome::BothWays => format!(
            "  ✔ both ways: the server fetched this monitor's key and accepted its signature{took}"
        ),
        Outcome::CannotReachUs => format!(
            "  ✘ cannot reach us: the server could not fetch this monitor's key, so it cannot \
             fetch other servers' keys either{said}"
        ),
        Outcome::AllowList => {
            format!("  ✘ allow list: the server federates only with the servers it lists{said}")
        }
        Outcome::SignatureRefused => {
            format!(
                "  ✘ signature refused: the server fetched a key and refused the signature{said}"
            )
        }
        Outcome::Error => format!("  ✘ no verdict{said}"),
    };
    let _ = writeln!(out, "{line}");
    match &f.directory {
        Some(Directory::NotShared) => {
            let _ = writeln!(out, "  public rooms: not shared over federation");
        }
        Some(Directory::Shared { rooms, top }) => {
            let _ = writeln!(out, "  public rooms: {rooms}");
            for r in top {
                let _ = writeln!(
                    out,
                    "    {} {} ({} members)",
                    r.alias.as_deref().unwrap_or(&r.room_id),
                    r.name
                        .as_deref()
                        .map(|n| format!("{n:?}"))
                        .unwrap_or_default(),
                    r.members
                );
            }
        }
        None => {}
    }
}

fn render_signup(out: &mut String, s: &Signup) {
    let _ = writeln!(
        out,
        "\nSign-up (POST /register with no auth, /login, auth_metadata)"
    );
    let _ = writeln!(out, "  {} {}", s.way().symbol(), s.status.describe());
    if !s.stages.is_empty() {
        let _ = writeln!(out, "  stages       {}", s.stages.join(", "));
    }
    for t in &s.terms {
        let _ = writeln!(out, "  terms        {} <{}>", or_dash(&t.name), t.url);
    }
    if !s.sso.is_empty() {
        let names: Vec<&str> = s.sso.iter().map(|p| p.name.as_str()).collect();
        let _ = writeln!(out, "  SSO          {}", names.join(", "));
    }
    if let Some(issuer) = &s.issuer {
        let _ = writeln!(out, "  issuer       {issuer}");
    }
    if let Some(support) = &s.support {
        for c in &support.contacts {
            let who = c.matrix_id.iter().chain(&c.email_address);
            let who: Vec<&str> = who.map(String::as_str).collect();
            let _ = writeln!(
                out,
                "  contact      {} ({})",
                who.join(", "),
                or_dash(&c.role)
            );
        }
        if let Some(page) = &support.page {
            let _ = writeln!(out, "  support      {page}");
        }
    }
    if let Some(e) = &s.error {
        let _ = writeln!(out, "  ✖ {}: {}", e.kind.as_str(), e.message);
    }
}

fn render_apps(out: &mut String, c: &Clients) {
    let _ = writeln!(
        out,
        "\nApps (/versions, CORS from {}, /v1/media/config, login)",
        crate::probe::apps::ORIGIN
    );
    let yes_no = |v: Option<bool>| match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not measured",
    };
    let _ = writeln!(
        out,
        "  spec         {}",
        c.spec_version.as_deref().unwrap_or("–")
    );
    let facts = [
        ("sliding sync", c.sliding_sync),
        ("CORS wk", c.cors.well_known),
        ("CORS API", c.cors.client_api),
        ("auth. media", c.authenticated_media),
    ];
    for (label, v) in facts {
        let _ = writeln!(out, "  {label:<12} {}", yes_no(v));
    }
    let ways: Vec<&str> = c
        .login
        .iter()
        .map(|w| match w {
            crate::probe::apps::LoginWay::Password => "password",
            crate::probe::apps::LoginWay::Sso => "SSO",
            crate::probe::apps::LoginWay::Oauth => "next-generation auth",
        })
        .collect();
    let _ = writeln!(out, "  login        {}", or_dash(&ways.join(", ")));
    for app in App::ALL {
        let v = c.apps.get(app);
        let _ = writeln!(
            out,
            "  {} {:<16} {}{}",
            v.works.symbol(),
            app.as_str(),
            v.works.as_str(),
            v.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    for check in Check::ALL {
        for n in c.notes.iter().filter(|n| n.check == check) {
            let _ = writeln!(out, "  note ({}): {}", check.english(), n.said);
        }
    }
}

fn render_discovery(out: &mut String, r: &Resolution) {
    let _ = writeln!(
        out,
        "\nDiscovery ({})",
        numbers::ms(r.duration_ms, Places::Tenth)
    );
    for step in crate::discovery::explain::steps(r, crate::i18n::english()) {
        let said = step.said.map(|x| format!(": {x}")).unwrap_or_default();
        let _ = writeln!(out, "  {:<12} {}{said}", step.label, step.summary);
        for line in &step.details {
            let _ = writeln!(out, "               {line}");
        }
    }
    for t in &r.targets {
        let sni = t
            .tls_name
            .clone()
            .unwrap_or_else(|| "none (IP literal: no SNI)".into());
        let blocked = t
            .blocked
            .as_ref()
            .map(|_| "  [blocked]")
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  target       {}  Host: {}  TLS name: {sni}{blocked}",
            t.address, t.host_header
        );
    }
    if let Some(e) = &r.error {
        let _ = writeln!(out, "  error        {}: {}", e.kind, e.message);
    }
}

fn render_address(out: &mut String, a: &AddressReport, now: OffsetDateTime) {
    let family = a.ip_family.name();
    let mark = if a.ok { "✔" } else { "✖" };
    let _ = write!(out, "  {mark} {} ({family})", a.address);
    match &a.error {
        None => {
            let _ = writeln!(out, "  ok");
        }
        Some(e) => {
            let _ = writeln!(out, "  {}: {}", e.kind, e.message);
        }
    }
    let p = &a.phases_ms;
    let mut timing = Vec::new();
    if let Some(c) = p.connect {
        timing.push(format!("connect {}", numbers::ms(c, Places::Tenth)));
    }
    if let Some(t) = p.tls {
        let extra = a
            .tls
            .as_ref()
            .map(|f| {
                let hrr = if f.hello_retry_request {
                    ", HelloRetryRequest: +1 round trip"
                } else {
                    ""
                };
                format!(
                    " ({} {} {}{hrr})",
                    f.version,
                    f.cipher,
                    f.group.clone().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        timing.push(format!("TLS {}{extra}", numbers::ms(t, Places::Tenth)));
    }
    if !timing.is_empty() {
        let _ = writeln!(out, "      {}", timing.join(" · "));
    }
    if !p.requests.is_empty() {
        let pings: Vec<String> = p
            .requests
            .iter()
            .map(|r| numbers::ms_number(*r, Places::Tenth))
            .collect();
        let _ = writeln!(
            out,
            "      pings {} ms → median {} · cold start {}",
            pings.join(" · "),
            numbers::ms(a.latency_ms.unwrap_or_default(), Places::Tenth),
            numbers::ms(a.cold_ms.unwrap_or_default(), Places::Tenth)
        );
    }
    if let Some(cert) = a.tls.as_ref().and_then(|t| t.certificate.as_ref()) {
        let days = days_until(cert.not_after, now);
        let _ = writeln!(
            out,
            "      certificate for {}; issuer {}; expires {} ({days} days){}",
            cert.names_for_display(),
            cert.issuer,
            cert.not_after.date(),
            if a.tls.as_ref().is_some_and(|t| t.certificate_valid) {
                ""
            } else {
                " — NOT VALID here"
            }
        );
    }
    if let Some(sw) = &a.software {
        let _ = writeln!(
            out,
            "      software {} {}",
            or_dash(&sw.name),
            or_dash(&sw.version)
        );
    }
    if let Some(keys) = &a.keys {
        match (&keys.checks, &keys.error) {
            (Some(c), _) => {
                let ids: Vec<String> = c
                    .ed25519
                    .iter()
                    .map(|(id, k)| {
                        format!(
                            "{id} {}",
                            if k.valid_key && k.matching_signature {
                                "signature ok"
                            } else {
                                "FAILED"
                            }
                        )
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "      keys {} server_name {} · valid_until_ts {} · {}",
                    if c.all_ok { "✔" } else { "✖" },
                    if c.matching_server_name {
                        "matches"
                    } else {
                        "MISMATCH"
                    },
                    if c.future_valid_until_ts {
                        "in the future"
                    } else {
                        "EXPIRED/MISSING"
                    },
                    if ids.is_empty() {
                        "no ed25519 key".to_owned()
                    } else {
                        ids.join(", ")
                    }
                );
                for n in &c.notes {
                    let _ = writeln!(out, "           {n}");
                }
            }
            (None, Some(e)) => {
                let _ = writeln!(out, "      keys ✖ {e}");
            }
            (None, None) => {}
        }
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "–" } else { s }
}
