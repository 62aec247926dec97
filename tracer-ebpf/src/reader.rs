//! The reader's context at a recv-family syscall exit: its cgroup id and the inode of its
//! network namespace (`current->nsproxy->net_ns->ns.inum`, offsets from kernel BTF in the
//! `TASK_NSPROXY_OFF`, `NSPROXY_NET_NS_OFF` and `NET_NS_INUM_OFF` globals). The encoding is
//! documented on the `SysExit*` kinds of `tracer_common::EventKind`: 0 means unknown.

use aya_ebpf::helpers::{bpf_get_current_cgroup_id, bpf_get_current_task, bpf_probe_read_kernel};
use tracer_common::{Event, abi::NO_OFFSET};

use crate::globals::{NET_NS_INUM_OFF, NSPROXY_NET_NS_OFF, TASK_NSPROXY_OFF, global_u32};

/// Writes the current task's cgroup id into `addr2` and its network namespace inode into
/// `arg0`.
#[inline(always)]
pub(crate) fn fill_reader(ev: &mut Event) {
    // SAFETY: plain helper calls (cgroup v2 id of the current task; 0 without cgroup v2).
    ev.addr2 = unsafe { bpf_get_current_cgroup_id() };
    ev.arg0 = netns_inum();
}

/// The current task's network namespace inode; 0 without the offsets or on a failed read
/// (an exiting task has no nsproxy).
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
    // SAFETY: a plain helper call; the pointers below are only read through checked
    // kernel reads (bpf_probe_read_kernel), which fail instead of faulting.
    let task = unsafe { bpf_get_current_task() };
    // SAFETY: as above.
    let read_ptr = |at: u64| unsafe { bpf_probe_read_kernel(at as *const u64) }.ok();
    let Some(nsproxy) = read_ptr(task + u64::from(task_nsproxy)).filter(|&p| p != 0) else {
        return 0;
    };
    let Some(net) = read_ptr(nsproxy + u64::from(nsproxy_net)).filter(|&p| p != 0) else {
        return 0;
    };
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel((net + u64::from(net_inum)) as *const u32) }.unwrap_or(0)
}
