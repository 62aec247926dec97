//! Reading a recording back (versions 1 to 3) chunk by chunk, keeping every whole chunk of
//! one cut short: [`RecordingReader`] streams events a chunk at a time, [`Recording`] holds a
//! whole (small) file.

use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use tracer_common::{EVENT_SIZE, Event};

use super::{
    Outline,
    format::{
        self, CHUNK_EVENTS, CHUNK_EVENTS_KIND, CHUNK_HEADER, CHUNK_META, CHUNK_TRAILER, EVENT_MAX,
        EVENT_MIN, MAGIC_V1, MAGIC_V2, MAGIC_V3, MAX_RAW, Metadata, RecordError, Trailer,
    },
    sparse,
};

/// A recording read back whole: for tests and small files (`report` and `export` stream
/// with [`RecordingReader`] instead).
#[derive(Debug)]
pub struct Recording {
    /// Format version (1 to 3).
    pub version: u8,
    /// What the recording says about its host.
    pub meta: Metadata,
    /// Every event, in file order.
    pub events: Vec<Event>,
    /// The counters, absent when the recorder did not finish (killed, or version 1).
    pub trailer: Option<Trailer>,
    /// Why the end of the file was not read whole (a recording cut short), if it was not.
    pub truncated: Option<String>,
}

impl Recording {
    /// Reads a whole recording (every event in memory).
    pub fn read(path: &Path) -> Result<Self, RecordError> {
        Self::collect(RecordingReader::open(path)?)
    }

    /// Parses the bytes of a recording; `path` labels errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, RecordError> {
        Self::collect(RecordingReader::new(bytes, path)?)
    }

    fn collect<R: Read>(mut reader: RecordingReader<R>) -> Result<Self, RecordError> {
        let mut events = Vec::new();
        while reader.next_events(&mut events)? {}
        Ok(Self {
            version: reader.version,
            events,
            trailer: reader.trailer.take(),
            truncated: reader.truncated.take(),
            meta: reader.meta,
        })
    }
}

/// A chunk header's fields, before any check.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChunkHeader {
    pub kind: u8,
    pub count: usize,
    pub raw_len: usize,
    pub len: usize,
    pub crc: u32,
}

impl ChunkHeader {
    pub fn parse(bytes: &[u8; CHUNK_HEADER]) -> Self {
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Self {
            kind: bytes[0],
            count: word(1) as usize,
            raw_len: word(5) as usize,
            len: word(9) as usize,
            crc: word(13),
        }
    }

    /// Whether the sizes are possible in format `version` (2 or 3), checked before anything
    /// is allocated or decompressed: an event chunk holds at most [`CHUNK_EVENTS`] events,
    /// encoded in as few and as many bytes as the version's columns allow; any other chunk
    /// decompresses to at most [`MAX_RAW`]; the compressed body is no larger than the
    /// version's compression makes it.
    pub fn check(&self, version: u8) -> Result<(), String> {
        let (kind, count, raw_len) = (self.kind, self.count, self.raw_len);
        let (fewest, most) = match version {
            2 => (count * EVENT_MIN, count * EVENT_MAX),
            _ => (sparse::min_len(count), sparse::max_len(count)),
        };
        if ![CHUNK_META, CHUNK_EVENTS_KIND, CHUNK_TRAILER].contains(&kind) {
            return Err(format!("unexpected chunk type {:?}", kind as char));
        }
        if kind != CHUNK_EVENTS_KIND {
            if raw_len > MAX_RAW {
                return Err(format!("implausible size {raw_len} (at most {MAX_RAW})"));
            }
        } else if count > CHUNK_EVENTS {
            return Err(format!(
                "{count} events announced, a chunk holds at most {CHUNK_EVENTS}"
            ));
        } else if raw_len < fewest || raw_len > most {
            return Err(format!(
                "{count} events cannot be encoded in {raw_len} bytes ({fewest} to {most})"
            ));
        }
        // Above ZSTD_COMPRESSBOUND and LZ4's bound: the most `raw_len` bytes take.
        let bound = match version {
            2 => raw_len + raw_len / 128 + 1024,
            _ => lz4_flex::block::get_maximum_output_size(raw_len),
        };
        if self.len > bound {
            return Err(format!(
                "{} compressed bytes for {raw_len}: implausible",
                self.len
            ));
        }
        Ok(())
    }
}

/// How chunk bodies are compressed: zstd frames (version 2) or LZ4 blocks (version 3).
pub(super) enum Codec {
    Zstd(Box<zstd::bulk::Decompressor<'static>>),
    Lz4,
}

impl Codec {
    /// The codec of format `version` (2 or 3).
    pub fn of_version(version: u8) -> Result<Self, String> {
        Ok(match version {
            2 => Self::Zstd(Box::new(
                zstd::bulk::Decompressor::new().map_err(|err| format!("zstd: {err}"))?,
            )),
            _ => Self::Lz4,
        })
    }

    /// Decompresses a checked chunk body into `raw` (grown to `raw_len`, never beyond:
    /// both codecs stop at the end of the buffer, whatever the body says).
    pub fn decompress(
        &mut self,
        header: &ChunkHeader,
        body: &[u8],
        raw: &mut Vec<u8>,
    ) -> Result<(), String> {
        if crc32fast::hash(body) != header.crc {
            return Err("checksum mismatch".to_owned());
        }
        if raw.len() < header.raw_len {
            raw.resize(header.raw_len, 0);
        }
        let out = &mut raw[..header.raw_len];
        let got = match self {
            Self::Zstd(decompressor) => decompressor
                .decompress_to_buffer(body, out)
                .map_err(|err| format!("zstd: {err}"))?,
            Self::Lz4 => {
                lz4_flex::block::decompress_into(body, out).map_err(|err| format!("lz4: {err}"))?
            }
        };
        if got != header.raw_len {
            return Err(format!(
                "{got} bytes decompressed, header says {}",
                header.raw_len
            ));
        }
        Ok(())
    }
}

/// A recording read chunk by chunk: the magic is checked before anything else is read (a
/// file that is no recording, or `/dev/zero`, costs 8 bytes), a chunk's sizes before its
/// body is read, and at most one chunk is held at a time.
pub struct RecordingReader<R> {
    input: R,
    path: PathBuf,
    version: u8,
    meta: Metadata,
    /// Byte offset of the next chunk (version 2) or event (version 1).
    at: usize,
    trailer: Option<Trailer>,
    truncated: Option<String>,
    ended: bool,
    events: u64,
    codec: Codec,
    header: ChunkHeader,
    body: Vec<u8>,
    raw: Vec<u8>,
}

impl RecordingReader<BufReader<File>> {
    /// Opens a recording and reads its magic and metadata.
    pub fn open(path: &Path) -> Result<Self, RecordError> {
        let file = File::open(path).map_err(|source| RecordError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::new(BufReader::with_capacity(1 << 16, file), path)
    }

    /// The file being read (to seek past its chunks without moving this reader).
    pub fn file(&self) -> &File {
        self.input.get_ref()
    }
}

impl<R: Read + Seek> RecordingReader<R> {
    /// The same recording from its start again (a second pass over a file; a pipe cannot).
    pub fn rewind(mut self) -> Result<Self, RecordError> {
        let path = self.path.clone();
        self.input
            .seek(SeekFrom::Start(0))
            .map_err(|source| RecordError::Io {
                path: path.clone(),
                source,
            })?;
        Self::new(self.input, &path)
    }
}

impl<R: Read> RecordingReader<R> {
    /// Reads the magic and the metadata from `input`; `path` labels errors.
    pub fn new(mut input: R, path: &Path) -> Result<Self, RecordError> {
        let mut magic = Vec::with_capacity(8);
        read_up_to(&mut input, 8, &mut magic, path)?;
        let version = check_magic(&magic, path)?;
        let mut reader = Self {
            input,
            path: path.to_owned(),
            version,
            meta: Metadata::default(),
            at: 8,
            trailer: None,
            truncated: None,
            ended: false,
            events: 0,
            codec: Codec::of_version(version).map_err(|reason| RecordError::Chunk {
                path: path.to_owned(),
                offset: 8,
                reason,
            })?,
            header: ChunkHeader::parse(&[0; CHUNK_HEADER]),
            body: Vec::new(),
            raw: Vec::new(),
        };
        match version {
            1 => reader.read_meta_v1()?,
            _ => reader.read_meta_v2()?,
        }
        Ok(reader)
    }

    /// Format version (1 to 3).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// What the recording says about its host.
    pub fn meta(&self) -> &Metadata {
        &self.meta
    }

    /// The path that labels errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The counters, once the end was reached (absent when the recorder did not finish).
    pub fn trailer(&self) -> Option<&Trailer> {
        self.trailer.as_ref()
    }

    /// Why the end of the file was not read whole, once the end was reached.
    pub fn truncated(&self) -> Option<&str> {
        self.truncated.as_deref()
    }

    /// Events read so far.
    pub fn events_read(&self) -> u64 {
        self.events
    }

    /// What was read so far: once the end was reached, what [`Outline::read`] says before.
    pub fn outline(&self) -> Outline {
        Outline {
            events: self.events,
            trailer: self.trailer.clone(),
            truncated: self.truncated.clone(),
        }
    }

    /// Appends the events of the next chunk (at most [`CHUNK_EVENTS`]) to `out`; false at
    /// the end of the recording (or of its last whole chunk).
    pub fn next_events(&mut self, out: &mut Vec<Event>) -> Result<bool, RecordError> {
        if self.ended {
            return Ok(false);
        }
        let more = match self.version {
            1 => self.next_events_v1(out)?,
            _ => self.next_events_v2(out)?,
        };
        self.ended |= !more;
        Ok(more)
    }

    fn corrupt(&self, offset: usize, reason: String) -> RecordError {
        RecordError::Chunk {
            path: self.path.clone(),
            offset,
            reason,
        }
    }

    /// Reads the next chunk into `self.header` and `self.raw`; returns its offset, or None
    /// at the end of the file (and where a cut chunk starts, in `truncated`).
    fn next_chunk(&mut self) -> Result<Option<usize>, RecordError> {
        let at = self.at;
        self.body.clear();
        let got = read_up_to(&mut self.input, CHUNK_HEADER, &mut self.body, &self.path)?;
        if got == 0 {
            return Ok(None);
        }
        if got < CHUNK_HEADER {
            self.truncated = Some(format!(
                "the file ends inside the chunk header at byte {at}"
            ));
            self.at += got;
            return Ok(None);
        }
        let mut bytes = [0u8; CHUNK_HEADER];
        bytes.copy_from_slice(&self.body);
        let header = ChunkHeader::parse(&bytes);
        // Every size is checked before its bytes are read, allocated or decompressed.
        header
            .check(self.version)
            .map_err(|reason| self.corrupt(at, reason))?;
        let body_start = at + CHUNK_HEADER;
        self.body.clear();
        let got = read_up_to(&mut self.input, header.len, &mut self.body, &self.path)?;
        if got < header.len {
            self.truncated = Some(format!(
                "the file ends inside the chunk at byte {at} ({got} of {} bytes)",
                header.len
            ));
            self.at = body_start + got;
            return Ok(None);
        }
        self.codec
            .decompress(&header, &self.body, &mut self.raw)
            .map_err(|reason| self.corrupt(at, reason))?;
        self.header = header;
        self.at = body_start + header.len;
        Ok(Some(at))
    }

    fn read_meta_v2(&mut self) -> Result<(), RecordError> {
        let Some(at) = self.next_chunk()? else {
            return Err(RecordError::NoMetadata {
                path: self.path.clone(),
                at: self.at,
            });
        };
        let kind = self.header.kind;
        if kind != CHUNK_META {
            return Err(self.corrupt(at, format!("unexpected chunk type {:?}", kind as char)));
        }
        self.meta = serde_json::from_slice(&self.raw[..self.header.raw_len])
            .map_err(|err| self.corrupt(at, format!("metadata: {err}")))?;
        Ok(())
    }

    /// Versions 2 and 3: the next event chunk (the trailer is kept on the way).
    fn next_events_v2(&mut self, out: &mut Vec<Event>) -> Result<bool, RecordError> {
        while let Some(at) = self.next_chunk()? {
            let header = self.header;
            let raw = &self.raw[..header.raw_len];
            match header.kind {
                CHUNK_EVENTS_KIND => {
                    let decoded = match self.version {
                        2 => format::decode_events(raw, header.count, out),
                        _ => sparse::decode_events(raw, header.count, out),
                    };
                    decoded.map_err(|reason| self.corrupt(at, reason))?;
                    self.events += header.count as u64;
                    return Ok(true);
                }
                CHUNK_TRAILER => {
                    self.trailer = Some(
                        serde_json::from_slice(raw)
                            .map_err(|err| self.corrupt(at, format!("trailer: {err}")))?,
                    );
                }
                other => {
                    return Err(
                        self.corrupt(at, format!("unexpected chunk type {:?}", other as char))
                    );
                }
            }
        }
        Ok(false)
    }

    fn read_meta_v1(&mut self) -> Result<(), RecordError> {
        let mut bytes = Vec::with_capacity(4);
        let got = read_up_to(&mut self.input, 4, &mut bytes, &self.path)?;
        if got < 4 {
            return Err(RecordError::NoMetadata {
                path: self.path.clone(),
                at: 8 + got,
            });
        }
        let meta_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if meta_len > MAX_RAW {
            return Err(self.corrupt(8, format!("implausible metadata size {meta_len}")));
        }
        bytes.clear();
        let got = read_up_to(&mut self.input, meta_len, &mut bytes, &self.path)?;
        if got < meta_len {
            return Err(RecordError::NoMetadata {
                path: self.path.clone(),
                at: 12 + got,
            });
        }
        self.meta = serde_json::from_slice(&bytes)
            .map_err(|err| self.corrupt(12, format!("metadata: {err}")))?;
        self.at = 12 + meta_len;
        Ok(())
    }

    /// Version 1: 64-byte records after the metadata, read [`CHUNK_EVENTS`] at a time;
    /// false when there were none left.
    fn next_events_v1(&mut self, out: &mut Vec<Event>) -> Result<bool, RecordError> {
        self.body.clear();
        let want = CHUNK_EVENTS * EVENT_SIZE;
        let got = read_up_to(&mut self.input, want, &mut self.body, &self.path)?;
        out.reserve(got / EVENT_SIZE);
        for record in self.body.chunks(EVENT_SIZE) {
            let here = self.at;
            if record.len() < EVENT_SIZE {
                self.truncated = Some(format!("the file ends inside an event at byte {here}"));
                break;
            }
            let (event, _) = crate::source::decode::decode(record)
                .map_err(|err| self.corrupt(here, err.to_string()))?;
            out.push(event);
            self.events += 1;
            self.at += EVENT_SIZE;
        }
        // A short read is the end: the next call says so.
        self.ended = got < want;
        Ok(got >= EVENT_SIZE)
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
pub(super) fn check_magic(bytes: &[u8], path: &Path) -> Result<u8, RecordError> {
    match bytes.get(..8) {
        Some(magic) if magic == MAGIC_V3 => Ok(3),
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
