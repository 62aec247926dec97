//! The metadata of a recording made now on this host: what a later analysis elsewhere needs
//! (interrupts, drop reasons, kernel threads, field offsets, what was left out, cgroup paths).

use std::collections::BTreeMap;

use tracer_common::{Slot, offsets::ABSENT};

use super::{Metadata, RecordedIrq};
use crate::{
    host::{cgroup, clock, irqmap::IrqMap, procfs},
    probe::Probes,
};

/// The filters of a recording, as command-line words for its metadata.
pub fn record_filters(pid: Option<u32>, without: &[String]) -> Vec<String> {
    let mut filters: Vec<String> = pid.map(|pid| format!("--pid={pid}")).into_iter().collect();
    filters.extend(without.iter().map(|tp| format!("--without={tp}")));
    filters
}

/// The metadata of a recording made now on this host.
pub fn metadata(probes: &Probes, filters: Vec<String>) -> Metadata {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .unwrap_or_default()
    };
    let mut irqs: Vec<RecordedIrq> = IrqMap::from_system()
        .irqs
        .into_iter()
        .map(|(irq, device)| RecordedIrq {
            irq,
            dev: device.dev,
            name: device.name,
        })
        .collect();
    irqs.sort_by_key(|irq| irq.irq);
    let offsets = Slot::ALL
        .iter()
        .filter(|slot| probes.layout.offsets[**slot as usize] != ABSENT)
        .map(|slot| {
            let spec = slot.spec();
            (
                format!("{}:{}:{}", spec.category, spec.tracepoint, spec.field),
                probes.layout.offsets[*slot as usize],
            )
        })
        .collect();
    let skipped = probes
        .skipped
        .iter()
        .map(|(kind, why)| {
            let (category, name) = kind.tracepoint();
            (format!("{category}:{name}"), why.clone())
        })
        .collect();
    Metadata {
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        kernel: read("/proc/sys/kernel/osrelease"),
        hostname: read("/proc/sys/kernel/hostname"),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()) as u32,
        realtime_offset_ns: clock::realtime_offset_ns(),
        started_ns: clock::monotonic_ns(),
        irqs,
        drop_reasons: probes.drop_reasons(),
        comms: procfs::kernel_thread_comms()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        filters,
        offsets,
        skipped,
        cgroups: cgroup::snapshot(),
    }
}
