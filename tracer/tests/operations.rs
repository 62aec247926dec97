//! Kernel tests of running on real hosts: nothing left behind after SIGKILL, memory that
//! stays flat under load, a clean stop on SIGTERM, the bench's `--bench-floor` runs.

mod common;

use std::{
    collections::HashSet,
    net::UdpSocket,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{RunningTracer, assert_programs_released, kernel_test, program_ids};

#[test]
fn a_sigkilled_tracer_leaves_no_program_behind() {
    let Some(_serial) = kernel_test("a_sigkilled_tracer_leaves_no_program_behind") else {
        return;
    };
    let before = program_ids();
    let dir = tempfile::tempdir().unwrap();
    let mut tracer = RunningTracer::start(&["live", "--json"], dir.path());
    let during = program_ids();
    let ours: HashSet<u64> = during.difference(&before).copied().collect();
    // Journey mode: 16 tracepoint programs, and the syscalls' (2 raw ones, or 24 classic).
    assert!(
        ours.len() >= 18,
        "the tracer's programs are loaded: {} new",
        ours.len()
    );
    tracer.kill();
    assert_programs_released("a SIGKILLed tracer", |now| {
        now.intersection(&ours).copied().collect()
    });
}

#[test]
fn sigterm_stops_cleanly_with_the_summary() {
    let Some(_serial) = kernel_test("sigterm_stops_cleanly_with_the_summary") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.trc");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(["live", "--record", file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("--- summary after"), "{stdout}");
    let report = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(["report", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&report.stderr);
    assert!(
        report.status.success() && !stderr.contains("no trailer"),
        "the recording was finished: {stderr}"
    );
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    assert_eq!(
        unsafe { libc::kill(pid as i32, signal) },
        0,
        "signal {signal}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn resident_memory_stays_flat_over_a_minute_of_traffic() {
    let Some(_serial) = kernel_test("resident_memory_stays_flat_over_a_minute_of_traffic") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tracer = RunningTracer::start(&["live", "--json", "--interval", "10s"], dir.path());
    let pid = tracer.pid();
    let stop = Arc::new(AtomicBool::new(false));
    // Two flows: datagrams read by a blocked reader, and datagrams nobody reads (they fill a
    // socket queue, then are dropped by the kernel) so open journeys pile up.
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let reader = UdpSocket::bind("127.0.0.1:0").unwrap();
            reader
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let unread = UdpSocket::bind("127.0.0.1:0").unwrap();
            let targets = [reader.local_addr().unwrap(), unread.local_addr().unwrap()];
            let reader_stop = stop.clone();
            let drain = std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while !reader_stop.load(Ordering::Relaxed) {
                    let _ = reader.recv(&mut buf);
                }
            });
            let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                sender
                    .send_to(&[1u8; 64], targets[(sent % 2) as usize])
                    .unwrap();
                sent += 1;
                if sent.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            drain.join().unwrap();
            sent
        })
    };
    std::thread::sleep(Duration::from_secs(15));
    let warm = rss_kib(pid);
    let mut peak = warm;
    for second in 0..45 {
        // Twice the tracer is stopped for a second while the flood goes on: the ring buffer
        // fills (events are lost) and it wakes to a full ring, as a reader that falls behind
        // on a slow machine does. Its memory must not grow with that backlog.
        let pause = second == 10 || second == 30;
        if pause {
            signal(pid, libc::SIGSTOP);
        }
        std::thread::sleep(Duration::from_secs(1));
        if pause {
            signal(pid, libc::SIGCONT);
        }
        peak = peak.max(rss_kib(pid));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    let (_, stderr) = tracer.stop();
    eprintln!("sent {sent} datagrams; tracer RSS after warm-up {warm} KiB, peak {peak} KiB");
    assert!(sent > 100_000, "the load was real: {sent} datagrams");
    let lost: u64 = stderr
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("lost events: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        lost > 0,
        "the pauses filled the ring buffer (events lost): {stderr:?}"
    );
    assert!(
        peak < warm + 16 * 1024,
        "RSS grew from {warm} KiB to {peak} KiB: {stderr:?}"
    );
}

#[test]
fn doctor_reports_full_journeys_here_and_degraded_without_a_tracepoint() {
    let Some(_serial) =
        kernel_test("doctor_reports_full_journeys_here_and_degraded_without_a_tracepoint")
    else {
        return;
    };
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
            .arg("doctor")
            .args(args)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
            panic!(
                "doctor --json: {err}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (out.status.code(), report)
    };
    let (code, report) = run(&["--json"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["verdict"], "full journeys");
    let checks = report["checks"].as_array().unwrap();
    let tracepoints: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|check| check["check"].as_str().unwrap().contains(':'))
        .collect();
    assert_eq!(tracepoints.len(), 30);
    assert!(
        tracepoints.iter().all(|check| check["status"] == "ok"),
        "{report}"
    );
    assert!(
        checks
            .iter()
            .any(|check| check["check"] == "eBPF load, ring buffer" && check["status"] == "ok")
    );

    let (code, report) = run(&["--json", "--without", "sock:sk_data_ready"]);
    assert_eq!(code, Some(1), "degraded: {report}");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["check"] == "sock:sk_data_ready")
        .unwrap();
    assert_eq!(check["status"], "degraded");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("no stack end and no wakeup stage"),
        "{check}"
    );

    let (code, report) = run(&["--json", "--without", "net:netif_receive_skb"]);
    assert_eq!(code, Some(2), "no packets, no journeys: {report}");
}

/// `--bench-floor` (the bench's measure of what being attached costs): every program still
/// attached, none making an event, against the same datagrams traced as usual.
#[test]
fn bench_floor_programs_attach_and_make_no_event() {
    let Some(_serial) = kernel_test("bench_floor_programs_attach_and_make_no_event") else {
        return;
    };
    let reader = UdpSocket::bind("127.0.0.1:0").unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = reader.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let runs: [&[&str]; 4] = [
        &[],
        &["--bench-floor", "empty"],
        &["--bench-floor", "clock"],
        &["--bench-floor", "empty", "--classic-tracepoints"],
    ];
    for floor in runs {
        let mut args = vec!["live", "--json"];
        args.extend(floor);
        let before = program_ids();
        let tracer = RunningTracer::start(&args, dir.path());
        let attached = program_ids().difference(&before).count();
        for seq in 0u32..20 {
            sender.send_to(&seq.to_le_bytes(), to).unwrap();
            let mut buf = [0u8; 4];
            let (n, _) = reader.recv_from(&mut buf).unwrap();
            assert_eq!(buf[..n], seq.to_le_bytes(), "datagram {seq} read back");
        }
        let (stdout, stderr) = tracer.stop();
        let read = common::number_after(&stderr, "events read: ").expect("an events read count");
        events.push((floor, attached, read, stdout.lines().count()));
    }
    let (_, attached, read, lines) = events[0];
    assert!(
        attached > 0 && read > 0 && lines >= 20,
        "traced as usual, the datagrams make events and journeys: {events:?}"
    );
    for &(floor, floor_attached, read, lines) in &events[1..] {
        // The classic programs are others (one per traced syscall).
        if !floor.contains(&"--classic-tracepoints") {
            assert_eq!(
                floor_attached, attached,
                "{floor:?} attaches what the default does: {events:?}"
            );
        }
        assert!(floor_attached > 0, "{floor:?} attaches: {events:?}");
        assert_eq!(
            (read, lines),
            (0, 0),
            "{floor:?}: no event, no journey: {events:?}"
        );
    }
}
