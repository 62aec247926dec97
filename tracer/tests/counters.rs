//! Kernel tests: what the tracer calls dropped, read and never read agrees with the kernel's
//! own counters (/proc/net/snmp) and with what the test's own reader got.

mod common;

use std::{net::UdpSocket, os::fd::AsRawFd as _, time::Duration};

use common::{RunningTracer, json_events, kernel_test};

/// `Udp: RcvbufErrors` of /proc/net/snmp: datagrams dropped because a socket's receive
/// buffer was full.
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap();
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let names: Vec<&str> = udp.next().unwrap().split_whitespace().collect();
    let values: Vec<&str> = udp.next().unwrap().split_whitespace().collect();
    let at = names
        .iter()
        .position(|name| *name == "RcvbufErrors")
        .unwrap();
    values[at].parse().unwrap()
}

#[test]
fn udp_drops_and_unread_datagrams_match_the_kernels_counters() {
    let Some(_serial) = kernel_test("udp_drops_and_unread_datagrams_match_the_kernels_counters")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let reader = UdpSocket::bind("127.0.0.1:0").unwrap();
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt on our own socket with a valid int.
    let set = unsafe {
        libc::setsockopt(
            reader.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_RCVBUF");
    reader.set_nonblocking(true).unwrap();
    let addr = reader.local_addr().unwrap();
    let tracer = RunningTracer::start(&["live", "--json", "--interval", "1h"], dir.path());
    let before = udp_rcvbuf_errors();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    const SENT: usize = 300;
    const SIZE: usize = 1000;
    for _ in 0..SENT {
        sender.send_to(&[9u8; SIZE], addr).unwrap();
    }
    let dropped_by_kernel = udp_rcvbuf_errors() - before;
    // Read some of what the socket holds, leave the rest unread.
    let mut buf = [0u8; 2048];
    let mut read: u64 = 0;
    while read < 2 && reader.recv(&mut buf).is_ok() {
        read += 1;
    }
    // What was neither dropped nor read stays queued: the kernel's count and our own.
    let unread = SENT as u64 - dropped_by_kernel - read;
    std::thread::sleep(Duration::from_millis(300));
    let (stdout, stderr) = tracer.stop();
    let journeys = json_events(&stdout);
    let ours = |j: &&serde_json::Value| j["len"].as_u64() == Some(SIZE as u64 + 28);
    let drops = journeys
        .iter()
        .filter(ours)
        .filter(|j| j["drop_reason"] == "SOCKET_RCVBUFF")
        .count() as u64;
    let reads = journeys
        .iter()
        .filter(ours)
        .filter(|j| {
            j["complete"] == true && j["pid"].as_u64() == Some(u64::from(std::process::id()))
        })
        .count() as u64;
    let never_read = journeys
        .iter()
        .filter(ours)
        .filter(|j| j["drop_reason"].is_null() && j["complete"] == false)
        .count() as u64;
    eprintln!(
        "UDP: sent {SENT}; kernel RcvbufErrors +{dropped_by_kernel}, tracer drops {drops}; \
         read {read}, tracer reads {reads}; unread {unread}, tracer never read {never_read}"
    );
    assert!(dropped_by_kernel > 0, "the small buffer overflowed");
    assert_eq!(drops, dropped_by_kernel, "drops: tracer vs kernel");
    assert_eq!(reads, read, "reads");
    assert_eq!(never_read, unread, "never read");
    // The summary counts every data drop on the host: at least ours (exactly ours on a
    // quiet machine).
    let summary = stderr.join("\n");
    let counted: u64 = summary
        .split("data: dropped by the kernel ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no data-drop line in the summary:\n{summary}"));
    assert!(
        counted >= dropped_by_kernel,
        "summary drops {counted}:\n{summary}"
    );
}
