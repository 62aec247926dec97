//! Latency overhead on a loopback UDP ping-pong (sockperf), and each eBPF program's cost
//! (bpf_stats, in a run of its own so its accounting does not weigh on the latencies).

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Context as _;

use super::peers::{
    Config, Measured, Running, TracerExit, TracerTotals, WarmCpus, alternate, alternate_among,
};

/// The configurations of [`PingPong::attach_floor`], in its order.
pub const ATTACH_FLOOR: [Config; 5] = [
    Config::NoTracer,
    Config::TracerFloorEmpty,
    Config::TracerFloorClock,
    Config::TracerEntryMarks,
    Config::TracerLive,
];

pub struct PingPong {
    pub seconds: u64,
    pub rounds: usize,
    /// (configuration, median average latency in us), "no tracer" first: idle CPUs halt.
    pub latency: Vec<(Config, f64)>,
    /// The same with SCHED_IDLE spinners keeping every CPU out of halt, with the fastest and
    /// slowest run.
    pub warm: Vec<Measured>,
    /// CPUs kept busy as in `warm`, client and server pinned: each placement this machine
    /// has CPUs for.
    pub pinned: Vec<(Placement, Vec<Measured>)>,
    /// CPUs busy, both ends on one CPU: no tracer, the tracer's programs attached but each
    /// returning at once, each reading the clock and returning, and the tracer as it is
    /// ([`ATTACH_FLOOR`]).
    pub attach_floor: Vec<Measured>,
    /// Over the tracer's latency runs: complete journeys and sockperf's packets (both ways).
    pub journeys: u64,
    pub packets: u64,
    pub lost: u64,
    /// The bpf_stats runs: the default (BTF tracepoints), batched, classic.
    pub costs: Vec<Costs>,
    /// Alternated rounds the bpf_stats runs of [`Self::costs`] add up.
    pub cost_rounds: usize,
    /// What bpf_stats counts for programs that do (next to) nothing, on this kernel.
    pub floor: Floor,
}

/// The least a program run costs as bpf_stats counts it, measured with bpftrace on the
/// classic `irq:softirq_exit` and `sched:sched_switch` during a ping-pong: an empty program,
/// and one that reads the clock once (`nsecs`, bpf_ktime_get_ns: every tracer event is
/// stamped so). ns per run, over both tracepoints.
pub struct Floor {
    pub empty_ns: f64,
    pub clock_ns: f64,
}

impl Floor {
    /// What one clock read adds to a run.
    pub fn clock_read_ns(&self) -> f64 {
        self.clock_ns - self.empty_ns
    }
}

/// One bpf_stats run of a tracer configuration.
pub struct Costs {
    /// Per program: (name, runs, ns per run).
    pub programs: Vec<(String, u64, f64)>,
    /// Packets sockperf sent and received in the run, for eBPF ns per packet.
    pub packets: u64,
    /// The tracer's exit line on recursion misses (runs the kernel skipped).
    pub recursion_misses: String,
    /// Events the tracer read in the run (each one stamped by a clock read).
    pub events: u64,
}

impl Costs {
    /// eBPF ns per ping-pong packet, all programs together.
    pub fn ns_per_packet(&self) -> f64 {
        let total: f64 = self
            .programs
            .iter()
            .map(|(_, runs, ns)| *runs as f64 * ns)
            .sum();
        total / self.packets.max(1) as f64
    }

    /// Program runs per packet, all programs together.
    pub fn runs_per_packet(&self) -> f64 {
        let runs: u64 = self.programs.iter().map(|(_, runs, _)| runs).sum();
        runs as f64 / self.packets.max(1) as f64
    }

    /// Events per packet.
    pub fn events_per_packet(&self) -> f64 {
        self.events as f64 / self.packets.max(1) as f64
    }

    /// This run's counts and another's of the same configuration together.
    pub fn merge(mut self, other: Costs) -> Costs {
        for (name, runs, ns) in other.programs {
            match self.programs.iter_mut().find(|(mine, ..)| *mine == name) {
                Some((_, my_runs, my_ns)) => {
                    let total = *my_runs as f64 * *my_ns + runs as f64 * ns;
                    *my_runs += runs;
                    *my_ns = total / (*my_runs).max(1) as f64;
                }
                None => self.programs.push((name, runs, ns)),
            }
        }
        self.programs
            .sort_by(|a, b| (b.1 as f64 * b.2).total_cmp(&(a.1 as f64 * a.2)));
        self.packets += other.packets;
        self.events += other.events;
        if other.recursion_misses != self.recursion_misses {
            self.recursion_misses =
                format!("{}; then {}", self.recursion_misses, other.recursion_misses);
        }
        self
    }

    /// ns per packet of the program named `name`, if it ran.
    pub fn program_ns_per_packet(&self, name: &str) -> Option<f64> {
        self.programs
            .iter()
            .find(|(program, ..)| program == name)
            .map(|(_, runs, ns)| *runs as f64 * ns / self.packets.max(1) as f64)
    }
}

/// The configurations of [`PingPong::costs`], in its order.
pub const COST_CONFIGS: [Config; 4] = [
    Config::TracerLive,
    Config::TracerBatched,
    Config::TracerClassic,
    Config::TracerEntryMarks,
];

/// Alternated bpf_stats runs of each of [`COST_CONFIGS`] for `rounds` latency rounds: 4
/// for the full bench's 5, 2 for --quick's 3. Two rounds were too few: on the 22:34 run
/// they put the entry marks' total 215 ns under the default's, where 4 alternated rounds
/// by hand right after put it 182 ns over (as every earlier run had).
pub fn cost_rounds(rounds: usize) -> usize {
    rounds.saturating_sub(1).max(1)
}

/// Where the ping-pong's client and server run.
///
/// Why pinned placements: left to the scheduler on two CPUs, the two ends share a CPU in
/// some runs (a round trip with no cross-CPU wakeup: about 9 us here) and not in others
/// (about 22 us), so a run's latency says mostly where its ends landed, and anything else
/// running (a tracer's own thread) moves that mixture. Pinned, the runs agree within a few
/// percent and a tracer's cost is not hidden by a placement it happened to cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Where the scheduler puts them.
    Free,
    /// Both on the last CPU: every wakeup is local.
    OneCpu,
    /// The server on CPU 0, the client on CPU 1: every wakeup crosses CPUs (an IPI).
    TwoCpus,
}

impl Placement {
    /// The placements a machine of `cpus` CPUs can pin.
    pub fn pinned(cpus: usize) -> Vec<Self> {
        match cpus {
            0 | 1 => vec![Self::OneCpu],
            _ => vec![Self::OneCpu, Self::TwoCpus],
        }
    }

    /// The table's words for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Free => "placed by the scheduler",
            Self::OneCpu => "client and server on one CPU",
            Self::TwoCpus => "client and server on two CPUs",
        }
    }

    /// (server, client) CPU lists for taskset, on a machine of `cpus` CPUs.
    fn cpus(self, cpus: usize) -> (String, String) {
        let all = format!("0-{}", cpus.max(1) - 1);
        let last = (cpus.max(1) - 1).to_string();
        match self {
            Self::Free => (all.clone(), all),
            Self::OneCpu => (last.clone(), last),
            Self::TwoCpus => ("0".into(), "1".into()),
        }
    }
}

/// Runs `work` with the sockperf server on `placement`'s CPUs, and lets it run anywhere
/// again after.
fn with_server_at<T>(
    server: u32,
    placement: Placement,
    work: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    place_server(server, placement)?;
    let result = work();
    place_server(server, Placement::Free)?;
    result
}

/// Moves every thread of the running sockperf server to its CPUs for `placement`.
fn place_server(server: u32, placement: Placement) -> anyhow::Result<()> {
    let (cpus, _) = placement.cpus(super::cpu_count());
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpus, &server.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    anyhow::ensure!(
        status.success(),
        "taskset -a -p -c {cpus} {server} failed ({status})"
    );
    Ok(())
}

struct Sockperf {
    avg_us: f64,
    /// Messages sent and received by the client.
    packets: u64,
}

const PORT: &str = "11911";

fn ping_pong(seconds: u64, placement: Placement) -> anyhow::Result<Sockperf> {
    let (_, client) = placement.cpus(super::cpu_count());
    let out = Command::new("taskset")
        .args([
            "-c",
            &client,
            "sockperf",
            "ping-pong",
            "-i",
            "127.0.0.1",
            "-p",
            PORT,
            "-t",
            &seconds.to_string(),
            "-m",
            "64",
        ])
        .output()
        .context("running sockperf ping-pong")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let number = |key: &str| -> Option<f64> {
        text.split(key)
            .nth(1)?
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?
            .parse()
            .ok()
    };
    let avg_us = number("avg-latency=")
        .with_context(|| format!("no avg-latency in sockperf output: {text}"))?;
    // "[Total Run] ... SentMessages=N; ReceivedMessages=M": every message the tracer saw.
    let total = text
        .split("[Total Run]")
        .nth(1)
        .with_context(|| format!("no [Total Run] in sockperf output: {text}"))?;
    let count = |key: &str| -> u64 {
        total
            .split(key)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok(Sockperf {
        avg_us,
        packets: count("SentMessages=") + count("ReceivedMessages="),
    })
}

pub fn measure(tracer: &Path, dir: &Path, quick: bool) -> anyhow::Result<PingPong> {
    let (seconds, rounds) = if quick { (2, 3) } else { (5, 5) };
    let mut server = Command::new("sockperf")
        .args(["server", "-i", "127.0.0.1", "-p", PORT])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting sockperf server")?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let result = rounds_of(tracer, dir, seconds, rounds, server.id());
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// Latencies of every configuration, alternated.
fn latencies(
    tracer: &Path,
    dir: &Path,
    seconds: u64,
    rounds: usize,
    totals: &mut TracerTotals,
    placement: Placement,
) -> anyhow::Result<Vec<Measured>> {
    alternate(tracer, dir, rounds, totals, || {
        ping_pong(seconds, placement).map(|run| (run.avg_us, run.packets))
    })
}

fn rounds_of(
    tracer: &Path,
    dir: &Path,
    seconds: u64,
    rounds: usize,
    server: u32,
) -> anyhow::Result<PingPong> {
    let mut totals = TracerTotals::default();
    super::progress("UDP ping-pong (sockperf), CPUs halting when idle");
    let latency = latencies(tracer, dir, seconds, rounds, &mut totals, Placement::Free)?
        .into_iter()
        .map(|measured| (measured.config, measured.median))
        .collect();
    let (warm, pinned, attach_floor) = {
        let _spinners = WarmCpus::start()?;
        super::progress("UDP ping-pong (sockperf), CPUs kept busy");
        let warm = latencies(tracer, dir, seconds, rounds, &mut totals, Placement::Free)?;
        let mut pinned = Vec::new();
        for placement in Placement::pinned(super::cpu_count()) {
            super::progress(&format!(
                "UDP ping-pong (sockperf), CPUs kept busy, {}",
                placement.name()
            ));
            let measured = with_server_at(server, placement, || {
                latencies(tracer, dir, seconds, rounds, &mut totals, placement)
            })?;
            pinned.push((placement, measured));
        }
        super::progress("UDP ping-pong (sockperf), one CPU: the cost of being attached");
        let floor = with_server_at(server, Placement::OneCpu, || {
            alternate_among(&ATTACH_FLOOR, tracer, dir, rounds, &mut totals, || {
                ping_pong(seconds, Placement::OneCpu).map(|run| (run.avg_us, run.packets))
            })
        })?;
        (warm, pinned, floor)
    };
    super::progress("eBPF program costs (bpf_stats)");

    // bpf_stats on for these tracer runs only: the kernel's accounting has a cost of its own.
    // Alternated, as the latency runs are: the VM's speed drifts over minutes.
    crate::sh("sysctl", &["-q", "-w", "kernel.bpf_stats_enabled=1"])?;
    let stats = (|| {
        let mut merged: Vec<Option<Costs>> = COST_CONFIGS.iter().map(|_| None).collect();
        for _ in 0..cost_rounds(rounds) {
            for (config, total) in COST_CONFIGS.iter().zip(&mut merged) {
                let run = program_costs(tracer, dir, seconds, *config)?;
                *total = Some(match total.take() {
                    Some(before) => before.merge(run),
                    None => run,
                });
            }
        }
        anyhow::Ok(merged.into_iter().flatten().collect::<Vec<_>>())
    })();
    let floor = floor(dir, seconds);
    crate::sh("sysctl", &["-q", "-w", "kernel.bpf_stats_enabled=0"])?;
    let costs = stats?;
    let floor = floor?;
    Ok(PingPong {
        seconds,
        rounds,
        latency,
        warm,
        pinned,
        attach_floor,
        journeys: totals.journeys,
        packets: totals.workload,
        lost: totals.lost,
        costs,
        cost_rounds: cost_rounds(rounds),
        floor,
    })
}

/// [`Floor`]: two bpftrace runs around a ping-pong each (bpf_stats on), alternated twice.
fn floor(dir: &Path, seconds: u64) -> anyhow::Result<Floor> {
    const PROBES: [&str; 2] = ["irq:softirq_exit", "sched:sched_switch"];
    let script = |body: &str| -> String {
        PROBES
            .iter()
            .map(|probe| format!("tracepoint:{probe} {{ {body} }}\n"))
            .collect()
    };
    let empty = script("");
    // A test the verifier cannot drop: the clock is never 0.
    let clock = script("$t = nsecs; if ($t == 0) { printf(\"0\"); }");
    let (mut empty_ns, mut clock_ns) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        empty_ns.push(script_ns_per_run(&empty, dir, seconds)?);
        clock_ns.push(script_ns_per_run(&clock, dir, seconds)?);
    }
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    Ok(Floor {
        empty_ns: mean(&empty_ns),
        clock_ns: mean(&clock_ns),
    })
}

/// ns per run over the programs of a bpftrace script during a ping-pong (bpf_stats on).
fn script_ns_per_run(script: &str, dir: &Path, seconds: u64) -> anyhow::Result<f64> {
    // bpftrace runs BEGIN once every probe is attached: well within 2 s for two.
    let running = Running::start("bpftrace", &["-e".into(), script.into()], dir, 2000)?;
    let measured = own_programs_over(running.pid(), || ping_pong(seconds, Placement::Free));
    running.stop()?;
    let (programs, run) = measured?;
    run?;
    let (time, runs) = programs
        .iter()
        .fold((0, 0), |(time, runs), (_, t, r)| (time + t, runs + r));
    anyhow::ensure!(runs > 0, "bpftrace's programs never ran");
    Ok(time as f64 / runs as f64)
}

/// One program over a measurement: (name, run_time ns, runs).
type ProgramDelta = (String, u64, u64);

/// What each eBPF program process `pid` holds cost over `work` (bpf_stats on): (name,
/// run_time ns, runs) per program, and what `work` returned. Another tracer on the host sees
/// the same packets: its programs are not counted.
fn own_programs_over<T>(
    pid: u32,
    work: impl FnOnce() -> T,
) -> anyhow::Result<(Vec<ProgramDelta>, T)> {
    let own = program_ids(pid)?;
    let zero: BTreeMap<u64, (u64, u64)> = program_stats()?
        .into_iter()
        .map(|(id, _, time, runs)| (id, (time, runs)))
        .collect();
    let result = work();
    let programs = program_stats()?
        .into_iter()
        .filter(|(id, ..)| own.contains(id))
        .map(|(id, name, run_time, runs)| {
            let (time0, runs0) = zero.get(&id).copied().unwrap_or_default();
            (name, run_time - time0, runs - runs0)
        })
        .collect();
    Ok((programs, result))
}

fn program_costs(tracer: &Path, dir: &Path, seconds: u64, config: Config) -> anyhow::Result<Costs> {
    let running = config.start(tracer, dir)?.expect("a tracer");
    let measured = own_programs_over(running.pid(), || ping_pong(seconds, Placement::Free));
    let stderr = running.stop()?;
    let (measured, run) = measured?;
    // Programs of one name (a tracepoint's program attached twice) counted together.
    let mut programs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (name, run_time, runs) in measured {
        let entry = programs.entry(name).or_default();
        entry.0 += run_time;
        entry.1 += runs;
    }
    let recursion_misses = stderr
        .lines()
        .find_map(|line| line.split("recursion misses: ").nth(1))
        .unwrap_or("not reported")
        .to_owned();
    let events = TracerExit::parse(&stderr)?.events;
    let mut programs: Vec<(String, u64, f64)> = programs
        .into_iter()
        .filter(|(_, (_, runs))| *runs > 0)
        .map(|(name, (run_time, runs))| (name, runs, run_time as f64 / runs as f64))
        .collect();
    // Costliest per packet first.
    programs.sort_by(|a, b| (b.1 as f64 * b.2).total_cmp(&(a.1 as f64 * a.2)));
    Ok(Costs {
        programs,
        packets: run?.packets,
        recursion_misses,
        events,
    })
}

/// Ids of the eBPF programs process `pid` holds (`prog_id:` of its fds' fdinfo).
fn program_ids(pid: u32) -> anyhow::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(info) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        ids.extend(
            info.lines()
                .filter_map(|line| line.strip_prefix("prog_id:"))
                .filter_map(|id| id.trim().parse::<u64>().ok()),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    anyhow::ensure!(!ids.is_empty(), "no eBPF program held by process {pid}");
    Ok(ids)
}

/// run_time_ns and run_cnt of every loaded program (`bpftool prog show`, bpf_stats on).
fn program_stats() -> anyhow::Result<Vec<(u64, String, u64, u64)>> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .context("running bpftool")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // A small hand parse keeps xtask free of a JSON dependency: one object per program.
    let mut programs = Vec::new();
    for object in text.split("},{") {
        let field = |key: &str| -> Option<&str> {
            let start = object.find(&format!("\"{key}\":"))? + key.len() + 3;
            let rest = &object[start..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Some(rest[..end].trim_matches('"'))
        };
        let (Some(id), Some(name)) = (field("id"), field("name")) else {
            continue;
        };
        let number = |key| field(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        programs.push((
            id.parse().unwrap_or(0),
            name.to_owned(),
            number("run_time_ns"),
            number("run_cnt"),
        ));
    }
    Ok(programs)
}
