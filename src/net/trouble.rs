//! The monitor's own trouble: it could not create a socket or allocate (EMFILE, ENFILE,
//! ENOBUFS, ENOMEM). A probe or lookup that fails this way says nothing about the server, so
//! its round is not counted (like an address this monitor has no route to), and the trouble
//! is counted (`mxping_monitor_errors_total{kind}`), logged at most once a minute per kind,
//! and shown in `/healthz` and the page's footer while it lasts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, Opts, Registry};

use crate::error::Trouble;

/// How long a trouble is shown after it was last seen.
pub(crate) const SHOWN_FOR: Duration = Duration::from_secs(300);

/// Every trouble seen: counted, logged a minute apart, remembered for [`SHOWN_FOR`].
pub struct Troubles {
    counter: IntCounterVec,
    seen: Mutex<[Seen; 3]>,
}

#[derive(Clone, Default)]
struct Seen {
    first: Option<Instant>,
    last: Option<Instant>,
    logged: Option<Instant>,
    /// Since the last log line.
    unlogged: u64,
    what: String,
}

/// A trouble being shown: its kind, when it started (this spell) and when it was last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Current {
    /// What ran out.
    pub trouble: Trouble,
    /// How long ago it was first seen in this spell.
    pub since: Duration,
    /// How long ago it was last seen.
    pub last: Duration,
    /// What failed, the last time.
    pub what: String,
}

impl Troubles {
    /// A tracker whose counter is registered in `registry`.
    pub fn register(registry: &Registry) -> Troubles {
        let counter = IntCounterVec::new(
            Opts::new(
                "mxping_monitor_errors_total",
                "Probes, lookups and accepts that failed for the monitor's own lack of a resource: open_files (EMFILE/ENFILE), buffers (ENOBUFS), memory (ENOMEM). Such rounds are not counted against the servers.",
            ),
            &["kind"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(counter.clone()))
            .expect("registered once");
        for t in Trouble::ALL {
            counter.with_label_values(&[t.as_str()]);
        }
        Troubles {
            counter,
            seen: Mutex::default(),
        }
    }

    /// Records one failure for `trouble` while doing `what`.
    pub fn record(&self, trouble: Trouble, what: &str) {
        self.counter.with_label_values(&[trouble.as_str()]).inc();
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("troubles lock");
        let s = &mut seen[trouble as usize];
        if s.last.is_none_or(|last| now - last > SHOWN_FOR) {
            s.first = Some(now);
        }
        s.last = Some(now);
        s.unlogged += 1;
        what.clone_into(&mut s.what);
        if s.logged
            .is_none_or(|at| now - at >= Duration::from_secs(60))
        {
            tracing::warn!(
                "{} ({} failure(s) since the last such line; the last while {what}): these \
                 rounds are not counted against the servers",
                trouble.explain(),
                s.unlogged
            );
            s.logged = Some(now);
            s.unlogged = 0;
        }
    }

    /// The troubles seen within [`SHOWN_FOR`].
    pub fn current(&self) -> Vec<Current> {
        let now = Instant::now();
        let seen = self.seen.lock().expect("troubles lock");
        Trouble::ALL
            .iter()
            .filter_map(|&t| {
                let s = &seen[t as usize];
                let last = s.last?;
                (now - last <= SHOWN_FOR).then(|| Current {
                    trouble: t,
                    since: now - s.first.unwrap_or(last),
                    last: now - last,
                    what: s.what.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn descriptor_buffer_and_memory_errors_are_the_monitors_own() {
        let of = |code| Trouble::of_io(&io::Error::from_raw_os_error(code));
        assert_eq!(
            of(nix::errno::Errno::EMFILE as i32),
            Some(Trouble::OpenFiles)
        );
        assert_eq!(
            of(nix::errno::Errno::ENFILE as i32),
            Some(Trouble::OpenFiles)
        );
        assert_eq!(
            of(nix::errno::Errno::ENOBUFS as i32),
            Some(Trouble::Buffers)
        );
        assert_eq!(of(nix::errno::Errno::ENOMEM as i32), Some(Trouble::Memory));
        assert_eq!(of(nix::errno::Errno::ECONNREFUSED as i32), None);
        assert_eq!(of(nix::errno::Errno::ETIMEDOUT as i32), None);
        // Wrapped, as hyper and hickory pass them on.
        let inner = io::Error::from_raw_os_error(nix::errno::Errno::EMFILE as i32);
        let outer = io::Error::other(inner);
        assert_eq!(
            crate::net::classify::trouble_in(&outer),
            Some(Trouble::OpenFiles)
        );
        assert_eq!(
            crate::net::classify::trouble_in(&io::Error::other("plain")),
            None
        );
    }

    #[test]
    fn troubles_are_counted_and_shown_while_they_last() {
        let registry = Registry::new();
        let troubles = Troubles::register(&registry);
        assert!(troubles.current().is_empty());
        troubles.record(Trouble::OpenFiles, "probing a.test");
        troubles.record(Trouble::OpenFiles, "probing b.test");
        let current = troubles.current();
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].trouble, Trouble::OpenFiles);
        assert_eq!(current[0].what, "probing b.test");
        let text = {
            let mut out = Vec::new();
            prometheus::Encoder::encode(
                &prometheus::TextEncoder::new(),
                &registry.gather(),
                &mut out,
            )
            .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(
            text.contains("mxping_monitor_errors_total{kind=\"open_files\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("mxping_monitor_errors_total{kind=\"memory\"} 0"),
            "{text}"
        );
    }
}
