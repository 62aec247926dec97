//! `tracer doctor`: what this host can trace, what it cannot, and which journey stages that
//! costs. Exit status 0: full journeys; 1: degraded; 2: nothing can run.

use clap::Args;
use serde_json::json;
use tracer::{
    host::{
        caps,
        tracefs::{self, FormatDir, Layout},
    },
    probe::{ProbeOptions, Probes},
};
use tracer_common::EventKind;

/// Options of `tracer doctor`.
#[derive(Clone, Debug, Args)]
pub struct DoctorArgs {
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Pretend this tracepoint is missing (`category:name` or `name`); repeatable.
    #[arg(long, value_name = "TRACEPOINT", value_parser = super::tracepoint_arg)]
    pub without: Vec<String>,
}

/// What a tracepoint's absence costs the journeys.
pub fn impact(kind: EventKind) -> &'static str {
    use EventKind as K;
    match kind {
        K::IrqHandlerEntry | K::IrqHandlerExit => "no irq stage (NIC hard interrupts)",
        K::SoftirqRaise => "softirq_wait starts at the IRQ exit only",
        K::SoftirqEntry | K::SoftirqExit => "no softirq_wait and poll stages",
        K::NapiPoll => "no NAPI batch fields (napi_batch_pos, napi_work, napi_budget)",
        K::NetifReceiveSkb => "no journeys at all: packets are not seen",
        K::NetifRx => "none (context only)",
        K::NapiGroReceiveEntry => "no GRO merge counts and no RPS CPU hop",
        K::SkDataReady => {
            "no stack end and no wakeup stage; packets link to readers through their wakeup"
        }
        K::SchedWaking => "no wakeup and runqueue stages",
        K::SchedWakeup => "no ts.wakeup stamp",
        K::SchedSwitch => "no runqueue and syscall stages",
        K::SkbCopyDatagramIovec => "none (fallback link only)",
        K::TcpProbe => {
            "TCP segments processed from the socket backlog are not linked to their socket"
        }
        K::TcpDestroySock => "data left unread on a closed TCP socket stays open until the end",
        K::TcpRcvSpaceAdjust => {
            "TCP bytes taken by splice() or sendfile() are credited to the next read, or to none"
        }
        K::KfreeSkb => "drops are not seen: dropped packets end as never read",
        K::ConsumeSkb => "packets consumed by the stack stay open until the skb is reused",
        K::SockRecvLength => {
            "reads link through the socket's reader and the syscall exit (fallback)"
        }
        K::SysEnterRecvfrom
        | K::SysEnterRecvmsg
        | K::SysEnterRecvmmsg
        | K::SysEnterRead
        | K::SysEnterReadv => "readers blocked in this call are not seen as readers",
        K::SysExitRecvfrom
        | K::SysExitRecvmsg
        | K::SysExitRecvmmsg
        | K::SysExitRead
        | K::SysExitReadv => "journeys read by this call never reach recv return",
    }
}

/// How a tracepoint that did not fail attaches: as a BTF tracepoint, or classic and why;
/// `from_regs`: journeys read syscall entries from the task's registers.
fn attach_form(
    kind: EventKind,
    btf: &[EventKind],
    classic: &[(EventKind, String)],
    attached: &[EventKind],
    from_regs: bool,
) -> String {
    if btf.contains(&kind) && kind.tracepoint().0 == "syscalls" && from_regs {
        "attaches through raw_syscalls:sys_exit as a BTF tracepoint (tp_btf); journeys read \
         the entry from the task's saved registers (raw_syscalls:sys_enter only for tracer \
         events or --syscall-entry-marks)"
            .to_owned()
    } else if btf.contains(&kind) && kind.tracepoint().0 == "syscalls" {
        "attaches through raw_syscalls:sys_enter/sys_exit as BTF tracepoints (tp_btf)".to_owned()
    } else if btf.contains(&kind) {
        "attaches as a BTF tracepoint (tp_btf)".to_owned()
    } else if let Some((_, why)) = classic.iter().find(|(k, _)| *k == kind) {
        format!("attaches as a classic tracepoint ({why})")
    } else if !attached.contains(&kind) {
        "attaches; journeys do not use it (tracer events does)".to_owned()
    } else {
        "attaches as a classic tracepoint".to_owned()
    }
}

/// Whether a journey can exist at all without this tracepoint.
fn essential(kind: EventKind) -> bool {
    kind == EventKind::NetifReceiveSkb
}

/// What names a journey's reader: its network namespace (kernel BTF offsets) and its cgroup
/// (cgroup v2, for the path), as (check, level, detail) rows.
fn reader_checks() -> Vec<(&'static str, u8, String)> {
    use tracer::host::{btf::StructOffsets, cgroup};
    let netns = match StructOffsets::from_kernel() {
        Ok(offsets) if offsets.has_netns() => (
            0,
            format!(
                "task_struct.nsproxy at {}, nsproxy.net_ns at {}, net.ns.inum at {}: journeys \
                 carry the reader's network namespace (netns)",
                offsets.task_nsproxy.unwrap_or_default(),
                offsets.nsproxy_net_ns.unwrap_or_default(),
                offsets.net_ns_inum.unwrap_or_default(),
            ),
        ),
        Ok(_) => (
            1,
            "BTF lacks task_struct.nsproxy, nsproxy.net_ns or net.ns.inum: netns is null"
                .to_owned(),
        ),
        Err(err) => (1, format!("{err}: netns is null")),
    };
    let cgroup = match cgroup::cgroup2_mount() {
        Some(root) => (
            0,
            format!(
                "cgroup2 at {}: journeys carry the reader's cgroup id and its path (cgroup_path)",
                root.display()
            ),
        ),
        None => (
            1,
            "no cgroup2 mount: journeys carry the reader's cgroup id (of the v2 hierarchy the \
             kernel keeps anyway) but no cgroup_path"
                .to_owned(),
        ),
    };
    vec![
        ("BTF reader netns", netns.0, netns.1),
        ("cgroup v2", cgroup.0, cgroup.1),
    ]
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<u8> {
    let mut rows: Vec<(String, &'static str, String)> = Vec::new(); // (check, status, detail)
    let mut worst = 0u8;
    let mut mark =
        |rows: &mut Vec<(String, &'static str, String)>, check: &str, level: u8, detail: String| {
            worst = worst.max(level);
            let status = ["ok", "degraded", "FAIL"][level as usize];
            rows.push((check.to_owned(), status, detail));
        };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    mark(&mut rows, "kernel", 0, kernel.trim().to_owned());
    // Kernel BTF gives the struct offsets for packet headers and TCP read points.
    match tracer::host::btf::StructOffsets::from_kernel() {
        Ok(offsets) if offsets.skb_data.is_some() && offsets.tcp_copied_seq.is_some() => mark(
            &mut rows,
            "BTF",
            0,
            format!(
                "present ({}): packet headers (flows, protocol, TCP flags, payload, sequence \
                 numbers, filter expressions in the kernel) and TCP read points \
                 (tcp_sock.copied_seq); sk_buff.data at {}, copied_seq at {}",
                tracer::host::btf::VMLINUX,
                offsets.skb_data.unwrap_or_default(),
                offsets.tcp_copied_seq.unwrap_or_default(),
            ),
        ),
        Ok(offsets) => mark(
            &mut rows,
            "BTF",
            1,
            format!(
                "present, but without {}",
                if offsets.skb_data.is_none() {
                    "sk_buff.data: no flows (addresses, ports), no filter expressions, TCP \
                     journeys follow byte counts (docs/tcp.md)"
                } else {
                    "tcp_sock.copied_seq: TCP journeys follow byte counts (docs/tcp.md)"
                }
            ),
        ),
        Err(err) => mark(
            &mut rows,
            "BTF",
            1,
            format!(
                "{err}: no packet headers (no flows, no filter expressions) and no TCP read \
                 points; TCP journeys follow byte counts (docs/tcp.md); tracepoint offsets \
                 still come from tracefs"
            ),
        ),
    }
    for (check, level, detail) in reader_checks() {
        mark(&mut rows, check, level, detail);
    }
    let permission = caps::check();
    match &permission {
        Ok(()) => mark(
            &mut rows,
            "capabilities",
            0,
            "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)".to_owned(),
        ),
        Err(why) => mark(&mut rows, "capabilities", 2, why.clone()),
    }
    let mut memlock = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut memlock) };
    let memlock = if memlock.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".to_owned()
    } else {
        format!(
            "{} KiB (kernels 5.11+ charge BPF memory to the cgroup instead)",
            memlock.rlim_cur / 1024
        )
    };
    mark(&mut rows, "memlock", 0, memlock);
    let tracefs = tracefs::ensure_mounted();
    let root = match &tracefs {
        Ok(found) => {
            let how = if found.mounted_here {
                "was not mounted: mounted by tracer with mount(2) for this run, unmounted at exit"
            } else {
                "mounted"
            };
            mark(
                &mut rows,
                "tracefs",
                0,
                format!("{} ({how})", found.root.display()),
            );
            Some(found.root.clone())
        }
        Err(err) => {
            mark(&mut rows, "tracefs", 2, err.to_string());
            None
        }
    };
    let mut tracepoints = Vec::new();
    if let Some(root) = root {
        let layout = Layout::resolve(&FormatDir(root), &args.without)?;
        // Loading and attaching is the real test (ring buffer, verifier, perf events).
        let attached = if permission.is_ok() {
            let options = ProbeOptions {
                journey_mode: true,
                without: args.without.clone(),
                ..ProbeOptions::default()
            };
            match Probes::load(&options) {
                Ok(mut probes) => {
                    mark(
                        &mut rows,
                        "eBPF load, ring buffer",
                        0,
                        format!("{} programs attached", probes.attached.len()),
                    );
                    Some((
                        std::mem::take(&mut probes.skipped),
                        std::mem::take(&mut probes.btf_attached),
                        std::mem::take(&mut probes.classic_why),
                        std::mem::take(&mut probes.attached),
                        probes.syscall_from_regs,
                    ))
                }
                Err(err) => {
                    mark(&mut rows, "eBPF load, ring buffer", 2, err.to_string());
                    None
                }
            }
        } else {
            None
        };
        for kind in EventKind::ALL {
            let (category, name) = kind.tracepoint();
            let why = match &attached {
                Some((skipped, ..)) => skipped
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, why)| why.clone()),
                None => layout
                    .unavailable
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, why)| why.to_string()),
            };
            let level = match &why {
                None => 0,
                Some(_) if essential(kind) => 2,
                Some(_) => 1,
            };
            let detail = match (&why, &attached) {
                (Some(why), _) => format!("{why}; {}", impact(kind)),
                (None, Some((_, btf, classic, all, from_regs))) => {
                    attach_form(kind, btf, classic, all, *from_regs)
                }
                (None, None) => "attaches".to_owned(),
            };
            tracepoints.push(json!({"tracepoint": format!("{category}:{name}"), "ok": why.is_none(), "detail": detail}));
            mark(&mut rows, &format!("{category}:{name}"), level, detail);
        }
    }
    let verdict = [
        "full journeys",
        "degraded journeys (see above)",
        "nothing can be traced",
    ][worst as usize];
    if args.json {
        let checks: Vec<_> =
            rows.iter().map(|(check, status, detail)| json!({"check": check, "status": status, "detail": detail})).collect();
        tracer::outln!(
            "{}",
            json!({"verdict": verdict, "exit": worst, "checks": checks})
        );
    } else {
        for (check, status, detail) in &rows {
            let detail = tracer::sink::escape::text(detail);
            tracer::outln!("{check:<34} {status:<9} {detail}");
        }
        tracer::outln!("\nverdict: {verdict}");
    }
    Ok(worst)
}
