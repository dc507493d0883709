//! How numbers are written for people: one rule for the status page, badges, chart, feed and
//! `mxping check`. A latency is rounded to the places shown (half away from zero); a value
//! that would round below the smallest unit shown is written "< 1 ms" (or "< 0.1 ms"), never
//! "0 ms", so a fast server does not look like a broken measurement. The JSON API and the
//! metrics carry the numbers themselves (milliseconds to the microsecond, seconds).

/// How finely a latency is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Places {
    /// Whole milliseconds: the page, badges, chart, feed.
    Whole,
    /// Tenths of a millisecond: `mxping check`, where operators compare phases.
    Tenth,
}

/// `v` milliseconds as a number without the unit: "42", "< 1"; "41.7", "< 0.1".
/// A ratio as a percentage, never rounded up to 100 % ("–" for none).
pub(crate) fn percent(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(r) if r >= 1.0 => "100%".to_owned(),
        Some(r) => format!("{:.2}%", (r * 100.0 * 100.0).floor() / 100.0),
    }
}

pub(crate) fn ms_number(v: f64, places: Places) -> String {
    let (digits, unit) = match places {
        Places::Whole => (0, 1.0),
        Places::Tenth => (1, 0.1),
    };
    if v == 0.0 {
        return "0".to_owned();
    }
    if v.abs() < unit {
        return format!("< {unit}");
    }
    let scale = 10f64.powi(digits);
    // f64::round rounds half away from zero; `format!` alone would round ties to even.
    format!("{:.*}", digits as usize, (v * scale).round() / scale)
}

/// `v` milliseconds with the unit: "42 ms", "< 1 ms".
pub(crate) fn ms(v: f64, places: Places) -> String {
    format!("{} ms", ms_number(v, places))
}

/// A duration in milliseconds, rounded to the microsecond: how the JSON contract writes times.
pub(crate) fn duration_ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_place_a_latency_is_written() {
        let cases = [
            (0.0, "0", "0"),
            (0.04, "< 1", "< 0.1"),
            (0.6, "< 1", "0.6"),
            (0.999, "< 1", "1.0"),
            (1.0, "1", "1.0"),
            (2.5, "3", "2.5"),
            (41.75, "42", "41.8"),
            (250.5, "251", "250.5"),
            (1234.44, "1234", "1234.4"),
        ];
        for (v, whole, tenth) in cases {
            assert_eq!(ms_number(v, Places::Whole), whole, "{v}");
            assert_eq!(ms_number(v, Places::Tenth), tenth, "{v}");
        }
        assert_eq!(ms(0.3, Places::Whole), "< 1 ms");
        assert_eq!(ms(12.0, Places::Tenth), "12.0 ms");
    }
}
