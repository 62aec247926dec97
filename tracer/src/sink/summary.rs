//! Per-stage latency statistics (count, p50, p90, p99, max, from log-linear histograms: 16
//! sub-buckets per power of two, a percentile within about 6% of the true value) and the run
//! summary printed at the end.

use std::time::Duration;

use super::escape;
use crate::journey::{Journey, Stage, Tracker};

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;

/// Buckets enough for any u64: groups 0..=61 of SUB sub-buckets.
const BUCKETS: usize = 62 * SUB as usize;

/// A log-linear histogram of nanosecond values.
#[derive(Clone, Debug)]
pub struct Histogram {
    /// Count per bucket: a flat array, recording is an index and an add.
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            max: 0,
        }
    }
}

fn bucket(value: u64) -> u32 {
    if value < SUB {
        return value as u32;
    }
    let exp = 63 - value.leading_zeros(); // >= SUB_BITS
    let sub = (value >> (exp - SUB_BITS)) & (SUB - 1);
    ((exp - SUB_BITS + 1) << SUB_BITS) | sub as u32
}

/// The largest value that falls in a bucket.
/// The quantile `q` of `count` values whose largest is `max`, from their (bucket index,
/// count) pairs in bucket order: the upper bound of the bucket holding that rank, capped at
/// `max`. Shared by [`Histogram`] and [`CompactHistogram`].
fn quantile_of(
    buckets: impl Iterator<Item = (u32, u64)>,
    count: u64,
    max: u64,
    q: f64,
) -> Option<u64> {
    if count == 0 {
        return None;
    }
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let mut seen = 0;
    for (index, n) in buckets {
        seen += n;
        if seen >= rank {
            return Some(bucket_top(index).min(max));
        }
    }
    Some(max)
}

fn bucket_top(index: u32) -> u64 {
    let group = index >> SUB_BITS;
    let sub = u64::from(index) & (SUB - 1);
    if group == 0 {
        return sub;
    }
    let exp = group + SUB_BITS - 1;
    ((SUB | sub) << (exp - SUB_BITS)) + (1 << (exp - SUB_BITS)) - 1
}

/// A value with its bucket, found once for the several histograms a report records it in.
#[derive(Clone, Copy, Debug)]
pub struct Bucketed {
    value: u64,
    bucket: u32,
}

impl Bucketed {
    /// `value` and its bucket.
    pub fn new(value: u64) -> Self {
        Self {
            value,
            bucket: bucket(value),
        }
    }
}

impl Histogram {
    /// Adds one value.
    pub fn record(&mut self, value: u64) {
        self.record_bucketed(Bucketed::new(value));
    }

    /// Adds one value whose bucket is known.
    pub fn record_bucketed(&mut self, value: Bucketed) {
        self.counts[value.bucket as usize] += 1;
        self.count += 1;
        self.max = self.max.max(value.value);
    }

    /// Adds every value `other` recorded.
    pub fn merge(&mut self, other: &Histogram) {
        for (count, more) in self.counts.iter_mut().zip(other.counts.iter()) {
            *count += more;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// Adds every value a [`CompactHistogram`] recorded.
    pub fn merge_compact(&mut self, other: &CompactHistogram) {
        for (index, n) in other.used() {
            self.counts[index as usize] += n;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), as its bucket's upper bound (capped at max).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let buckets = self.counts.iter().enumerate();
        quantile_of(
            buckets.map(|(index, &n)| (index as u32, n)),
            self.count,
            self.max,
            q,
        )
    }

    /// Counts per power of two, as `tracer report` draws them: index `bit` holds the values
    /// below 2^bit and at least 2^(bit-1) (index 0: zero). Every log-linear bucket lies
    /// within one power of two, so this loses nothing at that resolution.
    pub fn log2_counts(&self) -> [u64; 65] {
        let mut log2 = [0u64; 65];
        for (index, &n) in self.counts.iter().enumerate() {
            if n > 0 {
                let top = bucket_top(index as u32);
                log2[(64 - top.leading_zeros()) as usize] += n;
            }
        }
        log2
    }
}

/// A [`Histogram`] that keeps only the buckets it uses, for the many small groups of a
/// report (one per flow and stage): a few hundred bytes where a full one takes 8 KiB, the
/// same buckets and so the same quantiles, a binary search to record. One that has recorded
/// [`DENSE_AFTER`] values turns into a full one (recording is then an index): a flood's one
/// flow then costs no search per journey, and memory stays under a byte per journey.
#[derive(Clone, Debug, Default)]
pub struct CompactHistogram {
    /// (bucket, count), by bucket; empty once `dense`.
    buckets: Vec<(u16, u64)>,
    /// Every bucket, once `count` reached [`DENSE_AFTER`].
    dense: Option<Box<[u64; BUCKETS]>>,
    count: u64,
    max: u64,
}

/// Values a [`CompactHistogram`] records before it turns into a full one (8 KiB).
pub const DENSE_AFTER: u64 = 1 << 13;

impl CompactHistogram {
    /// Adds one value.
    pub fn record(&mut self, value: u64) {
        self.record_bucketed(Bucketed::new(value));
    }

    /// Adds one value whose bucket is known.
    #[inline(always)]
    pub fn record_bucketed(&mut self, value: Bucketed) {
        self.add(value.bucket as u16, 1);
        self.count += 1;
        self.max = self.max.max(value.value);
        if self.count == DENSE_AFTER {
            self.densify();
        }
    }

    #[inline]
    fn add(&mut self, index: u16, n: u64) {
        if let Some(dense) = &mut self.dense {
            dense[usize::from(index)] += n;
            return;
        }
        match self.buckets.binary_search_by_key(&index, |(at, _)| *at) {
            Ok(at) => self.buckets[at].1 += n,
            Err(at) => self.buckets.insert(at, (index, n)),
        }
    }

    /// Moves the counts into a full array.
    #[cold]
    #[inline(never)]
    fn densify(&mut self) {
        let mut dense = Box::new([0; BUCKETS]);
        for (index, n) in self.buckets.drain(..) {
            dense[usize::from(index)] = n;
        }
        self.buckets = Vec::new();
        self.dense = Some(dense);
    }

    /// The (bucket, count) pairs in bucket order, counts above zero.
    fn used(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        let dense = self.dense.iter().flat_map(|dense| {
            dense
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(index, n)| (index as u32, *n))
        });
        let sparse = self
            .buckets
            .iter()
            .map(|(index, n)| (u32::from(*index), *n));
        dense.chain(sparse)
    }

    /// Adds every value `other` recorded.
    pub fn merge(&mut self, other: &CompactHistogram) {
        for (index, n) in other.used() {
            self.add(index as u16, n);
        }
        let before = self.count;
        self.count += other.count;
        self.max = self.max.max(other.max);
        if before < DENSE_AFTER && self.count >= DENSE_AFTER {
            self.densify();
        }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), as [`Histogram::quantile`] gives it.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        quantile_of(self.used(), self.count, self.max, q)
    }
}

/// Per-stage histograms of every journey seen.
#[derive(Clone, Debug, Default)]
pub struct StageSummary {
    /// Indexed by `Stage as usize`.
    stages: [Option<Histogram>; Stage::ALL.len()],
    /// Journeys added.
    pub journeys: u64,
}

impl StageSummary {
    /// Adds a journey's stage durations.
    pub fn add(&mut self, journey: &Journey) {
        self.journeys += 1;
        for stage in Stage::ALL {
            if let Some(ns) = journey.stages_ns.get(stage) {
                self.stages[stage as usize]
                    .get_or_insert_with(Histogram::default)
                    .record(ns);
            }
        }
    }

    /// Counts one more journey, whose stages [`Self::record`] adds (the report records each
    /// stage once for all its histograms).
    pub fn count_journey(&mut self) {
        self.journeys += 1;
    }

    /// Adds one stage duration of the journey last counted.
    pub fn record(&mut self, stage: Stage, value: Bucketed) {
        self.stages[stage as usize]
            .get_or_insert_with(Histogram::default)
            .record_bucketed(value);
    }

    /// Adds the values of one stage recorded in `other` (nothing when it has none).
    pub fn merge_compact(&mut self, stage: Stage, other: &CompactHistogram) {
        if other.count == 0 {
            return;
        }
        self.stages[stage as usize]
            .get_or_insert_with(Histogram::default)
            .merge_compact(other);
    }

    /// Adds every journey `other` counted (the histograms merged bucket by bucket, so the
    /// quantiles are those of all the journeys together, not an average of quantiles).
    pub fn merge(&mut self, other: &StageSummary) {
        self.journeys += other.journeys;
        for (mine, theirs) in self.stages.iter_mut().zip(&other.stages) {
            if let Some(theirs) = theirs {
                mine.get_or_insert_with(Histogram::default).merge(theirs);
            }
        }
    }

    /// The histogram of one stage.
    pub fn stage(&self, stage: Stage) -> Option<&Histogram> {
        self.stages[stage as usize].as_ref()
    }

    /// A text table: stage, count, p50, p90, p99, max.
    pub fn table(&self) -> String {
        let mut text = format!(
            "{:<13} {:>8} {:>10} {:>10} {:>10} {:>10}\n",
            "stage", "count", "p50", "p90", "p99", "max"
        );
        for stage in Stage::ALL {
            let Some(histogram) = &self.stages[stage as usize] else {
                text.push_str(&format!("{:<13} {:>8}\n", stage.name(), 0));
                continue;
            };
            let q = |q| histogram.quantile(q).map_or("-".to_owned(), human_ns);
            text.push_str(&format!(
                "{:<13} {:>8} {:>10} {:>10} {:>10} {:>10}\n",
                stage.name(),
                histogram.count(),
                q(0.5),
                q(0.9),
                q(0.99),
                human_ns(histogram.max())
            ));
        }
        text
    }
}

/// A duration in the unit that suits it: `850ns`, `12.3us`, `4.56ms`, `1.20s`.
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// The run summary: journeys shown, the stage table, incomplete and unsocketed reasons, lost
/// and late events and the engine's counters. `lost`: the kernel's per-CPU loss counters,
/// when known (else the gaps the engine marked).
pub fn run_summary(
    summary: &StageSummary,
    tracker: &Tracker,
    lost: Option<&[u64]>,
    elapsed: Duration,
    last: bool,
) -> String {
    let stats = tracker.engine().stats();
    let shown = summary.journeys;
    let mut text = format!(
        "--- {} after {:.1}s: {shown} journeys shown; engine: {} complete, {} incomplete ---\n",
        if last { "summary" } else { "so far" },
        elapsed.as_secs_f64(),
        stats.complete,
        stats.incomplete.total(),
    );
    text.push_str(&summary.table());
    for (reason, count) in stats.incomplete.iter() {
        text.push_str(&format!("incomplete: {count} {}\n", escape::text(reason)));
    }
    for (reason, count) in stats.unsocketed.iter() {
        text.push_str(&format!(
            "not shown, never reached a socket: {count} {}\n",
            escape::text(reason)
        ));
    }
    text.push_str(&format!(
        "data: dropped by the kernel {}; left unread when the socket closed {}\n",
        stats.dropped, stats.closed_unread
    ));
    if stats.dropped_unknown > 0 {
        text.push_str(&format!(
            "dropped packets not known to carry data (purged at close, no headers without BTF): {}\n",
            stats.dropped_unknown
        ));
    }
    if !stats.control.is_empty() {
        let kinds: Vec<String> = stats
            .control
            .iter()
            .map(|(flags, n)| format!("{flags} {n}"))
            .collect();
        text.push_str(&format!(
            "control segments (no payload, not data journeys): {}\n",
            kinds.join(", ")
        ));
    }
    if stats.not_selected > 0 {
        text.push_str(&format!(
            "not selected (read by other processes, or on their sockets): {}\n",
            stats.not_selected
        ));
    }
    if stats.wakeups_of_other_threads > 0 || stats.unmatched_read_bytes > 0 {
        text.push_str(&format!(
            "wakeups of another thread than the reader (marked, not credited): {}; \
             bytes read that no traced segment carried: {}\n",
            stats.wakeups_of_other_threads, stats.unmatched_read_bytes
        ));
    }
    let lost = match lost {
        Some(lost) => {
            let per_cpu: Vec<String> = lost
                .iter()
                .enumerate()
                .map(|(cpu, n)| format!("cpu{cpu}={n}"))
                .collect();
            format!("{} ({})", lost.iter().sum::<u64>(), per_cpu.join(" "))
        }
        None => {
            let marks: Vec<String> = stats
                .loss_marks
                .iter()
                .map(|(cpu, n)| format!("cpu{cpu}: {n} gaps"))
                .collect();
            if marks.is_empty() {
                "none marked".to_owned()
            } else {
                marks.join(", ")
            }
        }
    };
    text.push_str(&format!(
        "lost events: {lost}; late events: {}; ksoftirqd wakeups: {}; reads that found no new packet: {}; \
         evicted (memory bound): {}; stale links swept: {}; events read: {}\n",
        tracker.late_events(),
        stats.ksoftirqd_wakeups,
        stats.reads_without_packet,
        stats.evicted,
        stats.swept,
        stats.events,
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same values give the same quantiles in a compact histogram as in a full one,
    /// recorded one by one or merged, before and after it turns dense.
    #[test]
    fn a_compact_histogram_answers_as_a_full_one() {
        let mut seed = 0x853c_49e6_748f_ea9bu64;
        let mut full = Histogram::default();
        let (mut compact, mut halves) = (
            CompactHistogram::default(),
            [CompactHistogram::default(), CompactHistogram::default()],
        );
        // Past DENSE_AFTER in each half: sparse and dense both answer, and merge.
        for index in 0..2 * DENSE_AFTER as usize + 5000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let value = seed % (1 << (seed % 40));
            full.record(value);
            compact.record(value);
            halves[index % 2].record(value);
            if index == 4999 {
                for q in [0.0, 0.5, 0.99, 1.0] {
                    assert_eq!(compact.quantile(q), full.quantile(q), "sparse, q {q}");
                }
            }
        }
        let [mut merged, other] = halves;
        merged.merge(&other);
        // A sparse one merged into a dense one, and a dense one into an empty one.
        let mut small = CompactHistogram::default();
        small.record(123_456);
        full.record(123_456);
        compact.record(123_456);
        merged.merge(&small);
        let mut from_empty = CompactHistogram::default();
        from_empty.merge(&merged);
        assert!(from_empty.dense.is_some());
        assert_eq!(from_empty.quantile(0.5), full.quantile(0.5));
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(compact.quantile(q), full.quantile(q), "q {q}");
            assert_eq!(merged.quantile(q), full.quantile(q), "merged, q {q}");
        }
        assert_eq!((compact.count(), compact.max()), (full.count(), full.max()));
        assert_eq!(CompactHistogram::default().quantile(0.5), None);
    }

    /// Summaries merged give the quantiles of all the journeys together (buckets added),
    /// not an average of each one's quantiles.
    #[test]
    fn merged_summaries_are_the_summary_of_all() {
        let journey = |poll: u64, total: Option<u64>| {
            let mut journey = Journey::default();
            journey.stages_ns.poll = Some(poll);
            journey.stages_ns.total = total;
            journey
        };
        let (mut all, mut fast, mut slow) = Default::default();
        for n in 0..900u64 {
            let one = journey(1_000 + n, Some(10_000 + n));
            StageSummary::add(&mut all, &one);
            StageSummary::add(&mut fast, &one);
        }
        for n in 0..100u64 {
            let one = journey(1_000_000 + n * 1000, (n % 2 == 0).then_some(5_000_000));
            StageSummary::add(&mut all, &one);
            StageSummary::add(&mut slow, &one);
        }
        let mut merged: StageSummary = fast.clone();
        merged.merge(&slow);
        assert_eq!(merged.journeys, 1000);
        assert_eq!(merged.table(), all.table());
        for stage in [Stage::Poll, Stage::Total] {
            let (merged, all) = (merged.stage(stage).unwrap(), all.stage(stage).unwrap());
            assert_eq!((merged.count(), merged.max()), (all.count(), all.max()));
            for q in [0.5, 0.9, 0.99] {
                assert_eq!(merged.quantile(q), all.quantile(q), "{stage:?} {q}");
            }
        }
        // The p99 of the whole is the slow tail's, not the mean of the two p99s.
        let p99 = merged.stage(Stage::Poll).unwrap().quantile(0.99).unwrap();
        assert!(p99 > 1_000_000, "{p99}");
        assert!(merged.stage(Stage::Stack).is_none());
        let mut empty = StageSummary::default();
        empty.merge(&StageSummary::default());
        assert_eq!(empty.table(), StageSummary::default().table());
    }

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for value in (0..100_000u64).step_by(7).chain([u64::MAX / 2, 1 << 40]) {
            let index = bucket(value);
            assert!(bucket_top(index) >= value, "{value} above its bucket top");
            if value >= SUB {
                assert!(
                    bucket_top(index) - value <= value / 8,
                    "{value}: bucket too wide"
                );
            }
            if value < 100_000 {
                assert!(index >= last);
                last = index;
            }
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut histogram = Histogram::default();
        for value in 1..=1000u64 {
            histogram.record(value * 1000);
        }
        let p50 = histogram.quantile(0.5).unwrap() as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.07, "{p50}");
        let p99 = histogram.quantile(0.99).unwrap() as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.07, "{p99}");
        assert_eq!(histogram.quantile(1.0), Some(1_000_000));
        assert_eq!(histogram.max(), 1_000_000);
        assert_eq!(Histogram::default().quantile(0.5), None);
        assert_eq!(human_ns(950), "950ns");
        assert_eq!(human_ns(12_345), "12.3us");
        assert_eq!(human_ns(4_560_000), "4.56ms");
    }

    #[test]
    fn log2_counts_put_each_value_in_its_power_of_two() {
        let mut histogram = Histogram::default();
        for value in [0, 1, 15, 16, 31, 32, 1000, 1023, 1024, u64::MAX / 2] {
            histogram.record(value);
        }
        let log2 = histogram.log2_counts();
        let bit = |value: u64| (64 - value.leading_zeros()) as usize;
        assert_eq!(log2[0], 1);
        assert_eq!(log2[bit(1)], 1);
        assert_eq!(log2[bit(15)], 1);
        assert_eq!(log2[bit(16)], 2, "16 and 31 share [16, 32)");
        assert_eq!(log2[bit(32)], 1);
        assert_eq!(log2[bit(1000)], 2, "1000 and 1023 share [512, 1024)");
        assert_eq!(log2[bit(1024)], 1);
        assert_eq!(log2[63], 1);
        assert_eq!(log2.iter().sum::<u64>(), histogram.count());
    }
}
