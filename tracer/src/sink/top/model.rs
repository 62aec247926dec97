//! The state behind `tracer top`: finished journeys grouped four ways at once (so `g`
//! switches instantly), the header's counters, the sort order, the selection, pause and
//! reset. Pure: journeys, counters and actions in; rows and numbers out.

use std::{cmp::Ordering, collections::HashMap};

use super::row::{GroupBy, Row, RowKey};
use crate::journey::{Journey, Stage};

/// The most rows one grouping keeps (a row's histograms take up to 64 KiB); journeys of
/// later keys are counted in one `(other)` row.
pub const MAX_ROWS: usize = 64;

/// What the rows are ordered by: a column of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Journeys per second, most first.
    Rate,
    /// A stage's median, largest first.
    P50(Stage),
    /// A stage's 99th percentile, largest first.
    P99(Stage),
    /// The row's name, A to Z.
    Name,
}

impl SortKey {
    /// The order `s` cycles through (`S` backwards): the columns of the widest table.
    pub const CYCLE: [SortKey; 11] = [
        SortKey::P99(Stage::Total),
        SortKey::P50(Stage::Total),
        SortKey::Rate,
        SortKey::Name,
        SortKey::P99(Stage::Irq),
        SortKey::P99(Stage::SoftirqWait),
        SortKey::P99(Stage::Poll),
        SortKey::P99(Stage::Stack),
        SortKey::P99(Stage::Wakeup),
        SortKey::P99(Stage::Runqueue),
        SortKey::P99(Stage::Syscall),
    ];

    fn position(self) -> usize {
        Self::CYCLE.iter().position(|key| *key == self).unwrap_or(0)
    }

    /// The key after this one.
    pub fn next(self) -> Self {
        Self::CYCLE[(self.position() + 1) % Self::CYCLE.len()]
    }

    /// The key before this one.
    pub fn prev(self) -> Self {
        Self::CYCLE[(self.position() + Self::CYCLE.len() - 1) % Self::CYCLE.len()]
    }

    /// Its name on screen: `total p99`, `count/s`, `name`.
    pub fn name(self) -> String {
        match self {
            SortKey::Rate => "count/s".to_owned(),
            SortKey::P50(stage) => format!("{} p50", stage.name()),
            SortKey::P99(stage) => format!("{} p99", stage.name()),
            SortKey::Name => "name".to_owned(),
        }
    }

    /// Orders two rows, the row to show first being `Less`.
    fn compare(self, a: &Row, b: &Row) -> Ordering {
        // Larger first; a row without the value after every row with it.
        let descending = |x: Option<u64>, y: Option<u64>| y.cmp(&x);
        let order = match self {
            SortKey::Rate => b.rate.total_cmp(&a.rate),
            SortKey::P50(stage) => descending(a.quantile(stage, 0.5), b.quantile(stage, 0.5)),
            SortKey::P99(stage) => descending(a.quantile(stage, 0.99), b.quantile(stage, 0.99)),
            SortKey::Name => Ordering::Equal,
        };
        order.then_with(|| name_order(a, b))
    }
}

/// A to Z by name; CPUs by number; the unknown and other rows last.
fn name_order(a: &Row, b: &Row) -> Ordering {
    let rank = |row: &Row| match row.key {
        RowKey::Unknown => 1,
        RowKey::Other => 2,
        _ => 0,
    };
    rank(a).cmp(&rank(b)).then_with(|| match (&a.key, &b.key) {
        (RowKey::Cpu(x), RowKey::Cpu(y)) => x.cmp(y),
        _ => a.label.cmp(&b.label).then_with(|| a.key.cmp(&b.key)),
    })
}

/// What a key press asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Leave `top`.
    Quit,
    /// Select the row above.
    Up,
    /// Select the row below.
    Down,
    /// Select the first row.
    First,
    /// Select the last row.
    Last,
    /// Sort by the next column.
    NextSort,
    /// Sort by the previous column.
    PrevSort,
    /// Group by the next key.
    NextGroup,
    /// Freeze the numbers, or let them move again.
    Pause,
    /// Forget everything counted so far.
    Reset,
}

/// The tracer's own counters, read when an interval closes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// CLOCK_MONOTONIC now, ns.
    pub now_ns: u64,
    /// Events the engine has taken.
    pub events: u64,
    /// CPU time the tracer has used, ns.
    pub cpu_ns: u64,
    /// Events the kernel could not hand over, per CPU.
    pub lost_per_cpu: Vec<u64>,
    /// Events that arrived after the reorder window.
    pub late: u64,
}

/// The header's numbers.
#[derive(Clone, Debug, Default)]
pub struct Header {
    /// Journeys per second over the last interval.
    pub packets_per_s: f64,
    /// Events per second over the last interval.
    pub events_per_s: f64,
    /// The tracer's CPU use over the last interval, in percent of one CPU.
    pub cpu_percent: Option<f64>,
    /// Journeys since the reset.
    pub journeys: u64,
    /// Of them, complete.
    pub complete: u64,
    /// Events lost per CPU since the reset.
    pub lost_per_cpu: Vec<u64>,
    /// Late events since the reset.
    pub late: u64,
    /// Journeys not counted because the view was paused.
    pub paused_skipped: u64,
    /// Seconds since the start or the reset.
    pub seconds: f64,
    /// Closed intervals since the start or the reset.
    pub intervals: u64,
    /// CLOCK_MONOTONIC ns when the last interval closed.
    pub now_ns: u64,
}

impl Header {
    /// Journeys that are not complete.
    pub fn incomplete(&self) -> u64 {
        self.journeys - self.complete
    }
}

/// The rows of one grouping.
#[derive(Clone, Debug, Default)]
struct Grouping {
    rows: HashMap<RowKey, Row>,
}

/// Everything `top` shows.
#[derive(Clone, Debug)]
pub struct TopModel {
    /// Indexed by `GroupBy as usize`.
    groups: [Grouping; GroupBy::ALL.len()],
    /// The grouping on screen.
    pub by: GroupBy,
    /// The order of the rows.
    pub sort: SortKey,
    /// The numbers stand still; journeys are not counted.
    pub paused: bool,
    /// The header's numbers.
    pub header: Header,
    /// What the tracer cannot see on this host (escaped), shown under the header.
    pub notes: Vec<String>,
    selected: Option<RowKey>,
    /// Journeys in the open interval.
    open_journeys: u64,
    /// Counters at the last close, and at the reset.
    last: Option<Counters>,
    at_reset: Option<Counters>,
}

impl TopModel {
    /// An empty view grouped by `by`; `notes` say what this host cannot trace.
    pub fn new(by: GroupBy, notes: Vec<String>) -> Self {
        Self {
            groups: Default::default(),
            by,
            sort: SortKey::CYCLE[0],
            paused: false,
            header: Header::default(),
            notes,
            selected: None,
            open_journeys: 0,
            last: None,
            at_reset: None,
        }
    }

    /// Counts a finished journey in every grouping (unless paused).
    pub fn add(&mut self, journey: &Journey) {
        if self.paused {
            self.header.paused_skipped += 1;
            return;
        }
        self.header.journeys += 1;
        self.header.complete += u64::from(journey.complete);
        self.open_journeys += 1;
        for by in GroupBy::ALL {
            let rows = &mut self.groups[by as usize].rows;
            let mut key = RowKey::of(journey, by);
            if !rows.contains_key(&key) && rows.len() >= MAX_ROWS {
                key = RowKey::Other;
            }
            rows.entry(key.clone())
                .or_insert_with(|| Row::new(key, journey, by))
                .add(journey);
        }
    }

    /// Closes the interval: rates, the slowest journeys and the header move on (unless
    /// paused: then the screen stands still).
    pub fn close_interval(&mut self, counters: Counters) {
        if self.paused {
            // The next interval is measured from here, not from before the pause.
            self.last = Some(counters);
            return;
        }
        let at_reset = self.at_reset.get_or_insert_with(|| counters.clone());
        let header = &mut self.header;
        header.lost_per_cpu = counters
            .lost_per_cpu
            .iter()
            .enumerate()
            .map(|(cpu, n)| n.saturating_sub(at_reset.lost_per_cpu.get(cpu).copied().unwrap_or(0)))
            .collect();
        header.late = counters.late.saturating_sub(at_reset.late);
        header.seconds = counters.now_ns.saturating_sub(at_reset.now_ns) as f64 / 1e9;
        header.intervals += 1;
        header.now_ns = counters.now_ns;
        let seconds = self.last.as_ref().map_or(0.0, |last| {
            counters.now_ns.saturating_sub(last.now_ns) as f64 / 1e9
        });
        if let Some(last) = &self.last
            && seconds > 0.0
        {
            header.packets_per_s = self.open_journeys as f64 / seconds;
            header.events_per_s = counters.events.saturating_sub(last.events) as f64 / seconds;
            header.cpu_percent =
                Some(counters.cpu_ns.saturating_sub(last.cpu_ns) as f64 / 1e9 / seconds * 100.0);
        }
        self.open_journeys = 0;
        for group in &mut self.groups {
            for row in group.rows.values_mut() {
                row.close_interval(seconds, counters.now_ns);
            }
        }
        self.last = Some(counters);
    }

    /// The rows of the grouping on screen, in the sort order.
    pub fn rows(&self) -> Vec<&Row> {
        let mut rows: Vec<&Row> = self.groups[self.by as usize].rows.values().collect();
        rows.sort_by(|a, b| self.sort.compare(a, b));
        rows
    }

    /// Index of the selected row in [`Self::rows`] (the first when none is selected, or
    /// when the selected row is gone).
    pub fn selected_index(&self, rows: &[&Row]) -> usize {
        self.selected
            .as_ref()
            .and_then(|key| rows.iter().position(|row| row.key == *key))
            .unwrap_or(0)
    }

    /// Does what a key asks (everything but `Quit`, which ends the caller's loop).
    pub fn apply(&mut self, action: Action) {
        let rows = self.rows();
        let index = self.selected_index(&rows);
        let last = rows.len().saturating_sub(1);
        let select = match action {
            Action::Up => Some(index.saturating_sub(1)),
            Action::Down => Some((index + 1).min(last)),
            Action::First => Some(0),
            Action::Last => Some(last),
            _ => None,
        };
        if let Some(index) = select {
            self.selected = rows.get(index).map(|row| row.key.clone());
            return;
        }
        match action {
            Action::NextSort => self.sort = self.sort.next(),
            Action::PrevSort => self.sort = self.sort.prev(),
            Action::NextGroup => {
                self.by = self.by.next();
                self.selected = None;
            }
            Action::Pause => self.paused = !self.paused,
            Action::Reset => self.reset(),
            _ => {}
        }
    }

    /// Forgets every row and count; the next interval starts from zero.
    fn reset(&mut self) {
        self.groups = Default::default();
        self.selected = None;
        self.open_journeys = 0;
        self.header = Header {
            now_ns: self.header.now_ns,
            ..Header::default()
        };
        self.at_reset = self.last.clone();
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
