//! Clocks: CLOCK_MONOTONIC is what `bpf_ktime_get_ns` reads, so every stamp of the tracer
//! and of a test program (`clock_gettime(CLOCK_MONOTONIC)`) shares one time axis.

/// A clock now, in ns.
fn read(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_MONOTONIC now, in ns.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC) as u64
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns: add it to a stamp for wall-clock time.
pub fn realtime_offset_ns() -> i128 {
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC)
}

/// CPU time this process has used (user and system, all threads), in ns.
pub fn process_cpu_ns() -> u64 {
    read(libc::CLOCK_PROCESS_CPUTIME_ID) as u64
}
