//! A UDP flood to one port while `tracer live` filters for another (issue 13): how much of
//! the flood still reaches the tracer (events read per 1,000 flood datagrams, target <= 1),
//! and its CPU, beside the same flood traced unfiltered and untraced. Configurations are
//! alternated; the flood's datagrams are counted by the kernel (`/proc/net/snmp`).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::peers::{Running, TracerExit, cpu_ticks, kill, start_flood, ticks_per_second};

/// The quiet flow the filter selects: nothing is sent there, so every event read is a leak.
pub const FILTER: &str = "udp and dst port 9";

/// One configuration's figures, summed over its runs.
#[derive(Default)]
pub struct Figures {
    pub seconds: f64,
    /// UDP datagrams the kernel delivered (InDatagrams + InErrors).
    pub datagrams: u64,
    pub events: u64,
    pub lost: u64,
    /// The tracer's CPU, user + system seconds.
    pub cpu: f64,
}

impl Figures {
    pub fn datagrams_per_second(&self) -> f64 {
        self.datagrams as f64 / self.seconds.max(1e-9)
    }
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
    pub fn events_per_thousand(&self) -> f64 {
        self.events as f64 * 1000.0 / self.datagrams.max(1) as f64
    }
    pub fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu / self.seconds.max(1e-9)
    }
}

/// Results: no tracer, unfiltered, filtered.
pub struct Filtered {
    pub seconds: u64,
    pub rounds: usize,
    pub untraced: Figures,
    pub unfiltered: Figures,
    pub filtered: Figures,
}

pub fn measure(tracer: &Path, dir: &Path, quick: bool) -> anyhow::Result<Filtered> {
    let (seconds, rounds) = if quick { (3, 1) } else { (10, 3) };
    let mut result = Filtered {
        seconds,
        rounds,
        untraced: Figures::default(),
        unfiltered: Figures::default(),
        filtered: Figures::default(),
    };
    for _ in 0..rounds {
        run(tracer, dir, seconds, None, &mut result.untraced)?;
        run(tracer, dir, seconds, Some(false), &mut result.unfiltered)?;
        run(tracer, dir, seconds, Some(true), &mut result.filtered)?;
    }
    Ok(result)
}

/// UDP datagrams the stack delivered or dropped at the socket so far.
fn udp_datagrams() -> anyhow::Result<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").context("reading /proc/net/snmp")?;
    let mut lines = snmp.lines().filter(|line| line.starts_with("Udp: "));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        anyhow::bail!("no Udp lines in /proc/net/snmp");
    };
    let value = |name: &str| -> u64 {
        names
            .split_whitespace()
            .position(|field| field == name)
            .and_then(|at| values.split_whitespace().nth(at))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    Ok(value("InDatagrams") + value("InErrors"))
}

/// One flood of `seconds`, traced (`Some(filtered)`) or not; adds to `into`.
fn run(
    tracer: &Path,
    dir: &Path,
    seconds: u64,
    traced: Option<bool>,
    into: &mut Figures,
) -> anyhow::Result<()> {
    let running = match traced {
        Some(filtered) => {
            let mut args = vec!["live".to_owned(), "--json".to_owned()];
            if filtered {
                args.push(FILTER.to_owned());
            }
            Some(Running::start(
                &tracer.display().to_string(),
                &args,
                dir,
                super::peers::TRACER_READY,
            )?)
        }
        None => None,
    };
    let cpu0 = match &running {
        Some(running) => cpu_ticks(running.pid())?,
        None => (0, 0),
    };
    let before = udp_datagrams()?;
    let started = Instant::now();
    let mut flood = start_flood(tracer)?;
    std::thread::sleep(Duration::from_secs(seconds));
    // SAFETY: signalling our own child.
    unsafe { kill(flood.id() as i32, 9) };
    let _ = flood.wait();
    into.seconds += started.elapsed().as_secs_f64();
    into.datagrams += udp_datagrams()? - before;
    if let Some(running) = running {
        let cpu1 = cpu_ticks(running.pid())?;
        let exit = TracerExit::parse(&running.stop()?)?;
        into.events += exit.events;
        into.lost += exit.lost;
        into.cpu += ((cpu1.0 - cpu0.0) + (cpu1.1 - cpu0.1)) as f64 / ticks_per_second();
    }
    Ok(())
}
