//! Per-program counters the kernel keeps in `struct bpf_prog_info`: recursion misses (since
//! Linux 5.12: runs skipped because another tracing program was already running on that
//! CPU, events lost without our LOST counter seeing them), and run time and count (with
//! `kernel.bpf_stats_enabled`).

use std::os::fd::{AsRawFd as _, BorrowedFd};

/// `BPF_OBJ_GET_INFO_BY_FD`.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The head of `struct bpf_prog_info` (include/uapi/linux/bpf.h) up to `recursion_misses`;
/// the kernel fills what it has of this prefix and nothing beyond it.
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    /// `type` .. `prog_tags`: fields not read here.
    skipped: [u64; 24],
    run_time_ns: u64,
    run_cnt: u64,
    recursion_misses: u64,
}

const _: () = assert!(core::mem::offset_of!(ProgInfoHead, run_time_ns) == 192);
const _: () = assert!(core::mem::offset_of!(ProgInfoHead, recursion_misses) == 208);

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// What the kernel counts for one program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramCounters {
    /// Runs skipped by recursion protection (0 before Linux 5.12).
    pub recursion_misses: u64,
    /// Nanoseconds spent in the program (only while `kernel.bpf_stats_enabled` is 1).
    pub run_time_ns: u64,
    /// Runs (only while `kernel.bpf_stats_enabled` is 1).
    pub run_count: u64,
}

/// What a recursion miss means for the journeys, said after a non-zero count.
pub const MISSES_MEANING: &str = "a recursion miss is a run the kernel skipped because the \
     same program was already running on that CPU (e.g. a softirq's tcp_probe interrupting \
     the one a reader's backlog processing ran): that event is missing, so its packet has no \
     complete journey, and with kernel BTF its bytes are credited to no other one";

/// `recursion misses: N (prog=n, ...)`, naming only the programs that missed runs.
pub fn misses_line(misses: &std::collections::BTreeMap<String, u64>) -> String {
    let total: u64 = misses.values().sum();
    let named: Vec<String> = misses
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| format!("{name}={n}"))
        .collect();
    if named.is_empty() {
        format!("recursion misses: {total}")
    } else {
        format!("recursion misses: {total} ({})", named.join(" "))
    }
}

/// The counters of the program behind `fd`.
pub fn program_counters(fd: BorrowedFd<'_>) -> std::io::Result<ProgramCounters> {
    let mut info = ProgInfoHead::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<ProgInfoHead>() as u32,
        info: &mut info as *mut ProgInfoHead as u64,
    };
    // SAFETY: bpf(2) writes at most info_len bytes into `info`, which lives past the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoAttr,
            size_of::<InfoAttr>() as u32,
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ProgramCounters {
        recursion_misses: info.recursion_misses,
        run_time_ns: info.run_time_ns,
        run_count: info.run_cnt,
    })
}
