//! Sign-up facts (design.md "Sign-up"): can a newcomer make an account on a server, and how.
//!
//! Asked rarely (`[signup] interval`) and never creating anything, the way a client learns it
//! before showing a sign-up form: the client API is discovered as clients do
//! ([`super::client_api`]), then
//! - `POST /_matrix/client/v3/register` with `{}` and no auth: the user-interactive auth
//!   answer (401 and the `flows` with their stages, `m.login.terms` policies in `params`), or
//!   403 `M_FORBIDDEN` when registration is disabled;
//! - `GET /_matrix/client/v3/login`: password, SSO (with its identity providers), token login;
//! - next-generation auth: `GET /_matrix/client/v1/auth_metadata`, else the unstable
//!   `org.matrix.msc2965` `auth_metadata` and `auth_issuer` paths; sign-up happens on the
//!   authorization server's web page when it lists `create` in `prompt_values_supported`
//!   (matrix-authentication-service lists it only while password registration is on). Without
//!   `create` the server is not called closed until `/login` (no SSO provider to sign up
//!   through) and the issuer's own `/.well-known/openid-configuration` agree;
//! - `GET https://<server name>/.well-known/matrix/support`: contacts and support page;
//! - and, with the same answers, which apps work there ([`super::apps`]).
//!
//! Every request goes through the same guarded [`Fetcher`] as the rest (private addresses
//! refused on every hop), bodies are capped at 64 KiB, lists and strings are capped, and the
//! whole check is bounded by the monitor's timeout. A hostile or broken answer gives `unknown`
//! with the reason; it runs on its own schedule, so it never delays a probe round.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::{ErrorKind, ProbeError};
use crate::i18n::{Key, key};
use crate::net::fetch::{Endpoint, Fetcher};
use crate::probe::apps::{self, Clients, LoginSeen, MetadataPath};
use crate::probe::client_api::ClientChecker;
use crate::server_name::ServerName;
use crate::text;

/// Cap on every body read here.
const MAX_BODY: usize = 64 * 1024;
/// Caps on what is kept of lists a server sends.
const MAX_FLOWS: usize = 16;
const MAX_STAGES: usize = 16;
const MAX_ITEMS: usize = 16;

/// The sign-up verdict (design.md "Sign-up").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignupStatus {
    /// Some flow needs nothing but `m.login.dummy` (and terms).
    Open,
    /// Anyone can join after email, phone or captcha.
    RequiresVerification,
    /// Every flow needs a registration token.
    InviteOnly,
    /// Sign-up happens on a web page (next-generation auth, or SSO only).
    External,
    /// Registration is disabled.
    Closed,
    /// Not known: the check failed or the answer made no sense.
    Unknown,
}

impl SignupStatus {
    /// Every status, in the contract's order.
    pub const ALL: [SignupStatus; 6] = [
        SignupStatus::Open,
        SignupStatus::RequiresVerification,
        SignupStatus::InviteOnly,
        SignupStatus::External,
        SignupStatus::Closed,
        SignupStatus::Unknown,
    ];

    /// The contract's word (JSON and the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            SignupStatus::Open => "open",
            SignupStatus::RequiresVerification => "requires_verification",
            SignupStatus::InviteOnly => "invite_only",
            SignupStatus::External => "external",
            SignupStatus::Closed => "closed",
            SignupStatus::Unknown => "unknown",
        }
    }

    /// What it means for a newcomer, in English (the page's words are in `locales/`).
    pub fn describe(self) -> &'static str {
        match self {
            SignupStatus::Open => "open: anyone can sign up",
            SignupStatus::RequiresVerification => {
                "open after verification (email, phone or captcha)"
            }
            SignupStatus::InviteOnly => "invite only: sign-up needs a registration token",
            SignupStatus::External => "sign-up happens on a web page (single sign-on)",
            SignupStatus::Closed => "closed: registration is disabled",
            SignupStatus::Unknown => "unknown",
        }
    }

    /// A newcomer can make an account today without anyone's invitation.
    pub fn can_join(self) -> bool {
        matches!(
            self,
            SignupStatus::Open | SignupStatus::RequiresVerification | SignupStatus::External
        )
    }
}

/// A policy a newcomer must accept (`m.login.terms`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Terms {
    /// Its name, in English when offered.
    pub name: String,
    /// Where to read it.
    pub url: String,
}

/// An SSO identity provider from `/login`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SsoProvider {
    /// The provider's ID.
    pub id: String,
    /// Its display name.
    pub name: String,
}

/// A contact from `/.well-known/matrix/support`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contact {
    /// `m.role.admin`, `m.role.security` or another role.
    pub role: String,
    /// A Matrix user ID to write to.
    pub matrix_id: Option<String>,
    /// An email address.
    pub email_address: Option<String>,
}

/// `/.well-known/matrix/support`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Support {
    /// Who to contact.
    pub contacts: Vec<Contact>,
    /// The support page.
    pub page: Option<String>,
}

/// The sign-up facts of one server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Signup {
    /// The verdict.
    pub status: SignupStatus,
    /// The union of the stages offered by `/register`, in the order first seen.
    pub stages: Vec<String>,
    /// The policies of `m.login.terms`.
    pub terms: Vec<Terms>,
    /// SSO identity providers from `/login`.
    pub sso: Vec<SsoProvider>,
    /// The login types `/login` offers (`m.login.password`, `m.login.sso`, …).
    pub login: Vec<String>,
    /// The authorization server, when next-generation auth is advertised.
    pub issuer: Option<String>,
    /// Support contacts, when the server publishes them.
    pub support: Option<Support>,
    /// When the check finished.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// Why the status is `unknown`, or what failed on the way.
    pub error: Option<ProbeError>,
}

/// How a newcomer gets in, as the status page's column says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Open.
    Open,
    /// After confirming an email address.
    Email,
    /// After confirming a phone number.
    Phone,
    /// After a captcha.
    Captcha,
    /// With an invite code (registration token).
    Invite,
    /// On the website (next-generation auth or SSO).
    Website,
    /// Closed.
    Closed,
    /// Unknown.
    Unknown,
}

impl Way {
    /// The sign shown beside the word: a character system fonts have (DejaVu, Segoe UI
    /// Symbol, Apple Symbols, Noto Sans Symbols), never an emoji, which a machine without a
    /// colour-emoji font shows as an empty box.
    pub fn symbol(self) -> &'static str {
        match self {
            Way::Open => "✓",
            Way::Email | Way::Phone => "✉",
            // "I am not a robot": the box a person ticks.
            Way::Captcha => "☑",
            // A code to type.
            Way::Invite => "⌨",
            // Elsewhere: the issuer's or provider's page.
            Way::Website => "↗",
            Way::Closed => "✖",
            Way::Unknown => "?",
        }
    }

    /// The word's key in `locales/`.
    pub fn key(self) -> Key {
        match self {
            Way::Open => key::SIGNUP_OPEN,
            Way::Email => key::SIGNUP_EMAIL,
            Way::Phone => key::SIGNUP_PHONE,
            Way::Captcha => key::SIGNUP_CAPTCHA,
            Way::Invite => key::SIGNUP_INVITE,
            Way::Website => key::SIGNUP_WEBSITE,
            Way::Closed => key::SIGNUP_CLOSED,
            Way::Unknown => key::SIGNUP_UNKNOWN,
        }
    }
}

impl Signup {
    /// How a newcomer gets in: for `requires_verification`, the heaviest check among the
    /// stages offered (an email address, else a phone number, else a captcha).
    pub fn way(&self) -> Way {
        let has = |s: &str| self.stages.iter().any(|x| x == s);
        match self.status {
            SignupStatus::Open => Way::Open,
            SignupStatus::RequiresVerification if has("m.login.email.identity") => Way::Email,
            SignupStatus::RequiresVerification if has("m.login.msisdn") => Way::Phone,
            SignupStatus::RequiresVerification => Way::Captcha,
            SignupStatus::InviteOnly => Way::Invite,
            SignupStatus::External => Way::Website,
            SignupStatus::Closed => Way::Closed,
            SignupStatus::Unknown => Way::Unknown,
        }
    }
}

/// What `/register` said to an empty request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Register {
    /// 401 with user-interactive auth flows (each a list of stages) and the terms.
    Flows(Vec<Vec<String>>, Vec<Terms>),
    /// 403: registration is disabled.
    Forbidden,
    /// 404 or 405 with `M_UNRECOGNIZED`: the server does not offer the endpoint (a 404 that
    /// is not a Matrix error means there is no client API there at all: `Failed`).
    NotOffered,
    /// Anything else.
    Failed(ProbeError),
}

/// What next-generation auth metadata advertised.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AuthMetadata {
    /// The issuer URL.
    pub issuer: String,
    /// Whether `create` is among `prompt_values_supported` (the server offers registration);
    /// `None` when only the issuer was named (`auth_issuer`).
    pub can_create: Option<bool>,
    /// Where it was found.
    pub path: MetadataPath,
}

/// What the sign-up check found: the sign-up facts, and the apps' facts measured with them.
#[derive(Clone, Debug, PartialEq)]
pub struct Newcomer {
    /// How to sign up.
    pub signup: Signup,
    /// Which apps work there.
    pub clients: Clients,
}

/// What `/login` offers.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Login {
    /// The login types.
    pub types: Vec<String>,
    /// SSO identity providers.
    pub sso: Vec<SsoProvider>,
}

/// Checks sign-up facts.
pub struct SignupChecker {
    fetcher: Fetcher,
    client: ClientChecker,
    timeout: Duration,
}

impl SignupChecker {
    /// A checker fetching through `fetcher` (guarded, verifying TLS), the whole check bounded
    /// by `timeout`.
    pub fn new(fetcher: Fetcher, timeout: Duration) -> SignupChecker {
        SignupChecker {
            client: ClientChecker::new(fetcher.clone(), timeout),
            fetcher,
            timeout,
        }
    }

    /// The sign-up facts of `name`, and which apps work there.
    pub async fn check(&self, name: &ServerName) -> Newcomer {
        let outcome = tokio::time::timeout(self.timeout, self.check_unbounded(name)).await;
        outcome.unwrap_or_else(|_| {
            let why = format!(
                "the sign-up check did not finish within {}",
                humantime::format_duration(self.timeout)
            );
            Newcomer {
                clients: apps::unreachable(&why),
                signup: unknown(ProbeError::new(ErrorKind::Timeout, why)),
            }
        })
    }

    async fn check_unbounded(&self, name: &ServerName) -> Newcomer {
        let base = match self.client.base_url(name).await {
            Ok(b) => b,
            Err(e) => {
                return Newcomer {
                    clients: apps::unreachable(&e.message),
                    signup: unknown(e),
                };
            }
        };
        let endpoint = |path: &str| {
            let url = url::Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
                .map_err(|e| ProbeError::new(ErrorKind::InvalidResponse, format!("{base}: {e}")))?;
            Endpoint::from_url(&url)
                .map_err(|e| ProbeError::new(ErrorKind::InvalidResponse, text::cap(&e)))
        };
        let support_url = Endpoint::https(name.host().clone(), 443, "/.well-known/matrix/support");
        let register = async {
            let url = endpoint("/_matrix/client/v3/register")?;
            let answer = self
                .fetcher
                .post_json(&url, b"{}", MAX_BODY)
                .await
                .map_err(|e| ProbeError::new(e.kind, format!("{url}: {}", e.message)))?;
            Ok::<_, ProbeError>(parse_register(answer.status.as_u16(), &answer.body))
        };
        let unstable = "/_matrix/client/unstable/org.matrix.msc2965";
        let well_known = Endpoint::https(name.host().clone(), 443, "/.well-known/matrix/client");
        // The apps' requests go alongside, within the same budget.
        let (register, login, stable, unstable_metadata, issuer_only, support, apps_answers) = tokio::join!(
            register,
            self.get_json(endpoint("/_matrix/client/v3/login")),
            self.get_json(endpoint("/_matrix/client/v1/auth_metadata")),
            self.get_json(endpoint(&format!("{unstable}/auth_metadata"))),
            self.get_json(endpoint(&format!("{unstable}/auth_issuer"))),
            self.get_json(Ok(support_url)),
            apps::ask(&self.fetcher, &well_known, &base),
        );
        let register = register.unwrap_or_else(Register::Failed);
        let login = login
            .ok()
            .flatten()
            .map(|v| parse_login(&v))
            .unwrap_or_default();
        let found = |answer: Result<Option<Value>, ProbeError>, path| {
            answer
                .ok()
                .flatten()
                .and_then(|v| parse_auth_metadata(&v, path))
        };
        let metadata = found(stable, MetadataPath::Stable)
            .or_else(|| found(unstable_metadata, MetadataPath::Unstable))
            .or_else(|| found(issuer_only, MetadataPath::IssuerOnly));
        // Registration not advertised (or not said): the issuer's own discovery document says
        // whether it offers it, unless an SSO provider already is a way in.
        let issuer_create = match &metadata {
            Some(m) if m.can_create != Some(true) && login.sso.is_empty() => {
                self.issuer_create(&m.issuer).await
            }
            _ => Err(ProbeError::new(ErrorKind::InvalidResponse, "not asked")),
        };
        let support = support.ok().flatten().and_then(|v| parse_support(&v));
        let seen = LoginSeen {
            password: login.types.iter().any(|t| t == "m.login.password"),
            sso: login.types.iter().any(|t| t == "m.login.sso"),
            metadata: metadata.as_ref().map(|m| m.path),
        };
        let clients = apps::judge(apps_answers, &seen);
        let mut signup = decide(register, login, metadata, issuer_create);
        signup.support = support;
        Newcomer { signup, clients }
    }

    /// Whether the authorization server at `issuer` offers registration, from its
    /// `/.well-known/openid-configuration` (`prompt_values_supported`), or why not known.
    async fn issuer_create(&self, issuer: &str) -> Result<bool, ProbeError> {
        let url = url::Url::parse(issuer)
            .and_then(|u| u.join(".well-known/openid-configuration"))
            .map_err(|e| ProbeError::new(ErrorKind::InvalidResponse, format!("{issuer}: {e}")))?;
        let url = Endpoint::from_url(&url)
            .map_err(|e| ProbeError::new(ErrorKind::InvalidResponse, text::cap(&e)))?;
        let shown = url.to_string();
        match self.get_json(Ok(url)).await {
            Ok(Some(v)) => Ok(offers_create(&v)),
            Ok(None) => Err(ProbeError::new(
                ErrorKind::InvalidResponse,
                format!("{shown}: no JSON object"),
            )),
            Err(e) => Err(ProbeError::new(e.kind, format!("{shown}: {}", e.message))),
        }
    }

    /// GET a JSON object, following redirects: `None` for a 404 or any answer that is not a
    /// 200 with a JSON object (these endpoints are optional).
    async fn get_json(
        &self,
        url: Result<Endpoint, ProbeError>,
    ) -> Result<Option<Value>, ProbeError> {
        let url = url?;
        let mut conn = None;
        let followed = self
            .fetcher
            .get_following(&url, MAX_BODY, &mut conn, &mut |_| {})
            .await?;
        if followed.response.status.as_u16() != 200 {
            return Ok(None);
        }
        Ok(serde_json::from_slice::<Value>(&followed.response.body)
            .ok()
            .filter(Value::is_object))
    }
}

/// Facts with `status` and nothing else known yet, checked now.
fn blank(status: SignupStatus, error: Option<ProbeError>) -> Signup {
    Signup {
        status,
        stages: Vec::new(),
        terms: Vec::new(),
        sso: Vec::new(),
        login: Vec::new(),
        issuer: None,
        support: None,
        checked_at: OffsetDateTime::now_utc(),
        error,
    }
}

fn unknown(error: ProbeError) -> Signup {
    blank(SignupStatus::Unknown, Some(error))
}

/// Reads the answer of `/register` to `{}`.
pub(crate) fn parse_register(status: u16, body: &[u8]) -> Register {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let errcode = json
        .as_ref()
        .and_then(|v| v.get("errcode"))
        .and_then(Value::as_str);
    let failed = |kind, message: String| Register::Failed(ProbeError::new(kind, message));
    match status {
        401 => {
            let Some(v) = json.filter(Value::is_object) else {
                return failed(
                    ErrorKind::InvalidResponse,
                    "/register answered 401 without a JSON object".into(),
                );
            };
            let Some(flows) = v.get("flows").and_then(Value::as_array) else {
                return failed(
                    ErrorKind::InvalidResponse,
                    "/register answered 401 without a \"flows\" list".into(),
                );
            };
            let mut parsed = Vec::new();
            for flow in flows.iter().take(MAX_FLOWS) {
                let stages = flow.get("stages").and_then(Value::as_array);
                let stages: Option<Vec<String>> = stages.and_then(|s| {
                    s.iter()
                        .take(MAX_STAGES)
                        .map(|x| x.as_str().map(|x| text::cap_to(x, 64)))
                        .collect()
                });
                match stages {
                    Some(s) => parsed.push(s),
                    None => {
                        return failed(
                            ErrorKind::InvalidResponse,
                            "/register offered a flow without a list of stages".into(),
                        );
                    }
                }
            }
            if parsed.is_empty() {
                return failed(
                    ErrorKind::InvalidResponse,
                    "/register answered 401 with no flows".into(),
                );
            }
            Register::Flows(parsed, parse_terms(&v))
        }
        403 if errcode.is_some() => Register::Forbidden,
        404 | 405 if errcode == Some("M_UNRECOGNIZED") => Register::NotOffered,
        200 => failed(
            ErrorKind::InvalidResponse,
            "/register answered 200 to an empty request (it should ask for authentication)".into(),
        ),
        429 => failed(
            ErrorKind::HttpStatus,
            "/register answered 429: rate limited, asked again at the next check".into(),
        ),
        s => failed(
            ErrorKind::HttpStatus,
            match errcode {
                Some(c) => format!("/register answered HTTP {s} ({})", text::cap_to(c, 64)),
                None => format!("/register answered HTTP {s} without a Matrix error"),
            },
        ),
    }
}

/// The policies of `params["m.login.terms"]`, named in English when offered, else in the
/// first language given.
fn parse_terms(v: &Value) -> Vec<Terms> {
    let Some(policies) = v
        .pointer("/params/m.login.terms/policies")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    policies
        .values()
        .filter_map(|p| {
            let p = p.as_object()?;
            let lang = p.get("en").or_else(|| {
                p.iter()
                    .find(|(k, v)| *k != "version" && v.is_object())
                    .map(|(_, v)| v)
            })?;
            let url = lang.get("url").and_then(Value::as_str)?;
            web_url(url).map(|url| Terms {
                name: text::cap_to(lang.get("name").and_then(Value::as_str).unwrap_or(""), 80),
                url,
            })
        })
        .take(MAX_ITEMS)
        .collect()
}

/// An http(s) URL, capped; anything else (`javascript:`, nonsense) is dropped.
fn web_url(s: &str) -> Option<String> {
    let u = url::Url::parse(s).ok()?;
    matches!(u.scheme(), "https" | "http").then(|| text::cap(u.as_str()))
}

/// Reads `/login`.
pub(crate) fn parse_login(v: &Value) -> Login {
    let flows = v.get("flows").and_then(Value::as_array);
    let mut login = Login::default();
    for flow in flows.into_iter().flatten().take(MAX_FLOWS) {
        let Some(t) = flow.get("type").and_then(Value::as_str) else {
            continue;
        };
        login.types.push(text::cap_to(t, 64));
        let providers = flow.get("identity_providers").and_then(Value::as_array);
        for p in providers.into_iter().flatten() {
            if login.sso.len() == MAX_ITEMS {
                break;
            }
            let (Some(id), Some(name)) = (
                p.get("id").and_then(Value::as_str),
                p.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            login.sso.push(SsoProvider {
                id: text::cap_to(id, 64),
                name: text::cap_to(name, 80),
            });
        }
    }
    login
}

/// Reads next-generation auth metadata found at `path`: the issuer (an https URL, as RFC 8414
/// requires) and whether registration is offered (not said by `auth_issuer`, which names only
/// the issuer).
pub(crate) fn parse_auth_metadata(v: &Value, path: MetadataPath) -> Option<AuthMetadata> {
    let issuer = v.get("issuer").and_then(Value::as_str)?;
    let parsed = url::Url::parse(issuer).ok()?;
    if parsed.scheme() != "https" {
        return None;
    }
    Some(AuthMetadata {
        issuer: text::cap(issuer),
        can_create: (path != MetadataPath::IssuerOnly).then(|| offers_create(v)),
        path,
    })
}

/// `create` is among `prompt_values_supported`.
fn offers_create(v: &Value) -> bool {
    v.get("prompt_values_supported")
        .and_then(Value::as_array)
        .is_some_and(|p| p.iter().any(|x| x.as_str() == Some("create")))
}

/// Reads `/.well-known/matrix/support`; `None` when it names nobody and no page.
pub(crate) fn parse_support(v: &Value) -> Option<Support> {
    let contacts: Vec<Contact> = v
        .get("contacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let s = |k: &str| {
                c.get(k)
                    .and_then(Value::as_str)
                    .map(|x| text::cap_to(x, 120))
            };
            let contact = Contact {
                role: s("role").unwrap_or_default(),
                matrix_id: s("matrix_id"),
                email_address: s("email_address"),
            };
            (contact.matrix_id.is_some() || contact.email_address.is_some()).then_some(contact)
        })
        .take(MAX_ITEMS)
        .collect();
    let page = v
        .get("support_page")
        .and_then(Value::as_str)
        .and_then(web_url);
    (!contacts.is_empty() || page.is_some()).then_some(Support { contacts, page })
}

/// What one flow asks of a newcomer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FlowNeeds {
    Nothing,
    Verification,
    Token,
    Unrecognised,
}

fn flow_needs(stages: &[String]) -> FlowNeeds {
    let mut needs = FlowNeeds::Nothing;
    for s in stages {
        let this = match s.as_str() {
            "m.login.dummy" | "m.login.terms" => FlowNeeds::Nothing,
            "m.login.email.identity" | "m.login.msisdn" | "m.login.recaptcha" => {
                FlowNeeds::Verification
            }
            "m.login.registration_token" | "org.matrix.msc3231.login.registration_token" => {
                FlowNeeds::Token
            }
            _ => FlowNeeds::Unrecognised,
        };
        needs = needs.max(this);
    }
    needs
}

/// The verdict from the answers (design.md "Sign-up"). Next-generation auth comes first, as
/// clients that support it use it: sign-up is on the issuer's page when it offers `create`, or
/// through an SSO provider `/login` names; closed only when neither does and the issuer's own
/// document (`issuer_create`) agrees; unknown while that could not be read. Then the flows of
/// `/register`; a disabled `/register` with SSO on `/login` means accounts are made by signing
/// in with the provider.
pub(crate) fn decide(
    register: Register,
    login: Login,
    metadata: Option<AuthMetadata>,
    issuer_create: Result<bool, ProbeError>,
) -> Signup {
    let mut signup = blank(SignupStatus::Unknown, None);
    signup.sso = login.sso;
    signup.login = login.types;
    let sso_only = !signup.sso.is_empty() || signup.login.iter().any(|t| t == "m.login.sso");
    if let Register::Flows(flows, terms) = &register {
        for s in flows.iter().flatten() {
            if !signup.stages.contains(s) {
                signup.stages.push(s.clone());
            }
        }
        signup.terms = terms.clone();
    }
    if let Some(m) = metadata {
        signup.status = if m.can_create == Some(true) || !signup.sso.is_empty() {
            SignupStatus::External
        } else {
            match issuer_create {
                Ok(true) => SignupStatus::External,
                Ok(false) => SignupStatus::Closed,
                Err(e) => {
                    signup.error = Some(ProbeError::new(
                        e.kind,
                        format!(
                            "next-generation auth does not say whether sign-up is open: {}",
                            e.message
                        ),
                    ));
                    SignupStatus::Unknown
                }
            }
        };
        signup.issuer = Some(m.issuer);
        return signup;
    }
    signup.status = match register {
        Register::Flows(flows, _) => {
            let best = flows
                .iter()
                .map(|f| flow_needs(f))
                .min()
                .expect("non-empty");
            match best {
                FlowNeeds::Nothing => SignupStatus::Open,
                FlowNeeds::Verification => SignupStatus::RequiresVerification,
                FlowNeeds::Token => SignupStatus::InviteOnly,
                FlowNeeds::Unrecognised => {
                    signup.error = Some(ProbeError::new(
                        ErrorKind::InvalidResponse,
                        format!(
                            "/register offers only stages mxping does not know: {}",
                            signup.stages.join(", ")
                        ),
                    ));
                    SignupStatus::Unknown
                }
            }
        }
        Register::Forbidden | Register::NotOffered if sso_only => SignupStatus::External,
        Register::Forbidden | Register::NotOffered => SignupStatus::Closed,
        Register::Failed(e) => {
            signup.error = Some(e);
            SignupStatus::Unknown
        }
    };
    signup
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flows(body: Value) -> Register {
        parse_register(401, body.to_string().as_bytes())
    }

    fn status(register: Register) -> SignupStatus {
        decide(register, Login::default(), None, not_asked()).status
    }

    fn not_asked() -> Result<bool, ProbeError> {
        Err(ProbeError::new(ErrorKind::InvalidResponse, "not asked"))
    }

    #[test]
    fn flows_decide_the_status_by_the_easiest_flow() {
        let open = flows(json!({"flows": [{"stages": ["m.login.terms", "m.login.dummy"]}]}));
        assert_eq!(status(open), SignupStatus::Open);
        let email = flows(json!({"flows": [
            {"stages": ["m.login.recaptcha", "m.login.terms", "m.login.email.identity"]},
            {"stages": ["m.login.registration_token"]}]}));
        assert_eq!(status(email), SignupStatus::RequiresVerification);
        let token = flows(json!({"flows": [
            {"stages": ["m.login.registration_token", "m.login.dummy"]},
            {"stages": ["m.login.email.identity", "m.login.registration_token"]}]}));
        assert_eq!(status(token), SignupStatus::InviteOnly);
        let strange = flows(json!({"flows": [{"stages": ["org.example.pay"]}]}));
        let s = decide(strange, Login::default(), None, not_asked());
        assert_eq!(s.status, SignupStatus::Unknown);
        assert!(s.error.unwrap().message.contains("org.example.pay"));
    }

    #[test]
    fn stages_are_a_union_and_terms_prefer_english() {
        let r = flows(json!({
            "flows": [{"stages": ["m.login.terms", "m.login.dummy"]},
                      {"stages": ["m.login.email.identity", "m.login.terms"]}],
            "params": {"m.login.terms": {"policies": {
                "privacy": {"version": "1", "fr": {"name": "Confidentialité", "url": "https://x.org/fr"},
                            "en": {"name": "Privacy", "url": "https://x.org/en"}},
                "rules": {"version": "2", "de": {"name": "Regeln", "url": "https://x.org/de"}},
                "evil": {"en": {"name": "x", "url": "javascript:alert(1)"}}}}}
        }));
        let s = decide(r, Login::default(), None, not_asked());
        assert_eq!(
            s.stages,
            ["m.login.terms", "m.login.dummy", "m.login.email.identity"]
        );
        let names: Vec<_> = s
            .terms
            .iter()
            .map(|t| (t.name.as_str(), t.url.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("Privacy", "https://x.org/en"),
                ("Regeln", "https://x.org/de")
            ]
        );
    }

    #[test]
    fn forbidden_is_closed_unless_sso_or_next_generation_auth_makes_accounts() {
        let forbidden = || {
            parse_register(
                403,
                br#"{"errcode":"M_FORBIDDEN","error":"Registration has been disabled"}"#,
            )
        };
        assert_eq!(status(forbidden()), SignupStatus::Closed);
        let login = parse_login(&json!({"flows": [{"type": "m.login.sso",
            "identity_providers": [{"id": "oidc-github", "name": "GitHub"}, {"id": "x"}]},
            {"type": "m.login.token"}]}));
        assert_eq!(login.types, ["m.login.sso", "m.login.token"]);
        let s = decide(forbidden(), login, None, not_asked());
        assert_eq!(s.status, SignupStatus::External);
        assert_eq!(
            s.sso,
            [SsoProvider {
                id: "oidc-github".into(),
                name: "GitHub".into()
            }]
        );
        let mas = parse_auth_metadata(
            &json!({"issuer": "https://auth.x.org/", "prompt_values_supported": ["create"]}),
            MetadataPath::Stable,
        );
        let s = decide(parse_register(404, b""), Login::default(), mas, not_asked());
        assert_eq!(
            (s.status, s.issuer.as_deref()),
            (SignupStatus::External, Some("https://auth.x.org/"))
        );
        // Without `create` in the metadata: closed only when the issuer agrees and /login
        // names no SSO provider to sign up through.
        let no_create = || {
            parse_auth_metadata(
                &json!({"issuer": "https://auth.x.org/"}),
                MetadataPath::Stable,
            )
        };
        assert_eq!(no_create().unwrap().can_create, Some(false));
        assert_eq!(
            decide(forbidden(), Login::default(), no_create(), Ok(false)).status,
            SignupStatus::Closed
        );
        assert_eq!(
            decide(forbidden(), Login::default(), no_create(), Ok(true)).status,
            SignupStatus::External
        );
        let unsure = decide(forbidden(), Login::default(), no_create(), not_asked());
        assert_eq!(unsure.status, SignupStatus::Unknown);
        assert!(
            unsure
                .error
                .unwrap()
                .message
                .contains("does not say whether sign-up is open")
        );
        let upstream = parse_login(&json!({"flows": [{"type": "m.login.sso",
            "identity_providers": [{"id": "oidc-github", "name": "GitHub"}]}]}));
        assert_eq!(
            decide(forbidden(), upstream, no_create(), Ok(false)).status,
            SignupStatus::External
        );
        // The unstable paths: auth_metadata says as much as the stable one; auth_issuer names
        // only the issuer.
        let unstable = parse_auth_metadata(
            &json!({"issuer": "https://auth.x.org/", "prompt_values_supported": ["create"]}),
            MetadataPath::Unstable,
        )
        .unwrap();
        assert_eq!(
            (unstable.can_create, unstable.path),
            (Some(true), MetadataPath::Unstable)
        );
        let issuer = parse_auth_metadata(
            &json!({"issuer": "https://auth.x.org/"}),
            MetadataPath::IssuerOnly,
        )
        .unwrap();
        assert_eq!(issuer.can_create, None);
        assert_eq!(
            parse_auth_metadata(
                &json!({"issuer": "http://auth.x.org/"}),
                MetadataPath::Stable
            ),
            None,
            "not https"
        );
        assert_eq!(
            status(parse_register(404, br#"{"errcode":"M_UNRECOGNIZED"}"#)),
            SignupStatus::Closed
        );
    }

    #[test]
    fn broken_answers_are_unknown_with_the_reason() {
        for (code, body, says) in [
            (401, &b"<html>"[..], "without a JSON object"),
            (401, br#"{"flows": "all"}"#, "without a \"flows\" list"),
            (401, br#"{"flows": []}"#, "no flows"),
            (
                401,
                br#"{"flows": [{"stages": [1]}]}"#,
                "without a list of stages",
            ),
            (
                403,
                b"<html>Forbidden</html>",
                "HTTP 403 without a Matrix error",
            ),
            (500, br#"{"errcode":"M_UNKNOWN"}"#, "HTTP 500 (M_UNKNOWN)"),
            (429, br#"{"errcode":"M_LIMIT_EXCEEDED"}"#, "rate limited"),
            (200, br#"{"user_id":"@x:y"}"#, "answered 200"),
            (
                404,
                b"<html>Not Found</html>",
                "HTTP 404 without a Matrix error",
            ),
        ] {
            let s = decide(
                parse_register(code, body),
                Login::default(),
                None,
                not_asked(),
            );
            assert_eq!(s.status, SignupStatus::Unknown, "{code}");
            let e = s.error.expect("a reason");
            assert!(e.message.contains(says), "{code}: {}", e.message);
        }
    }

    #[test]
    fn support_keeps_contacts_that_name_someone_and_web_pages_only() {
        let s = parse_support(&json!({"contacts": [
            {"role": "m.role.admin", "matrix_id": "@admin:x.org"},
            {"role": "m.role.security", "email_address": "security@x.org"},
            {"role": "m.role.admin"}],
            "support_page": "https://x.org/help"}))
        .unwrap();
        assert_eq!(s.contacts.len(), 2);
        assert_eq!(s.page.as_deref(), Some("https://x.org/help"));
        assert_eq!(
            parse_support(&json!({"support_page": "javascript:x"})),
            None
        );
        assert_eq!(parse_support(&json!({"contacts": "nobody"})), None);
    }
}
