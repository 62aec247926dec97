//! Which finished journeys to keep: by reader process, task name, device, CPU touched or
//! flow (a filter expression, evaluated as the kernel does).

use super::Journey;
use crate::flow::FlowFilter;

/// Which journeys to show (applied to finished journeys, in user space).
#[derive(Clone, Debug, Default)]
pub struct JourneyFilter {
    /// Processes (tgid) whose reads took the packets; empty: any.
    pub pids: Vec<u32>,
    pub comm: Option<String>,
    pub dev: Option<String>,
    pub cpu: Option<u16>,
    /// The flow filter expression: journeys of matching packets (a journey whose addresses
    /// are unknown never matches).
    pub flow: Option<FlowFilter>,
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
            && self.flow.as_ref().is_none_or(|flow| {
                flow.matches_packet(
                    proto_number(&journey.proto),
                    journey.saddr,
                    journey.sport,
                    journey.daddr,
                    journey.dport,
                )
            })
    }
}

/// The IP protocol number of a journey's `proto` (`tcp`, `udp`, or a number).
fn proto_number(proto: &str) -> u8 {
    match proto {
        "tcp" => 6,
        "udp" => 17,
        other => other.parse().unwrap_or(0),
    }
}
