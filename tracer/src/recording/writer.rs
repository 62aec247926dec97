//! Writing a version 3 recording: metadata, then event chunks as they come, then the trailer.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

use tracer_common::{Event, EventKind};

use super::{
    format::{
        CHUNK_EVENTS, CHUNK_EVENTS_KIND, CHUNK_HEADER, CHUNK_META, CHUNK_TRAILER, MAGIC_V3,
        Metadata, Trailer,
    },
    sparse::encode_events,
};

/// Writes a version 3 recording chunk by chunk.
pub struct Writer {
    out: BufWriter<File>,
    pending: Vec<Event>,
    events: u64,
    bytes: u64,
    /// Events written, by kind byte (named only in the trailer: a name per event was an
    /// allocation per event).
    per_kind: [u64; 256],
    recursion_misses: BTreeMap<String, u64>,
}

impl Writer {
    /// Creates the file and writes the magic and the metadata chunk.
    pub fn create(path: &Path, meta: &Metadata) -> io::Result<Self> {
        let mut writer = Self {
            // Comms, pids and the hostname are not for every local user (perf uses 0600 too).
            out: BufWriter::new({
                use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(path)?;
                // An existing file keeps its mode through open(): set it (on a regular file
                // only: `-o /dev/null` must stay as it is).
                if file.metadata()?.is_file() {
                    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                }
                file
            }),
            pending: Vec::with_capacity(CHUNK_EVENTS),
            events: 0,
            bytes: 0,
            per_kind: [0; 256],
            recursion_misses: BTreeMap::new(),
        };
        writer.out.write_all(MAGIC_V3)?;
        writer.bytes += MAGIC_V3.len() as u64;
        let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        writer.write_chunk(CHUNK_META, 0, &json)?;
        // A new file is a readable (empty) recording at once, not an empty file.
        writer.out.flush()?;
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
                self.per_kind[usize::from(event.kind)] += 1;
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
            events_per_kind: self.per_kind_names(),
            lost_per_cpu,
            duration_ns,
            recursion_misses: std::mem::take(&mut self.recursion_misses),
        };
        let json = serde_json::to_vec(&trailer).map_err(io::Error::other)?;
        self.write_chunk(CHUNK_TRAILER, 0, &json)?;
        self.out.flush()?;
        Ok(self.bytes)
    }

    /// The counts by kind name, as the trailer records them.
    fn per_kind_names(&self) -> BTreeMap<String, u64> {
        let mut named = BTreeMap::new();
        for (kind, &count) in self.per_kind.iter().enumerate() {
            if count > 0 {
                let name = EventKind::from_u8(kind as u8).map_or("unknown", EventKind::name);
                *named.entry(name.to_owned()).or_default() += count;
            }
        }
        named
    }

    /// Sets the programs' recursion misses the trailer records.
    pub fn set_recursion_misses(&mut self, misses: BTreeMap<String, u64>) {
        self.recursion_misses = misses;
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Events pushed but not yet written (they go out with the next chunk).
    pub fn pending_events(&self) -> usize {
        self.pending.len()
    }

    /// Bytes written to the file so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn write_chunk(&mut self, kind: u8, count: u32, raw: &[u8]) -> io::Result<()> {
        let compressed = lz4_flex::block::compress(raw);
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
