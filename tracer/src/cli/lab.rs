//! `tracer lab`: exercises that make "interrupts wake the kernel; the kernel wakes processes;
//! the scheduler decides when they run" measurable on the student's own machine.
//!
//! A lab is a list of phases. Each phase starts an optional CPU-bound competitor, a traffic
//! process (a reader waiting in some way, a sender), and follows the journeys of that
//! process; then everything it started is stopped, also on Ctrl-C or failure.

use std::{process::Stdio, time::Duration};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tracer::{
    irqmap::IrqMap,
    journey::{Journey, Stage, analysis, summary::human_ns},
    probes::ProbeOptions,
};

use super::live::{JourneyFilter, LiveOutput};

/// `tracer lab list | run NAME`.
#[derive(Clone, Debug, Subcommand)]
pub enum LabCommand {
    /// The labs, one line each.
    List,
    /// Run one lab.
    Run(LabRunArgs),
}

/// Options of `tracer lab run`.
#[derive(Clone, Debug, Args)]
pub struct LabRunArgs {
    /// The lab (see `tracer lab list`).
    pub name: String,
    /// A few seconds instead of 10-30 (for CI and a first look).
    #[arg(long)]
    pub short: bool,
    /// One JSON object with every measured number and the claims checked.
    #[arg(long)]
    pub json: bool,
    /// Print model answers to the questions, computed from the measured numbers.
    #[arg(long)]
    pub answers: bool,
    /// Also record each phase's raw events (FILE.<phase>.trc) for `tracer report`.
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
}

/// A CPU-bound competitor on the reader's CPU.
#[derive(Clone, Copy, Debug)]
enum Competitor {
    Nice(i32),
    Fifo,
}

/// One measured configuration.
#[derive(Clone, Debug)]
struct Phase {
    label: &'static str,
    count: u32,
    gap_us: u64,
    mode: &'static str,
    reader_fifo: bool,
    work_us: u64,
    competitor: Option<Competitor>,
    /// Steer loopback packets to the reader's CPU with RPS (restored after the phase).
    rps: bool,
}

impl Phase {
    fn new(label: &'static str, count: u32, gap_us: u64) -> Self {
        Self {
            label,
            count,
            gap_us,
            mode: "block",
            reader_fifo: false,
            work_us: 0,
            competitor: None,
            rps: false,
        }
    }
}

struct Lab {
    name: &'static str,
    summary: &'static str,
    story: &'static str,
    questions: &'static [&'static str],
}

const LABS: &[Lab] = &[
    Lab {
        name: "wakeup",
        summary: "a reader blocked in recv(): the kernel, not the packet, wakes it",
        story: "The reader called recv() and found nothing: the kernel took it off the CPU (blocked). \
                A datagram arrives: the NET_RX softirq runs the stack, enqueues it on the socket \
                (sk_data_ready) and only then wakes the reader (sched_waking: blocked -> ready). The \
                scheduler later puts it on a CPU (sched_switch: ready -> running) and recv() returns.",
        questions: &[
            "Which stage is longer: the kernel's work on the packet (poll + stack) or the wait for a CPU (runqueue)?",
            "How long after the socket enqueue is the reader marked ready (wakeup)?",
            "What fraction of the total does the reader spend waiting to run?",
        ],
    },
    Lab {
        name: "scheduler",
        summary: "the same reader on an idle CPU, beside nice 0, nice -20 and SCHED_FIFO hogs, then at SCHED_FIFO itself",
        story: "A woken task waits in the run queue until the scheduler picks it. An idle (virtual) CPU must \
                first wake up; a busy CPU answers at once if the newcomer deserves it. The competitor's \
                priority decides: a nice -20 hog has about 87 times the weight of the nice 0 reader; a \
                SCHED_FIFO hog would run until it yields, but since Linux 6.12 a deadline \"fair server\" \
                reserves 50 ms per second for normal tasks, so a light reader still gets in at once (older \
                kernels only let it in when RT throttling stops the hog); a SCHED_FIFO reader preempts any \
                normal task.",
        questions: &[
            "Order the phases by runqueue p50. Is the idle CPU the fastest? Why not?",
            "By what factor does a nice -20 competitor lengthen the runqueue stage?",
            "What changes when the reader itself is SCHED_FIFO?",
            "Why does the SCHED_FIFO hog delay the reader less than the nice -20 one on this kernel?",
        ],
    },
    Lab {
        name: "napi",
        summary: "rising packet rates: packets per poll, and softirq raises per packet",
        story: "NAPI trades interrupts for polling: the first packet raises NET_RX, and while the poll \
                runs, packets that arrive meanwhile are taken in the same poll (up to the budget, 64). \
                At low rates each poll finds one packet; at high rates polls find more. Loopback and \
                veth have no hard IRQ: their packets go through the per-CPU backlog, whose poll \
                (process_backlog) shows as device (no_device). The lab steers loopback packets to the \
                reader's CPU with RPS (/sys/class/net/lo/queues/rx-0/rps_cpus, restored afterwards), so \
                the backlog fills while the sender keeps sending.",
        questions: &[
            "How many packets does one poll take at each rate?",
            "How many NET_RX raises are there per packet at each rate?",
            "Why does batching save work at high rates, and what does it cost the first packet of a batch?",
        ],
    },
    Lab {
        name: "ksoftirqd",
        summary: "a flood long enough that NET_RX work moves to ksoftirqd",
        story: "Softirqs run on interrupt exit or when bottom halves are re-enabled, but only for so long \
                (2 ms or 10 restarts): past that, the kernel hands the rest to the per-CPU ksoftirqd \
                thread, which the scheduler treats like any task. Packets processed there wait for \
                ksoftirqd to be scheduled.",
        questions: &[
            "How many packets were processed in ksoftirqd, and how often was it woken?",
            "Compare softirq_wait of packets processed in ksoftirqd with the others.",
            "Why does the kernel defer softirq work to a thread at all?",
        ],
    },
    Lab {
        name: "polling",
        summary: "blocking recv vs epoll_wait vs a reader that never sleeps",
        story: "A blocked reader must be woken and scheduled; a reader that never sleeps (a non-blocking \
                recv() in a loop; SO_BUSY_POLL where the device has a NAPI id, which loopback's backlog \
                has not) is already running when the data lands: the wakeup and runqueue stages \
                disappear, and the CPU burns the whole time.",
        questions: &[
            "In which phase does the wakeup stage disappear, and why?",
            "How much CPU time does the reader use per packet in each phase?",
            "When is spinning worth its CPU cost?",
        ],
    },
    Lab {
        name: "switches",
        summary: "voluntary vs involuntary context switches of a reader that also computes",
        story: "A voluntary switch is a task giving up the CPU (blocking in recv()); an involuntary one is \
                the scheduler taking it away (preemption) because another runnable task deserves the CPU. \
                The reader here computes 8 ms per packet, longer than a scheduler time slice: alone it \
                only ever blocks; with a competitor on its CPU it is also preempted.",
        questions: &[
            "How many voluntary and involuntary switches per packet, alone and with a competitor?",
            "Why are there no involuntary switches without a competitor?",
            "How does preemption show in the journeys' syscall stage?",
        ],
    },
];

fn phases(name: &str, short: bool, reader_cpu: usize) -> Vec<Phase> {
    let n = |long: u32, short_n: u32| if short { short_n } else { long };
    let _ = reader_cpu;
    match name {
        "wakeup" => vec![Phase::new("blocked reader", n(200, 10), 50_000)],
        "scheduler" => {
            let base = |label| Phase::new(label, n(120, 20), 20_000);
            vec![
                base("idle CPU"),
                Phase {
                    competitor: Some(Competitor::Nice(0)),
                    ..base("nice 0 competitor")
                },
                Phase {
                    competitor: Some(Competitor::Nice(-20)),
                    ..base("nice -20 competitor")
                },
                Phase {
                    competitor: Some(Competitor::Fifo),
                    ..base("SCHED_FIFO competitor")
                },
                Phase {
                    competitor: Some(Competitor::Nice(-20)),
                    reader_fifo: true,
                    ..base("SCHED_FIFO reader, nice -20 competitor")
                },
            ]
        }
        "napi" => vec![
            Phase {
                rps: true,
                ..Phase::new("100 packets/s", n(1000, 20), 10_000)
            },
            Phase {
                rps: true,
                ..Phase::new("10k packets/s", n(20000, 400), 100)
            },
            Phase {
                rps: true,
                ..Phase::new("as fast as possible", n(100_000, 4000), 0)
            },
        ],
        "ksoftirqd" => vec![Phase::new("flood", n(200_000, 50_000), 0)],
        "polling" => {
            let base = |label| Phase::new(label, n(200, 15), 20_000);
            vec![
                base("blocking recv"),
                Phase {
                    mode: "epoll",
                    ..base("epoll_wait")
                },
                Phase {
                    mode: "spin",
                    ..base("never sleeps (spin)")
                },
            ]
        }
        "switches" => {
            let base = |label| Phase {
                work_us: 8000,
                ..Phase::new(label, n(300, 15), 20_000)
            };
            vec![
                base("alone"),
                Phase {
                    competitor: Some(Competitor::Nice(0)),
                    ..base("nice 0 competitor")
                },
            ]
        }
        _ => Vec::new(),
    }
}

/// What one phase measured.
struct Measured {
    phase: Phase,
    journeys: Vec<Journey>,
    reader: Value,
    ksoftirqd_wakeups: u64,
}

impl Measured {
    fn p50(&self, stage: Stage) -> Option<u64> {
        let mut values: Vec<u64> = self
            .journeys
            .iter()
            .filter_map(|j| j.stages_ns.get(stage))
            .collect();
        values.sort_unstable();
        values.get(values.len() / 2).copied()
    }

    fn fraction(&self, test: impl Fn(&Journey) -> bool) -> f64 {
        self.journeys.iter().filter(|j| test(j)).count() as f64 / self.journeys.len().max(1) as f64
    }

    /// Mean packets per poll as the packets saw it (napi_work of each packet's poll).
    fn packets_per_poll(&self) -> Option<f64> {
        let works: Vec<f64> = self
            .journeys
            .iter()
            .filter_map(|j| j.napi_work.map(f64::from))
            .collect();
        (!works.is_empty()).then(|| works.iter().sum::<f64>() / works.len() as f64)
    }

    /// Distinct NET_RX softirq runs (raises that ran) per packet.
    fn raises_per_packet(&self) -> Option<f64> {
        let raises: std::collections::HashSet<(Option<u16>, u64)> = self
            .journeys
            .iter()
            .filter_map(|j| Some((j.cpu_softirq, j.ts.softirq_entry?)))
            .collect();
        (!self.journeys.is_empty()).then(|| raises.len() as f64 / self.journeys.len() as f64)
    }

    fn reader_number(&self, key: &str) -> u64 {
        self.reader[key].as_u64().unwrap_or(0)
    }

    fn to_json(&self) -> Value {
        let p50: serde_json::Map<String, Value> = Stage::ALL
            .iter()
            .map(|stage| (stage.name().to_owned(), json!(self.p50(*stage))))
            .collect();
        json!({
            "label": self.phase.label,
            "journeys": self.journeys.len(),
            "complete": self.journeys.iter().filter(|j| j.complete).count(),
            "p50_ns": p50,
            "wakeup_fraction": self.fraction(|j| j.stages_ns.wakeup.is_some()),
            "ksoftirqd_fraction": self.fraction(|j| j.softirq_in_ksoftirqd),
            "ksoftirqd_wakeups": self.ksoftirqd_wakeups,
            "packets_per_poll": self.packets_per_poll(),
            "softirq_runs_per_packet": self.raises_per_packet(),
            "reader": self.reader,
        })
    }
}

pub async fn run(command: LabCommand, verbose: bool) -> anyhow::Result<()> {
    let args = match command {
        LabCommand::List => {
            for lab in LABS {
                println!("{:<10} {}", lab.name, lab.summary);
            }
            return Ok(());
        }
        LabCommand::Run(args) => args,
    };
    let Some(lab) = LABS.iter().find(|lab| lab.name == args.name) else {
        let names: Vec<&str> = LABS.iter().map(|lab| lab.name).collect();
        bail!("no lab named {:?} (labs: {})", args.name, names.join(", "));
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        bail!("the labs need two CPUs (a sender and a reader CPU); this machine has {cpus}");
    }
    let reader_cpu = cpus - 1;
    // The tracer itself stays off the reader's CPU, so that only the phase's tasks run there.
    tracer::traffic::pin_to(0).context("pinning the tracer to CPU 0")?;
    if !args.json {
        println!("== lab {}: {} ==\n", lab.name, lab.summary);
        println!("{}\n", textwrap(lab.story));
    }
    let mut measured = Vec::new();
    for (index, phase) in phases(lab.name, args.short, reader_cpu)
        .into_iter()
        .enumerate()
    {
        if !args.json {
            eprintln!("tracer: lab: phase {}: {} ...", index + 1, phase.label);
        }
        let record = args.record.as_ref().map(|file| {
            let mut name = file.clone().into_os_string();
            name.push(format!(".{}.trc", index + 1));
            std::path::PathBuf::from(name)
        });
        measured.push(run_phase(phase, reader_cpu, record, verbose).await?);
    }
    let claims = claims(lab.name, &measured);
    if args.json {
        let phases: Vec<Value> = measured.iter().map(Measured::to_json).collect();
        let claims: Vec<Value> = claims
            .iter()
            .map(|(claim, holds)| json!({"claim": claim, "holds": holds}))
            .collect();
        println!(
            "{}",
            json!({"lab": lab.name, "phases": phases, "claims": claims})
        );
        return Ok(());
    }
    print_text(lab, &measured, &claims, args.answers);
    Ok(())
}

/// RPS steering of loopback to one CPU, undone on drop (also on failure or Ctrl-C).
struct RpsSteering {
    path: std::path::PathBuf,
    previous: String,
}

impl RpsSteering {
    fn to_cpu(cpu: usize) -> anyhow::Result<Self> {
        let path = std::path::PathBuf::from("/sys/class/net/lo/queues/rx-0/rps_cpus");
        let previous = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        std::fs::write(&path, format!("{:x}", 1u64 << cpu))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            path,
            previous: previous.trim().to_owned(),
        })
    }
}

impl Drop for RpsSteering {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.previous);
    }
}

async fn run_phase(
    phase: Phase,
    reader_cpu: usize,
    record: Option<std::path::PathBuf>,
    verbose: bool,
) -> anyhow::Result<Measured> {
    let _rps = if phase.rps {
        Some(RpsSteering::to_cpu(reader_cpu)?)
    } else {
        None
    };
    let exe = std::env::current_exe().context("finding the tracer executable")?;
    let competitor = match phase.competitor {
        Some(kind) => {
            let mut command = tokio::process::Command::new(&exe);
            command.args(["spin", "--cpu", &reader_cpu.to_string(), "--seconds", "300"]);
            match kind {
                Competitor::Nice(nice) => command.args(["--nice", &nice.to_string()]),
                Competitor::Fifo => command.arg("--fifo"),
            };
            let child = command
                .kill_on_drop(true)
                .spawn()
                .context("starting the competitor")?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            Some(child)
        }
        None => None,
    };
    let mut traffic = tokio::process::Command::new(&exe);
    traffic.args([
        "traffic",
        "--report",
        "--count",
        &phase.count.to_string(),
        "--gap-us",
        &phase.gap_us.to_string(),
        "--mode",
        phase.mode,
        "--reader-cpu",
        &reader_cpu.to_string(),
        "--sender-cpu",
        "0",
        "--work-us",
        &phase.work_us.to_string(),
    ]);
    if phase.reader_fifo {
        traffic.arg("--reader-fifo");
    }
    let mut child = traffic
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the traffic process")?;
    let pid = child.id().context("traffic process has no pid")?;
    let options = ProbeOptions {
        pid: Some(pid),
        journey_mode: true,
        kernel_log: verbose,
        // A flood must not lose events: 64 MiB holds a million events.
        ring_bytes: 64 << 20,
        ..ProbeOptions::default()
    };
    let output = LiveOutput {
        json: false,
        filter: JourneyFilter {
            pid: Some(pid),
            ..JourneyFilter::default()
        },
        count: None,
        interval: Duration::ZERO,
        keep_unsocketed: false,
        record,
        metrics: None,
        quiet: true,
        collect: true,
    };
    let mut go = child.stdin.take().context("traffic stdin")?;
    let mut report = child.stdout.take().context("traffic stdout")?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let ready = move |_: &tracer::probes::Probes| {
        let _ = ready_tx.send(());
    };
    let stop = async move {
        if ready_rx.await.is_ok() {
            let _ = go.write_all(b"go\n").await;
            let _ = go.flush().await;
        }
        let mut text = String::new();
        let _ = report.read_to_string(&mut text).await;
        let status = child.wait().await;
        let _ = done_tx.send((text, status));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stats = super::live::follow(&options, &output, IrqMap::from_system(), ready, stop).await?;
    if let Some(mut competitor) = competitor {
        let _ = competitor.kill().await;
    }
    let (text, status) = done_rx
        .await
        .context("the traffic process did not finish")?;
    let status = status.context("waiting for the traffic process")?;
    if !status.success() {
        bail!(
            "the traffic process of phase {:?} failed ({status})",
            phase.label
        );
    }
    let reader: Value =
        serde_json::from_str(text.trim()).context("the traffic process's report")?;
    Ok(Measured {
        phase,
        journeys: stats.collected,
        reader,
        ksoftirqd_wakeups: stats.engine.ksoftirqd_wakeups,
    })
}

/// The lab's measured claims: (what, whether it held on this run).
fn claims(lab: &str, m: &[Measured]) -> Vec<(String, bool)> {
    let p50 = |i: usize, stage| m[i].p50(stage).unwrap_or(0);
    match lab {
        "wakeup" => vec![
            (
                "every packet woke the blocked reader: a wakeup and a runqueue stage in at least 90% of journeys".to_owned(),
                m[0].fraction(|j| j.stages_ns.wakeup.is_some() && j.stages_ns.runqueue.is_some()) >= 0.9,
            ),
            (
                "the order is enqueue -> waking -> switch in -> recv return".to_owned(),
                m[0].journeys.iter().all(|j| {
                    let t = &j.ts;
                    match (t.sk_data_ready, t.waking, t.switch_in, t.recv_return) {
                        (Some(a), Some(b), Some(c), Some(d)) => a <= b && b <= c && c <= d,
                        _ => true,
                    }
                }),
            ),
        ],
        "scheduler" => vec![
            ("a nice -20 competitor makes the runqueue stage longer than an idle CPU".to_owned(), p50(2, Stage::Runqueue) > p50(0, Stage::Runqueue)),
            (
                "a SCHED_FIFO reader waits less than the nice 0 reader beside the same nice -20 competitor".to_owned(),
                p50(4, Stage::Runqueue) < p50(2, Stage::Runqueue),
            ),
        ],
        "napi" => {
            let per_poll: Vec<f64> = m.iter().map(|phase| phase.packets_per_poll().unwrap_or(0.0)).collect();
            vec![(
                "packets per poll grows with the rate".to_owned(),
                per_poll[2] > per_poll[0] && per_poll[2] > 1.0,
            )]
        }
        "ksoftirqd" => vec![(
            "during the flood NET_RX ran in ksoftirqd (or ksoftirqd was woken to run it)".to_owned(),
            m[0].fraction(|j| j.softirq_in_ksoftirqd) > 0.0 || m[0].ksoftirqd_wakeups > 0,
        )],
        "polling" => vec![
            ("the blocking reader is woken for at least 90% of packets".to_owned(), m[0].fraction(|j| j.stages_ns.wakeup.is_some()) >= 0.9),
            ("the spinning reader is never woken: no wakeup stage".to_owned(), m[2].fraction(|j| j.stages_ns.wakeup.is_some()) == 0.0),
            (
                "spinning costs far more CPU than blocking".to_owned(),
                m[2].reader_number("reader_cpu_ns") > 10 * m[0].reader_number("reader_cpu_ns").max(1),
            ),
        ],
        "switches" => vec![
            (
                "involuntary switches appear only with a competitor (most packets preempted with one, few alone)".to_owned(),
                m[1].reader_number("involuntary_switches") >= u64::from(m[1].phase.count) / 2
                    && m[0].reader_number("involuntary_switches") < u64::from(m[0].phase.count) / 4,
            ),
            (
                "the reader blocks voluntarily about once per packet either way".to_owned(),
                m.iter().all(|phase| phase.reader_number("voluntary_switches") >= u64::from(phase.phase.count) / 2),
            ),
        ],
        _ => Vec::new(),
    }
}

fn print_text(lab: &Lab, m: &[Measured], claims: &[(String, bool)], answers: bool) {
    let ns = |value: Option<u64>| value.map_or("-".to_owned(), human_ns);
    println!(
        "{:<40} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "phase", "packets", "poll", "stack", "wakeup", "runqueue", "total", "woken", "pkt/poll"
    );
    for phase in m {
        println!(
            "{:<40} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7.0}% {:>8}",
            phase.phase.label,
            phase.journeys.len(),
            ns(phase.p50(Stage::Poll)),
            ns(phase.p50(Stage::Stack)),
            ns(phase.p50(Stage::Wakeup)),
            ns(phase.p50(Stage::Runqueue)),
            ns(phase.p50(Stage::Total)),
            phase.fraction(|j| j.stages_ns.wakeup.is_some()) * 100.0,
            phase
                .packets_per_poll()
                .map_or("-".to_owned(), |v| format!("{v:.2}")),
        );
    }
    println!("(p50 per stage; reader: CPU time and context switches per phase below)");
    for phase in m {
        println!(
            "  {:<38} reader CPU {}, voluntary switches {}, involuntary {}",
            phase.phase.label,
            human_ns(phase.reader_number("reader_cpu_ns")),
            phase.reader_number("voluntary_switches"),
            phase.reader_number("involuntary_switches")
        );
    }
    if let Some(first) = m.first() {
        let mut sorted: Vec<&Journey> = first
            .journeys
            .iter()
            .filter(|j| j.stages_ns.total.is_some())
            .collect();
        sorted.sort_by_key(|j| j.stages_ns.total);
        if let Some(median) = sorted.get(sorted.len() / 2) {
            println!(
                "\na representative packet of phase \"{}\" (the median total):",
                first.phase.label
            );
            print!("{}", analysis::waterfall(median, 60));
        }
    }
    println!("\nmeasured claims:");
    for (claim, holds) in claims {
        println!(
            "  [{}] {claim}",
            if *holds {
                "holds"
            } else {
                "DOES NOT HOLD on this run"
            }
        );
    }
    println!("\nquestions:");
    for (index, question) in lab.questions.iter().enumerate() {
        println!("  {}. {question}", index + 1);
    }
    if answers {
        println!("\nmodel answers (from this run's numbers):");
        for line in model_answers(lab.name, m) {
            println!("  {line}");
        }
    }
}

fn model_answers(lab: &str, m: &[Measured]) -> Vec<String> {
    let ns = |value: Option<u64>| value.map_or("-".to_owned(), human_ns);
    match lab {
        "wakeup" => {
            let p = &m[0];
            let kernel = p.p50(Stage::Poll).unwrap_or(0) + p.p50(Stage::Stack).unwrap_or(0);
            let runqueue = p.p50(Stage::Runqueue).unwrap_or(0);
            let total = p.p50(Stage::Total).unwrap_or(1).max(1);
            vec![
                format!(
                    "1. poll + stack = {} vs runqueue = {}: {} is longer here.",
                    human_ns(kernel),
                    human_ns(runqueue),
                    if runqueue > kernel { "waiting for a CPU" } else { "the kernel's packet work" }
                ),
                format!("2. wakeup p50 = {}: the waking happens right after the enqueue, in the softirq.", ns(p.p50(Stage::Wakeup))),
                format!("3. runqueue / total = {:.0}% of the packet's time.", runqueue as f64 * 100.0 / total as f64),
            ]
        }
        "scheduler" => {
            let mut order: Vec<(&str, u64)> =
                m.iter().map(|phase| (phase.phase.label, phase.p50(Stage::Runqueue).unwrap_or(0))).collect();
            order.sort_by_key(|(_, ns)| *ns);
            let idle = m[0].p50(Stage::Runqueue).unwrap_or(1).max(1);
            vec![
                format!(
                    "1. {}. An idle vCPU has to leave its idle state first; a busy CPU only reschedules.",
                    order.iter().map(|(label, ns)| format!("{label} {}", human_ns(*ns))).collect::<Vec<_>>().join(" < ")
                ),
                format!(
                    "2. nice -20: {:.1}x the idle CPU's runqueue p50.",
                    m[2].p50(Stage::Runqueue).unwrap_or(0) as f64 / idle as f64
                ),
                format!(
                    "3. SCHED_FIFO reader: {} vs {}: a real-time task preempts any normal one at once.",
                    ns(m[4].p50(Stage::Runqueue)),
                    ns(m[2].p50(Stage::Runqueue))
                ),
                format!(
                    "4. SCHED_FIFO hog: {} vs nice -20 hog: {}. Since 6.12 the fair server reserves 50 ms per \
                     second for normal tasks and runs them when they wake; a reader needing microseconds per \
                     packet never exhausts it. The nice -20 hog is a normal task: EEVDF lets it finish its slice.",
                    ns(m[3].p50(Stage::Runqueue)),
                    ns(m[2].p50(Stage::Runqueue))
                ),
            ]
        }
        "napi" => m
            .iter()
            .map(|phase| {
                format!(
                    "{}: {:.2} packets per poll, {:.2} NET_RX runs per packet.",
                    phase.phase.label,
                    phase.packets_per_poll().unwrap_or(0.0),
                    phase.raises_per_packet().unwrap_or(0.0)
                )
            })
            .collect(),
        "ksoftirqd" => {
            let p = &m[0];
            let (in_thread, elsewhere): (Vec<&Journey>, Vec<&Journey>) =
                p.journeys.iter().partition(|j| j.softirq_in_ksoftirqd);
            let median = |set: &[&Journey]| {
                let mut values: Vec<u64> = set.iter().filter_map(|j| j.stages_ns.softirq_wait).collect();
                values.sort_unstable();
                values.get(values.len() / 2).copied()
            };
            vec![
                format!("1. {} of {} packets in ksoftirqd; ksoftirqd woken {} times.", in_thread.len(), p.journeys.len(), p.ksoftirqd_wakeups),
                format!("2. softirq_wait p50: in ksoftirqd {}, elsewhere {}.", ns(median(&in_thread)), ns(median(&elsewhere))),
                "3. So that a flood cannot starve every task: the thread competes for the CPU like the others.".to_owned(),
            ]
        }
        "polling" => m
            .iter()
            .map(|phase| {
                format!(
                    "{}: wakeup stage in {:.0}% of packets, reader CPU {} per packet.",
                    phase.phase.label,
                    phase.fraction(|j| j.stages_ns.wakeup.is_some()) * 100.0,
                    human_ns(phase.reader_number("reader_cpu_ns") / u64::from(phase.phase.count.max(1)))
                )
            })
            .collect(),
        "switches" => m
            .iter()
            .map(|phase| {
                let n = f64::from(phase.phase.count.max(1));
                format!(
                    "{}: {:.2} voluntary and {:.2} involuntary switches per packet; syscall p50 {}.",
                    phase.phase.label,
                    phase.reader_number("voluntary_switches") as f64 / n,
                    phase.reader_number("involuntary_switches") as f64 / n,
                    ns(phase.p50(Stage::Syscall))
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn textwrap(text: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line + word.len() > 92 {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}
