//! The consumer side of the kernel's BPF ring buffer, read in place from its mapped pages:
//! every record available is handed over where it lies, and our position is published once
//! per pass (and every eighth of the ring) instead of once per record, so the producer's CPU
//! does not fetch the cache line holding it back for every event it reserves.
//!
//! Layout (kernel/bpf/ringbuf.c, as libbpf maps it): page 0 holds the consumer position (ours
//! to write), page 1 the producer position, then the data pages, mapped twice in a row so a
//! record that wraps around the end reads as one slice. A record is an 8-byte header (its
//! length, a busy bit while the producer writes it, a discard bit) and its bytes, padded to 8.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence},
};

use aya::maps::MapData;

/// Set in a record's length while the producer still writes it.
const BUSY_BIT: u32 = 1 << 31;
/// Set in a record's length when the producer gave it up (bpf_ringbuf_discard).
const DISCARD_BIT: u32 = 1 << 30;
/// A record's header: its length word and the producer's page offset.
const HEADER: usize = 8;

/// Why the ring buffer could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("reading the ring buffer's size: {0}")]
    Info(#[from] aya::maps::MapError),
    #[error("the ring buffer's size {0} is not a power of two of at least a page")]
    Size(usize),
    #[error("mapping the ring buffer: {0}")]
    Map(#[from] io::Error),
}

impl From<RingError> for io::Error {
    fn from(err: RingError) -> Self {
        match err {
            RingError::Map(err) => err,
            other => io::Error::other(other),
        }
    }
}

/// The ring buffer's pages mapped into this process, read as the consumer.
pub struct RingConsumer {
    /// Owns the map's fd (epoll watches it); the mappings outlive nothing of it.
    map: MapData,
    /// Page 0: the consumer position.
    consumer: Mapping,
    /// The producer position's page, then the data pages twice.
    producer: Mapping,
    page: usize,
    /// The data's size minus one (a power of two).
    mask: usize,
    /// Our position: where the next record starts (a byte count, taken modulo the size).
    pos: usize,
}

impl RingConsumer {
    /// Maps the ring buffer `map` (a `BPF_MAP_TYPE_RINGBUF`) and starts at the position the
    /// kernel holds for its consumer.
    pub fn new(map: MapData) -> Result<Self, RingError> {
        let size = map.info()?.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        if !size.is_power_of_two() || size < page {
            return Err(RingError::Size(size));
        }
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + 2 * size, libc::PROT_READ, page)?;
        let mut ring = Self {
            map,
            consumer,
            producer,
            page,
            mask: size - 1,
            pos: 0,
        };
        ring.pos = ring.consumer_pos().load(Ordering::Acquire);
        Ok(ring)
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: the consumer page is page-aligned, at least a word long, lives as long as
        // `self`, and the kernel and we only ever access its first word atomically.
        unsafe { AtomicUsize::from_ptr(self.consumer.ptr.as_ptr().cast()) }
    }

    fn producer_pos(&self) -> &AtomicUsize {
        // SAFETY: as for the consumer page; the kernel writes this word atomically.
        unsafe { AtomicUsize::from_ptr(self.producer.ptr.as_ptr().cast()) }
    }

    /// Hands the records available now to `each`, in place, until the producer's position
    /// (read again after each pass) is reached, a record is still being written, or about
    /// `budget` bytes were taken (whole records: the last may run past it).
    pub fn drain(&mut self, budget: usize, each: &mut impl FnMut(&[u8])) -> Drained {
        // SAFETY: the data pages follow the producer page in its mapping, twice the ring's
        // size long, and live as long as `self`.
        let data = unsafe {
            Records::new(
                self.producer.ptr.as_ptr().add(self.page),
                2 * (self.mask + 1),
            )
        };
        let mut drained = Drained::default();
        let mut taken = 0usize;
        loop {
            let producer = self.producer_pos().load(Ordering::Acquire);
            let start = self.pos;
            let consumer = self.consumer_pos();
            let pass = data.take(
                self.mask,
                start,
                producer,
                budget.saturating_sub(taken),
                each,
                |pos| consumer.store(pos, Ordering::Release),
            );
            drained.records += pass.records;
            self.pos = pass.pos;
            if pass.pos == start {
                return drained;
            }
            taken += pass.pos.wrapping_sub(start);
            self.consumer_pos().store(pass.pos, Ordering::Release);
            // Why: the kernel writes its position and then reads ours to decide on a wakeup;
            // we write ours and then read its. Without a full fence both could read the old
            // value: it would not wake us and we would not see its record.
            fence(Ordering::SeqCst);
            if pass.busy {
                return drained;
            }
            if taken >= budget {
                drained.more = true;
                return drained;
            }
        }
    }
}

/// What one [`RingConsumer::drain`] took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Records handed over.
    pub records: usize,
    /// It stopped at its byte budget: records may be waiting still, and no wakeup will
    /// announce the ones already there.
    pub more: bool,
}

impl AsRawFd for RingConsumer {
    fn as_raw_fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }
}

/// What one pass over the records took.
#[derive(Debug, PartialEq, Eq)]
struct Pass {
    /// The position after the last record taken.
    pos: usize,
    /// Records handed over (discarded ones are skipped, not counted).
    records: usize,
    /// Whether it stopped at a record still being written (or one that cannot be right).
    busy: bool,
}

/// The data pages as the consumer reads them: twice the ring's size, so a record never wraps.
struct Records {
    start: *const u8,
    len: usize,
}

impl Records {
    /// # Safety
    /// `start` must be 8-byte aligned and `len` bytes readable for as long as the value
    /// lives; 4-byte words at 8-aligned offsets are only written atomically by others.
    unsafe fn new(start: *const u8, len: usize) -> Self {
        Self { start, len }
    }

    /// Hands each record from `from` up to `to` (positions) to `each`, stopping after the
    /// record that takes it `budget` bytes or more past `from`; `publish` is given the
    /// position after every eighth of the ring, so the producer gets space back during a
    /// long pass.
    fn take(
        &self,
        mask: usize,
        from: usize,
        to: usize,
        budget: usize,
        each: &mut impl FnMut(&[u8]),
        mut publish: impl FnMut(usize),
    ) -> Pass {
        let mut pos = from;
        let mut published = from;
        let mut records = 0;
        while pos != to {
            let offset = pos & mask;
            // SAFETY: `offset` is below the ring's size (half of `len`) and 8-aligned (every
            // record is padded to 8); the header word is written atomically by the producer.
            let header = unsafe { AtomicU32::from_ptr(self.start.add(offset).cast_mut().cast()) }
                .load(Ordering::Acquire);
            if header & BUSY_BIT != 0 {
                return Pass {
                    pos,
                    records,
                    busy: true,
                };
            }
            let len = (header & !(BUSY_BIT | DISCARD_BIT)) as usize;
            let size = (HEADER + len).next_multiple_of(8);
            if size > to.wrapping_sub(pos) {
                // A record past the producer's position: never written so by the kernel;
                // stop here rather than run on.
                return Pass {
                    pos,
                    records,
                    busy: true,
                };
            }
            let body = offset + HEADER;
            if header & DISCARD_BIT == 0 && body + len <= self.len {
                // SAFETY: within the mapping (checked above); the record is committed (the
                // acquire load saw its busy bit clear), so the producer no longer writes it,
                // and it is not reused before we publish a position past it.
                each(unsafe { std::slice::from_raw_parts(self.start.add(body), len) });
                records += 1;
            }
            pos = pos.wrapping_add(size);
            if pos.wrapping_sub(from) >= budget {
                break;
            }
            if pos.wrapping_sub(published) > mask / 8 {
                publish(pos);
                published = pos;
            }
        }
        Pass {
            pos,
            records,
            busy: false,
        }
    }
}

/// One `mmap` of the ring buffer's fd, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is memory owned by this value; nothing in it is tied to a thread.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: libc::c_int, offset: usize) -> io::Result<Self> {
        let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
        // SAFETY: a fresh shared mapping of the map's fd at an address the kernel picks; the
        // kernel checks the length, protection and offset against the ring buffer.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; nothing borrows it past `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of 128 bytes (mapped twice: 256) built by hand as the kernel lays it out.
    struct Fake {
        words: Vec<u64>,
    }

    impl Fake {
        const SIZE: usize = 128;

        fn new() -> Self {
            Self {
                words: vec![0; 2 * Self::SIZE / 8],
            }
        }

        /// Writes a record at `pos` (both copies of the data) with this header flag.
        fn record(&mut self, pos: usize, body: &[u8], flags: u32) -> usize {
            let bytes: &mut [u8] = bytemuck_bytes(&mut self.words);
            let mut write = |at: usize, value: u8| {
                let at = at % Self::SIZE;
                bytes[at] = value;
                bytes[at + Self::SIZE] = value;
            };
            let header = (body.len() as u32 | flags).to_ne_bytes();
            for (index, byte) in header.iter().chain(&[0; 4]).enumerate() {
                write(pos + index, *byte);
            }
            for (index, byte) in body.iter().enumerate() {
                write(pos + HEADER + index, *byte);
            }
            pos + (HEADER + body.len()).next_multiple_of(8)
        }

        fn take(&self, from: usize, to: usize) -> (Pass, Vec<Vec<u8>>, Vec<usize>) {
            self.take_budget(from, to, usize::MAX)
        }

        fn take_budget(
            &self,
            from: usize,
            to: usize,
            budget: usize,
        ) -> (Pass, Vec<Vec<u8>>, Vec<usize>) {
            // SAFETY: the vector is 8-aligned, twice the size long and outlives `records`.
            let records = unsafe { Records::new(self.words.as_ptr().cast(), 2 * Self::SIZE) };
            let mut seen = Vec::new();
            let mut published = Vec::new();
            let pass = records.take(
                Self::SIZE - 1,
                from,
                to,
                budget,
                &mut |bytes: &[u8]| seen.push(bytes.to_vec()),
                |pos| published.push(pos),
            );
            (pass, seen, published)
        }
    }

    fn bytemuck_bytes(words: &mut [u64]) -> &mut [u8] {
        // SAFETY: u64 has no padding and any byte pattern is valid for u8.
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) }
    }

    #[test]
    fn records_in_order_across_the_wrap_skipping_discarded_ones() {
        let mut ring = Fake::new();
        // Start near the end: the first record straddles the end, the next ones wrap.
        let start = 112;
        let second = ring.record(start, b"abcdefghijkl", 0);
        let third = ring.record(second, b"gone", DISCARD_BIT);
        let fourth = ring.record(third, b"0123456789ab", 0);
        let end = ring.record(fourth, b"z", 0);
        let (pass, seen, published) = ring.take(start, end);
        assert_eq!(
            pass,
            Pass {
                pos: end,
                records: 3,
                busy: false
            }
        );
        assert_eq!(
            seen,
            [
                b"abcdefghijkl".to_vec(),
                b"0123456789ab".to_vec(),
                b"z".to_vec()
            ]
        );
        assert!(published.iter().all(|&pos| pos > start && pos <= end));
    }

    #[test]
    fn stops_at_a_record_still_written() {
        let mut ring = Fake::new();
        let second = ring.record(0, b"done", 0);
        let third = ring.record(second, b"busy", BUSY_BIT);
        let (pass, seen, _) = ring.take(0, third);
        assert_eq!(
            pass,
            Pass {
                pos: second,
                records: 1,
                busy: true
            }
        );
        assert_eq!(seen, [b"done".to_vec()]);
        let (pass, seen, _) = ring.take(second, third);
        assert_eq!((pass.pos, pass.records, pass.busy), (second, 0, true));
        assert!(seen.is_empty());
    }

    #[test]
    fn a_length_beyond_the_mapping_is_skipped_not_read() {
        let mut ring = Fake::new();
        let bogus = ring.record(0, b"x", 0);
        // A header claiming 300 bytes: past the double mapping.
        bytemuck_bytes(&mut ring.words)[bogus..bogus + 4].copy_from_slice(&300u32.to_ne_bytes());
        let (pass, seen, _) = ring.take(0, bogus + 312);
        assert_eq!(seen, [b"x".to_vec()]);
        assert_eq!(pass.pos, bogus + 312);
    }

    #[test]
    fn a_record_past_the_producer_position_stops_the_pass() {
        let mut ring = Fake::new();
        let second = ring.record(0, b"x", 0);
        let end = ring.record(second, b"0123456789abcdef", 0);
        let (pass, seen, _) = ring.take(0, end - 8);
        assert_eq!(
            pass,
            Pass {
                pos: second,
                records: 1,
                busy: true
            }
        );
        assert_eq!(seen, [b"x".to_vec()]);
    }

    #[test]
    fn a_budget_stops_after_the_record_that_reaches_it() {
        let mut ring = Fake::new();
        let second = ring.record(0, b"0123456789ab", 0); // 24 bytes with its header
        let third = ring.record(second, b"x", 0);
        let end = ring.record(third, b"y", 0);
        // 20 bytes: the first record (24) reaches it, and the pass stops there.
        let (pass, seen, _) = ring.take_budget(0, end, 20);
        assert_eq!(
            pass,
            Pass {
                pos: second,
                records: 1,
                busy: false
            }
        );
        assert_eq!(seen, [b"0123456789ab".to_vec()]);
        // The rest, from where it stopped, in a budget that covers both.
        let (pass, seen, _) = ring.take_budget(second, end, end - second);
        assert_eq!((pass.pos, pass.records), (end, 2));
        assert_eq!(seen, [b"x".to_vec(), b"y".to_vec()]);
    }
}
