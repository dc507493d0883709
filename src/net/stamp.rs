//! Request times from the kernel's receive timestamps (issue "Numbers that agree with each
//! other"). A probe's request time used to end when the task reading the socket next ran: on a
//! busy monitor (1,000 other servers probed at once, two shared cores) that wait landed in the
//! sample and made the p99 error up to 18 ms. Here the socket asks the kernel to stamp
//! every segment as it arrives (`SO_TIMESTAMPNS`), and the exchange is timed from the moment
//! the request's first bytes are handed to the kernel to the arrival stamp of the last bytes
//! read before the response head was complete, whenever the reading task got to them. (The
//! last, not the first: TLS 1.3 session tickets can arrive after the request has gone out,
//! ahead of the response.)
//!
//! The TLS handshake is timed the same way: from the ClientHello leaving to the arrival of the
//! server's last flight. What that leaves out is the monitor's own work after the last flight
//! (checking the certificate chain, deriving keys) and any wait for a thread — time the server
//! is not responsible for.
//!
//! Both ends are on the wall clock (`CLOCK_REALTIME`, which the kernel stamps use). A reading
//! that cannot be right — the clock stepped, no stamp came, a stamp older than the request —
//! is not used, and the time measured in user space stands.

use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Where the current exchange stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Exchange {
    /// Nothing being timed.
    #[default]
    Idle,
    /// Armed: the next write starts the exchange.
    Armed,
    /// The request went out at this wall-clock time (ns since the epoch).
    Sent(i128),
    /// Reply bytes arrived, the last of them at this kernel stamp.
    Answered { sent: i128, arrived: i128 },
}

/// The timing state of one connection, shared by its socket and the code that sends requests.
#[derive(Debug, Default)]
pub(crate) struct Stamps(Mutex<Exchange>);

impl Stamps {
    /// Starts timing an exchange (a request, a handshake): call just before it starts. It
    /// ends with the last bytes read before [`Stamps::exchange`] is called, once the reply
    /// (the response head, the handshake) is complete.
    pub(crate) fn arm(&self) {
        *self.lock() = Exchange::Armed;
    }

    /// The time from the request leaving to the last reply bytes read so far arriving, by the
    /// kernel's stamps, if the exchange since [`Stamps::arm`] was timed that way.
    pub(crate) fn exchange(&self) -> Option<Duration> {
        match std::mem::take(&mut *self.lock()) {
            Exchange::Answered { sent, arrived } => {
                u64::try_from(arrived - sent).ok().map(Duration::from_nanos)
            }
            _ => None,
        }
    }

    /// The first bytes of the exchange went out; they were handed to the kernel no earlier
    /// than `at`.
    fn sent(&self, at: i128) {
        let mut state = self.lock();
        if *state == Exchange::Armed {
            *state = Exchange::Sent(at);
        }
    }

    fn arrived(&self, stamp: i128) {
        let mut state = self.lock();
        match *state {
            // Bytes that arrived before the request went out (a session ticket read late) are
            // not the reply.
            Exchange::Sent(sent) | Exchange::Answered { sent, .. } if stamp >= sent => {
                *state = Exchange::Answered {
                    sent,
                    arrived: stamp,
                };
            }
            _ => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Exchange> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn wall_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// A TCP stream whose reads carry the kernel's arrival stamps into [`Stamps`].
#[derive(Debug)]
pub(crate) struct StampedTcp {
    inner: TcpStream,
    stamps: Arc<Stamps>,
}

impl StampedTcp {
    /// Wraps `inner`, asking the kernel for receive stamps. Without them (an old kernel), the
    /// stream works as before and [`Stamps::exchange`] gives `None`.
    pub(crate) fn new(inner: TcpStream) -> StampedTcp {
        let _ = setsockopt(&inner, sockopt::ReceiveTimestampns, &true);
        StampedTcp {
            inner,
            stamps: Arc::new(Stamps::default()),
        }
    }

    /// The connection's timing state.
    pub(crate) fn stamps(&self) -> Arc<Stamps> {
        self.stamps.clone()
    }
}

/// One `recvmsg`: the bytes read and the arrival stamp of the data (ns since the epoch).
fn receive(socket: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<i128>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let stamp = msg.cmsgs().ok().and_then(|mut c| {
        c.find_map(|m| match m {
            ControlMessageOwned::ScmTimestampns(t) => {
                Some(i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
            }
            _ => None,
        })
    });
    Ok((msg.bytes, stamp))
}

impl AsyncRead for StampedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match this
                .inner
                .try_io(Interest::READABLE, || receive(&this.inner, unfilled))
            {
                Ok((n, stamp)) => {
                    buf.advance(n);
                    if let (Some(stamp), true) = (stamp, n > 0) {
                        this.stamps.arrived(stamp);
                    }
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale: try_io cleared it; wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for StampedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // The clock is read before the write: on loopback the reply can be stamped before
        // this thread, preempted after the write, would read it.
        let before = wall_ns();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.stamps.sent(before);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exchange_runs_from_the_first_write_to_the_last_arrival_after_it() {
        let s = Stamps::default();
        // Not armed: nothing is timed.
        s.sent(wall_ns());
        s.arrived(wall_ns());
        assert_eq!(s.exchange(), None);
        // Armed and sent; a stamp from before the request (a late-read session ticket) is
        // not the reply; the exchange ends with the last bytes read.
        s.arm();
        let before = wall_ns() - 5_000_000;
        s.sent(wall_ns());
        s.arrived(before);
        let Exchange::Sent(sent) = *s.lock() else {
            panic!("an earlier stamp is not the reply")
        };
        s.sent(wall_ns()); // a second write does not restart it
        s.arrived(sent + 1_000_000);
        s.arrived(sent + 2_500_000);
        assert_eq!(s.exchange(), Some(Duration::from_micros(2500)));
        assert_eq!(s.exchange(), None, "taken once");
    }
}
