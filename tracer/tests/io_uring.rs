//! Kernel tests of readers whose recv runs through io_uring: no recv-family syscall returns
//! their bytes. The kernel runs the recv inside `io_uring_enter` (the reader waits there for
//! its completion), so `sock_recv_length` fires outside any traced recv call. Ground truth is
//! the test's own reader: its thread id, each completion's bytes, and CLOCK_MONOTONIC right
//! after it saw the completion.

mod common;

use std::{
    io::Write as _,
    net::{TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    sync::mpsc,
    thread,
    time::Duration,
};

use common::{RunningTracer, assert_no_loss, gettid, json_events, kernel_test, monotonic_ns};
use io_uring::{IoUring, opcode, types};
use serde_json::Value;

const MESSAGES: u32 = 20;

/// Payload size of message `seq`: distinct per message, so bytes identify it.
fn payload_len(seq: u32) -> usize {
    300 + seq as usize
}

/// One completion the reader saw: bytes, and CLOCK_MONOTONIC once it had it.
struct Completion {
    bytes: u64,
    seen_ns: u64,
}

/// Receives on `fd` through io_uring until `total` bytes came (or EOF), one recv submitted
/// and waited for at a time; returns (its thread id, the completions).
fn uring_reader(fd: i32, total: u64) -> (u32, Vec<Completion>) {
    let mut ring = IoUring::new(8).expect("io_uring_setup (io_uring disabled?)");
    let mut buf = vec![0u8; 65536];
    let mut completions = Vec::new();
    let mut got = 0;
    while got < total {
        let recv = opcode::Recv::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32)
            .build()
            .user_data(7);
        // SAFETY: the buffer outlives the recv, which completes before the next is pushed.
        unsafe {
            ring.submission()
                .push(&recv)
                .expect("submission queue full")
        };
        ring.submit_and_wait(1).expect("io_uring_enter");
        let cqe = ring.completion().next().expect("a completion");
        let seen_ns = monotonic_ns();
        assert!(cqe.result() >= 0, "recv through io_uring: {}", cqe.result());
        if cqe.result() == 0 {
            break;
        }
        got += cqe.result() as u64;
        completions.push(Completion {
            bytes: cqe.result() as u64,
            seen_ns,
        });
    }
    (gettid(), completions)
}

/// The data journeys read by thread `tid`, in order of their return.
fn journeys_of(journeys: &[Value], tid: u32) -> Vec<&Value> {
    let mut ours: Vec<&Value> = journeys
        .iter()
        .filter(|j| j["tid"] == tid && j["control"] == false)
        .collect();
    ours.sort_by_key(|j| j["ts"]["recv_return"].as_u64());
    ours
}

/// Every journey complete, returned by no syscall (`syscall` null), and no later than its
/// reader saw it come back.
fn assert_returned_by_io_uring(label: &str, journeys: &[&Value], completions: &[Completion]) {
    let last_seen = completions.last().map_or(0, |c| c.seen_ns);
    for j in journeys {
        assert_eq!(j["complete"], true, "{label}: {j}");
        assert!(
            j["syscall"].is_null(),
            "{label}: no syscall returned it: {j}"
        );
        let returned = j["ts"]["recv_return"].as_u64().unwrap();
        assert!(
            returned <= last_seen,
            "{label}: returned after the reader saw it: {j}"
        );
    }
}

#[test]
fn io_uring_reads_end_their_journeys_with_every_stage() {
    let Some(_serial) = kernel_test("io_uring_reads_end_their_journeys_with_every_stage") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tracer = RunningTracer::start(&["live", "--json", "--interval", "1h"], dir.path());

    // UDP: one datagram per completion.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let (ready, started) = mpsc::channel();
    let udp_total: u64 = (0..MESSAGES).map(|seq| payload_len(seq) as u64).sum();
    let udp_reader = thread::spawn(move || {
        ready.send(()).unwrap();
        uring_reader(udp.as_raw_fd(), udp_total)
    });
    started.recv().unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent_ns = Vec::new();
    for seq in 0..MESSAGES {
        // Far enough apart that the reader waits in io_uring_enter each time.
        thread::sleep(Duration::from_millis(10));
        sent_ns.push(monotonic_ns());
        sender
            .send_to(&vec![seq as u8; payload_len(seq)], ("127.0.0.1", udp_port))
            .unwrap();
    }
    let (udp_tid, udp_completions) = udp_reader.join().unwrap();

    // TCP: a stream, whatever completions it comes in.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = listener.local_addr().unwrap().port();
    let tcp_total: u64 = (0..MESSAGES).map(|seq| payload_len(seq) as u64).sum();
    let tcp_reader = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        uring_reader(stream.as_raw_fd(), tcp_total)
    });
    let mut client = TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
    client.set_nodelay(true).unwrap();
    for seq in 0..MESSAGES {
        thread::sleep(Duration::from_millis(10));
        client
            .write_all(&vec![seq as u8; payload_len(seq)])
            .unwrap();
    }
    let (tcp_tid, tcp_completions) = tcp_reader.join().unwrap();
    drop(client);
    thread::sleep(Duration::from_millis(300));
    let (stdout, stderr) = tracer.stop();
    let journeys = json_events(&stdout);
    let text = stderr.join("\n");
    assert_no_loss("io_uring", &stderr);

    // UDP: each datagram one journey of the reader, in order, between its send and the
    // reader's own stamp after the completion.
    let udp_journeys = journeys_of(&journeys, udp_tid);
    let sizes: Vec<u64> = udp_journeys
        .iter()
        .map(|j| j["payload"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = udp_completions.iter().map(|c| c.bytes).collect();
    assert_eq!(sizes, expected, "one journey per datagram the reader got");
    assert_returned_by_io_uring("udp", &udp_journeys, &udp_completions);
    for ((j, completion), sent) in udp_journeys.iter().zip(&udp_completions).zip(&sent_ns) {
        let returned = j["ts"]["recv_return"].as_u64().unwrap();
        assert!(
            *sent <= returned && returned <= completion.seen_ns,
            "recv_return between the send ({sent}) and the reader's stamp ({}): {j}",
            completion.seen_ns
        );
    }
    // The reader waited in io_uring_enter for each: woken and switched in, stage by stage.
    let woken = udp_journeys
        .iter()
        .filter(|j| !j["stages_ns"]["wakeup"].is_null() && !j["stages_ns"]["syscall"].is_null())
        .count();
    assert!(
        woken * 2 > udp_journeys.len(),
        "most datagrams woke the reader blocked in io_uring_enter: {woken} of {}",
        udp_journeys.len()
    );

    // TCP: the stream's bytes, each once, in journeys of the reader.
    let tcp_journeys = journeys_of(&journeys, tcp_tid);
    let read: u64 = tcp_completions.iter().map(|c| c.bytes).sum();
    let carried: u64 = tcp_journeys
        .iter()
        .map(|j| j["payload"].as_u64().unwrap())
        .sum();
    assert_eq!(
        (carried, read),
        (tcp_total, tcp_total),
        "the stream's bytes"
    );
    assert_returned_by_io_uring("tcp", &tcp_journeys, &tcp_completions);

    // Nothing claimed lost: every byte was read.
    let incomplete: Vec<&String> = stderr
        .iter()
        .filter(|line| line.starts_with("incomplete: "))
        .collect();
    assert!(incomplete.is_empty(), "{incomplete:?}\n{text}");
}
