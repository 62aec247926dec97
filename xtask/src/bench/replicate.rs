//! Large recordings made from a real one (docs/FORMAT.md, version 3): its event chunks
//! written again and again after one metadata chunk, with the trailer last. Copies are
//! either concatenated as they are (every copy starts where the first did: a whole capture
//! out of order, the hard case of the reorder window) or shifted in time one after the
//! other (one long capture, as a long flood would record).

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::Path,
};

use anyhow::{Context as _, bail};

const MAGIC: &[u8; 8] = b"TRACERv3";
const HEADER: usize = 17;

/// One chunk of the file: header fields and compressed body.
struct Chunk<'a> {
    kind: u8,
    count: u32,
    raw_len: u32,
    body: &'a [u8],
}

fn chunks(bytes: &[u8]) -> anyhow::Result<Vec<Chunk<'_>>> {
    if bytes.get(..8) != Some(MAGIC) {
        bail!("not a version 3 recording");
    }
    let mut out = Vec::new();
    let mut at = 8;
    while at + HEADER <= bytes.len() {
        let word = |from: usize| u32::from_le_bytes(bytes[from..from + 4].try_into().unwrap());
        let len = word(at + 9) as usize;
        let body = bytes
            .get(at + HEADER..at + HEADER + len)
            .context("a chunk cut short")?;
        out.push(Chunk {
            kind: bytes[at],
            count: word(at + 1),
            raw_len: word(at + 5),
            body,
        });
        at += HEADER + len;
    }
    Ok(out)
}

fn varint(bytes: &[u8]) -> anyhow::Result<(u64, usize)> {
    let (mut value, mut shift) = (0u64, 0);
    for (index, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok((value, index + 1));
        }
    }
    bail!("bad varint")
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The stamps of a chunk's events: first and last (after the stamps' u32 length).
fn span(raw: &[u8], count: u32) -> anyhow::Result<(u64, u64)> {
    let (mut at, mut ts) = (4, 0u64);
    let (mut first, mut last) = (u64::MAX, 0);
    for _ in 0..count {
        let (value, used) = varint(&raw[at..])?;
        at += used;
        ts = ts.wrapping_add(unzigzag(value) as u64);
        first = first.min(ts);
        last = last.max(ts);
    }
    Ok((first, last))
}

fn write_chunk(out: &mut impl std::io::Write, chunk: &Chunk, body: &[u8]) -> anyhow::Result<()> {
    out.write_all(&[chunk.kind])?;
    out.write_all(&chunk.count.to_le_bytes())?;
    out.write_all(&chunk.raw_len.to_le_bytes())?;
    out.write_all(&(body.len() as u32).to_le_bytes())?;
    out.write_all(&crc32fast::hash(body).to_le_bytes())?;
    out.write_all(body)?;
    Ok(())
}

/// Writes `copies` of the recording `input` to `output`; `shifted`: each copy after the
/// one before in time. Returns the bytes written.
pub fn replicate(input: &Path, output: &Path, copies: usize, shifted: bool) -> anyhow::Result<u64> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let chunks = chunks(&bytes)?;
    let mut raws = Vec::new();
    let (mut first, mut last) = (u64::MAX, 0);
    for chunk in chunks.iter().filter(|chunk| chunk.kind == b'E') {
        let raw = lz4_flex::block::decompress(chunk.body, chunk.raw_len as usize)?;
        let (a, b) = span(&raw, chunk.count)?;
        (first, last) = (first.min(a), last.max(b));
        raws.push(raw);
    }
    // Each copy starts a millisecond after the one before ends.
    let period = last.saturating_sub(first) + 1_000_000;
    let mut out = BufWriter::new(File::create(output)?);
    out.write_all(MAGIC)?;
    let meta = chunks
        .iter()
        .find(|chunk| chunk.kind == b'M')
        .context("no metadata")?;
    write_chunk(&mut out, meta, meta.body)?;
    let events: Vec<&Chunk> = chunks.iter().filter(|chunk| chunk.kind == b'E').collect();
    for copy in 0..copies as u64 {
        for (chunk, raw) in events.iter().zip(&raws) {
            if !shifted || copy == 0 {
                write_chunk(&mut out, chunk, chunk.body)?;
                continue;
            }
            // The first stamp of a chunk is its difference to 0: move it, and the rest follow;
            // the stamps' length before them changes with its varint's.
            let stamps = u32::from_le_bytes(raw[..4].try_into()?) as usize;
            let (value, used) = varint(&raw[4..])?;
            let ts = (unzigzag(value) as u64).wrapping_add(copy * period);
            let mut first = Vec::new();
            put_varint(&mut first, zigzag(ts as i64));
            let mut moved = Vec::with_capacity(raw.len() + 2);
            moved.extend_from_slice(&((stamps - used + first.len()) as u32).to_le_bytes());
            moved.extend_from_slice(&first);
            moved.extend_from_slice(&raw[4 + used..]);
            let body = lz4_flex::block::compress(&moved);
            let header = Chunk {
                raw_len: moved.len() as u32,
                ..**chunk
            };
            write_chunk(&mut out, &header, &body)?;
        }
    }
    if let Some(trailer) = chunks.iter().find(|chunk| chunk.kind == b'C') {
        write_chunk(&mut out, trailer, trailer.body)?;
    }
    out.flush()?;
    Ok(std::fs::metadata(output)?.len())
}
