//! `cargo xtask bench`: numbers measured side by side in one run, on one workload.
//!
//! Rows: bytes per event on disk (tracer record vs perf record on the same tracepoints) and
//! offline decode speed (tracer report vs perf script), each the median of several runs.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

/// The tracepoints tracer attaches, for perf.
const TRACEPOINTS: &[&str] = &[
    "irq:irq_handler_entry",
    "irq:irq_handler_exit",
    "irq:softirq_raise",
    "irq:softirq_entry",
    "irq:softirq_exit",
    "napi:napi_poll",
    "net:netif_receive_skb",
    "net:netif_rx",
    "net:napi_gro_receive_entry",
    "sock:sk_data_ready",
    "sched:sched_waking",
    "sched:sched_wakeup",
    "sched:sched_switch",
    "skb:skb_copy_datagram_iovec",
    "skb:kfree_skb",
    "skb:consume_skb",
    "sock:sock_recv_length",
    "syscalls:sys_enter_recvfrom",
    "syscalls:sys_exit_recvfrom",
    "syscalls:sys_enter_recvmsg",
    "syscalls:sys_exit_recvmsg",
    "syscalls:sys_enter_recvmmsg",
    "syscalls:sys_exit_recvmmsg",
    "syscalls:sys_enter_read",
    "syscalls:sys_exit_read",
    "syscalls:sys_enter_readv",
    "syscalls:sys_exit_readv",
];

struct Row {
    what: &'static str,
    tracer: f64,
    perf: f64,
    unit: &'static str,
    better: &'static str,
    target: &'static str,
}

pub fn run(root: &Path, quick: bool) -> anyhow::Result<()> {
    let tracer = root.join("target/release/tracer");
    ensure_bench_tools()?;
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
    let pingpong = pingpong(&tracer, &dir, quick)?;

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let date = Command::new("date")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())?;
    let mut text = String::new();
    writeln!(text, "# Benchmarks\n")?;
    writeln!(
        text,
        "Measured by `cargo xtask bench{}` on {date}: Linux {}, {cpus} CPUs. Workload: {datagrams} loopback UDP \
         datagrams sent as fast as possible to a reader blocked in recv() (`tracer traffic`). tracer recorded \
         {events:.0} events ({tracer_bytes:.0} bytes), perf {perf_events:.0} events ({perf_bytes:.0} bytes) with \
         the same {} tracepoints (`perf record -a`). Speeds are medians of {runs} runs on one core.\n",
        if quick { " --quick" } else { "" },
        kernel.trim(),
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
        "\n## Overhead on a loopback UDP ping-pong (sockperf, 64 B)\n"
    )?;
    writeln!(
        text,
        "sockperf ping-pong over 127.0.0.1, {} s per run, configurations alternated, median of {} runs each. \
         tracer: `tracer live --json > /dev/null` (every packet's journey rebuilt); perf: `perf record -a` on \
         the same {} tracepoints; bpftrace: a script printing one line per event of the same tracepoints.\n",
        pingpong.seconds,
        pingpong.rounds,
        TRACEPOINTS.len()
    )?;
    writeln!(
        text,
        "| configuration | avg latency | ratio to no tracer | target |"
    )?;
    writeln!(text, "|---|---:|---:|---|")?;
    let base = pingpong.latency[0].1;
    for (name, latency) in &pingpong.latency {
        let target = if *name == "tracer live" {
            "<= 1.05"
        } else {
            ""
        };
        writeln!(
            text,
            "| {name} | {latency:.2} us | {:.3} | {target} |",
            latency / base
        )?;
    }
    writeln!(
        text,
        "\n## Cost of each eBPF program during the tracer's ping-pong runs (kernel bpf_stats)\n\n\
         | program | runs | ns per run |\n|---|---:|---:|"
    )?;
    for (name, runs, ns) in &pingpong.programs {
        writeln!(text, "| {name} | {runs} | {ns:.0} |")?;
    }
    println!("{text}");
    std::fs::write(root.join("BENCHMARKS.md"), &text)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Installs the peers the benchmark compares against (only the benchmark needs them).
fn ensure_bench_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = ["sockperf", "bpftrace"]
        .into_iter()
        .filter(|p| !crate::dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        crate::step(&format!(
            "installing {} for the benchmark",
            missing.join(" ")
        ));
        crate::sh("apt-get", &["update", "-qq"])?;
        let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
        args.extend(&missing);
        crate::sh("apt-get", &args)?;
    }
    Ok(())
}

struct PingPong {
    seconds: u64,
    rounds: usize,
    /// (configuration, median average latency in us), "no tracer" first.
    latency: Vec<(&'static str, f64)>,
    /// Per tracer program during the ping-pong: (name, runs, ns per run), from bpf_stats.
    programs: Vec<(String, u64, f64)>,
}

/// run_time_ns and run_cnt of every loaded program (`bpftool prog show`, bpf_stats on).
fn program_stats() -> anyhow::Result<Vec<(u64, String, u64, u64)>> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .context("running bpftool")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // A small hand parse keeps xtask free of a JSON dependency: one object per program.
    let mut programs = Vec::new();
    for object in text.split("},{") {
        let field = |key: &str| -> Option<&str> {
            let start = object.find(&format!("\"{key}\":"))? + key.len() + 3;
            let rest = &object[start..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Some(rest[..end].trim_matches('"'))
        };
        let (Some(id), Some(name)) = (field("id"), field("name")) else {
            continue;
        };
        let number = |key| field(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        programs.push((
            id.parse().unwrap_or(0),
            name.to_owned(),
            number("run_time_ns"),
            number("run_cnt"),
        ));
    }
    Ok(programs)
}

/// A tracer running around a measurement; stopped with SIGINT.
fn start(program: &str, args: &[String], settle_ms: u64) -> anyhow::Result<std::process::Child> {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    std::thread::sleep(std::time::Duration::from_millis(settle_ms));
    Ok(child)
}

fn stop(mut child: std::process::Child) -> anyhow::Result<()> {
    // SAFETY: signalling our own child.
    unsafe { libc_kill(child.id() as i32, 2) };
    child.wait()?;
    Ok(())
}

fn pingpong(tracer: &Path, dir: &Path, quick: bool) -> anyhow::Result<PingPong> {
    let (seconds, rounds) = if quick { (3, 3) } else { (5, 5) };
    let port = "11911";
    let mut server = Command::new("sockperf")
        .args(["server", "-i", "127.0.0.1", "-p", port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting sockperf server")?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let measure = || -> anyhow::Result<f64> {
        let out = Command::new("sockperf")
            .args([
                "ping-pong",
                "-i",
                "127.0.0.1",
                "-p",
                port,
                "-t",
                &seconds.to_string(),
                "-m",
                "64",
            ])
            .output()
            .context("running sockperf ping-pong")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        text.split("avg-latency=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("no avg-latency in sockperf output: {text}"))
    };
    let bpftrace_script: String = TRACEPOINTS
        .iter()
        .map(|tp| format!("tracepoint:{tp} {{ printf(\"%s %d %d\\n\", probe, pid, cpu); }}\n"))
        .collect();
    let mut perf_args: Vec<String> = [
        "record",
        "-q",
        "-a",
        "-o",
        dir.join("pingpong.data").to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for tp in TRACEPOINTS {
        perf_args.push("-e".into());
        perf_args.push((*tp).into());
    }
    let configs: [&'static str; 4] = ["no tracer", "tracer live", "perf record", "bpftrace"];
    let mut programs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for _ in 0..rounds {
        for (index, config) in configs.iter().enumerate() {
            // The tracer's programs are the ones loaded after this point.
            let before: Vec<u64> = if *config == "tracer live" {
                crate::sh("sysctl", &["-q", "-w", "kernel.bpf_stats_enabled=1"])?;
                program_stats()?.into_iter().map(|(id, ..)| id).collect()
            } else {
                Vec::new()
            };
            let child = match *config {
                "tracer live" => Some(start(
                    tracer.to_str().unwrap(),
                    &["live".into(), "--json".into()],
                    2000,
                )?),
                "perf record" => Some(start("perf", &perf_args, 2000)?),
                "bpftrace" => Some(start(
                    "bpftrace",
                    &["-e".into(), bpftrace_script.clone()],
                    5000,
                )?),
                _ => None,
            };
            let latency = measure();
            if *config == "tracer live" {
                for (id, name, run_time, runs) in program_stats()? {
                    if !before.contains(&id) {
                        let entry = programs.entry(name).or_default();
                        entry.0 += run_time;
                        entry.1 += runs;
                    }
                }
                crate::sh("sysctl", &["-q", "-w", "kernel.bpf_stats_enabled=0"])?;
            }
            if let Some(child) = child {
                stop(child)?;
            }
            samples[index].push(latency?);
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let latency = configs
        .iter()
        .zip(samples)
        .map(|(config, mut values)| {
            values.sort_by(f64::total_cmp);
            (*config, values[values.len() / 2])
        })
        .collect();
    let programs = programs
        .into_iter()
        .filter(|(_, (_, runs))| *runs > 0)
        .map(|(name, (run_time, runs))| (name, runs, run_time as f64 / runs as f64))
        .collect();
    Ok(PingPong {
        seconds,
        rounds,
        latency,
        programs,
    })
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

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}
