//! Which finished journeys to keep: by reader process, task name, device or CPU touched.

use super::Journey;

/// Which journeys to show (applied to finished journeys, in user space).
#[derive(Clone, Debug, Default)]
pub struct JourneyFilter {
    /// Processes (tgid) whose reads took the packets; empty: any.
    pub pids: Vec<u32>,
    pub comm: Option<String>,
    pub dev: Option<String>,
    pub cpu: Option<u16>,
}

impl JourneyFilter {
    /// The readers whose journeys the engine keeps and counts (`--pid`, `--comm`): a
    /// journey belongs to the thread whose read returned it.
    pub fn readers(&self) -> super::ReaderFilter {
        super::ReaderFilter {
            pids: self.pids.clone(),
            comms: self.comm.iter().cloned().collect(),
        }
    }

    /// Whether a finished journey passes every filter.
    pub fn keeps(&self, journey: &Journey) -> bool {
        let cpu_touched = |cpu: u16| {
            [
                journey.cpu_irq,
                journey.cpu_softirq,
                journey.cpu_stack,
                journey.cpu_task,
            ]
            .contains(&Some(cpu))
        };
        (self.pids.is_empty() || journey.pid.is_some_and(|pid| self.pids.contains(&pid)))
            && self
                .comm
                .as_ref()
                .is_none_or(|comm| journey.comm.as_deref() == Some(comm.as_str()))
            && self.dev.as_ref().is_none_or(|dev| *journey.dev == **dev)
            && self.cpu.is_none_or(cpu_touched)
    }
}
