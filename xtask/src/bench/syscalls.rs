//! What one syscall costs under each configuration: a nonblocking recvfrom that finds
//! nothing (a traced call: the recv family's entry and exit programs run, and
//! sock_recv_length's) and getppid (a syscall nobody traces, which still takes the traced
//! entry path once any syscall tracepoint is on), each in a tight loop on one CPU, the
//! fastest of five batches. The raw syscall programs (the default) trade a cheaper traced
//! call for a dearer untraced one; this measures both sides of that trade beside the
//! classic programs, perf and bpftrace.

use std::{net::UdpSocket, path::Path, time::Instant};

use anyhow::Context as _;

use super::peers::Config;

/// The configurations compared, in order.
pub const CONFIGS: [Config; 7] = [
    Config::NoTracer,
    Config::TracerLive,
    Config::TracerEntryMarks,
    Config::TracerClassicSyscalls,
    Config::TracerClassic,
    Config::PerfRecord,
    Config::Bpftrace,
];

/// Nanoseconds per call, the fastest over every round, per configuration of [`CONFIGS`].
pub struct SyscallCost {
    pub rounds: usize,
    pub calls: u32,
    /// (recvfrom ns, getppid ns) per configuration.
    pub costs: Vec<(f64, f64)>,
}

pub fn measure(tracer: &Path, dir: &Path, quick: bool) -> anyhow::Result<SyscallCost> {
    let (rounds, calls) = if quick { (1, 50_000) } else { (3, 200_000) };
    let mut costs = vec![(f64::MAX, f64::MAX); CONFIGS.len()];
    for _ in 0..rounds {
        for (config, best) in CONFIGS.iter().zip(costs.iter_mut()) {
            let running = config.start(tracer, dir)?;
            let measured = std::thread::spawn(move || loop_costs(calls))
                .join()
                .map_err(|_| anyhow::anyhow!("the syscall loop panicked"))?;
            if let Some(running) = running {
                running.stop()?;
            }
            let (recv, ppid) = measured?;
            *best = (best.0.min(recv), best.1.min(ppid));
        }
    }
    Ok(SyscallCost {
        rounds,
        calls,
        costs,
    })
}

/// On CPU 1 (0 on one CPU): ns per recvfrom of an empty nonblocking socket and per getppid,
/// each the fastest of five batches of `calls`.
fn loop_costs(calls: u32) -> anyhow::Result<(f64, f64)> {
    let cpu = if super::cpu_count() > 1 { 1 } else { 0 };
    let mask: u64 = 1 << cpu;
    // SAFETY: this thread's own affinity, from a mask of the size given.
    if unsafe { sched_setaffinity(0, std::mem::size_of::<u64>(), &mask) } != 0 {
        anyhow::bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
    }
    let socket = UdpSocket::bind("127.0.0.1:0").context("binding a UDP socket")?;
    socket.set_nonblocking(true)?;
    let mut buf = [0u8; 64];
    let recv = fastest(calls, || {
        let _ = std::hint::black_box(socket.recv(&mut buf));
    });
    let ppid = fastest(calls, || {
        std::hint::black_box(std::os::unix::process::parent_id());
    });
    Ok((recv, ppid))
}

/// ns per `call`, the fastest of five batches of `calls`.
fn fastest(calls: u32, mut call: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                call();
            }
            start.elapsed().as_nanos() as f64 / f64::from(calls)
        })
        .fold(f64::MAX, f64::min)
}

unsafe extern "C" {
    fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
}
