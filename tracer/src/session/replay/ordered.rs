//! A recording's events in time order, chunk by chunk, for the engine: read, decoded,
//! counted in file order and put in time order by the reorder window on a second thread
//! when the process may use a second CPU (the engine and the report's counts then have this
//! one to themselves), else here. Either way the engine takes the same events in the same
//! order: what the window releases after each chunk, then the rest at the end.

use std::{
    io::Read,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    thread::JoinHandle,
};

use tracer_common::Event;

use crate::{
    journey::{Journey, Reorder, Tracker, reorder::DEFAULT_WINDOW_NS},
    recording::{CHUNK_EVENTS, EventBatches, RecordError, RecordingReader},
    sink::report::EventsSeen,
};

/// Chunks' released events sent ahead of the engine at most: the thread runs ahead by a few
/// chunks, so memory stays the window and a few chunks whatever the file's size.
const AHEAD: usize = 4;

/// Counts over a recording's events that do not depend on their order: kept where the
/// events are decoded, in file order, and handed back at the end.
pub(super) trait Tally: Send + 'static {
    /// Counts a chunk's events.
    fn add(&mut self, events: &[Event]);
}

/// Nothing counted (exports count the events they read from [`Step::Chunk`]).
impl Tally for () {
    fn add(&mut self, _: &[Event]) {}
}

impl Tally for EventsSeen {
    fn add(&mut self, events: &[Event]) {
        EventsSeen::add(self, events);
    }
}

/// What one step gave the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// A chunk of this many events was read; what the window released after it went to the
    /// engine.
    Chunk(usize),
    /// The end of the recording: the window's last events went to the engine.
    End,
}

/// What the ordering thread sends.
enum Message<R, T> {
    /// A chunk of `read` events was decoded; `released` left the window after it.
    Chunk {
        read: usize,
        released: Vec<Event>,
    },
    /// The end (or a halt): the window's last events, the late count, the tally and, at the
    /// end of the file, the reader back (its trailer and truncation known).
    End {
        released: Vec<Event>,
        late: u64,
        tally: T,
        reader: Option<Box<RecordingReader<R>>>,
    },
    Failed(RecordError),
}

/// A recording's events in time order, for one engine.
pub(super) struct Ordered<R, T> {
    inner: Inner<R, T>,
}

enum Inner<R, T> {
    /// Decoding and ordering on this thread.
    Here {
        batches: EventBatches<R>,
        reorder: Reorder,
        tally: T,
    },
    /// On another thread; `spare` returns used batches to it, `halt` stops it early.
    Thread {
        messages: Receiver<Message<R, T>>,
        spare: SyncSender<Vec<Event>>,
        halt: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
        path: PathBuf,
    },
    /// The reader was lost with a thread that could not start.
    Lost(PathBuf),
    /// The end was reached (or an error returned, or a halt).
    Done {
        reader: Option<Box<RecordingReader<R>>>,
        tally: Option<T>,
    },
}

impl<R: Read + Send + 'static, T: Tally> Ordered<R, T> {
    /// The events of `reader`, ordered on a second thread when `threads` > 1; `tally`
    /// counts them in file order.
    pub(super) fn new(reader: RecordingReader<R>, threads: usize, tally: T) -> Self {
        if threads < 2 {
            return Self::here(reader, tally);
        }
        let path = reader.path().to_owned();
        // Handed over through a slot, so a thread that cannot start leaves them here.
        let slot = Arc::new(Mutex::new(Some((reader, tally))));
        let (send, messages) = sync_channel(AHEAD);
        let (spare, used) = sync_channel::<Vec<Event>>(AHEAD + 2);
        let halt = Arc::new(AtomicBool::new(false));
        let (theirs, their_halt) = (Arc::clone(&slot), Arc::clone(&halt));
        let thread = std::thread::Builder::new()
            .name("tracer-order".into())
            .spawn(move || {
                let taken = theirs.lock().ok().and_then(|mut slot| slot.take());
                if let Some((reader, tally)) = taken {
                    order(reader, tally, &send, &used, &their_halt);
                }
            });
        let inner = match thread {
            Ok(thread) => Inner::Thread {
                messages,
                spare,
                halt,
                thread: Some(thread),
                path,
            },
            Err(err) => {
                log::debug!("no ordering thread ({err}): ordering on this one");
                match slot.lock().ok().and_then(|mut slot| slot.take()) {
                    Some((reader, tally)) => return Self::here(reader, tally),
                    None => Inner::Lost(path),
                }
            }
        };
        Self { inner }
    }
}

impl<R: Read, T: Tally> Ordered<R, T> {
    /// The events of `reader`, decoded and ordered on this thread.
    pub(super) fn here(reader: RecordingReader<R>, tally: T) -> Self {
        Self {
            inner: Inner::Here {
                batches: EventBatches::here(reader),
                reorder: Reorder::new(DEFAULT_WINDOW_NS),
                tally,
            },
        }
    }

    /// Runs the next chunk's released events (or, at the end, the window's rest) through
    /// `tracker`'s engine, the journeys that ended into `out`. After [`Step::End`] every
    /// call gives `End` with nothing more.
    pub(super) fn step(
        &mut self,
        tracker: &mut Tracker,
        out: &mut Vec<Journey>,
    ) -> Result<Step, RecordError> {
        match &mut self.inner {
            Inner::Here {
                batches,
                reorder,
                tally,
            } => {
                let read = match batches.next_batch() {
                    Ok(Some(events)) => {
                        count_and_hold(events, tally, reorder);
                        events.len()
                    }
                    Ok(None) => {
                        tracker.push_ordered(out, |each| reorder.drain(each));
                        tracker.add_late(reorder.late());
                        self.finish_here();
                        return Ok(Step::End);
                    }
                    Err(err) => {
                        self.inner = Inner::Done {
                            reader: None,
                            tally: None,
                        };
                        return Err(err);
                    }
                };
                tracker.push_ordered(out, |each| reorder.release(each));
                Ok(Step::Chunk(read))
            }
            Inner::Thread {
                messages,
                spare,
                thread,
                path,
                ..
            } => match messages.recv() {
                Ok(Message::Chunk { read, released }) => {
                    tracker.push_ordered(out, |each| released.iter().for_each(each));
                    // Back to be filled again (or dropped when the thread already ended).
                    let _ = spare.try_send(released);
                    Ok(Step::Chunk(read))
                }
                Ok(Message::End {
                    released,
                    late,
                    tally,
                    reader,
                }) => {
                    tracker.push_ordered(out, |each| released.iter().for_each(each));
                    tracker.add_late(late);
                    if let Some(thread) = thread.take() {
                        let _ = thread.join();
                    }
                    self.inner = Inner::Done {
                        reader,
                        tally: Some(tally),
                    };
                    Ok(Step::End)
                }
                Ok(Message::Failed(err)) => {
                    self.inner = Inner::Done {
                        reader: None,
                        tally: None,
                    };
                    Err(err)
                }
                Err(_) => {
                    // The thread ended without a word: it panicked (or never started).
                    let path = std::mem::take(path);
                    self.inner = Inner::Done {
                        reader: None,
                        tally: None,
                    };
                    Err(RecordError::Decoder { path })
                }
            },
            Inner::Lost(path) => {
                let path = std::mem::take(path);
                self.inner = Inner::Done {
                    reader: None,
                    tally: None,
                };
                Err(RecordError::Decoder { path })
            }
            Inner::Done { .. } => Ok(Step::End),
        }
    }

    /// Stops early (a stop signal): no chunk is read after those already taken, and every
    /// event read goes to `tracker`'s own window (its `finish` then runs them through the
    /// engine). Returns how many events were read beyond those the steps so far counted.
    pub(super) fn halt(&mut self, tracker: &mut Tracker) -> u64 {
        match &mut self.inner {
            Inner::Here { reorder, .. } => {
                reorder.drain(|event| tracker.push_event(*event));
                tracker.add_late(reorder.late());
                // As before a halt: the reader is given back where it stopped.
                self.finish_here();
                0
            }
            Inner::Thread {
                messages,
                halt,
                thread,
                ..
            } => {
                halt.store(true, Ordering::Relaxed);
                let mut read = 0;
                let mut tally = None;
                // The thread stops at its next chunk: take what it sent until then.
                while let Ok(message) = messages.recv() {
                    match message {
                        Message::Chunk {
                            read: chunk,
                            released,
                        } => {
                            read += chunk as u64;
                            released.iter().for_each(|event| tracker.push_event(*event));
                        }
                        Message::End {
                            released,
                            late,
                            tally: theirs,
                            ..
                        } => {
                            released.iter().for_each(|event| tracker.push_event(*event));
                            tracker.add_late(late);
                            tally = Some(theirs);
                            break;
                        }
                        Message::Failed(err) => {
                            log::debug!("after the stop signal: {err}");
                            break;
                        }
                    }
                }
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
                self.inner = Inner::Done {
                    reader: None,
                    tally,
                };
                read
            }
            Inner::Lost(_) | Inner::Done { .. } => 0,
        }
    }

    /// Done on this thread: keeps the reader (for its trailer, or a second pass) and the
    /// tally.
    fn finish_here(&mut self) {
        let done = Inner::Done {
            reader: None,
            tally: None,
        };
        if let Inner::Here { batches, tally, .. } = std::mem::replace(&mut self.inner, done) {
            self.inner = Inner::Done {
                reader: batches.into_reader().map(Box::new),
                tally: Some(tally),
            };
        }
    }

    /// The reader, once a step gave [`Step::End`] (its trailer and truncation are known,
    /// and a file can be rewound for a second pass), and the tally.
    pub(super) fn into_parts(self) -> (Option<RecordingReader<R>>, Option<T>) {
        match self.inner {
            Inner::Done { reader, tally } => (reader.map(|reader| *reader), tally),
            Inner::Here { batches, tally, .. } => (batches.into_reader(), Some(tally)),
            Inner::Thread { .. } | Inner::Lost(_) => (None, None),
        }
    }
}

/// Events counted and held at a time: a few kilobytes, so that the window reads the
/// events the tally just read from the nearest cache (a chunk is a megabyte).
const BLOCK: usize = 256;

/// Counts a chunk's events and puts them in the reorder window, block by block.
fn count_and_hold<T: Tally>(events: &[Event], tally: &mut T, reorder: &mut Reorder) {
    for block in events.chunks(BLOCK) {
        tally.add(block);
        reorder.extend(block);
    }
}

/// The ordering thread: chunks until the end, an error, a halt, or nobody listens any more.
fn order<R: Read, T: Tally>(
    reader: RecordingReader<R>,
    mut tally: T,
    send: &SyncSender<Message<R, T>>,
    used: &Receiver<Vec<Event>>,
    halt: &AtomicBool,
) {
    let mut batches = EventBatches::here(reader);
    let mut reorder = Reorder::new(DEFAULT_WINDOW_NS);
    loop {
        let mut released = used
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_EVENTS));
        released.clear();
        let halted = halt.load(Ordering::Relaxed);
        let next = if halted {
            Ok(None)
        } else {
            batches.next_batch()
        };
        let message = match next {
            Ok(Some(events)) => {
                count_and_hold(events, &mut tally, &mut reorder);
                reorder.release(|event| released.push(*event));
                Message::Chunk {
                    read: events.len(),
                    released,
                }
            }
            Ok(None) => {
                reorder.drain(|event| released.push(*event));
                let reader = if halted {
                    None
                } else {
                    batches.into_reader().map(Box::new)
                };
                let _ = send.send(Message::End {
                    released,
                    late: reorder.late(),
                    tally,
                    reader,
                });
                return;
            }
            Err(err) => {
                let _ = send.send(Message::Failed(err));
                return;
            }
        };
        if send.send(message).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::journey::EngineConfig;

    /// The fixture's journeys and late count through the tracker's own window.
    fn through_the_tracker(path: &Path) -> (Vec<Journey>, u64) {
        let recording = crate::recording::Recording::read(path).unwrap();
        let mut tracker = Tracker::new(EngineConfig::from_recording(&recording.meta, true));
        let mut journeys = Vec::new();
        for chunk in recording.events.chunks(CHUNK_EVENTS) {
            for event in chunk {
                tracker.push_event(*event);
            }
            tracker.advance(None, &mut journeys);
        }
        tracker.finish(&mut journeys);
        (journeys, tracker.late_events())
    }

    /// Ordered here or on a second thread, the engine takes the same events in the same
    /// order as through its tracker's own window: the same journeys, late count and tally.
    #[test]
    fn ordered_here_or_on_a_thread_gives_the_same_journeys() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loopback/udp-tcp-2s.trc");
        let (expected, late) = through_the_tracker(&path);
        assert!(expected.len() > 100, "{}", expected.len());
        for threads in [1, 2] {
            let reader = RecordingReader::open(&path).unwrap();
            let config = EngineConfig::from_recording(reader.meta(), true);
            let mut tracker = Tracker::new(config);
            let mut ordered = Ordered::new(reader, threads, EventsSeen::new(true));
            let (mut journeys, mut read, mut steps) = (Vec::new(), 0, 0);
            while let Step::Chunk(events) = ordered.step(&mut tracker, &mut journeys).unwrap() {
                read += events;
                steps += 1;
            }
            assert_eq!(
                ordered.step(&mut tracker, &mut journeys).unwrap(),
                Step::End
            );
            tracker.finish(&mut journeys);
            assert!(steps > 0);
            assert_eq!(journeys, expected, "{threads} threads");
            assert_eq!(tracker.late_events(), late);
            let (reader, seen) = ordered.into_parts();
            assert!(reader.is_some_and(|reader| reader.outline().trailer.is_some()));
            let seen = seen.unwrap();
            assert_eq!(seen.span().0 > 0, read > 0);
        }
    }
}
