//! Exports of journeys and events: Perfetto traces, JSON lines, CSV.

pub mod csv;
pub mod perfetto;
mod protobuf;
