//! `tracer top`: a full-screen live view of finished journeys. model.rs and row.rs hold the
//! numbers (pure), render/ draws them with ratatui, input.rs maps keys to actions, and
//! terminal.rs takes the terminal and gives it back on every way out.

#[cfg(test)]
mod fixtures;
pub mod input;
pub mod model;
pub mod render;
pub mod row;
pub mod terminal;

pub use model::{Action, Counters, SortKey, TopModel};
pub use render::{Look, draw};
pub use row::{GroupBy, Row, RowKey};
