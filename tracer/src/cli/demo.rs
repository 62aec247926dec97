//! `tracer demo`: loopback UDP traffic made by the tool itself, in a child process, and the
//! journeys of its packets.

use std::{io::BufRead as _, process::Stdio, time::Duration};

use anyhow::Context as _;
use clap::Args;
use tokio::io::AsyncWriteExt as _;
use tracer::{
    host::irqmap::IrqMap,
    journey::JourneyFilter,
    lab::workload as traffic,
    probe::{ProbeOptions, Probes},
    session::live::{LiveOutput, follow},
};

/// Options of `tracer demo`.
#[derive(Clone, Debug, Args)]
pub struct DemoArgs {
    /// Datagrams to send.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub count: u32,
    /// Milliseconds between datagrams (the reader blocks in recv() in between).
    #[arg(long, default_value_t = 50)]
    pub gap_ms: u64,
    /// One journey object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of the hidden `tracer traffic` child (demo and labs).
#[derive(Clone, Debug, Args)]
pub struct TrafficArgs {
    /// Datagrams to send.
    #[arg(short = 'n', long)]
    pub count: u32,
    /// Milliseconds between datagrams.
    #[arg(long, default_value_t = 0)]
    pub gap_ms: u64,
    /// Microseconds between datagrams (added to --gap-ms).
    #[arg(long, default_value_t = 0)]
    pub gap_us: u64,
    /// Datagram size.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// How the reader waits: block, epoll or spin.
    #[arg(long, default_value = "block")]
    pub mode: String,
    /// Pin the reader thread to this CPU.
    #[arg(long)]
    pub reader_cpu: Option<usize>,
    /// Pin the sender to this CPU.
    #[arg(long)]
    pub sender_cpu: Option<usize>,
    /// Run the reader as SCHED_FIFO.
    #[arg(long, conflicts_with = "reader_batch")]
    pub reader_fifo: bool,
    /// Run the reader as SCHED_BATCH (it never preempts the running task on wakeup).
    #[arg(long)]
    pub reader_batch: bool,
    /// Microseconds of CPU work by the reader after each datagram.
    #[arg(long, default_value_t = 0)]
    pub work_us: u64,
    /// Print what the reader saw as JSON on stdout.
    #[arg(long)]
    pub report: bool,
}

/// Options of the hidden `tracer spin` competitor (labs).
#[derive(Clone, Debug, Args)]
pub struct SpinArgs {
    /// Pin to this CPU.
    #[arg(long)]
    pub cpu: usize,
    /// Nice value.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub nice: i32,
    /// Run as SCHED_FIFO (priority 20).
    #[arg(long)]
    pub fifo: bool,
    /// Stop after this many seconds at the latest.
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
}

pub async fn run(args: DemoArgs, verbose: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the tracer executable")?;
    let mut child = tokio::process::Command::new(exe)
        .args([
            "traffic",
            "--count",
            &args.count.to_string(),
            "--gap-ms",
            &args.gap_ms.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the traffic process")?;
    let pid = child.id().context("traffic process has no pid")?;
    eprintln!(
        "tracer: demo: process {pid} has a reader thread blocked in recv() on 127.0.0.1 and a sender \
         that sends it {} datagrams, {} ms apart. Each line below is one datagram's journey:",
        args.count, args.gap_ms
    );
    eprintln!(
        "tracer:   softirq_wait: NET_RX raised by the sender's sendto() (loopback has no hard IRQ) -> softirq entry;"
    );
    eprintln!(
        "tracer:   poll -> stack: netif_receive_skb on lo -> the socket enqueue (sk_data_ready);"
    );
    eprintln!(
        "tracer:   wakeup: the kernel wakes the blocked reader; runqueue: the scheduler puts it on a CPU; syscall: recv() returns."
    );
    let options = ProbeOptions::journeys_of(pid, verbose);
    let output = LiveOutput {
        json: args.json,
        filter: JourneyFilter {
            pids: vec![pid],
            ..JourneyFilter::default()
        },
        count: None,
        interval: Duration::ZERO,
        keep_unsocketed: false,
        record: None,
        metrics: None,
        quiet: false,
        collect: false,
    };
    let mut go = child.stdin.take().context("traffic process stdin")?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let ready = move |_: &Probes| {
        let _ = ready_tx.send(());
    };
    let stop = async move {
        if ready_rx.await.is_ok() {
            let _ = go.write_all(b"go\n").await;
            let _ = go.flush().await;
        }
        let _ = child.wait().await;
        // Let the last recv return leave the reorder window.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stats = follow(&options, &output, IrqMap::from_system(), ready, stop).await?;
    eprintln!(
        "tracer: demo done: {} journeys of process {pid}, {} complete. Next: `tracer live` follows every packet of this host.",
        stats.journeys, stats.complete
    );
    Ok(())
}

/// The child: waits for a line on stdin (the tracer is attached), then exchanges datagrams.
pub fn traffic(args: TrafficArgs) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("waiting for the go line")?;
    let mode = match args.mode.as_str() {
        "block" => traffic::ReaderMode::Block,
        "epoll" => traffic::ReaderMode::Epoll,
        "spin" => traffic::ReaderMode::Spin,
        other => anyhow::bail!("unknown reader mode {other:?} (block, epoll, spin)"),
    };
    let workload = traffic::Workload {
        count: args.count,
        size: args.size,
        gap: Duration::from_millis(args.gap_ms) + Duration::from_micros(args.gap_us),
        mode,
        reader_cpu: args.reader_cpu,
        sender_cpu: args.sender_cpu,
        reader_fifo: args.reader_fifo,
        reader_batch: args.reader_batch,
        work: Duration::from_micros(args.work_us),
    };
    let exchange = traffic::exchange(&workload)?;
    if args.report {
        tracer::outln!(
            "{}",
            serde_json::json!({
                "sent": exchange.sent,
                "received": exchange.received,
                "reader_tid": exchange.reader_tid,
                "reader_cpu_ns": exchange.reader_cpu_ns,
                "voluntary_switches": exchange.voluntary_switches,
                "involuntary_switches": exchange.involuntary_switches,
            })
        );
    } else {
        anyhow::ensure!(
            exchange.received == exchange.sent,
            "the reader got {} of {} datagrams",
            exchange.received,
            exchange.sent
        );
    }
    Ok(())
}

/// The competitor: a CPU-bound loop, pinned, at a nice value or SCHED_FIFO.
pub fn spin(args: SpinArgs) -> anyhow::Result<()> {
    traffic::pin_to(args.cpu).context("pinning")?;
    if args.fifo {
        traffic::set_fifo(20).context("SCHED_FIFO")?;
    } else {
        // SAFETY: setpriority on this process.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, args.nice) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setting the nice value");
        }
    }
    let end = std::time::Instant::now() + Duration::from_secs(args.seconds);
    while std::time::Instant::now() < end {
        for _ in 0..10_000 {
            std::hint::spin_loop();
        }
    }
    Ok(())
}
