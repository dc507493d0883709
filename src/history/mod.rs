//! Rolling history per server and per address, and the status with hysteresis
//! (design.md "Status"). Pure logic: every function takes `now` (Unix seconds), so it is
//! tested with explicit times and never reads a clock.
//!
//! # Memory per server (bounded, independent of run time)
//!
//! | what | entries | bytes |
//! |---|---|---|
//! | last round, in full (addresses, phases, discovery), in the view | 1 | ~2–4 KB |
//! | recent rounds, compact (16 B each) | [`RECENT`] = 60 | ~1 KB |
//! | 5-minute slots for 24 h (uptime 1 h / 24 h, latency chart), 8 B each | 288 | ~2.3 KB |
//! | hourly counts for 7 days (uptime 7 d), 4 B each | 168 | ~0.7 KB |
//! | daily counts for 90 days (uptime 30 d / 90 d, the 90-day bar), 4 B each | 90 | ~0.4 KB |
//! | latency sketches (p50 / p95 within 1 %): hourly for 24 h, daily for 7 d, sparse, 6 B a bin | 25 + 8 | ~1–3 KB |
//! | per address: hourly counts for 24 h + last seen | per address | ~0.15 KB each |
//!
//! The recent rounds, the 5-minute and the daily rings are one block ([`Shown`], ~3.7 KB)
//! that the history shares with its views and copies on write; the rest is one more inline
//! block plus the sketches and addresses. A ring keeps per slot only what is read back of it
//! (counts, and the mean latency where the chart reads it), plus its newest slot whole for the
//! store. About 6–8 KB per server plus its last round; see BENCHMARKS.md for what a whole
//! monitor takes.

pub(crate) mod events;
pub(crate) mod sketch;
pub(crate) mod store;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::error::ErrorKind;
use crate::report::Round;
use crate::status::{Reason, Status};
use sketch::Sketch;

/// Compact samples kept per server and per address.
pub(crate) const RECENT: usize = 60;
const FIVE_MIN: i64 = 300;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Uptime windows reported, with their length in seconds.
pub(crate) const WINDOWS: [(&str, i64); 5] = [
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

/// A [`Sample`] as kept in the recent rings: 16 bytes instead of 24 (the ring is kept twice
/// per server, in the history and in what views read).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Packed {
    at: i64,
    /// `NaN`: no latency.
    latency_ms: f32,
    /// Bit 0: up; bit 1: all ok.
    flags: u8,
    /// 0: no error; else the index in [`ErrorKind::ALL`] plus one.
    error: u8,
}

impl Packed {
    /// A filler for unused places in a fixed array.
    const NONE: Packed = Packed {
        at: 0,
        latency_ms: f32::NAN,
        flags: 0,
        error: 0,
    };

    fn pack(s: Sample) -> Packed {
        Packed {
            at: s.at,
            latency_ms: s.latency_ms.unwrap_or(f32::NAN),
            flags: u8::from(s.up) | (u8::from(s.all_ok) << 1),
            error: s
                .error
                .and_then(|e| ErrorKind::ALL.iter().position(|k| *k == e))
                .map_or(0, |i| i as u8 + 1),
        }
    }

    fn unpack(self) -> Sample {
        Sample {
            at: self.at,
            up: self.flags & 1 != 0,
            all_ok: self.flags & 2 != 0,
            latency_ms: (!self.latency_ms.is_nan()).then_some(self.latency_ms),
            error: usize::from(self.error)
                .checked_sub(1)
                .and_then(|i| ErrorKind::ALL.get(i).copied()),
        }
    }
}

/// Rounds and up-rounds and latency sums over one time slot: the newest slot of a ring, kept
/// whole for the store, which adds the next round to it after a restart. 12 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Bucket {
    rounds: u16,
    up: u16,
    latency_n: u16,
    latency_sum: f32,
}

/// Rounds and up-rounds of one time slot, for rings read only for uptime. 4 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Count {
    rounds: u16,
    up: u16,
}

/// Rounds, up-rounds and the mean latency of one time slot, for the ring the 24 h chart
/// reads: the mean is all the chart needs of a slot once it is over (the newest slot is kept
/// whole beside the ring). 8 bytes, against 12 for a whole [`Bucket`].
#[derive(Clone, Copy, Debug, PartialEq)]
struct Mean {
    rounds: u16,
    up: u16,
    /// Milliseconds; `NaN`: no round of the slot had a latency.
    latency_ms: f32,
}

impl Default for Mean {
    fn default() -> Self {
        Mean {
            rounds: 0,
            up: 0,
            latency_ms: f32::NAN,
        }
    }
}

/// What a ring keeps per slot: a [`Mean`] where latency is read back (the 24 h chart), a
/// [`Count`] where only uptime is.
trait Tally: Copy + Default {
    fn of(b: &Bucket) -> Self;
    /// (up rounds, rounds).
    fn counts(&self) -> (u16, u16);
}

impl Tally for Mean {
    fn of(b: &Bucket) -> Self {
        Mean {
            rounds: b.rounds,
            up: b.up,
            // The mean as the chart has always read it: in f64, kept as f32.
            latency_ms: if b.latency_n > 0 {
                (f64::from(b.latency_sum) / f64::from(b.latency_n)) as f32
            } else {
                f32::NAN
            },
        }
    }
    fn counts(&self) -> (u16, u16) {
        (self.up, self.rounds)
    }
}

impl Tally for Count {
    fn of(b: &Bucket) -> Self {
        Count {
            rounds: b.rounds,
            up: b.up,
        }
    }
    fn counts(&self) -> (u16, u16) {
        (self.up, self.rounds)
    }
}

impl Bucket {
    fn add(&mut self, s: &Sample) {
        self.rounds = self.rounds.saturating_add(1);
        if s.up {
            self.up = self.up.saturating_add(1);
        }
        if let Some(l) = s.latency_ms {
            self.latency_sum += l;
            self.latency_n = self.latency_n.saturating_add(1);
        }
    }
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

/// What one `record` changed, for the store: the round, the rollups of the periods it ended
/// and of those still open, and the status state.
#[derive(Clone, Debug)]
pub struct Delta {
    /// The server-level sample.
    pub sample: Sample,
    /// One sample per address.
    pub addresses: Vec<(SocketAddr, Sample)>,
    /// Buckets whose period this round ended (the round fell in the next one), final: stored
    /// as rows of their own.
    pub buckets: Vec<BucketRow>,
    /// Latency sketches whose hour or day this round ended, final.
    pub sketches: Vec<SketchRow>,
    /// The rollups of the periods still open, which change every round.
    pub open: OpenRows,
    /// The status state after the round.
    pub state: StatusState,
}

/// The rollups of a server's open periods: the current 5-minute, hourly and daily buckets and
/// the current hour's and day's latency sketches. The store keeps them together, one row per
/// server replaced each round (one B-tree page touched instead of five), and a period's row
/// of its own is written once, when it ends ([`Delta::buckets`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenRows {
    /// One per width that has rounds.
    pub buckets: Vec<BucketRow>,
    /// One per width that has latencies.
    pub sketches: Vec<SketchRow>,
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

/// A ring of `N` fixed-width slots covering `N × width` seconds: the slot starting at `t`
/// lives at `(t / width) mod N`. The ring is inline (no allocation of its own), never grows,
/// and copying it is one `memcpy`; slots without rounds cost nothing extra. The newest slot is
/// also kept whole (`latest`), latency included, for the store, whatever `T` keeps.
#[derive(Clone, Debug)]
struct Buckets<T, const N: usize> {
    width: i64,
    ring: [T; N],
    /// Start of the newest slot written (`None`: empty).
    newest: Option<i64>,
    latest: Bucket,
}

impl<T: Tally, const N: usize> Buckets<T, N> {
    fn new(width: i64) -> Self {
        Buckets {
            width,
            ring: [T::default(); N],
            newest: None,
            latest: Bucket::default(),
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
        let b = self.latest;
        Some(BucketRow {
            width: self.width,
            start,
            rounds: u32::from(b.rounds),
            up: u32::from(b.up),
            latency_sum: f64::from(b.latency_sum),
            latency_n: u32::from(b.latency_n),
        })
    }

    /// The newest slot's row if a sample at `at` would end it (it falls in a later slot).
    fn ending(&self, at: i64) -> Option<BucketRow> {
        let newest = self.newest?;
        (self.slot(at) > newest).then(|| self.current()).flatten()
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
                    self.ring[i] = T::default();
                }
            }
            None => self.ring.fill(T::default()),
        }
        self.newest = Some(start);
        self.latest = Bucket::default();
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
            self.latest = Bucket {
                rounds: sat(r.rounds),
                up: sat(r.up),
                latency_n: sat(r.latency_n),
                latency_sum: r.latency_sum as f32,
            };
            self.ring[i] = T::of(&self.latest);
        }
    }

    fn add(&mut self, s: &Sample) {
        let start = self.slot(s.at);
        if !self.advance(start) {
            return;
        }
        self.latest.add(s);
        let i = self.index(start);
        self.ring[i] = T::of(&self.latest);
    }

    /// The slot starting at `start`, if the ring still covers it.
    fn get(&self, start: i64) -> Option<T> {
        let newest = self.newest?;
        let oldest = newest - (N as i64 - 1) * self.width;
        (oldest..=newest)
            .contains(&start)
            .then(|| self.ring[self.index(start)])
    }

    /// The slots with rounds, oldest first, with their start.
    fn iter(&self) -> impl Iterator<Item = (i64, &T)> {
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
            .filter(|(_, b)| b.counts().1 > 0)
    }

    /// (up rounds, rounds) in the `span` seconds before `now`.
    fn uptime(&self, now: i64, span: i64) -> (u64, u64) {
        let from = now - span;
        self.iter()
            .filter(|(start, _)| start + self.width > from && *start <= now)
            .fold((0, 0), |(u, r), (_, b)| {
                let (up, rounds) = b.counts();
                (u + u64::from(up), r + u64::from(rounds))
            })
    }
}

/// A latency sketch covering `width` seconds from `start` (Unix seconds), as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SketchRow {
    /// an hour or a day, in seconds.
    pub width: i64,
    /// Start of the span.
    pub start: i64,
    /// The latencies of the span's rounds.
    pub sketch: Sketch,
}

/// Consecutive latency sketches `width` seconds wide overlapping the last `keep` seconds,
/// oldest first (at most `keep / width + 1`). The bins of every span sit one after another in
/// one vector, so a server's spans cost one allocation, not one each: a sketch of its own per
/// span (a vector, a slot in the deque and the allocator's overhead, for the few bins a
/// span usually has) took 1.6 KB per server more.
#[derive(Clone, Debug)]
struct Sketches {
    width: i64,
    keep: i64,
    /// (start, number of bins) of each span, oldest first.
    spans: VecDeque<(i64, u32)>,
    /// The bins of the spans, span after span, each span's in bucket order.
    bins: Vec<sketch::Bin>,
}

impl Sketches {
    fn new(width: i64, keep: i64) -> Sketches {
        Sketches {
            width,
            keep,
            // Sized once for the most spans ever kept, so the deque never grows (a doubling
            // would double its memory for every server).
            spans: VecDeque::with_capacity((keep / width + 1) as usize),
            bins: Vec::new(),
        }
    }

    /// The spans, oldest first: (start, bins).
    fn iter(&self) -> impl Iterator<Item = (i64, &[sketch::Bin])> {
        let mut from = 0;
        self.spans.iter().map(move |&(start, n)| {
            let bins = &self.bins[from..from + n as usize];
            from += n as usize;
            (start, bins)
        })
    }

    fn add(&mut self, at: i64, ms: f64) {
        // Spans are kept while they overlap the window, as `load` and `quantile` see them;
        // the span of `at` always does, so dropping the others first keeps at most
        // `keep / width + 1`.
        while let Some(&(start, n)) = self.spans.front()
            && start + self.width <= at - self.keep
        {
            self.spans.pop_front();
            self.bins.drain(..n as usize);
        }
        let start = at - at.rem_euclid(self.width);
        if self.spans.back().is_none_or(|(s, _)| *s < start) {
            self.spans.push_back((start, 0));
        }
        // A clock that went back counts in the newest span. A new bin grows the vector by an
        // eighth, not twice over: bins are added rarely, and a doubling would stay for good.
        if self.bins.len() == self.bins.capacity() {
            self.bins.reserve_exact(self.bins.len() / 8 + 4);
        }
        let newest = &mut self.spans.back_mut().expect("just pushed").1;
        let from = self.bins.len() - *newest as usize;
        if sketch::count_in(&mut self.bins, from, ms) {
            *newest += 1;
        }
    }

    /// The newest span's row if a latency at `at` would end it (it falls in a later span).
    fn ending(&self, at: i64) -> Option<SketchRow> {
        let &(newest, _) = self.spans.back()?;
        (at - at.rem_euclid(self.width) > newest)
            .then(|| self.current())
            .flatten()
    }

    fn current(&self) -> Option<SketchRow> {
        self.iter().last().map(|(start, bins)| SketchRow {
            width: self.width,
            start,
            sketch: Sketch::from_bins(bins.to_vec()),
        })
    }

    /// Takes the saved rows of this width that overlap the window at `now` (the later of two
    /// rows for the same span).
    fn load(&mut self, rows: &[SketchRow], now: i64) {
        let mut mine = std::collections::BTreeMap::new();
        for r in rows {
            if r.width == self.width && r.start + self.width > now - self.keep && r.start <= now {
                mine.insert(r.start, r.sketch.bins());
            }
        }
        self.spans.clear();
        self.bins.clear();
        self.bins
            .reserve_exact(mine.values().map(|bins| bins.len()).sum());
        for (start, bins) in mine {
            self.bins.extend_from_slice(bins);
            self.spans.push_back((start, bins.len() as u32));
        }
    }

    /// The quantile `q` over the spans that overlap the `span` seconds before `now`.
    fn quantile(&self, now: i64, span: i64, q: f64) -> Option<f64> {
        sketch::quantile_of(
            self.iter()
                .filter(|(start, _)| start + self.width > now - span && *start <= now)
                .map(|(_, bins)| bins),
            q,
        )
    }
}

/// History of one address.
#[derive(Clone, Debug)]
pub struct AddressHistory {
    hourly: Buckets<Count, HOURS_IN_DAY>,
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
    /// The recent samples, the 5-minute and the daily rings: what pages read, shared with
    /// the views (copied on write when a view still holds it).
    shown: Arc<Shown>,
    hourly: Buckets<Count, HOURS_IN_WEEK>,
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
            shown: Arc::new(Shown::new()),
            hourly: Buckets::new(HOUR),
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
        let sample = self.advance(round, now);
        // The rows of the periods this round ends, taken before it moves past them.
        let ended: Vec<BucketRow> = [
            self.shown.five_min.ending(now),
            self.hourly.ending(now),
            self.shown.daily.ending(now),
        ]
        .into_iter()
        .flatten()
        .collect();
        let ended_sketches: Vec<SketchRow> = match sample.latency_ms {
            Some(_) => [&self.hourly_latency, &self.daily_latency]
                .into_iter()
                .filter_map(|s| s.ending(now))
                .collect(),
            None => Vec::new(),
        };
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
            buckets: ended,
            sketches: ended_sketches,
            open: OpenRows {
                buckets: [
                    self.shown.five_min.current(),
                    self.hourly.current(),
                    self.shown.daily.current(),
                ]
                .into_iter()
                .flatten()
                .collect(),
                // Kept whole in every round, latency or not: the row replaces the last one.
                sketches: [&self.hourly_latency, &self.daily_latency]
                    .into_iter()
                    .filter_map(Sketches::current)
                    .collect(),
            },
            state: self.state.clone(),
        }
    }

    /// Records a round made during a maintenance window: the status moves on as usual (so a
    /// server still down when the window ends is known down at once), but the round is not
    /// counted anywhere uptime, latency or the charts are read from. The delta carries the
    /// round for the store (kept, marked as maintenance) and the new state, nothing else.
    pub fn record_maintenance(&mut self, round: &Round, now: i64) -> Delta {
        let sample = self.advance(round, now);
        Delta {
            sample,
            addresses: Vec::new(),
            buckets: Vec::new(),
            sketches: Vec::new(),
            open: OpenRows::default(),
            state: self.state.clone(),
        }
    }

    /// Moves the status on with `round` and returns its sample.
    fn advance(&mut self, round: &Round, now: i64) -> Sample {
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
        sample
    }

    fn record_address(&mut self, address: SocketAddr, s: Sample) {
        let h = match self.addresses.iter_mut().find(|(addr, _)| *addr == address) {
            Some((_, h)) => h,
            None => {
                // Most servers have one or two addresses: room for exactly one more, not four.
                self.addresses.reserve_exact(1);
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
        let shown = Arc::make_mut(&mut h.shown);
        shown.five_min.load(&saved.buckets);
        shown.daily.load(&saved.buckets);
        h.hourly.load(&saved.buckets);
        h.hourly_latency.load(&saved.sketches, now);
        h.daily_latency.load(&saved.sketches, now);
        for s in saved.recent {
            shown.push_recent(s);
        }
        for (address, samples) in saved.addresses {
            for s in samples.into_iter().filter(|s| s.at > now - DAY) {
                h.record_address(address, s);
            }
        }
        h
    }

    fn record_sample(&mut self, s: Sample) {
        // The one copy a round makes (about 3.7 KB, one allocation) when the published view
        // still holds the block, which it always does but before the first view.
        let shown = Arc::make_mut(&mut self.shown);
        shown.push_recent(s);
        shown.five_min.add(&s);
        shown.daily.add(&s);
        self.hourly.add(&s);
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
                    s if s <= DAY => self.shown.five_min.uptime(now, s),
                    s if s <= 7 * DAY => self.hourly.uptime(now, s),
                    s => self.shown.daily.uptime(now, s),
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
        self.shown.latency_series(now)
    }

    /// Uptime per day for the last `days` days (at most 90), oldest first: (day start, ratio).
    pub fn daily_uptime(&self, now: i64, days: usize) -> Vec<(i64, Option<f64>)> {
        self.shown.daily_uptime(now, days)
    }

    /// The most recent compact samples, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = Sample> + ExactSizeIterator + '_ {
        self.shown.recent()
    }

    /// What pages read of this history now: an immutable block the next round will not
    /// change (it writes a copy).
    pub fn shown(&self) -> Arc<Shown> {
        self.shown.clone()
    }

    /// Per-address histories.
    pub fn addresses(&self) -> impl Iterator<Item = &(SocketAddr, AddressHistory)> {
        self.addresses.iter()
    }
}

/// What pages read of a history (design.md "snapshot"): the recent samples, the 5-minute
/// slots of the 24 h chart and the daily counts of the 90-day bar, about 3.7 KB in one
/// block. The history owns it behind an `Arc` and the views share it; a round writes through
/// `Arc::make_mut`, so it copies the block once when a view still holds it and a reader's block
/// never changes. There is one copy per server between rounds, not one in the history and
/// another in the view.
#[derive(Clone, Debug)]
pub struct Shown {
    /// A ring: the oldest sample is at `recent_start`.
    recent: [Packed; RECENT],
    recent_start: usize,
    recent_len: usize,
    five_min: Buckets<Mean, FIVE_MIN_SLOTS>,
    daily: Buckets<Count, DAYS_KEPT>,
}

impl Shown {
    fn new() -> Shown {
        Shown {
            recent: [Packed::NONE; RECENT],
            recent_start: 0,
            recent_len: 0,
            five_min: Buckets::new(FIVE_MIN),
            daily: Buckets::new(DAY),
        }
    }

    /// Keeps `s` as the newest of the last [`RECENT`] samples.
    fn push_recent(&mut self, s: Sample) {
        let p = Packed::pack(s);
        if self.recent_len < RECENT {
            self.recent[(self.recent_start + self.recent_len) % RECENT] = p;
            self.recent_len += 1;
        } else {
            self.recent[self.recent_start] = p;
            self.recent_start = (self.recent_start + 1) % RECENT;
        }
    }

    /// The most recent compact samples, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = Sample> + ExactSizeIterator + '_ {
        (0..self.recent_len).map(|k| self.recent[(self.recent_start + k) % RECENT].unpack())
    }

    /// Mean latency per 5 minutes over the 24 h before `now`: (slot start, ms), oldest first.
    pub fn latency_series(&self, now: i64) -> Vec<(i64, f64)> {
        self.five_min
            .iter()
            .filter(|(start, _)| *start > now - DAY && *start <= now)
            .filter(|(_, b)| !b.latency_ms.is_nan())
            .map(|(start, b)| (start, f64::from(b.latency_ms)))
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
                    .daily
                    .get(start)
                    .map(|c| (u64::from(c.up), u64::from(c.rounds)));
                (start, counts.and_then(ratio))
            })
            .collect()
    }
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
        assert_eq!(h.recent().len(), RECENT);
        assert_eq!(h.uptime(t)[4].1, Some(1.0));
        // The rings are inline: the history is one block plus its sketches and addresses,
        // and what pages read is one more, shared with the views.
        let size = std::mem::size_of::<ServerHistory>();
        assert!(size < 1024, "history {size} B");
        let shown = std::mem::size_of::<Shown>();
        assert!(shown <= 3800, "shown {shown} B");
        let first = h.shown();
        assert_eq!(first.recent().len(), RECENT);
        let before: Vec<Sample> = first.recent().collect();
        // A round writes a copy of a block a reader holds, never the block itself.
        h.record_sample(sample(t, false, 0.0));
        assert_eq!(first.recent().collect::<Vec<_>>(), before);
        assert!(!Arc::ptr_eq(&first, &h.shown()));
        assert_eq!(h.shown().recent().last().map(|s| s.up), Some(false));
        // With no reader left, the next round writes in place.
        drop(first);
        let ptr = Arc::as_ptr(&h.shown);
        h.record_sample(sample(t + 10, true, 40.0));
        assert_eq!(Arc::as_ptr(&h.shown), ptr);
        assert_eq!(std::mem::size_of::<Packed>(), 16);
        assert!(h.hourly_latency.spans.len() <= 25);
        assert!(h.daily_latency.spans.len() <= 8);
        // Sized once, never grown (a doubling would double the deque for every server).
        assert_eq!(h.hourly_latency.spans.capacity(), 25);
        assert_eq!(h.daily_latency.spans.capacity(), 8);
        assert!(
            h.hourly_latency
                .spans
                .iter()
                .chain(&h.daily_latency.spans)
                .all(|(_, n)| *n == 1),
            "one bucket used"
        );
        // The bins of all spans in one vector, with room for an eighth more, not twice as many.
        assert_eq!(h.hourly_latency.bins.len(), h.hourly_latency.spans.len());
        let room = h.hourly_latency.bins.capacity();
        assert!(room <= 25 + 25 / 8 + 4, "room for {room} bins");
    }

    #[test]
    fn the_bucket_ring_forgets_what_a_gap_skipped_over_and_ignores_a_clock_going_back() {
        let mut b = Buckets::<Mean, FIVE_MIN_SLOTS>::new(FIVE_MIN);
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
        let mut c = Buckets::<Mean, FIVE_MIN_SLOTS>::new(FIVE_MIN);
        c.load(&[b.current().unwrap()]);
        assert_eq!(c.current(), b.current());
    }

    #[test]
    fn a_packed_sample_reads_back_exactly() {
        let mut samples = vec![
            Sample {
                at: 0,
                up: false,
                all_ok: false,
                latency_ms: None,
                error: None,
            },
            sample(1_800_000_000, true, 12.5),
            Sample {
                at: -1,
                up: true,
                all_ok: false,
                latency_ms: Some(0.0),
                error: None,
            },
        ];
        for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
            samples.push(Sample {
                at: i64::MAX - i as i64,
                up: i % 2 == 0,
                all_ok: false,
                latency_ms: (i % 3 == 0).then_some(f32::MAX),
                error: Some(kind),
            });
        }
        for s in samples {
            assert_eq!(Packed::pack(s).unpack(), s);
        }
    }

    #[test]
    fn a_ring_of_counts_still_hands_the_store_the_current_slot_whole() {
        let mut hours = Buckets::<Count, HOURS_IN_WEEK>::new(HOUR);
        let t0 = 1_800_000_000 - 1_800_000_000 % DAY;
        hours.add(&sample(t0, true, 10.0));
        hours.add(&sample(t0 + 60, true, 30.0));
        hours.add(&sample(t0 + 120, false, 0.0));
        let row = hours.current().expect("a slot");
        assert_eq!((row.start, row.rounds, row.up), (t0, 3, 2));
        assert_eq!((row.latency_n, row.latency_sum), (2, 40.0));
        // A new hour starts from nothing; the old one still counts for uptime.
        hours.add(&sample(t0 + HOUR, true, 50.0));
        let row = hours.current().expect("a slot");
        assert_eq!((row.rounds, row.latency_n, row.latency_sum), (1, 1, 50.0));
        assert_eq!(hours.uptime(t0 + HOUR, 7 * DAY), (3, 4));
        // Loaded back from saved rows: the same uptime and the same current row, latency
        // included, so the next round's row adds to it.
        let saved = [
            BucketRow {
                width: HOUR,
                start: t0,
                rounds: 3,
                up: 2,
                latency_sum: 40.0,
                latency_n: 2,
            },
            row,
        ];
        let mut back = Buckets::<Count, HOURS_IN_WEEK>::new(HOUR);
        back.load(&saved);
        assert_eq!(back.uptime(t0 + HOUR, 7 * DAY), (3, 4));
        assert_eq!(back.current(), Some(row));
        back.add(&sample(t0 + HOUR + 60, true, 70.0));
        let next = back.current().expect("a slot");
        assert_eq!(
            (next.rounds, next.latency_n, next.latency_sum),
            (2, 2, 120.0)
        );
        assert_eq!(std::mem::size_of::<Count>(), 4);
        assert_eq!(std::mem::size_of::<Mean>(), 8);
    }

    #[test]
    fn the_spans_in_one_vector_answer_as_a_sketch_of_each_span_would() {
        // Three weeks of rounds every 7 minutes with latencies spread over many bins; at every
        // step the quantiles must be those of the rounds whose span overlaps the window, as
        // separate sketches would give them, while spans leave at the front.
        let t0 = 1_800_000_000 - 1_800_000_000 % DAY + 1234;
        let (mut hourly, mut daily) = (Sketches::new(HOUR, DAY), Sketches::new(DAY, 7 * DAY));
        let mut rounds: Vec<(i64, f64)> = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..(21 * 24 * 60 / 7) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = t0 + i * 7 * 60;
            let ms = 0.3 + (x % 40_000) as f64 / 37.0;
            hourly.add(at, ms);
            daily.add(at, ms);
            rounds.push((at, ms));
            if i % 11 != 0 {
                continue;
            }
            for (ring, width, keep) in [(&hourly, HOUR, DAY), (&daily, DAY, 7 * DAY)] {
                let mut want = Sketch::default();
                rounds
                    .iter()
                    .filter(|(t, _)| {
                        let start = t - t.rem_euclid(width);
                        start + width > at - keep && start <= at
                    })
                    .for_each(|(_, ms)| want.add(*ms));
                for q in [0.0, 0.5, 0.95, 1.0] {
                    assert_eq!(ring.quantile(at, keep, q), Sketch::quantile([&want], q));
                }
                let in_spans: u32 = ring.spans.iter().map(|(_, n)| n).sum();
                assert_eq!(in_spans as usize, ring.bins.len());
                let mut newest = Sketch::default();
                rounds
                    .iter()
                    .filter(|(t, _)| t - t.rem_euclid(width) == at - at.rem_euclid(width))
                    .for_each(|(_, ms)| newest.add(*ms));
                assert_eq!(ring.current().map(|r| r.sketch), Some(newest));
            }
        }
        assert!(hourly.bins.len() > 25 * 4, "several bins per span");
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
    fn the_chart_reads_each_slots_mean_and_leaves_out_slots_without_a_latency() {
        let t0 = 1_800_000_000 - 1_800_000_000 % DAY;
        let mut h = ServerHistory::new(T);
        // Slot 1: 50 and 400 ms and a failed round; slot 2: only failed rounds; slot 3: 7 ms.
        h.record_sample(sample(t0, true, 50.0));
        h.record_sample(sample(t0 + 60, true, 400.0));
        h.record_sample(Sample {
            latency_ms: None,
            ..sample(t0 + 120, false, 0.0)
        });
        for k in 0..3 {
            h.record_sample(Sample {
                latency_ms: None,
                ..sample(t0 + FIVE_MIN + k * 60, false, 0.0)
            });
        }
        h.record_sample(sample(t0 + 2 * FIVE_MIN, true, 7.25));
        let now = t0 + 2 * FIVE_MIN + 10;
        assert_eq!(
            h.latency_series(now),
            vec![(t0, 225.0), (t0 + 2 * FIVE_MIN, 7.25)]
        );
        // Every round counts for uptime, with or without a latency.
        assert_eq!(h.shown.five_min.uptime(now, HOUR), (3, 7));
        // Restored from the store's rows (sums and counts), the chart reads the same means.
        let rows: Vec<BucketRow> = [(t0, 3, 2, 450.0, 2), (t0 + FIVE_MIN, 3, 0, 0.0, 0)]
            .into_iter()
            .map(|(start, rounds, up, latency_sum, latency_n)| BucketRow {
                width: FIVE_MIN,
                start,
                rounds,
                up,
                latency_sum,
                latency_n,
            })
            .chain(h.shown.five_min.current())
            .collect();
        let back = ServerHistory::restore(
            T,
            Restored {
                buckets: rows,
                ..Restored::default()
            },
            now,
        );
        assert_eq!(back.latency_series(now), h.latency_series(now));
        assert_eq!(back.shown.five_min.uptime(now, HOUR), (3, 7));
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
