//! The monitor's own trouble: it could not create a socket or allocate (EMFILE, ENFILE,
//! ENOBUFS, ENOMEM). A probe or lookup that fails this way says nothing about the server, so
//! its round is not counted (like an address this monitor has no route to), and the trouble
//! is counted (`mxping_monitor_errors_total{kind}`), logged at most once a minute per kind,
//! and shown in `/healthz` and the page's footer while it lasts.

use std::error::Error as StdError;
use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};

/// How long a trouble is shown after it was last seen.
pub const SHOWN_FOR: Duration = Duration::from_secs(300);

/// What the monitor ran out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trouble {
    /// EMFILE or ENFILE: no file descriptor for a socket (the process's or the system's
    /// open-file limit).
    OpenFiles,
    /// ENOBUFS: the kernel had no buffer space for the socket.
    Buffers,
    /// ENOMEM: no memory.
    Memory,
}

impl Trouble {
    /// Every kind, in the order they are shown.
    pub const ALL: [Trouble; 3] = [Trouble::OpenFiles, Trouble::Buffers, Trouble::Memory];

    /// The contract name (metric label, JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Trouble::OpenFiles => "open_files",
            Trouble::Buffers => "buffers",
            Trouble::Memory => "memory",
        }
    }

    /// What it means, for a log line or `/healthz`.
    pub fn explain(self) -> &'static str {
        match self {
            Trouble::OpenFiles => {
                "the monitor ran out of file descriptors (its open-file limit); raise \
                 LimitNOFILE / ulimit -n, or lower [web] max_connections or [monitor] concurrency"
            }
            Trouble::Buffers => "the kernel had no buffer space for the monitor's sockets",
            Trouble::Memory => "the monitor could not allocate memory",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The trouble an io error reports, if it is one.
    pub fn of_io(e: &io::Error) -> Option<Trouble> {
        use nix::errno::Errno;
        if e.kind() == io::ErrorKind::OutOfMemory {
            return Some(Trouble::Memory);
        }
        let code = e.raw_os_error()?;
        match Errno::from_raw(code) {
            Errno::EMFILE | Errno::ENFILE => Some(Trouble::OpenFiles),
            Errno::ENOBUFS => Some(Trouble::Buffers),
            Errno::ENOMEM => Some(Trouble::Memory),
            _ => None,
        }
    }

    /// The trouble anywhere in an error chain (hyper wraps io, hickory wraps io), if any.
    pub fn in_chain(err: &(dyn StdError + 'static)) -> Option<Trouble> {
        let mut next = Some(err);
        for _ in 0..16 {
            let e = next?;
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if let Some(t) = Trouble::of_io(io) {
                    return Some(t);
                }
                if let Some(inner) = io.get_ref() {
                    next = Some(inner as &(dyn StdError + 'static));
                    continue;
                }
            }
            next = e.source();
        }
        None
    }

    /// Whether this process can open a socket now: `Some(trouble)` when it cannot for one
    /// of these reasons. For failures whose cause a library does not pass on (a resolver
    /// that says only "no connections").
    pub fn now() -> Option<Trouble> {
        match std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0)) {
            Ok(_) => None,
            Err(e) => Trouble::of_io(&e),
        }
    }
}

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
        let s = &mut seen[trouble.index()];
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
                let s = &seen[t.index()];
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
        assert_eq!(Trouble::in_chain(&outer), Some(Trouble::OpenFiles));
        assert_eq!(Trouble::in_chain(&io::Error::other("plain")), None);
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
