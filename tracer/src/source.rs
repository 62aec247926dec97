//! Reading events: the live ring buffer, polled through tokio's AsyncFd.

use std::io;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

/// The live event stream of the ring buffer `EVENTS`.
pub struct RingSource {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl RingSource {
    /// Wraps the ring buffer for async readiness (epoll on its fd).
    pub fn new(ring: RingBuf<MapData>) -> io::Result<Self> {
        // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as long
        // as the RingBuf lives, and the AsyncFd owns the RingBuf.
        Ok(Self {
            ring: unsafe { AsyncFd::register(ring)? },
        })
    }

    /// Waits until records are available, then hands each one to `each`; returns how many.
    pub async fn next_batch(&mut self, mut each: impl FnMut(&[u8])) -> io::Result<usize> {
        let mut guard = self.ring.readable_mut().await?;
        let count = drain(guard.get_inner_mut(), &mut each);
        guard.clear_ready();
        Ok(count)
    }

    /// Hands every record available now to `each` without waiting; returns how many.
    pub fn drain_now(&mut self, mut each: impl FnMut(&[u8])) -> usize {
        drain(self.ring.get_mut(), &mut each)
    }
}

fn drain(ring: &mut RingBuf<MapData>, each: &mut impl FnMut(&[u8])) -> usize {
    let mut count = 0;
    while let Some(item) = ring.next() {
        each(&item);
        count += 1;
    }
    count
}
