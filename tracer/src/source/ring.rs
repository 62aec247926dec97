//! Reading events: the live ring buffer, polled through tokio's AsyncFd and, when the kernel
//! batches its wakeups, on a short timer as well.

use std::{io, time::Duration};

use aya::maps::MapData;
use tokio::io::unix::AsyncFd;

use super::consumer::RingConsumer;

/// How long records may wait in the ring buffer when the kernel does not wake us for each
/// one: the lag this adds to live output.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The live event stream of the ring buffer `EVENTS`.
pub struct RingSource {
    ring: AsyncFd<RingConsumer>,
    poll: Option<Duration>,
    /// When the timer drains next; kept here so a cancelled wait does not restart it.
    next_poll: tokio::time::Instant,
}

impl RingSource {
    /// Maps the ring buffer `map` and wraps it for async readiness (epoll on its fd); with
    /// `poll`, the buffer is also drained that often (needed when the kernel submits with
    /// `BPF_RB_NO_WAKEUP`).
    pub fn new(map: MapData, poll: Option<Duration>) -> io::Result<Self> {
        let ring = RingConsumer::new(map)?;
        // SAFETY: the consumer owns the map's fd, which stays open and unchanged for as long
        // as it lives, and the AsyncFd owns the consumer.
        Ok(Self {
            ring: unsafe { AsyncFd::register(ring)? },
            poll,
            next_poll: tokio::time::Instant::now() + poll.unwrap_or_default(),
        })
    }

    /// Waits until records are available (or the poll interval passed), then hands each one
    /// to `each`; returns how many. Cancel-safe: nothing is taken before the wait ends.
    pub async fn next_batch(&mut self, mut each: impl FnMut(&[u8])) -> io::Result<usize> {
        let Some(poll) = self.poll else {
            return self.next_woken(&mut each).await;
        };
        let deadline = self.next_poll;
        let count = tokio::select! {
            woken = self.next_woken(&mut each) => woken?,
            () = tokio::time::sleep_until(deadline) => self.ring.get_mut().drain(&mut each),
        };
        self.next_poll = tokio::time::Instant::now() + poll;
        Ok(count)
    }

    async fn next_woken(&mut self, each: &mut impl FnMut(&[u8])) -> io::Result<usize> {
        let mut guard = self.ring.readable_mut().await?;
        let count = guard.get_inner_mut().drain(each);
        guard.clear_ready();
        Ok(count)
    }

    /// Hands every record available now to `each` without waiting; returns how many.
    pub fn drain_now(&mut self, mut each: impl FnMut(&[u8])) -> usize {
        self.ring.get_mut().drain(&mut each)
    }
}
