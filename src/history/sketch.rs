//! Latency quantile sketches with a known error, in the manner of DDSketch (Masson, Rim & Lee,
//! VLDB 2019). Above 25 ms, bucket `i` holds the values in `(γ^(i-1), γ^i]` with
//! `γ = (1 + α) / (1 − α)` and reads back as `2γ^i / (γ + 1)`, within `α` = 1 % of every value
//! in it. Below 25 ms, where 1 % is less than a quarter of a millisecond, buckets are 0.5 ms
//! wide and read back as their middle, within 0.25 ms. So a quantile is within 1 % (or 0.25 ms)
//! of a value the rounds really had: the nearest-rank sample, ⌈q·n⌉-th of n.
//!
//! Sketches are sparse (only the buckets in use: a server's latency usually needs a handful)
//! and mergeable by adding counts, so hourly and daily sketches combine into any window.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The relative accuracy above 25 ms.
pub const ALPHA: f64 = 0.01;
/// The absolute accuracy at and below 25 ms, in milliseconds.
pub const ABSOLUTE_MS: f64 = LINEAR_WIDTH_MS / 2.0;

const LINEAR_WIDTH_MS: f64 = 0.5;
/// Where `α·x` reaches half the linear width: above it, logarithmic buckets are the finer.
const LINEAR_UP_TO_MS: f64 = 25.0;
const LINEAR_BUCKETS: u16 = 50;
/// Logarithmic bucket `i` is stored as `i + LOG_OFFSET`, above every linear bucket (just over
/// 25 ms is logarithmic bucket 161, stored as 261).
const LOG_OFFSET: f64 = 100.0;

static LN_GAMMA: LazyLock<f64> = LazyLock::new(|| ((1.0 + ALPHA) / (1.0 - ALPHA)).ln());

/// A sparse sketch: the bins in use, in bucket order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sketch {
    bins: Vec<Bin>,
}

/// A bucket and how many values it holds: 6 bytes, where a `(u16, u32)` pads to 8 (the
/// bins are most of what a server's latency history takes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(2))]
pub(crate) struct Bin {
    bucket: u16,
    count: u32,
}

impl Bin {
    fn new(bucket: u16, count: u32) -> Bin {
        Bin { bucket, count }
    }

    fn bucket(self) -> u16 {
        self.bucket
    }

    fn count(self) -> u32 {
        self.count
    }
}

/// The bucket of `ms`: 0 for zero (and anything not positive), 1–50 linear, then logarithmic.
fn bucket(ms: f64) -> u16 {
    if ms.is_nan() || ms <= 0.0 {
        0
    } else if ms <= LINEAR_UP_TO_MS {
        ((ms / LINEAR_WIDTH_MS).ceil() as u16).clamp(1, LINEAR_BUCKETS)
    } else {
        // `as` saturates: an absurd value lands in the last bucket.
        ((ms.ln() / *LN_GAMMA).ceil() + LOG_OFFSET) as u16
    }
}

/// The value a bucket stands for, in milliseconds.
fn value(bucket: u16) -> f64 {
    match bucket {
        0 => 0.0,
        b if b <= LINEAR_BUCKETS => (f64::from(b) - 0.5) * LINEAR_WIDTH_MS,
        b => {
            let gamma = LN_GAMMA.exp();
            2.0 * ((f64::from(b) - LOG_OFFSET) * *LN_GAMMA).exp() / (gamma + 1.0)
        }
    }
}

/// Counts one latency, in milliseconds, in the sketch held in `bins[from..]` (the bins of a
/// sketch, in bucket order, at the end of a vector that may hold others before it). Returns
/// whether it took a new bin.
pub(crate) fn count_in(bins: &mut Vec<Bin>, from: usize, ms: f64) -> bool {
    let b = bucket(ms);
    match bins[from..].binary_search_by_key(&b, |e| e.bucket()) {
        Ok(i) => {
            let bin = &mut bins[from + i];
            *bin = Bin::new(b, bin.count().saturating_add(1));
            false
        }
        Err(i) => {
            bins.insert(from + i, Bin::new(b, 1));
            true
        }
    }
}

/// The quantile `q` (0–1) of the sketches whose bins are `sketches`, together: see
/// [`Sketch::quantile`].
pub(crate) fn quantile_of<'a>(
    sketches: impl IntoIterator<Item = &'a [Bin]>,
    q: f64,
) -> Option<f64> {
    let mut merged: BTreeMap<u16, u64> = BTreeMap::new();
    for bins in sketches {
        for bin in bins {
            *merged.entry(bin.bucket()).or_default() += u64::from(bin.count());
        }
    }
    let total: u64 = merged.values().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    merged.into_iter().find_map(|(b, c)| {
        seen += c;
        (seen >= rank).then(|| value(b))
    })
}

impl Sketch {
    /// Counts one latency, in milliseconds.
    pub fn add(&mut self, ms: f64) {
        count_in(&mut self.bins, 0, ms);
    }

    /// A sketch of `bins`, which must be in bucket order (as [`Sketch::bins`] gives them).
    pub(crate) fn from_bins(bins: Vec<Bin>) -> Sketch {
        debug_assert!(bins.windows(2).all(|w| w[0].bucket() < w[1].bucket()));
        Sketch { bins }
    }

    /// The bins in use, in bucket order.
    pub(crate) fn bins(&self) -> &[Bin] {
        &self.bins
    }

    /// The values counted.
    pub fn count(&self) -> u64 {
        self.bins.iter().map(|b| u64::from(b.count())).sum()
    }

    /// The quantile `q` (0–1) of `sketches` together, in milliseconds: the bucket holding the
    /// nearest-rank value (rank ⌈q·n⌉), read back within 1 % (or 0.25 ms) of it. `None` when
    /// empty.
    pub fn quantile<'a>(sketches: impl IntoIterator<Item = &'a Sketch>, q: f64) -> Option<f64> {
        quantile_of(sketches.into_iter().map(|s| s.bins()), q)
    }

    /// The stored form: 6 bytes a bucket (index u16, count u32, little-endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bins
            .iter()
            .flat_map(|b| (b.bucket().to_le_bytes().into_iter()).chain(b.count().to_le_bytes()))
            .collect()
    }

    /// Reads [`Sketch::to_bytes`]'s form; `None` if it is not one (wrong length, buckets out
    /// of order).
    pub fn from_bytes(bytes: &[u8]) -> Option<Sketch> {
        if !bytes.len().is_multiple_of(6) {
            return None;
        }
        let bins: Vec<Bin> = bytes
            .chunks_exact(6)
            .map(|c| {
                Bin::new(
                    u16::from_le_bytes([c[0], c[1]]),
                    u32::from_le_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect();
        bins.windows(2)
            .all(|w| w[0].bucket() < w[1].bucket())
            .then_some(Sketch { bins })
    }

    /// Buckets in use (for memory accounting and tests).
    pub fn buckets(&self) -> usize {
        self.bins.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nearest-rank quantile of `values`, exactly.
    fn exact(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = ((q * v.len() as f64).ceil() as usize).max(1);
        v[rank - 1]
    }

    #[test]
    fn every_quantile_is_within_alpha_of_the_exact_value() {
        // A spread from 0.05 ms to 30 s, log-uniform, plus a constant server's values.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut values: Vec<f64> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                0.05 * (600_000f64).powf(u)
            })
            .collect();
        values.extend(std::iter::repeat_n(251.387, 5000));
        let mut s = Sketch::default();
        for v in &values {
            s.add(*v);
        }
        for q in [0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let got = Sketch::quantile([&s], q).unwrap();
            let want = exact(&values, q);
            assert!(
                (got - want).abs() <= (ALPHA * want).max(ABSOLUTE_MS) + 1e-9,
                "q={q}: {got} vs exact {want}"
            );
        }
    }

    #[test]
    fn a_constant_latency_reads_back_as_itself() {
        let mut s = Sketch::default();
        for _ in 0..1000 {
            s.add(250.6);
        }
        assert_eq!(s.buckets(), 1);
        let p50 = Sketch::quantile([&s], 0.5).unwrap();
        assert!((p50 - 250.6).abs() / 250.6 <= ALPHA, "{p50}");
    }

    #[test]
    fn merged_sketches_answer_as_one() {
        let (mut a, mut b, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
        for i in 0..500 {
            let v = 1.0 + f64::from(i) * 0.37;
            if i % 3 == 0 { &mut a } else { &mut b }.add(v);
            all.add(v);
        }
        for q in [0.5, 0.95] {
            assert_eq!(Sketch::quantile([&a, &b], q), Sketch::quantile([&all], q));
        }
        assert_eq!(Sketch::quantile([&Sketch::default()], 0.5), None);
    }

    #[test]
    fn zero_and_extreme_values_stay_in_range() {
        let mut s = Sketch::default();
        for v in [0.0, -1.0, f64::NAN, 1e12, f64::INFINITY] {
            s.add(v);
        }
        assert_eq!(Sketch::quantile([&s], 0.5), Some(0.0));
        assert!(Sketch::quantile([&s], 1.0).unwrap() > 1e9);
        // The linear buckets: 0.0004 ms and 0.5 ms share the first, read back as 0.25 ms.
        let mut small = Sketch::default();
        small.add(0.0004);
        small.add(0.5);
        assert_eq!(small.buckets(), 1);
        assert_eq!(Sketch::quantile([&small], 0.5), Some(0.25));
        // 25 ms is the last linear bucket; just above it the first logarithmic one.
        assert_eq!((bucket(25.0), bucket(25.0001)), (50, 261));
    }

    #[test]
    fn the_stored_form_round_trips_and_bad_bytes_are_refused() {
        let mut s = Sketch::default();
        for v in [0.0, 0.7, 20.0, 20.01, 4000.0, 4000.0] {
            s.add(v);
        }
        assert_eq!(Sketch::from_bytes(&s.to_bytes()), Some(s.clone()));
        assert_eq!(std::mem::size_of::<Bin>(), 6);
        assert_eq!(Sketch::from_bytes(&[1, 2, 3]), None);
        let mut reversed = s.to_bytes()[6..12].to_vec();
        reversed.extend_from_slice(&s.to_bytes()[..6]);
        assert_eq!(Sketch::from_bytes(&reversed), None);
    }
}
