//! `cargo xtask bench`: numbers measured side by side in one run.
//!
//! Sections: recording size and offline decode speed (tracer record/report vs perf
//! record/script on the same tracepoints), latency overhead on a UDP ping-pong
//! (`pingpong`), throughput overhead on a TCP stream (`stream`), each eBPF program's cost
//! (bpf_stats), the highest event rate held without loss with the CPU it costs (`rate`), and
//! a flood of another port while a flow filter selects a quiet one (`filtered`).

mod filtered;
mod peers;
mod pingpong;
mod rate;
mod stream;

use std::{
    fmt::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};
use peers::{Config, TRACEPOINTS, kill as libc_kill};

struct Row {
    what: &'static str,
    tracer: f64,
    perf: f64,
    unit: &'static str,
    better: &'static str,
    target: &'static str,
}

pub fn run(root: &Path, quick: bool, only: Option<&str>) -> anyhow::Result<()> {
    let tracer = root.join("target/release/tracer");
    if let Some(section) = only {
        let dir = std::env::temp_dir().join(format!("tracer-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let text = match section {
            "filtered" => filtered_section(&filtered::measure(&tracer, &dir, quick)?)?,
            other => bail!("no bench section {other:?}; sections: filtered"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        println!("{text}");
        return Ok(());
    }
    progress("checking sockperf, bpftrace, iperf3");
    ensure_bench_tools()?;
    progress("recording size and offline decode");
    let dir = std::env::temp_dir().join(format!("tracer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let datagrams = if quick { 20_000 } else { 100_000 };
    let runs = if quick { 3 } else { 5 };
    let workload = |tracer: &Path| -> Command {
        // A loopback UDP exchange with a blocked reader, as fast as it goes.
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!(
                "echo go | {} traffic --count {datagrams} --gap-ms 0 || true",
                tracer.display()
            ),
        ]);
        command
    };

    // Recording size: tracer record, then perf record, around the same workload.
    let trace = dir.join("bench.trc");
    let recorder = Command::new(&tracer)
        .args(["record", "-o", trace.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .context("starting tracer record")?;
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = workload(&tracer).status()?;
    if !status.success() {
        bail!("workload failed");
    }
    // SAFETY: signalling our own child.
    unsafe { libc_kill(recorder.id() as i32, 2) };
    let output = recorder.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let events: f64 = stderr
        .split("recorded ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("tracer record said: {stderr}"))?;
    let tracer_bytes = std::fs::metadata(&trace)?.len() as f64;

    let perf_data = dir.join("perf.data");
    let mut perf = Command::new("perf");
    perf.args(["record", "-q", "-a", "-o", perf_data.to_str().unwrap()]);
    for tracepoint in TRACEPOINTS {
        perf.args(["-e", tracepoint]);
    }
    let mut workload_command = workload(&tracer);
    perf.arg("--")
        .arg(workload_command.get_program())
        .args(workload_command.get_args());
    let status = perf
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running perf record")?;
    if !status.success() {
        bail!("perf record failed");
    }
    let _ = &mut workload_command;
    let perf_bytes = std::fs::metadata(&perf_data)?.len() as f64;
    let perf_events = Command::new("sh")
        .args([
            "-c",
            &format!("perf script -i {} 2>/dev/null | wc -l", perf_data.display()),
        ])
        .output()?;
    let perf_events: f64 = String::from_utf8_lossy(&perf_events.stdout)
        .trim()
        .parse()?;

    // Decode speed: median wall time of several runs each.
    let median = |mut command: Command| -> anyhow::Result<f64> {
        let mut times = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            let status = command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("{command:?} failed");
            }
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    let mut report = Command::new(&tracer);
    report.args(["report", trace.to_str().unwrap(), "--slowest", "0"]);
    let report_secs = median(report)?;
    let mut script = Command::new("perf");
    script.args(["script", "-i", perf_data.to_str().unwrap()]);
    let script_secs = median(script)?;

    let rows = [
        Row {
            what: "bytes per event on disk",
            tracer: tracer_bytes / events,
            perf: perf_bytes / perf_events,
            unit: "B",
            better: "lower",
            target: "<= 16",
        },
        Row {
            what: "offline decode (report / perf script), events/s, 1 core",
            tracer: events / report_secs,
            perf: perf_events / script_secs,
            unit: "ev/s",
            better: "higher",
            target: ">= 10 M",
        },
    ];
    let pingpong = pingpong::measure(&tracer, &dir, quick)?;
    progress("TCP stream (iperf3)");
    let stream = stream::measure(&tracer, &dir, quick)?;
    progress("event rate steps");
    let (rate_seconds, steps) = rate::measure(&tracer, &dir, quick)?;
    progress("a flood while filtering for a quiet port");
    let filtered = filtered::measure(&tracer, &dir, quick)?;
    progress("done");

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let date = Command::new("date")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())?;
    let command = format!("cargo xtask bench{}", if quick { " --quick" } else { "" });
    let mut text = String::new();
    writeln!(text, "# Benchmarks\n")?;
    writeln!(
        text,
        "Measured by `{command}` on {date}: Linux {}, {cpus} CPUs ({model}). Every ratio compares runs made \
         side by side in this one invocation, configurations alternated. The tracer runs as users run it: \
         `tracer live --json > /dev/null` (every packet's journey rebuilt), ring buffer wakeups batched \
         (the default).\n",
        kernel.trim(),
    )?;
    writeln!(text, "## Recording size and offline decode\n")?;
    writeln!(
        text,
        "Workload: {datagrams} loopback UDP datagrams sent as fast as possible to a reader blocked in recv() \
         (`tracer traffic`). tracer recorded {events:.0} events ({tracer_bytes:.0} bytes), perf {perf_events:.0} \
         events ({perf_bytes:.0} bytes) with the same {} tracepoints (`perf record -a`). Speeds are medians of \
         {runs} runs on one core.\n",
        TRACEPOINTS.len()
    )?;
    writeln!(
        text,
        "| measure | tracer | perf | tracer / perf | better | target |"
    )?;
    writeln!(text, "|---|---:|---:|---:|---|---|")?;
    for row in &rows {
        writeln!(
            text,
            "| {} | {} {} | {} {} | {:.2} | {} | {} |",
            row.what,
            human(row.tracer),
            row.unit,
            human(row.perf),
            row.unit,
            row.tracer / row.perf,
            row.better,
            row.target
        )?;
    }
    writeln!(
        text,
        "\n## Latency overhead on a loopback UDP ping-pong (sockperf, 64 B)\n"
    )?;
    writeln!(
        text,
        "sockperf ping-pong over 127.0.0.1, {} s per run, median of {} runs each. perf: `perf record -a` on \
         the same {} tracepoints; bpftrace: a script printing one line per event of the same tracepoints. \
         During the tracer's runs it rebuilt {} complete journeys for {} packets sockperf sent or received \
         ({:.1}%), {} events lost.\n",
        pingpong.seconds,
        pingpong.rounds,
        TRACEPOINTS.len(),
        pingpong.journeys,
        pingpong.packets,
        100.0 * pingpong.journeys as f64 / pingpong.packets.max(1) as f64,
        pingpong.lost,
    )?;
    writeln!(
        text,
        "Two settings, each with every configuration alternated. *CPUs busy*: a SCHED_IDLE busy loop \
         on every CPU, so no CPU ever halts (the fair comparison: a tracer's own work must not be \
         counted as a speed-up). *CPUs halt when idle*: the machine as it is; on a VM, waking a \
         halted vCPU costs tens of microseconds, and a tracer that keeps CPUs busy shortens that.\n"
    )?;
    writeln!(
        text,
        "| configuration | CPUs busy: avg latency (fastest..slowest run) | ratio | CPUs halt: avg latency | ratio | target (busy) |"
    )?;
    writeln!(text, "|---|---:|---:|---:|---:|---|")?;
    let (warm_base, base) = (pingpong.warm[0].median, pingpong.latency[0].1);
    for (measured, (config, latency)) in pingpong.warm.iter().zip(&pingpong.latency) {
        let (warm, fastest, slowest) = (measured.median, measured.min, measured.max);
        let target = if *config == Config::TracerLive {
            "<= 1.05"
        } else {
            ""
        };
        writeln!(
            text,
            "| {} | {warm:.2} us ({fastest:.2}..{slowest:.2}) | {:.3} | {latency:.2} us | {:.3} | {target} |",
            config.name(),
            warm / warm_base,
            latency / base
        )?;
    }
    writeln!(
        text,
        "\n## Throughput overhead on a loopback TCP stream (iperf3)\n\n\
         iperf3 over 127.0.0.1, {} s per run, median of {} runs each, same configurations. During the \
         tracer's runs it rebuilt {} complete journeys, {} events lost.\n\n\
         | configuration | throughput | ratio to no tracer |\n|---|---:|---:|",
        stream.seconds, stream.rounds, stream.journeys, stream.lost,
    )?;
    let base = stream.throughput[0].1;
    for (config, gbits) in &stream.throughput {
        writeln!(
            text,
            "| {} | {gbits:.2} Gbit/s | {:.3} |",
            config.name(),
            gbits / base
        )?;
    }
    let total_ns: f64 = pingpong
        .programs
        .iter()
        .map(|(_, runs, ns)| *runs as f64 * ns)
        .sum();
    writeln!(
        text,
        "\n## Cost of each eBPF program (kernel bpf_stats)\n\n\
         One more {} s tracer ping-pong run with `kernel.bpf_stats_enabled=1` (not one of the latency runs: \
         the accounting costs time of its own). All programs together: {:.0} ns per ping-pong packet.\n\n\
         | program | runs | ns per run |\n|---|---:|---:|",
        pingpong.seconds,
        total_ns / pingpong.stats_packets.max(1) as f64,
    )?;
    for (name, runs, ns) in &pingpong.programs {
        writeln!(text, "| {name} | {runs} | {ns:.0} |")?;
    }
    let best = steps
        .iter()
        .filter(|step| step.exit.lost == 0)
        .map(|step| step.rate())
        .fold(0.0, f64::max);
    writeln!(
        text,
        "\n## Event rate without loss, and the tracer's CPU per event\n\n\
         `tracer live --json > /dev/null` under each load for {rate_seconds} s (floods: `tracer traffic` with no gap; \
         sched pipe: `perf bench sched pipe -T` pinned to CPU 1). Events are the ones the tracer read; CPU is \
         the tracer process's own (utime, stime) over the load. Highest rate with zero lost: **{} ev/s** \
         (target: the highest this machine generates). User CPU target: <= 100 ns per event.\n\n\
         | load | events/s | lost | tracer CPU | user ns/event | user+sys ns/event |\n\
         |---|---:|---:|---:|---:|---:|",
        human(best),
    )?;
    for step in &steps {
        writeln!(
            text,
            "| {} | {} | {} | {:.0}% | {:.0} | {:.0} |",
            step.load,
            human(step.rate()),
            step.exit.lost,
            100.0 * (step.user + step.system) / step.seconds,
            step.user_ns_per_event(),
            step.cpu_ns_per_event(),
        )?;
    }
    text.push_str(&filtered_section(&filtered)?);
    println!("{text}");
    std::fs::write(root.join("BENCHMARKS.md"), &text)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The section of the flood while a flow filter selects a quiet port.
fn filtered_section(filtered: &filtered::Filtered) -> anyhow::Result<String> {
    let mut text = String::new();
    writeln!(
        text,
        "\n## A flood of one port while filtering for another\n\n\
         `tracer traffic` floods a loopback UDP port for {} s, {} round(s) per configuration, \
         alternated: untraced, `tracer live --json` unfiltered, and `tracer live --json '{}'` (a \
         port nothing is sent to: every event read is the flood leaking through). Datagrams are \
         the kernel's count (/proc/net/snmp Udp InDatagrams + InErrors); events and CPU are the \
         tracer's. Target: at most 1 event per 1,000 flood datagrams with the filter.\n\n\
         | configuration | flood datagrams/s | ratio | events read/s | events per 1,000 datagrams | lost | tracer CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|",
        filtered.seconds,
        filtered.rounds,
        filtered::FILTER,
    )?;
    let base = filtered.untraced.datagrams_per_second();
    for (name, figures, traced) in [
        ("no tracer", &filtered.untraced, false),
        ("tracer live, unfiltered", &filtered.unfiltered, true),
        ("tracer live, filtered", &filtered.filtered, true),
    ] {
        let dash = |value: String| if traced { value } else { "-".to_owned() };
        writeln!(
            text,
            "| {name} | {} | {:.3} | {} | {} | {} | {} |",
            human(figures.datagrams_per_second()),
            figures.datagrams_per_second() / base.max(1e-9),
            dash(human(figures.events_per_second())),
            dash(format!("{:.3}", figures.events_per_thousand())),
            dash(figures.lost.to_string()),
            dash(format!("{:.1}%", figures.cpu_percent())),
        )?;
    }
    Ok(text)
}

/// Installs the peers the benchmark compares against (only the benchmark needs them).
fn ensure_bench_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = ["sockperf", "bpftrace", "iperf3"]
        .into_iter()
        .filter(|p| !crate::dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        crate::step(&format!(
            "installing {} for the benchmark",
            missing.join(" ")
        ));
        crate::apt_install(&missing)?;
    }
    Ok(())
}

/// A progress line on stderr, stamped with the time since the benchmark started.
pub fn progress(what: &str) {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let elapsed = STARTED.get_or_init(Instant::now).elapsed().as_secs();
    eprintln!("bench [{:02}:{:02}] {what}", elapsed / 60, elapsed % 60);
}

fn human(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k", value / 1e3)
    } else {
        format!("{value:.1}")
    }
}
