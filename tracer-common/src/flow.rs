//! The compiled flow filter the kernel evaluates on each packet's 5-tuple: a short postfix
//! program of [`FlowOp`]s in the `FLOW_OPS` global (length `FLOW_LEN`; 0 = no filter).
//!
//! Each test pushes one bit onto a bit stack; `AND`/`OR` pop two and push one, `NOT` flips
//! the top. The packet is selected when the top bit is 1 at the end. User space compiles
//! a tcpdump-style expression into this form (`tracer::flow`) and checks the program's
//! stack depth, so the kernel side needs no checks beyond the fixed loop bound.

/// Most operations a compiled filter may hold.
pub const MAX_FLOW_OPS: usize = 48;

/// Deepest bit stack a compiled filter may need (the stack is one `u64`).
pub const MAX_FLOW_DEPTH: usize = 63;

/// [`FlowOp::code`] values.
pub mod code {
    /// Push whether the IP protocol (6 TCP, 17 UDP, ...) equals `lo`.
    pub const PROTO: u8 = 1;
    /// Push whether the IP version (4 or 6) equals `lo`.
    pub const VERSION: u8 = 2;
    /// Push whether the address named by `dir` masked by `mask` equals `addr`, for packets of
    /// IP version `lo` (IPv4 addresses in the first 4 bytes).
    pub const ADDR: u8 = 3;
    /// Push whether the TCP/UDP port named by `dir` lies in `lo..=hi` (false without ports).
    pub const PORT: u8 = 4;
    /// Pop two bits, push their conjunction.
    pub const AND: u8 = 5;
    /// Pop two bits, push their disjunction.
    pub const OR: u8 = 6;
    /// Flip the top bit.
    pub const NOT: u8 = 7;
    /// Push 1.
    pub const TRUE: u8 = 8;
}

/// [`FlowOp::dir`] values: which end of the packet a test looks at.
pub mod dir {
    /// The packet's source (the peer, for a received packet).
    pub const SRC: u8 = 0;
    /// The packet's destination (this host).
    pub const DST: u8 = 1;
}

/// One operation of a compiled flow filter.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowOp {
    /// A [`code`] value; 0 ends the program early.
    pub code: u8,
    /// A [`dir`] value for `ADDR` and `PORT`.
    pub dir: u8,
    /// Unused, zero.
    pub pad: u16,
    /// First operand: protocol, version, port range start.
    pub lo: u32,
    /// Second operand: port range end.
    pub hi: u32,
    /// Unused, zero (keeps `addr` 8-aligned).
    pub pad2: u32,
    /// Address to compare with, already masked: the 16 address bytes (network order, IPv4
    /// in the first 4) as two native-endian words, like [`FlowTuple::saddr`].
    pub addr: [u64; 2],
    /// Mask applied to the packet's address before comparing, as `addr`.
    pub mask: [u64; 2],
}

impl FlowOp {
    /// The empty operation (code 0).
    pub const ZERO: FlowOp = FlowOp {
        code: 0,
        dir: 0,
        pad: 0,
        lo: 0,
        hi: 0,
        pad2: 0,
        addr: [0; 2],
        mask: [0; 2],
    };
}

const _: () = assert!(core::mem::size_of::<FlowOp>() == 48);

/// The 16 bytes of an address (IPv4 in the first 4) as the two words [`FlowOp`] and
/// [`FlowTuple`] hold.
pub const fn words(bytes: &[u8; 16]) -> [u64; 2] {
    let mut low = [0u8; 8];
    let mut high = [0u8; 8];
    let mut i = 0;
    while i < 8 {
        low[i] = bytes[i];
        high[i] = bytes[i + 8];
        i += 1;
    }
    [u64::from_ne_bytes(low), u64::from_ne_bytes(high)]
}

/// The 5-tuple a flow filter sees: from the packet's own headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowTuple {
    /// IP version (4 or 6); 0 when the headers could not be read.
    pub version: u8,
    /// IP protocol.
    pub proto: u8,
    /// Whether the packet has ports (TCP or UDP).
    pub has_ports: bool,
    /// Source port (TCP/UDP), else 0.
    pub sport: u16,
    /// Destination port (TCP/UDP), else 0.
    pub dport: u16,
    /// Source address ([`words`]).
    pub saddr: [u64; 2],
    /// Destination address ([`words`]).
    pub daddr: [u64; 2],
}

/// Where a compiled program is read from: a slice in user space, the `FLOW_OPS` global in
/// the kernel (volatile field reads: no copy of an operation on the small BPF stack).
pub trait FlowOps {
    /// Number of operations.
    fn count(&self) -> usize;
    /// Operation `i`'s code.
    fn code(&self, i: usize) -> u8;
    /// Operation `i`'s direction.
    fn dir(&self, i: usize) -> u8;
    /// Operation `i`'s first operand.
    fn lo(&self, i: usize) -> u32;
    /// Operation `i`'s second operand.
    fn hi(&self, i: usize) -> u32;
    /// Word `w` (0 or 1) of operation `i`'s address.
    fn addr(&self, i: usize, w: usize) -> u64;
    /// Word `w` (0 or 1) of operation `i`'s mask.
    fn mask(&self, i: usize, w: usize) -> u64;
}

impl FlowOps for [FlowOp] {
    fn count(&self) -> usize {
        self.len()
    }
    fn code(&self, i: usize) -> u8 {
        self[i].code
    }
    fn dir(&self, i: usize) -> u8 {
        self[i].dir
    }
    fn lo(&self, i: usize) -> u32 {
        self[i].lo
    }
    fn hi(&self, i: usize) -> u32 {
        self[i].hi
    }
    fn addr(&self, i: usize, w: usize) -> u64 {
        self[i].addr[w & 1]
    }
    fn mask(&self, i: usize, w: usize) -> u64 {
        self[i].mask[w & 1]
    }
}

/// Result of test `i` on a tuple.
#[inline(always)]
fn test<O: FlowOps + ?Sized>(ops: &O, i: usize, tuple: &FlowTuple) -> bool {
    let src = ops.dir(i) == dir::SRC;
    match ops.code(i) {
        code::PROTO => tuple.version != 0 && u32::from(tuple.proto) == ops.lo(i),
        code::VERSION => u32::from(tuple.version) == ops.lo(i),
        code::ADDR => {
            let addr = if src { &tuple.saddr } else { &tuple.daddr };
            u32::from(tuple.version) == ops.lo(i)
                && addr[0] & ops.mask(i, 0) == ops.addr(i, 0)
                && addr[1] & ops.mask(i, 1) == ops.addr(i, 1)
        }
        code::PORT => {
            let port = u32::from(if src { tuple.sport } else { tuple.dport });
            tuple.has_ports && port >= ops.lo(i) && port <= ops.hi(i)
        }
        code::TRUE => true,
        _ => false,
    }
}

/// Runs a compiled program on a tuple: the bit stack evaluation both sides share, over at
/// most [`MAX_FLOW_OPS`] operations (a bound the verifier can see).
#[inline(always)]
pub fn eval<O: FlowOps + ?Sized>(ops: &O, tuple: &FlowTuple) -> bool {
    let len = ops.count();
    let mut stack: u64 = 0;
    for i in 0..MAX_FLOW_OPS {
        if i >= len {
            break;
        }
        match ops.code(i) {
            0 => break,
            code::AND => stack = (stack >> 2) << 1 | (stack & (stack >> 1) & 1),
            code::OR => stack = (stack >> 2) << 1 | ((stack | (stack >> 1)) & 1),
            code::NOT => stack ^= 1,
            _ => stack = stack << 1 | u64::from(test(ops, i, tuple)),
        }
    }
    stack & 1 != 0
}

#[cfg(feature = "user")]
// SAFETY: FlowOp is repr(C), has no padding (explicit pad fields) and every bit pattern is
// valid.
unsafe impl aya::Pod for FlowOp {}
