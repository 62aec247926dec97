//! Merging per-CPU event streams by timestamp with a bounded reorder window.
//!
//! Each CPU's events reach the ring buffer in time order, but two CPUs' events interleave
//! with small skews. Events are held until they are older than the newest timestamp seen
//! minus the window; one that arrives later than that is counted as late (and passed on).

use std::collections::VecDeque;

use tracer_common::Event;

/// Default window: far above the skew between CPUs' reserve and stamp (microseconds).
pub const DEFAULT_WINDOW_NS: u64 = 20_000_000;

/// Holds events until they can be released in timestamp order.
///
/// Events arrive nearly sorted, so they are kept in one sorted deque: an in-order event is
/// appended, an early one is inserted a short way from the back (after equal stamps, so
/// equal stamps keep their arrival order).
#[derive(Debug)]
pub struct Reorder {
    held: VecDeque<Event>,
    window_ns: u64,
    newest: u64,
    released: u64,
    late: u64,
}

impl Reorder {
    /// A reorder buffer with this window in nanoseconds.
    pub fn new(window_ns: u64) -> Self {
        Self {
            held: VecDeque::new(),
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
        match self.held.back() {
            Some(back) if back.ts > event.ts => {
                let at = self.held.partition_point(|held| held.ts <= event.ts);
                self.held.insert(at, event);
            }
            _ => self.held.push_back(event),
        }
    }

    /// Releases, in order, every event older than the newest stamp minus the window.
    pub fn release(&mut self, each: impl FnMut(&Event)) {
        let horizon = self.newest.saturating_sub(self.window_ns);
        self.release_until(horizon, each);
    }

    /// Releases every event stamped at or before `horizon` (e.g. now minus the window, so a
    /// quiet trace still flushes).
    pub fn release_until(&mut self, horizon: u64, mut each: impl FnMut(&Event)) {
        while let Some(front) = self.held.front() {
            if front.ts > horizon {
                break;
            }
            let event = self.held.pop_front().expect("front exists");
            self.released = self.released.max(event.ts);
            each(&event);
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
