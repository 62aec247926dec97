//! The recording loop: raw events from the ring buffer to a file, with the host's metadata
//! first and the loss counters last. `tracer record` runs it.

use std::{
    io::IsTerminal as _,
    path::Path,
    time::{Duration, Instant},
};

use std::collections::BTreeMap;

use anyhow::Context as _;

use super::{
    Session,
    rotate::{Counters, RecordingOutput, Rotation},
};
use crate::{
    probe::{ProbeOptions, Probes},
    recording::{Metadata, capture},
    source::decode,
};

/// The running probes as the source of each file's metadata and trailer counters.
pub(super) struct ProbeCounters<'a> {
    probes: &'a Probes,
    filters: Vec<String>,
    /// The host name to record instead of this host's (`record --host`).
    host: Option<&'a str>,
}

impl<'a> ProbeCounters<'a> {
    /// The counters of `probes` attached with `options`; `host` names the host instead of
    /// this one's.
    pub(super) fn new(probes: &'a Probes, options: &ProbeOptions, host: Option<&'a str>) -> Self {
        Self {
            probes,
            filters: capture::record_filters(options.pid, &options.without),
            host,
        }
    }
}

impl Counters for ProbeCounters<'_> {
    fn metadata(&self) -> Metadata {
        let mut meta = capture::metadata(self.probes, self.filters.clone());
        if let Some(host) = self.host {
            meta.hostname = host.to_owned();
        }
        meta
    }

    fn lost_per_cpu(&self) -> std::io::Result<Vec<u64>> {
        self.probes.lost_per_cpu().map_err(std::io::Error::other)
    }

    fn recursion_misses(&self) -> BTreeMap<String, u64> {
        self.probes.recursion_misses()
    }
}

/// Records until `duration`, Ctrl-C or SIGTERM, then reports what was written on stderr.
/// With a rotation, `output` names a ring of files (`NAME.0001.EXT`, ...), each a complete
/// recording. `host`: the host name its metadata names instead of this host's.
pub async fn record(
    options: &ProbeOptions,
    output: &Path,
    duration: Option<Duration>,
    rotation: Option<Rotation>,
    host: Option<&str>,
) -> anyhow::Result<()> {
    let Session {
        probes,
        mut source,
        mut signals,
    } = Session::start(options)?;
    let counters = ProbeCounters::new(&probes, options, host);
    // Its errors name the file (the ring's next one, or one it removes).
    let mut writer = RecordingOutput::create(output, rotation, &counters)?;
    match rotation {
        Some(rotation) => eprintln!(
            "tracer: recording to {} (a ring of at most {} files of {} each); Ctrl-C to stop",
            writer.current().display(),
            rotation.keep,
            rotation.limit,
        ),
        None => eprintln!("tracer: recording to {}; Ctrl-C to stop", output.display()),
    }
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let stop = tokio::time::sleep(duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // The first write error (a full disk, a file size limit) stops the recording at once:
    // the whole chunks before it stay readable, and the summary says what they hold.
    let failure: std::cell::RefCell<Option<std::io::Error>> = std::cell::RefCell::new(None);
    let push = |writer: &mut RecordingOutput, bytes: &[u8]| {
        if let Ok((event, _)) = decode::decode(bytes)
            && failure.borrow().is_none()
            && let Err(err) = writer.push(&event)
        {
            *failure.borrow_mut() = Some(err);
        }
    };
    while failure.borrow().is_none() {
        tokio::select! {
            () = signals.recv() => break,
            () = &mut stop => break,
            _ = tick.tick() => {
                // Whole chunks reach the file every second: a killed recorder loses at most that.
                if let Err(err) = writer.flush_chunk() {
                    *failure.borrow_mut() = Some(err);
                    break;
                }
                if progress {
                    let lost: u64 = probes.lost_per_cpu()?.iter().sum();
                    eprint!(
                        "\rtracer: {} events, {} bytes, {lost} lost, {:.0}s   ",
                        writer.events(),
                        writer.bytes(),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            batch = source.next_batch(|bytes| push(&mut writer, bytes)) => {
                batch.context("reading the ring buffer")?;
            }
        }
    }
    if failure.borrow().is_none() {
        source.drain_all(|bytes| push(&mut writer, bytes));
    }
    if progress {
        eprintln!();
    }
    let lost = probes.lost_per_cpu()?;
    let misses = probes.recursion_misses();
    let events = writer.events();
    let current = writer.current().to_owned();
    let finished = match failure.take() {
        Some(err) => Err(err),
        None => writer.finish(),
    };
    let written = match finished {
        Ok(written) => written,
        Err(err) => {
            eprintln!(
                "tracer: recording stopped by a write error after {events} events in {:.1}s; \
                 {} keeps the whole chunks written before it (report reads them)",
                started.elapsed().as_secs_f64(),
                current.display()
            );
            return Err(err).with_context(|| format!("writing {}", current.display()));
        }
    };
    let bytes = written.bytes;
    let place = if rotation.is_some() {
        format!(
            "{} files, the last {}",
            written.files,
            written.last.display()
        )
    } else {
        output.display().to_string()
    };
    let per_cpu: Vec<String> = lost
        .iter()
        .enumerate()
        .map(|(cpu, n)| format!("cpu{cpu}={n}"))
        .collect();
    eprintln!(
        "tracer: recorded {events} events ({bytes} bytes, {:.1} B/event) in {:.1}s to {}; lost {} ({}); {}",
        bytes as f64 / events.max(1) as f64,
        started.elapsed().as_secs_f64(),
        place,
        lost.iter().sum::<u64>(),
        per_cpu.join(" "),
        crate::probe::stats::misses_line(&misses),
    );
    Ok(())
}
