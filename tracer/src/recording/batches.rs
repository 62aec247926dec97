//! A recording's events a chunk at a time, in file order, read and decoded on a second
//! thread when the process may use a second CPU: the decoder runs ahead of the engine by a
//! few chunks (a bounded channel), so memory stays a few chunks whatever the file's size.

use std::{
    io::Read,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, SyncSender, sync_channel},
    },
    thread::JoinHandle,
};

use tracer_common::Event;

use super::{CHUNK_EVENTS, RecordError, reader::RecordingReader};

/// Chunks decoded ahead of the engine at most (each up to [`CHUNK_EVENTS`] events, 1 MiB).
const AHEAD: usize = 4;

/// What the decoding thread sends: a chunk's events, or the end (with the reader back, its
/// trailer and truncation known), or the error that ended it.
enum Message<R> {
    Events(Vec<Event>),
    End(Box<RecordingReader<R>>),
    Failed(RecordError),
}

/// Decoded events batch by batch, in file order.
pub struct EventBatches<R> {
    inner: Inner<R>,
    batch: Vec<Event>,
}

enum Inner<R> {
    /// Decoding on this thread.
    Here(Box<RecordingReader<R>>),
    /// Decoding on another thread; `spare` returns used batches to it.
    Thread {
        batches: Receiver<Message<R>>,
        spare: SyncSender<Vec<Event>>,
        thread: Option<JoinHandle<()>>,
        path: PathBuf,
    },
    /// The end was reached (or an error returned).
    Done(Option<Box<RecordingReader<R>>>),
    /// The reader was lost with a thread that could not start.
    Lost(PathBuf),
}

impl<R: Read + Send + 'static> EventBatches<R> {
    /// Batches from `reader`, decoded on a second thread when `threads` > 1.
    pub fn new(reader: RecordingReader<R>, threads: usize) -> Self {
        if threads < 2 {
            return Self::here(reader);
        }
        let path = reader.path().to_owned();
        // Handed over through a slot, so a thread that cannot start leaves it here.
        let slot = Arc::new(Mutex::new(Some(Box::new(reader))));
        let (send, batches) = sync_channel(AHEAD);
        let (spare, used) = sync_channel::<Vec<Event>>(AHEAD + 2);
        let theirs = Arc::clone(&slot);
        let thread = std::thread::Builder::new()
            .name("tracer-decode".into())
            .spawn(move || {
                let reader = theirs.lock().ok().and_then(|mut slot| slot.take());
                if let Some(reader) = reader {
                    decode(reader, &send, &used);
                }
            });
        let inner = match thread {
            Ok(thread) => Inner::Thread {
                batches,
                spare,
                thread: Some(thread),
                path,
            },
            Err(err) => {
                log::debug!("no decoding thread ({err}): decoding on this one");
                match slot.lock().ok().and_then(|mut slot| slot.take()) {
                    Some(reader) => Inner::Here(reader),
                    None => Inner::Lost(path),
                }
            }
        };
        Self {
            inner,
            batch: Vec::with_capacity(CHUNK_EVENTS),
        }
    }
}

impl<R: Read> EventBatches<R> {
    /// Batches decoded on this thread.
    pub fn here(reader: RecordingReader<R>) -> Self {
        Self {
            inner: Inner::Here(Box::new(reader)),
            batch: Vec::with_capacity(CHUNK_EVENTS),
        }
    }

    /// The next chunk's events (possibly none), or None at the end of the recording.
    pub fn next_batch(&mut self) -> Result<Option<&[Event]>, RecordError> {
        self.batch.clear();
        match &mut self.inner {
            Inner::Here(reader) => {
                match reader.next_events(&mut self.batch) {
                    Ok(true) => return Ok(Some(&self.batch)),
                    Ok(false) => {}
                    Err(err) => {
                        self.inner = Inner::Done(None);
                        return Err(err);
                    }
                }
                // The end: keep the reader for its trailer, or a second pass.
                if let Inner::Here(reader) = std::mem::replace(&mut self.inner, Inner::Done(None)) {
                    self.inner = Inner::Done(Some(reader));
                }
                Ok(None)
            }
            Inner::Thread {
                batches,
                spare,
                thread,
                path,
            } => {
                let message = batches.recv();
                match message {
                    Ok(Message::Events(events)) => {
                        // The used batch goes back to be filled again (or is dropped when
                        // the decoder already ended).
                        let used = std::mem::replace(&mut self.batch, events);
                        let _ = spare.try_send(used);
                        Ok(Some(&self.batch))
                    }
                    Ok(Message::End(reader)) => {
                        if let Some(thread) = thread.take() {
                            let _ = thread.join();
                        }
                        self.inner = Inner::Done(Some(reader));
                        Ok(None)
                    }
                    Ok(Message::Failed(err)) => {
                        self.inner = Inner::Done(None);
                        Err(err)
                    }
                    Err(_) => {
                        // The decoder ended without a word: it panicked.
                        let path = std::mem::take(path);
                        self.inner = Inner::Done(None);
                        Err(RecordError::Decoder { path })
                    }
                }
            }
            Inner::Lost(path) => {
                let path = std::mem::take(path);
                self.inner = Inner::Done(None);
                Err(RecordError::Decoder { path })
            }
            Inner::Done(_) => Ok(None),
        }
    }

    /// The reader, once [`Self::next_batch`] returned the end: its trailer and truncation
    /// are known, and a file can be rewound for a second pass.
    pub fn into_reader(self) -> Option<RecordingReader<R>> {
        match self.inner {
            Inner::Done(reader) => reader.map(|reader| *reader),
            Inner::Here(reader) => Some(*reader),
            Inner::Thread { .. } | Inner::Lost(_) => None,
        }
    }
}

/// The decoding thread: chunks until the end, an error, or nobody listens any more.
fn decode<R: Read>(
    mut reader: Box<RecordingReader<R>>,
    send: &SyncSender<Message<R>>,
    used: &Receiver<Vec<Event>>,
) {
    loop {
        let mut events = used
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_EVENTS));
        events.clear();
        let message = match reader.next_events(&mut events) {
            Ok(true) => Message::Events(events),
            Ok(false) => {
                let _ = send.send(Message::End(reader));
                return;
            }
            Err(err) => Message::Failed(err),
        };
        let failed = matches!(message, Message::Failed(_));
        if send.send(message).is_err() || failed {
            return;
        }
    }
}
