//! The configurations compared side by side: no tracer, `tracer live`, `perf record` and a
//! bpftrace script, each started around a measurement and stopped after it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

/// The tracepoints tracer attaches, for perf and bpftrace.
pub const TRACEPOINTS: &[&str] = &[
    "irq:irq_handler_entry",
    "irq:irq_handler_exit",
    "irq:softirq_raise",
    "irq:softirq_entry",
    "irq:softirq_exit",
    "napi:napi_poll",
    "net:netif_receive_skb",
    "net:netif_rx",
    "net:napi_gro_receive_entry",
    "sock:sk_data_ready",
    "sched:sched_waking",
    "sched:sched_wakeup",
    "sched:sched_switch",
    "skb:skb_copy_datagram_iovec",
    "skb:kfree_skb",
    "skb:consume_skb",
    "sock:sock_recv_length",
    "syscalls:sys_enter_recvfrom",
    "syscalls:sys_exit_recvfrom",
    "syscalls:sys_enter_recvmsg",
    "syscalls:sys_exit_recvmsg",
    "syscalls:sys_enter_recvmmsg",
    "syscalls:sys_exit_recvmmsg",
    "syscalls:sys_enter_read",
    "syscalls:sys_exit_read",
    "syscalls:sys_enter_readv",
    "syscalls:sys_exit_readv",
    "tcp:tcp_probe",
    "tcp:tcp_destroy_sock",
    "tcp:tcp_rcv_space_adjust",
];

/// One configuration of the side-by-side runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    NoTracer,
    TracerLive,
    /// `tracer live --classic-tracepoints`: the path of kernels without BTF.
    TracerClassic,
    /// `tracer live --batched`: events batched per NET_RX run and per read (bpf_stats only).
    TracerBatched,
    /// `tracer live --classic-syscalls`: the recv family's classic syscall tracepoints
    /// instead of the raw syscall programs (the syscall costs only).
    TracerClassicSyscalls,
    PerfRecord,
    Bpftrace,
    /// `tracer live --syscall-entry-marks`: the raw `sys_enter` program marks each traced
    /// syscall's entry, instead of the programs reading a task's entry frame.
    TracerEntryMarks,
    /// `tracer live --bench-floor empty`: every program attached, each returning at once.
    TracerFloorEmpty,
    /// `tracer live --bench-floor clock`: every program attached, each reading the clock
    /// and returning.
    TracerFloorClock,
}

impl Config {
    pub const ALL: [Config; 5] = [
        Config::NoTracer,
        Config::TracerLive,
        Config::TracerClassic,
        Config::PerfRecord,
        Config::Bpftrace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Config::NoTracer => "no tracer",
            Config::TracerLive => "tracer live",
            Config::TracerClassic => "tracer live --classic-tracepoints",
            Config::TracerBatched => "tracer live --batched",
            Config::TracerClassicSyscalls => "tracer live --classic-syscalls",
            Config::TracerEntryMarks => "tracer live --syscall-entry-marks",
            Config::PerfRecord => "perf record",
            Config::Bpftrace => "bpftrace",
            Config::TracerFloorEmpty => "tracer's programs attached, each returning at once",
            Config::TracerFloorClock => "tracer's programs attached, each reading the clock",
        }
    }

    /// Starts this configuration's tracer and waits until it is attached.
    pub fn start(self, tracer: &Path, dir: &Path) -> anyhow::Result<Option<Running>> {
        let (program, args, settle_ms): (String, Vec<String>, u64) = match self {
            Config::NoTracer => return Ok(None),
            Config::TracerLive => (
                tracer.display().to_string(),
                vec!["live".into(), "--json".into()],
                TRACER_READY,
            ),
            Config::TracerClassic => (
                tracer.display().to_string(),
                vec![
                    "live".into(),
                    "--json".into(),
                    "--classic-tracepoints".into(),
                ],
                TRACER_READY,
            ),
            Config::TracerBatched => (
                tracer.display().to_string(),
                vec!["live".into(), "--json".into(), "--batched".into()],
                TRACER_READY,
            ),
            Config::TracerClassicSyscalls => (
                tracer.display().to_string(),
                vec!["live".into(), "--json".into(), "--classic-syscalls".into()],
                TRACER_READY,
            ),
            Config::TracerEntryMarks => (
                tracer.display().to_string(),
                vec![
                    "live".into(),
                    "--json".into(),
                    "--syscall-entry-marks".into(),
                ],
                TRACER_READY,
            ),
            Config::TracerFloorEmpty | Config::TracerFloorClock => (
                tracer.display().to_string(),
                vec![
                    "live".into(),
                    "--json".into(),
                    "--bench-floor".into(),
                    if self == Config::TracerFloorEmpty {
                        "empty"
                    } else {
                        "clock"
                    }
                    .into(),
                ],
                TRACER_READY,
            ),
            Config::PerfRecord => {
                // Pipe mode into /dev/null: perf is spared writing (and we, waiting for) a
                // file of hundreds of MB; that only flatters perf.
                let mut args: Vec<String> = ["record", "-q", "-a", "-o", "-"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                for tp in TRACEPOINTS {
                    args.push("-e".into());
                    args.push((*tp).into());
                }
                ("perf".into(), args, 1000)
            }
            Config::Bpftrace => {
                let script: String = TRACEPOINTS
                    .iter()
                    .map(|tp| {
                        format!("tracepoint:{tp} {{ printf(\"%s %d %d\\n\", probe, pid, cpu); }}\n")
                    })
                    .collect();
                // bpftrace runs BEGIN once every probe is attached: about 2 s for these here.
                ("bpftrace".into(), vec!["-e".into(), script], 3500)
            }
        };
        Running::start(&program, &args, dir, settle_ms).map(Some)
    }
}

/// `settle_ms` value meaning: wait until `tracer` prints its ready line.
pub const TRACER_READY: u64 = 0;

/// A tracer running around a measurement: stdout discarded, stderr kept for its summary.
pub struct Running {
    child: Child,
    stderr: PathBuf,
}

/// What a stopped `tracer live` said about itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracerExit {
    pub events: u64,
    pub lost: u64,
    pub complete: u64,
}

impl Running {
    pub fn start(
        program: &str,
        args: &[String],
        dir: &Path,
        settle_ms: u64,
    ) -> anyhow::Result<Self> {
        let stderr = dir.join(format!("stderr-{}", fs::read_dir(dir)?.count()));
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        if settle_ms == TRACER_READY {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !fs::read_to_string(&stderr).is_ok_and(|text| text.contains("Ctrl-C to stop")) {
                if std::time::Instant::now() > deadline {
                    anyhow::bail!("{program} did not become ready within 30 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        } else {
            std::thread::sleep(Duration::from_millis(settle_ms));
        }
        Ok(Self { child, stderr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops with SIGINT (so the tracer prints its summary) and returns its stderr.
    pub fn stop(mut self) -> anyhow::Result<String> {
        // SAFETY: signalling our own child.
        unsafe { kill(self.child.id() as i32, 2) };
        self.child.wait()?;
        Ok(fs::read_to_string(&self.stderr).unwrap_or_default())
    }
}

impl TracerExit {
    /// Reads the exit summary of `tracer live` (`engine: N complete`, `lost events: N`,
    /// `events read: N`).
    pub fn parse(stderr: &str) -> anyhow::Result<Self> {
        let number_after = |key: &str| -> Option<u64> {
            let rest = stderr.rsplit(key).next().filter(|_| stderr.contains(key))?;
            rest.split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())?
                .parse()
                .ok()
        };
        let complete = stderr
            .rsplit("engine: ")
            .next()
            .filter(|_| stderr.contains("engine: "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok());
        match (
            number_after("events read: "),
            number_after("lost events: "),
            complete,
        ) {
            (Some(events), Some(lost), Some(complete)) => Ok(Self {
                events,
                lost,
                complete,
            }),
            _ => anyhow::bail!("no exit summary from tracer live: {stderr}"),
        }
    }
}

/// Starts a loopback UDP flood (`tracer traffic` with no gap, a reader blocked in recv())
/// and tells it to go (it waits for that, as the demo waits for its tracer).
pub fn start_flood(tracer: &Path) -> anyhow::Result<Child> {
    use std::io::Write as _;
    let mut flood = Command::new(tracer)
        .args(["traffic", "--count", "4000000000", "--gap-ms", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting a UDP flood")?;
    flood
        .stdin
        .take()
        .context("flood stdin")?
        .write_all(b"go\n")?;
    Ok(flood)
}

/// utime and stime of a process so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<(u64, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit(')').next().context("no comm in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok((fields[11].parse()?, fields[12].parse()?))
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { sysconf(2) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// SCHED_IDLE busy loops, one per CPU, for as long as this lives: no CPU ever halts, so a
/// wakeup never pays for waking a halted (virtual) CPU, and any real task preempts them at
/// once. Without them, whatever keeps CPUs busy (a tracer's own work) also shortens the
/// latency it is supposed to be measured against.
pub struct WarmCpus(Vec<Child>);

impl WarmCpus {
    pub fn start() -> anyhow::Result<Self> {
        let cpus = super::cpu_count();
        let mut spinners = Vec::new();
        for cpu in 0..cpus {
            spinners.push(
                Command::new("chrt")
                    .args(["--idle", "0", "taskset", "-c", &cpu.to_string()])
                    .args(["sh", "-c", "while :; do :; done"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting a SCHED_IDLE spinner (chrt, taskset)")?,
            );
        }
        Ok(Self(spinners))
    }
}

impl Drop for WarmCpus {
    fn drop(&mut self) {
        for spinner in &mut self.0 {
            let _ = spinner.kill();
            let _ = spinner.wait();
        }
    }
}

/// One configuration's measurements over the alternated rounds.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    pub config: Config,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// Over the tracer's runs: its complete journeys and lost events, and the workload's own
/// count of what it sent (the second value `measure` returns).
#[derive(Clone, Copy, Debug, Default)]
pub struct TracerTotals {
    pub journeys: u64,
    pub lost: u64,
    pub workload: u64,
}

/// Runs `measure` (a value, and the workload's own count) once per configuration per round,
/// configurations alternated, each configuration's tracer started before and stopped after.
pub fn alternate(
    tracer: &Path,
    dir: &Path,
    rounds: usize,
    totals: &mut TracerTotals,
    measure: impl FnMut() -> anyhow::Result<(f64, u64)>,
) -> anyhow::Result<Vec<Measured>> {
    alternate_among(&Config::ALL, tracer, dir, rounds, totals, measure)
}

/// [`alternate`] over `configs`.
pub fn alternate_among(
    configs: &[Config],
    tracer: &Path,
    dir: &Path,
    rounds: usize,
    totals: &mut TracerTotals,
    mut measure: impl FnMut() -> anyhow::Result<(f64, u64)>,
) -> anyhow::Result<Vec<Measured>> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for _ in 0..rounds {
        for (index, config) in configs.iter().enumerate() {
            let running = config.start(tracer, dir)?;
            let run = measure();
            if let Some(running) = running {
                let stderr = running.stop()?;
                if *config == Config::TracerLive {
                    let exit = TracerExit::parse(&stderr)?;
                    totals.journeys += exit.complete;
                    totals.lost += exit.lost;
                    totals.workload += run.as_ref().map_or(0, |(_, count)| *count);
                }
            }
            samples[index].push(run?.0);
        }
    }
    Ok(configs
        .iter()
        .zip(samples)
        .map(|(config, mut values)| Measured {
            config: *config,
            median: median(&mut values),
            min: values[0],
            max: values[values.len() - 1],
        })
        .collect())
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

unsafe extern "C" {
    pub fn kill(pid: i32, signal: i32) -> i32;
    /// _SC_CLK_TCK is 2 on Linux.
    fn sysconf(name: i32) -> i64;
}
