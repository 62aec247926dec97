//! Throughput overhead on a loopback TCP stream (iperf3), same configurations alternated.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Context as _;

use super::peers::{Config, TracerTotals, alternate};

pub struct Stream {
    pub seconds: u64,
    pub rounds: usize,
    /// (configuration, median receiver throughput in Gbit/s), "no tracer" first.
    pub throughput: Vec<(Config, f64)>,
    /// Over the tracer's runs: complete journeys (TCP reads that returned a packet's data)
    /// and events lost.
    pub journeys: u64,
    pub lost: u64,
}

const PORT: &str = "11912";

fn stream(seconds: u64) -> anyhow::Result<f64> {
    let out = Command::new("iperf3")
        .args([
            "-c",
            "127.0.0.1",
            "-p",
            PORT,
            "-t",
            &seconds.to_string(),
            "-f",
            "m",
        ])
        .output()
        .context("running iperf3")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "[  5]   0.00-3.00   sec  9.50 GBytes  27200 Mbits/sec                  receiver"
    text.lines()
        .find(|line| line.trim_end().ends_with("receiver"))
        .and_then(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let unit = words.iter().position(|w| *w == "Mbits/sec")?;
            words[unit - 1].parse::<f64>().ok()
        })
        .map(|mbits| mbits / 1000.0)
        .with_context(|| format!("no receiver throughput in iperf3 output: {text}"))
}

pub fn measure(tracer: &Path, dir: &Path, quick: bool) -> anyhow::Result<Stream> {
    let (seconds, rounds) = if quick { (2, 3) } else { (5, 5) };
    let mut server = Command::new("iperf3")
        .args(["-s", "-p", PORT])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 server")?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let result = rounds_of(tracer, dir, seconds, rounds);
    let _ = server.kill();
    let _ = server.wait();
    result
}

fn rounds_of(tracer: &Path, dir: &Path, seconds: u64, rounds: usize) -> anyhow::Result<Stream> {
    let mut totals = TracerTotals::default();
    let throughput = alternate(tracer, dir, rounds, &mut totals, || {
        stream(seconds).map(|gbits| (gbits, 0))
    })?
    .into_iter()
    .map(|measured| (measured.config, measured.median))
    .collect();
    Ok(Stream {
        seconds,
        rounds,
        throughput,
        journeys: totals.journeys,
        lost: totals.lost,
    })
}
