//! Journeys: the model of one packet's path, the engine that rebuilds it from events, the
//! reorder window in front of it, the pipeline that joins them, the filter and the field table
//! behind it.

pub mod engine;
pub mod fields;
pub mod filter;
pub mod model;
pub mod pipeline;
pub mod reorder;

#[cfg(test)]
mod tests;

pub use engine::{
    Degraded, Ending, EndingCounts, Engine, EngineConfig, EngineStats, IrqDevice, ReaderFilter,
};
pub use filter::JourneyFilter;
pub use model::{Journey, Missing, Stage, StageDurations, Stamps};
pub use pipeline::Tracker;
pub use reorder::Reorder;
