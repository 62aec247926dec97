//! Raw records -> decode -> reorder window -> engine: the one path from events to journeys,
//! for live tracing and for recordings alike.

use tracer_common::Event;

use std::collections::HashMap;

use super::{
    Degraded, Engine, EngineConfig, IrqDevice, Journey, Reorder, reorder::DEFAULT_WINDOW_NS,
};
use crate::{recording::Metadata, source::decode};

/// Follows journeys through a stream of raw event records.
#[derive(Debug)]
pub struct Tracker {
    reorder: Reorder,
    engine: Engine,
    undecodable: u64,
}

impl Tracker {
    /// A tracker with the default reorder window.
    pub fn new(config: EngineConfig) -> Self {
        Self {
            reorder: Reorder::new(DEFAULT_WINDOW_NS),
            engine: Engine::new(config),
            undecodable: 0,
        }
    }

    /// Takes one raw record (as the eBPF side wrote it); returns the event it decoded to.
    pub fn push_record(&mut self, bytes: &[u8]) -> Option<Event> {
        match decode::decode(bytes) {
            Ok((event, _)) => {
                self.reorder.push(event);
                Some(event)
            }
            Err(_) => {
                self.undecodable += 1;
                None
            }
        }
    }

    /// Takes one decoded event.
    pub fn push_event(&mut self, event: Event) {
        self.reorder.push(event);
    }

    /// Runs the events that left the reorder window through the engine. `now` (CLOCK_MONOTONIC
    /// ns), when given, also releases what is older than now minus the window, so a quiet
    /// trace still makes progress.
    pub fn advance(&mut self, now: Option<u64>, out: &mut Vec<Journey>) {
        let engine = &mut self.engine;
        self.reorder.release(|event| engine.push(event, out));
        if let Some(now) = now {
            let horizon = now.saturating_sub(DEFAULT_WINDOW_NS);
            self.reorder
                .release_until(horizon, |event| engine.push(event, out));
        }
    }

    /// Ends the stream: every held event, then every open journey.
    pub fn finish(&mut self, out: &mut Vec<Journey>) {
        let engine = &mut self.engine;
        self.reorder.drain(|event| engine.push(event, out));
        self.engine.finish(out);
    }

    /// The engine (for its counters).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Events that arrived later than the reorder window.
    pub fn late_events(&self) -> u64 {
        self.reorder.late()
    }

    /// Records that did not decode.
    pub fn undecodable(&self) -> u64 {
        self.undecodable
    }
}

impl EngineConfig {
    /// The engine's view of the host a recording was made on.
    pub fn from_recording(meta: &Metadata, keep_unsocketed: bool) -> Self {
        Self {
            irq_devices: irq_devices(meta),
            drop_reasons: meta.drop_reasons.clone(),
            comms: meta
                .comms
                .iter()
                .map(|(tid, comm)| (*tid, comm.clone()))
                .collect(),
            keep_unsocketed,
            degraded: Degraded::from_missing(meta.skipped_kinds()),
            max_open: 0,
            readers: super::ReaderFilter::default(),
        }
    }
}

/// A recording's network IRQs as the engine wants them.
pub fn irq_devices(meta: &Metadata) -> HashMap<u32, IrqDevice> {
    meta.irqs
        .iter()
        .map(|irq| {
            (
                irq.irq,
                IrqDevice {
                    dev: irq.dev.clone(),
                    name: irq.name.clone(),
                },
            )
        })
        .collect()
}
