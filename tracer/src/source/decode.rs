//! Decoding raw ring-buffer records into [`Event`]s, and the event fields every reader
//! shares (the name field, softirq vectors, task states).

use tracer_common::{EVENT_SIZE, Event, EventKind};

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The record is not exactly one event long.
    #[error("event record of {0} bytes, expected {EVENT_SIZE}")]
    Size(usize),
    /// The kind byte names no known tracepoint.
    #[error("unknown event kind {0}")]
    Kind(u8),
}

/// Decodes one record as the eBPF side wrote it (native endianness).
pub fn decode(bytes: &[u8]) -> Result<(Event, EventKind), DecodeError> {
    if bytes.len() != EVENT_SIZE {
        return Err(DecodeError::Size(bytes.len()));
    }
    // SAFETY: the length is checked above; Event is repr(C) plain data valid for any bits,
    // and read_unaligned copies without requiring alignment of the source.
    let event: Event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let kind = EventKind::from_u8(event.kind).ok_or(DecodeError::Kind(event.kind))?;
    Ok((event, kind))
}

/// An event's bytes as the eBPF side writes them: what [`decode`] reads back.
pub fn bytes(event: &Event) -> &[u8] {
    // SAFETY: Event is repr(C) plain data without padding (asserted in tracer-common).
    unsafe { std::slice::from_raw_parts((event as *const Event).cast::<u8>(), EVENT_SIZE) }
}

/// The NUL-terminated name field as text.
pub fn name(event: &Event) -> String {
    let end = event
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(event.name.len());
    String::from_utf8_lossy(&event.name[..end]).into_owned()
}

/// Softirq vector names (include/linux/interrupt.h), stable since 2.6.
pub fn softirq_name(vec: u32) -> &'static str {
    const NAMES: [&str; 10] = [
        "HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER",
        "RCU",
    ];
    NAMES.get(vec as usize).copied().unwrap_or("?")
}

/// `prev_state` of sched_switch as the letters `ps` and perf print (R, S, D, ...).
pub fn task_state(state: u64) -> String {
    const LETTERS: [char; 8] = ['S', 'D', 'T', 't', 'X', 'Z', 'P', 'I'];
    if state == 0 {
        return "R".to_owned();
    }
    let mut out = String::new();
    for (bit, letter) in LETTERS.iter().enumerate() {
        if state & (1 << bit) != 0 {
            out.push(*letter);
        }
    }
    if state & (1 << 8) != 0 && out.is_empty() {
        out.push('R'); // preempted while TASK_RUNNING with the "max" bit set
    }
    if out.is_empty() {
        format!("{state:#x}")
    } else {
        out
    }
}

/// The addresses a `FLAG_ADDRS` record carries (`tracer_common::FLAG_ADDRS`): the family
/// (`ipv4`, `ipv6`), source and destination; `None` for another IP version.
pub fn addresses(event: &Event) -> Option<(&'static str, std::net::IpAddr, std::net::IpAddr)> {
    use std::net::IpAddr;
    let mut daddr = [0u8; 16];
    daddr[..8].copy_from_slice(&event.addr2.to_le_bytes());
    daddr[8..12].copy_from_slice(&event.arg0.to_le_bytes());
    daddr[12..].copy_from_slice(&event.arg1.to_le_bytes());
    let v4 = |bytes: &[u8]| IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]]);
    match event.arg2 {
        4 => Some(("ipv4", v4(&event.name), v4(&daddr))),
        6 => Some(("ipv6", IpAddr::from(event.name), IpAddr::from(daddr))),
        _ => None,
    }
}

/// The reader a recv-family `sys_exit_*` event names (the `SysExit*` kinds' doc): the inode
/// of its network namespace and its cgroup id, `None` where zero (unknown: no kernel BTF, or
/// a recording made before the kernel side wrote them).
pub fn reader(event: &Event) -> (Option<u64>, Option<u64>) {
    let known = |value: u64| (value != 0).then_some(value);
    (known(u64::from(event.arg0)), known(event.addr2))
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
    fn round_trips_and_rejects_bad_records() {
        let event = Event {
            ts: 1_234_567_890_123,
            addr: 0xffff_8880_1234_5678,
            tgid: 42,
            tid: 43,
            arg0: 98,
            cpu: 1,
            kind: EventKind::NetifReceiveSkb as u8,
            name: named("lo"),
            ..Event::ZERO
        };
        let raw = bytes(&event).to_vec();
        assert_eq!(decode(&raw), Ok((event, EventKind::NetifReceiveSkb)));
        assert_eq!(decode(&raw[..63]), Err(DecodeError::Size(63)));
        let mut bad = raw.clone();
        bad[46] = 0; // the kind byte
        assert_eq!(decode(&bad), Err(DecodeError::Kind(0)));
        bad[46] = 200;
        assert_eq!(
            decode(&bad).unwrap_err().to_string(),
            "unknown event kind 200"
        );
    }
}
