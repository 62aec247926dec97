//! tracer: follow every received packet from the NIC's hard interrupt to the moment recv()
//! returns it, with eBPF programs on kernel tracepoints.
//!
//! Data flow: [`probes`] load the programs and [`source`] reads their fixed-size records;
//! [`decode`] turns records into events and lines; [`names`] resolves numbers to names.

pub mod btf;
pub mod caps;
pub mod clock;
pub mod decode;
pub mod duration;
pub mod export;
pub mod irqmap;
pub mod journey;
pub mod metrics;
pub mod names;
pub mod probes;
pub mod record;
pub mod source;
pub mod tracefs;
pub mod traffic;
