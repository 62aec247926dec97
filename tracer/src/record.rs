//! Recordings: raw events plus what is needed to analyse them elsewhere. The layout is
//! documented in docs/FORMAT.md; this module is its only reader and writer.
//!
//! Version 2 is a sequence of self-checking chunks (metadata, event chunks, a trailer with
//! the counters), each zstd-compressed with a CRC-32, events stored column by column with
//! delta-coded timestamps. A recorder killed mid-way leaves every whole chunk readable.
//! Version 1 (uncompressed, one header then 64-byte events) is still read.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tracer_common::{EVENT_SIZE, Event, EventKind, NAME_LEN};

use crate::journey::IrqDevice;

/// Magic of format version 1.
pub const MAGIC_V1: &[u8; 8] = b"TRACERv1";
/// Magic of format version 2, the one written.
pub const MAGIC_V2: &[u8; 8] = b"TRACERv2";
/// Events per chunk at most (a chunk is also cut when the recorder flushes by time).
pub const CHUNK_EVENTS: usize = 16384;
const CHUNK_HEADER: usize = 17;
/// The largest uncompressed chunk accepted, against corrupt length fields.
const MAX_RAW: usize = 64 << 20;
const ZSTD_LEVEL: i32 = 3;

const CHUNK_META: u8 = b'M';
const CHUNK_EVENTS_KIND: u8 = b'E';
const CHUNK_TRAILER: u8 = b'C';

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
}

impl Metadata {
    /// The engine's view of the host this was recorded on.
    pub fn engine_config(&self, keep_unsocketed: bool) -> crate::journey::EngineConfig {
        crate::journey::EngineConfig {
            irq_devices: self.irq_devices(),
            drop_reasons: self.drop_reasons.clone(),
            comms: self
                .comms
                .iter()
                .map(|(tid, comm)| (*tid, comm.clone()))
                .collect(),
            keep_unsocketed,
            degraded: crate::journey::Degraded::from_missing(self.skipped_kinds()),
            max_open: 0,
            readers: crate::journey::ReaderFilter::default(),
        }
    }

    /// The kinds whose tracepoint was not attached when this was recorded.
    pub fn skipped_kinds(&self) -> Vec<EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(|kind| {
                let (category, name) = kind.tracepoint();
                let tracepoint = format!("{category}:{name}");
                // A recording made before this kind existed has no offsets for it.
                let prefix = format!("{tracepoint}:");
                let unknown = !self.offsets.is_empty()
                    && !self.offsets.keys().any(|key| key.starts_with(&prefix));
                self.skipped.contains_key(&tracepoint) || unknown
            })
            .collect()
    }

    /// Network IRQs as the engine wants them.
    pub fn irq_devices(&self) -> std::collections::HashMap<u32, IrqDevice> {
        self.irqs
            .iter()
            .map(|irq| {
                (
                    irq.irq,
                    IrqDevice {
                        dev: irq.dev.clone(),
                        name: irq.name.clone(),
                    },
                )
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
}

/// Errors reading a recording, each saying where.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a tracer recording (bad magic at byte 0)")]
    Magic { path: PathBuf },
    #[error(
        "{path}: recording format version {version} is not supported (this tracer reads versions 1 and 2)"
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
}

/// Writes a version 2 recording chunk by chunk.
pub struct Writer {
    out: BufWriter<File>,
    pending: Vec<Event>,
    events: u64,
    bytes: u64,
    per_kind: BTreeMap<String, u64>,
}

impl Writer {
    /// Creates the file and writes the magic and the metadata chunk.
    pub fn create(path: &Path, meta: &Metadata) -> io::Result<Self> {
        let mut writer = Self {
            out: BufWriter::new(File::create(path)?),
            pending: Vec::with_capacity(CHUNK_EVENTS),
            events: 0,
            bytes: 0,
            per_kind: BTreeMap::new(),
        };
        writer.out.write_all(MAGIC_V2)?;
        writer.bytes += MAGIC_V2.len() as u64;
        let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        writer.write_chunk(CHUNK_META, 0, &json)?;
        Ok(writer)
    }

    /// Appends one event; a full chunk is compressed and written.
    pub fn push(&mut self, event: &Event) -> io::Result<()> {
        self.pending.push(*event);
        self.events += 1;
        if self.pending.len() >= CHUNK_EVENTS {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// Writes the pending events as one chunk and flushes it to the file (call it every
    /// second or so: a recorder killed then loses at most that much).
    pub fn flush_chunk(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            for event in &self.pending {
                let name = EventKind::from_u8(event.kind).map_or("unknown", EventKind::name);
                *self.per_kind.entry(name.to_owned()).or_default() += 1;
            }
            let raw = encode_events(&self.pending);
            let count = self.pending.len() as u32;
            self.pending.clear();
            self.write_chunk(CHUNK_EVENTS_KIND, count, &raw)?;
        }
        self.out.flush()
    }

    /// Flushes the last events and writes the trailer with the counters.
    pub fn finish(mut self, lost_per_cpu: Vec<u64>, duration_ns: u64) -> io::Result<u64> {
        self.flush_chunk()?;
        let trailer = Trailer {
            events_per_kind: std::mem::take(&mut self.per_kind),
            lost_per_cpu,
            duration_ns,
        };
        let json = serde_json::to_vec(&trailer).map_err(io::Error::other)?;
        self.write_chunk(CHUNK_TRAILER, 0, &json)?;
        self.out.flush()?;
        Ok(self.bytes)
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Bytes written to the file so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn write_chunk(&mut self, kind: u8, count: u32, raw: &[u8]) -> io::Result<()> {
        let compressed = zstd::bulk::compress(raw, ZSTD_LEVEL)?;
        let mut header = [0u8; CHUNK_HEADER];
        header[0] = kind;
        header[1..5].copy_from_slice(&count.to_le_bytes());
        header[5..9].copy_from_slice(&(raw.len() as u32).to_le_bytes());
        header[9..13].copy_from_slice(&(compressed.len() as u32).to_le_bytes());
        header[13..17].copy_from_slice(&crc32fast::hash(&compressed).to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(&compressed)?;
        self.bytes += (CHUNK_HEADER + compressed.len()) as u64;
        Ok(())
    }
}

/// A recording read back.
#[derive(Debug)]
pub struct Recording {
    /// Format version (1 or 2).
    pub version: u8,
    pub meta: Metadata,
    pub events: Vec<Event>,
    /// The counters, absent when the recorder did not finish (killed, or version 1).
    pub trailer: Option<Trailer>,
    /// Why the end of the file was not read whole (a recording cut short), if it was not.
    pub truncated: Option<String>,
}

impl Recording {
    /// Reads a whole recording.
    pub fn read(path: &Path) -> Result<Self, RecordError> {
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(|source| RecordError::Io {
                path: path.to_owned(),
                source,
            })?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a recording; `path` labels errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, RecordError> {
        let path_buf = path.to_owned();
        match bytes.get(..8) {
            Some(magic) if magic == MAGIC_V2 => parse_v2(bytes, path),
            Some(magic) if magic == MAGIC_V1 => parse_v1(bytes, path),
            Some(magic) if magic.starts_with(b"TRACERv") => Err(RecordError::Version {
                path: path_buf,
                version: String::from_utf8_lossy(&magic[7..]).into_owned(),
            }),
            _ => Err(RecordError::Magic { path: path_buf }),
        }
    }
}

fn parse_v2(bytes: &[u8], path: &Path) -> Result<Recording, RecordError> {
    let corrupt = |offset: usize, reason: String| RecordError::Chunk {
        path: path.to_owned(),
        offset,
        reason,
    };
    let mut recording = Recording {
        version: 2,
        meta: Metadata::default(),
        events: Vec::new(),
        trailer: None,
        truncated: None,
    };
    // One pass over the chunk headers sizes the event vector: no regrowth (a copy of every
    // event so far, each time) while decoding. Bounded by what the file could plausibly hold.
    // A corrupt header may announce too many: the reservation is only a hint (and untouched
    // pages cost nothing), and one that cannot be had is skipped.
    let announced = announced_events(bytes).min(bytes.len().saturating_mul(32));
    let _ = recording.events.try_reserve_exact(announced);
    let mut decompressor =
        zstd::bulk::Decompressor::new().map_err(|err| corrupt(8, format!("zstd: {err}")))?;
    let mut have_meta = false;
    let mut at = 8;
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + CHUNK_HEADER) else {
            recording.truncated = Some(format!(
                "the file ends inside the chunk header at byte {at}"
            ));
            break;
        };
        let kind = header[0];
        let word = |range: std::ops::Range<usize>| {
            u32::from_le_bytes(header[range].try_into().expect("4 bytes"))
        };
        let (count, raw_len, len, crc) = (
            word(1..5),
            word(5..9) as usize,
            word(9..13) as usize,
            word(13..17),
        );
        let body_start = at + CHUNK_HEADER;
        let Some(body) = bytes.get(body_start..body_start + len) else {
            recording.truncated = Some(format!(
                "the file ends inside the chunk at byte {at} ({} of {len} bytes)",
                bytes.len() - body_start
            ));
            break;
        };
        if crc32fast::hash(body) != crc {
            return Err(corrupt(at, "checksum mismatch".to_owned()));
        }
        if raw_len > MAX_RAW {
            return Err(corrupt(at, format!("implausible size {raw_len}")));
        }
        let raw = decompressor
            .decompress(body, raw_len)
            .map_err(|err| corrupt(at, format!("zstd: {err}")))?;
        if raw.len() != raw_len {
            return Err(corrupt(
                at,
                format!("{} bytes decompressed, header says {raw_len}", raw.len()),
            ));
        }
        match kind {
            CHUNK_META if !have_meta => {
                recording.meta = serde_json::from_slice(&raw)
                    .map_err(|err| corrupt(at, format!("metadata: {err}")))?;
                have_meta = true;
            }
            CHUNK_EVENTS_KIND if have_meta => {
                decode_events(&raw, count as usize, &mut recording.events)
                    .map_err(|reason| corrupt(at, reason))?;
            }
            CHUNK_TRAILER if have_meta => {
                recording.trailer = Some(
                    serde_json::from_slice(&raw)
                        .map_err(|err| corrupt(at, format!("trailer: {err}")))?,
                );
            }
            other => {
                return Err(corrupt(
                    at,
                    format!("unexpected chunk type {:?}", other as char),
                ));
            }
        }
        at = body_start + len;
    }
    if !have_meta {
        return Err(RecordError::NoMetadata {
            path: path.to_owned(),
            at: bytes.len(),
        });
    }
    Ok(recording)
}

/// Events the event chunks' headers announce (stops at the first header that does not fit).
fn announced_events(bytes: &[u8]) -> usize {
    let mut total = 0usize;
    let mut at = 8;
    while let Some(header) = bytes.get(at..at + CHUNK_HEADER) {
        let word = |range: std::ops::Range<usize>| {
            u32::from_le_bytes(header[range].try_into().expect("4 bytes")) as usize
        };
        if header[0] == CHUNK_EVENTS_KIND {
            total = total.saturating_add(word(1..5));
        }
        at = at.saturating_add(CHUNK_HEADER).saturating_add(word(9..13));
    }
    total
}

fn parse_v1(bytes: &[u8], path: &Path) -> Result<Recording, RecordError> {
    let corrupt = |offset: usize, reason: String| RecordError::Chunk {
        path: path.to_owned(),
        offset,
        reason,
    };
    let Some(len) = bytes.get(8..12) else {
        return Err(RecordError::NoMetadata {
            path: path.to_owned(),
            at: bytes.len(),
        });
    };
    let end = 12 + u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    let Some(meta) = bytes.get(12..end) else {
        return Err(RecordError::NoMetadata {
            path: path.to_owned(),
            at: bytes.len(),
        });
    };
    let meta =
        serde_json::from_slice(meta).map_err(|err| corrupt(12, format!("metadata: {err}")))?;
    let body = &bytes[end..];
    let whole = body.len() / EVENT_SIZE * EVENT_SIZE;
    let mut events = Vec::with_capacity(whole / EVENT_SIZE);
    for (index, record) in body[..whole].chunks_exact(EVENT_SIZE).enumerate() {
        let (event, _) = crate::decode::decode(record)
            .map_err(|err| corrupt(end + index * EVENT_SIZE, err.to_string()))?;
        events.push(event);
    }
    let truncated = (whole != body.len())
        .then(|| format!("the file ends inside an event at byte {}", end + whole));
    Ok(Recording {
        version: 1,
        meta,
        events,
        trailer: None,
        truncated,
    })
}

/// Column layout of an event chunk: zigzag varint ts deltas, then fixed-width columns.
fn encode_events(events: &[Event]) -> Vec<u8> {
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

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Decodes `count` events of a chunk; every read is bounds-checked.
fn decode_events(raw: &[u8], count: usize, out: &mut Vec<Event>) -> Result<(), String> {
    let mut at = 0;
    let mut ts = Vec::with_capacity(count);
    let mut previous = 0u64;
    for _ in 0..count {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let byte = *raw.get(at).ok_or("timestamps end early")?;
            at += 1;
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
        previous = previous.wrapping_add(delta as u64);
        ts.push(previous);
    }
    let fixed = count * (1 + 1 + 2 + 5 * 4 + 2 * 8 + NAME_LEN);
    if raw.len() - at != fixed {
        return Err(format!(
            "{} bytes of columns for {count} events, expected {fixed}",
            raw.len() - at
        ));
    }
    let mut column = |width: usize| {
        let slice = &raw[at..at + width * count];
        at += width * count;
        slice
    };
    let (kinds, flags, cpus) = (column(1), column(1), column(2));
    let u32s: Vec<&[u8]> = (0..5).map(|_| column(4)).collect();
    let u64s: Vec<&[u8]> = (0..2).map(|_| column(8)).collect();
    let names = column(NAME_LEN);
    let word = |col: &[u8], i: usize| {
        u32::from_le_bytes(col[i * 4..i * 4 + 4].try_into().expect("4 bytes"))
    };
    let quad = |col: &[u8], i: usize| {
        u64::from_le_bytes(col[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    };
    out.reserve(count);
    for i in 0..count {
        if EventKind::from_u8(kinds[i]).is_none() {
            return Err(format!("event {i}: unknown event kind {}", kinds[i]));
        }
        out.push(Event {
            ts: ts[i],
            addr: quad(u64s[0], i),
            addr2: quad(u64s[1], i),
            tgid: word(u32s[0], i),
            tid: word(u32s[1], i),
            arg0: word(u32s[2], i),
            arg1: word(u32s[3], i),
            arg2: word(u32s[4], i),
            cpu: u16::from_le_bytes([cpus[i * 2], cpus[i * 2 + 1]]),
            kind: kinds[i],
            flags: flags[i],
            name: names[i * NAME_LEN..(i + 1) * NAME_LEN]
                .try_into()
                .expect("16 bytes"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: u64) -> Vec<Event> {
        (0..n)
            .map(|i| Event {
                ts: 1_000_000 + i * 1000 - (i % 3) * 7, // not monotonic: cross-CPU order
                addr: 0xffff_8880_0000_0000 + (i % 50) * 256,
                tgid: 100 + (i % 4) as u32,
                tid: 100 + (i % 4) as u32,
                arg0: i as u32,
                cpu: (i % 2) as u16,
                kind: EventKind::ALL[(i % 27) as usize] as u8,
                name: *b"lo\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                ..Event::ZERO
            })
            .collect()
    }

    fn write(path: &Path, events: &[Event], finish: bool) {
        let meta = Metadata {
            kernel: "6.18".into(),
            cpus: 2,
            ..Metadata::default()
        };
        let mut writer = Writer::create(path, &meta).unwrap();
        for (i, event) in events.iter().enumerate() {
            writer.push(event).unwrap();
            if i % 1000 == 999 {
                writer.flush_chunk().unwrap();
            }
        }
        if finish {
            writer.finish(vec![0, 3], 42).unwrap();
        } else {
            writer.flush_chunk().unwrap();
        }
    }

    #[test]
    fn round_trips_with_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trc");
        let events = events(5000);
        write(&path, &events, true);
        let recording = Recording::read(&path).unwrap();
        assert_eq!(recording.version, 2);
        assert_eq!(recording.events, events);
        assert_eq!(recording.meta.kernel, "6.18");
        let trailer = recording.trailer.unwrap();
        assert_eq!(
            (trailer.lost_per_cpu, trailer.duration_ns),
            (vec![0, 3], 42)
        );
        assert_eq!(trailer.events_per_kind.values().sum::<u64>(), 5000);
        assert!(recording.truncated.is_none());
    }

    #[test]
    fn truncation_at_every_byte_gives_the_prefix_or_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trc");
        write(&path, &events(2500), false);
        let bytes = std::fs::read(&path).unwrap();
        let mut last = 0;
        for cut in 0..bytes.len() {
            match Recording::parse(&bytes[..cut], &path) {
                Ok(recording) => {
                    assert!(recording.events.len() >= last, "prefix shrank at {cut}");
                    assert_eq!(
                        recording.events.len() % 1000,
                        0,
                        "only whole chunks: {}",
                        recording.events.len()
                    );
                    assert!(recording.trailer.is_none(), "this recorder never finished");
                    last = recording.events.len();
                }
                Err(err) => {
                    let text = err.to_string();
                    assert!(text.starts_with(&path.display().to_string()), "{text}");
                    assert!(last == 0, "error after a readable prefix at {cut}: {text}");
                }
            }
        }
        assert_eq!(
            last, 2000,
            "the two whole chunks before the last, partial one"
        );
        assert_eq!(Recording::parse(&bytes, &path).unwrap().events.len(), 2500);
    }

    #[test]
    fn random_corruptions_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trc");
        write(&path, &events(3000), true);
        let clean = std::fs::read(&path).unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut errors = 0;
        for _ in 0..3000 {
            let mut bytes = clean.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] ^= 1 << (next() % 8);
            }
            match Recording::parse(&bytes, &path) {
                Ok(recording) => assert!(recording.events.len() <= 3000),
                Err(err) => {
                    errors += 1;
                    assert!(!err.to_string().is_empty());
                }
            }
        }
        assert!(
            errors > 2500,
            "corruption went unnoticed too often: {errors} errors"
        );
    }

    #[test]
    fn unknown_versions_and_foreign_files_are_named() {
        let path = Path::new("x.trc");
        let err = Recording::parse(b"TRACERv7 and more", path)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "x.trc: recording format version 7 is not supported (this tracer reads versions 1 and 2)"
        );
        let err = Recording::parse(b"\x7fELF....", path)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "x.trc: not a tracer recording (bad magic at byte 0)");
        let err = Recording::parse(b"TRACERv2", path).unwrap_err().to_string();
        assert_eq!(
            err,
            "x.trc: the recording has no metadata (it ends at byte 8)"
        );
    }

    #[test]
    fn compact_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trc");
        write(&path, &events(20000), true);
        let per_event = std::fs::metadata(&path).unwrap().len() as f64 / 20000.0;
        assert!(
            per_event < 64.0,
            "{per_event} B/event is no better than raw"
        );
    }
}
