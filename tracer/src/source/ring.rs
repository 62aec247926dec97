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

/// The most bytes of records one batch takes (8192 events). What a batch makes downstream
/// (events held in the reorder window, journeys waiting to be shown) stays this size
/// however far behind the reader falls, instead of growing to the ring's whole size.
pub const BATCH_BYTES: usize = 512 << 10;

/// The live event stream of the ring buffer `EVENTS`.
pub struct RingSource {
    ring: AsyncFd<RingConsumer>,
    poll: Option<Duration>,
    /// The last batch stopped at its budget: the next one takes more without waiting.
    more: bool,
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
            more: false,
            next_poll: tokio::time::Instant::now() + poll.unwrap_or_default(),
        })
    }

    /// Waits until records are available (or the poll interval passed), then hands each
    /// event in them to `each`, at most [`BATCH_BYTES`] of records; returns how many events.
    /// Cancel-safe: nothing is taken before the wait ends.
    pub async fn next_batch(&mut self, mut each: impl FnMut(&[u8])) -> io::Result<usize> {
        if self.more {
            return Ok(self.drain_now(each));
        }
        let Some(poll) = self.poll else {
            return self.next_woken(&mut each).await;
        };
        let deadline = self.next_poll;
        let count = tokio::select! {
            woken = self.next_woken(&mut each) => woken?,
            () = tokio::time::sleep_until(deadline) => self.drain_now(&mut each),
        };
        self.next_poll = tokio::time::Instant::now() + poll;
        Ok(count)
    }

    async fn next_woken(&mut self, each: &mut impl FnMut(&[u8])) -> io::Result<usize> {
        let mut guard = self.ring.readable_mut().await?;
        let (count, more) = drain_events(guard.get_inner_mut(), each);
        // Cleared even when records remain: `more` makes the next batch take them.
        guard.clear_ready();
        self.more = more;
        Ok(count)
    }

    /// Hands the events available now to `each` without waiting, at most [`BATCH_BYTES`] of
    /// records; returns how many. [`Self::pending`] says whether it stopped at that budget.
    pub fn drain_now(&mut self, mut each: impl FnMut(&[u8])) -> usize {
        let (count, more) = drain_events(self.ring.get_mut(), &mut each);
        self.more = more;
        count
    }

    /// Whether the last batch stopped at its budget with records still waiting.
    pub fn pending(&self) -> bool {
        self.more
    }

    /// Hands every event available now to `each`, batch after batch; returns how many.
    pub fn drain_all(&mut self, mut each: impl FnMut(&[u8])) -> usize {
        let mut count = self.drain_now(&mut each);
        while self.more {
            count += self.drain_now(&mut each);
        }
        count
    }
}

/// Hands each event of the records available now, at most [`BATCH_BYTES`] of them, to
/// `each`; returns how many events and whether records were left for the next batch.
fn drain_events(ring: &mut RingConsumer, each: &mut impl FnMut(&[u8])) -> (usize, bool) {
    let mut count = 0;
    let drained = ring.drain(BATCH_BYTES, &mut |record: &[u8]| {
        count += split_record(record, each)
    });
    (count, drained.more)
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
