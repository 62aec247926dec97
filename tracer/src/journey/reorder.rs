//! Merging per-CPU event streams by timestamp with a bounded reorder window.
//!
//! Each CPU's events reach the ring buffer in time order, but two CPUs' events interleave
//! with small skews. Events are held until they are older than the newest timestamp seen
//! minus the window; one that arrives later than that is counted as late (and passed on).

use std::{cmp::Reverse, collections::BinaryHeap};

use tracer_common::Event;

/// Default window: far above the skew between CPUs' reserve and stamp (microseconds).
pub const DEFAULT_WINDOW_NS: u64 = 20_000_000;

#[derive(Debug)]
struct Held {
    ts: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(other.ts, other.seq))
    }
}

/// Holds events until they can be released in timestamp order.
#[derive(Debug)]
pub struct Reorder {
    heap: BinaryHeap<Reverse<Held>>,
    window_ns: u64,
    newest: u64,
    released: u64,
    seq: u64,
    late: u64,
}

impl Reorder {
    /// A reorder buffer with this window in nanoseconds.
    pub fn new(window_ns: u64) -> Self {
        Self {
            heap: BinaryHeap::new(),
            window_ns,
            newest: 0,
            released: 0,
            seq: 0,
            late: 0,
        }
    }

    /// Events that arrived after later-stamped events had already been released.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Events held now.
    pub fn held(&self) -> usize {
        self.heap.len()
    }

    /// Adds one event.
    pub fn push(&mut self, event: Event) {
        if event.ts < self.released {
            self.late += 1;
        }
        self.newest = self.newest.max(event.ts);
        self.seq += 1;
        self.heap.push(Reverse(Held {
            ts: event.ts,
            seq: self.seq,
            event,
        }));
    }

    /// Releases, in order, every event older than the newest stamp minus the window.
    pub fn release(&mut self, each: impl FnMut(&Event)) {
        let horizon = self.newest.saturating_sub(self.window_ns);
        self.release_until(horizon, each);
    }

    /// Releases every event stamped at or before `horizon` (e.g. now minus the window, so a
    /// quiet trace still flushes).
    pub fn release_until(&mut self, horizon: u64, mut each: impl FnMut(&Event)) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.ts > horizon {
                break;
            }
            let Some(Reverse(held)) = self.heap.pop() else {
                break;
            };
            self.released = self.released.max(held.ts);
            each(&held.event);
        }
    }

    /// Releases everything (end of trace).
    pub fn drain(&mut self, each: impl FnMut(&Event)) {
        self.release_until(u64::MAX, each);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts: u64) -> Event {
        Event { ts, ..Event::ZERO }
    }

    #[test]
    fn releases_in_order_within_the_window_and_counts_late_events() {
        let mut reorder = Reorder::new(100);
        let mut out = Vec::new();
        for ts in [1000, 990, 1050, 1010] {
            reorder.push(at(ts));
        }
        reorder.release(|event| out.push(event.ts));
        assert!(
            out.is_empty(),
            "all within the window of the newest: {out:?}"
        );
        reorder.push(at(1200));
        reorder.release(|event| out.push(event.ts));
        assert_eq!(out, vec![990, 1000, 1010, 1050]);
        reorder.push(at(1020)); // older than what was released: late
        assert_eq!(reorder.late(), 1);
        reorder.drain(|event| out.push(event.ts));
        assert_eq!(out, vec![990, 1000, 1010, 1050, 1020, 1200]);
        assert_eq!(reorder.held(), 0);
    }

    #[test]
    fn equal_stamps_keep_arrival_order() {
        let mut reorder = Reorder::new(0);
        for (index, ts) in [5, 5, 5].into_iter().enumerate() {
            reorder.push(Event {
                ts,
                arg0: index as u32,
                ..Event::ZERO
            });
        }
        let mut out = Vec::new();
        reorder.drain(|event| out.push(event.arg0));
        assert_eq!(out, vec![0, 1, 2]);
    }
}
