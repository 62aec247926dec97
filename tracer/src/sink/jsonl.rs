//! The journey record as one JSON line, written by hand from the field table
//! ([`crate::journey::fields`]): the same bytes serde_json writes for [`Journey`]'s
//! `Serialize` (a unit test holds them equal), at a fraction of the cost. The table's macro
//! list unrolls here into straight-line code: each key a constant copied whole, each value
//! written by its kind, known at compile time; numbers by a digit-pair table, names copied
//! whole when a word-at-a-time scan finds nothing to escape; all into one reused buffer,
//! through a cursor that keeps the write position in a register ([`Cursor`]).
//! `tracer live --json` writes one of these per packet.

use std::{borrow::Cow, io, net::IpAddr};

use super::Sink;
use crate::journey::{
    Journey, Missing, Stage, StageDurations, Stamps,
    fields::{Value, journey_fields, stamp_fields},
    model::Addr,
};

/// The bytes of one object beyond its names and reasons, with room to spare (about 1.3 KB
/// for a loopback packet): reserved once per journey so the writes below rarely grow it.
const RESERVE: usize = 2048;

/// Reads one field through its closure in the table; a function so that the closure's
/// argument type is known (the table's closures leave it to the context).
#[inline(always)]
fn read<'a>(journey: &'a Journey, value: impl FnOnce(&'a Journey) -> Value<'a>) -> Value<'a> {
    value(journey)
}

/// `{"id":...,...}` for every field of the table, straight-line: each key a constant, each
/// value written by its kind, known here at compile time. An absent value is its key and
/// `null` in one constant (`,"irq":null`): one copy instead of two.
macro_rules! write_fields {
    ($first:literal => $first_value:expr, $($name:literal => $value:expr,)*) => {
        fn fields(journey: &Journey, out: &mut Vec<u8>) {
            let mut cursor = Cursor::new(out, RESERVE);
            let out = &mut cursor;
            out.extend_from_slice(concat!("{\"", $first, "\":").as_bytes());
            value(read(journey, $first_value), out);
            $(
                keyed(
                    concat!(",\"", $name, "\":").as_bytes(),
                    concat!(",\"", $name, "\":null").as_bytes(),
                    read(journey, $value),
                    out,
                );
            )*
            out.push(b'}');
            cursor.finish();
        }
    };
}
journey_fields!(write_fields);

/// Appends `journey` as a JSON object (no newline) to `out`.
pub fn write(journey: &Journey, out: &mut Vec<u8>) {
    fields(journey, out);
}

/// Members to append to every object of a stream, as `,"key":"value"` text: what `report`
/// adds to each journey when it reads several recordings (`host`, `recording`). Values are
/// escaped as [`write`] escapes strings; keys are plain identifiers.
pub fn extra_members(members: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in members {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        escaped(value, &mut out);
    }
    out
}

/// Appends `journey` as [`write`] does, with `extra` (from [`extra_members`]) as its last
/// members.
pub fn write_with(journey: &Journey, extra: &[u8], out: &mut Vec<u8>) {
    write(journey, out);
    if !extra.is_empty() {
        out.pop(); // the object's `}`
        out.extend_from_slice(extra);
        out.push(b'}');
    }
}

/// Where the record is being written: the end of a `Vec<u8>`, past its length, in its spare
/// capacity, with the buffer's address, capacity and write position held apart from the
/// Vec (whose length is set once, when the cursor finishes; a cursor dropped unfinished
/// leaves the Vec as it found it).
///
/// Why not the Vec itself: its length and address live in memory, and a byte written
/// through its buffer may, for all the compiler knows, be that length: each of a record's
/// hundred-odd writes then reloaded them and stored the length back, one chain through
/// memory from the first byte to the last. A cursor's fields stay in registers.
struct Cursor<'a> {
    vec: &'a mut Vec<u8>,
    ptr: *mut u8,
    cap: usize,
    /// The write position: `pos <= cap`, and every byte below `pos` is written (the Vec's
    /// own, and the cursor's since).
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the end of `vec`, with room for `reserve` bytes before it first grows.
    fn new(vec: &'a mut Vec<u8>, reserve: usize) -> Self {
        vec.reserve(reserve);
        Self {
            ptr: vec.as_mut_ptr(),
            cap: vec.capacity(),
            pos: vec.len(),
            vec,
        }
    }

    #[inline(always)]
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        if self.cap - self.pos < bytes.len() {
            (self.ptr, self.cap) = grow(self.vec, self.pos, bytes.len());
        }
        // SAFETY: `pos + bytes.len() <= cap` (checked, or grown to it), so the copy lands
        // in the Vec's allocation; `bytes` cannot overlap it (the Vec is borrowed here).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(self.pos), bytes.len());
        }
        self.pos += bytes.len();
    }

    #[inline(always)]
    fn push(&mut self, byte: u8) {
        self.extend_from_slice(&[byte]);
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.pos
    }

    /// Cuts what was written back to `len` bytes (as `Vec::truncate`).
    #[inline(always)]
    fn truncate(&mut self, len: usize) {
        self.pos = self.pos.min(len);
    }

    /// Sets the Vec's length to what was written (until then it keeps its old length).
    #[inline(always)]
    fn finish(self) {
        // SAFETY: as in `with_vec`.
        unsafe { self.vec.set_len(self.pos) };
    }

    /// Writes through the Vec itself (escapes, IPv6, the `missing` list: rare or long).
    #[inline(always)]
    fn with_vec(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        // SAFETY: the cursor's invariant (every byte below `pos` written, `pos <= cap`).
        unsafe { self.vec.set_len(self.pos) };
        write(self.vec);
        self.ptr = self.vec.as_mut_ptr();
        self.cap = self.vec.capacity();
        self.pos = self.vec.len();
    }
}

/// Room for `more` bytes past `pos` in `vec` (a cursor's, `pos` bytes written): the new
/// address and capacity. Apart from the cursor so that the cursor stays in registers.
#[cold]
#[inline(never)]
fn grow(vec: &mut Vec<u8>, pos: usize, more: usize) -> (*mut u8, usize) {
    // SAFETY: the cursor's invariant; the length first, so that the reserve keeps the bytes.
    unsafe { vec.set_len(pos) };
    vec.reserve(more);
    (vec.as_mut_ptr(), vec.capacity())
}

/// A key and its value; `null_key` (the key with `null`) alone when the value is absent.
#[inline(always)]
fn keyed(key: &[u8], null_key: &[u8], value: Value<'_>, out: &mut Cursor<'_>) {
    let absent = match value {
        Value::Unsigned(value) => value.is_none(),
        Value::Signed(value) => value.is_none(),
        Value::Text(value) => value.is_none(),
        Value::Addr(value) => value.is_none(),
        Value::Ip(value) => value.is_none(),
        Value::Bool(_) | Value::Stamps(_) | Value::Stages(_) | Value::Missing(_) => false,
    };
    if absent {
        out.extend_from_slice(null_key);
    } else {
        out.extend_from_slice(key);
        self::value(value, out);
    }
}

/// One value of the table, by its kind: inlined into each field's line, where the kind is a
/// constant and the other arms vanish.
#[inline(always)]
fn value(value: Value<'_>, out: &mut Cursor<'_>) {
    match value {
        Value::Unsigned(value) => number(value, out),
        Value::Signed(value) => number(value, out),
        Value::Text(Some(text)) => self::text(text, out),
        Value::Text(None) => out.extend_from_slice(b"null"),
        Value::Bool(value) => out.extend_from_slice(if value { b"true" } else { b"false" }),
        Value::Addr(value) => addr(value, out),
        Value::Ip(value) => ip(value, out),
        Value::Stamps(ts) => stamps(ts, out),
        Value::Stages(ns) => stage_durations(ns, out),
        Value::Missing(list) => out.with_vec(|out| missing(list, out)),
    }
}

/// A number (or `null`) as serde writes it.
#[inline(always)]
fn number<N: Decimal>(value: Option<N>, out: &mut Cursor<'_>) {
    match value {
        Some(value) => value.write(out),
        None => out.extend_from_slice(b"null"),
    }
}

/// The integers of the record, written in decimal.
trait Decimal {
    fn write(self, out: &mut Cursor<'_>);
}

impl Decimal for u64 {
    #[inline(always)]
    fn write(self, out: &mut Cursor<'_>) {
        decimal(self, out);
    }
}

impl Decimal for i64 {
    #[inline(always)]
    fn write(self, out: &mut Cursor<'_>) {
        if self < 0 {
            out.push(b'-');
        }
        decimal(self.unsigned_abs(), out);
    }
}

/// Every number below 100 as two digits.
const PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// The eight decimal digits of `value` (below 10^8, leading zeros kept) as the bytes of a
/// word, first digit first in memory, each 0-9 (not yet text): the word split in lanes,
/// 4-digit halves, then 2-digit quarters, then digits, each lane divided by a multiply
/// and shift that is exact in its range (`x * 10486 >> 20` is x / 100 below 10^4,
/// `x * 103 >> 10` is x / 10 below 100). A dozen instructions for eight digits where a
/// pair at a time took ~11 per pair.
#[inline(always)]
fn eight_digits(value: u32) -> u64 {
    let (high, low) = (u64::from(value / 10_000), u64::from(value % 10_000));
    // Little-endian lanes: the first digits in the low lane, which is first in memory.
    let x = if cfg!(target_endian = "little") {
        high | low << 32
    } else {
        low | high << 32
    };
    let hundreds = ((x * 10_486) >> 20) & 0x0000_007f_0000_007f;
    let x = hundreds | (x - hundreds * 100) << 16;
    let tens = ((x * 103) >> 10) & 0x000f_000f_000f_000f;
    let x = tens | (x - tens * 10) << 8;
    if cfg!(target_endian = "little") {
        x
    } else {
        x.swap_bytes()
    }
}

/// A word of digits ([`eight_digits`] as text) moved so that its first `skip` bytes in
/// memory (leading zeros) are gone and the digits start at its first byte.
#[inline(always)]
fn skip_leading(word: u64, skip: usize) -> u64 {
    if cfg!(target_endian = "little") {
        word >> (8 * skip)
    } else {
        word << (8 * skip)
    }
}

/// `value` in decimal digits, as serde writes it: below 10 as one byte; below 10^16 as one
/// or two words of eight digits ([`eight_digits`]), their count from the first word's
/// leading zero digits, which are shifted out; beyond, two digits at a time. A word is
/// copied whole (a copy of constant size, no call per number) and the copy cut to its
/// digits.
///
/// Counting the digits apart from the digits (from the value's bit length and a table of
/// powers of ten, so that where the next value goes need not wait for the multiplies) was
/// tried: 15% slower per record here.
#[inline(always)]
fn decimal(value: u64, out: &mut Cursor<'_>) {
    const TEXT: u64 = u64::from_ne_bytes([b'0'; 8]);
    const EIGHT: u64 = 100_000_000;
    // The leading zero digits of a word (its first bytes in memory that are 0; at most 7
    // for a value of 1 and more).
    let zeros = |digits: u64| {
        let first = if cfg!(target_endian = "little") {
            digits.trailing_zeros()
        } else {
            digits.leading_zeros()
        };
        (first / 8) as usize
    };
    let len = out.len();
    if value < 10 {
        out.push(b'0' + value as u8);
        return;
    }
    let digits;
    if value < EIGHT {
        let word = eight_digits(value as u32);
        digits = 8 - zeros(word);
        out.extend_from_slice(&skip_leading(word + TEXT, 8 - digits).to_ne_bytes());
    } else if value < EIGHT * EIGHT {
        let high = eight_digits((value / EIGHT) as u32);
        digits = 16 - zeros(high);
        let high = skip_leading(high + TEXT, 16 - digits);
        let low = eight_digits((value % EIGHT) as u32) + TEXT;
        // The high word's digits, cut, then the low word's eight.
        out.extend_from_slice(&high.to_ne_bytes());
        out.truncate(len + digits - 8);
        out.extend_from_slice(&low.to_ne_bytes());
        return;
    } else {
        let (block, start) = pairs(value);
        out.extend_from_slice(&block[start..start + DIGITS]);
        digits = DIGITS - start;
    }
    out.truncate(len + digits);
}

/// Digits in u64::MAX.
const DIGITS: usize = 20;

/// `value` in decimal digits, two at a time from a table, written backwards to the end of
/// the first half of a block; the block and where its digits start (the caller copies the
/// `DIGITS` bytes from there and cuts them).
fn pairs(value: u64) -> ([u8; 2 * DIGITS], usize) {
    let mut block = [0u8; 2 * DIGITS];
    let mut start = DIGITS;
    let mut rest = value;
    while rest >= 100 {
        let pair = (rest % 100) as usize * 2;
        rest /= 100;
        start -= 2;
        block[start..start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if rest >= 10 {
        let pair = rest as usize * 2;
        start -= 2;
        block[start..start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        start -= 1;
        block[start] = b'0' + rest as u8;
    }
    (block, start)
}

/// Writes `{"a":..,"b":..}` of the `Option<u64>` fields named, each absent one as its key
/// and `null` in one copy (the stamps and the stage durations).
macro_rules! unsigned_object {
    ($out:ident, $src:ident; $first:ident, $($name:ident,)*) => {
        $out.push(b'{');
        keyed_unsigned(
            concat!("\"", stringify!($first), "\":").as_bytes(),
            concat!("\"", stringify!($first), "\":null").as_bytes(),
            $src.$first,
            $out,
        );
        $(
            keyed_unsigned(
                concat!(",\"", stringify!($name), "\":").as_bytes(),
                concat!(",\"", stringify!($name), "\":null").as_bytes(),
                $src.$name,
                $out,
            );
        )*
        $out.push(b'}');
    };
}

/// [`keyed`] for a number: apart from it so that the objects of numbers, which are values
/// themselves, do not make [`value`] call itself (it would then not be inlined).
#[inline(always)]
fn keyed_unsigned(key: &[u8], null_key: &[u8], value: Option<u64>, out: &mut Cursor<'_>) {
    match value {
        Some(value) => {
            out.extend_from_slice(key);
            decimal(value, out);
        }
        None => out.extend_from_slice(null_key),
    }
}

#[inline(always)]
fn stamps(ts: &Stamps, out: &mut Cursor<'_>) {
    macro_rules! write_stamps {
        ($($name:ident,)*) => {
            unsigned_object!(out, ts; $($name,)*)
        };
    }
    stamp_fields!(write_stamps);
}

#[inline(always)]
fn stage_durations(ns: &StageDurations, out: &mut Cursor<'_>) {
    // The stages in `Stage::ALL` order, the order of `StageDurations`'s fields (the test
    // `same_bytes_as_serde_json` holds it).
    unsigned_object!(
        out, ns;
        irq,
        softirq_wait,
        poll,
        stack,
        wakeup,
        runqueue,
        syscall,
        total,
    );
}

/// The `missing` list, from the memo when it holds one like it.
fn missing(list: &[Missing], out: &mut Vec<u8>) {
    match MemoKey::of(list) {
        Some(key) => MISSING_MEMO.with_borrow_mut(|memo| memo.write(key, list, out)),
        None => missing_list(list, out),
    }
}

/// The `missing` list as serde writes it: `[{"stage":...,"reason":...},...]`.
fn missing_list(list: &[Missing], out: &mut Vec<u8>) {
    out.push(b'[');
    for (index, item) in list.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stage\":");
        escaped(item.stage.name(), out);
        out.extend_from_slice(b",\"reason\":");
        escaped(&item.reason, out);
        out.push(b'}');
    }
    out.push(b']');
}

/// Stages missing at most in a list the memo keeps (a loopback datagram misses three).
const MEMO_STAGES: usize = 4;
/// Lists the memo keeps: a flood's journeys end in a handful of ways.
const MEMO_LISTS: usize = 8;

/// A `missing` list whose reasons are all `'static` text (the engine's own, which is all of
/// them): its stages and where each reason is. A `&'static str` never changes, so the same
/// address and length is the same text, and the list's JSON is the same bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct MemoKey {
    len: usize,
    items: [(Stage, usize, usize); MEMO_STAGES],
}

impl MemoKey {
    /// The key of `list`; none when it is longer than the memo keeps or a reason is not
    /// `'static` (then it is written out).
    fn of(list: &[Missing]) -> Option<Self> {
        if list.len() > MEMO_STAGES {
            return None;
        }
        let mut items = [(Stage::Total, 0, 0); MEMO_STAGES];
        for (item, missing) in items.iter_mut().zip(list) {
            let Cow::Borrowed(reason) = missing.reason else {
                return None;
            };
            *item = (missing.stage, reason.as_ptr() as usize, reason.len());
        }
        Some(Self {
            len: list.len(),
            items,
        })
    }
}

/// The JSON of the `missing` lists written last (most journeys of a run share a few lists
/// of three or four long reasons): one copy each instead of escaping every name and reason.
#[derive(Default)]
struct MissingMemo {
    lists: Vec<(MemoKey, Vec<u8>)>,
    /// The slot the next new list takes once the memo is full.
    next: usize,
}

impl MissingMemo {
    fn write(&mut self, key: MemoKey, list: &[Missing], out: &mut Vec<u8>) {
        if let Some((_, json)) = self.lists.iter().find(|(known, _)| *known == key) {
            out.extend_from_slice(json);
            return;
        }
        let mut json = Vec::new();
        missing_list(list, &mut json);
        out.extend_from_slice(&json);
        if self.lists.len() < MEMO_LISTS {
            self.lists.push((key, json));
        } else {
            self.lists[self.next] = (key, json);
            self.next = (self.next + 1) % MEMO_LISTS;
        }
    }
}

thread_local! {
    /// Per thread: [`write`] is a plain function that every sink calls with its own buffer.
    static MISSING_MEMO: std::cell::RefCell<MissingMemo> = std::cell::RefCell::default();
}

/// Every byte as two lower-case hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    table
};

/// An address as the string `"0x..."` (lower-case hex, no leading zeros): its digits
/// counted from its leading zero bits, written backwards a byte (two digits) at a time into
/// a block that is copied whole and then cut.
#[inline(always)]
fn addr(value: Option<Addr>, out: &mut Cursor<'_>) {
    let Some(Addr(value)) = value else {
        out.extend_from_slice(b"null");
        return;
    };
    let digits = (64 - (value | 1).leading_zeros() as usize).div_ceil(4);
    let mut text = [0u8; 24]; // `"0x`, at most 16 digits, `"`
    let end = 3 + digits;
    text[end] = b'"';
    let mut at = end;
    let mut rest = value;
    while at >= 5 {
        at -= 2;
        text[at..at + 2].copy_from_slice(&HEX_PAIRS[(rest & 0xff) as usize]);
        rest >>= 8;
    }
    if at == 4 {
        text[3] = HEX_PAIRS[(rest & 0xf) as usize][1];
    }
    text[..3].copy_from_slice(b"\"0x");
    let len = out.len();
    out.extend_from_slice(&text);
    out.truncate(len + end + 1);
}

/// The last decimal digit of `n`, as text.
const fn digit(n: usize) -> u8 {
    b'0' + (n % 10) as u8
}

/// Every octet's decimal digits, then their count in the last byte.
const OCTETS: [[u8; 4]; 256] = {
    let mut table = [[0u8; 4]; 256];
    let mut octet = 0;
    while octet < 256 {
        table[octet] = if octet >= 100 {
            [digit(octet / 100), digit(octet / 10), digit(octet), 3]
        } else if octet >= 10 {
            [digit(octet / 10), digit(octet), 0, 2]
        } else {
            [digit(octet), 0, 0, 1]
        };
        octet += 1;
    }
    table
};

/// An IP address as serde writes it: its text in quotes (never needs escaping). IPv4 by
/// hand (`a.b.c.d`, what `Ipv4Addr`'s `Display` writes), IPv6 through `Display` (its
/// shortening rules are the standard library's).
#[inline(always)]
fn ip(value: Option<IpAddr>, out: &mut Cursor<'_>) {
    match value {
        Some(IpAddr::V4(ip)) => {
            // `"255.255.255.255"` at most: built in a fixed block from each octet's digits
            // (copied four bytes at a time, the count overwritten next), copied whole, cut.
            let mut block = [0u8; 24];
            block[0] = b'"';
            let mut end = 1;
            for (index, octet) in ip.octets().into_iter().enumerate() {
                if index > 0 {
                    block[end] = b'.';
                    end += 1;
                }
                let digits = OCTETS[usize::from(octet)];
                block[end..end + 4].copy_from_slice(&digits);
                end += usize::from(digits[3]);
            }
            block[end] = b'"';
            let len = out.len();
            out.extend_from_slice(&block);
            out.truncate(len + end + 1);
        }
        Some(ip @ IpAddr::V6(_)) => out.with_vec(|out| {
            use io::Write as _;
            // Writing into a Vec cannot fail.
            let _ = write!(out, "\"{ip}\"");
        }),
        None => out.extend_from_slice(b"null"),
    }
}

/// Journeys as JSON lines on a writer (`export --format jsonl`).
pub struct JsonLines<W: io::Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: io::Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            line: Vec::new(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: io::Write> Sink for JsonLines<W> {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        self.line.clear();
        write(journey, &mut self.line);
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }
}

/// Whether a JSON string needs an escape: a control character, `"` or `\` in it. Eight
/// bytes at a time, the tail as one more word that overlaps the last (a byte tested twice
/// changes nothing), a string shorter than a word as one word of its bytes: no loop over
/// single bytes (names are short: `lo`, `udp`, a comm).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `word` below `n` (n <= 0x80) sets its high bit here; a borrow only ever
    // spreads upwards from such a byte, so the word's answer is exact.
    let below = |word: u64, n: u64| word.wrapping_sub(ONES * n) & !word & HIGH;
    let zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
    let flags = |word: u64| {
        below(word, 0x20)
            | zero(word ^ (ONES * u64::from(b'"')))
            | zero(word ^ (ONES * u64::from(b'\\')))
    };
    let word = |bytes: &[u8]| {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        u64::from_ne_bytes(word)
    };
    let half = |bytes: &[u8]| {
        let mut half = [0u8; 4];
        half.copy_from_slice(bytes);
        u64::from(u32::from_ne_bytes(half))
    };
    let len = bytes.len();
    if len >= 8 {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            if flags(word(chunk)) != 0 {
                return true;
            }
        }
        !chunks.remainder().is_empty() && flags(word(&bytes[len - 8..])) != 0
    } else if len >= 4 {
        // The first four bytes and the last four (overlapping when fewer than eight).
        flags(half(&bytes[..4]) | half(&bytes[len - 4..]) << 32) != 0
    } else if len > 0 {
        // The first, middle and last byte (all of them, for up to three), the rest of the
        // word a letter.
        let bytes = [
            bytes[0],
            bytes[len / 2],
            bytes[len - 1],
            b'a',
            b'a',
            b'a',
            b'a',
            b'a',
        ];
        flags(u64::from_ne_bytes(bytes)) != 0
    } else {
        false
    }
}

/// A JSON string ([`escaped`]) at the cursor: copied whole when nothing in it needs an
/// escape (nearly always), else escaped through the buffer itself.
#[inline(always)]
fn text(value: &str, out: &mut Cursor<'_>) {
    let bytes = value.as_bytes();
    if needs_escape(bytes) {
        out.with_vec(|out| escaped(value, out));
    } else {
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
    }
}

/// A JSON string as serde_json writes it: `"` and `\` escaped, control characters as the
/// short escapes or `\u00XX`, everything else (UTF-8 included) as is.
fn escaped(value: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = value.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..index]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::Stage;

    /// Writes at the end of `out` through a cursor, as the record's fields are written.
    fn written(out: &mut Vec<u8>, write: impl FnOnce(&mut Cursor<'_>)) {
        let mut cursor = Cursor::new(out, 0);
        write(&mut cursor);
        cursor.finish();
    }

    fn line(journey: &Journey) -> String {
        let mut out = Vec::new();
        write(journey, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// A report of several recordings appends its members to the record, escaped.
    #[test]
    fn extra_members_end_the_object() {
        let extra = extra_members(&[("host", "we\"b-1\u{1b}"), ("recording", "a/b.trc")]);
        let mut out = Vec::new();
        write_with(&Journey::default(), &extra, &mut out);
        let out = String::from_utf8(out).unwrap();
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["host"], "we\"b-1\u{1b}");
        assert_eq!(value["recording"], "a/b.trc");
        assert_eq!(value["id"], 0);
        assert!(
            out.ends_with(r#","host":"we\"b-1\u001b","recording":"a/b.trc"}"#),
            "{out}"
        );
        let mut plain = Vec::new();
        write_with(&Journey::default(), b"", &mut plain);
        assert_eq!(plain, line(&Journey::default()).into_bytes());
    }

    #[test]
    fn same_bytes_as_serde_json() {
        let empty = Journey::default();
        let full = Journey {
            id: u64::MAX,
            dev: "eth0".into(),
            irq: Some(27),
            irq_name: Some("virtio2-input.0".into()),
            cpu_irq: Some(0),
            cpu_softirq: Some(1),
            cpu_task: Some(u16::MAX),
            cpu_stack: Some(3),
            pid: Some(4242),
            tid: Some(4243),
            comm: Some("we\"ird\\ \u{1}\u{1f}\n\t\r\u{8}\u{c} ünï €".into()),
            netns: Some(4_026_531_833),
            cgroup: Some(u64::MAX),
            cgroup_path: Some("/docker/\u{1b}[31m\"x\".scope".into()),
            proto: "udp".into(),
            family: Some("ipv6"),
            saddr: Some("::1".parse().unwrap()),
            sport: Some(40000),
            daddr: Some("10.1.2.3".parse().unwrap()),
            dport: Some(6379),
            len: 92,
            bytes: Some(-11),
            syscall: Some("recvfrom"),
            napi_batch_pos: Some(1),
            napi_work: Some(64),
            napi_budget: Some(64),
            softirq_in_ksoftirqd: true,
            gro_merged: 2,
            read_packets: 3,
            partial_read: true,
            skbaddr: Addr(0xffff8880abcd0000),
            skaddr: Some(Addr(0x1)),
            payload: Some(64),
            tcp_flags: Some(crate::journey::model::TcpFlags(0x18)),
            control: true,
            first_read: Some(8),
            reads: 2,
            woken_tid: Some(4244),
            ts: Stamps {
                irq_entry: Some(1),
                irq_exit: Some(2),
                softirq_raise: None,
                softirq_entry: Some(4),
                netif_receive: Some(5),
                sk_data_ready: Some(6),
                waking: Some(7),
                wakeup: None,
                switch_in: Some(9),
                recv_return: Some(u64::MAX),
            },
            stages_ns: StageDurations {
                irq: Some(1),
                softirq_wait: None,
                poll: Some(0),
                stack: Some(10),
                wakeup: Some(100),
                runqueue: None,
                syscall: Some(12345),
                total: Some(999_999_999_999),
            },
            complete: false,
            missing: smallvec::smallvec![
                Missing {
                    stage: Stage::SoftirqWait,
                    reason: "no \"raise\"".into(),
                },
                Missing {
                    stage: Stage::Runqueue,
                    reason: "woken while still on its CPU".into(),
                },
            ],
            drop_reason: Some("SKB_DROP_REASON_NO_SOCKET".into()),
            lost_events: true,
        };
        for journey in [&empty, &full] {
            assert_eq!(line(journey), serde_json::to_string(journey).unwrap());
        }
    }

    #[test]
    fn ipv4_addresses_as_serde_writes_them() {
        for octet in [0u8, 1, 9, 10, 11, 99, 100, 101, 199, 200, 249, 255] {
            for ip in [
                std::net::Ipv4Addr::new(octet, 0, 255, octet),
                std::net::Ipv4Addr::new(255, octet, octet, 7),
            ] {
                let mut ours = Vec::new();
                written(&mut ours, |out| super::ip(Some(IpAddr::V4(ip)), out));
                assert_eq!(ours, serde_json::to_string(&ip).unwrap().into_bytes());
            }
        }
    }

    /// Addresses of every digit count, as `Addr`'s `Display` writes them, in quotes.
    #[test]
    fn addresses_as_display_writes_them() {
        for shift in 0..64 {
            for value in [
                1u64 << shift,
                (1u64 << shift) - 1,
                u64::MAX >> shift,
                0xabcd << (shift % 48),
            ] {
                let mut ours = Vec::new();
                written(&mut ours, |out| addr(Some(Addr(value)), out));
                assert_eq!(ours, format!("\"{}\"", Addr(value)).into_bytes());
            }
        }
    }

    #[test]
    fn numbers_as_serde_writes_them() {
        let mut values: Vec<u64> = vec![0, 1, 9, 10, 99, 100, 101, 999, 1000, u64::MAX];
        for power in 0..20 {
            let ten = 10u64.pow(power);
            values.extend([ten - 1, ten, ten + 1, ten.wrapping_mul(7) / 3]);
        }
        // And a spread of every size (a multiplicative sequence through all 64 bits).
        let mut value = 1u64;
        for _ in 0..20_000 {
            value = value
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            values.extend([
                value,
                value >> (value % 64),
                value % 100_000_000,
                value % 10_000_000_000_000_000,
            ]);
        }
        for value in values {
            let mut ours = Vec::new();
            written(&mut ours, |out| decimal(value, out));
            assert_eq!(ours, value.to_string().into_bytes());
            let signed = value as i64;
            let mut ours = b"x".to_vec();
            written(&mut ours, |out| number(Some(signed), out));
            assert_eq!(ours, format!("x{signed}").into_bytes());
        }
        let mut ours = Vec::new();
        written(&mut ours, |out| number(Some(i64::MIN), out));
        assert_eq!(ours, i64::MIN.to_string().into_bytes());
    }

    #[test]
    fn every_control_character_escapes_like_serde_json() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let mut ours = Vec::new();
        escaped(&all, &mut ours);
        assert_eq!(ours, serde_json::to_string(&all).unwrap().into_bytes());
    }

    /// The word-at-a-time test agrees with the byte test for every byte at every position of
    /// a word and of the tail, beside bytes just above and below the ones that need escaping.
    #[test]
    fn needs_escape_agrees_with_the_byte_test() {
        let byte_test = |bytes: &[u8]| {
            bytes
                .iter()
                .any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
        };
        for filler in [b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
            for len in 0..20 {
                for position in 0..len {
                    for byte in 0..=u8::MAX {
                        let mut bytes = vec![filler; len];
                        bytes[position] = byte;
                        assert_eq!(needs_escape(&bytes), byte_test(&bytes), "{bytes:?}");
                    }
                }
            }
        }
    }

    /// Names with UTF-8 and escapes at every offset come out as serde_json writes them.
    #[test]
    fn long_names_escape_like_serde_json() {
        for prefix in 0..17 {
            for special in ["\"", "\\\\", "\u{1}", "\n", "\u{1f}", "é", "€", " "] {
                let name = format!(
                    "{}{special}{}",
                    "x".repeat(prefix),
                    "ünï".repeat(prefix % 3)
                );
                let mut ours = Vec::new();
                escaped(&name, &mut ours);
                assert_eq!(ours, serde_json::to_string(&name).unwrap().into_bytes());
            }
        }
    }

    #[test]
    fn records_longer_than_the_reserve_grow_mid_line() {
        // Plain names (copied at the cursor) and escaped ones (through the Vec), long
        // enough that the buffer grows in the middle of the record, after bytes that the
        // cursor wrote but the Vec did not yet count.
        for (comm, path) in [
            ("a".repeat(3000), "/".repeat(5000)),
            ("\n".repeat(1500), "p".repeat(RESERVE)),
            ("r".repeat(RESERVE - 40), "\"".repeat(700)),
        ] {
            let journey = Journey {
                id: 7,
                comm: Some(comm.into()),
                cgroup_path: Some(path.into()),
                stages_ns: StageDurations {
                    total: Some(123_456_789_012),
                    ..Default::default()
                },
                ..Default::default()
            };
            for start in [&b""[..], b"{\"before\":1}\n"] {
                let mut ours = start.to_vec();
                write(&journey, &mut ours);
                let mut expected = start.to_vec();
                expected.extend_from_slice(line(&journey).as_bytes());
                assert_eq!(ours, expected);
            }
        }
    }
}
