//! Reading a recording back (versions 1 and 2), keeping every whole chunk of one cut short.

use std::{fs::File, io::Read, path::Path};

use tracer_common::{EVENT_SIZE, Event};

use super::format::{
    CHUNK_EVENTS_KIND, CHUNK_HEADER, CHUNK_META, CHUNK_TRAILER, MAGIC_V1, MAGIC_V2, MAX_RAW,
    Metadata, RecordError, Trailer, decode_events,
};

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
        let (event, _) = crate::source::decode::decode(record)
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
