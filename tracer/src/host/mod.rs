//! Facts about this machine: capabilities, clocks, /proc, tracefs formats, which interrupts
//! belong to which network device, cgroup paths, and the names of numbers.

pub mod btf;
pub mod caps;
pub mod cgroup;
pub mod clock;
pub mod irqmap;
pub mod names;
pub mod procfs;
pub mod tracefs;
