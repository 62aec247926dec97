//! Names for numbers: IRQ names (`/proc/interrupts`), task comms (learned from sched events,
//! else `/proc/<tid>/comm`), drop reasons (the kfree_skb format's symbol table).

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    fs,
};

use tracer_common::{Event, EventKind};

use crate::decode;

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

/// The entries of `dir` named by a number (`/proc/<pid>`, `/proc/<pid>/task/<tid>`), with
/// their paths; empty if `dir` cannot be read.
pub fn numbered_entries(dir: &std::path::Path) -> impl Iterator<Item = (u32, std::path::PathBuf)> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path())))
}

/// Comms of the ksoftirqd threads (tid -> `ksoftirqd/N`), so NET_RX work that runs in them
/// is recognised before any sched event names them.
pub fn kernel_thread_comms() -> HashMap<u32, String> {
    let mut comms = HashMap::new();
    for (pid, dir) in numbered_entries(std::path::Path::new("/proc")) {
        if let Ok(comm) = fs::read_to_string(dir.join("comm"))
            && comm.starts_with("ksoftirqd/")
        {
            comms.insert(pid, comm.trim_end().to_owned());
        }
    }
    comms
}

/// IRQ number -> action name from the text of `/proc/interrupts` (the last column).
pub fn parse_interrupts(text: &str) -> HashMap<u32, String> {
    let mut irqs = HashMap::new();
    for line in text.lines().skip(1) {
        let Some((number, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        if let Some(action) = rest.split_whitespace().last() {
            irqs.insert(number, action.to_owned());
        }
    }
    irqs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_interrupts() {
        let text = "           CPU0       CPU1\n\
            \x20 38:          0       5491 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n\
            \x20 39:       5169          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0\n\
            NMI:          0          0   Non-maskable interrupts\n";
        let irqs = parse_interrupts(text);
        assert_eq!(irqs.get(&38).map(String::as_str), Some("virtio2-input.0"));
        assert_eq!(irqs.get(&39).map(String::as_str), Some("virtio2-output.0"));
        assert_eq!(irqs.len(), 2);
    }

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
