//! One row of `tracer top`: the journeys of one process, flow, device or CPU since the last
//! reset (per-stage histograms, outcomes, missing-stage reasons), their rate over the last
//! interval and the slowest of them in the last interval that had any.

use std::{borrow::Cow, collections::BTreeMap, net::IpAddr};

use crate::{
    journey::{Journey, Stage, model::Shared},
    sink::{analysis, escape, summary::StageSummary},
};

/// The most distinct (stage, reason) pairs a row keeps; more are counted under the last.
const MISSING_REASONS: usize = 16;

/// How journeys are grouped into rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupBy {
    /// The reading process (tgid), named by its task name.
    Process,
    /// Protocol, addresses and ports from the packet's own headers.
    Flow,
    /// The network device that received the packet.
    Dev,
    /// The CPU the reader ran on when recv() returned.
    Cpu,
}

impl GroupBy {
    /// Every grouping, in the order `g` cycles through them.
    pub const ALL: [GroupBy; 4] = [GroupBy::Process, GroupBy::Flow, GroupBy::Dev, GroupBy::Cpu];

    /// The grouping's name on the command line and on screen.
    pub const fn name(self) -> &'static str {
        match self {
            GroupBy::Process => "process",
            GroupBy::Flow => "flow",
            GroupBy::Dev => "dev",
            GroupBy::Cpu => "cpu",
        }
    }

    /// The grouping after this one.
    pub fn next(self) -> Self {
        Self::ALL[(self as usize + 1) % Self::ALL.len()]
    }
}

/// A flow: protocol, addresses and ports of the packet's own headers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    proto: Cow<'static, str>,
    saddr: IpAddr,
    sport: Option<u16>,
    daddr: IpAddr,
    dport: Option<u16>,
}

/// A row's identity within its grouping.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowKey {
    /// A reading process (tgid).
    Process(u32),
    /// A flow.
    Flow(FlowKey),
    /// A network device.
    Dev(Shared),
    /// The reader's CPU.
    Cpu(u16),
    /// Journeys without the grouping's key (no reader, no headers, no CPU).
    Unknown,
    /// Keys that came after the grouping's row limit.
    Other,
}

impl RowKey {
    /// The key of `journey` in grouping `by`.
    pub fn of(journey: &Journey, by: GroupBy) -> Self {
        let key = match by {
            GroupBy::Process => journey.pid.map(RowKey::Process),
            GroupBy::Flow => journey.saddr.zip(journey.daddr).map(|(saddr, daddr)| {
                RowKey::Flow(FlowKey {
                    proto: journey.proto.clone(),
                    saddr,
                    sport: journey.sport,
                    daddr,
                    dport: journey.dport,
                })
            }),
            GroupBy::Dev => Some(RowKey::Dev(journey.dev.clone())),
            GroupBy::Cpu => journey.cpu_task.map(RowKey::Cpu),
        };
        key.unwrap_or(RowKey::Unknown)
    }

    /// The row's name on screen (names from the traced host escaped), from the first
    /// journey of the row.
    fn label(&self, journey: &Journey, by: GroupBy) -> String {
        match self {
            RowKey::Process(pid) => format!(
                "{}({pid})",
                escape::text(journey.comm.as_deref().unwrap_or("?"))
            ),
            RowKey::Flow(_) => analysis::flow_key(journey),
            RowKey::Dev(dev) => escape::text(dev).into_owned(),
            RowKey::Cpu(cpu) => format!("cpu{cpu}"),
            RowKey::Unknown => match by {
                GroupBy::Process => "(no reader)",
                GroupBy::Flow => "(no headers)",
                GroupBy::Dev => "(no device)",
                GroupBy::Cpu => "(no reader CPU)",
            }
            .to_owned(),
            RowKey::Other => "(other)".to_owned(),
        }
    }
}

/// The slowest journey of an interval.
#[derive(Clone, Debug)]
pub struct Slowest {
    /// The journey.
    pub journey: Journey,
    /// When its interval ended (CLOCK_MONOTONIC ns).
    pub interval_end_ns: u64,
}

/// The journeys of one row.
#[derive(Clone, Debug)]
pub struct Row {
    /// Its identity.
    pub key: RowKey,
    /// Its name on screen.
    pub label: String,
    /// Characters at the end of the label to keep when it is cut (a process's `(pid)`).
    pub tail: usize,
    /// Per-stage histograms since the last reset.
    pub stages: StageSummary,
    /// Journeys that reached recv() with every link made on evidence.
    pub complete: u64,
    /// Journeys touched by lost events.
    pub lost: u64,
    /// Journeys that ended in a drop.
    pub dropped: u64,
    /// Stages the journeys did not have, by stage and reason.
    pub missing: BTreeMap<(Stage, Cow<'static, str>), u64>,
    /// Journeys per second over the last closed interval.
    pub rate: f64,
    /// The slowest journey of the last interval that had any.
    pub slowest: Option<Slowest>,
    /// Journeys in the interval still open.
    open_count: u64,
    /// The slowest journey of the interval still open.
    open_slowest: Option<Journey>,
}

impl Row {
    /// An empty row for `key`, named after `journey` (its first).
    pub fn new(key: RowKey, journey: &Journey, by: GroupBy) -> Self {
        let label = key.label(journey, by);
        // What tells rows apart stays when a label is cut: the pid, the destination.
        let tail = match key {
            RowKey::Process(_) => label.rfind('('),
            RowKey::Flow(_) => label.rfind('>'),
            _ => None,
        }
        .map_or(0, |at| label[at..].chars().count());
        Self {
            label,
            tail,
            key,
            stages: StageSummary::default(),
            complete: 0,
            lost: 0,
            dropped: 0,
            missing: BTreeMap::new(),
            rate: 0.0,
            slowest: None,
            open_count: 0,
            open_slowest: None,
        }
    }

    /// Journeys since the last reset.
    pub fn journeys(&self) -> u64 {
        self.stages.journeys
    }

    /// Adds a finished journey.
    pub fn add(&mut self, journey: &Journey) {
        self.stages.add(journey);
        self.complete += u64::from(journey.complete);
        self.lost += u64::from(journey.lost_events);
        self.dropped += u64::from(journey.drop_reason.is_some());
        for missing in &journey.missing {
            let key = (missing.stage, missing.reason.clone());
            if self.missing.len() < MISSING_REASONS || self.missing.contains_key(&key) {
                *self.missing.entry(key).or_default() += 1;
            } else if let Some(mut last) = self.missing.last_entry() {
                *last.get_mut() += 1;
            }
        }
        self.open_count += 1;
        let slower = |open: &Journey| journey.stages_ns.total > open.stages_ns.total;
        if journey.stages_ns.total.is_some() && self.open_slowest.as_ref().is_none_or(slower) {
            self.open_slowest = Some(journey.clone());
        }
    }

    /// Closes the open interval, `seconds` long, ending at `end_ns`.
    pub fn close_interval(&mut self, seconds: f64, end_ns: u64) {
        self.rate = if seconds > 0.0 {
            self.open_count as f64 / seconds
        } else {
            0.0
        };
        self.open_count = 0;
        if let Some(journey) = self.open_slowest.take() {
            self.slowest = Some(Slowest {
                journey,
                interval_end_ns: end_ns,
            });
        }
    }

    /// The value at quantile `q` of a stage since the last reset.
    pub fn quantile(&self, stage: Stage, q: f64) -> Option<u64> {
        self.stages.stage(stage)?.quantile(q)
    }

    /// The most frequent reason the row's journeys lacked `stage`.
    pub fn top_missing_of(&self, stage: Stage) -> Option<&str> {
        self.missing
            .iter()
            .filter(|((missing, _), _)| *missing == stage)
            .max_by_key(|(_, n)| **n)
            .map(|((_, reason), _)| reason.as_ref())
    }

    /// The most frequent missing-stage reason: (stage, reason, count).
    pub fn top_missing(&self) -> Option<(Stage, &str, u64)> {
        self.missing
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|((stage, reason), n)| (*stage, reason.as_ref(), *n))
    }
}
