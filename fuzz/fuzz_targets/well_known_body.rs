//! The well-known body parser: never panics; a delegation always carries a valid name.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxping::testing::{WellKnownStatus, judge_answer};

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (if *s < 200 { 200 } else { 100 + u16::from(*s) }, rest),
        None => (200, data),
    };
    let report = judge_answer(status, body);
    match report.status {
        WellKnownStatus::Delegated => {
            let name = report.delegated.expect("a delegation has a name");
            assert!(mxping::testing::ServerName::parse(name.as_str()).is_ok());
        }
        _ => assert!(report.delegated.is_none() && report.problem.is_some()),
    }
});
