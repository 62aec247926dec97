//! Merging per-CPU event streams by timestamp with a bounded reorder window.
//!
//! Each CPU's events reach the ring buffer in time order, but two CPUs' events interleave
//! with small skews. Events are held until they are older than the newest timestamp seen
//! minus the window; one that arrives later than that is counted as late (and passed on).

use std::{
    cmp::Ordering,
    collections::{BinaryHeap, VecDeque},
};

use tracer_common::Event;

/// Default window: far above the skew between CPUs' reserve and stamp (microseconds).
pub const DEFAULT_WINDOW_NS: u64 = 20_000_000;

/// Events held at most (20 MiB; a 20 ms window is 13 M events/s): a real window holds tens
/// of thousands, a file whose stamps barely move (crafted, or a clock gone wrong) would hold
/// everything. Beyond it the earliest leave early, and what arrives older than them is late.
pub const MAX_HELD: usize = 1 << 18;

/// How far back from the queue's end an event a little out of order is inserted in place
/// (a few cache lines moved) instead of going to the heap, which would then make every
/// release merge three fronts.
pub const NEARBY: usize = 32;

/// Holds events until they can be released in timestamp order.
///
/// Events that arrive in order (nearly all: each at or after the last one queued) wait in a
/// queue, O(1); so do those a little out of order (two CPUs' skews: older than one of the
/// last [`NEARBY`] queued), inserted in place. Late ones (older than the horizon when they
/// arrive: a capture appended to another, whose every event is late) are collected as they
/// come and sorted once, at the release that takes them all: a nearly sorted batch sorts in
/// about linear time. The rest (out of order within the window) wait in a heap keyed by
/// (timestamp, arrival number), O(log n). While the heap and the late batch are empty, a
/// release takes the queue's front alone; else the earliest of the three fronts, so the
/// order is that of one heap: by timestamp, equal stamps in arrival order.
#[derive(Debug)]
pub struct Reorder {
    queue: VecDeque<Held>,
    heap: BinaryHeap<Held>,
    late_held: VecDeque<Held>,
    /// Whether `late_held` is sorted (it is, but for what came since the last release).
    late_sorted: bool,
    arrivals: u64,
    window_ns: u64,
    max_held: usize,
    newest: u64,
    released: u64,
    late: u64,
}

/// A held event: in the heap the earliest (timestamp, arrival) is the greatest.
#[derive(Debug)]
struct Held {
    arrival: u64,
    event: Event,
}

impl Held {
    fn key(&self) -> (u64, u64) {
        #[cfg(test)]
        tests::COMPARISONS.with(|count| count.set(count.get() + 1));
        (self.event.ts, self.arrival)
    }

    fn ts(&self) -> u64 {
        self.event.ts
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
        Self::with_limit(window_ns, MAX_HELD)
    }

    /// A reorder buffer with this window that holds at most `max_held` events.
    pub fn with_limit(window_ns: u64, max_held: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            heap: BinaryHeap::new(),
            late_held: VecDeque::new(),
            late_sorted: true,
            arrivals: 0,
            window_ns,
            max_held: max_held.max(1),
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
        self.queue.len() + self.heap.len() + self.late_held.len()
    }

    /// Adds one event.
    pub fn push(&mut self, event: Event) {
        self.push_ref(&event);
    }

    /// Adds a batch of events, in their order (as many [`Self::push`]es): each run of them
    /// in order goes to the queue's end in one copy, each other event by itself.
    pub fn extend(&mut self, mut events: &[Event]) {
        while !events.is_empty() {
            let mut last = self.queue.back().map_or(0, Held::ts);
            let in_order = events
                .iter()
                .position(|event| {
                    let before = event.ts < last;
                    last = event.ts;
                    before
                })
                .unwrap_or(events.len());
            let (run, rest) = events.split_at(in_order);
            self.push_run(run);
            if let Some((event, rest)) = rest.split_first() {
                self.push_ref(event);
                events = rest;
            } else {
                break;
            }
        }
    }

    /// Adds events in order, the first stamped no earlier than the queue's last: what
    /// [`Self::push`] does for each, at once (the run is sorted: its late events are its
    /// first ones, its newest its last).
    fn push_run(&mut self, run: &[Event]) {
        let Some(newest) = run.last() else {
            return;
        };
        let released = self.released;
        self.late += run.partition_point(|event| event.ts < released) as u64;
        self.newest = self.newest.max(newest.ts);
        let first = self.arrivals;
        self.arrivals += run.len() as u64;
        self.queue
            .extend(run.iter().enumerate().map(|(at, event)| Held {
                arrival: first + 1 + at as u64,
                event: *event,
            }));
    }

    /// Adds one event: inlined for the usual case (in order: to the queue's end).
    #[inline]
    fn push_ref(&mut self, event: &Event) {
        if event.ts < self.released {
            self.late += 1;
        }
        self.newest = self.newest.max(event.ts);
        self.arrivals += 1;
        // Its arrival is the greatest yet: it goes after every held event stamped no later.
        match self.queue.back() {
            Some(last) if event.ts < last.ts() => self.push_out_of_order(event),
            _ => self.queue.push_back(Held {
                arrival: self.arrivals,
                event: *event,
            }),
        }
    }

    /// Adds an event stamped before the queue's last one (its arrival already counted).
    #[inline(never)]
    fn push_out_of_order(&mut self, event: &Event) {
        let held = Held {
            arrival: self.arrivals,
            event: *event,
        };
        if held.ts() < self.newest.saturating_sub(self.window_ns) {
            // Below the horizon: the next release takes it, whatever comes.
            self.late_sorted &= self
                .late_held
                .back()
                .is_none_or(|back| back.ts() <= held.ts());
            self.late_held.push_back(held);
        } else if let Some(at) = self.nearby_slot(held.ts()) {
            self.queue.insert(at, held);
        } else {
            self.heap.push(held);
        }
    }

    /// Where in the queue an event stamped `ts` goes, if within [`NEARBY`] of its end: after
    /// the last one stamped no later (the queue stays sorted by timestamp, then arrival).
    fn nearby_slot(&self, ts: u64) -> Option<usize> {
        let len = self.queue.len();
        let from = len.saturating_sub(NEARBY);
        match (from..len).rev().find(|&at| self.queue[at].ts() <= ts) {
            Some(at) => Some(at + 1),
            None => (from == 0).then_some(0),
        }
    }

    /// Releases, in order, every event older than the newest stamp minus the window, and the
    /// earliest beyond the most held.
    pub fn release(&mut self, mut each: impl FnMut(&Event)) {
        let horizon = self.newest.saturating_sub(self.window_ns);
        self.release_until(horizon, &mut each);
        while self.held() > self.max_held {
            let Some(held) = self.pop_until(u64::MAX) else {
                break;
            };
            self.released = self.released.max(held.ts());
            each(&held.event);
        }
    }

    /// Releases every event stamped at or before `horizon` (e.g. now minus the window, so a
    /// quiet trace still flushes).
    pub fn release_until(&mut self, horizon: u64, mut each: impl FnMut(&Event)) {
        if self.heap.is_empty() && self.late_held.is_empty() {
            // The usual case: every held event came in order, so the queue (sorted) releases
            // a prefix, its last event the latest.
            let n = self.queue.partition_point(|held| held.ts() <= horizon);
            if let Some(last) = n.checked_sub(1).and_then(|last| self.queue.get(last)) {
                self.released = self.released.max(last.ts());
            }
            self.queue.range(..n).for_each(|held| each(&held.event));
            self.queue.drain(..n);
            return;
        }
        while let Some(held) = self.pop_until(horizon) {
            self.released = self.released.max(held.ts());
            each(&held.event);
        }
    }

    /// Releases everything (end of trace).
    pub fn drain(&mut self, each: impl FnMut(&Event)) {
        self.release_until(u64::MAX, each);
    }

    /// The earliest held event if it is stamped at or before `horizon`.
    fn pop_until(&mut self, horizon: u64) -> Option<Held> {
        if !self.late_sorted {
            // Stable, so equal stamps keep their arrival order; runs already in order merge.
            self.late_held.make_contiguous().sort_by_key(Held::key);
            self.late_sorted = true;
        }
        let fronts = [self.queue.front(), self.heap.peek(), self.late_held.front()];
        let (from, first) = fronts
            .into_iter()
            .enumerate()
            .filter_map(|(from, held)| Some((from, held?)))
            .reduce(|a, b| if b.1.key() < a.1.key() { b } else { a })?;
        if first.ts() > horizon {
            return None;
        }
        match from {
            0 => self.queue.pop_front(),
            1 => self.heap.pop(),
            _ => self.late_held.pop_front(),
        }
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

    /// Events a little out of order (two CPUs' skews) and far out of order (late), pushed
    /// and released in batches: everything comes out once, sorted between late events; and
    /// drained without a release in between, exactly a stable sort by timestamp.
    #[test]
    fn queue_and_heap_release_as_one_sorted_stream() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let stamps: Vec<u64> = (0..20_000u64)
            .map(|i| match i % 97 {
                0 => next() % 1_000_000, // far back: late
                _ => 1_000_000 + i * 100 - next() % 3_000,
            })
            .collect();
        let push_all = |reorder: &mut Reorder, out: &mut Vec<(u64, u32)>, every: usize| {
            for (arrival, ts) in stamps.iter().enumerate() {
                reorder.push(Event {
                    ts: *ts,
                    arg0: arrival as u32,
                    ..Event::ZERO
                });
                if arrival % every == every - 1 {
                    reorder.release(|event| out.push((event.ts, event.arg0)));
                }
            }
            reorder.drain(|event| out.push((event.ts, event.arg0)));
        };
        let mut out = Vec::new();
        push_all(&mut Reorder::new(5_000), &mut out, 500);
        assert_eq!(out.len(), stamps.len());
        let in_order = out.windows(2).filter(|pair| pair[0] <= pair[1]).count();
        assert!(in_order >= out.len() - 2 * out.len() / 97, "{in_order}");
        let mut arrivals: Vec<u32> = out.iter().map(|(_, arrival)| *arrival).collect();
        arrivals.sort_unstable();
        assert!(arrivals.iter().enumerate().all(|(i, a)| *a == i as u32));

        let mut drained = Vec::new();
        push_all(&mut Reorder::new(5_000), &mut drained, usize::MAX);
        let mut sorted: Vec<(u64, u32)> = stamps
            .iter()
            .enumerate()
            .map(|(arrival, ts)| (*ts, arrival as u32))
            .collect();
        sorted.sort_by_key(|(ts, _)| *ts);
        assert_eq!(drained, sorted);
    }

    /// Stamps that never move would keep every event in the window: at most `max_held` stay.
    #[test]
    fn holds_at_most_its_limit() {
        let mut reorder = Reorder::with_limit(DEFAULT_WINDOW_NS, 1000);
        let mut out = 0;
        for _ in 0..10 {
            for _ in 0..700 {
                reorder.push(at(5));
            }
            reorder.release(|_| out += 1);
            assert!(reorder.held() <= 1000, "{}", reorder.held());
        }
        reorder.drain(|_| out += 1);
        assert_eq!(out, 7000);
        assert_eq!(reorder.late(), 0, "equal stamps are not late");
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
