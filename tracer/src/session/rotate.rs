//! Where `tracer record` writes: one file, or a bounded ring of files for always-on capture
//! (`--rotate SIZE|DURATION --keep N`), each a complete recording with its own metadata and
//! trailer, the oldest removed so that at most `keep` exist.

use std::{
    collections::{BTreeMap, VecDeque},
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tracer_common::Event;

use crate::{
    host::clock,
    recording::{CHUNK_EVENTS, Metadata, Writer},
};

/// Half the recorder's one-second flush interval.
const HALF_TICK: Duration = Duration::from_millis(500);

/// When a file of the ring is closed and the next one begun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotateLimit {
    /// After the first event chunk that brings the file to this many bytes or more: a file
    /// is at most this plus one chunk plus the trailer (chunks then hold at most a 32nd of
    /// this many events, at least 1024, at most CHUNK_EVENTS).
    Size(u64),
    /// At the one-second tick nearest to this age: a file spans it within half a second.
    Age(Duration),
}

impl std::fmt::Display for RotateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Size(bytes) => write!(f, "{bytes} bytes"),
            Self::Age(age) => write!(f, "{:.0}s", age.as_secs_f64()),
        }
    }
}

/// A bounded ring of recordings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// When to begin the next file.
    pub limit: RotateLimit,
    /// Files kept at most, the one being written included (at least 1).
    pub keep: usize,
}

/// What a new file's metadata and a finished file's trailer need from the running probes.
pub trait Counters {
    /// The metadata of a recording that starts now.
    fn metadata(&self) -> Metadata;
    /// Events lost per CPU since the probes were attached.
    fn lost_per_cpu(&self) -> io::Result<Vec<u64>>;
    /// Program runs skipped per program since the probes were attached.
    fn recursion_misses(&self) -> BTreeMap<String, u64>;
}

/// The file being written and the counters at its start (its trailer holds the difference).
struct Open {
    writer: Writer,
    path: PathBuf,
    started: Instant,
    start_ns: u64,
    lost_base: Vec<u64>,
    misses_base: BTreeMap<String, u64>,
}

/// What a finished recording wrote, over all its files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Events written.
    pub events: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files written (1 without rotation).
    pub files: u64,
    /// The last file written.
    pub last: PathBuf,
}

/// Writes one recording, or a ring of them.
pub struct RecordingOutput<'a> {
    output: PathBuf,
    rotation: Option<Rotation>,
    counters: &'a dyn Counters,
    /// None only after a failed rotation (every later call then fails).
    open: Option<Open>,
    /// The ring's files, oldest first (the open one last).
    ring: VecDeque<(u64, PathBuf)>,
    next_seq: u64,
    /// Events per chunk at most: fewer than CHUNK_EVENTS under a small size bound, so that
    /// the one chunk a file may overshoot by stays small against the bound.
    chunk_cap: usize,
    done: Written,
}

impl<'a> RecordingOutput<'a> {
    /// Creates `output`, or with a rotation the next file of its ring (`NAME.0001.EXT`, ...,
    /// numbered after the highest one already there), removing the oldest beyond `keep`.
    pub fn create(
        output: &Path,
        rotation: Option<Rotation>,
        counters: &'a dyn Counters,
    ) -> io::Result<Self> {
        let mut ring = VecDeque::new();
        let mut next_seq = 1;
        let path = match rotation {
            Some(rotation) => {
                ring = existing_files(output)?;
                next_seq = ring.back().map_or(1, |(seq, _)| seq + 1);
                let path = numbered(output, next_seq);
                // Room first: the oldest go before the new file exists.
                ring.push_back((next_seq, path.clone()));
                next_seq += 1;
                prune(&mut ring, rotation.keep)?;
                path
            }
            None => output.to_owned(),
        };
        Ok(Self {
            output: output.to_owned(),
            rotation,
            counters,
            open: Some(Self::open(&path, counters)?),
            ring,
            next_seq,
            chunk_cap: chunk_cap(rotation),
            done: Written::default(),
        })
    }

    fn open(path: &Path, counters: &dyn Counters) -> io::Result<Open> {
        let writer = Writer::create(path, &counters.metadata()).map_err(|err| {
            io::Error::new(err.kind(), format!("creating {}: {err}", path.display()))
        })?;
        Ok(Open {
            writer,
            path: path.to_owned(),
            started: Instant::now(),
            start_ns: clock::monotonic_ns(),
            lost_base: counters.lost_per_cpu()?,
            misses_base: counters.recursion_misses(),
        })
    }

    fn writer(&mut self) -> io::Result<&mut Writer> {
        self.open
            .as_mut()
            .map(|open| &mut open.writer)
            .ok_or_else(|| io::Error::other("the recording's next file could not be created"))
    }

    /// Appends one event; with a size limit, the chunk that reaches it closes the file.
    pub fn push(&mut self, event: &Event) -> io::Result<()> {
        let cap = self.chunk_cap;
        let writer = self.writer()?;
        let before = writer.bytes();
        writer.push(event)?;
        if writer.pending_events() >= cap {
            writer.flush_chunk()?;
        }
        if writer.bytes() > before {
            self.rotate_if(false)?;
        }
        Ok(())
    }

    /// Writes the pending events as one chunk (every second), then begins the next file if
    /// this one reached its size or age.
    pub fn flush_chunk(&mut self) -> io::Result<()> {
        self.writer()?.flush_chunk()?;
        self.rotate_if(true)
    }

    fn rotate_if(&mut self, tick: bool) -> io::Result<()> {
        let Some(open) = &self.open else {
            return Ok(());
        };
        let due = match self.rotation.map(|rotation| rotation.limit) {
            None => false,
            // Only a file with events is closed for its size (its metadata alone may exceed
            // a small bound).
            Some(RotateLimit::Size(size)) => {
                open.writer.bytes() >= size && open.writer.events() > 0
            }
            // Ticks come every second: the one nearest to the age closes the file.
            Some(RotateLimit::Age(age)) => tick && open.started.elapsed() + HALF_TICK >= age,
        };
        if !due {
            return Ok(());
        }
        if let Some(open) = self.open.take() {
            self.finish_file(open)?;
        }
        // The finished file and the removed oldest make room before the next is created:
        // at most `keep` files exist at any time.
        let path = numbered(&self.output, self.next_seq);
        self.ring.push_back((self.next_seq, path.clone()));
        self.next_seq += 1;
        if let Some(rotation) = self.rotation {
            prune(&mut self.ring, rotation.keep)?;
        }
        self.open = Some(Self::open(&path, self.counters)?);
        Ok(())
    }

    /// Writes a file's trailer (its own losses, misses and duration) and counts what it held.
    fn finish_file(&mut self, open: Open) -> io::Result<()> {
        let Open {
            mut writer,
            path,
            start_ns,
            lost_base,
            misses_base,
            ..
        } = open;
        let lost: Vec<u64> = self
            .counters
            .lost_per_cpu()?
            .iter()
            .enumerate()
            .map(|(cpu, &n)| n.saturating_sub(lost_base.get(cpu).copied().unwrap_or(0)))
            .collect();
        let misses = self
            .counters
            .recursion_misses()
            .into_iter()
            .map(|(program, n)| {
                let base = misses_base.get(&program).copied().unwrap_or(0);
                (program, n.saturating_sub(base))
            })
            .collect();
        writer.set_recursion_misses(misses);
        let events = writer.events();
        let duration = clock::monotonic_ns().saturating_sub(start_ns);
        let bytes = writer.finish(lost, duration).map_err(|err| {
            io::Error::new(err.kind(), format!("writing {}: {err}", path.display()))
        })?;
        self.done.events += events;
        self.done.bytes += bytes;
        self.done.files += 1;
        self.done.last = path;
        Ok(())
    }

    /// Ends the recording: the open file gets its trailer.
    pub fn finish(mut self) -> io::Result<Written> {
        if let Some(open) = self.open.take() {
            self.finish_file(open)?;
        }
        Ok(self.done)
    }

    /// Events pushed so far, over all files.
    pub fn events(&self) -> u64 {
        self.done.events + self.open.as_ref().map_or(0, |open| open.writer.events())
    }

    /// Bytes written so far, over all files.
    pub fn bytes(&self) -> u64 {
        self.done.bytes + self.open.as_ref().map_or(0, |open| open.writer.bytes())
    }

    /// The file being written (the last one once finished or failed).
    pub fn current(&self) -> &Path {
        self.open
            .as_ref()
            .map_or(self.done.last.as_path(), |open| open.path.as_path())
    }
}

/// Events per chunk at most for a rotation: with a size bound, a 32nd of it in events
/// (about an eighth of it at 4 compressed bytes per event), between 1024 and CHUNK_EVENTS.
fn chunk_cap(rotation: Option<Rotation>) -> usize {
    match rotation.map(|rotation| rotation.limit) {
        Some(RotateLimit::Size(size)) => {
            usize::try_from(size / 32).map_or(CHUNK_EVENTS, |cap| cap.clamp(1024, CHUNK_EVENTS))
        }
        _ => CHUNK_EVENTS,
    }
}

/// Removes the oldest files of a ring until at most `keep` (at least 1) remain listed; a
/// file already gone is not an error.
fn prune(ring: &mut VecDeque<(u64, PathBuf)>, keep: usize) -> io::Result<()> {
    while ring.len() > keep.max(1) {
        let Some((_, oldest)) = ring.pop_front() else {
            break;
        };
        match std::fs::remove_file(&oldest) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(io::Error::new(
                    err.kind(),
                    format!("removing {}: {err}", oldest.display()),
                ));
            }
        }
    }
    Ok(())
}

/// `dir/NAME.EXT` -> `dir/NAME.0007.EXT` (`dir/NAME.0007` without an extension).
pub fn numbered(output: &Path, seq: u64) -> PathBuf {
    let (stem, ext) = split_name(output);
    let name = match ext {
        Some(ext) => format!("{stem}.{seq:04}.{ext}"),
        None => format!("{stem}.{seq:04}"),
    };
    output.with_file_name(name)
}

fn split_name(output: &Path) -> (String, Option<String>) {
    let stem = output
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = output
        .extension()
        .map(|ext| ext.to_string_lossy().into_owned());
    (stem, ext)
}

/// The sequence number of a file of `output`'s ring, if `name` is one.
fn sequence_of(output: &Path, name: &str) -> Option<u64> {
    let (stem, ext) = split_name(output);
    let rest = name.strip_prefix(&stem)?.strip_prefix('.')?;
    let digits = match &ext {
        Some(ext) => rest.strip_suffix(ext.as_str())?.strip_suffix('.')?,
        None => rest,
    };
    (digits.len() >= 4 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The ring's files already in `output`'s directory, oldest (lowest number) first.
fn existing_files(output: &Path) -> io::Result<VecDeque<(u64, PathBuf)>> {
    let dir = match output.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut files: Vec<(u64, PathBuf)> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let seq = sequence_of(output, name.to_str()?)?;
                Some((seq, numbered(output, seq)))
            })
            .collect(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(err) => {
            return Err(io::Error::new(
                err.kind(),
                format!("reading {}: {err}", dir.display()),
            ));
        }
    };
    files.sort();
    Ok(files.into())
}

#[cfg(test)]
mod tests;
