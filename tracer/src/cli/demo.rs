//! `tracer demo`: loopback UDP traffic made by the tool itself, in a child process, and the
//! journeys of its packets.

use std::{io::BufRead as _, process::Stdio, time::Duration};

use anyhow::Context as _;
use clap::Args;
use tokio::io::AsyncWriteExt as _;
use tracer::{irqmap::IrqMap, probes::ProbeOptions, traffic};

use super::live::{JourneyFilter, LiveOutput};

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

/// Options of the hidden `tracer traffic` child.
#[derive(Clone, Debug, Args)]
pub struct TrafficArgs {
    /// Datagrams to send.
    #[arg(short = 'n', long)]
    pub count: u32,
    /// Milliseconds between datagrams.
    #[arg(long)]
    pub gap_ms: u64,
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
    let options = ProbeOptions {
        pid: Some(pid),
        journey_mode: true,
        kernel_log: verbose,
        ..ProbeOptions::default()
    };
    let output = LiveOutput {
        json: args.json,
        filter: JourneyFilter {
            pid: Some(pid),
            ..JourneyFilter::default()
        },
        count: None,
        interval: Duration::ZERO,
        keep_unsocketed: false,
        record: None,
        metrics: None,
        quiet: false,
    };
    let mut go = child.stdin.take().context("traffic process stdin")?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let ready = move |_: &tracer::probes::Probes| {
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
    let stats = super::live::follow(&options, &output, IrqMap::from_system(), ready, stop).await?;
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
    let exchange = traffic::udp_exchange(args.count, 64, Duration::from_millis(args.gap_ms))?;
    anyhow::ensure!(
        exchange.received == exchange.sent,
        "the reader got {} of {} datagrams",
        exchange.received,
        exchange.sent
    );
    Ok(())
}
