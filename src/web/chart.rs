//! The 24-hour latency chart, rendered server-side as SVG (works without JavaScript).

use std::fmt::Write as _;

const W: f64 = 720.0;
const H: f64 = 200.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

/// An SVG line chart of `points` (Unix seconds, ms) over the 24 h ending at `now`, with a
/// dashed line at `threshold_ms`. Only numbers go into the markup.
pub(super) fn latency_svg(
    points: &[(i64, f64)],
    now: i64,
    threshold_ms: f64,
    no_data: &str,
) -> String {
    let start = now - 86_400;
    let max_point = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let y_max = nice_ceiling(max_point.max(threshold_ms * 1.25));
    let x = |t: i64| LEFT + (t - start) as f64 / 86_400.0 * (W - LEFT - 4.0);
    let y = |ms: f64| TOP + (1.0 - (ms / y_max).min(1.0)) * (H - TOP - BOTTOM);
    let mut svg = String::with_capacity(4096);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="Latency over the last 24 hours">"#
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let yy = y(v);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text>"#,
            W - 4.0,
            LEFT - 6.0,
            yy + 4.0,
            v.round()
        );
    }
    for h in [24, 18, 12, 6, 0] {
        let xx = x(now - h * 3600);
        let label = if h == 0 {
            "0 h".to_owned()
        } else {
            format!("−{h} h")
        };
        let _ = write!(
            svg,
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            H - 6.0
        );
    }
    let ty = y(threshold_ms);
    let _ = write!(
        svg,
        r#"<line class="threshold" x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}"/>"#,
        W - 4.0
    );
    if points.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            W / 2.0,
            H / 2.0,
            escape(no_data)
        );
    } else {
        // Gaps longer than 15 minutes (outages, no data) break the line.
        let mut path = String::new();
        let mut prev: Option<i64> = None;
        for (t, ms) in points {
            let cmd = if prev.is_none_or(|p| t - p > 900) {
                'M'
            } else {
                'L'
            };
            let _ = write!(path, "{cmd}{:.1},{:.1} ", x(*t), y(*ms));
            prev = Some(*t);
        }
        let _ = write!(svg, r#"<path class="line" d="{}"/>"#, path.trim_end());
        // A point with no neighbour (a lone 5-minute slot) would not show as a line.
        for (i, (t, ms)) in points.iter().enumerate() {
            let before = i
                .checked_sub(1)
                .map(|j| points[j].0)
                .is_some_and(|p| t - p <= 900);
            let after = points.get(i + 1).is_some_and(|n| n.0 - t <= 900);
            if !before && !after {
                let _ = write!(
                    svg,
                    r#"<circle class="dot" cx="{:.1}" cy="{:.1}" r="3"/>"#,
                    x(*t),
                    y(*ms)
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Text for SVG: markup characters escaped.
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One cell of the 90-day bar: the day's label and uptime (`None`: no data).
pub(super) struct Day {
    pub(super) label: String,
    pub(super) uptime: Option<f64>,
}

/// The 90-day uptime bar: one cell per day, coloured by uptime, each with a tooltip; runs of
/// days without data are one grey cell, to keep the page small.
pub(super) fn uptime_bar(days: &[Day], label: &str) -> String {
    let mut svg = String::with_capacity(days.len() * 64);
    let _ = write!(
        svg,
        r#"<svg class="bar" viewBox="0 0 {} 14" preserveAspectRatio="none" role="img" aria-label="{}">"#,
        days.len() * 3,
        escape(label)
    );
    let mut i = 0;
    while i < days.len() {
        let d = &days[i];
        let class = match d.uptime {
            None => "n",
            Some(u) if u >= 0.999 => "g",
            Some(u) if u >= 0.99 => "y",
            Some(_) => "r",
        };
        let mut end = i + 1;
        if d.uptime.is_none() {
            while end < days.len() && days[end].uptime.is_none() {
                end += 1;
            }
        }
        let width = (end - i) * 3 - 1;
        let _ = write!(
            svg,
            r#"<rect x="{}" width="{width}" height="14" class="{class}"><title>{}</title></rect>"#,
            i * 3,
            escape(&d.label)
        );
        i = end;
    }
    svg.push_str("</svg>");
    svg
}

/// A 24-hour latency sparkline (ms per 5 minutes).
pub(super) fn sparkline(points: &[(i64, f64)], now: i64, label: &str) -> String {
    const SW: f64 = 120.0;
    const SH: f64 = 22.0;
    let start = now - 86_400;
    let max = points.iter().map(|p| p.1).fold(1.0, f64::max);
    let mut path = String::new();
    let mut prev: Option<i64> = None;
    for (t, ms) in points {
        let x = (t - start) as f64 / 86_400.0 * SW;
        let y = 1.0 + (1.0 - ms / max) * (SH - 2.0);
        let cmd = if prev.is_none_or(|p| t - p > 900) {
            'M'
        } else {
            'L'
        };
        let _ = write!(path, "{cmd}{x:.1},{y:.1}");
        prev = Some(*t);
    }
    format!(
        r#"<svg class="spark" viewBox="0 0 {SW} {SH}" role="img" aria-label="{}"><path d="{path}"/></svg>"#,
        escape(label)
    )
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(250.0), 500.0);
        assert_eq!(nice_ceiling(180.0), 200.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1001.0), 2000.0);
    }

    #[test]
    fn chart_breaks_lines_at_gaps_and_marks_the_threshold() {
        let now = 1_800_000_000;
        let pts = [(now - 3000, 40.0), (now - 2700, 45.0), (now - 600, 50.0)];
        let svg = latency_svg(&pts, now, 200.0, "none");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let path = svg.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(path.matches('M').count(), 2, "{path}");
        assert_eq!(path.matches('L').count(), 1);
        assert!(svg.contains(r#"class="threshold""#));
        assert!(latency_svg(&[], now, 200.0, "no <data>").contains("no &lt;data&gt;"));
    }
}

#[cfg(test)]
mod bar_tests {
    use super::*;

    #[test]
    fn bars_merge_days_without_data_and_colour_the_rest() {
        let mut days: Vec<Day> = (0..88)
            .map(|i| Day {
                label: format!("day {i}"),
                uptime: None,
            })
            .collect();
        days.push(Day {
            label: "yesterday: 99.5%".into(),
            uptime: Some(0.995),
        });
        days.push(Day {
            label: "today <b>".into(),
            uptime: Some(1.0),
        });
        let svg = uptime_bar(&days, "90 days");
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains(r#"class="y"><title>yesterday: 99.5%</title>"#));
        assert!(svg.contains("today &lt;b&gt;"));
        assert!(
            svg.contains(r#"width="263""#),
            "88 empty days in one cell: {svg}"
        );
    }

    #[test]
    fn sparklines_have_one_path() {
        let now = 1_800_000_000;
        let s = sparkline(&[(now - 600, 10.0), (now - 300, 20.0)], now, "24 h");
        assert!(s.contains("<path d=\"M") && s.contains("L"));
        assert!(sparkline(&[], now, "x").contains("<path d=\"\"/>"));
    }
}
