//! The journey record as one JSON line, written by hand from the field table
//! ([`crate::journey::fields`]): the same bytes serde_json writes for [`Journey`]'s
//! `Serialize` (a unit test holds them equal), at a fraction of the cost (keys are constants,
//! numbers go through itoa, strings are copied whole when nothing needs an escape).
//! `tracer live --json` writes one of these per packet.

use std::io;

use super::Sink;
use crate::journey::{
    Journey, Missing, StageDurations, Stamps,
    fields::{FIELDS, STAGE_KEYS, STAMPS, Value, stages},
    model::Addr,
};

/// Appends `journey` as a JSON object (no newline) to `out`.
pub fn write(journey: &Journey, out: &mut String) {
    let mut w = Writer { out, first: true };
    w.open();
    for field in FIELDS {
        let key = field.json_key;
        match (field.value)(journey) {
            Value::Unsigned(value) => w.number(key, value),
            Value::Signed(value) => w.number(key, value),
            Value::Text(value) => w.string(key, value),
            Value::Bool(value) => w.boolean(key, value),
            Value::Addr(value) => w.addr(key, value),
            Value::Ip(value) => w.ip(key, value),
            Value::Stamps(ts) => {
                w.key(key);
                stamps(ts, w.out);
            }
            Value::Stages(ns) => {
                w.key(key);
                stage_durations(ns, w.out);
            }
            Value::Missing(list) => {
                w.key(key);
                missing(list, w.out);
            }
        }
    }
    w.close();
}

/// Members to append to every object of a stream, as `,"key":"value"` text: what `report`
/// adds to each journey when it reads several recordings (`host`, `recording`). Values are
/// escaped as [`write`] escapes strings; keys are plain identifiers.
pub fn extra_members(members: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (key, value) in members {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        escaped(value, &mut out);
    }
    out
}

/// Appends `journey` as [`write`] does, with `extra` (from [`extra_members`]) as its last
/// members.
pub fn write_with(journey: &Journey, extra: &str, out: &mut String) {
    write(journey, out);
    if !extra.is_empty() {
        out.pop(); // the object's `}`
        out.push_str(extra);
        out.push('}');
    }
}

fn stamps(ts: &Stamps, out: &mut String) {
    let mut w = Writer { out, first: true };
    w.open();
    for stamp in &STAMPS {
        w.number(stamp.json_key, (stamp.value)(ts));
    }
    w.close();
}

fn stage_durations(ns: &StageDurations, out: &mut String) {
    let mut w = Writer { out, first: true };
    w.open();
    for ((_, value), key) in stages(ns).zip(STAGE_KEYS) {
        w.number(key, value);
    }
    w.close();
}

fn missing(list: &[Missing], out: &mut String) {
    out.push('[');
    for (index, item) in list.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let mut w = Writer {
            out: &mut *out,
            first: true,
        };
        w.open();
        w.string(",\"stage\":", Some(item.stage.name()));
        w.string(",\"reason\":", Some(&item.reason));
        w.close();
    }
    out.push(']');
}

/// Journeys as JSON lines on a writer (`export --format jsonl`).
pub struct JsonLines<W: io::Write> {
    out: W,
    line: String,
}

impl<W: io::Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            line: String::new(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: io::Write> Sink for JsonLines<W> {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        self.line.clear();
        write(journey, &mut self.line);
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())
    }
}

/// Writes the members of one object; `first` decides the comma.
struct Writer<'a> {
    out: &'a mut String,
    first: bool,
}

impl Writer<'_> {
    fn open(&mut self) {
        self.out.push('{');
    }

    fn close(&mut self) {
        self.out.push('}');
    }

    /// `"key":` after a comma when needed. Keys are plain identifiers: no escaping. The
    /// fragment `,"key":` is built at compile time by [`key!`]; the first key drops its comma.
    fn key(&mut self, fragment: &'static str) {
        if self.first {
            self.first = false;
            self.out.push_str(&fragment[1..]);
        } else {
            self.out.push_str(fragment);
        }
    }

    fn number<N: itoa::Integer>(&mut self, key: &'static str, value: Option<N>) {
        self.key(key);
        match value {
            Some(value) => self.out.push_str(itoa::Buffer::new().format(value)),
            None => self.out.push_str("null"),
        }
    }

    /// An address as the string `"0x..."` (lower-case hex, no leading zeros).
    fn addr(&mut self, key: &'static str, value: Option<Addr>) {
        self.key(key);
        let Some(Addr(value)) = value else {
            self.out.push_str("null");
            return;
        };
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 16];
        let mut start = digits.len();
        let mut rest = value;
        loop {
            start -= 1;
            digits[start] = HEX[(rest & 0xf) as usize];
            rest >>= 4;
            if rest == 0 {
                break;
            }
        }
        self.out.push_str("\"0x");
        for &digit in &digits[start..] {
            self.out.push(digit as char);
        }
        self.out.push('"');
    }

    fn boolean(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    /// An IP address as serde writes it: its text in quotes (never needs escaping).
    fn ip(&mut self, key: &'static str, value: Option<std::net::IpAddr>) {
        use std::fmt::Write as _;
        self.key(key);
        match value {
            Some(ip) => {
                let _ = write!(self.out, "\"{ip}\"");
            }
            None => self.out.push_str("null"),
        }
    }

    fn string(&mut self, key: &'static str, value: Option<&str>) {
        self.key(key);
        match value {
            Some(value) => escaped(value, self.out),
            None => self.out.push_str("null"),
        }
    }
}

/// A JSON string as serde_json writes it: `"` and `\` escaped, control characters as the
/// short escapes or `\u00XX`, everything else (UTF-8 included) as is.
fn escaped(value: &str, out: &mut String) {
    out.push('"');
    if !value
        .bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
    {
        out.push_str(value);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (index, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&value[start..index]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xf)] as char);
        } else {
            out.push_str(escape);
        }
        start = index + 1;
    }
    out.push_str(&value[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::Stage;

    fn line(journey: &Journey) -> String {
        let mut out = String::new();
        write(journey, &mut out);
        out
    }

    /// A report of several recordings appends its members to the record, escaped.
    #[test]
    fn extra_members_end_the_object() {
        let extra = extra_members(&[("host", "we\"b-1\u{1b}"), ("recording", "a/b.trc")]);
        let mut out = String::new();
        write_with(&Journey::default(), &extra, &mut out);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["host"], "we\"b-1\u{1b}");
        assert_eq!(value["recording"], "a/b.trc");
        assert_eq!(value["id"], 0);
        assert!(
            out.ends_with(r#","host":"we\"b-1\u001b","recording":"a/b.trc"}"#),
            "{out}"
        );
        let mut plain = String::new();
        write_with(&Journey::default(), "", &mut plain);
        assert_eq!(plain, line(&Journey::default()));
    }

    #[test]
    fn same_bytes_as_serde_json() {
        let empty = Journey::default();
        let full = Journey {
            id: u64::MAX,
            dev: "eth0".into(),
            irq: Some(27),
            irq_name: Some("virtio2-input.0".into()),
            cpu_irq: Some(0),
            cpu_softirq: Some(1),
            cpu_task: Some(u16::MAX),
            cpu_stack: Some(3),
            pid: Some(4242),
            tid: Some(4243),
            comm: Some("we\"ird\\ \u{1}\u{1f}\n\t\r\u{8}\u{c} ünï €".into()),
            netns: Some(4_026_531_833),
            cgroup: Some(u64::MAX),
            cgroup_path: Some("/docker/\u{1b}[31m\"x\".scope".into()),
            proto: "udp".into(),
            family: Some("ipv6"),
            saddr: Some("::1".parse().unwrap()),
            sport: Some(40000),
            daddr: Some("10.1.2.3".parse().unwrap()),
            dport: Some(6379),
            len: 92,
            bytes: Some(-11),
            syscall: Some("recvfrom"),
            napi_batch_pos: Some(1),
            napi_work: Some(64),
            napi_budget: Some(64),
            softirq_in_ksoftirqd: true,
            gro_merged: 2,
            read_packets: 3,
            partial_read: true,
            skbaddr: Addr(0xffff8880abcd0000),
            skaddr: Some(Addr(0x1)),
            payload: Some(64),
            tcp_flags: Some(crate::journey::model::TcpFlags(0x18)),
            control: true,
            first_read: Some(8),
            reads: 2,
            woken_tid: Some(4244),
            ts: Stamps {
                irq_entry: Some(1),
                irq_exit: Some(2),
                softirq_raise: None,
                softirq_entry: Some(4),
                netif_receive: Some(5),
                sk_data_ready: Some(6),
                waking: Some(7),
                wakeup: None,
                switch_in: Some(9),
                recv_return: Some(u64::MAX),
            },
            stages_ns: StageDurations {
                irq: Some(1),
                softirq_wait: None,
                poll: Some(0),
                stack: Some(10),
                wakeup: Some(100),
                runqueue: None,
                syscall: Some(12345),
                total: Some(999_999_999_999),
            },
            complete: false,
            missing: smallvec::smallvec![
                Missing {
                    stage: Stage::SoftirqWait,
                    reason: "no \"raise\"".into(),
                },
                Missing {
                    stage: Stage::Runqueue,
                    reason: "woken while still on its CPU".into(),
                },
            ],
            drop_reason: Some("SKB_DROP_REASON_NO_SOCKET".into()),
            lost_events: true,
        };
        for journey in [&empty, &full] {
            assert_eq!(line(journey), serde_json::to_string(journey).unwrap());
        }
    }

    #[test]
    fn every_control_character_escapes_like_serde_json() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let mut ours = String::new();
        escaped(&all, &mut ours);
        assert_eq!(ours, serde_json::to_string(&all).unwrap());
    }
}
