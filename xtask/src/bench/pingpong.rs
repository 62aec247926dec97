//! Latency overhead on a loopback UDP ping-pong (sockperf), and each eBPF program's cost
//! (bpf_stats, in a run of its own so its accounting does not weigh on the latencies).

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Context as _;

use super::peers::{Config, Measured, TracerTotals, WarmCpus, alternate};

pub struct PingPong {
    pub seconds: u64,
    pub rounds: usize,
    /// (configuration, median average latency in us), "no tracer" first: idle CPUs halt.
    pub latency: Vec<(Config, f64)>,
    /// The same with SCHED_IDLE spinners keeping every CPU out of halt, with the fastest and
    /// slowest run.
    pub warm: Vec<Measured>,
    /// Over the tracer's latency runs: complete journeys and sockperf's packets (both ways).
    pub journeys: u64,
    pub packets: u64,
    pub lost: u64,
    /// The bpf_stats runs: the default (BTF tracepoints), batched, classic.
    pub costs: Vec<Costs>,
}

/// One bpf_stats run of a tracer configuration.
pub struct Costs {
    /// Per program: (name, runs, ns per run).
    pub programs: Vec<(String, u64, f64)>,
    /// Packets sockperf sent and received in the run, for eBPF ns per packet.
    pub packets: u64,
    /// The tracer's exit line on recursion misses (runs the kernel skipped).
    pub recursion_misses: String,
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

    /// ns per packet of the program named `name`, if it ran.
    pub fn program_ns_per_packet(&self, name: &str) -> Option<f64> {
        self.programs
            .iter()
            .find(|(program, ..)| program == name)
            .map(|(_, runs, ns)| *runs as f64 * ns / self.packets.max(1) as f64)
    }
}

struct Sockperf {
    avg_us: f64,
    /// Messages sent and received by the client.
    packets: u64,
}

const PORT: &str = "11911";

fn ping_pong(seconds: u64) -> anyhow::Result<Sockperf> {
    let out = Command::new("sockperf")
        .args([
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
    let result = rounds_of(tracer, dir, seconds, rounds);
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
) -> anyhow::Result<Vec<Measured>> {
    alternate(tracer, dir, rounds, totals, || {
        ping_pong(seconds).map(|run| (run.avg_us, run.packets))
    })
}

fn rounds_of(tracer: &Path, dir: &Path, seconds: u64, rounds: usize) -> anyhow::Result<PingPong> {
    let mut totals = TracerTotals::default();
    super::progress("UDP ping-pong (sockperf), CPUs halting when idle");
    let latency = latencies(tracer, dir, seconds, rounds, &mut totals)?
        .into_iter()
        .map(|measured| (measured.config, measured.median))
        .collect();
    super::progress("UDP ping-pong (sockperf), CPUs kept busy");
    let warm = {
        let _spinners = WarmCpus::start()?;
        latencies(tracer, dir, seconds, rounds, &mut totals)?
    };
    super::progress("eBPF program costs (bpf_stats)");

    // bpf_stats on for one more tracer run only: the kernel's accounting has a cost of its own.
    crate::sh("sysctl", &["-q", "-w", "kernel.bpf_stats_enabled=1"])?;
    let stats: anyhow::Result<Vec<Costs>> = [
        Config::TracerLive,
        Config::TracerBatched,
        Config::TracerClassic,
    ]
    .into_iter()
    .map(|config| program_costs(tracer, dir, seconds, config))
    .collect();
    crate::sh("sysctl", &["-q", "-w", "kernel.bpf_stats_enabled=0"])?;
    let costs = stats?;
    Ok(PingPong {
        seconds,
        rounds,
        latency,
        warm,
        journeys: totals.journeys,
        packets: totals.workload,
        lost: totals.lost,
        costs,
    })
}

fn program_costs(tracer: &Path, dir: &Path, seconds: u64, config: Config) -> anyhow::Result<Costs> {
    let running = config.start(tracer, dir)?.expect("a tracer");
    // This tracer's own programs only: another tracer on the host sees the same packets.
    let own = program_ids(running.pid())?;
    let zero: BTreeMap<u64, (u64, u64)> = program_stats()?
        .into_iter()
        .map(|(id, _, time, runs)| (id, (time, runs)))
        .collect();
    let run = ping_pong(seconds);
    let mut programs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (id, name, run_time, runs) in program_stats()? {
        if own.contains(&id) {
            let (time0, runs0) = zero.get(&id).copied().unwrap_or_default();
            let entry = programs.entry(name).or_default();
            entry.0 += run_time - time0;
            entry.1 += runs - runs0;
        }
    }
    let stderr = running.stop()?;
    let recursion_misses = stderr
        .lines()
        .find_map(|line| line.split("recursion misses: ").nth(1))
        .unwrap_or("not reported")
        .to_owned();
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
