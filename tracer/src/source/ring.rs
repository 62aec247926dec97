//! Reading events: the live ring buffer, polled through tokio's AsyncFd and, when the kernel
//! batches its wakeups, on a short timer as well.

use std::{io, time::Duration};

use aya::maps::MapData;
use tokio::io::unix::AsyncFd;
use tracer_common::{EVENT_SIZE, Event, EventKind, FLAG_LOST_BEFORE, FLAG_RAISE};

use super::{consumer::RingConsumer, decode::bytes};

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
/// for the decoder to refuse. A NET_RX entry that carries its raise (`FLAG_RAISE`) goes as
/// the two events it stands for ([`unfold_raise`]). Returns how many events went.
pub fn split_record(record: &[u8], each: &mut impl FnMut(&[u8])) -> usize {
    if record.len() < EVENT_SIZE || !record.len().is_multiple_of(EVENT_SIZE) {
        each(record);
        return 1;
    }
    let mut count = 0;
    for event in record.chunks_exact(EVENT_SIZE) {
        count += if carries_raise(event) {
            unfold_raise(event, each)
        } else {
            each(event);
            1
        };
    }
    count
}

const KIND_AT: usize = std::mem::offset_of!(Event, kind);
const FLAGS_AT: usize = std::mem::offset_of!(Event, flags);

/// Whether a 64-byte record is a softirq entry with `FLAG_RAISE`.
#[inline]
fn carries_raise(event: &[u8]) -> bool {
    event[KIND_AT] == EventKind::SoftirqEntry as u8 && event[FLAGS_AT] & FLAG_RAISE != 0
}

/// Hands on the NET_RX raise an entry carries (when it had one: `addr2` not 0) as the
/// `SoftirqRaise` event the kernel would have emitted, stamped when it happened, then the
/// entry as a plain one (flag and `addr2` cleared): what follows sees the stream of direct
/// emission. The raise's task is not known (0). A lost-events flag moves to the raise,
/// the earlier of the two. Returns how many events went.
fn unfold_raise(record: &[u8], each: &mut impl FnMut(&[u8])) -> usize {
    // SAFETY: the record is EVENT_SIZE bytes (split_record's chunks); Event is repr(C) plain
    // data valid for any bits, and read_unaligned needs no alignment of the source.
    let mut entry: Event = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
    let raised = entry.addr2;
    entry.flags &= !FLAG_RAISE;
    entry.addr2 = 0;
    if raised == 0 {
        each(bytes(&entry));
        return 1;
    }
    let raise = Event {
        ts: raised,
        arg0: entry.arg0,
        cpu: entry.cpu,
        kind: EventKind::SoftirqRaise as u8,
        flags: entry.flags & FLAG_LOST_BEFORE,
        ..Event::ZERO
    };
    entry.flags &= !FLAG_LOST_BEFORE;
    each(bytes(&raise));
    each(bytes(&entry));
    2
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

    fn entry(raised: u64, flags: u8) -> Event {
        Event {
            ts: 5_000,
            addr2: raised,
            tid: 9,
            arg0: tracer_common::NET_RX_SOFTIRQ,
            cpu: 1,
            kind: EventKind::SoftirqEntry as u8,
            flags: flags | FLAG_RAISE,
            ..Event::ZERO
        }
    }

    fn events_of(record: &[u8]) -> Vec<Event> {
        let mut seen = Vec::new();
        let count = split_record(record, &mut |event: &[u8]| {
            seen.push(crate::source::decode::decode(event).expect("an event").0);
        });
        assert_eq!(count, seen.len());
        seen
    }

    #[test]
    fn an_entry_carrying_its_raise_unfolds_into_the_raise_then_the_entry() {
        let record = [bytes(&entry(4_200, FLAG_LOST_BEFORE)), bytes(&entry(0, 0))].concat();
        let seen = events_of(&record);
        let kinds: Vec<u8> = seen.iter().map(|event| event.kind).collect();
        let entry = EventKind::SoftirqEntry as u8;
        assert_eq!(kinds, [EventKind::SoftirqRaise as u8, entry, entry]);
        let (raise, first, second) = (&seen[0], &seen[1], &seen[2]);
        assert_eq!(
            (raise.ts, raise.cpu, raise.arg0, raise.tid),
            (4_200, 1, 3, 0)
        );
        // The lost flag goes to the earlier event; neither keeps FLAG_RAISE or the stamp.
        assert_eq!(
            (raise.flags, first.flags, second.flags),
            (FLAG_LOST_BEFORE, 0, 0)
        );
        assert_eq!(
            (first.ts, first.tid, first.addr2, second.addr2),
            (5_000, 9, 0, 0)
        );
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
