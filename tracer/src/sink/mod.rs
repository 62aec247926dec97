//! Where finished journeys go: one [`Sink`] trait and the outputs (text, JSON lines, CSV,
//! Perfetto, metrics and their HTTP endpoint, summaries, the report, raw events, the `top`
//! view).

pub mod analysis;
pub mod csv;
pub mod escape;
pub mod events;
pub mod jsonl;
pub mod metrics;
pub mod metrics_http;
pub mod parquet;
pub mod perfetto;
mod protobuf;
pub mod report;
pub mod summary;
pub mod terminal;
pub mod text;
pub mod top;

use std::io;

use crate::journey::Journey;

/// Takes finished journeys one at a time.
pub trait Sink {
    /// One journey; an error is the output's (a closed file or pipe).
    fn journey(&mut self, journey: &Journey) -> io::Result<()>;
}

/// Keeps the journeys (labs, the report).
impl Sink for Vec<Journey> {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        self.push(journey.clone());
        Ok(())
    }
}

/// Per-stage statistics.
impl Sink for summary::StageSummary {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        self.add(journey);
        Ok(())
    }
}

/// Prometheus histograms and counters.
impl Sink for metrics::Metrics {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        self.observe(journey);
        Ok(())
    }
}

/// The `top` view's rows and header.
impl Sink for top::TopModel {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        self.add(journey);
        Ok(())
    }
}
