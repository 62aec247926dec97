//! The recording format: magic, chunk kinds, metadata and trailer records, the column
//! encoding of events. The layout is documented in docs/FORMAT.md.
//!
//! Versions 2 and 3 are a sequence of self-checking chunks (metadata, event chunks, a
//! trailer with the counters), each compressed with a CRC-32, events stored column by
//! column with delta-coded timestamps. A recorder killed mid-way leaves every whole chunk
//! readable. Version 3, the one written, compresses with LZ4 and stores the wider columns
//! sparse (`sparse`); version 2 (zstd, fixed-width columns) and version 1 (uncompressed,
//! one header then 64-byte events) are still read.

use std::{collections::BTreeMap, io, path::PathBuf};

use serde::{Deserialize, Serialize};
use tracer_common::{Event, EventKind, NAME_LEN};

/// Magic of format version 1.
pub const MAGIC_V1: &[u8; 8] = b"TRACERv1";
/// Magic of format version 2.
pub const MAGIC_V2: &[u8; 8] = b"TRACERv2";
/// Magic of format version 3, the one written.
pub const MAGIC_V3: &[u8; 8] = b"TRACERv3";
/// Events per chunk at most (a chunk is also cut when the recorder flushes by time).
pub const CHUNK_EVENTS: usize = 16384;
pub(super) const CHUNK_HEADER: usize = 17;
/// The largest uncompressed metadata or trailer chunk accepted, against corrupt or hostile
/// length fields (a real one is a few kilobytes).
pub(super) const MAX_RAW: usize = 16 << 20;
/// The encoded size of one event in version 2: a timestamp varint of 1 to 10 bytes, then
/// fixed columns.
pub(super) const EVENT_FIXED: usize = 1 + 1 + 2 + 5 * 4 + 2 * 8 + NAME_LEN;
pub(super) const EVENT_MIN: usize = 1 + EVENT_FIXED;
pub(super) const EVENT_MAX: usize = 10 + EVENT_FIXED;

pub(super) const CHUNK_META: u8 = b'M';
pub(super) const CHUNK_EVENTS_KIND: u8 = b'E';
pub(super) const CHUNK_TRAILER: u8 = b'C';

/// One network interrupt, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedIrq {
    pub irq: u32,
    pub dev: String,
    pub name: String,
}

/// What a recording says about the host it was made on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub tool_version: String,
    pub kernel: String,
    pub hostname: String,
    pub cpus: u32,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC at the start, in ns: wall time of a stamp.
    pub realtime_offset_ns: i128,
    pub irqs: Vec<RecordedIrq>,
    pub drop_reasons: BTreeMap<u64, String>,
    /// Known task names at the start (ksoftirqd threads), by tid.
    pub comms: BTreeMap<u32, String>,
    /// Filters the recording was made with, as given on the command line.
    pub filters: Vec<String>,
    /// Tracepoint field offsets used (`category:name:field` -> offset).
    #[serde(default)]
    pub offsets: BTreeMap<String, u16>,
    /// Tracepoints not attached, with the reason.
    #[serde(default)]
    pub skipped: BTreeMap<String, String>,
    /// The cgroup v2 hierarchy at the start, id -> path (`host::cgroup::snapshot`): names the
    /// readers' cgroups offline. Empty in older recordings.
    #[serde(default)]
    pub cgroups: BTreeMap<u64, String>,
    /// CLOCK_MONOTONIC ns when this file was begun (0 in older recordings): with the host it
    /// tells captures apart, also the files of one `record --rotate` ring, whose realtime
    /// offsets are often equal.
    #[serde(default)]
    pub started_ns: u64,
}

impl Metadata {
    /// The kinds whose tracepoint was not attached when this was recorded.
    pub fn skipped_kinds(&self) -> Vec<EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(|kind| {
                let (category, name) = kind.tracepoint();
                let tracepoint = format!("{category}:{name}");
                // A recording made before this kind existed has no offsets for it (format v1
                // recorded no offsets, and predates every kind after sys_exit_readv).
                let prefix = format!("{tracepoint}:");
                let newer_than_v1 = *kind as u8 > EventKind::SysExitReadv as u8;
                let unknown = (!self.offsets.is_empty() || newer_than_v1)
                    && !self.offsets.keys().any(|key| key.starts_with(&prefix));
                self.skipped.contains_key(&tracepoint) || unknown
            })
            .collect()
    }
}

/// Counters written at the end of a recording.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// Events recorded, by kind name.
    pub events_per_kind: BTreeMap<String, u64>,
    /// Events lost in the kernel, per CPU.
    pub lost_per_cpu: Vec<u64>,
    /// Recording length in ns.
    pub duration_ns: u64,
    /// Runs each program lost to the kernel's recursion protection, by tracepoint name
    /// (absent from recordings made before it was counted).
    #[serde(default)]
    pub recursion_misses: BTreeMap<String, u64>,
}

/// Errors reading a recording, each saying where.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a tracer recording (bad magic at byte 0)")]
    Magic { path: PathBuf },
    #[error(
        "{path}: recording format version {version} is not supported (this tracer reads versions 1 to 3)"
    )]
    Version { path: PathBuf, version: String },
    #[error("{path}: the recording has no metadata (it ends at byte {at})")]
    NoMetadata { path: PathBuf, at: usize },
    #[error("{path}: chunk at byte {offset} is corrupt: {reason}")]
    Chunk {
        path: PathBuf,
        offset: usize,
        reason: String,
    },
    /// The thread decoding chunks ended without a word (it panicked), or took the reader
    /// with it when it could not start.
    #[error("{path}: the thread decoding the recording stopped unexpectedly")]
    Decoder { path: PathBuf },
}

/// Version 2's column layout of an event chunk: zigzag varint ts deltas, then fixed-width
/// columns (written only by tests now: version 3 is written).
#[cfg(test)]
pub(super) fn encode_events(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 48);
    let mut previous = 0u64;
    for event in events {
        let delta = event.ts.wrapping_sub(previous) as i64;
        previous = event.ts;
        put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
    }
    out.extend(events.iter().map(|event| event.kind));
    out.extend(events.iter().map(|event| event.flags));
    for event in events {
        out.extend_from_slice(&event.cpu.to_le_bytes());
    }
    for column in [
        |e: &Event| e.tgid,
        |e: &Event| e.tid,
        |e: &Event| e.arg0,
        |e: &Event| e.arg1,
        |e: &Event| e.arg2,
    ] {
        for event in events {
            out.extend_from_slice(&column(event).to_le_bytes());
        }
    }
    for column in [|e: &Event| e.addr, |e: &Event| e.addr2] {
        for event in events {
            out.extend_from_slice(&column(event).to_le_bytes());
        }
    }
    for event in events {
        out.extend_from_slice(&event.name);
    }
    out
}

#[cfg(test)]
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Decodes `count` events of a version 2 chunk, appended to `out` (nothing appended on an error);
/// every read is bounds-checked. The stamps go straight into the events (no buffer of
/// their own: a chunk's worth would be an allocation of its own per chunk).
pub(super) fn decode_events(raw: &[u8], count: usize, out: &mut Vec<Event>) -> Result<(), String> {
    let start = out.len();
    let decoded = decode_into(raw, count, out);
    if decoded.is_err() {
        out.truncate(start);
    }
    decoded
}

/// Events decoded at a time: a block's events (64 B each) and its column bytes stay in the
/// first-level cache while every column is filled in, where whole-chunk passes (1 MiB of
/// events) went to memory once per column.
const DECODE_BLOCK: usize = 256;

fn decode_into(raw: &[u8], count: usize, out: &mut Vec<Event>) -> Result<(), String> {
    let fixed = count * EVENT_FIXED;
    // The columns end the chunk; the stamps' varints fill what comes before them.
    let Some(stamps_len) = raw.len().checked_sub(fixed).filter(|&len| len >= count) else {
        return Err(format!(
            "{} bytes for {count} events, expected at least {}",
            raw.len(),
            count * EVENT_MIN
        ));
    };
    let (stamps, mut columns) = raw.split_at(stamps_len);
    let mut column = |width: usize| {
        let (slice, rest) = columns.split_at(width * count);
        columns = rest;
        slice
    };
    let (kinds, flags, cpus) = (column(1), column(1), column(2));
    let u32s: [&[u8]; 5] = std::array::from_fn(|_| column(4));
    let u64s: [&[u8]; 2] = std::array::from_fn(|_| column(8));
    let names = column(NAME_LEN);
    // Checked first (the caller drops what was decoded).
    if let Some(i) = kinds
        .iter()
        .position(|&kind| EventKind::from_u8(kind).is_none())
    {
        return Err(format!("event {i}: unknown event kind {}", kinds[i]));
    }
    let mut at = 0;
    let mut previous = 0u64;
    let mut first = 0;
    while first < count {
        let n = DECODE_BLOCK.min(count - first);
        let block = out.len();
        out.resize(block + n, Event::ZERO);
        let events = &mut out[block..];
        read_stamps(stamps, &mut at, &mut previous, events)?;
        // A column at a time: each a short loop of its own, without bounds checks.
        let range = |width: usize| first * width..(first + n) * width;
        fill(events, &kinds[range(1)], |event, [kind]| event.kind = kind);
        fill(events, &flags[range(1)], |event, [flags]| {
            event.flags = flags
        });
        fill(events, &cpus[range(2)], |event, bytes| {
            event.cpu = u16::from_le_bytes(bytes)
        });
        fill(events, &u32s[0][range(4)], |event, bytes| {
            event.tgid = u32::from_le_bytes(bytes)
        });
        fill(events, &u32s[1][range(4)], |event, bytes| {
            event.tid = u32::from_le_bytes(bytes)
        });
        fill(events, &u32s[2][range(4)], |event, bytes| {
            event.arg0 = u32::from_le_bytes(bytes)
        });
        fill(events, &u32s[3][range(4)], |event, bytes| {
            event.arg1 = u32::from_le_bytes(bytes)
        });
        fill(events, &u32s[4][range(4)], |event, bytes| {
            event.arg2 = u32::from_le_bytes(bytes)
        });
        fill(events, &u64s[0][range(8)], |event, bytes| {
            event.addr = u64::from_le_bytes(bytes)
        });
        fill(events, &u64s[1][range(8)], |event, bytes| {
            event.addr2 = u64::from_le_bytes(bytes)
        });
        fill(events, &names[range(NAME_LEN)], |event, name| {
            event.name = name
        });
        first += n;
    }
    if at != stamps.len() {
        return Err(format!(
            "{} bytes of columns for {count} events, expected {fixed}",
            raw.len() - at
        ));
    }
    Ok(())
}

/// Sets each event's `ts` from the next zigzag varint of `stamps` (from byte `at` on), a
/// difference to the one before (`previous`, the chunk's first to 0); both formats store
/// stamps so. Moves `at` and `previous` past them.
#[inline(always)]
pub(super) fn read_stamps(
    stamps: &[u8],
    at: &mut usize,
    previous: &mut u64,
    events: &mut [Event],
) -> Result<(), String> {
    for event in events {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let byte = *stamps.get(*at).ok_or("the stamps end early")?;
            *at += 1;
            if shift >= 64 {
                return Err("timestamp varint too long".to_owned());
            }
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let delta = (value >> 1) as i64 ^ -((value & 1) as i64);
        *previous = previous.wrapping_add(delta as u64);
        event.ts = *previous;
    }
    Ok(())
}

/// Sets a field of each event from its `N` bytes in `column`.
#[inline(always)]
fn fill<const N: usize>(events: &mut [Event], column: &[u8], set: impl Fn(&mut Event, [u8; N])) {
    for (event, bytes) in events.iter_mut().zip(column.chunks_exact(N)) {
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        set(event, array);
    }
}
