//! tracer: follow every received packet from the NIC's hard interrupt to the moment recv()
//! returns it, with eBPF programs on kernel tracepoints.
//!
//! Data flow (docs/DESIGN.md): [`probe`] loads the programs on facts about this machine
//! ([`host`]); [`source`] reads their records live, [`recording`] stores and reads them back;
//! [`journey`] decodes, reorders and rebuilds each packet's journey; [`sink`] writes journeys
//! out; [`session`] runs a whole trace; [`lab`] holds the exercises; [`flow`] parses the
//! tcpdump-style filter expressions that [`probe`] hands to the kernel.

pub mod flow;
pub mod host;
pub mod journey;
pub mod lab;
pub mod probe;
pub mod recording;
pub mod session;
pub mod sink;
pub mod source;

/// `println!` that ends quietly on a closed stdout (`| head -1`) instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that ends quietly on a closed stdout (`| head -1`) instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
