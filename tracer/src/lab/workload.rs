//! Traffic the tool makes itself (demo, labs): a reader on a loopback UDP socket, waiting in
//! one of several ways, and a sender of numbered datagrams.

use std::{io, net::UdpSocket, os::fd::AsRawFd as _, thread, time::Duration};

/// How the reader waits for data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReaderMode {
    /// Blocks in recv().
    #[default]
    Block,
    /// Blocks in epoll_wait(), then recv().
    Epoll,
    /// Never sleeps: non-blocking recv() in a loop.
    Spin,
}

/// One exchange's settings.
#[derive(Clone, Debug)]
pub struct Workload {
    pub count: u32,
    /// Datagram size (at least 4: a big-endian sequence number first).
    pub size: usize,
    /// Pause between datagrams (zero: as fast as possible).
    pub gap: Duration,
    pub mode: ReaderMode,
    pub reader_cpu: Option<usize>,
    pub sender_cpu: Option<usize>,
    /// Run the reader as SCHED_FIFO (priority 10).
    pub reader_fifo: bool,
    /// Run the reader as SCHED_BATCH: it never preempts the running task on wakeup.
    pub reader_batch: bool,
    /// CPU work of the reader after each datagram.
    pub work: Duration,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            count: 20,
            size: 64,
            gap: Duration::from_millis(50),
            mode: ReaderMode::Block,
            reader_cpu: None,
            sender_cpu: None,
            reader_fifo: false,
            reader_batch: false,
            work: Duration::ZERO,
        }
    }
}

/// What one exchange did, as the reader saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exchange {
    pub sent: u32,
    pub received: u32,
    pub reader_tid: u32,
    /// The reader thread's CPU time (user + system), in ns.
    pub reader_cpu_ns: u64,
    /// The reader thread's context switches: voluntary (it blocked), involuntary (preempted).
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

/// Pins the calling thread to one CPU.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the calling thread SCHED_FIFO at `priority`.
pub fn set_fifo(priority: i32) -> io::Result<()> {
    set_policy(libc::SCHED_FIFO, priority)
}

/// Makes the calling thread SCHED_BATCH: a normal task the kernel never lets preempt the
/// running one on wakeup (it waits for the tick).
pub fn set_batch() -> io::Result<()> {
    set_policy(libc::SCHED_BATCH, 0)
}

fn set_policy(policy: libc::c_int, priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: param is a valid sched_param.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn thread_switches() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    )
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn busy(duration: Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

/// The reader's loop; returns the datagrams received (stops early after 5 s of silence).
fn read_all(socket: &UdpSocket, workload: &Workload) -> io::Result<u32> {
    let mut buf = vec![0u8; 65536];
    let mut received = 0;
    let deadline = || std::time::Instant::now() + Duration::from_secs(5);
    match workload.mode {
        ReaderMode::Block => {
            socket.set_read_timeout(Some(Duration::from_secs(5)))?;
            while received < workload.count && socket.recv(&mut buf).is_ok() {
                received += 1;
                busy(workload.work);
            }
        }
        ReaderMode::Spin => {
            socket.set_nonblocking(true)?;
            let mut quiet_until = deadline();
            while received < workload.count && std::time::Instant::now() < quiet_until {
                match socket.recv(&mut buf) {
                    Ok(_) => {
                        received += 1;
                        busy(workload.work);
                        quiet_until = deadline();
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                    Err(err) => return Err(err),
                }
            }
        }
        ReaderMode::Epoll => {
            socket.set_nonblocking(true)?;
            // SAFETY: plain epoll calls on a fd we own; the event struct outlives the calls.
            let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if epoll < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut interest = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 0,
            };
            // SAFETY: as above.
            unsafe {
                libc::epoll_ctl(
                    epoll,
                    libc::EPOLL_CTL_ADD,
                    socket.as_raw_fd(),
                    &mut interest,
                )
            };
            let mut ready = [libc::epoll_event { events: 0, u64: 0 }];
            while received < workload.count {
                // SAFETY: as above.
                let n = unsafe { libc::epoll_wait(epoll, ready.as_mut_ptr(), 1, 5000) };
                if n <= 0 {
                    break;
                }
                while socket.recv(&mut buf).is_ok() {
                    received += 1;
                    busy(workload.work);
                }
            }
            // SAFETY: closing the epoll fd we created.
            unsafe { libc::close(epoll) };
        }
    }
    Ok(received)
}

/// Runs one exchange: a reader thread waits as `workload.mode` says, a sender sends.
pub fn exchange(workload: &Workload) -> io::Result<Exchange> {
    let reader = UdpSocket::bind("127.0.0.1:0")?;
    reader.set_read_timeout(Some(Duration::from_secs(5)))?;
    let target = reader.local_addr()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let settings = workload.clone();
    let handle = thread::Builder::new().name("tracer-reader".into()).spawn(
        move || -> io::Result<Exchange> {
            if let Some(cpu) = settings.reader_cpu {
                pin_to(cpu)?;
            }
            if settings.reader_fifo {
                set_fifo(10)?;
            }
            if settings.reader_batch {
                set_batch()?;
            }
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as u32;
            let _ = ready_tx.send(tid);
            let (voluntary, involuntary) = thread_switches();
            let cpu = thread_cpu_ns();
            let received = read_all(&reader, &settings)?;
            let (voluntary_end, involuntary_end) = thread_switches();
            Ok(Exchange {
                sent: 0,
                received,
                reader_tid: tid,
                reader_cpu_ns: thread_cpu_ns() - cpu,
                voluntary_switches: voluntary_end - voluntary,
                involuntary_switches: involuntary_end - involuntary,
            })
        },
    )?;
    ready_rx.recv().map_err(io::Error::other)?;
    if let Some(cpu) = workload.sender_cpu {
        pin_to(cpu)?;
    }
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let mut payload = vec![0u8; workload.size.max(4)];
    for seq in 0..workload.count {
        if !workload.gap.is_zero() {
            thread::sleep(workload.gap);
        }
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        sender.send_to(&payload, target)?;
    }
    let mut result = handle
        .join()
        .map_err(|_| io::Error::other("reader thread panicked"))??;
    result.sent = workload.count;
    Ok(result)
}

/// Sends `count` datagrams of `size` bytes over 127.0.0.1, `gap` apart, to a reader thread
/// blocked in recv().
pub fn udp_exchange(count: u32, size: usize, gap: Duration) -> io::Result<Exchange> {
    exchange(&Workload {
        count,
        size,
        gap,
        ..Workload::default()
    })
}
