//! Names for numbers: IRQ names (`/proc/interrupts`), task comms (learned from sched events,
//! else `/proc/<tid>/comm`), drop reasons (the kfree_skb format's symbol table).

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    fs,
};

use tracer_common::{Event, EventKind};

use super::procfs::parse_interrupts;
use crate::source::decode;

/// Resolves IRQ numbers, task ids and drop reasons to names.
#[derive(Debug, Default)]
pub struct Names {
    irqs: HashMap<u32, String>,
    comms: RefCell<HashMap<u32, String>>,
    drop_reasons: BTreeMap<u64, String>,
    read_proc: bool,
}

impl Names {
    /// Names of the running system: IRQs from `/proc/interrupts`, comms from `/proc` when no
    /// sched event has named a task yet.
    pub fn from_system(drop_reasons: BTreeMap<u64, String>) -> Self {
        let irqs = fs::read_to_string("/proc/interrupts")
            .map(|text| parse_interrupts(&text))
            .unwrap_or_default();
        Self {
            irqs,
            drop_reasons,
            read_proc: true,
            ..Self::default()
        }
    }

    /// The action name of an IRQ, e.g. `virtio2-input.0`, or `irq<N>`.
    pub fn irq(&self, irq: u32) -> String {
        self.irqs
            .get(&irq)
            .cloned()
            .unwrap_or_else(|| format!("irq{irq}"))
    }

    /// The name of a `skb_drop_reason` value, or its number.
    pub fn drop_reason(&self, reason: u32) -> String {
        self.drop_reasons
            .get(&u64::from(reason))
            .cloned()
            .unwrap_or_else(|| reason.to_string())
    }

    /// The comm of a thread: as last seen in a sched event, else from `/proc`, else `?`.
    pub fn comm(&self, tid: u32) -> String {
        if tid == 0 {
            return "swapper".to_owned();
        }
        let mut comms = self.comms.borrow_mut();
        comms
            .entry(tid)
            .or_insert_with(|| {
                let from_proc = self
                    .read_proc
                    .then(|| fs::read_to_string(format!("/proc/{tid}/comm")).ok())
                    .flatten();
                from_proc.map_or_else(|| "?".to_owned(), |comm| comm.trim_end().to_owned())
            })
            .clone()
    }

    /// Learns task names that an event carries (the woken task, the task switched in).
    pub fn learn(&self, event: &Event, kind: EventKind) {
        let tid = match kind {
            EventKind::SchedWaking | EventKind::SchedWakeup => event.arg0,
            EventKind::SchedSwitch => event.arg1,
            _ => return,
        };
        if tid != 0 {
            self.comms.borrow_mut().insert(tid, decode::name(event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_comms_from_sched_events() {
        let names = Names::default();
        assert_eq!(names.comm(77), "?");
        let mut event = Event {
            arg0: 78,
            kind: EventKind::SchedWaking as u8,
            ..Event::ZERO
        };
        event.name[..6].copy_from_slice(b"reader");
        names.learn(&event, EventKind::SchedWaking);
        assert_eq!(names.comm(78), "reader");
        assert_eq!(names.comm(0), "swapper");
        assert_eq!(names.drop_reason(6), "6");
    }
}
