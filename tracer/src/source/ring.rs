//! Reading events: the live ring buffer, polled through tokio's AsyncFd and, when the kernel
//! batches its wakeups, on a short timer as well.

use std::{io, time::Duration};

use aya::maps::MapData;
use tokio::io::unix::AsyncFd;
use tracer_common::EVENT_SIZE;

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

    /// Waits until records are available (or the poll interval passed), then hands each
    /// event in them to `each`; returns how many events. Cancel-safe: nothing is taken
    /// before the wait ends.
    pub async fn next_batch(&mut self, mut each: impl FnMut(&[u8])) -> io::Result<usize> {
        let Some(poll) = self.poll else {
            return self.next_woken(&mut each).await;
        };
        let deadline = self.next_poll;
        let count = tokio::select! {
            woken = self.next_woken(&mut each) => woken?,
            () = tokio::time::sleep_until(deadline) => drain_events(self.ring.get_mut(), &mut each),
        };
        self.next_poll = tokio::time::Instant::now() + poll;
        Ok(count)
    }

    async fn next_woken(&mut self, each: &mut impl FnMut(&[u8])) -> io::Result<usize> {
        let mut guard = self.ring.readable_mut().await?;
        let count = drain_events(guard.get_inner_mut(), each);
        guard.clear_ready();
        Ok(count)
    }

    /// Hands every event available now to `each` without waiting; returns how many.
    pub fn drain_now(&mut self, mut each: impl FnMut(&[u8])) -> usize {
        drain_events(self.ring.get_mut(), &mut each)
    }
}

/// Hands each event of every record available now to `each`; returns how many events.
fn drain_events(ring: &mut RingConsumer, each: &mut impl FnMut(&[u8])) -> usize {
    let mut count = 0;
    ring.drain(&mut |record: &[u8]| count += split_record(record, each));
    count
}

/// Hands each event of one record to `each`: a record is one event or, for a NET_RX run's
/// batch (tracer-ebpf `batch`), several back to back. A record of another size goes whole,
/// for the decoder to refuse.
pub fn split_record(record: &[u8], each: &mut impl FnMut(&[u8])) -> usize {
    if record.len() <= EVENT_SIZE || !record.len().is_multiple_of(EVENT_SIZE) {
        each(record);
        return 1;
    }
    let mut count = 0;
    for event in record.chunks_exact(EVENT_SIZE) {
        each(event);
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_record_splits_into_its_events_in_order() {
        let record: Vec<u8> = (0..3 * EVENT_SIZE)
            .map(|i| (i / EVENT_SIZE) as u8)
            .collect();
        let mut seen = Vec::new();
        let count = split_record(&record, &mut |event: &[u8]| {
            seen.push((event.len(), event[0]));
        });
        assert_eq!(count, 3);
        assert_eq!(seen, [(64, 0), (64, 1), (64, 2)]);
    }

    #[test]
    fn one_event_and_odd_sizes_go_whole() {
        for len in [EVENT_SIZE, 10, EVENT_SIZE + 8, 0] {
            let record = vec![7u8; len];
            let mut seen = Vec::new();
            assert_eq!(
                split_record(&record, &mut |event: &[u8]| seen.push(event.len())),
                1
            );
            assert_eq!(seen, [len]);
        }
    }
}
