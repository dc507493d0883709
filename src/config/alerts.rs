//! `[[alert]]` (Matrix rooms and webhooks) and the vantage settings (`[hub]`, `[[vantage]]`),
//! checked as thoroughly as the rest of the file. A secret is never written in the config: the
//! problem names the file or variable to use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::problems::Problems;
use super::raw::{RawAlert, RawHub, RawVantage};
use super::{AlertConfig, AlertTarget, HubConfig, MatrixRoom, Secret, VantageConfig};
use crate::status::Status;

/// The power level a member needs for the bot to obey its commands (moderators).
const DEFAULT_COMMAND_POWER: i64 = 50;

/// The longest `group_wait`: alerts never wait longer than this for others to join them.
const MAX_GROUP_WAIT: Duration = Duration::from_secs(600);

/// Keys that belong to one type only, for the "applies to" problem.
const MATRIX_ONLY: &[&str] = &[
    "homeserver",
    "access_token_file",
    "access_token_env",
    "room",
    "fallback_room",
    "fallback_homeserver",
    "fallback_access_token_file",
    "via",
    "group_wait",
    "commands",
    "command_power",
];
const WEBHOOK_ONLY: &[&str] = &["url", "secret_file"];

/// A required ed25519 key file (`[hub] key_file`, `[federation] key_file`): relative to the
/// config file, and readable as a key; `file` names the one `mxping keygen` would make.
pub(super) fn key_file(
    raw: Option<&Spanned<String>>,
    key: &str,
    file: &str,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Option<PathBuf> {
    let Some(v) = raw else {
        p.add(
            None,
            key,
            "is not set".into(),
            format!("create a key with `mxping keygen {file}` and write key_file = \"{file}\""),
        );
        return None;
    };
    let path = relative(base_dir, v.get_ref().trim());
    if let Err(e) = crate::signing::Key::read(&path) {
        p.add(
            Some(v.span()),
            key,
            e.to_string(),
            "create one with `mxping keygen FILE` (relative paths are relative to the config file)",
        );
    }
    Some(path)
}

/// The server names or globs of a `servers` list (`[[alert]]`, `[[maintenance]]`); each
/// entry that is not one is a problem, and left out.
pub(super) fn server_globs<'a>(
    list: impl Iterator<Item = &'a Spanned<String>>,
    key: &str,
    p: &mut Problems<'_>,
) -> Vec<Spanned<String>> {
    list.filter_map(|s| {
        let text = s.get_ref().trim();
        if text.is_empty() || text.contains(char::is_whitespace) {
            p.add(
                Some(s.span()),
                key,
                format!("{:?} is not a server name or glob", s.get_ref()),
                "write names as in [[server]] name, or globs such as \"*.example.org\"",
            );
            return None;
        }
        Some(Spanned::new(s.span(), text.to_owned()))
    })
    .collect()
}

fn relative(base_dir: Option<&Path>, text: &str) -> PathBuf {
    match base_dir {
        Some(dir) if Path::new(text).is_relative() => dir.join(text),
        _ => PathBuf::from(text),
    }
}

pub(super) fn validate_alerts(
    raw: &[RawAlert],
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Vec<AlertConfig> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, a)| validate_alert(i + 1, a, base_dir, p))
        .collect()
}

/// The value of a key each of its type must have: a problem when it is missing.
fn required<'a>(
    value: &'a Option<Spanned<String>>,
    anchor: Option<std::ops::Range<usize>>,
    key: &str,
    fix: &str,
    p: &mut Problems<'_>,
) -> Option<&'a Spanned<String>> {
    if value.is_none() {
        p.add(anchor, key, "is not set".into(), fix);
    }
    value.as_ref()
}

/// Where a missing key's problem points: the entry's `type` line.
fn anchor(a: &RawAlert) -> Option<std::ops::Range<usize>> {
    a.kind.as_ref().map(Spanned::span)
}

fn validate_alert(
    n: usize,
    a: &RawAlert,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Option<AlertConfig> {
    let key = |field: &str| format!("[[alert]] #{n} {field}");
    let set: Vec<(&str, Option<std::ops::Range<usize>>)> = [
        ("homeserver", a.homeserver.as_ref().map(Spanned::span)),
        (
            "access_token_file",
            a.access_token_file.as_ref().map(Spanned::span),
        ),
        (
            "access_token_env",
            a.access_token_env.as_ref().map(Spanned::span),
        ),
        ("room", a.room.as_ref().map(Spanned::span)),
        ("fallback_room", a.fallback_room.as_ref().map(Spanned::span)),
        (
            "fallback_homeserver",
            a.fallback_homeserver.as_ref().map(Spanned::span),
        ),
        (
            "fallback_access_token_file",
            a.fallback_access_token_file.as_ref().map(Spanned::span),
        ),
        ("url", a.url.as_ref().map(Spanned::span)),
        ("secret_file", a.secret_file.as_ref().map(Spanned::span)),
        (
            "via",
            a.via.as_ref().and_then(|v| v.first()).map(Spanned::span),
        ),
        ("group_wait", a.group_wait.as_ref().map(Spanned::span)),
        ("commands", a.commands.as_ref().map(Spanned::span)),
        ("command_power", a.command_power.as_ref().map(Spanned::span)),
    ]
    .into_iter()
    .filter_map(|(k, span)| span.map(|s| (k, Some(s))))
    .collect();
    let misplaced = |only: &[&str], kind: &str, p: &mut Problems<'_>| {
        for (k, span) in &set {
            if only.contains(k) {
                p.add(
                    span.clone(),
                    &key(k),
                    format!("applies to type = \"{kind}\" only"),
                    format!("remove {k} from this [[alert]], or make it type = \"{kind}\""),
                );
            }
        }
    };
    let target = match a.kind.as_ref().map(|k| (k, k.get_ref().trim())) {
        Some((_, "matrix")) => {
            misplaced(WEBHOOK_ONLY, "webhook", p);
            matrix_target(&key, a, base_dir, p)
        }
        Some((_, "webhook")) => {
            misplaced(MATRIX_ONLY, "matrix", p);
            webhook_target(&key, a, base_dir, p)
        }
        Some((k, other)) => {
            p.add(
                Some(k.span()),
                &key("type"),
                format!("{other:?} is not an alert type"),
                "write type = \"matrix\" (a Matrix room) or type = \"webhook\" (an HTTP POST)",
            );
            None
        }
        None => {
            p.add(
                None,
                &key("type"),
                "is not set".into(),
                "add type = \"matrix\" (a Matrix room) or type = \"webhook\" (an HTTP POST)",
            );
            None
        }
    };
    let servers = server_globs(a.servers.iter().flatten(), &key("servers"), p);
    let on = match &a.on {
        None => vec![Status::Red, Status::Green],
        Some(list) if list.get_ref().is_empty() => {
            p.add(
                Some(list.span()),
                &key("on"),
                "is empty, so nothing would ever alert".into(),
                "write on = [\"red\", \"green\"] (down and recovered), or remove the [[alert]]",
            );
            Vec::new()
        }
        Some(list) => list
            .get_ref()
            .iter()
            .filter_map(|w| match Status::parse(w.get_ref().trim()) {
                Some(Status::Maintenance) => {
                    p.add(
                        Some(w.span()),
                        &key("on"),
                        "\"maintenance\" is always announced".into(),
                        "remove it: a maintenance window's start and end go to every channel that covers the server",
                    );
                    None
                }
                Some(s) if s != Status::Unknown => Some(s),
                _ => {
                    p.add(
                        Some(w.span()),
                        &key("on"),
                        format!("{:?} is not a status that can alert", w.get_ref()),
                        "use \"red\" (down), \"yellow\" (degraded) and \"green\" (recovered)",
                    );
                    None
                }
            })
            .collect(),
    };
    let language = match &a.language {
        None => "en".to_owned(),
        Some(l) => {
            let code = l.get_ref().trim();
            if crate::i18n::find(code).is_none() {
                p.add(
                    Some(l.span()),
                    &key("language"),
                    format!("{code:?} is not a language mxping speaks"),
                    format!("use one of {}", crate::i18n::codes().join(", ")),
                );
            }
            code.to_owned()
        }
    };
    let target = target?;
    let group_wait = match (&target, &a.group_wait) {
        (AlertTarget::Webhook { .. }, _) => Duration::ZERO,
        (AlertTarget::Matrix { .. }, None) => super::DEFAULT_GROUP_WAIT,
        (AlertTarget::Matrix { .. }, Some(v)) => {
            match humantime::parse_duration(v.get_ref().trim()) {
                Ok(d) if d <= MAX_GROUP_WAIT => d,
                Ok(_) => {
                    p.add(
                        Some(v.span()),
                        &key("group_wait"),
                        format!(
                            "{:?} is longer than 10 minutes, so alerts would wait that long",
                            v.get_ref()
                        ),
                        "use the default \"30s\", or \"0s\" for one message per change",
                    );
                    super::DEFAULT_GROUP_WAIT
                }
                Err(e) => {
                    p.add(
                        Some(v.span()),
                        &key("group_wait"),
                        format!("{:?} is not a duration ({e})", v.get_ref()),
                        "write a duration such as \"30s\", or \"0s\" for one message per change",
                    );
                    super::DEFAULT_GROUP_WAIT
                }
            }
        }
    };
    let commands = a.commands.as_ref().is_some_and(|c| *c.get_ref());
    let command_power = match &a.command_power {
        Some(v) if !(0..=1_000_000).contains(v.get_ref()) => {
            p.add(
                Some(v.span()),
                &key("command_power"),
                format!("{} is not a power level", v.get_ref()),
                "use a room power level from 0 to 100 (50: moderators, 100: admins)",
            );
            None
        }
        Some(v) if !commands => {
            p.add(
                Some(v.span()),
                &key("command_power"),
                "is set but commands are off".into(),
                "add commands = true to obey commands in the room, or remove command_power",
            );
            None
        }
        Some(v) => Some(*v.get_ref()),
        None => commands.then_some(DEFAULT_COMMAND_POWER),
    };
    let monthly_report = match &a.report {
        None => false,
        Some(r) if r.get_ref().trim() == "monthly" => true,
        Some(r) => {
            p.add(
                Some(r.span()),
                &key("report"),
                format!("{:?} is not a report this channel can get", r.get_ref()),
                "write report = \"monthly\" (the last month's uptime, incidents and maintenance, on the 1st), or remove it",
            );
            false
        }
    };
    Some(AlertConfig {
        target,
        servers: servers.into_iter().map(Spanned::into_inner).collect(),
        on,
        language,
        group_wait,
        command_power: if commands { command_power } else { None },
        monthly_report,
    })
}

/// A client API base URL: https, or plain http to this machine only (a token must not cross
/// a network in the clear).
fn homeserver_url(v: &Spanned<String>, key: &str, p: &mut Problems<'_>) -> String {
    let text = v.get_ref().trim().trim_end_matches('/');
    let fix = "write the homeserver's client API address, e.g. \"https://matrix.example.org\"";
    match url::Url::parse(text) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => {}
        Ok(u) if u.scheme() == "http" => {
            plain_http_only_here(&u, v, key, "the access token", p);
        }
        _ => p.add(
            Some(v.span()),
            key,
            format!("{text:?} is not an http(s) URL"),
            fix,
        ),
    }
    text.to_owned()
}

/// A problem unless plain-http `u` names this machine (localhost, 127.0.0.0/8, ::1): over
/// any other network, `what` would travel in the clear.
fn plain_http_only_here(
    u: &url::Url,
    v: &Spanned<String>,
    key: &str,
    what: &str,
    p: &mut Problems<'_>,
) {
    let local = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !local {
        p.add(
            Some(v.span()),
            key,
            format!(
                "{:?} is plain http to another machine, which would send {what} in the clear",
                v.get_ref().trim()
            ),
            "use https (plain http is accepted for localhost and 127.0.0.0/8 only)",
        );
    }
}

fn room_id(v: &Spanned<String>, key: &str, p: &mut Problems<'_>) -> String {
    let text = v.get_ref().trim();
    if !valid_room(text) {
        p.add(
            Some(v.span()),
            key,
            format!("{text:?} is not a room ID or alias"),
            "write the room's ID as Element shows it in Settings → Advanced (\"!abc123:example.org\", \
             or \"!XYZ…\" with no server part for rooms of version 12), or an alias such as \
             \"#alerts:example.org\"",
        );
    }
    text.to_owned()
}

/// A room ID or alias: `#local:server`; `!opaque:server`; or, since room version 12, `!opaque`
/// alone (the ID is the create event's hash and names no server). No whitespace anywhere.
fn valid_room(text: &str) -> bool {
    if text.contains(char::is_whitespace) {
        return false;
    }
    match (text.chars().next(), text.split_once(':')) {
        (Some('#'), Some((local, server))) => local.len() > 1 && !server.is_empty(),
        (Some('!'), Some((local, server))) => local.len() > 1 && !server.is_empty(),
        (Some('!'), None) => text.len() > 1,
        _ => false,
    }
}

/// `via`: server names to join through.
fn via(a: &RawAlert, key: &str, p: &mut Problems<'_>) -> Vec<String> {
    a.via
        .iter()
        .flatten()
        .filter_map(|v| {
            let text = v.get_ref().trim();
            match crate::server_name::ServerName::parse(text) {
                Ok(_) => Some(text.to_owned()),
                Err(e) => {
                    p.add(
                        Some(v.span()),
                        key,
                        format!("{text:?} is not a server name ({e})"),
                        "list servers that are in the room, e.g. via = [\"example.org\"]",
                    );
                    None
                }
            }
        })
        .collect()
}

/// The servers to join `room` through: the server its alias or ID names, then `extra`.
fn join_via(room: &str, extra: &[String]) -> Vec<String> {
    let mut via: Vec<String> = room
        .split_once(':')
        .map(|(_, server)| server.to_owned())
        .into_iter()
        .collect();
    for s in extra {
        if !via.contains(s) {
            via.push(s.clone());
        }
    }
    via
}

/// A secret from a file or a variable, checked now so `mxping validate` finds it missing.
fn secret(
    file: Option<&Spanned<String>>,
    env: Option<&Spanned<String>>,
    (file_key, env_key): (&str, &str),
    anchor: Option<std::ops::Range<usize>>,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Option<Secret> {
    let (secret, span, key) = match (file, env) {
        (Some(f), None) => (
            Secret::File(relative(base_dir, f.get_ref().trim())),
            f.span(),
            file_key,
        ),
        (None, Some(e)) => (
            Secret::Env(e.get_ref().trim().to_owned()),
            e.span(),
            env_key,
        ),
        (Some(_), Some(e)) => {
            p.add(
                Some(e.span()),
                env_key,
                "is set together with the file".into(),
                "keep one: the token's file or its environment variable",
            );
            return None;
        }
        (None, None) => {
            p.add(
                anchor,
                file_key,
                "is not set".into(),
                "put the bot's access token in a file only mxping can read and name it here, \
                 e.g. access_token_file = \"/etc/mxping/bot.token\" (or use access_token_env); \
                 never write the token in the config",
            );
            return None;
        }
    };
    if let Err(e) = secret.read() {
        let fix = match &secret {
            Secret::File(_) => {
                "create it with the token alone in it (relative paths are relative to the config file)"
            }
            Secret::Env(_) => {
                "set the variable in mxping's environment (systemd: Environment= or EnvironmentFile=; containers: -e or env_file)"
            }
        };
        p.add(Some(span), key, e.to_string(), fix);
    }
    Some(secret)
}

fn matrix_target(
    key: &dyn Fn(&str) -> String,
    a: &RawAlert,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Option<AlertTarget> {
    let fix_hs = "add homeserver = \"https://matrix.example.org\" (the bot's client API address)";
    let homeserver = required(&a.homeserver, anchor(a), &key("homeserver"), fix_hs, p)
        .map(|v| homeserver_url(v, &key("homeserver"), p));
    let room = required(
        &a.room,
        anchor(a),
        &key("room"),
        "add room = \"#alerts:example.org\" (an alias) or a room ID \"!…:example.org\"",
        p,
    )
    .map(|v| room_id(v, &key("room"), p));
    let token = secret(
        a.access_token_file.as_ref(),
        a.access_token_env.as_ref(),
        (&key("access_token_file"), &key("access_token_env")),
        anchor(a),
        base_dir,
        p,
    );
    let extra_via = via(a, &key("via"), p);
    let fallback = match (
        &a.fallback_room,
        &a.fallback_homeserver,
        &a.fallback_access_token_file,
    ) {
        (None, None, None) => None,
        (None, Some(v), _) | (None, None, Some(v)) => {
            p.add(
                Some(v.span()),
                &key("fallback_room"),
                "is not set, but other fallback keys are".into(),
                "add fallback_room = \"#alerts:other.example\", or remove the fallback keys",
            );
            None
        }
        (Some(room), hs, file) => {
            let room = room_id(room, &key("fallback_room"), p);
            let main = homeserver.clone().unwrap_or_default();
            let homeserver = match hs {
                Some(v) => homeserver_url(v, &key("fallback_homeserver"), p),
                None => main.clone(),
            };
            if let (Some(v), None) = (hs, file)
                && homeserver != main
            {
                // The main token is a credential for the main homeserver: sent to another
                // one, it would hand that server's operator the bot's account.
                p.add(
                    Some(v.span()),
                    &key("fallback_access_token_file"),
                    "is not set, and the fallback is on another homeserver: mxping would send it \
                     the main homeserver's access token"
                        .into(),
                    "log the bot (or a second bot) in on the fallback homeserver and put that \
                     token in a file: fallback_access_token_file = \"/etc/mxping/fallback.token\"",
                );
            }
            let token = match file {
                Some(f) => secret(
                    Some(f),
                    None,
                    (&key("fallback_access_token_file"), ""),
                    None,
                    base_dir,
                    p,
                ),
                None => token.clone(),
            };
            token.map(|token| MatrixRoom {
                homeserver,
                token,
                via: join_via(&room, &extra_via),
                room,
            })
        }
    };
    Some(AlertTarget::Matrix {
        room: {
            let room = room?;
            MatrixRoom {
                homeserver: homeserver?,
                token: token?,
                via: join_via(&room, &extra_via),
                room,
            }
        },
        fallback,
    })
}

fn webhook_target(
    key: &dyn Fn(&str) -> String,
    a: &RawAlert,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Option<AlertTarget> {
    let url = required(
        &a.url,
        anchor(a),
        &key("url"),
        "add url = \"https://hooks.example.org/mxping\" (where the JSON is POSTed)",
        p,
    )
    .and_then(|v| {
        let url = super::validate::http_url(
            v,
            &key("url"),
            "write the receiver's full address, e.g. \"https://hooks.example.org/mxping\"",
            p,
        )?;
        if let Ok(u) = url::Url::parse(&url)
            && u.scheme() == "http"
        {
            plain_http_only_here(&u, v, &key("url"), "every alert", p);
        }
        Some(url)
    });
    let secret_file = match &a.secret_file {
        None => {
            p.add(
                anchor(a),
                &key("secret_file"),
                "is not set".into(),
                "add secret_file = \"/etc/mxping/webhook.secret\": every POST is signed with it \
                 (HMAC-SHA256), so the receiver can tell it came from mxping",
            );
            None
        }
        Some(f) => {
            let path = relative(base_dir, f.get_ref().trim());
            if let Err(e) = super::read_webhook_secret(&path) {
                p.add(
                    Some(f.span()),
                    &key("secret_file"),
                    e.to_string(),
                    "create it with a long random secret alone in it, e.g. `openssl rand -hex 32 > webhook.secret`",
                );
            }
            Some(path)
        }
    };
    Some(AlertTarget::Webhook {
        url: url?,
        secret_file: secret_file?,
    })
}

/// `[hub]`: an agent needs the hub's URL, a readable key file and its own `[web] vantage`.
pub(super) fn validate_hub(
    raw: Option<&RawHub>,
    has_vantage_name: bool,
    base_dir: Option<&Path>,
    p: &mut Problems<'_>,
) -> Option<HubConfig> {
    let raw = raw?;
    let url = match &raw.url {
        None => {
            p.add(
                None,
                "[hub] url",
                "is not set".into(),
                "write the hub's web address, e.g. url = \"https://status.example.org\"",
            );
            None
        }
        // A base address: the report path is appended.
        Some(v) => super::validate::http_url(
            v,
            "[hub] url",
            "write the hub's web address, e.g. url = \"https://status.example.org\"",
            p,
        )
        .map(|u| u.trim_end_matches('/').to_owned()),
    };
    let key_file = key_file(
        raw.key_file.as_ref(),
        "[hub] key_file",
        "vantage.key",
        base_dir,
        p,
    );
    if !has_vantage_name {
        p.add(
            raw.url.as_ref().map(Spanned::span),
            "[web] vantage",
            "is not set, and an agent reports under its vantage name".into(),
            "name this location in [web], e.g. vantage = \"asia\" (the hub lists the same name)",
        );
    }
    Some(HubConfig {
        url: url?,
        key_file: key_file?,
    })
}

/// `[[vantage]]`: distinct names and valid public keys.
pub(super) fn validate_vantages(raw: &[RawVantage], p: &mut Problems<'_>) -> Vec<VantageConfig> {
    let mut out: Vec<VantageConfig> = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        let key = |field: &str| format!("[[vantage]] #{} {field}", i + 1);
        let Some(name) = &v.name else {
            p.add(
                None,
                &key("name"),
                "is not set".into(),
                "write the agent's [web] vantage, e.g. name = \"asia\"",
            );
            continue;
        };
        let text = name.get_ref().trim();
        if text.is_empty() || text.chars().count() > 64 || text.contains(['"', ',']) {
            p.add(
                Some(name.span()),
                &key("name"),
                format!("{text:?} must be 1 to 64 characters, without quotes or commas"),
                "use the agent's [web] vantage, e.g. name = \"asia\"",
            );
            continue;
        }
        if out.iter().any(|o| o.name == text) {
            p.add(
                Some(name.span()),
                &key("name"),
                format!("{text:?} is listed twice"),
                "give each agent its own name",
            );
            continue;
        }
        let Some(public) = &v.public_key else {
            p.add(
                Some(name.span()),
                &key("public_key"),
                "is not set".into(),
                "paste the public key `mxping keygen` printed on the agent",
            );
            continue;
        };
        if let Err(e) = crate::signing::parse_public_key(public.get_ref()) {
            p.add(
                Some(public.span()),
                &key("public_key"),
                format!("{:?} is {e}", public.get_ref()),
                "paste the public key `mxping keygen` printed on the agent (43 characters of base64)",
            );
            continue;
        }
        out.push(VantageConfig {
            name: text.to_owned(),
            public_key: public.get_ref().trim().to_owned(),
        });
    }
    out
}
