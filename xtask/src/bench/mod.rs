//! `cargo xtask bench`: numbers measured side by side in one run.
//!
//! Sections: recording size and offline analysis (`offline`: tracer record/report vs perf
//! record/script on the same tracepoints, report's memory on a large recording, report and
//! exports on one capture and five), latency overhead on a UDP ping-pong
//! (`pingpong`), throughput overhead on a TCP stream (`stream`), each eBPF program's cost
//! (bpf_stats), what one syscall costs, traced and untraced (`syscalls`), the highest event
//! rate held without loss with the CPU it costs (`rate`), and a flood of another port while
//! a flow filter selects a quiet one (`filtered`).

mod filtered;
mod offline;
mod peers;
mod pingpong;
mod rate;
mod replicate;
mod stream;
mod syscalls;

use std::{fmt::Write as _, path::Path, process::Command, time::Instant};

use peers::TRACEPOINTS;

/// What `--only` takes.
const SECTIONS: [&str; 6] = [
    "offline", "filtered", "pingpong", "syscalls", "stream", "rate",
];

/// Runs the benchmark and writes BENCHMARKS.md; `only`: one section, printed (BENCHMARKS.md
/// is left alone).
pub fn run(root: &Path, quick: bool, only: Option<&str>) -> anyhow::Result<()> {
    if let Some(section) = only {
        anyhow::ensure!(
            SECTIONS.contains(&section),
            "no bench section {section:?}; sections: {}",
            SECTIONS.join(", ")
        );
    }
    let tracer = root.join("target/release/tracer");
    let dir = std::env::temp_dir().join(format!("tracer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let command = format!(
        "cargo xtask bench{}{}",
        if quick { " --quick" } else { "" },
        only.map_or(String::new(), |section| format!(" --only {section}"))
    );
    if let Some(section) = only {
        ensure_bench_tools()?;
        let body = match section {
            "offline" => offline::measure(&tracer, &dir, quick)?.text()?,
            "filtered" => filtered_section(&filtered::measure(&tracer, &dir, quick)?)?,
            "pingpong" => pingpong_section(&pingpong::measure(&tracer, &dir, quick)?)?,
            "syscalls" => syscalls_section(&syscalls::measure(&tracer, &dir, quick)?)?,
            "stream" => stream_section(&stream::measure(&tracer, &dir, quick)?)?,
            "rate" => {
                let (seconds, steps) = rate::measure(&tracer, &dir, quick)?;
                rate_section(seconds, &steps)?
            }
            other => anyhow::bail!("no bench section {other:?}"),
        };
        let text = format!("{body}\nThis section: `{command}` on {}.\n", date()?);
        let _ = std::fs::remove_dir_all(&dir);
        println!("{text}");
        return Ok(());
    }
    progress("checking sockperf, bpftrace, iperf3, perf");
    ensure_bench_tools()?;
    progress("recording size and offline analysis");
    let offline = offline::measure(&tracer, &dir, quick)?;
    let pingpong = pingpong::measure(&tracer, &dir, quick)?;
    progress("the cost of one syscall");
    let syscall_cost = syscalls::measure(&tracer, &dir, quick)?;
    progress("TCP stream (iperf3)");
    let stream = stream::measure(&tracer, &dir, quick)?;
    progress("event rate steps");
    let (rate_seconds, steps) = rate::measure(&tracer, &dir, quick)?;
    progress("a flood while filtering for a quiet port");
    let filtered = filtered::measure(&tracer, &dir, quick)?;
    progress("done");

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = cpu_count();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let date = date()?;
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
    text.push_str(&offline.text()?);
    text.push_str(&pingpong_section(&pingpong)?);
    text.push_str(&syscalls_section(&syscall_cost)?);
    text.push_str(&stream_section(&stream)?);
    text.push_str(&rate_section(rate_seconds, &steps)?);
    text.push_str(&filtered_section(&filtered)?);
    println!("{text}");
    std::fs::write(root.join("BENCHMARKS.md"), &text)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The TCP stream section: throughput with each configuration beside no tracer.
fn stream_section(stream: &stream::Stream) -> anyhow::Result<String> {
    let mut text = String::new();
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
    Ok(text)
}

/// The event-rate section: each load step's rate, losses and the tracer's CPU per event.
fn rate_section(rate_seconds: u64, steps: &[rate::Step]) -> anyhow::Result<String> {
    let mut text = String::new();
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
         (target: >= 2 M ev/s; the loads are the most this machine generates). User CPU target: <= 100 ns per event. irq_work/s: \
         the host's irq_work interrupts over the load (the ring buffer wakes the tracer with one; \
         the kernel forces one only when the bytes a CPU wrote cross a multiple of the ring's size over twice the CPUs).\n\n\
         | load | events/s | lost | tracer CPU | user ns/event | user+sys ns/event | irq_work/s |\n\
         |---|---:|---:|---:|---:|---:|---:|",
        human(best),
    )?;
    for step in steps {
        writeln!(
            text,
            "| {} | {} | {} | {:.0}% | {:.0} | {:.0} | {:.0} |",
            step.load,
            human(step.rate()),
            step.exit.lost,
            100.0 * (step.user + step.system) / step.seconds,
            step.user_ns_per_event(),
            step.cpu_ns_per_event(),
            step.irq_work_per_second(),
        )?;
    }
    Ok(text)
}

/// The ping-pong latencies in both settings, then each program's cost.
fn syscalls_section(cost: &syscalls::SyscallCost) -> anyhow::Result<String> {
    let mut text = String::new();
    writeln!(
        text,
        "\n## What one syscall costs, traced and untraced\n\n\
         A nonblocking recvfrom of an empty UDP socket (a traced call: the recv family's entry and exit \
         programs and sock_recv_length's run) and getppid (untraced, but it takes the kernel's traced \
         entry path once any syscall tracepoint is on), each {} times in a loop pinned to one CPU, the \
         fastest of 5 batches, over {} round(s) with the configurations alternated. The default attaches \
         one program on raw_syscalls:sys_exit that runs for every syscall and looks its number up (a \
         task's entry into a traced syscall is read from its saved registers where a journey asks); \
         `--syscall-entry-marks` adds the raw sys_enter program that marks each entry instead; \
         `--classic-syscalls` keeps one classic tracepoint per traced syscall, which formats a record \
         per call before its program runs.\n\n\
         | configuration | recvfrom (traced) | added | getppid (untraced) | added |\n|---|---:|---:|---:|---:|",
        cost.calls, cost.rounds,
    )?;
    let (base_recv, base_ppid) = cost.costs[0];
    for (config, (recv, ppid)) in syscalls::CONFIGS.iter().zip(&cost.costs) {
        writeln!(
            text,
            "| {} | {recv:.0} ns | {:+.0} ns | {ppid:.0} ns | {:+.0} ns |",
            config.name(),
            recv - base_recv,
            ppid - base_ppid
        )?;
    }
    Ok(text)
}

fn pingpong_section(pingpong: &pingpong::PingPong) -> anyhow::Result<String> {
    let mut text = String::new();
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
        "Each setting runs every configuration, alternated. *CPUs busy*: a SCHED_IDLE busy loop \
         on every CPU, so no CPU ever halts (the fair comparison: a tracer's own work must not be \
         counted as a speed-up). *CPUs halt when idle*: the machine as it is; on a VM, waking a \
         halted vCPU costs tens of microseconds, and a tracer that keeps CPUs busy shortens that. \
         In these two the scheduler places sockperf's client and server.\n"
    )?;
    writeln!(
        text,
        "| configuration | CPUs busy: avg latency (fastest..slowest run) | ratio | CPUs halt: avg latency | ratio |"
    )?;
    writeln!(text, "|---|---:|---:|---:|---:|")?;
    let (warm_base, base) = (pingpong.warm[0].median, pingpong.latency[0].1);
    for (measured, (config, latency)) in pingpong.warm.iter().zip(&pingpong.latency) {
        writeln!(
            text,
            "| {} | {} | {:.3} | {latency:.2} us | {:.3} |",
            config.name(),
            spread(measured),
            measured.median / warm_base,
            latency / base
        )?;
    }
    if pingpong.pinned.is_empty() {
        text.push_str(&costs_section(pingpong)?);
        return Ok(text);
    }
    writeln!(
        text,
        "\nPinned (CPUs busy as above, the tracer not pinned): placed by the scheduler, the two ends \
         share a CPU in some runs (a round trip with no cross-CPU wakeup) and not in others, so a \
         run's latency says mostly where they landed, and a tracer's own thread moves that \
         mixture. Pinned, the runs agree within a few percent and every packet's eBPF time is on \
         the latency's path: these are the rows the issue's target (<= 1.05, CPUs busy) is read \
         from.\n"
    )?;
    let mut header = String::from("| configuration |");
    let mut rule = String::from("|---|");
    for (placement, _) in &pingpong.pinned {
        write!(
            header,
            " {}: avg latency (fastest..slowest run) | ratio |",
            placement.name()
        )?;
        rule.push_str("---:|---:|");
    }
    writeln!(text, "{header}\n{rule}")?;
    for (row, config) in pingpong
        .warm
        .iter()
        .map(|measured| measured.config)
        .enumerate()
    {
        let mut line = format!("| {} |", config.name());
        for (_, measured) in &pingpong.pinned {
            write!(
                line,
                " {} | {:.3} |",
                spread(&measured[row]),
                measured[row].median / measured[0].median
            )?;
        }
        writeln!(text, "{line}")?;
    }
    attach_floor_table(pingpong, &mut text)?;
    text.push_str(&costs_section(pingpong)?);
    Ok(text)
}

/// What being attached costs, before any program does its work: the latency each packet
/// gains with the tracer's programs attached but returning at once, then reading the clock.
fn attach_floor_table(pingpong: &pingpong::PingPong, text: &mut String) -> anyhow::Result<()> {
    let Some(base) = pingpong.attach_floor.first() else {
        return Ok(());
    };
    writeln!(
        text,
        "\nWhat being attached costs (CPUs busy, client and server on one CPU, the same \
         alternation): `tracer live --bench-floor empty` attaches every program the default \
         does, each returning at once (the kernel's dispatch, and the raw syscall tracepoint's \
         slow path on every syscall); `--bench-floor clock`, each reading the clock first \
         (`bpf_ktime_get_ns`, as every event's stamp does) and returning; `--syscall-entry-marks`, \
         the tracer with the raw sys_enter program marking each syscall entry (before: the default) \
         instead of reading a task's saved registers where a journey asks. Half a round trip \
         is one packet's path, so the latency added is the time each packet gains.\n"
    )?;
    writeln!(
        text,
        "| configuration | avg latency (fastest..slowest run) | added per packet | ratio |"
    )?;
    writeln!(text, "|---|---:|---:|---:|")?;
    for measured in &pingpong.attach_floor {
        writeln!(
            text,
            "| {} | {} | {:+.2} us | {:.3} |",
            measured.config.name(),
            spread(measured),
            measured.median - base.median,
            measured.median / base.median
        )?;
    }
    Ok(())
}

/// A configuration's median latency and its fastest and slowest run.
fn spread(measured: &peers::Measured) -> String {
    format!(
        "{:.2} us ({:.2}..{:.2})",
        measured.median, measured.min, measured.max
    )
}

/// Each program's bpf_stats cost, BTF tracepoints beside classic ones.
fn costs_section(pingpong: &pingpong::PingPong) -> anyhow::Result<String> {
    let mut text = String::new();
    let [btf, batched, classic, marks] = &pingpong.costs[..] else {
        anyhow::bail!("expected the default, batched, classic and entry-marks bpf_stats runs");
    };
    writeln!(
        text,
        "\n## Cost of each eBPF program (kernel bpf_stats)\n\n\
         Tracer ping-pong runs of {} s with `kernel.bpf_stats_enabled=1` (not latency runs: \
         the accounting costs time of its own), {} alternated round(s) of four configurations, each's \
         counts added up: `tracer live` (the default: BTF tracepoints where the \
         kernel has BTF, every event its own ring reservation), `tracer live --batched` (events \
         batched per NET_RX run and per read, docs/DESIGN.md \"Batches\") and `tracer live \
         --classic-tracepoints`, and `tracer live --syscall-entry-marks` (the raw sys_enter program marks \
         each syscall entry; its total only). bpf_stats counts a program's own run time only: a classic \
         tracepoint also formats its record before the program runs, which no column includes. All \
         programs together: **{:.0} ns** per ping-pong packet by default, {:.0} ns batched, {:.0} ns \
         classic, {:.0} ns with entry marks ({:.1} programs per packet against {:.1}) (target: <= \
         1200 ns).\n\n\
         The floor on this machine, as bpf_stats counts it (bpftrace on the classic \
         `irq:softirq_exit` and `sched:sched_switch` during the same ping-pong, 2 runs each, \
         alternated): an empty program **{:.0} ns** per run (the kernel's dispatch and the accounting's \
         own cost), one that reads the clock once (`bpf_ktime_get_ns`, as every tracer event is \
         stamped) {:.0} ns: **{:.0} ns per clock read**. The default ran {:.1} programs and \
         emitted {:.1} events per packet: at least **{:.0} ns** per packet before any program \
         does its work.\n\n\
         Recursion misses (runs the kernel skipped because another tracing program was running on \
         that CPU; counted as lost events): default {}; batched {}; classic {}.\n\n\
         | program | runs | ns per run | ns per packet | batched: ns per run | batched: ns per packet | classic: ns per run | classic: ns per packet |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|",
        pingpong.seconds,
        pingpong.cost_rounds,
        btf.ns_per_packet(),
        batched.ns_per_packet(),
        classic.ns_per_packet(),
        marks.ns_per_packet(),
        marks.runs_per_packet(),
        btf.runs_per_packet(),
        pingpong.floor.empty_ns,
        pingpong.floor.clock_ns,
        pingpong.floor.clock_read_ns(),
        btf.runs_per_packet(),
        btf.events_per_packet(),
        btf.runs_per_packet() * pingpong.floor.empty_ns
            + btf.events_per_packet() * pingpong.floor.clock_read_ns(),
        btf.recursion_misses,
        batched.recursion_misses,
        classic.recursion_misses,
    )?;
    // The same program in another run (by its name without the BTF suffix).
    let twin = |costs: &pingpong::Costs, name: &str| {
        costs
            .programs
            .iter()
            .find(|(program, ..)| program_key(program) == program_key(name))
            .map_or_else(
                || ("-".to_owned(), "-".to_owned()),
                |(program, _, ns)| {
                    let packet = costs.program_ns_per_packet(program).unwrap_or_default();
                    (format!("{ns:.0}"), format!("{packet:.0}"))
                },
            )
    };
    for (name, runs, ns) in &btf.programs {
        let (batched_run, batched_packet) = twin(batched, name);
        let (classic_run, classic_packet) = twin(classic, name);
        writeln!(
            text,
            "| {name} | {runs} | {ns:.0} | {:.0} | {batched_run} | {batched_packet} | \
             {classic_run} | {classic_packet} |",
            btf.program_ns_per_packet(name).unwrap_or_default(),
        )?;
    }
    Ok(text)
}

/// A program's name without its BTF suffix, as bpftool shows it (cut to 15 bytes:
/// `sched_switch_btf` is `sched_switch_bt`), so the two forms of one tracepoint match.
fn program_key(name: &str) -> &str {
    ["_btf", "_bt", "_b"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

fn date() -> anyhow::Result<String> {
    let out = Command::new("date").arg("-u").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
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
    let missing: Vec<&str> = ["sockperf", "bpftrace", "iperf3", "linux-perf"]
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

/// The CPUs this machine offers the bench (1 when it cannot tell).
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
