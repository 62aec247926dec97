//! The highest event rate `tracer live` holds with zero lost events, and its CPU per event.
//!
//! Load steps, each held for the same time: a loopback UDP flood (a reader blocked in
//! recv(), a sender as fast as it goes), then that plus `perf bench sched pipe` pinned to one
//! CPU (two tasks switching through pipe reads), then two floods plus the pipe.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::peers::{Running, TracerExit, cpu_ticks, kill, start_flood, ticks_per_second};

pub struct Step {
    pub load: &'static str,
    pub seconds: f64,
    pub exit: TracerExit,
    /// The tracer's CPU over the load, in seconds: user, system.
    pub user: f64,
    pub system: f64,
    /// irq_work interrupts on the host over the load (`IWI` in /proc/interrupts): the
    /// ring buffer's wakeups of the tracer are self-IPIs of this kind.
    pub irq_work: u64,
}

impl Step {
    pub fn rate(&self) -> f64 {
        self.exit.events as f64 / self.seconds
    }

    pub fn user_ns_per_event(&self) -> f64 {
        self.user * 1e9 / self.exit.events.max(1) as f64
    }

    pub fn irq_work_per_second(&self) -> f64 {
        self.irq_work as f64 / self.seconds
    }

    pub fn cpu_ns_per_event(&self) -> f64 {
        (self.user + self.system) * 1e9 / self.exit.events.max(1) as f64
    }
}

const STEPS: [(&str, usize, bool); 3] = [
    ("UDP flood", 1, false),
    ("UDP flood + sched pipe", 1, true),
    ("2 UDP floods + sched pipe", 2, true),
];

pub fn measure(tracer: &Path, dir: &Path, quick: bool) -> anyhow::Result<(u64, Vec<Step>)> {
    let seconds = if quick { 3 } else { 30 };
    let mut steps = Vec::new();
    for (load, floods, pipe) in STEPS {
        steps.push(step(tracer, dir, seconds, load, floods, pipe)?);
    }
    Ok((seconds, steps))
}

fn step(
    tracer: &Path,
    dir: &Path,
    seconds: u64,
    load: &'static str,
    floods: usize,
    pipe: bool,
) -> anyhow::Result<Step> {
    let running = Running::start(
        &tracer.display().to_string(),
        &["live".into(), "--json".into()],
        dir,
        super::peers::TRACER_READY,
    )?;
    let (user0, system0) = cpu_ticks(running.pid())?;
    let irq_work0 = irq_work_interrupts()?;
    let started = Instant::now();
    let mut loads: Vec<Child> = Vec::new();
    for _ in 0..floods {
        loads.push(start_flood(tracer)?);
    }
    if pipe {
        loads.push(
            Command::new("taskset")
                .args([
                    "-c",
                    "1",
                    "perf",
                    "bench",
                    "sched",
                    "pipe",
                    "-T",
                    "-l",
                    "4000000000",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting perf bench sched pipe")?,
        );
    }
    std::thread::sleep(Duration::from_secs(seconds));
    for load in &mut loads {
        // SAFETY: signalling our own child (a single process: traffic's reader is a thread).
        unsafe { kill(load.id() as i32, 9) };
        let _ = load.wait();
    }
    let (user1, system1) = cpu_ticks(running.pid())?;
    let irq_work = irq_work_interrupts()?.saturating_sub(irq_work0);
    let elapsed = started.elapsed().as_secs_f64();
    let exit = TracerExit::parse(&running.stop()?)?;
    let ticks = ticks_per_second();
    Ok(Step {
        load,
        seconds: elapsed,
        exit,
        user: (user1 - user0) as f64 / ticks,
        system: (system1 - system0) as f64 / ticks,
        irq_work,
    })
}

/// irq_work interrupts so far, summed over CPUs (the `IWI` row of /proc/interrupts).
fn irq_work_interrupts() -> anyhow::Result<u64> {
    let table = std::fs::read_to_string("/proc/interrupts")?;
    let row = table
        .lines()
        .find(|line| line.trim_start().starts_with("IWI:"))
        .context("no IWI row in /proc/interrupts")?;
    Ok(row
        .split_whitespace()
        .skip(1)
        .map_while(|field| field.parse::<u64>().ok())
        .sum())
}
