//! Interface languages. Every `locales/<code>.toml` is compiled in (see build.rs), so adding a
//! language is one file. The language is chosen by `?lang=`, then the `mxping_lang` cookie the
//! switch sets, then `Accept-Language`; English is the fallback for anything missing.

use std::collections::HashMap;
use std::sync::OnceLock;

use time::OffsetDateTime;
use time::format_description::OwnedFormatItem;

use crate::error::ErrorKind;
use crate::numbers::{Places, ms_number};
use crate::status::{Outcome, Reason, Status};

include!(concat!(env!("OUT_DIR"), "/locales.rs"));

/// The cookie that remembers the chosen language.
pub(crate) const COOKIE: &str = "mxping_lang";

/// One interface language.
pub struct Locale {
    /// The code, e.g. `en` or `zh`.
    pub code: String,
    /// The language's own name, for the switch.
    pub name: String,
    messages: HashMap<String, String>,
    datetime: OwnedFormatItem,
    date: OwnedFormatItem,
    month: OwnedFormatItem,
}

fn parse(code: &str, text: &str) -> Locale {
    let table: toml::Table =
        toml::from_str(text).unwrap_or_else(|e| panic!("locales/{code}.toml: {e}"));
    let messages: HashMap<String, String> = table
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
        .collect();
    let format = |key: &str| {
        let f = messages
            .get(key)
            .unwrap_or_else(|| panic!("locales/{code}.toml: no {key}"));
        time::format_description::parse_owned::<2>(f)
            .unwrap_or_else(|e| panic!("locales/{code}.toml: {key}: {e}"))
    };
    Locale {
        code: code.to_owned(),
        name: messages
            .get("language_name")
            .cloned()
            .unwrap_or_else(|| code.to_owned()),
        datetime: format("datetime_format"),
        date: format("date_format"),
        month: format("month_format"),
        messages,
    }
}

/// Every language, English first.
pub(crate) fn locales() -> &'static [Locale] {
    static ALL: OnceLock<Vec<Locale>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<Locale> = LOCALE_FILES
            .iter()
            .map(|(code, text)| parse(code, text))
            .collect();
        all.sort_by_key(|l| (l.code != "en", l.code.clone()));
        all
    })
}

/// The codes of every language.
pub(crate) fn codes() -> Vec<&'static str> {
    locales().iter().map(|l| l.code.as_str()).collect()
}

/// English, the fallback (and the language of the command line).
pub(crate) fn english() -> &'static Locale {
    &locales()[0]
}

/// The language with `code` (case-insensitive, or its primary subtag), if there is one.
pub fn find(code: &str) -> Option<&'static Locale> {
    let code = code.trim().to_ascii_lowercase();
    let primary = code.split(['-', '_']).next().unwrap_or("");
    locales()
        .iter()
        .find(|l| l.code.to_ascii_lowercase() == code)
        .or_else(|| {
            locales()
                .iter()
                .find(|l| l.code.to_ascii_lowercase() == primary)
        })
}

/// The language for a request.
pub(crate) fn negotiate(
    query: Option<&str>,
    cookie: Option<&str>,
    accept_language: Option<&str>,
) -> &'static Locale {
    if let Some(l) = query.and_then(find).or_else(|| cookie.and_then(find)) {
        return l;
    }
    if let Some(header) = accept_language {
        let mut ranges: Vec<(f32, &str)> = header
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let tag = it.next()?.trim();
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(1.0);
                (!tag.is_empty() && q > 0.0).then_some((q, tag))
            })
            .collect();
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some(l) = ranges.iter().find_map(|(_, tag)| find(tag)) {
            return l;
        }
    }
    english()
}

/// A message of `locales/en.toml`: only the constants in [`key`] (written by `build.rs` from
/// that file) make one, so a key that does not exist does not compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(&'static str);

impl Key {
    /// The key as the locale files write it.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

/// Every message key of `locales/en.toml`, as a constant (`key::STATUS_GREEN`). Keys the code
/// composes by name (`finding_*`, `signup_means_*`: see [`Locale::named`]) or that only the locale files
/// use have constants too, unused.
#[allow(dead_code)]
pub(crate) mod key {
    include!(concat!(env!("OUT_DIR"), "/locale_keys.rs"));
}

impl Locale {
    /// The message `key` (English if this language lacks it; English has every key).
    pub fn t(&self, key: Key) -> &str {
        self.named(key.0).unwrap_or(key.0)
    }

    /// The message named `name`, made at run time (`finding_{code}`), in this language or
    /// English; `None` when neither has it (the caller says what to show instead).
    pub fn named(&self, name: &str) -> Option<&str> {
        self.messages
            .get(name)
            .or_else(|| english().messages.get(name))
            .map(String::as_str)
    }

    /// The message `key` with `{name}` placeholders filled from `args`.
    pub fn f(&self, key: Key, args: &[(&str, &str)]) -> String {
        self.fill(self.t(key), args)
    }

    /// `text` with `{name}` placeholders filled from `args`.
    pub fn fill(&self, text: &str, args: &[(&str, &str)]) -> String {
        let mut out = text.to_owned();
        for (name, value) in args {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out
    }

    /// A date and time, in UTC, the way this language writes it.
    pub fn datetime(&self, t: OffsetDateTime) -> String {
        t.to_offset(time::UtcOffset::UTC)
            .format(&self.datetime)
            .unwrap_or_default()
    }

    /// A date, the way this language writes it.
    pub fn date(&self, t: OffsetDateTime) -> String {
        t.to_offset(time::UtcOffset::UTC)
            .format(&self.date)
            .unwrap_or_default()
    }

    /// A month and its year ("November 2026"), the way this language writes it.
    pub fn month(&self, t: OffsetDateTime) -> String {
        t.to_offset(time::UtcOffset::UTC)
            .format(&self.month)
            .unwrap_or_default()
    }

    /// The message keys this language defines.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.messages.keys().map(String::as_str)
    }
}

/// "14 min", "2 h 5 min", "3 d 4 h".
pub(crate) fn duration(t: &Locale, seconds: i64) -> String {
    let minutes = (seconds.max(0) + 30) / 60;
    let unit = |key: Key, n: i64| t.f(key, &[("n", &n.to_string())]);
    match minutes {
        m if m < 60 => unit(key::UNIT_MINUTES, m.max(1)),
        m if m < 24 * 60 => {
            let (h, m) = (m / 60, m % 60);
            if m == 0 {
                unit(key::UNIT_HOURS, h)
            } else {
                format!(
                    "{} {}",
                    unit(key::UNIT_HOURS, h),
                    unit(key::UNIT_MINUTES, m)
                )
            }
        }
        m => {
            let (d, h) = (m / (24 * 60), m % (24 * 60) / 60);
            if h == 0 {
                unit(key::UNIT_DAYS, d)
            } else {
                format!("{} {}", unit(key::UNIT_DAYS, d), unit(key::UNIT_HOURS, h))
            }
        }
    }
}

// Statuses, error kinds and reasons in words: the page, the feed and the alerts say them the
// same way.

pub(crate) fn status_word(t: &Locale, s: Status) -> &str {
    t.t(match s {
        Status::Green => key::STATUS_GREEN,
        Status::Yellow => key::STATUS_YELLOW,
        Status::Red => key::STATUS_RED,
        Status::Maintenance => key::STATUS_MAINTENANCE,
        Status::Unknown => key::STATUS_UNKNOWN,
    })
}

pub(crate) fn kind_text(t: &Locale, kind: Option<ErrorKind>) -> &str {
    match kind {
        Some(k) => t.t(match k {
            ErrorKind::InvalidName => key::KIND_INVALID_NAME,
            ErrorKind::Dns => key::KIND_DNS,
            ErrorKind::NoAddress => key::KIND_NO_ADDRESS,
            ErrorKind::BlockedAddress => key::KIND_BLOCKED_ADDRESS,
            ErrorKind::ServiceUnavailable => key::KIND_SERVICE_UNAVAILABLE,
            ErrorKind::ConnectRefused => key::KIND_CONNECT_REFUSED,
            ErrorKind::ConnectTimeout => key::KIND_CONNECT_TIMEOUT,
            ErrorKind::Connect => key::KIND_CONNECT,
            ErrorKind::TlsHandshake => key::KIND_TLS_HANDSHAKE,
            ErrorKind::TlsCertificate => key::KIND_TLS_CERTIFICATE,
            ErrorKind::Timeout => key::KIND_TIMEOUT,
            ErrorKind::HttpStatus => key::KIND_HTTP_STATUS,
            ErrorKind::InvalidResponse => key::KIND_INVALID_RESPONSE,
            ErrorKind::BodyTooLarge => key::KIND_BODY_TOO_LARGE,
        }),
        None => t.t(key::KIND_UNKNOWN),
    }
}

/// A reason in plain words in `t`'s language.
pub(crate) fn reason_words(t: &Locale, r: &Reason) -> String {
    let problem = kind_text(t, r.kind());
    match r {
        Reason::Failed { .. } => t.f(key::REASON_FAILED, &[("problem", problem)]),
        Reason::Partial {
            family, address, ..
        } => t.f(
            key::REASON_PARTIAL,
            &[
                ("family", family),
                ("address", address),
                ("problem", problem),
            ],
        ),
        Reason::Slow {
            latency_ms,
            threshold_ms,
        } => t.f(
            key::REASON_SLOW,
            &[
                ("latency", &ms_number(*latency_ms, Places::Whole)),
                ("threshold", &ms_number(*threshold_ms, Places::Whole)),
            ],
        ),
        Reason::Unconfirmed { failed, of, .. } => t.f(
            key::REASON_UNCONFIRMED,
            &[
                ("failed", &failed.to_string()),
                ("of", &of.to_string()),
                ("problem", problem),
            ],
        ),
        Reason::Down { failed, .. } => t.f(
            key::REASON_DOWN,
            &[("failed", &failed.to_string()), ("problem", problem)],
        ),
        Reason::Recovering { good, of } => t.f(
            key::REASON_RECOVERING,
            &[("good", &good.to_string()), ("of", &of.to_string())],
        ),
        Reason::NotChecked => t.t(key::REASON_NOT_CHECKED).to_owned(),
        Reason::Vantages {
            unreachable_from,
            reached,
            of,
        } => t.f(
            key::REASON_VANTAGES,
            &[
                ("vantages", &unreachable_from.join(t.t(key::LIST_SEP))),
                ("reached", &reached.to_string()),
                ("of", &of.to_string()),
            ],
        ),
        Reason::DegradedFrom { vantages } => t.f(
            key::REASON_DEGRADED_FROM,
            &[("vantages", &vantages.join(t.t(key::LIST_SEP)))],
        ),
        Reason::Maintenance { until, note } => {
            let until = OffsetDateTime::from_unix_timestamp(*until)
                .map_or_else(|_| until.to_string(), |u| t.datetime(u));
            if note.is_empty() {
                t.f(key::REASON_MAINTENANCE, &[("until", &until)])
            } else {
                t.f(
                    key::REASON_MAINTENANCE_NOTE,
                    &[("until", &until), ("note", note)],
                )
            }
        }
        // The server's own words are shown apart (the detail page), in their language.
        Reason::Outbound { outcome, .. } => t
            .t(match outcome {
                Outcome::CannotReachUs => key::REASON_OUTBOUND_CANNOT_REACH_US,
                Outcome::AllowList => key::REASON_OUTBOUND_ALLOW_LIST,
                Outcome::SignatureRefused => key::REASON_OUTBOUND_SIGNATURE_REFUSED,
                Outcome::BothWays | Outcome::Error => key::REASON_OUTBOUND_ERROR,
            })
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        let t = english();
        assert_eq!(duration(t, 14 * 60 + 10), "14 min");
        assert_eq!(duration(t, 5), "1 min");
        assert_eq!(duration(t, 2 * 3600 + 5 * 60), "2 h 5 min");
        assert_eq!(duration(t, 3 * 3600), "3 h");
        assert_eq!(duration(t, 3 * 86_400 + 4 * 3600), "3 d 4 h");
        let zh = find("zh").unwrap();
        assert_eq!(duration(zh, 14 * 60), "14 分钟");
    }

    /// A list of places in a reason is written as each language writes lists.
    #[test]
    fn vantages_in_a_reason_are_listed_the_language_s_way() {
        let r = Reason::Vantages {
            unreachable_from: vec!["北京".into(), "上海".into()],
            reached: 1,
            of: 3,
        };
        assert!(reason_words(find("zh").unwrap(), &r).starts_with("从 北京、上海 连不上"));
        assert!(reason_words(english(), &r).starts_with("unreachable from 北京, 上海 ("));
    }

    /// The words the glossary at the top of `locales/zh.toml` rejects (after "不用："), each
    /// with the line that rejects it.
    fn rejected_words(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for line in text.lines().take_while(|l| l.starts_with('#')) {
            let Some((_, rejected)) = line.split_once("不用：") else {
                continue;
            };
            for word in rejected.split('、') {
                // "异常（作状态时）": the word before a note.
                let word = word.split('（').next().unwrap_or("").trim();
                if !word.is_empty() {
                    out.push((word.to_owned(), line.trim().to_owned()));
                }
            }
        }
        out
    }

    /// One word per idea: no Chinese string uses a synonym the glossary rejects.
    #[test]
    fn chinese_strings_follow_the_glossary() {
        let (_, text) = LOCALE_FILES
            .iter()
            .find(|(code, _)| *code == "zh")
            .expect("a Chinese locale");
        let rejected = rejected_words(text);
        assert!(
            rejected.iter().any(|(w, _)| w == "观测点")
                && rejected.iter().any(|(w, _)| w == "毫秒"),
            "the glossary is read: {rejected:?}"
        );
        let zh = find("zh").unwrap();
        let mut found = Vec::new();
        for (key, value) in &zh.messages {
            for (word, line) in &rejected {
                if value.contains(word.as_str()) {
                    found.push(format!("{key} uses {word} ({line}): {value}"));
                }
            }
        }
        assert!(found.is_empty(), "{}", found.join("\n"));
    }

    /// Keys made at run time are checked here, as the constants are by the compiler.
    #[test]
    fn every_finding_code_has_a_message() {
        for code in crate::discovery::FINDING_CODES {
            assert!(
                english().named(&format!("finding_{code}")).is_some(),
                "finding_{code}"
            );
        }
    }

    #[test]
    fn every_signup_status_has_a_meaning() {
        for status in crate::probe::signup::SignupStatus::ALL {
            let name = format!("signup_means_{}", status.as_str());
            assert!(english().named(&name).is_some(), "{name}");
        }
    }

    #[test]
    fn a_key_constant_is_its_name_in_the_file() {
        assert_eq!(key::STATUS_GREEN.name(), "status_green");
        assert_eq!(english().t(key::STATUS_GREEN), "operational");
        assert_eq!(english().named("no_such_message"), None);
    }

    fn placeholders(s: &str) -> Vec<&str> {
        let mut v: Vec<&str> = s
            .split('{')
            .skip(1)
            .filter_map(|p| p.split('}').next())
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn every_translated_finding_has_its_text() {
        for code in crate::discovery::FINDING_CODES {
            let key = format!("finding_{code}");
            for l in locales() {
                assert!(l.messages.contains_key(&key), "{} lacks {key}", l.code);
            }
        }
    }

    #[test]
    fn every_language_translates_every_message_with_the_same_placeholders() {
        let en = english();
        assert_eq!(en.code, "en");
        assert!(codes().contains(&"zh"));
        for l in locales() {
            let mut missing: Vec<&str> =
                en.keys().filter(|k| !l.messages.contains_key(*k)).collect();
            missing.sort_unstable();
            assert!(missing.is_empty(), "{} lacks {missing:?}", l.code);
            let mut extra: Vec<&str> = l.keys().filter(|k| !en.messages.contains_key(*k)).collect();
            extra.sort_unstable();
            assert!(extra.is_empty(), "{} has unknown keys {extra:?}", l.code);
            for k in en.keys().filter(|k| !k.ends_with("_format")) {
                assert_eq!(
                    placeholders(l.named(k).unwrap()),
                    placeholders(en.named(k).unwrap()),
                    "{}: {k}",
                    l.code
                );
            }
        }
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None, None, None).code, "en");
        assert_eq!(
            negotiate(None, None, Some("zh-CN,zh;q=0.9,en;q=0.8")).code,
            "zh"
        );
        assert_eq!(negotiate(None, None, Some("en-GB,zh;q=0.5")).code, "en");
        assert_eq!(
            negotiate(None, None, Some("fr;q=0.9, zh-Hans;q=0.8")).code,
            "zh"
        );
        assert_eq!(negotiate(None, None, Some("de")).code, "en");
        assert_eq!(
            negotiate(None, Some("zh"), Some("en")).code,
            "zh",
            "the remembered choice wins"
        );
        assert_eq!(
            negotiate(Some("en"), Some("zh"), None).code,
            "en",
            "an explicit switch wins"
        );
        assert_eq!(negotiate(Some("xx"), None, Some("zh")).code, "zh");
    }

    #[test]
    fn messages_and_dates() {
        let zh = find("zh").unwrap();
        assert_eq!(
            zh.f(key::SUMMARY, &[("ok", "4"), ("total", "5")]),
            "5 个服务器中 4 个运行正常"
        );
        let t = time::macros::datetime!(2026-11-28 05:07 UTC);
        assert_eq!(zh.datetime(t), "2026年11月28日 05:07 UTC");
        assert_eq!(find("en").unwrap().datetime(t), "28 Nov 2026, 05:07 UTC");
        assert_eq!(zh.named("no_such_key"), None);
    }
}
