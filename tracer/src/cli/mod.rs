//! Command-line arguments and dispatch: what the subcommands share (probe and ring options,
//! durations, exit codes).

pub mod demo;
pub mod doctor;
pub mod duration;
pub mod events;
pub mod lab;
pub mod live;
pub mod record;
pub mod top;

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use tracer::{
    flow::FlowFilter,
    host::irqmap::IrqMap,
    journey::JourneyFilter,
    probe::{DEFAULT_RING_BYTES, ProbeError, ProbeOptions},
};
use tracer_common::abi::bench_floor;

/// Which packets to trace: a filter expression (tcpdump's syntax) and `--port`.
#[derive(Clone, Debug, Default, Args)]
pub struct FlowArgs {
    /// Trace only packets this expression selects, in tcpdump's syntax for a 5-tuple: tcp,
    /// udp, icmp, icmp6, ip, ip6, [src|dst] host ADDR, [src|dst] net CIDR, [src|dst] port N,
    /// [src|dst] portrange A-B, and/or/not, parentheses (and/or bind equally, left to
    /// right, as in tcpdump). Evaluated in the kernel on each packet (needs kernel BTF):
    /// nothing of another packet is emitted, not even its reader's wakeup. E.g.
    /// 'tcp and dst port 6379'.
    #[arg(value_name = "FILTER", num_args = 0..)]
    pub filter: Vec<String>,
    /// Only packets from or to port N (shorthand for the expression `port N`; repeatable,
    /// joined with `or`, and with `and` to an expression).
    #[arg(long, value_name = "N")]
    pub port: Vec<u16>,
}

impl FlowArgs {
    /// The filter, or `None` when none is given; a bad expression is an error that says
    /// where.
    pub fn flow(&self) -> anyhow::Result<Option<FlowFilter>> {
        Ok(tracer::flow::from_args(&self.filter, &self.port)?)
    }
}

/// Filters applied in the kernel, before an event is emitted.
#[derive(Clone, Debug, Args)]
pub struct FilterArgs {
    /// Keep events whose current task belongs to process PID, or whose subject does (the
    /// task woken, or switched in).
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Keep events that happen on this CPU.
    #[arg(short, long, value_name = "N")]
    pub cpu: Option<u32>,
    /// Do not attach this tracepoint (`category:name` or `name`); repeatable. Simulates an
    /// older kernel that lacks it.
    #[arg(long, value_name = "TRACEPOINT", value_parser = tracepoint_arg)]
    pub without: Vec<String>,
    /// Do not read kernel BTF: no packet headers, no TCP sequence numbers (what a kernel
    /// without BTF gives; TCP journeys then follow byte counts, docs/tcp.md).
    #[arg(long)]
    pub without_btf: bool,
    #[command(flatten)]
    pub ring: RingArgs,
    #[command(flatten)]
    pub flow: FlowArgs,
}

/// How events travel from the kernel to us.
#[derive(Clone, Debug, Args)]
pub struct RingArgs {
    /// Ring buffer size in bytes (power of two).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RING_BYTES)]
    pub ring_size: u32,
    /// Have the kernel wake the tracer for every event instead of each time a CPU wrote
    /// another share of the ring (its size over twice the CPUs), and every 50 ms: lower
    /// delivery latency, much higher cost on the traced host.
    #[arg(long)]
    pub wakeup_per_event: bool,
    /// Attach every program to its classic tracepoint, even where the cheaper BTF
    /// tracepoint (tp_btf) would load: the path kernels without BTF take (`doctor` shows
    /// which each tracepoint uses).
    #[arg(long)]
    pub classic_tracepoints: bool,
    /// Trace the recv-family and wait syscalls with one classic tracepoint each instead of
    /// BTF tracepoints on every syscall (raw_syscalls:sys_exit, and sys_enter outside
    /// journeys or with --syscall-entry-marks). The raw ones make each traced call about
    /// 200 ns cheaper; with sys_enter they make every other syscall about 80 ns dearer,
    /// without it 10-20 ns (BENCHMARKS.md).
    #[arg(long)]
    pub classic_syscalls: bool,
    /// Journey mode: write a NET_RX softirq run's events, and a reader's up to its syscall's
    /// exit, into the ring buffer as one record each instead of every event on its own.
    /// Fewer reservations of the one shared ring (its lock is what many CPUs would contend
    /// on); on 2 CPUs it measured no cheaper (BENCHMARKS.md). The journeys are the same.
    #[arg(long)]
    pub batched: bool,
    /// Journey mode: mark each recv-family or wait syscall's entry with a program on
    /// raw_syscalls:sys_enter, which runs at every syscall of every task, instead of
    /// reading a task's saved syscall registers when it is woken (or reads without
    /// sleeping). The journeys are the same; the registers spare that program and cost
    /// less per packet (BENCHMARKS.md).
    #[arg(long)]
    pub syscall_entry_marks: bool,
    /// For `cargo xtask bench` only: every program (BTF or, with --classic-tracepoints,
    /// classic) returns at once (`empty`) or after one clock read (`clock`), so no event is
    /// made; what the programs' attachment alone costs the traced host.
    #[arg(long, value_enum, hide = true)]
    pub bench_floor: Option<BenchFloor>,
}

/// `--bench-floor`: what every program does before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchFloor {
    /// Nothing.
    Empty,
    /// One clock read.
    Clock,
}

impl FilterArgs {
    /// The probe options these filters ask for.
    pub fn probe_options(&self, verbose: bool) -> anyhow::Result<ProbeOptions> {
        Ok(ProbeArgs {
            pid: self.pid,
            cpu: self.cpu,
            without: &self.without,
            without_btf: self.without_btf,
            ring: &self.ring,
            flow: self.flow.flow()?,
        }
        .options(false, verbose))
    }
}

/// The probe options every tracing command takes, whatever each calls and documents them
/// as: the one place they become [`ProbeOptions`].
pub struct ProbeArgs<'a> {
    pub pid: Option<u32>,
    pub cpu: Option<u32>,
    pub without: &'a [String],
    pub without_btf: bool,
    pub ring: &'a RingArgs,
    pub flow: Option<FlowFilter>,
}

impl ProbeArgs<'_> {
    /// The options, in journey mode or event mode.
    pub fn options(&self, journey_mode: bool, verbose: bool) -> ProbeOptions {
        ProbeOptions {
            without_btf: self.without_btf,
            pid: self.pid,
            cpu: self.cpu,
            journey_mode,
            without: self.without.to_vec(),
            ring_bytes: self.ring.ring_size,
            kernel_log: verbose,
            batch_wakeups: !self.ring.wakeup_per_event,
            classic_tracepoints: self.ring.classic_tracepoints,
            batched: self.ring.batched,
            flow: self.flow.clone(),
            classic_syscalls: self
                .ring
                .classic_syscalls
                .then(|| "--classic-syscalls".to_owned()),
            syscall_entry_marks: self.ring.syscall_entry_marks,
            bench_floor: match self.ring.bench_floor {
                None => bench_floor::OFF,
                Some(BenchFloor::Empty) => bench_floor::EMPTY,
                Some(BenchFloor::Clock) => bench_floor::CLOCK,
            },
        }
    }

    /// The options of a journey command (`live`, `record`).
    pub fn journeys(&self, verbose: bool) -> ProbeOptions {
        self.options(true, verbose)
    }
}

/// Which journeys a journey command keeps: by reader, device and CPU (the filter expression
/// is [`FlowArgs`]). One struct, so the commands that flatten it take these alike.
#[derive(Clone, Debug, Args)]
pub struct SelectArgs {
    /// Journeys read by this process (pid = tgid; repeatable): only they are shown and
    /// counted. With one process its task events are filtered in the kernel; packet-path
    /// events are kept from every context, since packets do not run as the reader.
    #[arg(short, long, value_name = "PID")]
    pub pid: Vec<u32>,
    /// Journeys read by tasks with this name (comm).
    #[arg(long, value_name = "COMM", value_parser = comm_arg)]
    pub comm: Option<String>,
    /// Journeys of packets received on this network device.
    #[arg(long, value_name = "DEV")]
    pub dev: Option<String>,
    /// Journeys that touched this CPU (IRQ, softirq or reader). Chosen once a journey ends
    /// (a packet crosses CPUs): every CPU is still traced, at the same cost.
    #[arg(short, long, value_name = "N")]
    pub cpu: Option<u32>,
}

impl SelectArgs {
    /// Checks what can be checked before tracing: the processes, device and CPU exist.
    pub fn check(&self, irqs: &IrqMap) -> anyhow::Result<()> {
        if let Some(dev) = &self.dev
            && !irqs.has_device(dev)
        {
            bail!(
                "no network device named {dev:?} (devices: {})",
                irqs.devices.join(", ")
            );
        }
        for pid in &self.pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                bail!("no process with pid {pid}");
            }
        }
        if let Some(cpu) = self.cpu {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            if cpu >= cpus {
                bail!("no CPU {cpu}: this machine has CPUs 0-{}", cpus - 1);
            }
        }
        Ok(())
    }

    /// The process whose task events the kernel filters: only with exactly one (several
    /// are told apart in user space).
    pub fn kernel_pid(&self) -> Option<u32> {
        match self.pid[..] {
            [pid] => Some(pid),
            _ => None,
        }
    }

    /// The filter of finished journeys.
    pub fn journey_filter(&self) -> JourneyFilter {
        JourneyFilter {
            pids: self.pid.clone(),
            comm: self.comm.clone(),
            dev: self.dev.clone(),
            cpu: self.cpu.map(|cpu| cpu as u16),
            flow: None,
        }
    }
}

/// Parses `--without` values: a tracepoint the tracer attaches, as `category:name` or `name`.
pub fn tracepoint_arg(text: &str) -> Result<String, String> {
    let known: Vec<String> = tracer_common::EventKind::ALL
        .iter()
        .map(|kind| {
            let (category, name) = kind.tracepoint();
            format!("{category}:{name}")
        })
        .collect();
    let found = known
        .iter()
        .any(|tracepoint| tracepoint == text || tracepoint.split_once(':').unwrap().1 == text);
    if found {
        Ok(text.to_owned())
    } else {
        let mut unique = known;
        unique.dedup();
        Err(format!("unknown tracepoint; known: {}", unique.join(", ")))
    }
}

/// Parses `--comm` values: the kernel keeps 15 bytes of a task's name, so a longer one would
/// match nothing.
pub fn comm_arg(text: &str) -> Result<String, String> {
    if text.len() > 15 {
        return Err(format!(
            "{} bytes: task names are at most 15 bytes (the kernel truncates them); use the first 15: {:?}",
            text.len(),
            text.char_indices()
                .take_while(|(at, c)| at + c.len_utf8() <= 15)
                .map(|(_, c)| c)
                .collect::<String>()
        ));
    }
    Ok(text.to_owned())
}

/// Parses `--duration` values.
pub fn duration_arg(text: &str) -> Result<Duration, String> {
    duration::parse(text)
}

/// Exit status for an error: 2 when tracing is impossible (permissions) or the filter
/// expression is bad (a usage error, as clap's), 130 for a replay stopped by a signal (as a
/// shell reports Ctrl-C), else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<tracer::flow::ArgsError>().is_some() {
        return 2;
    }
    if err
        .downcast_ref::<tracer::session::replay::Interrupted>()
        .is_some()
    {
        return 130;
    }
    match err.downcast_ref::<ProbeError>() {
        Some(ProbeError::Permission(_)) => 2,
        _ => 1,
    }
}
