//! The 24-hour latency chart, rendered server-side as SVG (works without JavaScript).

use crate::text::escape_html as escape;
use std::fmt::Write as _;

use crate::numbers::{self, Places};

const W: f64 = 720.0;
const H: f64 = 200.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

/// The words a chart is drawn with, in the page's language.
pub(super) struct ChartWords<'a> {
    /// The chart's accessible name.
    pub label: &'a str,
    /// Shown when there are no points.
    pub no_data: &'a str,
    /// A time axis tick, `n` hours before now (0: now).
    pub hours_ago: &'a dyn Fn(i64) -> String,
}

/// An SVG line chart of `points` (Unix seconds, ms) over the 24 h ending at `now`, with a
/// dashed line at `threshold_ms`. Only numbers and the escaped `words` go into the markup.
pub(super) fn latency_svg(
    points: &[(i64, f64)],
    now: i64,
    threshold_ms: f64,
    words: &ChartWords<'_>,
) -> String {
    let start = now - 86_400;
    let max_point = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let y_max = nice_ceiling(max_point.max(threshold_ms * 1.25));
    let x = |t: i64| LEFT + (t - start) as f64 / 86_400.0 * (W - LEFT - 4.0);
    let y = |ms: f64| TOP + (1.0 - (ms / y_max).min(1.0)) * (H - TOP - BOTTOM);
    let mut svg = String::with_capacity(4096);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        escape(words.label)
    );
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let yy = y(v);
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - 4.0,
            LEFT - 6.0,
            yy + 4.0,
            // Ticks are quarters of 1, 2 or 5 × 10ⁿ: tenths where they are not whole.
            numbers::ms(
                v,
                if y_max < 10.0 {
                    Places::Tenth
                } else {
                    Places::Whole
                }
            )
        );
    }
    for h in [24, 18, 12, 6, 0] {
        let xx = x(now - h * 3600);
        let label = escape(&(words.hours_ago)(h));
        // The last tick ends at the edge, whatever its length in the reader's language.
        let anchor = if h == 0 { "end" } else { "middle" };
        let _ = write!(
            svg,
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="{anchor}">{label}</text>"#,
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
            escape(words.no_data)
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

/// One day of the 90-day bar, labelled for the tooltip (`uptime`: `None` without data).
pub(super) struct Day {
    pub(super) label: String,
    pub(super) uptime: Option<f64>,
}

/// The 90-day uptime bar: one cell per [`Day`], 3 units per day, coloured by uptime, each with
/// a tooltip.
pub(super) fn uptime_bar(days: &[Day], label: &str) -> String {
    let mut svg = String::with_capacity(128 + days.len() * 80);
    let _ = write!(
        svg,
        r#"<svg class="bar" viewBox="0 0 {} 14" preserveAspectRatio="none" role="img" aria-label="{}">"#,
        days.len() * 3,
        escape(label)
    );
    let mut x = 0;
    for d in days {
        let class = match d.uptime {
            None => "n",
            Some(u) if u >= 0.999 => "g",
            Some(u) if u >= 0.99 => "y",
            Some(_) => "r",
        };
        let _ = write!(
            svg,
            r#"<rect x="{x}" width="2" height="14" class="{class}"><title>{}</title></rect>"#,
            escape(&d.label)
        );
        x += 3;
    }
    svg.push_str("</svg>");
    svg
}

/// A 24-hour latency sparkline: the 5-minute points averaged into 96 quarter-hours, one unit
/// of width each, so a thousand of them stay light.
pub(super) fn sparkline(points: &[(i64, f64)], now: i64, label: &str) -> String {
    const SLOTS: usize = 96;
    const SH: f64 = 22.0;
    let start = now - 86_400;
    let mut sums = [(0.0f64, 0u32); SLOTS];
    for (t, ms) in points {
        let slot = (t - start).div_euclid(900);
        if let Ok(slot) = usize::try_from(slot)
            && slot < SLOTS
        {
            sums[slot].0 += ms;
            sums[slot].1 += 1;
        }
    }
    let max = sums
        .iter()
        .filter(|s| s.1 > 0)
        .map(|s| s.0 / f64::from(s.1))
        .fold(1.0, f64::max);
    let mut path = String::with_capacity(SLOTS * 8);
    let mut drawing = false;
    for (x, (sum, n)) in sums.iter().enumerate() {
        if *n == 0 {
            drawing = false;
            continue;
        }
        // Whole units: the box is 22 px tall, finer steps would not show.
        let y = (1.0 + (1.0 - sum / f64::from(*n) / max) * (SH - 2.0)).round();
        let cmd = if drawing { 'L' } else { 'M' };
        let _ = write!(path, "{cmd}{x},{y}");
        drawing = true;
    }
    format!(
        r#"<svg class="spark" viewBox="0 0 {SLOTS} {SH}" preserveAspectRatio="none" role="img" aria-label="{}"><path d="{path}"/></svg>"#,
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
        let hours = |h: i64| format!("−{h} h");
        let words = |no_data| ChartWords {
            label: "Latency",
            no_data,
            hours_ago: &hours,
        };
        let svg = latency_svg(&pts, now, 200.0, &words("none"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let path = svg.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(path.matches('M').count(), 2, "{path}");
        assert_eq!(path.matches('L').count(), 1);
        assert!(svg.contains(r#"class="threshold""#));
        assert!(latency_svg(&[], now, 200.0, &words("no <data>")).contains("no &lt;data&gt;"));
    }
}

#[cfg(test)]
mod bar_tests {
    use super::*;

    #[test]
    fn bars_draw_one_cell_per_day_with_its_colour_and_tooltip() {
        let mut days: Vec<Day> = (0..88)
            .map(|i| Day {
                label: format!("day {i}: no data"),
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
        assert_eq!(svg.matches("<rect").count(), 90);
        assert_eq!(svg.matches(r#"class="n""#).count(), 88);
        assert!(svg.contains(r#"viewBox="0 0 270 14""#));
        assert!(svg.contains(
            r#"<rect x="264" width="2" height="14" class="y"><title>yesterday: 99.5%</title>"#
        ));
        assert!(svg.contains(r#"<rect x="267" width="2" height="14" class="g">"#));
        assert!(svg.contains("today &lt;b&gt;"));
    }

    #[test]
    fn sparklines_average_quarter_hours_and_break_at_gaps() {
        let now = 1_800_000_000; // a multiple of 900: quarter-hours start on it
        // Two points in the last quarter-hour average to 15 ms (the maximum: top of the box);
        // the one before is at 5 ms; an hour earlier, a lone point after a gap.
        let pts = [
            (now - 5400, 10.0),
            (now - 1200, 5.0),
            (now - 600, 10.0),
            (now - 300, 20.0),
        ];
        let s = sparkline(&pts, now, "24 h");
        let path = s.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(path, "M90,8M94,14L95,1", "{s}");
        assert!(sparkline(&[], now, "x").contains("<path d=\"\"/>"));
        // Points outside the 24 hours are ignored rather than drawn off the box.
        assert!(sparkline(&[(now + 60, 5.0), (now - 90_000, 5.0)], now, "x").contains("d=\"\""));
    }
}
