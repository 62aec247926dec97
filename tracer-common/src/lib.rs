//! Records and names shared by the eBPF programs (`tracer-ebpf`) and the tracer in user space.
//!
//! - [`event`]: the [`Event`] record and the [`EventKind`] table.
//! - [`offsets`]: the tracepoint fields the programs read ([`Slot`]), located at start-up.
//! - [`members`]: the kernel struct fields the BTF tracepoint programs read ([`Member`]),
//!   located at start-up in kernel BTF.
//! - [`flow`]: the compiled flow filter ([`flow::FlowOp`]) and its evaluation, shared by
//!   both sides.
//! - [`abi`]: map, global and program names, the values exchanged through them, the
//!   traced syscalls.
//!
//! Everything crossing the boundary is `#[repr(C)]`, fixed-size and free of implicit
//! padding, so that the bytes the kernel writes into the ring buffer are exactly the bytes
//! user space reads (and the bytes a recording stores). The `user` feature adds `aya::Pod`
//! impls for user space.
#![cfg_attr(not(test), no_std)]

pub mod abi;
pub mod event;
pub mod flow;
pub mod members;
pub mod offsets;

pub use abi::{
    ANY_CPU, COPIED_SEQ_VALID, HDR_FRAGMENT, HDR_VALID, IGNORE_SLOTS, LostCounter, NET_IRQ_BITS,
    NET_IRQ_WORDS, NET_RX_SOFTIRQ,
};
pub use event::{
    EVENT_SIZE, Event, EventKind, FLAG_ADDRS, FLAG_LOST_BEFORE, FLAG_OUTSIDE_SYSCALL, FLAG_RAISE,
    KIND_COUNT, NAME_LEN,
};
pub use members::{MEMBER_COUNT, Member};
pub use offsets::{SLOT_COUNT, Slot};
