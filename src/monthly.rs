//! The monthly report (design.md "Maintenance and incidents"): with `report = "monthly"` on
//! an `[[alert]]`, once a month the channel gets each server's uptime over the last calendar
//! month (UTC), its incidents (confirmed outages), its maintenance and its slowest week, read
//! from the history store's daily rollups — the numbers the history export gives for the same
//! days. A report is sent once: the month it was last sent for is kept in the store's file, so
//! a restart neither skips nor repeats one; a channel that had no report yet gets the last
//! month's at once, when the store has anything for it.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::{Date, Month, OffsetDateTime};
use tokio_util::sync::CancellationToken;

use crate::alert::Alerts;
use crate::history::store::{StoreError, StoreReader};
use crate::i18n::{Locale, key};
use crate::maintenance::{MaintenanceStore, Schedule};
use crate::numbers::{Places, ms_number, percent};

const DAY: i64 = 86_400;

/// A calendar month, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct YearMonth {
    /// The year.
    pub(crate) year: i32,
    /// 1–12.
    pub(crate) month: u8,
}

impl YearMonth {
    /// The month before the one `now` is in.
    pub(crate) fn before(now: i64) -> YearMonth {
        let d = OffsetDateTime::from_unix_timestamp(now)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .date();
        match d.month() {
            Month::January => YearMonth {
                year: d.year() - 1,
                month: 12,
            },
            m => YearMonth {
                year: d.year(),
                month: u8::from(m) - 1,
            },
        }
    }

    /// Its first second and the first second of the next month.
    pub(crate) fn bounds(self) -> (i64, i64) {
        let first = |y: i32, m: u8| {
            Date::from_calendar_date(y, Month::try_from(m).unwrap_or(Month::January), 1)
                .map_or(0, |d| d.midnight().assume_utc().unix_timestamp())
        };
        let (ny, nm) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        (first(self.year, self.month), first(ny, nm))
    }

    /// `2026-11`.
    pub(crate) fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// One server's month.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Line {
    /// The server.
    pub(crate) server: String,
    /// Up rounds over counted rounds (`None`: nothing measured).
    pub(crate) uptime: Option<f64>,
    /// Confirmed outages that began in the month.
    pub(crate) incidents: usize,
    /// Seconds in maintenance windows.
    pub(crate) maintenance_s: i64,
    /// The seven days (from the month's first, in steps of a week) with the highest mean
    /// latency: their first day (Unix seconds) and the mean, ms.
    pub(crate) slowest_week: Option<(i64, f64)>,
}

/// The month `m` of each of `servers`, from the store and the windows.
pub(crate) fn lines(
    reader: &StoreReader,
    schedule: &Schedule,
    servers: &[String],
    m: YearMonth,
) -> Result<Vec<Line>, StoreError> {
    let (from, to) = m.bounds();
    let mut out = Vec::with_capacity(servers.len());
    for server in servers {
        let periods = reader.periods(server, DAY, from, to)?.unwrap_or_default();
        let (rounds, up) = periods.iter().fold((0u64, 0u64), |(r, u), p| {
            (r + u64::from(p.bucket.rounds), u + u64::from(p.bucket.up))
        });
        let mut weeks: Vec<(i64, f64, u64)> = Vec::new();
        for p in &periods {
            let week = from + (p.bucket.start - from).div_euclid(7 * DAY) * 7 * DAY;
            match weeks.last_mut() {
                Some(w) if w.0 == week => {
                    w.1 += p.bucket.latency_sum;
                    w.2 += u64::from(p.bucket.latency_n);
                }
                _ => weeks.push((week, p.bucket.latency_sum, u64::from(p.bucket.latency_n))),
            }
        }
        let slowest_week = weeks
            .iter()
            .filter(|w| w.2 > 0)
            .map(|w| (w.0, w.1 / w.2 as f64))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        out.push(Line {
            server: server.clone(),
            uptime: (rounds > 0).then(|| up as f64 / rounds as f64),
            incidents: reader.outages(server, from, to)?.len(),
            maintenance_s: schedule.seconds(server, &[(from, to)])[0],
            slowest_week,
        });
    }
    Ok(out)
}

/// The report in `t`'s words: plain text and HTML, at most `max` servers named (the ones with
/// the lowest uptime first), then how many more.
pub(crate) fn words(t: &Locale, m: YearMonth, lines: &[Line], max: usize) -> (String, String) {
    let month = m.bounds().0;
    let title = t.f(
        key::REPORT_TITLE,
        &[(
            "month",
            &OffsetDateTime::from_unix_timestamp(month)
                .map(|d| t.month(d))
                .unwrap_or_default(),
        )],
    );
    let mut sorted: Vec<&Line> = lines.iter().collect();
    sorted.sort_by(|a, b| {
        a.uptime
            .unwrap_or(2.0)
            .total_cmp(&b.uptime.unwrap_or(2.0))
            .then_with(|| a.server.cmp(&b.server))
    });
    let mut text = vec![title.clone()];
    let mut html = vec![format!("<b>{}</b>", crate::text::escape_html(&title))];
    for l in sorted.iter().take(max) {
        let mut parts = vec![t.f(key::REPORT_UPTIME, &[("uptime", &percent(l.uptime))])];
        parts.push(t.f(key::REPORT_INCIDENTS, &[("n", &l.incidents.to_string())]));
        if l.maintenance_s > 0 {
            parts.push(t.f(
                key::REPORT_MAINTENANCE,
                &[("duration", &crate::i18n::duration(t, l.maintenance_s))],
            ));
        }
        if let Some((start, ms)) = l.slowest_week {
            let day = |s: i64| {
                OffsetDateTime::from_unix_timestamp(s)
                    .map(|d| t.date(d))
                    .unwrap_or_default()
            };
            let end = (start + 6 * DAY).min(m.bounds().1 - DAY);
            parts.push(t.f(
                key::REPORT_SLOWEST_WEEK,
                &[
                    ("from", &day(start)),
                    ("to", &day(end)),
                    ("latency", &ms_number(ms, Places::Whole)),
                ],
            ));
        }
        let line = format!(
            "{}{}{}",
            l.server,
            t.t(key::LABEL_SEP),
            parts.join(t.t(key::CLAUSE_SEP))
        );
        html.push(format!(
            "<b>{}</b>{}",
            crate::text::escape_html(&l.server),
            crate::text::escape_html(&line[l.server.len()..])
        ));
        text.push(line);
    }
    if sorted.len() > max {
        let more = t.f(
            key::ALERT_AND_MORE,
            &[("n", &(sorted.len() - max).to_string())],
        );
        html.push(crate::text::escape_html(&more));
        text.push(more);
    }
    (text.join("\n"), html.join("<br>"))
}

/// Sends each channel's report for the last month, once, at start and then hourly, until
/// `stop`.
pub(crate) async fn run(
    alerts: Arc<Alerts>,
    reader: StoreReader,
    schedule: Arc<Schedule>,
    kept: Arc<MaintenanceStore>,
    servers: Vec<String>,
    stop: CancellationToken,
) {
    let reader = Arc::new(std::sync::Mutex::new(reader));
    loop {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let month = YearMonth::before(now);
        for (channel, language) in alerts.report_channels() {
            let (alerts, reader, schedule, kept, servers) = (
                alerts.clone(),
                reader.clone(),
                schedule.clone(),
                kept.clone(),
                servers.clone(),
            );
            let sent = tokio::task::spawn_blocking(move || -> Result<bool, String> {
                if kept.report_sent(&channel).map_err(|e| e.to_string())? >= Some(month.key()) {
                    return Ok(false);
                }
                let reader = reader
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let lines =
                    lines(&reader, &schedule, &servers, month).map_err(|e| e.to_string())?;
                if lines.iter().all(|l| l.uptime.is_none()) {
                    // Nothing measured that month (a new monitor): nothing to say.
                    kept.set_report_sent(&channel, &month.key())
                        .map_err(|e| e.to_string())?;
                    return Ok(false);
                }
                let t = crate::i18n::find(&language).unwrap_or_else(crate::i18n::english);
                let (text, html) = words(t, month, &lines, crate::alert::message::MAX_LINES);
                let doc =
                    serde_json::json!({"event": "report", "month": month.key(), "servers": lines});
                alerts
                    .report(&channel, &month.key(), &doc, &text, &html)
                    .map_err(|e| e.to_string())?;
                kept.set_report_sent(&channel, &month.key())
                    .map_err(|e| e.to_string())?;
                Ok(true)
            })
            .await;
            match sent {
                Ok(Ok(true)) => tracing::info!("report: the report for {} queued", month.key()),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::error!("report: {}: {e}", month.key()),
                Err(e) => tracing::error!("report: {e}"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_have_their_bounds_across_a_year() {
        let dec7 = 1_796_601_600; // 2026-12-07T00:00:00Z
        let nov = YearMonth::before(dec7);
        assert_eq!(
            nov,
            YearMonth {
                year: 2026,
                month: 11
            }
        );
        assert_eq!(nov.key(), "2026-11");
        assert_eq!(nov.bounds(), (1_793_491_200, 1_796_083_200));
        let jan = YearMonth::before(1_798_761_600); // 2027-01-01
        assert_eq!(
            jan,
            YearMonth {
                year: 2026,
                month: 12
            }
        );
        assert_eq!(jan.bounds().1, 1_798_761_600);
    }

    #[test]
    fn the_report_names_the_worst_first_in_both_languages() {
        let nov = YearMonth {
            year: 2026,
            month: 11,
        };
        let (from, _) = nov.bounds();
        let lines = vec![
            Line {
                server: "good.test".into(),
                uptime: Some(1.0),
                incidents: 0,
                maintenance_s: 0,
                slowest_week: Some((from + 14 * DAY, 80.4)),
            },
            Line {
                server: "bad<b>.test".into(),
                uptime: Some(0.99125),
                incidents: 2,
                maintenance_s: 7200,
                slowest_week: Some((from + 28 * DAY, 412.0)),
            },
        ];
        let (text, html) = words(crate::i18n::english(), nov, &lines, 50);
        let l: Vec<&str> = text.lines().collect();
        assert_eq!(l[0], "📊 mxping report for November 2026");
        assert_eq!(
            l[1],
            "bad<b>.test: uptime 99.12%; incidents: 2; maintenance 2 h; slowest week 29 Nov 2026 – 30 Nov 2026 (mean 412 ms)"
        );
        assert!(l[2].starts_with("good.test: uptime 100%; incidents: 0; slowest week 15 Nov 2026"));
        assert!(html.contains("<b>bad&lt;b&gt;.test</b>"), "{html}");
        let zh = crate::i18n::find("zh").unwrap();
        let (text, _) = words(zh, nov, &lines, 1);
        assert!(text.starts_with("📊 mxping 2026年11月报告\n"), "{text}");
        assert!(text.ends_with("……另有 1 台"), "{text}");
    }
}
