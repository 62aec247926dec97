//! The journey record as one JSON line, written by hand: the same bytes serde_json writes for
//! [`Journey`]'s `Serialize` (a unit test holds them equal), at a fraction of the cost (keys
//! are constants, numbers go through itoa, strings are copied whole when nothing needs an
//! escape). `tracer live --json` writes one of these per packet.

use super::record::{Addr, Journey, Missing, StageDurations, Stamps};

/// `,"name":` as one literal.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

/// Appends `journey` as a JSON object (no newline) to `out`.
pub fn write(journey: &Journey, out: &mut String) {
    let mut w = Writer { out, first: true };
    w.open();
    w.number(key!("id"), Some(journey.id));
    w.string(key!("dev"), Some(&journey.dev));
    w.number(key!("irq"), journey.irq);
    w.string(key!("irq_name"), journey.irq_name.as_deref());
    w.number(key!("cpu_irq"), journey.cpu_irq);
    w.number(key!("cpu_softirq"), journey.cpu_softirq);
    w.number(key!("cpu_task"), journey.cpu_task);
    w.number(key!("cpu_stack"), journey.cpu_stack);
    w.number(key!("pid"), journey.pid);
    w.number(key!("tid"), journey.tid);
    w.string(key!("comm"), journey.comm.as_deref());
    w.string(key!("proto"), Some(&journey.proto));
    w.number(key!("len"), Some(journey.len));
    w.number(key!("bytes"), journey.bytes);
    w.string(key!("syscall"), journey.syscall);
    w.number(key!("napi_batch_pos"), journey.napi_batch_pos);
    w.number(key!("napi_work"), journey.napi_work);
    w.number(key!("napi_budget"), journey.napi_budget);
    w.boolean(key!("softirq_in_ksoftirqd"), journey.softirq_in_ksoftirqd);
    w.number(key!("gro_merged"), Some(journey.gro_merged));
    w.number(key!("read_packets"), Some(journey.read_packets));
    w.boolean(key!("partial_read"), journey.partial_read);
    w.addr(key!("skbaddr"), Some(journey.skbaddr));
    w.addr(key!("skaddr"), journey.skaddr);
    w.number(key!("payload"), journey.payload);
    let flags = journey.tcp_flags.map(|flags| flags.to_string());
    w.string(key!("tcp_flags"), flags.as_deref());
    w.boolean(key!("control"), journey.control);
    w.number(key!("first_read"), journey.first_read);
    w.number(key!("reads"), Some(journey.reads));
    w.number(key!("woken_tid"), journey.woken_tid);
    w.key(key!("ts"));
    stamps(&journey.ts, w.out);
    w.key(key!("stages_ns"));
    stages(&journey.stages_ns, w.out);
    w.boolean(key!("complete"), journey.complete);
    w.key(key!("missing"));
    missing(&journey.missing, w.out);
    w.string(key!("drop_reason"), journey.drop_reason.as_deref());
    w.boolean(key!("lost_events"), journey.lost_events);
    w.close();
}

fn stamps(ts: &Stamps, out: &mut String) {
    let mut w = Writer { out, first: true };
    w.open();
    w.number(key!("irq_entry"), ts.irq_entry);
    w.number(key!("irq_exit"), ts.irq_exit);
    w.number(key!("softirq_raise"), ts.softirq_raise);
    w.number(key!("softirq_entry"), ts.softirq_entry);
    w.number(key!("netif_receive"), ts.netif_receive);
    w.number(key!("sk_data_ready"), ts.sk_data_ready);
    w.number(key!("waking"), ts.waking);
    w.number(key!("wakeup"), ts.wakeup);
    w.number(key!("switch_in"), ts.switch_in);
    w.number(key!("recv_return"), ts.recv_return);
    w.close();
}

fn stages(ns: &StageDurations, out: &mut String) {
    let mut w = Writer { out, first: true };
    w.open();
    w.number(key!("irq"), ns.irq);
    w.number(key!("softirq_wait"), ns.softirq_wait);
    w.number(key!("poll"), ns.poll);
    w.number(key!("stack"), ns.stack);
    w.number(key!("wakeup"), ns.wakeup);
    w.number(key!("runqueue"), ns.runqueue);
    w.number(key!("syscall"), ns.syscall);
    w.number(key!("total"), ns.total);
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
        w.string(key!("stage"), Some(item.stage.name()));
        w.string(key!("reason"), Some(&item.reason));
        w.close();
    }
    out.push(']');
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
    use crate::journey::record::Stage;

    fn line(journey: &Journey) -> String {
        let mut out = String::new();
        write(journey, &mut out);
        out
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
            proto: "udp".into(),
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
            tcp_flags: Some(crate::journey::record::TcpFlags(0x18)),
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
            missing: vec![
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
