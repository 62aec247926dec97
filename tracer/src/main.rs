//! The `tracer` command line.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Follow every received packet from the NIC interrupt to recv() returning, with eBPF.
///
/// Needs root, or CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN on kernels before 5.8).
#[derive(Debug, Parser)]
#[command(name = "tracer", version, propagate_version = true)]
struct Cli {
    /// More detail on stderr, including the eBPF programs' own log messages.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Follow every received packet: one line per journey, per-stage summaries.
    Live(cli::live::LiveArgs),
    /// A full-screen live view: journeys per process, flow, device or CPU, with each stage's
    /// p50/p99, where the median journey's time goes, histograms and the slowest journey.
    ///
    /// Keys: arrows or j/k select a row, s/S sort by the next/previous column, g groups by
    /// process, flow, device or CPU, p pauses, r resets, q or Ctrl-C quits. NO_COLOR=1 (or a
    /// terminal without colours) draws without colour.
    Top(cli::top::TopArgs),
    /// Record raw events to a file for later analysis (`tracer report`).
    Record(cli::record::RecordArgs),
    /// Journeys and summaries from recordings (several: merged, a section per host): the
    /// same engine as `live`.
    #[command(override_usage = "tracer report [OPTIONS] <RECORDING>... [FILTER]...")]
    Report(cli::record::ReportArgs),
    /// Export a recording's journeys: Perfetto trace, JSON lines, CSV or Parquet.
    Export(cli::record::ExportArgs),
    /// Check what this host can trace and which journey stages it would miss.
    /// Exit status: 0 full journeys, 1 degraded, 2 nothing can run.
    Doctor(cli::doctor::DoctorArgs),
    /// Print the raw event stream, one decoded event per line (like `perf script`).
    Events(cli::events::EventsArgs),
    /// Make loopback UDP traffic and show its packets' journeys (a self-contained demo).
    Demo(cli::demo::DemoArgs),
    /// Run a lab exercise: interrupts wake the kernel, the kernel wakes processes, the
    /// scheduler decides when they run, measured on this machine.
    #[command(subcommand)]
    Lab(cli::lab::LabCommand),
    /// Internal: the demo's and labs' traffic process (a UDP reader and sender on loopback).
    #[command(hide = true)]
    Traffic(cli::demo::TrafficArgs),
    /// Internal: a CPU-bound competitor for the labs.
    #[command(hide = true)]
    Spin(cli::demo::SpinArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tracer: error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let done = |result: anyhow::Result<()>| result.map(|()| 0u8);
        match cli.command {
            Command::Live(args) => done(cli::live::run(args, cli.verbose).await),
            Command::Top(args) => done(cli::top::run(args).await),
            Command::Record(args) => done(cli::record::record(args, cli.verbose).await),
            Command::Report(args) => done(cli::record::report(args)),
            Command::Export(args) => done(cli::record::export(args)),
            Command::Doctor(args) => cli::doctor::run(args).await,
            Command::Events(args) => done(cli::events::run(args, cli.verbose).await),
            Command::Demo(args) => done(cli::demo::run(args, cli.verbose).await),
            Command::Traffic(args) => done(cli::demo::traffic(args)),
            Command::Spin(args) => done(cli::demo::spin(args)),
            Command::Lab(command) => done(cli::lab::run(command, cli.verbose).await),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // The message may quote a file's or the host's text: no terminal control in it.
            let message = format!("{err:#}");
            eprintln!("tracer: error: {}", tracer::sink::escape::text(&message));
            ExitCode::from(cli::exit_code(&err))
        }
    }
}

fn init_logging(verbose: bool) {
    use std::io::Write as _;
    let mut builder = env_logger::Builder::new();
    builder.filter_level(log::LevelFilter::Warn);
    if verbose {
        // Our own detail and the eBPF programs' messages; aya's loader chatter stays out.
        builder
            .filter_level(log::LevelFilter::Info)
            .filter_module("tracer", log::LevelFilter::Debug);
    }
    builder
        .parse_env("TRACER_LOG")
        .format(|buf, record| {
            let level = record.level().as_str().to_lowercase();
            writeln!(buf, "tracer: {level}: {}", record.args())
        })
        .init();
}
