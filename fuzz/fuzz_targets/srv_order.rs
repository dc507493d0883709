//! SRV ordering: a permutation, priorities ascending, weight 0 last within each priority.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxping::testing::srv_order as order;
use mxping::testing::SrvRecord;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Some((seed, rest)) = data.split_first() else { return };
    let records: Vec<SrvRecord> = rest
        .chunks_exact(5)
        .enumerate()
        .map(|(i, c)| SrvRecord {
            priority: u16::from(c[0] % 4),
            weight: u16::from_le_bytes([c[1], c[2]]),
            port: u16::from_le_bytes([c[3], c[4]]),
            target: format!("t{i}"),
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(*seed));
    let ordered = order(&records, &mut rng);
    assert_eq!(ordered.len(), records.len());
    let mut a: Vec<_> = ordered.iter().map(|r| r.target.clone()).collect();
    let mut b: Vec<_> = records.iter().map(|r| r.target.clone()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for w in ordered.windows(2) {
        assert!(w[0].priority <= w[1].priority);
        if w[0].priority == w[1].priority && w[0].weight == 0 {
            assert_eq!(w[1].weight, 0, "weight 0 comes last in its priority");
        }
    }
});
