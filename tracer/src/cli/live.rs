//! `tracer live`: one line (or JSON object) per packet journey, and per-stage summaries.

use std::time::Duration;

use clap::Args;
use tracer::{
    host::irqmap::IrqMap,
    journey::JourneyFilter,
    session::{
        live::{LiveOutput, LiveRecording, follow},
        rotate::{RotateLimit, Rotation},
    },
};

use super::{
    FlowArgs, ProbeArgs, RingArgs, SelectArgs, duration_arg,
    record::{host_arg, rotate_arg},
    tracepoint_arg,
};

/// Options of `tracer live`.
#[derive(Clone, Debug, Args)]
pub struct LiveArgs {
    /// Stop after this long (e.g. 10s, 2m); default: until Ctrl-C.
    #[arg(short, long, value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Stop after this many journeys.
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,
    /// One journey object per line on stdout (DESIGN.md record); everything else on stderr.
    #[arg(long)]
    pub json: bool,
    /// Which journeys: --pid, --comm, --dev, --cpu (shared with `top`).
    #[command(flatten)]
    pub select: SelectArgs,
    /// Also show packets that never reached a socket (ACKs, ARP, ...).
    #[arg(long)]
    pub all: bool,
    /// Print a summary this often (0: only at exit).
    #[arg(long, value_parser = duration_arg, default_value = "5s")]
    pub interval: Duration,
    /// Do not attach this tracepoint (`category:name` or `name`); repeatable.
    #[arg(long, value_name = "TRACEPOINT", value_parser = tracepoint_arg)]
    pub without: Vec<String>,
    /// Do not read kernel BTF: no packet headers, no TCP sequence numbers (what a kernel
    /// without BTF gives; TCP journeys then follow byte counts, docs/tcp.md).
    #[arg(long)]
    pub without_btf: bool,
    #[command(flatten)]
    pub ring: RingArgs,
    /// Also record the raw events to FILE (as `tracer record` does).
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
    /// With --record: a ring of files FILE's NAME.0001.EXT, NAME.0002.EXT, ..., each a
    /// complete recording, the next begun at a size (`100M`) or an age (`10m`), as
    /// `tracer record --rotate`.
    #[arg(long, value_name = "SIZE|DURATION", requires = "record", value_parser = rotate_arg)]
    pub rotate: Option<RotateLimit>,
    /// With --rotate: keep at most this many files (the oldest are removed).
    #[arg(long, value_name = "N", default_value_t = 10, requires = "rotate",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    /// With --record: the host name to write in the recording's metadata instead of this
    /// host's, as `tracer record --host`.
    #[arg(long, value_name = "NAME", requires = "record", value_parser = host_arg)]
    pub host: Option<String>,
    /// Serve Prometheus/OpenMetrics metrics on ADDR (e.g. 127.0.0.1:9464), path /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// No journey lines, only summaries (and metrics).
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub flow: FlowArgs,
}

pub async fn run(args: LiveArgs, verbose: bool) -> anyhow::Result<()> {
    let irqs = IrqMap::from_system();
    args.select.check(&irqs)?;
    let flow = args.flow.flow()?;
    let options = ProbeArgs {
        // The kernel filters one process; several are told apart in user space.
        pid: args.select.kernel_pid(),
        cpu: None,
        without: &args.without,
        without_btf: args.without_btf,
        ring: &args.ring,
        flow: flow.clone(),
    }
    .journeys(verbose);
    let output = LiveOutput {
        json: args.json,
        filter: JourneyFilter {
            flow,
            ..args.select.journey_filter()
        },
        count: args.count,
        interval: args.interval,
        keep_unsocketed: args.all,
        record: args.record.clone().map(|path| LiveRecording {
            path,
            rotation: args.rotate.map(|limit| Rotation {
                limit,
                keep: args.keep as usize,
            }),
            host: args.host.clone(),
        }),
        metrics: args.metrics,
        quiet: args.quiet,
        collect: false,
    };
    let stop = async move {
        match args.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    follow(&options, &output, irqs, |_| {}, stop)
        .await
        .map(|_| ())
}
