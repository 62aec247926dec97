//! A Perfetto trace (protobuf `perfetto.protos.Trace` of TrackEvents) of a recording:
//! per CPU, a track of hard IRQ and NET_RX softirq slices with NAPI polls as instants, and a
//! track of the readers' running slices; every journey is a flow of instants, one per stamp,
//! on the CPU where it happened, so ui.perfetto.dev draws the packet's path as arrows; the
//! last instant of a journey carries its record (the field table) as args.
//!
//! Field numbers are those of perfetto/trace/trace_packet.proto and track_event.proto.
//! Timestamps are CLOCK_MONOTONIC ns, written as the default (boot-time) track-event clock.

use std::{
    collections::{HashMap, HashSet},
    io::{self, Write},
};

use tracer_common::{Event, EventKind, NET_RX_SOFTIRQ};

use super::protobuf::Message;
use crate::journey::{
    Journey,
    fields::{FIELDS, Value, stages},
};

/// The journey's record as debug annotations (the args ui.perfetto.dev shows for the event),
/// from the one field table: every field present, stages as `stages_ns.<stage>`, missing
/// stages as one text; the stamps are the flow's instants themselves.
fn journey_args(journey: &Journey, event: &mut Message) {
    let mut arg = |name: &str, fill: &dyn Fn(&mut Message)| {
        let mut annotation = Message::default();
        annotation.string(ARG_NAME, name);
        fill(&mut annotation);
        event.message(EVENT_DEBUG_ANNOTATIONS, &annotation);
    };
    for field in FIELDS {
        match (field.value)(journey) {
            Value::Unsigned(Some(v)) => arg(field.name, &|a| {
                a.uint(ARG_UINT, v);
            }),
            Value::Signed(Some(v)) => arg(field.name, &|a| {
                a.uint(ARG_INT, v as u64);
            }),
            Value::Text(Some(text)) => arg(field.name, &|a| {
                a.string(ARG_STRING, text);
            }),
            Value::Bool(v) => arg(field.name, &|a| {
                a.uint(ARG_BOOL, u64::from(v));
            }),
            Value::Addr(Some(addr)) => arg(field.name, &|a| {
                a.string(ARG_STRING, &addr.to_string());
            }),
            Value::Ip(Some(ip)) => arg(field.name, &|a| {
                a.string(ARG_STRING, &ip.to_string());
            }),
            Value::Stages(ns) => {
                for (stage, value) in stages(ns) {
                    if let Some(v) = value {
                        arg(&format!("{}.{}", field.name, stage.name()), &|a| {
                            a.uint(ARG_UINT, v);
                        });
                    }
                }
            }
            Value::Missing(missing) if !missing.is_empty() => {
                let text: Vec<String> = missing
                    .iter()
                    .map(|m| format!("{}: {}", m.stage.name(), m.reason))
                    .collect();
                arg(field.name, &|a| {
                    a.string(ARG_STRING, &text.join("; "));
                });
            }
            _ => {}
        }
    }
}

// TracePacket
const PACKET_TIMESTAMP: u32 = 8;
const PACKET_SEQUENCE_ID: u32 = 10;
const PACKET_TRACK_EVENT: u32 = 11;
const PACKET_TRACK_DESCRIPTOR: u32 = 60;
// TrackDescriptor
const TRACK_UUID: u32 = 1;
const TRACK_NAME: u32 = 2;
// TrackEvent
const EVENT_TYPE: u32 = 9;
const EVENT_TRACK_UUID: u32 = 11;
const EVENT_NAME: u32 = 23;
const EVENT_FLOW_IDS: u32 = 47;
const EVENT_TERMINATING_FLOW_IDS: u32 = 48;
const EVENT_DEBUG_ANNOTATIONS: u32 = 4;
// DebugAnnotation
const ARG_NAME: u32 = 10;
const ARG_BOOL: u32 = 2;
const ARG_UINT: u32 = 3;
const ARG_INT: u32 = 4;
const ARG_STRING: u32 = 6;
const SLICE_BEGIN: u64 = 1;
const SLICE_END: u64 = 2;
const INSTANT: u64 = 3;

const SEQUENCE: u64 = 1;

/// The kernel-context track of a CPU (IRQs, softirqs, packet stamps in softirq).
pub fn cpu_track(cpu: u16) -> u64 {
    1000 + u64::from(cpu)
}

/// The task track of a CPU (readers running, packet stamps in the reader).
pub fn task_track(cpu: u16) -> u64 {
    2000 + u64::from(cpu)
}

/// Slices open at most, over every track (16 MiB): real nesting is an IRQ inside a
/// softirq, though a reader's running slices can pile up when its switch out was not
/// recorded (thousands in a long flood); a crafted file that only opens slices must not
/// grow the stacks without end.
const MAX_OPEN: usize = 1 << 20;

/// A TrackEvent of this kind on this track, with its name and flow links.
fn track_event(
    kind: u64,
    track: u64,
    name: Option<&str>,
    flows: &[u64],
    terminating: &[u64],
) -> Message {
    let mut event = Message::default();
    event.uint(EVENT_TYPE, kind).uint(EVENT_TRACK_UUID, track);
    if let Some(name) = name {
        event.string(EVENT_NAME, name);
    }
    for flow in flows {
        event.fixed64(EVENT_FLOW_IDS, *flow);
    }
    for flow in terminating {
        event.fixed64(EVENT_TERMINATING_FLOW_IDS, *flow);
    }
    event
}

/// Open slices of one track, innermost last, so END events always match a BEGIN.
#[derive(Default)]
struct Open(Vec<&'static str>);

impl Open {
    /// Opens `what`, unless `total` slices are open already (then nothing opens).
    fn begin(&mut self, what: &'static str, total: &mut usize) -> bool {
        if *total >= MAX_OPEN {
            return false;
        }
        *total += 1;
        self.0.push(what);
        true
    }

    /// Whether the innermost open slice is `what` (then it is closed).
    fn end(&mut self, what: &'static str, total: &mut usize) -> bool {
        if self.0.last() == Some(&what) {
            self.0.pop();
            *total -= 1;
            true
        } else {
            false
        }
    }
}

/// A Perfetto trace written packet by packet as events and journeys come, so an export
/// holds no more than the slices open on each CPU: a track is declared before its first
/// event; events (in time order) draw IRQ and softirq slices, NAPI polls and, once the
/// readers are known ([`Self::readers`]), the readers' running slices; journeys are flows.
/// Perfetto orders packets by their timestamps, so journeys and events may come in two
/// passes, in either order.
pub struct TraceWriter<W: Write> {
    out: W,
    bytes: u64,
    /// CPUs whose two tracks are declared.
    declared: Vec<bool>,
    open: HashMap<u64, Open>,
    /// Slices open over every track.
    opened: usize,
    irq_names: HashMap<u32, String>,
    readers: HashSet<u32>,
    comms: HashMap<u32, String>,
    last_ts: u64,
}

impl<W: Write> TraceWriter<W> {
    /// A trace on `out`; `irq_names`: interrupt names by number.
    pub fn new(out: W, irq_names: HashMap<u32, String>) -> Self {
        Self {
            out,
            bytes: 0,
            declared: Vec::new(),
            open: HashMap::new(),
            opened: 0,
            irq_names,
            readers: HashSet::new(),
            comms: HashMap::new(),
            last_ts: 0,
        }
    }

    /// The threads whose running slices are drawn (those that read journeys), with their
    /// names by tid; events before this call draw none.
    pub fn readers(&mut self, readers: HashSet<u32>, comms: HashMap<u32, String>) {
        self.readers = readers;
        self.comms = comms;
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn packet(&mut self, packet: &Message) -> io::Result<()> {
        self.bytes += packet.write_as_field(1, &mut self.out)?;
        Ok(())
    }

    /// Declares the two tracks of `cpu`, once.
    pub fn cpu(&mut self, cpu: u16) -> io::Result<()> {
        let index = usize::from(cpu);
        if self.declared.get(index).copied().unwrap_or(false) {
            return Ok(());
        }
        if self.declared.len() <= index {
            self.declared.resize(index + 1, false);
        }
        self.declared[index] = true;
        self.track(
            cpu_track(cpu),
            &format!("CPU {cpu}: hard IRQs and NET_RX softirqs"),
        )?;
        self.track(task_track(cpu), &format!("CPU {cpu}: readers"))
    }

    fn track(&mut self, uuid: u64, name: &str) -> io::Result<()> {
        let mut descriptor = Message::default();
        descriptor.uint(TRACK_UUID, uuid).string(TRACK_NAME, name);
        let mut packet = Message::default();
        packet.message(PACKET_TRACK_DESCRIPTOR, &descriptor);
        self.packet(&packet)
    }

    fn event_on(
        &mut self,
        ts: u64,
        kind: u64,
        track: u64,
        name: Option<&str>,
        flows: &[u64],
        terminating: &[u64],
    ) -> io::Result<()> {
        let event = track_event(kind, track, name, flows, terminating);
        self.emit(ts, &event)
    }

    fn emit(&mut self, ts: u64, event: &Message) -> io::Result<()> {
        let mut packet = Message::default();
        packet
            .uint(PACKET_TIMESTAMP, ts)
            .uint(PACKET_SEQUENCE_ID, SEQUENCE)
            .message(PACKET_TRACK_EVENT, event);
        self.packet(&packet)
    }

    /// Opens slice `what` on `track` (false when too many are open: then nothing opens).
    fn begin(&mut self, track: u64, what: &'static str) -> bool {
        self.open
            .entry(track)
            .or_default()
            .begin(what, &mut self.opened)
    }

    /// Closes slice `what` on `track` if it is the innermost open there.
    fn end(&mut self, track: u64, what: &'static str) -> bool {
        self.open
            .entry(track)
            .or_default()
            .end(what, &mut self.opened)
    }

    /// One event of the recording, in time order.
    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        self.cpu(event.cpu)?;
        self.last_ts = self.last_ts.max(event.ts);
        let kernel = cpu_track(event.cpu);
        let tasks = task_track(event.cpu);
        let ts = event.ts;
        match EventKind::from_u8(event.kind) {
            Some(EventKind::IrqHandlerEntry) if self.begin(kernel, "irq") => {
                let name = self
                    .irq_names
                    .get(&event.arg0)
                    .map_or(String::new(), |name| format!(" {name}"));
                let name = format!("irq {}{name}", event.arg0);
                self.event_on(ts, SLICE_BEGIN, kernel, Some(&name), &[], &[])?;
            }
            Some(EventKind::IrqHandlerExit) if self.end(kernel, "irq") => {
                self.event_on(ts, SLICE_END, kernel, None, &[], &[])?;
            }
            Some(EventKind::SoftirqEntry)
                if event.arg0 == NET_RX_SOFTIRQ && self.begin(kernel, "softirq") =>
            {
                self.event_on(ts, SLICE_BEGIN, kernel, Some("NET_RX softirq"), &[], &[])?;
            }
            Some(EventKind::SoftirqExit)
                if event.arg0 == NET_RX_SOFTIRQ && self.end(kernel, "softirq") =>
            {
                self.event_on(ts, SLICE_END, kernel, None, &[], &[])?;
            }
            Some(EventKind::NapiPoll) => {
                let name = format!(
                    "napi_poll {} {}/{}",
                    crate::source::decode::name(event),
                    event.arg0,
                    event.arg1
                );
                self.event_on(ts, INSTANT, kernel, Some(&name), &[], &[])?;
            }
            Some(EventKind::SchedSwitch) => {
                if self.readers.contains(&event.tid) && self.end(tasks, "task") {
                    self.event_on(ts, SLICE_END, tasks, None, &[], &[])?;
                }
                if self.readers.contains(&event.arg1) && self.begin(tasks, "task") {
                    let comm = self
                        .comms
                        .get(&event.arg1)
                        .cloned()
                        .unwrap_or_else(|| crate::source::decode::name(event));
                    let name = format!("{comm} ({})", event.arg1);
                    self.event_on(ts, SLICE_BEGIN, tasks, Some(&name), &[], &[])?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Closes every slice still open, at the last event's stamp (the end of the events).
    pub fn close_slices(&mut self) -> io::Result<()> {
        let mut tracks: Vec<(u64, usize)> = self
            .open
            .iter()
            .map(|(track, slices)| (*track, slices.0.len()))
            .collect();
        tracks.sort_unstable();
        for (track, slices) in tracks {
            for _ in 0..slices {
                self.event_on(self.last_ts, SLICE_END, track, None, &[], &[])?;
            }
        }
        self.open.clear();
        self.opened = 0;
        Ok(())
    }

    /// A journey as a flow of instants, one per stamp; the last carries its record.
    pub fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        let stamps = journey_stamps(journey);
        if stamps.len() < 2 {
            return Ok(());
        }
        for cpu in [journey.cpu_irq, journey.cpu_softirq, journey.cpu_stack]
            .into_iter()
            .chain([journey.cpu_task])
            .flatten()
        {
            self.cpu(cpu)?;
        }
        let flow = [journey.id];
        for (index, (name, ts, track)) in stamps.iter().enumerate() {
            let label = format!("packet {} {name}", journey.id);
            if index + 1 == stamps.len() {
                // The journey's last instant carries its whole record as args.
                let mut event = track_event(INSTANT, *track, Some(&label), &[], &flow);
                journey_args(journey, &mut event);
                self.emit(*ts, &event)?;
            } else {
                self.event_on(*ts, INSTANT, *track, Some(&label), &flow, &[])?;
            }
        }
        Ok(())
    }

    /// Flushes and returns the output.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The whole trace in memory (small recordings and tests): CPU tracks, `events` sorted by
/// time, then `journeys`. `irq_names`: interrupt names by number; `comms`: task names by tid.
pub fn export(
    events: &[Event],
    journeys: &[Journey],
    irq_names: &HashMap<u32, String>,
    comms: &HashMap<u32, String>,
) -> Vec<u8> {
    let mut writer = TraceWriter::new(Vec::new(), irq_names.clone());
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|event| event.ts);
    let mut cpus: Vec<u16> = sorted.iter().map(|event| event.cpu).collect();
    cpus.sort_unstable();
    cpus.dedup();
    let readers = journeys.iter().filter_map(|journey| journey.tid).collect();
    writer.readers(readers, comms.clone());
    // Writing to memory cannot fail.
    let written = (|| {
        for cpu in cpus {
            writer.cpu(cpu)?;
        }
        for event in sorted {
            writer.event(event)?;
        }
        writer.close_slices()?;
        for journey in journeys {
            writer.journey(journey)?;
        }
        io::Result::Ok(())
    })();
    debug_assert!(written.is_ok());
    writer.out
}

/// A journey's stamps with the track of the CPU each happened on.
fn journey_stamps(journey: &Journey) -> Vec<(&'static str, u64, u64)> {
    let softirq_cpu = journey.cpu_softirq.or(journey.cpu_irq);
    let stack_cpu = journey.cpu_stack.or(softirq_cpu);
    let ts = &journey.ts;
    let rows = [
        ("irq_entry", ts.irq_entry, journey.cpu_irq.map(cpu_track)),
        (
            "softirq_raise",
            ts.softirq_raise,
            journey.cpu_irq.or(softirq_cpu).map(cpu_track),
        ),
        (
            "softirq_entry",
            ts.softirq_entry,
            softirq_cpu.map(cpu_track),
        ),
        ("netif_receive", ts.netif_receive, stack_cpu.map(cpu_track)),
        ("sk_data_ready", ts.sk_data_ready, stack_cpu.map(cpu_track)),
        ("waking", ts.waking, stack_cpu.map(cpu_track)),
        ("switch_in", ts.switch_in, journey.cpu_task.map(task_track)),
        (
            "recv_return",
            ts.recv_return,
            journey.cpu_task.map(task_track),
        ),
    ];
    let mut stamps: Vec<(&'static str, u64, u64)> = rows
        .into_iter()
        .filter_map(|(name, ts, track)| Some((name, ts?, track?)))
        .collect();
    stamps.sort_by_key(|(_, ts, _)| *ts);
    stamps
}
