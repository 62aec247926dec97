//! Recordings: raw events plus what is needed to analyse them elsewhere.
//!
//! Format version 1 (uncompressed; a chunked, compressed version 2 is planned):
//! ```text
//! magic    8 bytes  "TRACERv1"
//! meta_len u32 LE   length of the metadata
//! meta     JSON     Metadata
//! events   64 bytes each, tracer_common::Event in little-endian, to the end of the file
//! ```
//! A recording cut short keeps every whole event before the cut (the reader says so).

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tracer_common::{EVENT_SIZE, Event};

use crate::{decode, journey::IrqDevice};

/// File magic of format version 1.
pub const MAGIC: &[u8; 8] = b"TRACERv1";
/// The largest metadata accepted, against corrupt length fields.
const MAX_META: u32 = 16 << 20;

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
}

impl Metadata {
    /// Network IRQs as the engine wants them.
    pub fn irq_devices(&self) -> std::collections::HashMap<u32, IrqDevice> {
        self.irqs
            .iter()
            .map(|irq| (irq.irq, IrqDevice { dev: irq.dev.clone(), name: irq.name.clone() }))
            .collect()
    }
}

/// Errors reading a recording, each saying where.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a tracer recording (bad magic at byte 0)")]
    Magic { path: PathBuf },
    #[error("{path}: metadata length {len} at byte 8 is implausible")]
    MetaLength { path: PathBuf, len: u32 },
    #[error("{path}: metadata (bytes 12..{end}) is corrupt: {reason}")]
    Meta { path: PathBuf, end: usize, reason: String },
    #[error("{path}: event {index} at byte {offset} is corrupt: {reason}")]
    Event { path: PathBuf, index: usize, offset: usize, reason: String },
}

/// Writes a version 1 recording.
pub struct Writer {
    out: BufWriter<File>,
    events: u64,
}

impl Writer {
    /// Creates the file and writes the header.
    pub fn create(path: &Path, meta: &Metadata) -> io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        out.write_all(MAGIC)?;
        out.write_all(&(json.len() as u32).to_le_bytes())?;
        out.write_all(&json)?;
        Ok(Self { out, events: 0 })
    }

    /// Appends one raw record as the kernel wrote it.
    pub fn write_record(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.events += 1;
        self.out.write_all(bytes)
    }

    /// Events written.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Flushes to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A recording read back.
#[derive(Debug)]
pub struct Recording {
    pub meta: Metadata,
    pub events: Vec<Event>,
    /// Bytes of a partial event at the end (a recording cut short), 0 when whole.
    pub truncated_bytes: usize,
}

impl Recording {
    /// Reads a whole recording.
    pub fn read(path: &Path) -> Result<Self, RecordError> {
        let io_error = |source| RecordError::Io { path: path.to_owned(), source };
        let mut bytes = Vec::new();
        File::open(path).and_then(|mut file| file.read_to_end(&mut bytes)).map_err(io_error)?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a recording; `path` labels errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, RecordError> {
        let path = path.to_owned();
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(RecordError::Magic { path });
        }
        let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        let end = 12 + len as usize;
        if len > MAX_META || end > bytes.len() {
            return Err(RecordError::MetaLength { path, len });
        }
        let meta: Metadata = serde_json::from_slice(&bytes[12..end])
            .map_err(|err| RecordError::Meta { path: path.clone(), end, reason: err.to_string() })?;
        let body = &bytes[end..];
        let whole = body.len() / EVENT_SIZE * EVENT_SIZE;
        let mut events = Vec::with_capacity(whole / EVENT_SIZE);
        for (index, record) in body[..whole].chunks_exact(EVENT_SIZE).enumerate() {
            let (event, _) = decode::decode(record).map_err(|err| RecordError::Event {
                path: path.clone(),
                index,
                offset: end + index * EVENT_SIZE,
                reason: err.to_string(),
            })?;
            events.push(event);
        }
        Ok(Self { meta, events, truncated_bytes: body.len() - whole })
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::EventKind;

    use super::*;

    fn sample() -> (tempfile::TempDir, PathBuf, Vec<Event>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.trc");
        let meta = Metadata { kernel: "6.18".into(), cpus: 2, ..Metadata::default() };
        let mut writer = Writer::create(&path, &meta).unwrap();
        let events: Vec<Event> = (0..10u64)
            .map(|n| Event { ts: n * 100, kind: EventKind::SchedSwitch as u8, arg1: n as u32, ..Event::ZERO })
            .collect();
        for event in &events {
            // SAFETY: Event is plain data without padding.
            let raw = unsafe { std::slice::from_raw_parts((event as *const Event).cast::<u8>(), EVENT_SIZE) };
            writer.write_record(raw).unwrap();
        }
        writer.flush().unwrap();
        (dir, path, events)
    }

    #[test]
    fn round_trips() {
        let (_dir, path, events) = sample();
        let recording = Recording::read(&path).unwrap();
        assert_eq!(recording.events, events);
        assert_eq!((recording.meta.kernel.as_str(), recording.meta.cpus), ("6.18", 2));
        assert_eq!(recording.truncated_bytes, 0);
    }

    #[test]
    fn every_truncation_keeps_the_whole_prefix_or_says_where() {
        let (_dir, path, events) = sample();
        let bytes = std::fs::read(&path).unwrap();
        let header = bytes.len() - events.len() * EVENT_SIZE;
        for cut in 0..bytes.len() {
            match Recording::parse(&bytes[..cut], &path) {
                Ok(recording) => {
                    assert!(cut >= header);
                    assert_eq!(recording.events.len(), (cut - header) / EVENT_SIZE);
                    assert_eq!(recording.truncated_bytes, (cut - header) % EVENT_SIZE);
                }
                Err(err) => {
                    assert!(cut < header, "cut {cut}: {err}");
                    assert!(err.to_string().starts_with(&path.display().to_string()));
                }
            }
        }
    }

    #[test]
    fn corruption_is_reported_with_its_place() {
        let (_dir, path, _) = sample();
        let mut bytes = std::fs::read(&path).unwrap();
        let header = bytes.len() - 10 * EVENT_SIZE;
        bytes[header + 3 * EVENT_SIZE + 46] = 250; // kind byte of event 3
        let err = Recording::parse(&bytes, &path).unwrap_err().to_string();
        assert!(err.ends_with(&format!("event 3 at byte {} is corrupt: unknown event kind 250", header + 192)), "{err}");
        bytes[0] = b'X';
        assert!(Recording::parse(&bytes, &path).unwrap_err().to_string().contains("not a tracer recording"));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Recording::parse(&bytes, &path).unwrap_err().to_string().contains("implausible"));
    }
}
