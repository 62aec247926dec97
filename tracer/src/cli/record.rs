//! Arguments of `tracer record` (raw events to a file), `tracer report` (journeys from a file)
//! and `tracer export`.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use tracer::{
    journey::JourneyFilter,
    session::{
        replay,
        rotate::{RotateLimit, Rotation},
    },
};

use super::{FlowArgs, ProbeArgs, RingArgs, comm_arg, duration_arg, tracepoint_arg};

/// Options of `tracer record`.
#[derive(Clone, Debug, Args)]
pub struct RecordArgs {
    /// The recording to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Stop after this long (e.g. 30s); default: until Ctrl-C.
    #[arg(short, long, value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Always-on capture: for `-o NAME.EXT`, write a ring of files NAME.0001.EXT,
    /// NAME.0002.EXT, ... each a complete recording, beginning the next when this one reaches
    /// a size (`100M`, `1G`, `512K`, powers of 1024: a file is closed by the first event
    /// chunk that brings it to the size, so it is at most the size plus one chunk and the
    /// trailer) or an age (`10m`, `1h`, `30s`: at the 1s tick nearest to it).
    #[arg(long, value_name = "SIZE|DURATION", value_parser = rotate_arg)]
    pub rotate: Option<RotateLimit>,
    /// The host name to write in the recording's metadata instead of this host's
    /// (/proc/sys/kernel/hostname): `report` names each recording's section by it, so
    /// hosts (or containers) that share a name can be told apart.
    #[arg(long, value_name = "NAME", value_parser = host_arg)]
    pub host: Option<String>,
    /// With --rotate: keep at most this many files (the oldest are removed).
    #[arg(long, value_name = "N", default_value_t = 10, requires = "rotate",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    /// Only the readers in this process (packet-path events are kept from every context).
    #[arg(short, long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Do not attach this tracepoint (`category:name` or `name`); repeatable.
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

/// Options of `tracer report`.
#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// Recordings made by `tracer record` (one or more: files, or quoted patterns such as
    /// 'captures/*/*.trc' with `*`, `?`, `[...]`), then optionally a filter expression.
    ///
    /// The leading words that name existing files, or patterns that match files, are the
    /// recordings; the first other word and all after it are the filter expression (as for
    /// `live`, evaluated on the journeys' addresses and ports: tcp, udp, [src|dst] host
    /// ADDR, [src|dst] port N, net CIDR, and/or/not, ...). A word that can only be a file
    /// (it ends in .trc, or has a '/' and no space) but names none is an error, as is a
    /// pattern that matches nothing. A file named twice is read once. Several recordings
    /// (hosts, or the files of a `--rotate` ring) are each replayed by their own engine;
    /// the report merges their histograms and adds a section per host (named by the host
    /// recorded in each file, `host (file)` when two files share one), and with --json each
    /// journey gains `host` and `recording`.
    #[arg(value_name = "RECORDING|FILTER", required = true, num_args = 1..)]
    pub words: Vec<std::ffi::OsString>,
    /// Only packets from or to port N (shorthand for the expression `port N`; repeatable).
    #[arg(long, value_name = "N")]
    pub port: Vec<u16>,
    /// One journey object per line on stdout; the summary on stderr.
    #[arg(long)]
    pub json: bool,
    /// Journeys read by this process (repeatable): only they are shown and counted.
    #[arg(short, long, value_name = "PID")]
    pub pid: Vec<u32>,
    /// Journeys read by tasks with this name.
    #[arg(long, value_name = "COMM", value_parser = comm_arg)]
    pub comm: Option<String>,
    /// Journeys of packets received on this device.
    #[arg(long, value_name = "DEV")]
    pub dev: Option<String>,
    /// Also show packets that never reached a socket.
    #[arg(long)]
    pub all: bool,
    /// Also list every journey, one line each.
    #[arg(long)]
    pub list: bool,
    /// Draw this many of the slowest journeys as waterfalls.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub slowest: usize,
}

pub async fn record(args: RecordArgs, verbose: bool) -> anyhow::Result<()> {
    let options = ProbeArgs {
        pid: args.pid,
        cpu: None,
        without: &args.without,
        without_btf: args.without_btf,
        ring: &args.ring,
        flow: args.flow.flow()?,
    }
    .journeys(verbose);
    let rotation = args.rotate.map(|limit| Rotation {
        limit,
        keep: args.keep as usize,
    });
    tracer::session::record::record(
        &options,
        &args.output,
        args.duration,
        rotation,
        args.host.as_deref(),
    )
    .await
}

/// Checks `record --host`: a name of 1 to 255 bytes without control characters (it is
/// printed in reports).
pub fn host_arg(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 255 {
        return Err(format!(
            "a host name has 1 to 255 bytes, not {}",
            text.len()
        ));
    }
    if text.chars().any(char::is_control) {
        return Err("a host name has no control characters".to_owned());
    }
    Ok(text.to_owned())
}

/// Parses `--rotate`: a size (`512K`, `100M`, `1G`, `4096B`, also `KiB`/`MiB`/`GiB`; powers
/// of 1024, upper case) or a duration (`30s`, `10m`, `1h`; at least 1s).
pub fn rotate_arg(text: &str) -> Result<RotateLimit, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: Option<u64> = match unit {
        "B" => Some(1),
        "K" | "KiB" => Some(1 << 10),
        "M" | "MiB" => Some(1 << 20),
        "G" | "GiB" => Some(1 << 30),
        _ => None,
    };
    if let Some(scale) = scale {
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid size {text:?} (try 100M or 1G)"))?;
        let bytes = value * scale as f64;
        if !bytes.is_finite() || !(1.0..=(1u64 << 50) as f64).contains(&bytes) {
            return Err(format!("size {text:?} is out of range (1B .. 1024T)"));
        }
        return Ok(RotateLimit::Size(bytes as u64));
    }
    if unit.is_empty() {
        return Err(format!(
            "{text:?} has no unit: give a size (100M, 1G) or a duration (10m, 1h)"
        ));
    }
    let age = super::duration::parse(text)?;
    if age < Duration::from_secs(1) {
        return Err(format!(
            "rotating every {text:?} is too often (at least 1s)"
        ));
    }
    Ok(RotateLimit::Age(age))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_takes_a_size_or_a_duration() {
        assert_eq!(rotate_arg("100M"), Ok(RotateLimit::Size(100 << 20)));
        assert_eq!(rotate_arg("512K"), Ok(RotateLimit::Size(512 << 10)));
        assert_eq!(rotate_arg("1GiB"), Ok(RotateLimit::Size(1 << 30)));
        assert_eq!(rotate_arg("4096B"), Ok(RotateLimit::Size(4096)));
        assert_eq!(
            rotate_arg("10m"),
            Ok(RotateLimit::Age(Duration::from_secs(600)))
        );
        assert_eq!(
            rotate_arg("1h"),
            Ok(RotateLimit::Age(Duration::from_secs(3600)))
        );
        for bad in ["100", "0B", "500ms", "x", "10Q", "M"] {
            assert!(rotate_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_names_are_printable() {
        assert_eq!(host_arg("web-1"), Ok("web-1".to_owned()));
        for bad in ["", "a\u{1b}[31m", &"x".repeat(256)] {
            assert!(host_arg(bad).is_err(), "{bad:?}");
        }
    }
}

pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let (files, filter) = tracer::recording::paths::split_recordings(&args.words)?;
    let flow = FlowArgs {
        filter,
        port: args.port.clone(),
    };
    replay::report(
        &files,
        &replay::ReportOptions {
            json: args.json,
            list: args.list,
            slowest: args.slowest,
            keep_unsocketed: args.all,
            filter: JourneyFilter {
                pids: args.pid.clone(),
                comm: args.comm.clone(),
                dev: args.dev.clone(),
                cpu: None,
                flow: flow.flow()?,
            },
        },
    )
}

/// Output formats of `tracer export`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    /// A Perfetto trace (open it in ui.perfetto.dev).
    Perfetto,
    /// One journey JSON object per line (the DESIGN.md record).
    Jsonl,
    /// One row per journey.
    Csv,
    /// One typed row per journey, zstd-compressed, for DuckDB or Spark (docs/parquet.md).
    Parquet,
}

/// Options of `tracer export`.
#[derive(Clone, Debug, Args)]
pub struct ExportArgs {
    /// A recording made by `tracer record` or `tracer live --record`.
    pub file: PathBuf,
    /// What to write.
    #[arg(short, long, value_enum)]
    pub format: ExportFormat,
    /// Where to write it.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Also packets that never reached a socket.
    #[arg(long)]
    pub all: bool,
    /// With `--format parquet`: also every raw event of the recording, as a second Parquet
    /// table in this file (docs/parquet.md).
    #[arg(long, value_name = "EVENTS_OUT")]
    pub events: Option<PathBuf>,
    /// Journeys of the packets this expression selects (as for `report`).
    #[command(flatten)]
    pub flow: FlowArgs,
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let format = match args.format {
        ExportFormat::Perfetto => replay::Export::Perfetto,
        ExportFormat::Jsonl => replay::Export::Jsonl,
        ExportFormat::Csv => replay::Export::Csv,
        ExportFormat::Parquet => replay::Export::Parquet,
    };
    let filter = JourneyFilter {
        flow: args.flow.flow()?,
        ..JourneyFilter::default()
    };
    if args.events.is_some() && !matches!(args.format, ExportFormat::Parquet) {
        anyhow::bail!("--events writes Parquet: use it with --format parquet");
    }
    if let Some(events) = &args.events {
        for other in [&args.file, &args.output] {
            if same_file(events, other) {
                anyhow::bail!(
                    "--events {} is also {}: choose another file",
                    events.display(),
                    other.display()
                );
            }
        }
    }
    replay::export(&args.file, format, &args.output, args.all, &filter)?;
    if let Some(events) = &args.events {
        let rows = replay::export_events(&args.file, events)?;
        eprintln!("tracer: {rows} events written to {}", events.display());
    }
    Ok(())
}

/// Whether two paths name one file (the same path, or the same device and inode).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => a == b,
    }
}
