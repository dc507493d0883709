//! SRV target ordering (RFC 2782): ascending priority; within a priority, a weighted random
//! order where a record's chance of coming next is proportional to its weight. Records of
//! weight 0 are never picked in the weighted pass: they are shuffled and put last in their
//! priority group, as Synapse does. The RNG is a parameter so tests can seed it.

use rand::Rng;
use rand::seq::SliceRandom;

use crate::net::dns::SrvRecord;

/// The order in which a homeserver would try `records`.
pub fn order<R: Rng + ?Sized>(records: &[SrvRecord], rng: &mut R) -> Vec<SrvRecord> {
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(sorted.len());
    for group in sorted.chunk_by(|a, b| a.priority == b.priority) {
        let (mut weighted, mut zero): (Vec<_>, Vec<_>) =
            group.iter().cloned().partition(|r| r.weight > 0);
        while !weighted.is_empty() {
            let total: u32 = weighted.iter().map(|r| u32::from(r.weight)).sum();
            let mut pick = rng.random_range(1..=total);
            let index = weighted
                .iter()
                .position(|r| {
                    let w = u32::from(r.weight);
                    if pick <= w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .expect("pick is within the total weight");
            out.push(weighted.remove(index));
        }
        zero.shuffle(rng);
        out.extend(zero);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rec(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 8448,
            target: target.into(),
        }
    }

    /// Edge case E4: `10 60 a`, `10 20 b`, `10 0 c`, `20 0 d`.
    #[test]
    fn priority_then_weight_with_zero_weight_last() {
        let records = [
            rec(20, 0, "d"),
            rec(10, 0, "c"),
            rec(10, 20, "b"),
            rec(10, 60, "a"),
        ];
        let mut rng = StdRng::seed_from_u64(7);
        let mut a_first = 0;
        let runs = 4000;
        for _ in 0..runs {
            let order: Vec<String> = order(&records, &mut rng)
                .into_iter()
                .map(|r| r.target)
                .collect();
            assert_eq!(order.len(), 4);
            assert_eq!(
                order[2], "c",
                "weight 0 comes last in its priority: {order:?}"
            );
            assert_eq!(
                order[3], "d",
                "higher priority value comes after: {order:?}"
            );
            if order[0] == "a" {
                a_first += 1;
            }
        }
        // a should come first with probability 60/80 = 0.75.
        let share = f64::from(a_first) / f64::from(runs);
        assert!((0.72..0.78).contains(&share), "a first in {share} of runs");
    }

    #[test]
    fn same_seed_same_order() {
        let records: Vec<_> = (0..6).map(|i| rec(1, 10 + i, &format!("t{i}"))).collect();
        let a = order(&records, &mut StdRng::seed_from_u64(42));
        let b = order(&records, &mut StdRng::seed_from_u64(42));
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort_by(|x, y| x.target.cmp(&y.target));
        assert_eq!(sorted, records, "every record appears exactly once");
    }

    #[test]
    fn all_zero_weights_are_all_kept() {
        let records = [rec(5, 0, "x"), rec(5, 0, "y"), rec(1, 0, "first")];
        let got = order(&records, &mut StdRng::seed_from_u64(1));
        assert_eq!(got[0].target, "first");
        assert_eq!(got.len(), 3);
    }
}
