//! Version 3's event columns (docs/FORMAT.md): the stamps, kinds and flags of every event,
//! then each wider field in the form that suits its values in that chunk: absent when all
//! are zero, sparse (a bitmap of the events whose value is not zero, then those values
//! only) when fewer than three in four are set, else dense. Most kinds leave most fields
//! zero (a softirq entry has no skb, most events no task name), so a chunk is about 32
//! bytes per event before compression where version 2's fixed columns took 58; the LZ4 that
//! follows then has half the bytes to write out, which is most of what decoding a recording
//! costs. Dense columns are kept where few values are zero: copying them is several times
//! cheaper than following a bitmap, for a bit per event saved.

use tracer_common::{Event, EventKind, NAME_LEN};

use super::format::read_stamps;

/// Bytes of those columns' values per event at most: cpu, tgid, tid, arg0..arg2,
/// addr, addr2, name.
const VALUES_MAX: usize = 2 + 5 * 4 + 2 * 8 + NAME_LEN;
/// Columns after the kinds and flags, each in one of three forms.
const COLUMNS: usize = 9;

/// Bitmap bytes of a sparse column of `count` events.
fn bitmap_len(count: usize) -> usize {
    count.div_ceil(8)
}

/// A column's form, the byte before it.
const ZEROS: u8 = 0;
const DENSE: u8 = 1;
const SPARSE: u8 = 2;

/// The fewest bytes `count` events encode to: the stamps' length, one byte of stamp, kind
/// and flags each, every column all zeros.
pub(super) fn min_len(count: usize) -> usize {
    4 + 3 * count + COLUMNS
}

/// The most bytes `count` events encode to: ten bytes of stamp, every column sparse with
/// every value present.
pub(super) fn max_len(count: usize) -> usize {
    4 + count * (10 + 2 + VALUES_MAX) + COLUMNS * (1 + bitmap_len(count))
}

/// Encodes a chunk's events (docs/FORMAT.md, version 3).
pub(super) fn encode_events(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 40);
    out.extend_from_slice(&[0; 4]);
    let mut previous = 0u64;
    for event in events {
        let delta = event.ts.wrapping_sub(previous) as i64;
        previous = event.ts;
        put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
    }
    let stamps = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&stamps.to_le_bytes());
    out.extend(events.iter().map(|event| event.kind));
    out.extend(events.iter().map(|event| event.flags));
    put_column(&mut out, events, |e| e.cpu.to_le_bytes());
    put_column(&mut out, events, |e| e.tgid.to_le_bytes());
    // Stored as tid ^ tgid: zero for a process's main thread (decoding sets tid = tgid
    // first).
    put_column(&mut out, events, |e| (e.tid ^ e.tgid).to_le_bytes());
    put_column(&mut out, events, |e| e.arg0.to_le_bytes());
    put_column(&mut out, events, |e| e.arg1.to_le_bytes());
    put_column(&mut out, events, |e| e.arg2.to_le_bytes());
    put_column(&mut out, events, |e| e.addr.to_le_bytes());
    put_column(&mut out, events, |e| e.addr2.to_le_bytes());
    put_column(&mut out, events, |e| e.name);
    out
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One column in the form that suits its values (a generic `field`, so that each column's
/// accessor is inlined into its loops).
fn put_column<const N: usize>(
    out: &mut Vec<u8>,
    events: &[Event],
    field: impl Fn(&Event) -> [u8; N],
) {
    // Not `!= [0; N]`: that compares through memcmp.
    let present = |event: &Event| field(event).iter().fold(0, |any, byte| any | byte) != 0;
    let set = events.iter().filter(|event| present(event)).count();
    if set == 0 {
        out.push(ZEROS);
        return;
    }
    if set * 4 >= events.len() * 3 {
        out.push(DENSE);
        for event in events {
            out.extend_from_slice(&field(event));
        }
        return;
    }
    out.push(SPARSE);
    out.extend(events.chunks(8).map(|eight| {
        eight.iter().enumerate().fold(0u8, |bits, (i, event)| {
            bits | (u8::from(present(event)) << i)
        })
    }));
    for event in events.iter().filter(|event| present(event)) {
        out.extend_from_slice(&field(event));
    }
}

/// A column being decoded: its form, its bitmap (empty unless sparse), its values and the
/// next value's byte offset in them (sparse only).
struct Column<'a> {
    form: u8,
    bitmap: &'a [u8],
    values: &'a [u8],
    at: usize,
}

/// Events decoded at a time: a block's events (64 B each) and its columns' bytes stay in
/// the first-level cache while every column is filled in.
const DECODE_BLOCK: usize = 256;

/// Decodes `count` events of a chunk, appended to `out` (nothing appended on an error);
/// every length is checked against the bytes there are before anything is decoded.
pub(super) fn decode_events(raw: &[u8], count: usize, out: &mut Vec<Event>) -> Result<(), String> {
    let start = out.len();
    let decoded = decode_into(raw, count, out);
    if decoded.is_err() {
        out.truncate(start);
    }
    decoded
}

fn decode_into(raw: &[u8], count: usize, out: &mut Vec<Event>) -> Result<(), String> {
    let mut rest = raw;
    let mut take = |len: usize, what: &str| -> Result<&[u8], String> {
        if rest.len() < len {
            return Err(format!(
                "{what} needs {len} bytes, {} are left of {} for {count} events",
                rest.len(),
                raw.len()
            ));
        }
        let (slice, after) = rest.split_at(len);
        rest = after;
        Ok(slice)
    };
    let stamps_len = take(4, "the stamps' length")?;
    let stamps_len = u32::from_le_bytes(stamps_len.try_into().expect("4 bytes")) as usize;
    let stamps = take(stamps_len, "the stamps")?;
    let kinds = take(count, "the kinds")?;
    let flags = take(count, "the flags")?;
    let mut column = |width: usize, what: &str| -> Result<Column<'_>, String> {
        let form = take(1, what)?[0];
        let (bitmap, present) = match form {
            ZEROS => (&[][..], 0),
            DENSE => (&[][..], count),
            SPARSE => {
                let bitmap = take(bitmap_len(count), what)?;
                // Bits past the last event must be clear: they would count values of no
                // event.
                if !count.is_multiple_of(8)
                    && bitmap.last().is_some_and(|&last| last >> (count % 8) != 0)
                {
                    return Err(format!("{what}: bits set past the last event"));
                }
                let present = bitmap.iter().map(|byte| byte.count_ones() as usize).sum();
                (bitmap, present)
            }
            other => return Err(format!("{what}: unknown column form {other}")),
        };
        let values = take(present * width, what)?;
        Ok(Column {
            form,
            bitmap,
            values,
            at: 0,
        })
    };
    let cpu = column(2, "cpu")?;
    let tgid = column(4, "tgid")?;
    let tid = column(4, "tid")?;
    let arg0 = column(4, "arg0")?;
    let arg1 = column(4, "arg1")?;
    let arg2 = column(4, "arg2")?;
    let addr = column(8, "addr")?;
    let addr2 = column(8, "addr2")?;
    let name = column(NAME_LEN, "name")?;
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes left after the columns of {count} events",
            rest.len()
        ));
    }
    if let Some(i) = kinds
        .iter()
        .position(|&kind| EventKind::from_u8(kind).is_none())
    {
        return Err(format!("event {i}: unknown event kind {}", kinds[i]));
    }

    let mut columns = [cpu, tgid, tid, arg0, arg1, arg2, addr, addr2, name];
    let mut at = 0;
    let mut previous = 0u64;
    let mut first = 0;
    while first < count {
        let n = DECODE_BLOCK.min(count - first);
        let block = out.len();
        out.resize(block + n, Event::ZERO);
        let events = &mut out[block..];
        read_stamps(stamps, &mut at, &mut previous, events)?;
        let range = first..first + n;
        for (event, (&kind, &flags)) in events
            .iter_mut()
            .zip(kinds[range.clone()].iter().zip(&flags[range]))
        {
            event.kind = kind;
            event.flags = flags;
        }
        let [cpu, tgid, tid, arg0, arg1, arg2, addr, addr2, name] = &mut columns;
        fill(events, first, cpu, |e, b| e.cpu = u16::from_le_bytes(b));
        // tgid before tid: tid is stored as tid ^ tgid.
        fill(events, first, tgid, |e, b| e.tgid = u32::from_le_bytes(b));
        for event in events.iter_mut() {
            event.tid = event.tgid;
        }
        fill(events, first, tid, |e, b| e.tid ^= u32::from_le_bytes(b));
        fill(events, first, arg0, |e, b| e.arg0 = u32::from_le_bytes(b));
        fill(events, first, arg1, |e, b| e.arg1 = u32::from_le_bytes(b));
        fill(events, first, arg2, |e, b| e.arg2 = u32::from_le_bytes(b));
        fill(events, first, addr, |e, b| e.addr = u64::from_le_bytes(b));
        fill(events, first, addr2, |e, b| e.addr2 = u64::from_le_bytes(b));
        fill(events, first, name, |e, b| e.name = b);
        first += n;
    }
    if at != stamps.len() {
        return Err(format!(
            "{} bytes of stamps after {count} events",
            stamps.len() - at
        ));
    }
    Ok(())
}

/// Sets a field of `events` (event `first` of the chunk and on, `first` a multiple of 8)
/// from the column: every event's value when dense; when sparse, where the event's bit is
/// set, from the column's values in order (their number was checked against the bits), a
/// bitmap byte at a time (most bytes of a sparse column are all clear or have a few bits
/// set); the others keep their zero.
#[inline(always)]
fn fill<const N: usize>(
    events: &mut [Event],
    first: usize,
    column: &mut Column,
    set: impl Fn(&mut Event, [u8; N]),
) {
    match column.form {
        DENSE => {
            if let Some(values) = column.values.get(first * N..(first + events.len()) * N) {
                for (event, bytes) in events.iter_mut().zip(values.chunks_exact(N)) {
                    let mut value = [0u8; N];
                    value.copy_from_slice(bytes);
                    set(event, value);
                }
            }
        }
        SPARSE => {
            let bitmap = &column.bitmap[first / 8..];
            for (eight, &byte) in events.chunks_mut(8).zip(bitmap) {
                let mut bits = byte;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let (Some(event), Some(bytes)) = (
                        eight.get_mut(i),
                        column.values.get(column.at..column.at + N),
                    ) {
                        let mut value = [0u8; N];
                        value.copy_from_slice(bytes);
                        set(event, value);
                    }
                    column.at += N;
                }
            }
        }
        _ => {}
    }
}
