//! Offline analysis: recording size (tracer record vs perf record around one UDP flood),
//! decode speed on one and two cores (tracer report vs perf script), report's peak memory
//! on a large recording made from that capture, and linearity: report and every export
//! format on one capture and on five copies of it (one after the other in time, and
//! concatenated as they are).

use std::{
    fmt::Write as _,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

use super::{
    human,
    peers::{TRACEPOINTS, kill, median},
    progress,
    replicate::replicate,
};

/// Export formats timed for linearity.
const FORMATS: [&str; 4] = ["jsonl", "csv", "parquet", "perfetto"];
/// Copies of the capture for the linearity rows.
const COPIES: usize = 5;

/// A timed run of a child: wall seconds and peak resident memory.
#[derive(Clone, Copy, Debug)]
struct Run {
    seconds: f64,
    rss_kib: u64,
}

/// What the offline section measured.
pub struct Offline {
    datagrams: usize,
    runs: usize,
    /// Runs of the capture's report on one core and two: a tenth of a second each, where a
    /// neighbour on a shared VM moves a median of 5 by 10-15%.
    speed_runs: usize,
    events: f64,
    tracer_bytes: f64,
    perf_events: f64,
    perf_bytes: f64,
    report_one_core: f64,
    report_two_cores: f64,
    script_one_core: f64,
    large_bytes: u64,
    large_copies: usize,
    /// Report of the large recording on one core, then on two (medians of 3).
    large: [Run; 2],
    /// Per command: the capture, its copies one after the other in time, its copies
    /// concatenated as they are.
    linear: Vec<(String, [Run; 3])>,
}

/// Runs `command` (stdout and stderr discarded) and waits for it, reading its peak RSS
/// (VmHWM: its own memory since exec) every few milliseconds until it ends. Not wait4's
/// ru_maxrss: a spawned child's carries its parent's peak (ours, with a replicated
/// recording in memory, was 77 MiB).
fn timed(command: &mut Command) -> anyhow::Result<Run> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut rss_kib = 0;
    let status = loop {
        // Once it exits the line is gone: the last value read stands.
        if let Some(kib) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|status| vm_hwm_kib(&status))
        {
            rss_kib = rss_kib.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(Run { seconds, rss_kib })
}

/// `VmHWM:   1234 kB` of /proc/PID/status.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The median wall time of `runs` runs, with the largest peak RSS.
fn median_run(runs: usize, mut command: impl FnMut() -> Command) -> anyhow::Result<Run> {
    let [run] = alternated(runs, [&mut command])?;
    Ok(run)
}

/// Each command `runs` times, the commands alternated (so a busy moment of the machine
/// falls on each alike): per command the median wall time and the largest peak RSS.
fn alternated<const N: usize>(
    runs: usize,
    mut commands: [&mut dyn FnMut() -> Command; N],
) -> anyhow::Result<[Run; N]> {
    let mut seconds = [(); N].map(|()| Vec::new());
    let mut rss_kib = [0; N];
    for _ in 0..runs {
        for (index, command) in commands.iter_mut().enumerate() {
            let run = timed(&mut command())?;
            seconds[index].push(run.seconds);
            rss_kib[index] = rss_kib[index].max(run.rss_kib);
        }
    }
    let mut index = 0;
    Ok(seconds.map(|mut seconds| {
        let run = Run {
            seconds: median(&mut seconds),
            rss_kib: rss_kib[index],
        };
        index += 1;
        run
    }))
}

/// `tracer <args>` pinned to `cpus` (a taskset list).
fn tracer_on(tracer: &Path, cpus: &str, args: &[&str]) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", cpus]).arg(tracer).args(args);
    command
}

pub fn measure(tracer: &Path, dir: &Path, quick: bool) -> anyhow::Result<Offline> {
    let datagrams = if quick { 20_000 } else { 100_000 };
    let runs = if quick { 3 } else { 5 };
    let speed_runs = if quick { 5 } else { 15 };
    let workload = |tracer: &Path| -> Command {
        // A loopback UDP exchange with a blocked reader, as fast as it goes. The flood
        // overruns the reader's socket, so what it read is reported (and not needed here)
        // rather than an error.
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!(
                "echo go | {} traffic --count {datagrams} --gap-ms 0 --report > /dev/null",
                tracer.display()
            ),
        ]);
        command
    };

    // Recording size: tracer record, then perf record, around the same workload.
    let trace = dir.join("bench.trc");
    let trace_arg = trace.to_str().context("a UTF-8 temporary directory")?;
    let recorder = Command::new(tracer)
        .args(["record", "-o", trace_arg])
        .stderr(Stdio::piped())
        .spawn()
        .context("starting tracer record")?;
    std::thread::sleep(std::time::Duration::from_millis(1500));
    if !workload(tracer).status()?.success() {
        bail!("workload failed");
    }
    // SAFETY: signalling our own child.
    unsafe { kill(recorder.id() as i32, 2) };
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
    let perf_arg = perf_data.to_str().context("a UTF-8 temporary directory")?;
    let mut perf = Command::new("perf");
    perf.args(["record", "-q", "-a", "-o", perf_arg]);
    for tracepoint in TRACEPOINTS {
        perf.args(["-e", tracepoint]);
    }
    let workload_command = workload(tracer);
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
    let perf_bytes = std::fs::metadata(&perf_data)?.len() as f64;
    let perf_events = Command::new("sh")
        .args([
            "-c",
            &format!("perf script -i {perf_arg} 2>/dev/null | wc -l"),
        ])
        .output()?;
    let perf_events: f64 = String::from_utf8_lossy(&perf_events.stdout)
        .trim()
        .parse()?;

    progress("offline decode speed, one and two cores");
    let report = ["report", trace_arg, "--slowest", "0"];
    let (mut one, mut two) = (
        || tracer_on(tracer, "0", &report),
        || tracer_on(tracer, "0,1", &report),
    );
    let [report_one_core, report_two_cores] =
        alternated(speed_runs, [&mut one, &mut two])?.map(|run| run.seconds);
    let script_one_core = median_run(runs, || {
        let mut command = Command::new("taskset");
        command.args(["-c", "0", "perf", "script", "-i", perf_arg]);
        command
    })?
    .seconds;

    // A large recording: the capture shifted in time copy after copy, as a long flood.
    let target: u64 = if quick { 64 << 20 } else { 1 << 30 };
    let large_copies = (target as f64 / tracer_bytes).ceil().max(1.0) as usize;
    progress(&format!(
        "report of a large recording ({large_copies} copies, ~{} MiB)",
        target >> 20
    ));
    let large_path = dir.join("large.trc");
    let large_bytes = replicate(&trace, &large_path, large_copies, true)?;
    let large_arg = large_path.to_str().context("a UTF-8 temporary directory")?;
    let report = ["report", large_arg];
    let (mut one, mut two) = (
        || tracer_on(tracer, "0", &report),
        || tracer_on(tracer, "0,1", &report),
    );
    let large = alternated(3, [&mut one, &mut two])?;
    std::fs::remove_file(&large_path)?;

    progress("linearity: one capture, five in time, five concatenated");
    let in_time_path = dir.join("in-time.trc");
    replicate(&trace, &in_time_path, COPIES, true)?;
    let concatenated_path = dir.join("concatenated.trc");
    replicate(&trace, &concatenated_path, COPIES, false)?;
    let inputs = [
        trace_arg,
        in_time_path
            .to_str()
            .context("a UTF-8 temporary directory")?,
        concatenated_path
            .to_str()
            .context("a UTF-8 temporary directory")?,
    ];
    let mut linear = Vec::new();
    let mut commands: Vec<(String, Vec<&str>)> =
        vec![("report".into(), vec!["report", "--slowest", "0"])];
    for format in FORMATS {
        commands.push((
            format!("export --format {format}"),
            vec!["export", "--format", format, "-o", "/dev/null"],
        ));
    }
    for (name, args) in commands {
        let on = |input: &str| {
            let mut command = Command::new(tracer);
            command.arg(args[0]).arg(input).args(&args[1..]);
            command
        };
        let (mut alone, mut in_time, mut concatenated) =
            (|| on(inputs[0]), || on(inputs[1]), || on(inputs[2]));
        let runs = alternated(runs, [&mut alone, &mut in_time, &mut concatenated])?;
        linear.push((name, runs));
    }
    std::fs::remove_file(&in_time_path)?;
    std::fs::remove_file(&concatenated_path)?;

    Ok(Offline {
        datagrams,
        runs,
        speed_runs,
        events,
        tracer_bytes,
        perf_events,
        perf_bytes,
        report_one_core,
        report_two_cores,
        script_one_core,
        large_bytes,
        large_copies,
        large,
        linear,
    })
}

impl Offline {
    /// The section of BENCHMARKS.md, from its `##` title on.
    pub fn text(&self) -> anyhow::Result<String> {
        let mut text = String::new();
        writeln!(text, "## Recording size and offline analysis\n")?;
        writeln!(
            text,
            "Workload: {} loopback UDP datagrams sent as fast as possible to a reader blocked in recv() \
             (`tracer traffic`). tracer recorded {:.0} events ({:.0} bytes), perf {:.0} events ({:.0} bytes) \
             with the same {} tracepoints (`perf record -a`). Speeds are medians of {} runs ({} of perf \
             script) pinned with `taskset` (one core and two alternated): on one core the tracer decodes and analyses on one \
             thread; on two it decodes the next chunks on a second thread while the engine takes the one \
             before. Peak RSS is the process's VmHWM.\n",
            self.datagrams,
            self.events,
            self.tracer_bytes,
            self.perf_events,
            self.perf_bytes,
            TRACEPOINTS.len(),
            self.speed_runs,
            self.runs,
        )?;
        writeln!(
            text,
            "| measure | tracer | perf | tracer / perf | better | target |"
        )?;
        writeln!(text, "|---|---:|---:|---:|---|---|")?;
        let (per_event, perf_per_event) = (
            self.tracer_bytes / self.events,
            self.perf_bytes / self.perf_events,
        );
        let (one, two, script) = (
            self.events / self.report_one_core,
            self.events / self.report_two_cores,
            self.perf_events / self.script_one_core,
        );
        writeln!(
            text,
            "| bytes per event on disk | {per_event:.1} B | {perf_per_event:.1} B | {:.2} | lower | <= 16 |",
            per_event / perf_per_event
        )?;
        writeln!(
            text,
            "| report (tracer) / perf script, events/s, 1 core | {} ev/s | {} ev/s | {:.2} | higher | >= 10 M |",
            human(one),
            human(script),
            one / script
        )?;
        writeln!(
            text,
            "| report, events/s, 2 cores | {} ev/s | | | higher | faster than 1 core |",
            human(two)
        )?;
        let large_events = self.events * self.large_copies as f64;
        let [one, two] = self.large;
        writeln!(
            text,
            "| report of a large recording (below), events/s, 1 core / 2 cores | {} / {} ev/s | | | higher | >= 10 M |",
            human(large_events / one.seconds),
            human(large_events / two.seconds),
        )?;
        writeln!(
            text,
            "| report of a large recording, peak RSS, 1 core / 2 cores | {:.0} / {:.0} MiB | | | lower | <= 300 MiB |",
            one.rss_kib as f64 / 1024.0,
            two.rss_kib as f64 / 1024.0,
        )?;
        writeln!(
            text,
            "\nThe large recording: the capture above {} times, each copy shifted in time after the one \
             before (one long flood), {:.0} MiB, {} events. `tracer report` took {:.1} s on one core, {:.1} s \
             on two (medians of 3 runs, alternated).\n",
            self.large_copies,
            self.large_bytes as f64 / (1 << 20) as f64,
            human(large_events),
            one.seconds,
            two.seconds,
        )?;
        writeln!(
            text,
            "Linearity: the capture alone, {COPIES} copies one after the other in time (one capture {COPIES} \
             times as long), and {COPIES} copies concatenated as they are (each starts where the first did: \
             every event of a later copy is late, the reorder window's hard case, and those copies pair \
             into fewer journeys, so exports write less for them). Exports to /dev/null, both cores, \
             median of {} runs, the three inputs alternated. A ratio near {COPIES} is linear.\n",
            self.runs
        )?;
        writeln!(
            text,
            "| command | 1 capture | {COPIES} in time | ratio | {COPIES} concatenated | ratio | peak RSS: 1 / {COPIES} / {COPIES} |"
        )?;
        writeln!(text, "|---|---:|---:|---:|---:|---:|---:|")?;
        let mib = |run: &Run| run.rss_kib as f64 / 1024.0;
        for (name, [one, in_time, concatenated]) in &self.linear {
            writeln!(
                text,
                "| `{name}` | {:.3} s | {:.3} s | {:.2} | {:.3} s | {:.2} | {:.0} / {:.0} / {:.0} MiB |",
                one.seconds,
                in_time.seconds,
                in_time.seconds / one.seconds,
                concatenated.seconds,
                concatenated.seconds / one.seconds,
                mib(one),
                mib(in_time),
                mib(concatenated),
            )?;
        }
        Ok(text)
    }
}
