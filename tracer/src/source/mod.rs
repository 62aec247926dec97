//! Event streams: the live ring buffer and recordings read back, and the decoding of the
//! fixed-size records both carry.

pub mod consumer;
pub mod decode;
pub mod ring;

pub use ring::{POLL_INTERVAL, RingSource};
