//! Merging per-CPU event streams by timestamp with a bounded reorder window.
//!
//! Each CPU's events reach the ring buffer in time order, but two CPUs' events interleave
//! with small skews. Events are held until they are older than the newest timestamp seen
//! minus the window; one that arrives later than that is counted as late (and passed on).

use std::{cmp::Ordering, collections::BinaryHeap};

use tracer_common::Event;

/// Default window: far above the skew between CPUs' reserve and stamp (microseconds).
pub const DEFAULT_WINDOW_NS: u64 = 20_000_000;

/// Holds events until they can be released in timestamp order.
///
/// Events are kept in a heap keyed by (timestamp, arrival number): O(log n) for any event,
/// however far out of order (two concatenated captures put a whole capture out of order),
/// O(1) for the usual in-order one; equal stamps keep their arrival order.
#[derive(Debug)]
pub struct Reorder {
    held: BinaryHeap<Held>,
    arrivals: u64,
    window_ns: u64,
    newest: u64,
    released: u64,
    late: u64,
}

/// An event in the heap: the earliest (timestamp, arrival) is the greatest.
#[derive(Debug)]
struct Held {
    ts: u64,
    arrival: u64,
    event: Event,
}

impl Held {
    fn key(&self) -> (u64, u64) {
        #[cfg(test)]
        tests::COMPARISONS.with(|count| count.set(count.get() + 1));
        (self.ts, self.arrival)
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Held {}

impl Reorder {
    /// A reorder buffer with this window in nanoseconds.
    pub fn new(window_ns: u64) -> Self {
        Self {
            held: BinaryHeap::new(),
            arrivals: 0,
            window_ns,
            newest: 0,
            released: 0,
            late: 0,
        }
    }

    /// Events that arrived after later-stamped events had already been released.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Events held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Adds one event.
    pub fn push(&mut self, event: Event) {
        if event.ts < self.released {
            self.late += 1;
        }
        self.newest = self.newest.max(event.ts);
        self.arrivals += 1;
        self.held.push(Held {
            ts: event.ts,
            arrival: self.arrivals,
            event,
        });
    }

    /// Releases, in order, every event older than the newest stamp minus the window.
    pub fn release(&mut self, each: impl FnMut(&Event)) {
        let horizon = self.newest.saturating_sub(self.window_ns);
        self.release_until(horizon, each);
    }

    /// Releases every event stamped at or before `horizon` (e.g. now minus the window, so a
    /// quiet trace still flushes).
    pub fn release_until(&mut self, horizon: u64, mut each: impl FnMut(&Event)) {
        while let Some(front) = self.held.peek() {
            if front.ts > horizon {
                break;
            }
            let held = self.held.pop().expect("front exists");
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
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// Key comparisons made by this thread's reorder buffers.
        pub(super) static COMPARISONS: Cell<u64> = const { Cell::new(0) };
    }

    /// Five concatenated captures (each in order, each starting where the first did) pushed
    /// in batches as `report` does: comparisons stay within n log n, every event comes out,
    /// and in timestamp order within each batch's release. (The sorted deque it replaces
    /// inserted each event of a later capture in the middle: quadratic in the batch.)
    #[test]
    fn concatenated_captures_cost_n_log_n() {
        let per_capture = 40_000u64;
        let mut reorder = Reorder::new(DEFAULT_WINDOW_NS);
        let mut out = 0u64;
        COMPARISONS.with(|count| count.set(0));
        for (index, ts) in (0..5)
            .flat_map(|_| (0..per_capture).map(|i| 1_000_000 + i * 1_000))
            .enumerate()
        {
            reorder.push(at(ts));
            if index % 65_536 == 65_535 {
                reorder.release(|_| out += 1);
            }
        }
        let mut previous = 0;
        reorder.drain(|event| {
            assert!(event.ts >= previous, "drained out of order");
            previous = event.ts;
            out += 1;
        });
        let n = 5 * per_capture;
        assert_eq!(out, n);
        assert!(reorder.late() > per_capture, "later captures are late");
        let comparisons = COMPARISONS.with(Cell::get);
        let bound = 4 * n * u64::from(n.ilog2() + 1);
        eprintln!("{comparisons} comparisons for {n} events (bound {bound})");
        assert!(
            comparisons <= bound,
            "{comparisons} comparisons for {n} events"
        );
    }

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
