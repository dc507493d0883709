//! The 24-hour latency chart, rendered server-side as SVG (works without JavaScript).

use std::fmt::Write as _;

const W: f64 = 720.0;
const H: f64 = 200.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

/// An SVG line chart of `points` (Unix seconds, ms) over the 24 h ending at `now`, with a
/// dashed line at `threshold_ms`. Only numbers go into the markup.
pub(super) fn latency_svg(points: &[(i64, f64)], now: i64, threshold_ms: f64) -> String {
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
            "now".to_owned()
        } else {
            format!("-{h} h")
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
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no successful rounds in the last 24 hours</text>"#,
            W / 2.0,
            H / 2.0
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
    }
    svg.push_str("</svg>");
    svg
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
        let svg = latency_svg(&pts, now, 200.0);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        let path = svg.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(path.matches('M').count(), 2, "{path}");
        assert_eq!(path.matches('L').count(), 1);
        assert!(svg.contains(r#"class="threshold""#));
        assert!(latency_svg(&[], now, 200.0).contains("no successful rounds"));
    }
}
