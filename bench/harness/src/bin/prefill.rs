//! Fills an mxping history store with 24 hours of 5-minute and hourly rollups, latency
//! sketches (24 hourly, 7 daily), 90 days of daily rollups and the last rounds for every server in
//! `--servers` (one name per line), so a benchmark can measure memory with full history
//! without waiting a day.

use std::time::Duration;

use mxping::testing::Sketch;
use mxping::testing::Status;
use mxping::testing::{BucketRow, Delta, Sample, SketchRow, StatusState};
use mxping::testing::{Retention, RoundRecord, Store};
use mxping_bench::required;

fn main() {
    let names: Vec<String> = std::fs::read_to_string(required("--servers"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let retention = Retention {
        raw: Duration::from_secs(3 * 86_400),
        rollups: Duration::from_secs(400 * 86_400),
    };
    let store = Store::open(
        std::path::Path::new(&required("--data-dir")),
        Duration::from_secs(3600),
        retention,
    )
    .expect("the store opens");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (i, name) in names.iter().enumerate() {
        let mut buckets = Vec::new();
        let slot = |w: i64, back: i64| now - now.rem_euclid(w) - back * w;
        for b in 1..288 {
            buckets.push(BucketRow {
                width: 300,
                start: slot(300, b),
                rounds: 5,
                up: 5,
                latency_sum: 200.0,
                latency_n: 5,
            });
        }
        for b in 1..168 {
            buckets.push(BucketRow {
                width: 3600,
                start: slot(3600, b),
                rounds: 60,
                up: 60,
                latency_sum: 2400.0,
                latency_n: 60,
            });
        }
        for b in 1..90 {
            buckets.push(BucketRow {
                width: 86_400,
                start: slot(86_400, b),
                rounds: 1440,
                up: 1440,
                latency_sum: 57600.0,
                latency_n: 1440,
            });
        }
        // An hour of rounds at 38-44 ms (a jitter of a few per cent: a handful of buckets).
        let mut hour = Sketch::default();
        for k in 0..60 {
            hour.add(38.0 + f64::from(k % 7));
        }
        for h in 1..24 {
            // Earlier hours' and days' sketches go in as their own records.
            let mut r = record(name, now - h * 3600);
            r.delta.buckets.clear();
            r.delta.sketches = vec![SketchRow {
                width: 3600,
                start: slot(3600, h),
                sketch: hour.clone(),
            }];
            if h < 7 {
                r.delta.sketches.push(SketchRow {
                    width: 86_400,
                    start: slot(86_400, h),
                    sketch: hour.clone(),
                });
            }
            store.write(r);
        }
        let mut r = record(name, now - 60);
        r.delta.buckets = buckets;
        store.write(r);
        if i % 1000 == 999 {
            store.flush();
        }
    }
    store.close();
    println!("prefill: {} servers", names.len());
}

fn record(name: &str, at: i64) -> RoundRecord {
    let sample = Sample {
        at,
        up: true,
        all_ok: true,
        latency_ms: Some(40.0),
        error: None,
    };
    RoundRecord {
        server: name.to_owned(),
        delta: Delta {
            sample,
            addresses: Vec::new(),
            buckets: Vec::new(),
            sketches: Vec::new(),
            open: Default::default(),
            state: StatusState {
                status: Some(Status::Green),
                ..StatusState::default()
            },
        },
        maintenance: false,
        software: Some(mxping::testing::Software {
            name: "Synapse".into(),
            version: "1.163.2".into(),
        }),
    }
}
