//! `tracer top`: a full-screen live view of journeys per process, flow, device or CPU.

use std::{io::IsTerminal as _, time::Duration};

use clap::{Args, ValueEnum};
use tracer::{
    host::irqmap::IrqMap,
    session::top::{TopOptions, run as run_top},
    sink::top::{
        GroupBy,
        terminal::{TerminalError, wants_color},
    },
};

use tracer::journey::JourneyFilter;

use super::{FlowArgs, ProbeArgs, RingArgs, SelectArgs, duration_arg, tracepoint_arg};

/// What `top` makes a row of (`--by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// Reading process (pid and task name).
    Process,
    /// Protocol, addresses and ports of the packets.
    Flow,
    /// Network device that received the packets.
    Dev,
    /// CPU the reader ran on when recv() returned.
    Cpu,
}

impl From<By> for GroupBy {
    fn from(by: By) -> Self {
        match by {
            By::Process => GroupBy::Process,
            By::Flow => GroupBy::Flow,
            By::Dev => GroupBy::Dev,
            By::Cpu => GroupBy::Cpu,
        }
    }
}

/// Options of `tracer top`.
#[derive(Clone, Debug, Args)]
pub struct TopArgs {
    /// Which journeys (shared with the other journey commands).
    #[command(flatten)]
    pub select: SelectArgs,
    /// Rows per process, flow, device or CPU (`g` switches while it runs).
    #[arg(long, value_enum, default_value_t = By::Process)]
    pub by: By,
    /// How often the numbers move (at least 100ms).
    #[arg(long, value_parser = refresh_arg, default_value = "1s")]
    pub refresh: Duration,
    /// Do not attach this tracepoint (`category:name` or `name`); repeatable.
    #[arg(long, value_name = "TRACEPOINT", value_parser = tracepoint_arg)]
    pub without: Vec<String>,
    /// Do not read kernel BTF: no packet headers (no flows), no TCP sequence numbers.
    #[arg(long)]
    pub without_btf: bool,
    /// Ring buffer size and wakeups.
    #[command(flatten)]
    pub ring: RingArgs,
    /// Which packets (a filter expression, `--port`), as for `live`.
    #[command(flatten)]
    pub flow: FlowArgs,
}

/// Parses `--refresh`: a duration of at least 100 ms (a faster screen is not readable and
/// costs the traced host).
fn refresh_arg(text: &str) -> Result<Duration, String> {
    let refresh = duration_arg(text)?;
    if refresh < Duration::from_millis(100) {
        return Err("at least 100ms".to_owned());
    }
    Ok(refresh)
}

/// Runs the view until `q`, Ctrl-C or SIGTERM, then prints one line of totals on stderr.
pub async fn run(args: TopArgs) -> anyhow::Result<()> {
    // Before loading anything: the view needs a terminal.
    if !std::io::stdout().is_terminal() {
        return Err(TerminalError::NotATerminal.into());
    }
    let irqs = IrqMap::from_system();
    args.select.check(&irqs)?;
    let flow = args.flow.flow()?;
    let options = ProbeArgs {
        pid: args.select.kernel_pid(),
        cpu: None,
        without: &args.without,
        without_btf: args.without_btf,
        ring: &args.ring,
        flow: flow.clone(),
    }
    // No kernel log: its lines would be written across the screen.
    .journeys(false);
    let top = TopOptions {
        filter: JourneyFilter {
            flow,
            ..args.select.journey_filter()
        },
        by: args.by.into(),
        refresh: args.refresh,
        color: wants_color(
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("TERM").as_deref(),
        ),
    };
    let stats = run_top(&options, &top, irqs).await?;
    let per_cpu: Vec<String> = stats
        .lost_per_cpu
        .iter()
        .enumerate()
        .map(|(cpu, n)| format!("cpu{cpu}={n}"))
        .collect();
    eprintln!(
        "tracer top: {} journeys since the last reset ({} complete, {} incomplete); lost events {} ({})",
        stats.journeys,
        stats.complete,
        stats.journeys - stats.complete,
        stats.lost_per_cpu.iter().sum::<u64>(),
        per_cpu.join(" ")
    );
    Ok(())
}
