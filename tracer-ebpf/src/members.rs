//! Reading kernel structs in the BTF tracepoint programs (tp_btf): their arguments are
//! BTF-typed pointers (`struct sk_buff *`, `struct task_struct *`, ...), and a load at a
//! `MEMBERS` offset from one is a plain load the verifier checks against the kernel's own
//! struct (the offset is a frozen global, so it is a known constant), with no helper call.
//! The kernel turns such loads into fault-tolerant ones: a bad pointer reads as zero.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use tracer_common::{Member, NAME_LEN, abi::NO_OFFSET};

use crate::globals::member;

/// Reads the member `m` of the struct at `base` (a BTF-typed pointer); zero if BTF lacks
/// the member (then user space never loads the program that asks) or `base` is NULL.
#[inline(always)]
pub(crate) fn read<T: Copy + Default>(base: u64, m: Member) -> T {
    let off = member(m);
    if off == NO_OFFSET || base == 0 {
        return T::default();
    }
    // SAFETY: a load the verifier checks against the BTF type of `base` at this offset.
    unsafe { core::ptr::read_volatile((base + u64::from(off)) as *const T) }
}

/// Reads member `m` of a struct that `base` points into but is not typed as (an
/// `inet_sock` behind a `struct sock *`): a checked read through a helper, since the
/// verifier bounds direct loads by the pointer's own type.
#[inline(always)]
pub(crate) fn probe<T: Copy + Default>(base: u64, m: Member) -> T {
    let off = member(m);
    if off == NO_OFFSET || base == 0 {
        return T::default();
    }
    // SAFETY: a checked kernel read (bpf_probe_read_kernel), which fails instead of faulting.
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const T) }.unwrap_or_default()
}

/// Copies the 16-byte name at member `m` of the struct at `base` (a task's comm, a
/// device's name) into `dst`: two plain 8-byte loads (the verifier allows loads anywhere
/// inside a char array member), no helper call. The kernel pads both names with zeros.
#[inline(always)]
pub(crate) fn read_name(base: u64, m: Member, dst: &mut [u8; NAME_LEN]) {
    let off = member(m);
    if off == NO_OFFSET || base == 0 {
        return;
    }
    let at = base + u64::from(off);
    // SAFETY: loads the verifier checks against the BTF type of `base` at these offsets.
    let (low, high) = unsafe {
        (
            core::ptr::read_volatile(at as *const u64),
            core::ptr::read_volatile((at + 8) as *const u64),
        )
    };
    dst[..8].copy_from_slice(&low.to_le_bytes());
    dst[8..].copy_from_slice(&high.to_le_bytes());
}

/// A task's name (`task_struct.comm`, BTF-typed `task`): two plain loads, zeros without
/// the member's offset.
#[inline(always)]
pub(crate) fn task_comm(task: u64) -> [u8; NAME_LEN] {
    let mut comm = [0u8; NAME_LEN];
    read_name(task, Member::TaskComm, &mut comm);
    comm
}
