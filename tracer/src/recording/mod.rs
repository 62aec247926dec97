//! Recordings: raw events plus what is needed to analyse them elsewhere (format, writer,
//! reader, and the capture of this host's metadata).

pub mod capture;
pub mod format;
pub mod reader;
pub mod writer;

#[cfg(test)]
mod tests;

pub use format::{CHUNK_EVENTS, MAGIC_V1, MAGIC_V2, Metadata, RecordError, RecordedIrq, Trailer};
pub use reader::Recording;
pub use writer::Writer;
