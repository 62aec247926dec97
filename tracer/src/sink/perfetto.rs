//! A Perfetto trace (protobuf `perfetto.protos.Trace` of TrackEvents) of a recording:
//! per CPU, a track of hard IRQ and NET_RX softirq slices with NAPI polls as instants, and a
//! track of the readers' running slices; every journey is a flow of instants, one per stamp,
//! on the CPU where it happened, so ui.perfetto.dev draws the packet's path as arrows; the
//! last instant of a journey carries its record (the field table) as args.
//!
//! Field numbers are those of perfetto/trace/trace_packet.proto and track_event.proto.
//! Timestamps are CLOCK_MONOTONIC ns, written as the default (boot-time) track-event clock.

use std::collections::{HashMap, HashSet};

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

#[derive(Default)]
struct Writer {
    trace: Message,
    packets: u64,
}

impl Writer {
    fn packet(&mut self, packet: &Message) {
        self.trace.message(1, packet);
        self.packets += 1;
    }

    fn track(&mut self, uuid: u64, name: &str) {
        let mut descriptor = Message::default();
        descriptor.uint(TRACK_UUID, uuid).string(TRACK_NAME, name);
        let mut packet = Message::default();
        packet.message(PACKET_TRACK_DESCRIPTOR, &descriptor);
        self.packet(&packet);
    }

    fn event(
        &mut self,
        ts: u64,
        kind: u64,
        track: u64,
        name: Option<&str>,
        flows: &[u64],
        terminating: &[u64],
    ) {
        let event = track_event(kind, track, name, flows, terminating);
        self.emit(ts, &event);
    }

    fn emit(&mut self, ts: u64, event: &Message) {
        let mut packet = Message::default();
        packet
            .uint(PACKET_TIMESTAMP, ts)
            .uint(PACKET_SEQUENCE_ID, SEQUENCE)
            .message(PACKET_TRACK_EVENT, event);
        self.packet(&packet);
    }
}

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
    fn begin(&mut self, what: &'static str) {
        self.0.push(what);
    }

    /// Whether the innermost open slice is `what` (then it is closed).
    fn end(&mut self, what: &'static str) -> bool {
        if self.0.last() == Some(&what) {
            self.0.pop();
            true
        } else {
            false
        }
    }
}

/// Encodes the trace. `irq_names`: interrupt names by number; `comms`: task names by tid.
pub fn export(
    events: &[Event],
    journeys: &[Journey],
    irq_names: &HashMap<u32, String>,
    comms: &HashMap<u32, String>,
) -> Vec<u8> {
    let mut writer = Writer::default();
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|event| event.ts);
    let mut cpus: Vec<u16> = sorted
        .iter()
        .map(|event| event.cpu)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    cpus.sort_unstable();
    for &cpu in &cpus {
        writer.track(
            cpu_track(cpu),
            &format!("CPU {cpu}: hard IRQs and NET_RX softirqs"),
        );
        writer.track(task_track(cpu), &format!("CPU {cpu}: readers"));
    }
    let readers: HashSet<u32> = journeys.iter().filter_map(|journey| journey.tid).collect();
    let mut open: HashMap<u64, Open> = HashMap::new();
    for event in &sorted {
        let kernel = cpu_track(event.cpu);
        let tasks = task_track(event.cpu);
        match EventKind::from_u8(event.kind) {
            Some(EventKind::IrqHandlerEntry) => {
                let name = irq_names
                    .get(&event.arg0)
                    .map_or(String::new(), |name| format!(" {name}"));
                open.entry(kernel).or_default().begin("irq");
                writer.event(
                    event.ts,
                    SLICE_BEGIN,
                    kernel,
                    Some(&format!("irq {}{name}", event.arg0)),
                    &[],
                    &[],
                );
            }
            Some(EventKind::IrqHandlerExit) if open.entry(kernel).or_default().end("irq") => {
                writer.event(event.ts, SLICE_END, kernel, None, &[], &[]);
            }
            Some(EventKind::SoftirqEntry) if event.arg0 == NET_RX_SOFTIRQ => {
                open.entry(kernel).or_default().begin("softirq");
                writer.event(
                    event.ts,
                    SLICE_BEGIN,
                    kernel,
                    Some("NET_RX softirq"),
                    &[],
                    &[],
                );
            }
            Some(EventKind::SoftirqExit)
                if event.arg0 == NET_RX_SOFTIRQ
                    && open.entry(kernel).or_default().end("softirq") =>
            {
                writer.event(event.ts, SLICE_END, kernel, None, &[], &[]);
            }
            Some(EventKind::NapiPoll) => {
                let name = format!(
                    "napi_poll {} {}/{}",
                    crate::source::decode::name(event),
                    event.arg0,
                    event.arg1
                );
                writer.event(event.ts, INSTANT, kernel, Some(&name), &[], &[]);
            }
            Some(EventKind::SchedSwitch) => {
                if readers.contains(&event.tid) && open.entry(tasks).or_default().end("task") {
                    writer.event(event.ts, SLICE_END, tasks, None, &[], &[]);
                }
                if readers.contains(&event.arg1) {
                    let comm = comms
                        .get(&event.arg1)
                        .cloned()
                        .unwrap_or_else(|| crate::source::decode::name(event));
                    open.entry(tasks).or_default().begin("task");
                    let name = format!("{comm} ({})", event.arg1);
                    writer.event(event.ts, SLICE_BEGIN, tasks, Some(&name), &[], &[]);
                }
            }
            _ => {}
        }
    }
    // Close what is still open at the end of the trace.
    let end = sorted.last().map_or(0, |event| event.ts);
    let mut tracks: Vec<(&u64, &Open)> = open.iter().collect();
    tracks.sort_by_key(|(track, _)| **track);
    for (track, slices) in tracks {
        for _ in &slices.0 {
            writer.event(end, SLICE_END, *track, None, &[], &[]);
        }
    }
    for journey in journeys {
        let stamps = journey_stamps(journey);
        if stamps.len() < 2 {
            continue;
        }
        let flow = [journey.id];
        for (index, (name, ts, track)) in stamps.iter().enumerate() {
            let label = format!("packet {} {name}", journey.id);
            if index + 1 == stamps.len() {
                // The journey's last instant carries its whole record as args.
                let mut event = track_event(INSTANT, *track, Some(&label), &[], &flow);
                journey_args(journey, &mut event);
                writer.emit(*ts, &event);
            } else {
                writer.event(*ts, INSTANT, *track, Some(&label), &flow, &[]);
            }
        }
    }
    writer.trace.into_bytes()
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
