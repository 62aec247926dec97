//! Loading and attaching the eBPF programs: open -> set globals -> load -> attach.
//!
//! Each tracepoint is attached on its own; one that this kernel lacks (or whose layout does
//! not fit) is reported by name and the others still attach.

use std::{collections::BTreeMap, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, TracePoint},
};
use tracer_common::{
    ANY_CPU, EventKind, IGNORE_SLOTS, LostCounter, NET_IRQ_BITS, NET_IRQ_WORDS, abi,
    abi::SyscallRole,
    flow::{FlowOp, MAX_FLOW_OPS},
};

use super::{ProbeError, ProbeOptions, SyscallPlan, syscalls::member_name};
use crate::host::{
    btf::StructOffsets,
    procfs::{ignored_tgids, online_cpus, possible_cpus, tasks_in_recv, threads_of},
    tracefs::{self, FormatDir, Layout},
};

/// The compiled eBPF object, embedded at build time.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf"));

/// Loaded and attached programs, and the maps user space reads.
pub struct Probes {
    ebpf: Ebpf,
    /// Offsets and availability read from tracefs.
    pub layout: Layout,
    /// Kinds whose program is attached.
    pub attached: Vec<EventKind>,
    /// Those attached in their BTF tracepoint form (tp_btf); the rest are classic.
    pub btf_attached: Vec<EventKind>,
    /// Whether a NET_RX softirq run's events, and a reader's up to its syscall's exit, go out
    /// as one record each (tracer-ebpf `batch`).
    pub batching: bool,
    /// Attached kinds that have a BTF tracepoint form but are classic, with the reason.
    pub classic_why: Vec<(EventKind, String)>,
    /// Whether the traced syscalls go through the raw syscall programs (`SyscallPlan`):
    /// their kinds are then in `btf_attached`.
    pub raw_syscalls: bool,
    /// Whether the programs read a task's standing in the traced syscalls from its entry
    /// frame (`SyscallPlan::from_regs`), with no program at syscall entry.
    pub syscall_from_regs: bool,
    /// Kernel struct offsets from BTF the programs were given.
    pub struct_offsets: StructOffsets,
    /// Why there are none, when there are none.
    pub btf_unavailable: Option<String>,
    /// Kinds that are not attached, with the reason (missing tracepoint, `--without`,
    /// unexpected layout, or the attach error).
    pub skipped: Vec<(EventKind, String)>,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    /// The tracefs the layout came from; unmounted when dropped if we mounted it (after the
    /// programs, which are declared first, are detached).
    #[expect(
        dead_code,
        reason = "held for its Drop: it unmounts the tracefs we mounted"
    )]
    tracefs: tracefs::Tracefs,
}

impl Probes {
    /// Checks permissions and options, reads tracefs, loads and attaches every program.
    pub fn load(options: &ProbeOptions) -> Result<Self, ProbeError> {
        crate::host::caps::check().map_err(ProbeError::Permission)?;
        if !(options.ring_bytes.is_power_of_two() && options.ring_bytes >= 4096) {
            return Err(ProbeError::RingSize(options.ring_bytes));
        }
        if let Some(pid) = options.pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            return Err(ProbeError::NoSuchPid(pid));
        }
        if let Some(cpu) = options.cpu {
            let count = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            let possible = possible_cpus().unwrap_or(count);
            if cpu >= possible {
                return Err(ProbeError::NoSuchCpu {
                    cpu,
                    last: possible - 1,
                });
            }
        }
        let tracefs = tracefs::ensure_mounted()?;
        let layout = Layout::resolve(&FormatDir(tracefs.root.clone()), &options.without)?;

        let filter_tgid = options.pid.unwrap_or(0);
        let filter_cpu = options.cpu.unwrap_or(ANY_CPU);
        let ignored = ignored_tgids();
        if ignored.len() > 1 {
            log::info!(
                "not tracing the readers of our output: pids {:?}",
                &ignored[1..]
            );
        }
        let mut ignore = [0u32; IGNORE_SLOTS];
        for (slot, tgid) in ignore.iter_mut().zip(&ignored) {
            *slot = *tgid;
        }
        // Journey mode (and a flow filter) keeps a recv-family exit only when sock_recv_length
        // saw the call read a (selected) socket; without that tracepoint every exit goes out.
        let socket_reads_only = (options.journey_mode || options.flow.is_some())
            && layout.has(EventKind::SockRecvLength);
        // Journey mode keeps only network devices' interrupts, when we can tell which they are.
        let net_irqs = if options.journey_mode {
            net_irq_bitmap(
                crate::host::irqmap::IrqMap::from_system()
                    .irqs
                    .keys()
                    .copied(),
            )
        } else {
            None
        };
        if options.journey_mode && net_irqs.is_none() {
            log::info!("no network device interrupts found in sysfs: keeping every IRQ");
        }
        // Struct offsets from kernel BTF: packet headers and TCP read points. Without them
        // the journeys fall back to tracepoint fields alone (docs/tcp.md).
        let (struct_offsets, btf_unavailable) = if options.without_btf {
            (StructOffsets::default(), Some("--without-btf".to_owned()))
        } else {
            match StructOffsets::from_kernel() {
                Ok(offsets) => (offsets, None),
                Err(err) => {
                    log::warn!("{err}: no packet headers and no TCP read points (docs/tcp.md)");
                    (StructOffsets::default(), Some(err.to_string()))
                }
            }
        };
        // The flow filter: judged on the headers netif_receive_skb reads.
        let mut flow_ops = [FlowOp::ZERO; MAX_FLOW_OPS];
        let mut flow_len = 0u32;
        if let Some(flow) = &options.flow {
            if struct_offsets.skb_data.is_none() {
                return Err(ProbeError::FlowNeedsBtf(
                    btf_unavailable
                        .clone()
                        .unwrap_or_else(|| "no sk_buff.data in kernel BTF".to_owned()),
                ));
            }
            if !layout.has(EventKind::NetifReceiveSkb) {
                let why = layout
                    .unavailable
                    .iter()
                    .find(|(kind, _)| *kind == EventKind::NetifReceiveSkb)
                    .map_or_else(|| "left out".to_owned(), |(_, why)| why.to_string());
                return Err(ProbeError::FlowNeedsTracepoint(
                    "net:netif_receive_skb",
                    why,
                ));
            }
            for (slot, op) in flow_ops.iter_mut().zip(flow.ops()) {
                *slot = *op;
            }
            flow_len = flow.ops().len() as u32;
        }
        // BTF tracepoints need the members their programs read, and aya's view of kernel BTF
        // to attach; without either every program is classic.
        let kernel_btf = if options.classic_tracepoints || options.without_btf {
            None
        } else {
            aya::Btf::from_sys_fs()
                .inspect_err(|err| {
                    log::warn!(
                        "kernel BTF unreadable by the loader ({err}): classic tracepoints only"
                    )
                })
                .ok()
        };
        let members = if kernel_btf.is_some() {
            struct_offsets.members
        } else {
            StructOffsets::default().members
        };
        let syscalls = if let Some(why) = &options.classic_syscalls {
            SyscallPlan::classic(why.clone())
        } else if kernel_btf.is_none() {
            SyscallPlan::classic(classic_reason(options, &btf_unavailable))
        } else {
            SyscallPlan::raw(
                &struct_offsets,
                &layout.available,
                options.journey_mode,
                options.syscall_entry_marks,
            )
        };
        // CPUs that pace their own wakeups (`ProbeOptions::wakeup_bytes`): those online now.
        let cpus = online_cpus()
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
        // Several events in one record (tracer-ebpf `batch`): journey mode without a flow
        // filter (which holds the context itself), when the ends of the stretches batched (a
        // NET_RX run's entry and exit, the traced syscalls' exits) can all be attached.
        let batching = options.journey_mode
            && options.batched
            && options.flow.is_none()
            && layout.has(EventKind::SoftirqEntry)
            && layout.has(EventKind::SoftirqExit);
        let mut ebpf = EbpfLoader::new()
            .override_global(abi::OFFSETS, &layout.offsets, true)
            .override_global(abi::FILTER_TGID, &filter_tgid, true)
            .override_global(abi::FILTER_CPU, &filter_cpu, true)
            .override_global(abi::IGNORE_TGIDS, &ignore, true)
            .override_global(abi::JOURNEY_MODE, &u32::from(options.journey_mode), true)
            .override_global(abi::WAKEUP_BYTES, &options.wakeup_bytes(cpus), true)
            .override_global(abi::BATCHING, &u32::from(batching), true)
            .override_global(abi::BENCH_FLOOR, &options.bench_floor, true)
            .override_global(abi::SOCKET_READS_ONLY, &u32::from(socket_reads_only), true)
            .override_global(abi::NET_IRQ_FILTER, &u32::from(net_irqs.is_some()), true)
            .override_global(abi::NET_IRQS, &net_irqs.unwrap_or([0; NET_IRQ_WORDS]), true)
            .override_global(
                abi::SKB_DATA_OFF,
                &struct_offsets.skb_data.unwrap_or(abi::NO_OFFSET),
                true,
            )
            .override_global(
                abi::TCP_COPIED_SEQ_OFF,
                &struct_offsets.tcp_copied_seq.unwrap_or(abi::NO_OFFSET),
                true,
            )
            .override_global(abi::MEMBERS, &members, true)
            .override_global(abi::SYSCALL_KINDS, &syscalls.kinds, true)
            .override_global(abi::SYSCALL_FROM_REGS, &u32::from(syscalls.from_regs), true)
            .override_global(abi::FLOW_OPS, &flow_ops, true)
            .override_global(abi::FLOW_LEN, &flow_len, true)
            .override_global(
                abi::TASK_NSPROXY_OFF,
                &struct_offsets.task_nsproxy.unwrap_or(abi::NO_OFFSET),
                true,
            )
            .override_global(
                abi::NSPROXY_NET_NS_OFF,
                &struct_offsets.nsproxy_net_ns.unwrap_or(abi::NO_OFFSET),
                true,
            )
            .override_global(
                abi::NET_NS_INUM_OFF,
                &struct_offsets.net_ns_inum.unwrap_or(abi::NO_OFFSET),
                true,
            )
            .map_max_entries(abi::EVENTS, options.ring_bytes)
            .map_max_entries(abi::RECV_TASKS, recv_tasks_len())
            .load(EBPF_OBJECT)?;

        let logger = if options.kernel_log {
            match aya_log::EbpfLogger::init(&mut ebpf) {
                Ok(logger) => Some(logger),
                Err(err) => {
                    log::warn!("kernel-side log unavailable: {err}");
                    None
                }
            }
        } else {
            None
        };

        if let Some(pid) = options.pid {
            let map = ebpf
                .map_mut(abi::FILTER_TIDS)
                .expect("FILTER_TIDS is in the object");
            let mut tids: HashMap<_, u32, u8> =
                HashMap::try_from(map).map_err(|source| ProbeError::Map {
                    name: abi::FILTER_TIDS,
                    source,
                })?;
            for tid in threads_of(pid) {
                tids.insert(tid, 1, 0).map_err(|source| ProbeError::Map {
                    name: abi::FILTER_TIDS,
                    source,
                })?;
            }
        }

        // Also with --pid: a read outside every tracked syscall returns its own bytes
        // (FLAG_OUTSIDE_SYSCALL), so a reader already blocked in recv() must read as inside.
        // Its entry frame says so when the programs read that.
        if options.journey_mode && !syscalls.from_regs {
            let map = ebpf
                .map_mut(abi::RECV_TASKS)
                .expect("RECV_TASKS is in the object");
            let mut readers: aya::maps::Array<_, u8> =
                aya::maps::Array::try_from(map).map_err(|source| ProbeError::Map {
                    name: abi::RECV_TASKS,
                    source,
                })?;
            for (tid, value) in tasks_in_recv() {
                // A tid beyond the array (pid_max raised meanwhile) is not tracked.
                let _ = readers.set(tid, value, 0);
            }
        }

        let mut attached = Vec::new();
        let mut btf_attached = Vec::new();
        let mut classic_why = Vec::new();
        if let (Some(btf), true) = (&kernel_btf, syscalls.is_raw()) {
            let raw = syscalls
                .raw_programs()
                .try_for_each(|(program, tracepoint)| {
                    attach_btf(&mut ebpf, btf, program, tracepoint)
                });
            if let Err(why) = raw {
                // Start again with the classic syscall programs (one may be attached).
                log::warn!("{why}: using the classic syscall tracepoints");
                drop(ebpf);
                let mut retry = options.clone();
                retry.classic_syscalls = Some(why);
                return Self::load(&retry);
            }
            attached.extend(&syscalls.taken);
            btf_attached.extend(&syscalls.taken);
        }
        let mut skipped: Vec<(EventKind, String)> = layout
            .unavailable
            .iter()
            .map(|(kind, why)| (*kind, why.to_string()))
            .collect();
        for kind in attach_order(&layout.available) {
            if options.journey_mode && JOURNEY_UNUSED.contains(&kind)
                || syscalls.taken.contains(&kind)
            {
                continue;
            }
            let mut classic = None;
            if kind.tracepoint().0 == "syscalls" {
                // Not taken over by the raw programs: why they are not attached, or (they
                // are) because the syscall's other end is left out.
                classic = Some(syscalls.classic_why.clone().unwrap_or_else(|| {
                    "its syscall's other end is left out: not through raw_syscalls".to_owned()
                }));
            }
            if let Some(form) = kind.btf_form() {
                let missing = form
                    .members
                    .iter()
                    .find(|&&m| struct_offsets.member(m).is_none());
                match (&kernel_btf, missing) {
                    (None, _) => classic = Some(classic_reason(options, &btf_unavailable)),
                    (Some(_), Some(member)) => {
                        classic = Some(format!("kernel BTF lacks {}", member_name(*member)));
                    }
                    (Some(btf), None) => {
                        match attach_btf(&mut ebpf, btf, form.program, kind.name()) {
                            Ok(()) => {
                                attached.push(kind);
                                btf_attached.push(kind);
                                continue;
                            }
                            Err(why) => {
                                log::warn!("{why}: using the classic tracepoint");
                                classic = Some(why);
                            }
                        }
                    }
                }
            }
            match attach(&mut ebpf, kind) {
                Ok(()) => {
                    attached.push(kind);
                    if let Some(why) = classic {
                        classic_why.push((kind, why));
                    }
                }
                Err(why) => skipped.push((kind, why)),
            }
        }
        if attached.is_empty() {
            return Err(ProbeError::NothingAttached);
        }
        // The programs that ask where a task stands read its entry frame only in their BTF
        // form (a classic one has no task_struct): one left classic needs the entry marks.
        if let Some(kind) = FRAME_READERS
            .iter()
            .find(|kind| attached.contains(kind) && !btf_attached.contains(kind))
            .filter(|_| syscalls.from_regs)
        {
            let (category, name) = kind.tracepoint();
            log::info!("{category}:{name} is classic: syscall entries are marked at sys_enter");
            drop(ebpf);
            let mut retry = options.clone();
            retry.syscall_entry_marks = true;
            return Self::load(&retry);
        }
        if socket_reads_only && !attached.contains(&EventKind::SockRecvLength) {
            // Loaded expecting it; start again as a kernel without it.
            drop(ebpf);
            let mut retry = options.clone();
            retry.without.push("sock:sock_recv_length".to_owned());
            return Self::load(&retry);
        }
        // Syscalls whose entry is traced but whose exit is not: a batch waiting for it would
        // wait until the next context switch.
        let mut unclosed: Vec<&str> = abi::TRACED_SYSCALLS
            .iter()
            .filter_map(|syscall| match syscall.role {
                SyscallRole::Recv { enter, exit }
                    if attached.contains(&enter) && !attached.contains(&exit) =>
                {
                    Some(syscall.exit)
                }
                _ => None,
            })
            .collect();
        if options.journey_mode && !syscalls.takes_waits() {
            let mut entered = false;
            for name in abi::wait_programs() {
                let is_exit = name.starts_with("sys_exit_");
                match attach_program(&mut ebpf, "syscalls", name) {
                    Ok(()) => entered = !is_exit,
                    Err(why) => {
                        log::warn!("{why}: readers blocked in this call will have no wakeup stage");
                        if is_exit && entered {
                            unclosed.push(name);
                        }
                        entered = false;
                    }
                }
            }
        }
        let run_ends = [EventKind::SoftirqEntry, EventKind::SoftirqExit];
        let run_open = run_ends.iter().find(|end| !attached.contains(end));
        if batching && (run_open.is_some() || !unclosed.is_empty()) {
            // Batches close at a run's exit and at a syscall's: start again without them.
            let why = run_open.map_or_else(
                || format!("syscalls:{}", unclosed[0]),
                |end| {
                    let (category, name) = end.tracepoint();
                    format!("{category}:{name}")
                },
            );
            log::info!("{why} is not attached: every event goes out on its own");
            drop(ebpf);
            let mut retry = options.clone();
            retry.batched = false;
            return Self::load(&retry);
        }
        Ok(Self {
            ebpf,
            layout,
            attached,
            btf_attached,
            batching,
            classic_why,
            raw_syscalls: syscalls.is_raw(),
            syscall_from_regs: syscalls.from_regs,
            struct_offsets,
            btf_unavailable,
            skipped,
            logger,
            tracefs,
        })
    }

    /// The event ring buffer's map (`source::consumer` maps its pages); call once.
    pub fn take_ring(&mut self) -> Result<MapData, ProbeError> {
        let map = self.ebpf.take_map(abi::EVENTS).ok_or(ProbeError::Map {
            name: abi::EVENTS,
            source: aya::maps::MapError::InvalidName {
                name: abi::EVENTS.into(),
            },
        })?;
        match map {
            aya::maps::Map::RingBuf(data) => Ok(data),
            // Not a ring buffer: aya's conversion says what it is instead.
            other => Err(ProbeError::Map {
                name: abi::EVENTS,
                source: RingBuf::try_from(other).err().unwrap_or(
                    aya::maps::MapError::InvalidName {
                        name: abi::EVENTS.into(),
                    },
                ),
            }),
        }
    }

    /// Events lost to a full ring buffer so far, per CPU (index = CPU).
    pub fn lost_per_cpu(&self) -> Result<Vec<u64>, ProbeError> {
        let map = self.ebpf.map(abi::LOST).expect("LOST is in the object");
        let lost: PerCpuArray<_, LostCounter> =
            PerCpuArray::try_from(map).map_err(|source| ProbeError::Map {
                name: abi::LOST,
                source,
            })?;
        let values = lost.get(&0, 0).map_err(|source| ProbeError::Map {
            name: abi::LOST,
            source,
        })?;
        Ok(values.iter().map(|counter| counter.lost).collect())
    }

    /// Runs each attached program lost to the kernel's recursion protection (another tracing
    /// program was running on that CPU), by tracepoint name; programs whose counters cannot
    /// be read are left out. These are lost events our LOST counter never sees.
    pub fn recursion_misses(&self) -> BTreeMap<String, u64> {
        self.program_counters()
            .into_iter()
            .map(|(name, counters)| (name, counters.recursion_misses))
            .collect()
    }

    /// The kernel's counters of each attached program, by tracepoint name.
    pub fn program_counters(&self) -> BTreeMap<String, super::ProgramCounters> {
        use std::os::fd::AsFd as _;
        let mut counters = BTreeMap::new();
        for kind in &self.attached {
            if self.raw_syscalls && kind.tracepoint().0 == "syscalls" {
                continue;
            }
            let name = match kind.btf_form() {
                Some(form) if self.btf_attached.contains(kind) => form.program,
                _ => kind.name(),
            };
            let Some(program) = self.ebpf.program(name) else {
                continue;
            };
            let Ok(fd) = program.fd() else {
                continue;
            };
            if let Ok(read) = super::stats::program_counters(fd.as_fd()) {
                counters.insert(kind.name().to_owned(), read);
            }
        }
        if self.raw_syscalls {
            // One program each for every traced syscall's entry and exit.
            for (program, tracepoint) in abi::RAW_SYSCALL_PROGRAMS {
                let Some(Ok(fd)) = self.ebpf.program(program).map(|program| program.fd()) else {
                    continue;
                };
                if let Ok(read) = super::stats::program_counters(fd.as_fd()) {
                    counters.insert(tracepoint.to_owned(), read);
                }
            }
        }
        counters
    }

    /// Drop reason names of this kernel.
    pub fn drop_reasons(&self) -> BTreeMap<u64, String> {
        self.layout.drop_reasons.clone()
    }

    /// Forwards pending kernel-side log records (with `kernel_log`).
    pub fn flush_kernel_log(&mut self) {
        if let Some(logger) = &mut self.logger {
            logger.flush();
        }
    }

    /// Takes the kernel-side log out (with `kernel_log`; empty after the first call), so a
    /// loop can flush it while something else holds these probes shared.
    pub fn take_kernel_log(&mut self) -> KernelLog {
        KernelLog(self.logger.take())
    }
}

/// The eBPF programs' own log records (aya-log), taken out of [`Probes`].
pub struct KernelLog(Option<aya_log::EbpfLogger<&'static dyn log::Log>>);

impl KernelLog {
    /// Forwards the pending records.
    pub fn flush(&mut self) {
        if let Some(logger) = &mut self.0 {
            logger.flush();
        }
    }
}

/// Tracepoints no journey stage needs: journey mode does not attach them, since each would
/// run a program per packet for an event thrown away. net:netif_rx only repeats
/// netif_receive_skb's skb earlier on loopback/veth; skb:skb_copy_datagram_iovec is covered by
/// sock_recv_length and the syscall exit; sched:sched_wakeup only stamps `ts.wakeup` (the
/// runqueue stage runs from sched_waking to the switch), so live journeys leave it null and
/// `tracer events` still shows it.
pub const JOURNEY_UNUSED: [EventKind; 3] = [
    EventKind::NetifRx,
    EventKind::SkbCopyDatagramIovec,
    EventKind::SchedWakeup,
];

/// The programs that read a task's entry frame or `task_struct` (tracer-ebpf `stands`):
/// with `abi::SYSCALL_FROM_REGS` each must be attached in its BTF form (sched_switch for
/// the `--pid` filter's tgid: no entry program joins new threads to `FILTER_TIDS` then).
const FRAME_READERS: [EventKind; 4] = [
    EventKind::SchedSwitch,
    EventKind::SchedWaking,
    EventKind::SockRecvLength,
    EventKind::TcpRcvSpaceAdjust,
];

/// Entries of `RECV_TASKS`: one per possible thread id (kernel.pid_max, read now).
fn recv_tasks_len() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .filter(|&max| max > 0)
        .map_or(abi::RECV_TASKS_MAX, |max| max.min(abi::RECV_TASKS_MAX))
}

/// The order programs are attached in: a NET_RX run's exit and entry before everything
/// else, so that a batch opened (tracer-ebpf `batch`) is always closed, and a raise held for
/// its run is always taken by one.
fn attach_order(available: &[EventKind]) -> Vec<EventKind> {
    let mut order = available.to_vec();
    order.sort_by_key(|kind| match kind {
        EventKind::SoftirqExit => 0,
        EventKind::SoftirqEntry => 1,
        _ => 2,
    });
    order
}

/// The `NET_IRQS` bitmap of these IRQs; `None` when there are none (nothing to filter by)
/// or one is beyond the bitmap (the kernel keeps those anyway, but then so must the rest
/// of the picture: keep every IRQ).
fn net_irq_bitmap(irqs: impl Iterator<Item = u32>) -> Option<[u64; NET_IRQ_WORDS]> {
    let mut bits = [0u64; NET_IRQ_WORDS];
    let mut any = false;
    for irq in irqs {
        if irq >= NET_IRQ_BITS {
            return None;
        }
        bits[(irq / 64) as usize] |= 1 << (irq % 64);
        any = true;
    }
    any.then_some(bits)
}

/// Loads and attaches the program of one kind; the error text names the tracepoint.
fn attach(ebpf: &mut Ebpf, kind: EventKind) -> Result<(), String> {
    let (category, name) = kind.tracepoint();
    attach_program(ebpf, category, name)
}

/// Loads and attaches the program named like its tracepoint.
fn attach_program(ebpf: &mut Ebpf, category: &str, name: &str) -> Result<(), String> {
    let program: &mut TracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("{category}:{name}: no such program in the eBPF object"))?
        .try_into()
        .map_err(|err| format!("{category}:{name}: {err}"))?;
    program
        .load()
        .map_err(|err| format!("{category}:{name}: load failed: {err}"))?;
    program
        .attach(category, name)
        .map_err(|err| format!("{category}:{name}: attach failed: {err}"))?;
    Ok(())
}

/// Why every program is classic: the option that asked, or why kernel BTF is missing.
fn classic_reason(options: &ProbeOptions, btf_unavailable: &Option<String>) -> String {
    if options.classic_tracepoints {
        "--classic-tracepoints".to_owned()
    } else if let Some(why) = btf_unavailable {
        format!("no kernel BTF ({why})")
    } else {
        "kernel BTF unreadable by the loader".to_owned()
    }
}

/// `struct.field` of a member's first path, for messages.
/// Loads the BTF tracepoint program `program` and attaches it to tracepoint `tracepoint`.
fn attach_btf(
    ebpf: &mut Ebpf,
    btf: &aya::Btf,
    program: &str,
    tracepoint: &str,
) -> Result<(), String> {
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("tp_btf/{tracepoint}: no program {program} in the eBPF object"))?
        .try_into()
        .map_err(|err| format!("tp_btf/{tracepoint}: {err}"))?;
    prog.load(tracepoint, btf)
        .map_err(|err| format!("tp_btf/{tracepoint}: load failed: {err}"))?;
    prog.attach()
        .map_err(|err| format!("tp_btf/{tracepoint}: attach failed: {err}"))?;
    Ok(())
}

impl Drop for Probes {
    /// Detaches every program before the object goes. Each detach waits for an RCU grace
    /// period (8-40 ms here), so one after the other they took seconds; one thread per
    /// program lets the waits overlap and the tracer stop at once.
    fn drop(&mut self) {
        std::thread::scope(|scope| {
            for (_, program) in self.ebpf.programs_mut() {
                scope.spawn(move || {
                    let _ = match program {
                        aya::programs::Program::TracePoint(p) => p.unload(),
                        aya::programs::Program::BtfTracePoint(p) => p.unload(),
                        _ => Ok(()),
                    };
                });
            }
        });
    }
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes")
            .field("attached", &self.attached)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn net_irq_bitmap_sets_one_bit_per_irq() {
        let bits = super::net_irq_bitmap([0, 63, 64, 4095].into_iter()).unwrap();
        assert_eq!(bits[0], 1 | 1 << 63);
        assert_eq!(bits[1], 1);
        assert_eq!(bits[63], 1 << 63);
        assert_eq!(bits.iter().map(|w| w.count_ones()).sum::<u32>(), 4);
        assert!(
            super::net_irq_bitmap([].into_iter()).is_none(),
            "nothing to filter by"
        );
        assert!(
            super::net_irq_bitmap([5, 4096].into_iter()).is_none(),
            "an IRQ beyond the bitmap keeps every IRQ"
        );
    }
}
