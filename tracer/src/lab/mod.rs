//! Lab exercises that make "interrupts wake the kernel; the kernel wakes processes; the
//! scheduler decides when they run" measurable on the student's own machine: the exercises as
//! data ([`exercises`]), the runner, and the traffic workloads.
//!
//! A lab is a list of phases. Each phase starts an optional CPU-bound competitor, a traffic
//! process (a reader waiting in some way, a sender), and follows the journeys of that
//! process; then everything it started is stopped, also on Ctrl-C or failure.

pub mod exercises;
mod report;
pub mod runner;
pub mod workload;

pub use exercises::LABS;
pub use runner::{Measured, RunOptions, run};

/// The lab named `name`.
pub fn find(name: &str) -> Option<&'static Lab> {
    LABS.iter().find(|lab| lab.name == name)
}

/// A CPU-bound competitor on the reader's CPU.
#[derive(Clone, Copy, Debug)]
pub enum Competitor {
    Nice(i32),
    Fifo,
}

/// One measured configuration.
#[derive(Clone, Debug)]
pub struct Phase {
    pub label: &'static str,
    pub count: u32,
    pub gap_us: u64,
    pub mode: &'static str,
    pub reader_fifo: bool,
    /// Run the reader as SCHED_BATCH (it never preempts on wakeup).
    pub reader_batch: bool,
    pub work_us: u64,
    pub competitor: Option<Competitor>,
    /// Steer loopback packets to the reader's CPU with RPS (restored after the phase).
    pub rps: bool,
}

impl Phase {
    pub fn new(label: &'static str, count: u32, gap_us: u64) -> Self {
        Self {
            label,
            count,
            gap_us,
            mode: "block",
            reader_fifo: false,
            reader_batch: false,
            work_us: 0,
            competitor: None,
            rps: false,
        }
    }
}

/// One exercise: its story and questions, the phases it measures, the claims it checks and
/// the model answers it computes from the measured numbers.
pub struct Lab {
    pub name: &'static str,
    pub summary: &'static str,
    pub story: &'static str,
    pub questions: &'static [&'static str],
    pub phases: fn(short: bool) -> Vec<Phase>,
    /// (what, whether it held on this run).
    pub claims: fn(&[Measured]) -> Vec<(String, bool)>,
    pub answers: fn(&[Measured]) -> Vec<String>,
}
