//! Rolling history per server and per address, and the status with hysteresis
//! (design.md "Status"). Pure logic: every function takes `now` (Unix seconds), so it is
//! tested with explicit times and never reads a clock.
//!
//! # Memory per server (bounded, independent of run time)
//!
//! | what | entries | bytes |
//! |---|---|---|
//! | last round, in full (addresses, phases, discovery) | 1 | ~2–4 KB |
//! | recent rounds, compact ([`Sample`], 24 B) | [`RECENT`] = 60 | ~1.4 KB |
//! | 5-minute buckets for 24 h (uptime 1 h / 24 h, latency chart), 12 B each | 288 | ~3.4 KB |
//! | hourly buckets for 7 days (uptime 7 d) | 168 | ~2 KB |
//! | daily buckets for 90 days (uptime 30 d / 90 d, the 90-day bar) | 90 | ~1.1 KB |
//! | latency sketches (p50 / p95 within 1 %): hourly for 24 h, daily for 7 d, sparse, 8 B a bucket | 25 + 8 | ~0.5–3 KB |
//! | per address: hourly buckets for 24 h + last seen | per address | ~0.35 KB each |
//! | what views read ([`Shown`]: recent samples, chart means, daily counts), 2 blocks | 2 | ~6 KB |
//!
//! The rings are inline, so the history is one block plus its sketches and addresses, and a
//! round changes it in place. About 9–10 KB per server plus its last round and the 6 KB its
//! views read (heaptrack at 1,000 servers: 8.8 KB of
//! history, 24 KB per server in all with the task, the views and the metric series); see
//! BENCHMARKS.md.

pub(crate) mod events;
pub mod sketch;
pub mod store;

use std::collections::VecDeque;
use std::net::SocketAddr;

use serde::Serialize;

use crate::error::ErrorKind;
use crate::report::{Reason, Round, Status};
use sketch::Sketch;

/// Compact samples kept per server and per address.
pub const RECENT: usize = 60;
const FIVE_MIN: i64 = 300;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Uptime windows reported, with their length in seconds.
pub const WINDOWS: [(&str, i64); 5] = [
    ("1h", HOUR),
    ("24h", DAY),
    ("7d", 7 * DAY),
    ("30d", 30 * DAY),
    ("90d", 90 * DAY),
];

/// Hysteresis settings (from `[monitor]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Headline latency below this is green, milliseconds.
    pub green_below_ms: f64,
    /// Consecutive failed rounds before red.
    pub down_after: u32,
    /// Consecutive good rounds before a red server is green again.
    pub up_after: u32,
}

/// One round, compactly.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Unix seconds.
    pub at: i64,
    /// At least one address answered.
    pub up: bool,
    /// Every address answered.
    pub all_ok: bool,
    /// Headline latency, milliseconds.
    pub latency_ms: Option<f32>,
    /// The error explaining a failure, if any.
    pub error: Option<ErrorKind>,
}

impl Sample {
    /// A filler for unused places in a fixed array.
    const NONE: Sample = Sample {
        at: 0,
        up: false,
        all_ok: false,
        latency_ms: None,
        error: None,
    };
}

/// Rounds and up-rounds and latency sums over one time slot (its start is implied by its
/// place in the ring). 12 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Bucket {
    rounds: u16,
    up: u16,
    latency_n: u16,
    latency_sum: f32,
}

/// A rollup bucket as stored: `width` seconds starting at `start` (Unix seconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketRow {
    /// 300, 3600 or 86400.
    pub width: i64,
    /// Unix seconds.
    pub start: i64,
    /// Rounds in the bucket.
    pub rounds: u32,
    /// Rounds in which at least one address answered.
    pub up: u32,
    /// Sum of headline latencies, ms.
    pub latency_sum: f64,
    /// Rounds with a latency.
    pub latency_n: u32,
}

/// What one `record` changed, for the store: the round, the buckets it touched, the current
/// latency sketches and the status state.
#[derive(Clone, Debug)]
pub struct Delta {
    /// The server-level sample.
    pub sample: Sample,
    /// One sample per address.
    pub addresses: Vec<(SocketAddr, Sample)>,
    /// The current 5-minute, hourly and daily buckets.
    pub buckets: Vec<BucketRow>,
    /// The current hour's and day's latency sketches (none for a round without a latency).
    pub sketches: Vec<SketchRow>,
    /// The status state after the round.
    pub state: StatusState,
}

/// What the store gives back on start-up to rebuild a history.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// Every stored bucket of the server, any width, oldest first.
    pub buckets: Vec<BucketRow>,
    /// Hourly and daily latency sketches, any order.
    pub sketches: Vec<SketchRow>,
    /// The status state saved with the last round.
    pub state: StatusState,
    /// The most recent server-level samples, oldest first.
    pub recent: Vec<Sample>,
    /// Per-address samples of the last 24 h, oldest first.
    pub addresses: Vec<(SocketAddr, Vec<Sample>)>,
}

/// 5-minute slots in 24 h, hours in 24 h and in 7 days, days in 90 days.
const FIVE_MIN_SLOTS: usize = (DAY / FIVE_MIN) as usize;
const HOURS_IN_DAY: usize = (DAY / HOUR) as usize;
const HOURS_IN_WEEK: usize = (7 * DAY / HOUR) as usize;
const DAYS_KEPT: usize = 90;

/// A ring of `N` fixed-width buckets covering `N × width` seconds: the bucket of the slot
/// starting at `t` lives at `(t / width) mod N`. The ring is inline (no allocation of its own),
/// never grows, and copying it is one `memcpy`; slots without rounds cost nothing extra.
#[derive(Clone, Debug)]
struct Buckets<const N: usize> {
    width: i64,
    ring: [Bucket; N],
    /// Start of the newest slot written (`None`: empty).
    newest: Option<i64>,
}

impl<const N: usize> Buckets<N> {
    fn new(width: i64) -> Self {
        Buckets {
            width,
            ring: [Bucket::default(); N],
            newest: None,
        }
    }

    fn capacity(&self) -> i64 {
        N as i64
    }

    fn index(&self, start: i64) -> usize {
        (start / self.width).rem_euclid(self.capacity()) as usize
    }

    fn slot(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.width)
    }

    fn current(&self) -> Option<BucketRow> {
        let start = self.newest?;
        let b = self.ring[self.index(start)];
        Some(BucketRow {
            width: self.width,
            start,
            rounds: u32::from(b.rounds),
            up: u32::from(b.up),
            latency_sum: f64::from(b.latency_sum),
            latency_n: u32::from(b.latency_n),
        })
    }

    /// Makes `start` the newest slot, clearing the slots skipped since the previous one.
    /// Returns false (and changes nothing) for a slot older than the newest: the clock went
    /// backwards, and dropping the sample is better than corrupting the ring.
    fn advance(&mut self, start: i64) -> bool {
        match self.newest {
            Some(newest) if start < newest => return false,
            Some(newest) if start == newest => return true,
            Some(newest) => {
                let skipped = ((start - newest) / self.width).min(self.capacity());
                for k in 1..=skipped {
                    let i = self.index(start - (k - 1) * self.width);
                    self.ring[i] = Bucket::default();
                }
            }
            None => self.ring.fill(Bucket::default()),
        }
        self.newest = Some(start);
        true
    }

    /// Loads stored rows of this width (oldest first).
    fn load(&mut self, rows: &[BucketRow]) {
        let sat = |v: u32| v.min(u32::from(u16::MAX)) as u16;
        let width = self.width;
        for r in rows.iter().filter(|r| r.width == width) {
            let start = self.slot(r.start);
            if self.newest.is_some_and(|n| start <= n) || !self.advance(start) {
                continue;
            }
            let i = self.index(start);
            self.ring[i] = Bucket {
                rounds: sat(r.rounds),
                up: sat(r.up),
                latency_n: sat(r.latency_n),
                latency_sum: r.latency_sum as f32,
            };
        }
    }

    fn add(&mut self, s: &Sample) {
        let start = self.slot(s.at);
        if !self.advance(start) {
            return;
        }
        let i = self.index(start);
        let b = &mut self.ring[i];
        b.rounds = b.rounds.saturating_add(1);
        if s.up {
            b.up = b.up.saturating_add(1);
        }
        if let Some(l) = s.latency_ms {
            b.latency_sum += l;
            b.latency_n = b.latency_n.saturating_add(1);
        }
    }

    /// The buckets with rounds, oldest first, with their start.
    fn iter(&self) -> impl Iterator<Item = (i64, &Bucket)> {
        let newest = self.newest.unwrap_or(0);
        let count = if self.newest.is_some() {
            self.capacity()
        } else {
            0
        };
        (0..count)
            .rev()
            .map(move |k| newest - k * self.width)
            .map(|start| (start, &self.ring[self.index(start)]))
            .filter(|(_, b)| b.rounds > 0)
    }

    /// (up rounds, rounds) in the `span` seconds before `now`.
    fn uptime(&self, now: i64, span: i64) -> (u64, u64) {
        let from = now - span;
        self.iter()
            .filter(|(start, _)| start + self.width > from && *start <= now)
            .fold((0, 0), |(u, r), (_, b)| {
                (u + u64::from(b.up), r + u64::from(b.rounds))
            })
    }
}

/// A latency sketch covering `width` seconds from `start` (Unix seconds), as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SketchRow {
    /// [`HOUR`] or [`DAY`] seconds.
    pub width: i64,
    /// Start of the span.
    pub start: i64,
    /// The latencies of the span's rounds.
    pub sketch: Sketch,
}

/// Consecutive sketches `width` seconds wide overlapping the last `keep` seconds, oldest first
/// (at most `keep / width + 1`).
#[derive(Clone, Debug)]
struct Sketches {
    width: i64,
    keep: i64,
    spans: VecDeque<(i64, Sketch)>,
}

impl Sketches {
    fn new(width: i64, keep: i64) -> Sketches {
        Sketches {
            width,
            keep,
            spans: VecDeque::new(),
        }
    }

    fn add(&mut self, at: i64, ms: f64) {
        let start = at - at.rem_euclid(self.width);
        if self.spans.back().is_none_or(|(s, _)| *s < start) {
            self.spans.push_back((start, Sketch::default()));
        }
        // A clock that went back counts in the newest span.
        self.spans.back_mut().expect("just pushed").1.add(ms);
        // Spans are kept while they overlap the window, as `load` and `quantile` see them.
        while self
            .spans
            .front()
            .is_some_and(|(s, _)| s + self.width <= at - self.keep)
        {
            self.spans.pop_front();
        }
    }

    fn current(&self) -> Option<SketchRow> {
        self.spans.back().map(|(start, sketch)| SketchRow {
            width: self.width,
            start: *start,
            sketch: sketch.clone(),
        })
    }

    /// Takes the saved rows of this width that overlap the window at `now` (the later of two
    /// rows for the same span).
    fn load(&mut self, rows: &[SketchRow], now: i64) {
        let mut mine = std::collections::BTreeMap::new();
        for r in rows {
            if r.width == self.width && r.start + self.width > now - self.keep && r.start <= now {
                mine.insert(r.start, r.sketch.clone());
            }
        }
        self.spans = mine.into_iter().collect();
    }

    /// The quantile `q` over the spans that overlap the `span` seconds before `now`.
    fn quantile(&self, now: i64, span: i64, q: f64) -> Option<f64> {
        Sketch::quantile(
            self.spans
                .iter()
                .filter(|(start, _)| start + self.width > now - span && *start <= now)
                .map(|(_, s)| s),
            q,
        )
    }
}

/// History of one address.
#[derive(Clone, Debug)]
pub struct AddressHistory {
    hourly: Buckets<HOURS_IN_DAY>,
    last_seen: i64,
}

impl AddressHistory {
    fn new() -> Self {
        AddressHistory {
            hourly: Buckets::new(HOUR),
            last_seen: 0,
        }
    }

    /// Uptime over the last 24 h (whole hours), if any round was made.
    pub fn uptime_24h(&self, now: i64) -> Option<f64> {
        ratio(self.hourly.uptime(now, DAY))
    }
}

/// The status state machine (design.md's table).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusState {
    /// The current status.
    pub status: Option<Status>,
    /// Why it is not green.
    pub reason: Option<Reason>,
    /// Consecutive rounds in which no address answered.
    pub failed_rounds: u32,
    /// Consecutive rounds in which some address answered, while recovering from red.
    pub good_rounds: u32,
    /// Confirmed down (red) and not yet recovered.
    pub down: bool,
}

impl StatusState {
    /// Advances the state with one round. `round_status` is what the round alone says
    /// (green / yellow with a reason / red with a reason).
    pub fn advance(&mut self, up: bool, round_status: (Status, Option<Reason>), t: &Thresholds) {
        let (alone, why) = round_status;
        if !up {
            self.failed_rounds += 1;
            self.good_rounds = 0;
            let cause = Box::new(why.unwrap_or(Reason::Failed {
                kind: None,
                message: String::new(),
            }));
            if self.down || self.failed_rounds >= t.down_after {
                self.down = true;
                self.status = Some(Status::Red);
                self.reason = Some(Reason::Down {
                    failed: self.failed_rounds,
                    cause,
                });
            } else {
                self.status = Some(Status::Yellow);
                self.reason = Some(Reason::Unconfirmed {
                    failed: self.failed_rounds,
                    of: t.down_after,
                    cause,
                });
            }
            return;
        }
        self.failed_rounds = 0;
        if self.down {
            self.good_rounds += 1;
            if self.good_rounds < t.up_after {
                self.status = Some(Status::Yellow);
                self.reason = Some(Reason::Recovering {
                    good: self.good_rounds,
                    of: t.up_after,
                });
                return;
            }
            self.down = false;
            self.good_rounds = 0;
        }
        self.status = Some(alone);
        self.reason = why;
    }
}

/// Everything remembered about one server.
#[derive(Clone, Debug)]
pub struct ServerHistory {
    thresholds: Thresholds,
    /// Status with hysteresis.
    pub state: StatusState,
    recent: VecDeque<Sample>,
    five_min: Buckets<FIVE_MIN_SLOTS>,
    hourly: Buckets<HOURS_IN_WEEK>,
    daily: Buckets<DAYS_KEPT>,
    hourly_latency: Sketches,
    daily_latency: Sketches,
    addresses: Vec<(SocketAddr, AddressHistory)>,
}

fn ratio((up, rounds): (u64, u64)) -> Option<f64> {
    (rounds > 0).then(|| up as f64 / rounds as f64)
}

impl ServerHistory {
    /// An empty history (status unknown).
    pub fn new(thresholds: Thresholds) -> Self {
        ServerHistory {
            thresholds,
            state: StatusState::default(),
            recent: VecDeque::with_capacity(RECENT),
            five_min: Buckets::new(FIVE_MIN),
            hourly: Buckets::new(HOUR),
            daily: Buckets::new(DAY),
            hourly_latency: Sketches::new(HOUR, DAY),
            daily_latency: Sketches::new(DAY, 7 * DAY),
            addresses: Vec::new(),
        }
    }

    /// Changes the thresholds (config reload) without losing history.
    pub fn set_thresholds(&mut self, thresholds: Thresholds) {
        self.thresholds = thresholds;
    }

    /// The current status (unknown before the first round).
    pub fn status(&self) -> Status {
        self.state.status.unwrap_or(Status::Unknown)
    }

    /// Records a finished round at `now` (Unix seconds) and returns what changed.
    pub fn record(&mut self, round: &Round, now: i64) -> Delta {
        let green_below =
            std::time::Duration::from_secs_f64(self.thresholds.green_below_ms / 1000.0);
        let sample = Sample {
            at: now,
            up: round.any_ok(),
            all_ok: round.all_ok(),
            latency_ms: round.latency_ms().map(|l| l as f32),
            error: round.error().map(|e| e.kind),
        };
        self.state
            .advance(sample.up, round.status(green_below), &self.thresholds);
        self.record_sample(sample);
        let mut address_samples = Vec::with_capacity(round.addresses.len());
        // An address this monitor cannot reach (it has no IPv6) says nothing about the server.
        for a in round.counted() {
            let s = Sample {
                at: now,
                up: a.ok,
                all_ok: a.ok,
                latency_ms: a.latency_ms.map(|l| l as f32),
                error: a.error.as_ref().map(|e| e.kind),
            };
            self.record_address(a.address, s);
            address_samples.push((a.address, s));
        }
        // Addresses unseen for a day (DNS changed) are forgotten.
        self.addresses.retain(|(_, h)| now - h.last_seen < DAY);
        Delta {
            sample,
            addresses: address_samples,
            buckets: [
                self.five_min.current(),
                self.hourly.current(),
                self.daily.current(),
            ]
            .into_iter()
            .flatten()
            .collect(),
            sketches: match sample.latency_ms {
                Some(_) => [&self.hourly_latency, &self.daily_latency]
                    .into_iter()
                    .filter_map(Sketches::current)
                    .collect(),
                None => Vec::new(),
            },
            state: self.state.clone(),
        }
    }

    fn record_address(&mut self, address: SocketAddr, s: Sample) {
        let h = match self.addresses.iter_mut().find(|(addr, _)| *addr == address) {
            Some((_, h)) => h,
            None => {
                self.addresses.push((address, AddressHistory::new()));
                &mut self.addresses.last_mut().expect("just pushed").1
            }
        };
        h.last_seen = s.at;
        h.hourly.add(&s);
    }

    /// Rebuilds a history from what the store saved, as of `now`.
    pub fn restore(thresholds: Thresholds, saved: Restored, now: i64) -> ServerHistory {
        let mut h = ServerHistory::new(thresholds);
        h.state = saved.state;
        h.five_min.load(&saved.buckets);
        h.hourly.load(&saved.buckets);
        h.daily.load(&saved.buckets);
        h.hourly_latency.load(&saved.sketches, now);
        h.daily_latency.load(&saved.sketches, now);
        let skip = saved.recent.len().saturating_sub(RECENT);
        for s in saved.recent.into_iter().skip(skip) {
            push_recent(&mut h.recent, s);
        }
        for (address, samples) in saved.addresses {
            for s in samples.into_iter().filter(|s| s.at > now - DAY) {
                h.record_address(address, s);
            }
        }
        h
    }

    fn record_sample(&mut self, s: Sample) {
        push_recent(&mut self.recent, s);
        self.five_min.add(&s);
        self.hourly.add(&s);
        self.daily.add(&s);
        if let Some(l) = s.latency_ms {
            self.hourly_latency.add(s.at, f64::from(l));
            self.daily_latency.add(s.at, f64::from(l));
        }
    }

    /// Uptime ratio per window (`None` for a window with no rounds yet).
    pub fn uptime(&self, now: i64) -> Vec<(&'static str, Option<f64>)> {
        WINDOWS
            .iter()
            .map(|(name, span)| {
                let counts = match *span {
                    s if s <= DAY => self.five_min.uptime(now, s),
                    s if s <= 7 * DAY => self.hourly.uptime(now, s),
                    s => self.daily.uptime(now, s),
                };
                (*name, ratio(counts))
            })
            .collect()
    }

    /// Latency percentile `q` (0–1) over the last 24 h, milliseconds, within 1 % (or
    /// 0.25 ms) of the nearest-rank latency of those rounds.
    pub fn latency_percentile(&self, now: i64, q: f64) -> Option<f64> {
        self.hourly_latency.quantile(now, DAY, q)
    }

    /// Latency percentile `q` (0–1) over the last 7 days (whole days: the window reaches back
    /// to the start of the day 6 days ago), as precise as [`Self::latency_percentile`].
    pub fn latency_percentile_7d(&self, now: i64, q: f64) -> Option<f64> {
        self.daily_latency.quantile(now, 7 * DAY, q)
    }

    /// Mean latency per 5 minutes over the last 24 h: (slot start, ms).
    pub fn latency_series(&self, now: i64) -> Vec<(i64, f64)> {
        Shown::of(self).latency_series(now)
    }

    /// Uptime per day for the last `days` days (at most 90), oldest first: (day start, ratio).
    pub fn daily_uptime(&self, now: i64, days: usize) -> Vec<(i64, Option<f64>)> {
        Shown::of(self).daily_uptime(now, days)
    }

    /// The most recent compact samples, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Sample> {
        self.recent.iter()
    }

    /// Per-address histories.
    pub fn addresses(&self) -> impl Iterator<Item = &(SocketAddr, AddressHistory)> {
        self.addresses.iter()
    }
}

/// What pages read of a history between two rounds (design.md "snapshot"): the recent samples,
/// the mean latency of each 5-minute slot of the 24 h chart and the rounds of each day of the
/// 90-day bar, copied out of the history once per round into one fixed-size block of about
/// 3 KB. The scheduler updates its history in place and publishes a `Shown` in each view,
/// reusing the block of the view before last (see [`Shown::refill`]), so a round neither clones
/// the history (its sketches and addresses) nor, in the steady state, allocates for it.
#[derive(Clone, Debug)]
pub struct Shown {
    recent: [Sample; RECENT],
    recent_len: usize,
    /// Mean latency per 5-minute slot, ms (`NaN`: no latency in the slot).
    chart: Slots<f32, FIVE_MIN_SLOTS>,
    /// (up rounds, rounds) per day.
    days: Slots<(u16, u16), DAYS_KEPT>,
}

/// One value per slot of a bucket ring, found by slot start as in the ring.
#[derive(Clone, Debug)]
struct Slots<T, const N: usize> {
    width: i64,
    newest: Option<i64>,
    values: [T; N],
}

impl<T: Copy, const N: usize> Slots<T, N> {
    fn fill(&mut self, from: &Buckets<N>, value: impl Fn(&Bucket) -> T) {
        self.width = from.width;
        self.newest = from.newest;
        for (to, b) in self.values.iter_mut().zip(&from.ring) {
            *to = value(b);
        }
    }

    /// The value of the slot starting at `start`, if the ring still covers it.
    fn get(&self, start: i64) -> Option<T> {
        let newest = self.newest?;
        let oldest = newest - (N as i64 - 1) * self.width;
        (oldest..=newest)
            .contains(&start)
            .then(|| self.values[(start / self.width).rem_euclid(N as i64) as usize])
    }
}

impl Shown {
    /// What pages read of `history` now.
    pub fn of(history: &ServerHistory) -> Shown {
        let mut shown = Shown {
            recent: [Sample::NONE; RECENT],
            recent_len: 0,
            chart: Slots {
                width: FIVE_MIN,
                newest: None,
                values: [f32::NAN; FIVE_MIN_SLOTS],
            },
            days: Slots {
                width: DAY,
                newest: None,
                values: [(0, 0); DAYS_KEPT],
            },
        };
        shown.refill(history);
        shown
    }

    /// Overwrites this block with what pages read of `history` now, allocating nothing.
    pub fn refill(&mut self, history: &ServerHistory) {
        self.recent_len = history.recent.len();
        for (to, from) in self.recent.iter_mut().zip(&history.recent) {
            *to = *from;
        }
        self.chart.fill(&history.five_min, |b| match b.latency_n {
            0 => f32::NAN,
            n => (f64::from(b.latency_sum) / f64::from(n)) as f32,
        });
        self.days.fill(&history.daily, |b| (b.up, b.rounds));
    }

    /// The most recent compact samples, oldest first.
    pub fn recent(&self) -> &[Sample] {
        &self.recent[..self.recent_len]
    }

    /// Mean latency per 5 minutes over the 24 h before `now`: (slot start, ms), oldest first.
    pub fn latency_series(&self, now: i64) -> Vec<(i64, f64)> {
        let Some(newest) = self.chart.newest else {
            return Vec::new();
        };
        (0..FIVE_MIN_SLOTS as i64)
            .rev()
            .map(|back| newest - back * FIVE_MIN)
            .filter(|start| *start > now - DAY && *start <= now)
            .filter_map(|start| Some((start, self.chart.get(start)?)))
            .filter(|(_, ms)| !ms.is_nan())
            .map(|(start, ms)| (start, f64::from(ms)))
            .collect()
    }

    /// Uptime per day for the last `days` days (at most 90) up to `now`, oldest first: (day
    /// start, ratio; `None` for a day without rounds).
    pub fn daily_uptime(&self, now: i64, days: usize) -> Vec<(i64, Option<f64>)> {
        let today = now - now.rem_euclid(DAY);
        (0..days.min(DAYS_KEPT) as i64)
            .rev()
            .map(|back| {
                let start = today - back * DAY;
                let counts = self
                    .days
                    .get(start)
                    .map(|(u, r)| (u64::from(u), u64::from(r)));
                (start, counts.and_then(ratio))
            })
            .collect()
    }
}

fn push_recent(ring: &mut VecDeque<Sample>, s: Sample) {
    if ring.len() == RECENT {
        ring.pop_front();
    }
    ring.push_back(s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const T: Thresholds = Thresholds {
        green_below_ms: 200.0,
        down_after: 3,
        up_after: 2,
    };

    fn green() -> (Status, Option<Reason>) {
        (Status::Green, None)
    }

    fn red(kind: ErrorKind, message: &str) -> (Status, Option<Reason>) {
        (
            Status::Red,
            Some(Reason::Failed {
                kind: Some(kind),
                message: message.into(),
            }),
        )
    }

    fn text(s: &StatusState) -> String {
        s.reason
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    #[test]
    fn unknown_until_the_first_round() {
        let h = ServerHistory::new(T);
        assert_eq!(h.status(), Status::Unknown);
        assert!(h.uptime(1_000_000).iter().all(|(_, u)| u.is_none()));
        assert_eq!(h.latency_percentile(1_000_000, 0.5), None);
    }

    #[test]
    fn down_goes_yellow_then_red_after_down_after_and_recovers_after_up_after() {
        let mut s = StatusState::default();
        s.advance(true, green(), &T);
        assert_eq!(s.status, Some(Status::Green));

        s.advance(false, red(ErrorKind::ConnectRefused, "x"), &T);
        assert_eq!(s.status, Some(Status::Yellow));
        assert_eq!(
            text(&s),
            "failing, not yet confirmed (1 of 3 failed rounds): connect_refused: x"
        );
        s.advance(false, red(ErrorKind::ConnectRefused, "x"), &T);
        assert_eq!(s.status, Some(Status::Yellow));
        s.advance(false, red(ErrorKind::TlsCertificate, "y"), &T);
        assert_eq!(s.status, Some(Status::Red));
        assert_eq!(text(&s), "3 failed rounds: tls_certificate: y");
        assert_eq!(
            s.reason.as_ref().unwrap().kind(),
            Some(ErrorKind::TlsCertificate)
        );
        s.advance(false, red(ErrorKind::TlsCertificate, "y"), &T);
        assert_eq!(text(&s), "4 failed rounds: tls_certificate: y");

        // Recovery needs up_after good rounds; one is not enough.
        s.advance(true, green(), &T);
        assert_eq!(s.status, Some(Status::Yellow));
        assert_eq!(text(&s), "recovering (1 of 2 good rounds)");
        // A failure while recovering goes straight back to red.
        s.advance(false, red(ErrorKind::Timeout, "z"), &T);
        assert_eq!(s.status, Some(Status::Red));
        s.advance(true, green(), &T);
        s.advance(true, green(), &T);
        assert_eq!(s.status, Some(Status::Green));
        assert_eq!(s.reason, None);
    }

    #[test]
    fn a_single_failure_does_not_flap_to_red() {
        let mut s = StatusState::default();
        for i in 0..10 {
            let round = if i % 2 == 0 {
                green()
            } else {
                red(ErrorKind::Timeout, "t")
            };
            s.advance(i % 2 == 0, round, &T);
            assert_ne!(s.status, Some(Status::Red));
        }
    }

    #[test]
    fn slow_or_partial_rounds_are_yellow_with_their_reason() {
        let mut s = StatusState::default();
        let slow = Reason::Slow {
            latency_ms: 320.0,
            threshold_ms: 200.0,
        };
        s.advance(true, (Status::Yellow, Some(slow)), &T);
        assert_eq!(s.status, Some(Status::Yellow));
        assert_eq!(text(&s), "latency 320 ms ≥ 200 ms");
        // Recovery counts reachable rounds, and then shows what the round says.
        let mut s = StatusState {
            down: true,
            status: Some(Status::Red),
            ..Default::default()
        };
        let partial = Reason::Partial {
            family: "IPv6".into(),
            address: "[::1]:8448".into(),
            kind: Some(ErrorKind::Connect),
        };
        s.advance(true, (Status::Yellow, Some(partial.clone())), &T);
        s.advance(true, (Status::Yellow, Some(partial)), &T);
        assert_eq!(s.status, Some(Status::Yellow));
        assert_eq!(text(&s), "IPv6 address [::1]:8448 failing: connect");
        assert!(!s.down);
    }

    fn sample(at: i64, up: bool, latency: f32) -> Sample {
        Sample {
            at,
            up,
            all_ok: up,
            latency_ms: up.then_some(latency),
            error: None,
        }
    }

    #[test]
    fn uptime_windows_use_the_right_rollups() {
        let mut h = ServerHistory::new(T);
        let start = 1_800_000_000 - 1_800_000_000 % DAY; // a day boundary
        // 10 days, one round every 10 minutes; down for the whole of day 5 and the last hour.
        let end = start + 10 * DAY;
        let mut t = start;
        while t < end {
            let day = (t - start) / DAY;
            let up = day != 5 && t < end - HOUR;
            h.record_sample(sample(t, up, 50.0));
            t += 600;
        }
        let now = end - 1;
        let u: std::collections::HashMap<_, _> = h.uptime(now).into_iter().collect();
        assert_eq!(u["1h"], Some(0.0));
        let d24 = u["24h"].unwrap();
        assert!((d24 - 138.0 / 144.0).abs() < 0.01, "{d24}");
        let d7 = u["7d"].unwrap();
        assert!(
            (d7 - (7.0 * 144.0 - 144.0 - 6.0) / (7.0 * 144.0)).abs() < 0.01,
            "{d7}"
        );
        let d30 = u["30d"].unwrap();
        assert!(
            (d30 - (10.0 * 144.0 - 144.0 - 6.0) / 1440.0).abs() < 0.01,
            "{d30}"
        );
        assert_eq!(u["30d"], u["90d"], "only 10 days of data");
        let bars = h.daily_uptime(now, 90);
        assert_eq!(bars.len(), 90);
        assert_eq!(bars[89].0, start + 9 * DAY);
        assert_eq!(bars[89 - 4].1, Some(0.0), "day 5 was down");
        assert_eq!(bars[0].1, None, "no data 90 days ago");
    }

    #[test]
    fn memory_stays_bounded_over_a_long_run() {
        let mut h = ServerHistory::new(T);
        let mut t = 1_800_000_000;
        for _ in 0..(200 * 24 * 360) {
            // 200 days at a 10-second interval.
            h.record_sample(sample(t, true, 40.0));
            t += 10;
        }
        assert_eq!(h.recent.len(), RECENT);
        // The rings are inline: the history is one block plus its sketches and addresses.
        let size = std::mem::size_of::<ServerHistory>();
        assert!(size < 7 * 1024, "history {size} B");
        // What each view holds (and a round copies): about 3 KB.
        let shown = std::mem::size_of::<Shown>();
        assert!(shown <= 3 * 1024, "shown {shown} B");
        assert_eq!(Shown::of(&h).recent().len(), RECENT);
        assert!(h.hourly_latency.spans.len() <= 25);
        assert!(h.daily_latency.spans.len() <= 8);
        assert!(
            h.hourly_latency
                .spans
                .iter()
                .chain(&h.daily_latency.spans)
                .all(|(_, s)| s.buckets() == 1),
            "one bucket used"
        );
        assert_eq!(h.uptime(t)[4].1, Some(1.0));
    }

    #[test]
    fn the_bucket_ring_forgets_what_a_gap_skipped_over_and_ignores_a_clock_going_back() {
        let mut b = Buckets::<FIVE_MIN_SLOTS>::new(FIVE_MIN);
        let t0 = 1_800_000_000 - 1_800_000_000 % DAY;
        b.add(&sample(t0, true, 10.0));
        b.add(&sample(t0 + 10, false, 0.0));
        // Three hours later: the first slot is still within 24 h, the slots between are empty.
        b.add(&sample(t0 + 3 * HOUR, true, 30.0));
        assert_eq!(b.uptime(t0 + 3 * HOUR, DAY), (2, 3));
        assert_eq!(b.iter().count(), 2);
        // The clock goes back a slot: dropped, nothing else changes.
        b.add(&sample(t0 + 3 * HOUR - FIVE_MIN, true, 30.0));
        assert_eq!(b.uptime(t0 + 3 * HOUR, DAY), (2, 3));
        // 23 h after the first round it is still counted; a day and a slot later it is gone,
        // even though the ring index of that slot was not written again.
        b.add(&sample(t0 + DAY - HOUR, true, 30.0));
        assert_eq!(b.uptime(t0 + DAY - HOUR, DAY), (3, 4));
        b.add(&sample(t0 + DAY + FIVE_MIN, true, 30.0));
        assert_eq!(b.uptime(t0 + DAY + FIVE_MIN, DAY), (3, 3));
        // After a silence longer than the ring, only the new round is left.
        b.add(&sample(t0 + 5 * DAY, true, 30.0));
        assert_eq!(b.iter().count(), 1);
        assert_eq!(b.current().unwrap().start, t0 + 5 * DAY);
        // What is saved loads back the same.
        let mut c = Buckets::<FIVE_MIN_SLOTS>::new(FIVE_MIN);
        c.load(&[b.current().unwrap()]);
        assert_eq!(c.current(), b.current());
    }

    #[test]
    fn sketches_save_and_load_back_and_old_spans_are_left_out() {
        let mut h = ServerHistory::new(T);
        let t0 = 1_800_000_000 - 1_800_000_000 % DAY;
        let mut rows = Vec::new();
        for i in 0..(3 * 24) {
            // What `record` hands the store after each round: the current hour and day.
            h.record_sample(sample(t0 + i64::from(i) * HOUR, true, 20.0 + i as f32));
            rows.extend(
                [h.hourly_latency.current(), h.daily_latency.current()]
                    .into_iter()
                    .flatten(),
            );
        }
        let now = t0 + 3 * DAY;
        let restored = ServerHistory::restore(
            T,
            Restored {
                sketches: rows,
                ..Restored::default()
            },
            now,
        );
        for q in [0.5, 0.95] {
            assert_eq!(
                restored.latency_percentile(now, q),
                h.latency_percentile(now, q)
            );
            assert_eq!(
                restored.latency_percentile_7d(now, q),
                h.latency_percentile_7d(now, q)
            );
        }
        assert_eq!(
            restored.hourly_latency.spans.len(),
            24,
            "the last 24 h only"
        );
        assert_eq!(restored.daily_latency.spans.len(), 3);
    }

    #[test]
    fn latency_percentiles_and_series() {
        let mut h = ServerHistory::new(T);
        let t0 = 1_800_000_000;
        for i in 0..100 {
            // 90 rounds at ~50 ms, 10 at ~400 ms.
            let l = if i < 90 { 50.0 } else { 400.0 };
            h.record_sample(sample(t0 + i * 30, true, l));
        }
        let p50 = h.latency_percentile(t0 + 3000, 0.5).unwrap();
        let p95 = h.latency_percentile(t0 + 3000, 0.95).unwrap();
        assert!((p50 - 50.0).abs() / 50.0 <= sketch::ALPHA, "{p50}");
        assert!((p95 - 400.0).abs() / 400.0 <= sketch::ALPHA, "{p95}");
        assert_eq!(h.latency_percentile_7d(t0 + 3000, 0.5), Some(p50));
        let series = h.latency_series(t0 + 3000);
        assert!(!series.is_empty());
        assert!(series.iter().all(|(_, ms)| (50.0..=400.0).contains(ms)));
        // Two days later, it has left the 24-hour window but not the 7-day one.
        assert_eq!(h.latency_percentile(t0 + 2 * DAY, 0.5), None);
        assert_eq!(h.latency_percentile_7d(t0 + 2 * DAY, 0.5), Some(p50));
        assert_eq!(h.latency_percentile_7d(t0 + 8 * DAY, 0.5), None);
    }
}
