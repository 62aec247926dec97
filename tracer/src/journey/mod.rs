//! Journeys: the engine that rebuilds each packet's path from events, the record it yields,
//! the reorder window in front of it, and the per-stage summary behind it.

pub mod analysis;
pub mod engine;
pub mod json;
pub mod record;
pub mod render;
pub mod reorder;
pub mod summary;
pub mod tracker;

#[cfg(test)]
mod tests;

pub use engine::{Degraded, Engine, EngineConfig, EngineStats, IrqDevice, ReaderFilter};
pub use record::{Journey, Missing, Stage, StageDurations, Stamps};
pub use reorder::Reorder;
pub use summary::StageSummary;
pub use tracker::Tracker;
