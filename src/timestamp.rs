//! Wall-clock timestamps as RFC 3339 in UTC at whole seconds (`2026-11-28T05:00:00Z`), the
//! form used in the JSON contract and everywhere a person reads a date.

use serde::Serializer;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `t` in UTC, whole seconds, RFC 3339.
pub(crate) fn format(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .expect("0 is a valid nanosecond")
        .format(&Rfc3339)
        .expect("every UTC date formats as RFC 3339")
}

/// For `#[serde(serialize_with)]`.
pub(crate) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*t))
}

/// For `#[serde(serialize_with)]` on an `Option`.
pub(crate) fn serialize_option<S: Serializer>(
    t: &Option<OffsetDateTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format(*t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_in_utc() {
        let t = time::macros::datetime!(2026-11-28 06:00:00.123456 +01:00);
        assert_eq!(format(t), "2026-11-28T05:00:00Z");
    }
}
