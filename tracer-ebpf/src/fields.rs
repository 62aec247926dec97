//! Reading tracepoint record fields at the offsets user space found for this kernel
//! (`OFFSETS`, indexed by `tracer_common::Slot`).

use aya_ebpf::{
    EbpfContext as _, helpers::bpf_probe_read_kernel_str_bytes, programs::TracePointContext,
};
use aya_log_ebpf::debug;
use tracer_common::{NAME_LEN, Slot, offsets::ABSENT};

use crate::globals::offset;

/// Reads an integer field, or zero if the field is absent on this kernel or unreadable.
#[inline(always)]
pub(crate) fn field<T: Copy + Default>(ctx: &TracePointContext, slot: Slot) -> T {
    let off = offset(slot);
    if off == ABSENT {
        return T::default();
    }
    // SAFETY: the offset comes from this kernel's format file for this tracepoint.
    unsafe { ctx.read_at::<T>(off as usize) }.unwrap_or_default()
}

/// Copies a `__data_loc char[]` field (device name) into `dst`.
#[inline(always)]
pub(crate) fn data_loc_str(ctx: &TracePointContext, slot: Slot, dst: &mut [u8; NAME_LEN]) {
    let loc: u32 = field(ctx, slot);
    let src = ctx.as_ptr() as usize + (loc & 0xffff) as usize;
    // SAFETY: the helper bounds the copy by dst's length and checks the source.
    if let Err(err) = unsafe { bpf_probe_read_kernel_str_bytes(src as *const u8, dst) } {
        debug!(ctx, "reading a __data_loc string failed: {}", err);
    }
}
