//! Reading a recording back (versions 1 and 2), keeping every whole chunk of one cut short.

use std::{
    fs::File,
    io::{BufReader, Read},
    path::Path,
};

use tracer_common::{EVENT_SIZE, Event};

use super::format::{
    CHUNK_EVENTS, CHUNK_EVENTS_KIND, CHUNK_HEADER, CHUNK_META, CHUNK_TRAILER, EVENT_MAX, EVENT_MIN,
    MAGIC_V1, MAGIC_V2, MAX_RAW, Metadata, RecordError, Trailer, decode_events,
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
    /// Reads a whole recording, chunk by chunk: the magic is checked before anything else is
    /// read (a file that is no recording, or `/dev/zero`, costs 8 bytes), and a chunk's sizes
    /// before its body is read.
    pub fn read(path: &Path) -> Result<Self, RecordError> {
        let file = File::open(path).map_err(|source| RecordError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_reader(BufReader::with_capacity(1 << 16, file), path)
    }

    /// Parses the bytes of a recording; `path` labels errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, RecordError> {
        Self::from_reader(bytes, path)
    }

    fn from_reader(mut input: impl Read, path: &Path) -> Result<Self, RecordError> {
        let mut magic = Vec::with_capacity(8);
        read_up_to(&mut input, 8, &mut magic, path)?;
        match check_magic(&magic, path)? {
            2 => parse_v2(input, path),
            _ => parse_v1(input, path),
        }
    }
}

/// Appends up to `n` bytes of `input` to `buf` (fewer only at the end of the input).
fn read_up_to(
    input: &mut impl Read,
    n: usize,
    buf: &mut Vec<u8>,
    path: &Path,
) -> Result<usize, RecordError> {
    let start = buf.len();
    input
        .take(n as u64)
        .read_to_end(buf)
        .map_err(|source| RecordError::Io {
            path: path.to_owned(),
            source,
        })?;
    Ok(buf.len() - start)
}

/// The format version the first 8 bytes announce, or why they are no recording's.
fn check_magic(bytes: &[u8], path: &Path) -> Result<u8, RecordError> {
    match bytes.get(..8) {
        Some(magic) if magic == MAGIC_V2 => Ok(2),
        Some(magic) if magic == MAGIC_V1 => Ok(1),
        Some(magic) if magic.starts_with(b"TRACERv") => Err(RecordError::Version {
            path: path.to_owned(),
            version: String::from_utf8_lossy(&magic[7..]).into_owned(),
        }),
        _ => Err(RecordError::Magic {
            path: path.to_owned(),
        }),
    }
}

/// Whether a chunk header's sizes are possible, checked before anything is allocated or
/// decompressed: an event chunk holds at most [`CHUNK_EVENTS`] events, each encoded in
/// [`EVENT_MIN`] to [`EVENT_MAX`] bytes; any other chunk decompresses to at most [`MAX_RAW`].
fn check_sizes(kind: u8, count: usize, raw_len: usize) -> Result<(), String> {
    if ![CHUNK_META, CHUNK_EVENTS_KIND, CHUNK_TRAILER].contains(&kind) {
        return Err(format!("unexpected chunk type {:?}", kind as char));
    }
    if kind != CHUNK_EVENTS_KIND {
        if raw_len > MAX_RAW {
            return Err(format!("implausible size {raw_len} (at most {MAX_RAW})"));
        }
        return Ok(());
    }
    if count > CHUNK_EVENTS {
        return Err(format!(
            "{count} events announced, a chunk holds at most {CHUNK_EVENTS}"
        ));
    }
    if raw_len < count * EVENT_MIN || raw_len > count * EVENT_MAX {
        return Err(format!(
            "{count} events cannot be encoded in {raw_len} bytes ({EVENT_MIN} to {EVENT_MAX} each)"
        ));
    }
    Ok(())
}

/// The most a zstd frame of `raw_len` bytes takes (above ZSTD_COMPRESSBOUND).
fn compressed_bound(raw_len: usize) -> usize {
    raw_len + raw_len / 128 + 1024
}

fn parse_v2(mut input: impl Read, path: &Path) -> Result<Recording, RecordError> {
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
    let mut decompressor =
        zstd::bulk::Decompressor::new().map_err(|err| corrupt(8, format!("zstd: {err}")))?;
    let mut have_meta = false;
    let mut at = 8;
    let (mut header, mut body) = (Vec::with_capacity(CHUNK_HEADER), Vec::new());
    loop {
        header.clear();
        let got = read_up_to(&mut input, CHUNK_HEADER, &mut header, path)?;
        if got == 0 {
            break;
        }
        if got < CHUNK_HEADER {
            recording.truncated = Some(format!(
                "the file ends inside the chunk header at byte {at}"
            ));
            at += got;
            break;
        }
        let kind = header[0];
        let word = |range: std::ops::Range<usize>| {
            u32::from_le_bytes(header[range].try_into().expect("4 bytes"))
        };
        let (count, raw_len, len, crc) = (
            word(1..5) as usize,
            word(5..9) as usize,
            word(9..13) as usize,
            word(13..17),
        );
        // Every size is checked before its bytes are read, allocated or decompressed.
        check_sizes(kind, count, raw_len).map_err(|reason| corrupt(at, reason))?;
        if len > compressed_bound(raw_len) {
            return Err(corrupt(
                at,
                format!("{len} compressed bytes for {raw_len}: implausible"),
            ));
        }
        let body_start = at + CHUNK_HEADER;
        body.clear();
        let got = read_up_to(&mut input, len, &mut body, path)?;
        if got < len {
            recording.truncated = Some(format!(
                "the file ends inside the chunk at byte {at} ({got} of {len} bytes)"
            ));
            at = body_start + got;
            break;
        }
        if crc32fast::hash(&body) != crc {
            return Err(corrupt(at, "checksum mismatch".to_owned()));
        }
        // The output buffer is `raw_len` bytes: zstd stops there, whatever the body says.
        let raw = decompressor
            .decompress(&body, raw_len)
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
                decode_events(&raw, count, &mut recording.events)
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
            at,
        });
    }
    Ok(recording)
}

fn parse_v1(mut input: impl Read, path: &Path) -> Result<Recording, RecordError> {
    let corrupt = |offset: usize, reason: String| RecordError::Chunk {
        path: path.to_owned(),
        offset,
        reason,
    };
    let mut bytes = Vec::with_capacity(4);
    let got = read_up_to(&mut input, 4, &mut bytes, path)?;
    if got < 4 {
        return Err(RecordError::NoMetadata {
            path: path.to_owned(),
            at: 8 + got,
        });
    }
    let meta_len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    if meta_len > MAX_RAW {
        return Err(corrupt(8, format!("implausible metadata size {meta_len}")));
    }
    bytes.clear();
    let got = read_up_to(&mut input, meta_len, &mut bytes, path)?;
    if got < meta_len {
        return Err(RecordError::NoMetadata {
            path: path.to_owned(),
            at: 12 + got,
        });
    }
    let meta =
        serde_json::from_slice(&bytes).map_err(|err| corrupt(12, format!("metadata: {err}")))?;
    let end = 12 + meta_len;
    let mut events = Vec::new();
    let mut truncated = None;
    let mut record = Vec::with_capacity(EVENT_SIZE);
    loop {
        record.clear();
        let got = read_up_to(&mut input, EVENT_SIZE, &mut record, path)?;
        let here = end + events.len() * EVENT_SIZE;
        if got < EVENT_SIZE {
            if got > 0 {
                truncated = Some(format!("the file ends inside an event at byte {here}"));
            }
            break;
        }
        let (event, _) =
            crate::source::decode::decode(&record).map_err(|err| corrupt(here, err.to_string()))?;
        events.push(event);
    }
    Ok(Recording {
        version: 1,
        meta,
        events,
        trailer: None,
        truncated,
    })
}
