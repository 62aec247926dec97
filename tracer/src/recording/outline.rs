//! A recording's outline from its chunk headers alone: how many events, the trailer (the
//! counters written last) and whether the file was cut short, known before the events are
//! read. It seeks from header to header (one small read per chunk), so `report` can say at
//! its start what only the end of the file holds.

use std::{fs::File, os::unix::fs::FileExt as _, path::Path};

use tracer_common::EVENT_SIZE;

use super::{
    format::{CHUNK_EVENTS_KIND, CHUNK_HEADER, CHUNK_META, CHUNK_TRAILER, RecordError, Trailer},
    reader::{ChunkHeader, Codec},
};

/// What the chunk headers of a recording say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outline {
    /// Events in the whole chunks.
    pub events: u64,
    /// The last trailer (the counters), absent when the recorder did not finish.
    pub trailer: Option<Trailer>,
    /// Why the end of the file is not whole, as the reader will say it.
    pub truncated: Option<String>,
}

impl Outline {
    /// The outline of the recording in `file` (format `version`, the magic and metadata
    /// already checked by a reader), or None when `file` is no regular file (a pipe cannot
    /// seek: its trailer is known only at its end). Chunk sizes are checked as the reader
    /// checks them, so a corrupt header is an error here, before any output.
    pub fn read(file: &File, version: u8, path: &Path) -> Result<Option<Self>, RecordError> {
        let io = |source| RecordError::Io {
            path: path.to_owned(),
            source,
        };
        let metadata = file.metadata().map_err(io)?;
        if !metadata.is_file() {
            return Ok(None);
        }
        let size = metadata.len() as usize;
        if version == 1 {
            return Ok(Some(Self::of_v1(file, size, path)?));
        }
        let corrupt = |offset: usize, reason: String| RecordError::Chunk {
            path: path.to_owned(),
            offset,
            reason,
        };
        let mut outline = Self::default();
        let mut codec = Codec::of_version(version).map_err(|reason| corrupt(8, reason))?;
        let (mut body, mut raw) = (Vec::new(), Vec::new());
        let mut at = 8;
        while at < size {
            if size - at < CHUNK_HEADER {
                outline.truncated = Some(format!(
                    "the file ends inside the chunk header at byte {at}"
                ));
                break;
            }
            let mut bytes = [0u8; CHUNK_HEADER];
            file.read_exact_at(&mut bytes, at as u64).map_err(io)?;
            let header = ChunkHeader::parse(&bytes);
            header
                .check(version)
                .map_err(|reason| corrupt(at, reason))?;
            let body_start = at + CHUNK_HEADER;
            if size - body_start < header.len {
                outline.truncated = Some(format!(
                    "the file ends inside the chunk at byte {at} ({} of {} bytes)",
                    size - body_start,
                    header.len
                ));
                break;
            }
            match header.kind {
                CHUNK_EVENTS_KIND => outline.events += header.count as u64,
                CHUNK_TRAILER => {
                    body.resize(header.len, 0);
                    file.read_exact_at(&mut body, body_start as u64)
                        .map_err(io)?;
                    codec
                        .decompress(&header, &body, &mut raw)
                        .map_err(|reason| corrupt(at, reason))?;
                    outline.trailer = Some(
                        serde_json::from_slice(&raw[..header.raw_len])
                            .map_err(|err| corrupt(at, format!("trailer: {err}")))?,
                    );
                }
                CHUNK_META if at == 8 => {}
                other => {
                    return Err(corrupt(
                        at,
                        format!("unexpected chunk type {:?}", other as char),
                    ));
                }
            }
            at = body_start + header.len;
        }
        Ok(Some(outline))
    }

    /// Version 1: a metadata length, the metadata, then 64-byte events to the end.
    fn of_v1(file: &File, size: usize, path: &Path) -> Result<Self, RecordError> {
        let mut length = [0u8; 4];
        file.read_exact_at(&mut length, 8)
            .map_err(|source| RecordError::Io {
                path: path.to_owned(),
                source,
            })?;
        let start = 12 + u32::from_le_bytes(length) as usize;
        let bytes = size.saturating_sub(start);
        let events = bytes / EVENT_SIZE;
        Ok(Self {
            events: events as u64,
            trailer: None,
            truncated: (!bytes.is_multiple_of(EVENT_SIZE)).then(|| {
                format!(
                    "the file ends inside an event at byte {}",
                    start + events * EVENT_SIZE
                )
            }),
        })
    }
}
