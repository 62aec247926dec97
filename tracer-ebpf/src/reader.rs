//! The reader's context at a recv-family syscall exit: its cgroup id and the inode of its
//! network namespace (`current->nsproxy->net_ns->ns.inum`, offsets from kernel BTF in the
//! `TASK_NSPROXY_OFF`, `NSPROXY_NET_NS_OFF` and `NET_NS_INUM_OFF` globals). The encoding is
//! documented on the `SysExit*` kinds of `tracer_common::EventKind`: 0 means unknown.

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, generated::bpf_get_current_task_btf,
};
use tracer_common::{Event, Member, NAME_LEN, abi::NO_OFFSET};

use crate::{
    globals::{NET_NS_INUM_OFF, NSPROXY_NET_NS_OFF, TASK_NSPROXY_OFF, global_u32, member},
    members::task_comm,
};

/// Writes the current task's cgroup id into `addr2` and its network namespace inode into
/// `arg0`.
#[inline(always)]
pub(crate) fn fill_reader(ev: &mut Event) {
    // SAFETY: plain helper calls (cgroup v2 id of the current task; 0 without cgroup v2).
    ev.addr2 = unsafe { bpf_get_current_cgroup_id() };
    ev.arg0 = netns_inum();
}

/// The current task's network namespace inode; 0 without the offsets. Three plain loads
/// from the BTF-typed current task (`bpf_get_current_task_btf`), which the verifier checks
/// against the kernel's structs (the offsets are frozen globals, so known constants) and
/// the kernel makes fault-tolerant: a NULL `nsproxy` (an exiting task) reads as zero. Three
/// `bpf_probe_read_kernel` calls before.
#[inline(always)]
fn netns_inum() -> u32 {
    let (task_nsproxy, nsproxy_net, net_inum) = (
        global_u32(&TASK_NSPROXY_OFF),
        global_u32(&NSPROXY_NET_NS_OFF),
        global_u32(&NET_NS_INUM_OFF),
    );
    if task_nsproxy == NO_OFFSET || nsproxy_net == NO_OFFSET || net_inum == NO_OFFSET {
        return 0;
    }
    // SAFETY: a plain helper call; it returns the current task, never NULL.
    let task = unsafe { bpf_get_current_task_btf() } as u64;
    // SAFETY: loads the verifier checks against the BTF type of each base at these offsets.
    let load_ptr = |at: u64| unsafe { core::ptr::read_volatile(at as *const u64) };
    let nsproxy = load_ptr(task + u64::from(task_nsproxy));
    if nsproxy == 0 {
        return 0;
    }
    let net = load_ptr(nsproxy + u64::from(nsproxy_net));
    if net == 0 {
        return 0;
    }
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile((net + u64::from(net_inum)) as *const u32) }
}

/// The current task's name: two plain loads of `task_struct.comm` from the BTF-typed current
/// task where BTF gave its offset, else `bpf_get_current_comm` (a helper that copies and
/// pads byte by byte: about 30 ns more per read here).
#[inline(always)]
pub(crate) fn current_comm() -> [u8; NAME_LEN] {
    if member(Member::TaskComm) == NO_OFFSET {
        return bpf_get_current_comm().unwrap_or_default();
    }
    // SAFETY: a plain helper call; it returns the current task, never NULL.
    task_comm(unsafe { bpf_get_current_task_btf() } as u64)
}
