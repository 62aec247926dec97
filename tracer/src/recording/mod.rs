//! Recordings: raw events plus what is needed to analyse them elsewhere (format, writer,
//! reader streaming chunk by chunk, the outline of a file from its chunk headers, the
//! capture of this host's metadata, and which command-line words name recordings).

pub mod batches;
pub mod capture;
pub mod format;
pub mod outline;
pub mod paths;
pub mod reader;
mod sparse;
pub mod writer;

#[cfg(test)]
mod tests;

pub use batches::EventBatches;
pub use format::{
    CHUNK_EVENTS, MAGIC_V1, MAGIC_V2, MAGIC_V3, Metadata, RecordError, RecordedIrq, Trailer,
};
pub use outline::Outline;
pub use reader::{Recording, RecordingReader};
pub use writer::Writer;
