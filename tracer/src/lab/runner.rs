//! Running a lab: each phase's competitor, traffic process and traced journeys, the loopback
//! RPS steering some phases need, and what each phase measured.

use std::{process::Stdio, time::Duration};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Competitor, LABS, Phase, find, report, workload};
use crate::{
    host::irqmap::IrqMap,
    journey::{Journey, JourneyFilter, Stage},
    probe::{ProbeOptions, Probes},
    session::live::{LiveOutput, LiveRecording, follow},
};

/// What one phase measured.
pub struct Measured {
    pub phase: Phase,
    pub journeys: Vec<Journey>,
    pub reader: Value,
    pub ksoftirqd_wakeups: u64,
}

impl Measured {
    pub fn p50(&self, stage: Stage) -> Option<u64> {
        let mut values: Vec<u64> = self
            .journeys
            .iter()
            .filter_map(|j| j.stages_ns.get(stage))
            .collect();
        values.sort_unstable();
        values.get(values.len() / 2).copied()
    }

    pub fn fraction(&self, test: impl Fn(&Journey) -> bool) -> f64 {
        self.journeys.iter().filter(|j| test(j)).count() as f64 / self.journeys.len().max(1) as f64
    }

    /// Mean packets per poll as the packets saw it (napi_work of each packet's poll).
    pub fn packets_per_poll(&self) -> Option<f64> {
        let works: Vec<f64> = self
            .journeys
            .iter()
            .filter_map(|j| j.napi_work.map(f64::from))
            .collect();
        (!works.is_empty()).then(|| works.iter().sum::<f64>() / works.len() as f64)
    }

    /// Distinct NET_RX softirq runs (raises that ran) per packet.
    pub fn raises_per_packet(&self) -> Option<f64> {
        let raises: std::collections::HashSet<(Option<u16>, u64)> = self
            .journeys
            .iter()
            .filter_map(|j| Some((j.cpu_softirq, j.ts.softirq_entry?)))
            .collect();
        (!self.journeys.is_empty()).then(|| raises.len() as f64 / self.journeys.len() as f64)
    }

    pub fn reader_number(&self, key: &str) -> u64 {
        self.reader[key].as_u64().unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        let p50: serde_json::Map<String, Value> = Stage::ALL
            .iter()
            .map(|stage| (stage.name().to_owned(), json!(self.p50(*stage))))
            .collect();
        json!({
            "label": self.phase.label,
            "journeys": self.journeys.len(),
            "complete": self.journeys.iter().filter(|j| j.complete).count(),
            "p50_ns": p50,
            "wakeup_fraction": self.fraction(|j| j.stages_ns.wakeup.is_some()),
            "ksoftirqd_fraction": self.fraction(|j| j.softirq_in_ksoftirqd),
            "ksoftirqd_wakeups": self.ksoftirqd_wakeups,
            "packets_per_poll": self.packets_per_poll(),
            "softirq_runs_per_packet": self.raises_per_packet(),
            "reader": self.reader,
        })
    }
}

/// What `tracer lab run` asks for.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub name: String,
    /// A few seconds instead of 10-30.
    pub short: bool,
    /// One JSON object with every measured number and the claims checked.
    pub json: bool,
    /// Model answers to the questions.
    pub answers: bool,
    /// Record each phase's raw events to FILE.<phase>.trc.
    pub record: Option<std::path::PathBuf>,
}

/// Runs one lab: every phase, then the claims, as text or one JSON object.
pub async fn run(args: &RunOptions, verbose: bool) -> anyhow::Result<()> {
    let Some(lab) = find(&args.name) else {
        let names: Vec<&str> = LABS.iter().map(|lab| lab.name).collect();
        bail!("no lab named {:?} (labs: {})", args.name, names.join(", "));
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        bail!("the labs need two CPUs (a sender and a reader CPU); this machine has {cpus}");
    }
    let reader_cpu = cpus - 1;
    // The tracer itself stays off the reader's CPU, so that only the phase's tasks run there.
    workload::pin_to(0).context("pinning the tracer to CPU 0")?;
    if !args.json {
        crate::outln!("== lab {}: {} ==\n", lab.name, lab.summary);
        crate::outln!("{}\n", report::textwrap(lab.story));
    }
    let mut measured = Vec::new();
    for (index, phase) in (lab.phases)(args.short).into_iter().enumerate() {
        if !args.json {
            eprintln!("tracer: lab: phase {}: {} ...", index + 1, phase.label);
        }
        let record = args.record.as_ref().map(|file| {
            let mut name = file.clone().into_os_string();
            name.push(format!(".{}.trc", index + 1));
            std::path::PathBuf::from(name)
        });
        measured.push(run_phase(phase, reader_cpu, record, verbose).await?);
    }
    let claims = (lab.claims)(&measured);
    if args.json {
        let phases: Vec<Value> = measured.iter().map(Measured::to_json).collect();
        let claims: Vec<Value> = claims
            .iter()
            .map(|(claim, holds)| json!({"claim": claim, "holds": holds}))
            .collect();
        crate::outln!(
            "{}",
            json!({"lab": lab.name, "phases": phases, "claims": claims})
        );
        return Ok(());
    }
    report::print_text(lab, &measured, &claims, args.answers);
    Ok(())
}

/// RPS steering of loopback to one CPU, undone on drop (also on failure or Ctrl-C).
struct RpsSteering {
    path: std::path::PathBuf,
    previous: String,
}

impl RpsSteering {
    fn to_cpu(cpu: usize) -> anyhow::Result<Self> {
        let path = std::path::PathBuf::from("/sys/class/net/lo/queues/rx-0/rps_cpus");
        let previous = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        std::fs::write(&path, format!("{:x}", 1u64 << cpu))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self {
            path,
            previous: previous.trim().to_owned(),
        })
    }
}

impl Drop for RpsSteering {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.previous);
    }
}

async fn run_phase(
    phase: Phase,
    reader_cpu: usize,
    record: Option<std::path::PathBuf>,
    verbose: bool,
) -> anyhow::Result<Measured> {
    let _rps = if phase.rps {
        Some(RpsSteering::to_cpu(reader_cpu)?)
    } else {
        None
    };
    let exe = std::env::current_exe().context("finding the tracer executable")?;
    let competitor = match phase.competitor {
        Some(kind) => {
            let mut command = tokio::process::Command::new(&exe);
            command.args(["spin", "--cpu", &reader_cpu.to_string(), "--seconds", "300"]);
            match kind {
                Competitor::Nice(nice) => command.args(["--nice", &nice.to_string()]),
                Competitor::Fifo => command.arg("--fifo"),
            };
            let child = command
                .kill_on_drop(true)
                .spawn()
                .context("starting the competitor")?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            Some(child)
        }
        None => None,
    };
    let mut traffic = tokio::process::Command::new(&exe);
    traffic.args([
        "traffic",
        "--report",
        "--count",
        &phase.count.to_string(),
        "--gap-us",
        &phase.gap_us.to_string(),
        "--mode",
        phase.mode,
        "--reader-cpu",
        &reader_cpu.to_string(),
        "--sender-cpu",
        "0",
        "--work-us",
        &phase.work_us.to_string(),
    ]);
    if phase.reader_fifo {
        traffic.arg("--reader-fifo");
    }
    if phase.reader_batch {
        traffic.arg("--reader-batch");
    }
    let mut child = traffic
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the traffic process")?;
    let pid = child.id().context("traffic process has no pid")?;
    let options = ProbeOptions {
        // A flood must not lose events: 64 MiB holds a million events.
        ring_bytes: 64 << 20,
        ..ProbeOptions::journeys_of(pid, verbose)
    };
    let output = LiveOutput {
        json: false,
        filter: JourneyFilter {
            pids: vec![pid],
            ..JourneyFilter::default()
        },
        count: None,
        interval: Duration::ZERO,
        keep_unsocketed: false,
        record: record.map(LiveRecording::file),
        metrics: None,
        quiet: true,
        collect: true,
    };
    let mut go = child.stdin.take().context("traffic stdin")?;
    let mut report = child.stdout.take().context("traffic stdout")?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let ready = move |_: &Probes| {
        let _ = ready_tx.send(());
    };
    let stop = async move {
        if ready_rx.await.is_ok() {
            let _ = go.write_all(b"go\n").await;
            let _ = go.flush().await;
        }
        let mut text = String::new();
        let _ = report.read_to_string(&mut text).await;
        let status = child.wait().await;
        let _ = done_tx.send((text, status));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stats = follow(&options, &output, IrqMap::from_system(), ready, stop).await?;
    if let Some(mut competitor) = competitor {
        let _ = competitor.kill().await;
    }
    let (text, status) = done_rx
        .await
        .context("the traffic process did not finish")?;
    let status = status.context("waiting for the traffic process")?;
    if !status.success() {
        bail!(
            "the traffic process of phase {:?} failed ({status})",
            phase.label
        );
    }
    let reader: Value =
        serde_json::from_str(text.trim()).context("the traffic process's report")?;
    Ok(Measured {
        phase,
        journeys: stats.collected,
        reader,
        ksoftirqd_wakeups: stats.engine.ksoftirqd_wakeups,
    })
}
