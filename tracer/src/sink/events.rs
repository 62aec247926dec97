//! One decoded event as a text line (like `perf script`) or a JSON object, with numbers
//! resolved to names: what `tracer events` prints.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use tracer_common::{Event, EventKind, FLAG_LOST_BEFORE, NET_RX_SOFTIRQ};

use crate::{
    host::names::Names,
    source::decode::{name, softirq_name, task_state},
};

/// The kind-specific fields of one event, as (key, value) pairs in a fixed order.
pub fn fields(event: &Event, kind: EventKind, names: &Names) -> Vec<(&'static str, Value)> {
    use EventKind as K;
    let addr = |v: u64| json!(format!("{v:#x}"));
    match kind {
        K::IrqHandlerEntry => vec![
            ("irq", json!(event.arg0)),
            ("name", json!(names.irq(event.arg0))),
        ],
        K::IrqHandlerExit => vec![
            ("irq", json!(event.arg0)),
            (
                "ret",
                json!(if event.arg1 == 1 {
                    "handled"
                } else {
                    "unhandled"
                }),
            ),
        ],
        K::SoftirqRaise | K::SoftirqEntry | K::SoftirqExit => vec![
            ("vec", json!(event.arg0)),
            ("action", json!(softirq_name(event.arg0))),
        ],
        K::NapiPoll => vec![
            ("napi", addr(event.addr)),
            ("dev", json!(name(event))),
            ("work", json!(event.arg0)),
            ("budget", json!(event.arg1)),
        ],
        K::NetifReceiveSkb if event.flags & tracer_common::FLAG_ADDRS != 0 => {
            let mut fields = vec![("skbaddr", addr(event.addr)), ("addresses", json!(true))];
            if let Some((family, saddr, daddr)) = crate::source::decode::addresses(event) {
                fields.push(("family", json!(family)));
                fields.push(("saddr", json!(saddr.to_string())));
                fields.push(("daddr", json!(daddr.to_string())));
            }
            fields
        }
        K::NetifReceiveSkb | K::NetifRx => {
            let mut fields = vec![
                ("skbaddr", addr(event.addr)),
                ("len", json!(event.arg0)),
                ("dev", json!(name(event))),
            ];
            if event.arg1 & tracer_common::HDR_FRAGMENT != 0 {
                fields.push(("ip_proto", json!(event.arg1 & 0xff)));
                fields.push(("ip_fragment_bytes", json!(event.arg2)));
            } else if event.arg1 & tracer_common::HDR_VALID != 0 {
                fields.push(("ip_proto", json!(event.arg1 & 0xff)));
                fields.push(("payload", json!(event.arg2)));
                if event.arg1 & 0xff == 6 {
                    fields.push((
                        "tcp_flags",
                        json!(format!("{:#04x}", (event.arg1 >> 8) & 0xff)),
                    ));
                    fields.push(("seq", json!(event.addr2 as u32)));
                }
                if matches!(event.arg1 & 0xff, 6 | 17) {
                    fields.push(("sport", json!((event.addr2 >> 32) as u16)));
                    fields.push(("dport", json!((event.addr2 >> 48) as u16)));
                }
            }
            fields
        }
        K::TcpProbe => vec![
            ("skbaddr", addr(event.addr)),
            ("skaddr", addr(event.addr2)),
            ("data_len", json!(event.arg0)),
            ("sport", json!(event.arg1 >> 16)),
            ("dport", json!(event.arg1 & 0xffff)),
            ("family", json!(event.arg2)),
        ],
        K::TcpDestroySock => vec![("skaddr", addr(event.addr))],
        K::TcpRcvSpaceAdjust => vec![
            ("sk", addr(event.addr)),
            ("comm", json!(name(event))),
            ("copied_seq", copied_seq(event)),
        ],
        K::NapiGroReceiveEntry => vec![
            ("skbaddr", addr(event.addr)),
            ("len", json!(event.arg0)),
            ("dev", json!(name(event))),
            ("napi_id", json!(event.arg1)),
            ("queue", json!(event.arg2)),
        ],
        K::SkDataReady => vec![
            ("skaddr", addr(event.addr)),
            ("family", json!(event.arg0)),
            ("protocol", json!(event.arg1)),
        ],
        K::SchedWaking | K::SchedWakeup => vec![
            ("pid", json!(event.arg0)),
            ("comm", json!(name(event))),
            ("prio", json!(event.arg2)),
            ("target_cpu", json!(event.arg1)),
        ],
        K::SchedSwitch => vec![
            ("prev_pid", json!(event.tid)),
            ("prev_comm", json!(names.comm(event.tid))),
            ("prev_state", json!(task_state(event.addr))),
            ("next_pid", json!(event.arg1)),
            ("next_comm", json!(name(event))),
            ("next_prio", json!(event.arg2)),
        ],
        K::SkbCopyDatagramIovec => vec![
            ("skbaddr", addr(event.addr)),
            ("len", json!(event.arg0 as i32)),
        ],
        K::KfreeSkb => vec![
            ("skbaddr", addr(event.addr)),
            ("location", addr(event.addr2)),
            ("protocol", json!(event.arg1)),
            ("reason", json!(names.drop_reason(event.arg0))),
        ],
        K::ConsumeSkb => vec![
            ("skbaddr", addr(event.addr)),
            ("location", addr(event.addr2)),
        ],
        K::SockRecvLength => vec![
            ("sk", addr(event.addr)),
            ("family", json!(event.arg2 >> 16)),
            ("protocol", json!(event.arg2 & 0xffff)),
            ("ret", json!(event.arg0 as i32)),
            ("flags", json!(format!("{:#x}", event.arg1))),
            ("copied_seq", copied_seq(event)),
            // No recv-family syscall returns it: io_uring's recv, or a kernel reader.
            (
                "outside_syscall",
                json!(event.flags & tracer_common::FLAG_OUTSIDE_SYSCALL != 0),
            ),
        ],
        K::SysEnterRecvfrom | K::SysEnterRead => {
            vec![("fd", json!(event.arg0)), ("size", json!(event.addr2))]
        }
        K::SysEnterRecvmmsg | K::SysEnterReadv => {
            vec![("fd", json!(event.arg0)), ("vlen", json!(event.addr2))]
        }
        K::SysEnterRecvmsg => vec![("fd", json!(event.arg0))],
        K::SysExitRecvfrom
        | K::SysExitRecvmsg
        | K::SysExitRecvmmsg
        | K::SysExitRead
        | K::SysExitReadv => {
            let (netns, cgroup) = crate::source::decode::reader(event);
            vec![
                ("ret", json!(event.addr as i64)),
                ("netns", json!(netns)),
                ("cgroup", json!(cgroup)),
            ]
        }
    }
}

/// One JSON object: `ts`, `cpu`, `kind`, the current task, then the kind's own fields.
pub fn to_json(event: &Event, kind: EventKind, names: &Names) -> Value {
    let mut object = Map::new();
    object.insert("ts".into(), json!(event.ts));
    object.insert("cpu".into(), json!(event.cpu));
    object.insert("kind".into(), json!(kind.name()));
    object.insert("task_pid".into(), json!(event.tgid));
    object.insert("task_tid".into(), json!(event.tid));
    object.insert("task_comm".into(), json!(names.comm(event.tid)));
    for (key, value) in fields(event, kind, names) {
        object.insert(key.into(), value);
    }
    if event.flags & FLAG_LOST_BEFORE != 0 {
        object.insert("lost_before".into(), json!(true));
    }
    Value::Object(object)
}

/// One text line, like `perf script`: task, tid/pid, cpu, seconds, kind, fields.
pub fn to_text(event: &Event, kind: EventKind, names: &Names) -> String {
    let mut line = format!(
        "{:>16} {:>7}/{:<7} [{:03}] {:>5}.{:09}: {:<24}",
        super::escape::text(&names.comm(event.tid)),
        event.tid,
        event.tgid,
        event.cpu,
        event.ts / 1_000_000_000,
        event.ts % 1_000_000_000,
        kind.name(),
    );
    for (key, value) in fields(event, kind, names) {
        match value {
            Value::String(text) => write!(line, " {key}={}", super::escape::text(&text)),
            other => write!(line, " {key}={other}"),
        }
        .expect("writing to a String cannot fail");
    }
    if matches!(kind, EventKind::SoftirqRaise | EventKind::SoftirqEntry)
        && event.arg0 == NET_RX_SOFTIRQ
    {
        line.push_str(" *");
    }
    if event.flags & FLAG_LOST_BEFORE != 0 {
        line.push_str(" [events lost before this one on this CPU]");
    }
    line
}

/// `tcp_sock.copied_seq` as sock_recv_length and tcp_rcv_space_adjust carry it, or null
/// (no BTF, or not a TCP read).
fn copied_seq(event: &Event) -> Value {
    if event.addr2 & tracer_common::COPIED_SEQ_VALID != 0 {
        json!(event.addr2 as u32)
    } else {
        Value::Null
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(text: &str) -> [u8; 16] {
        let mut name = [0; 16];
        name[..text.len()].copy_from_slice(text.as_bytes());
        name
    }

    #[test]
    fn json_has_the_common_and_own_fields() {
        let names = Names::default();
        let event = Event {
            ts: 5,
            cpu: 1,
            tgid: 7,
            tid: 8,
            arg0: 99,
            arg1: 0,
            arg2: 120,
            kind: EventKind::SchedWaking as u8,
            name: named("reader"),
            ..Event::ZERO
        };
        let value = to_json(&event, EventKind::SchedWaking, &names);
        assert_eq!(value["ts"], 5);
        assert_eq!(value["cpu"], 1);
        assert_eq!(value["kind"], "sched_waking");
        assert_eq!(value["pid"], 99);
        assert_eq!(value["comm"], "reader");
        assert_eq!(value["task_pid"], 7);

        let exit = Event {
            addr: (-11i64) as u64,
            kind: EventKind::SysExitRecvfrom as u8,
            ..event
        };
        let value = to_json(&exit, EventKind::SysExitRecvfrom, &names);
        assert_eq!(value["ret"], -11);
        assert_eq!(value["netns"], 99, "arg0: the reader's network namespace");
        assert!(value["cgroup"].is_null(), "addr2 0: unknown, {value}");
        let exit = Event {
            addr2: 4242,
            arg0: 0,
            ..exit
        };
        let value = to_json(&exit, EventKind::SysExitRecvfrom, &names);
        assert_eq!(
            (value["cgroup"].as_u64(), value["netns"].is_null()),
            (Some(4242), true)
        );
        let recv_len = Event {
            addr: 0xabc,
            arg0: 32,
            arg1: 0x40,
            arg2: 2 << 16 | 17,
            kind: EventKind::SockRecvLength as u8,
            ..event
        };
        let value = to_json(&recv_len, EventKind::SockRecvLength, &names);
        assert_eq!(
            (value["sk"].as_str(), value["ret"].as_i64()),
            (Some("0xabc"), Some(32))
        );
        assert_eq!(
            (value["family"].as_u64(), value["protocol"].as_u64()),
            (Some(2), Some(17))
        );
    }

    #[test]
    fn text_line_names_kind_and_fields() {
        let names = Names::default();
        let event = Event {
            ts: 3_000_000_123,
            cpu: 0,
            addr: 1, // TASK_INTERRUPTIBLE
            tid: 10,
            arg1: 11,
            kind: EventKind::SchedSwitch as u8,
            name: named("next"),
            ..Event::ZERO
        };
        let line = to_text(&event, EventKind::SchedSwitch, &names);
        assert!(line.contains("3.000000123: sched_switch"), "{line}");
        assert!(
            line.contains("prev_state=S next_pid=11 next_comm=next"),
            "{line}"
        );
        assert_eq!(task_state(0), "R");
        assert_eq!(task_state(2), "D");
        assert_eq!(softirq_name(3), "NET_RX");
    }
}
