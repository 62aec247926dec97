//! Kernel tests of `tracer events`: the real programs in the real kernel, against ground
//! truth that a peer process of this test writes itself.

mod common;

use std::{
    collections::HashSet,
    fs,
    net::UdpSocket,
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

use common::{
    RunningTracer, gettid, json_events, kernel_test, lost_total, monotonic_ns, tracer_bin,
};
use serde_json::Value;

const PEER_ENV: &str = "TRACER_TEST_PEER_DIR";
const DATAGRAMS: u32 = 20;

/// Payload size of datagram `seq`: distinct per datagram so byte counts identify it.
fn payload_len(seq: u32) -> usize {
    100 + seq as usize
}

/// The receiver peer, run in its own process by [`spawn_receiver`]: binds a loopback UDP
/// socket, writes `port tid` to `<dir>/ready`, then reads DATAGRAMS datagrams with recv()
/// (blocking) and writes `seq bytes monotonic_ns` per read to `<dir>/reads`.
#[test]
#[ignore = "entry point of the receiver process that kernel tests start"]
fn receiver_peer() {
    let dir = std::env::var(PEER_ENV).expect("run by spawn_receiver");
    let dir = Path::new(&dir);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    fs::write(dir.join("ready.tmp"), format!("{port} {}", gettid())).unwrap();
    fs::rename(dir.join("ready.tmp"), dir.join("ready")).unwrap();
    let mut buf = [0u8; 2048];
    let mut reads = Vec::new();
    for _ in 0..DATAGRAMS {
        let bytes = socket.recv(&mut buf).expect("datagram within 30 s");
        let stamp = monotonic_ns();
        let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
        reads.push(format!("{seq} {bytes} {stamp}"));
    }
    fs::write(dir.join("reads"), reads.join("\n")).unwrap();
}

/// Starts [`receiver_peer`] in a new process and waits until its socket is bound.
/// Returns the child, the port and the reader's tid.
fn spawn_receiver(dir: &Path) -> (Child, u16, u32) {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "receiver_peer",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PEER_ENV, dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start receiver process");
    let ready = dir.join("ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "receiver did not get ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = fs::read_to_string(ready).unwrap();
    let (port, tid) = text.split_once(' ').unwrap();
    (child, port.parse().unwrap(), tid.parse().unwrap())
}

/// Ground truth of one read: (seq, bytes, monotonic ns right after recv returned).
fn reads(dir: &Path) -> Vec<(u32, i64, u64)> {
    fs::read_to_string(dir.join("reads"))
        .expect("receiver wrote its reads")
        .lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let mut next = || parts.next().unwrap();
            (
                next().parse().unwrap(),
                next().parse().unwrap(),
                next().parse().unwrap(),
            )
        })
        .collect()
}

fn send_datagrams(port: u16) {
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..DATAGRAMS {
        // Long enough apart that the reader is blocked in recv() again each time.
        std::thread::sleep(Duration::from_millis(20));
        let mut payload = vec![0u8; payload_len(seq)];
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        sender.send_to(&payload, ("127.0.0.1", port)).unwrap();
    }
}

fn of_kind<'a>(events: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    events.iter().filter(move |event| event["kind"] == kind)
}

#[test]
fn blocked_udp_reader_sees_every_stage_event() {
    let Some(_serial) = kernel_test("blocked_udp_reader_sees_every_stage_event") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut receiver, port, reader_tid) = spawn_receiver(dir.path());
    let receiver_pid = receiver.id() as u64;
    let tracer = RunningTracer::start(&["events", "--json"], dir.path());
    send_datagrams(port);
    let status = receiver.wait().unwrap();
    assert!(status.success(), "receiver failed: {status}");
    std::thread::sleep(Duration::from_millis(100));
    let (stdout, stderr) = tracer.stop();
    let truth = reads(dir.path());
    let events = json_events(&stdout);

    // Ground truth first: the receiver got every datagram, in order, with its size.
    assert_eq!(truth.len(), DATAGRAMS as usize);
    for (index, (seq, bytes, _)) in truth.iter().enumerate() {
        assert_eq!(*seq, index as u32);
        assert_eq!(*bytes, payload_len(*seq) as i64);
    }

    // Every event carries the common fields.
    for event in &events {
        assert!(
            event["ts"].is_u64() && event["cpu"].is_u64() && event["kind"].is_string(),
            "{event}"
        );
    }

    // Exactly N recv returns in the receiver, with the right byte counts, each stamped by the
    // kernel before the receiver's own clock read after recv() returned.
    let returns: Vec<&Value> = of_kind(&events, "sys_exit_recvfrom")
        .filter(|event| event["task_pid"] == receiver_pid && event["task_tid"] == reader_tid)
        .collect();
    assert_eq!(
        returns.len(),
        DATAGRAMS as usize,
        "recv returns of the reader"
    );
    for (event, (_, bytes, stamp)) in returns.iter().zip(&truth) {
        assert_eq!(event["ret"].as_i64(), Some(*bytes));
        let ts = event["ts"].as_u64().unwrap();
        assert!(
            ts <= *stamp,
            "kernel stamp {ts} after the reader's clock {stamp}"
        );
        assert!(
            stamp - ts < 50_000_000,
            "kernel stamp {ts} is {} ns before the reader's",
            stamp - ts
        );
    }

    // Exactly N wakeups of the reader thread, each in the waker's (sender's) context.
    let wakings = of_kind(&events, "sched_waking")
        .filter(|event| event["pid"] == reader_tid)
        .count();
    assert_eq!(wakings, DATAGRAMS as usize, "sched_waking of the reader");

    // Exactly N sk_data_ready on the reader's socket (identified by sock_recv_length).
    let sockets: HashSet<&str> = of_kind(&events, "sock_recv_length")
        .filter(|event| event["task_pid"] == receiver_pid)
        .map(|event| event["sk"].as_str().unwrap())
        .collect();
    assert_eq!(
        sockets.len(),
        1,
        "the reader reads from one socket: {sockets:?}"
    );
    let socket = *sockets.iter().next().unwrap();
    let ready = of_kind(&events, "sk_data_ready")
        .filter(|event| event["skaddr"] == socket)
        .count();
    assert_eq!(
        ready, DATAGRAMS as usize,
        "sk_data_ready on the reader's socket"
    );

    // At least N packets received on lo, and the NET_RX softirq ran for them.
    let on_lo = of_kind(&events, "netif_receive_skb")
        .filter(|event| event["dev"] == "lo")
        .count();
    assert!(
        on_lo >= DATAGRAMS as usize,
        "netif_receive_skb on lo: {on_lo}"
    );
    let net_rx = of_kind(&events, "softirq_entry")
        .filter(|event| event["action"] == "NET_RX")
        .count();
    assert!(net_rx >= 1, "no NET_RX softirq entry");

    assert_eq!(lost_total(&stderr), 0, "{stderr:?}");
}

#[test]
fn pid_filter_keeps_only_the_process_and_its_subjects() {
    let Some(_serial) = kernel_test("pid_filter_keeps_only_the_process_and_its_subjects") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut receiver, port, reader_tid) = spawn_receiver(dir.path());
    let pid = receiver.id();
    let pid_arg = pid.to_string();
    let tracer = RunningTracer::start(&["events", "--json", "--pid", &pid_arg], dir.path());
    send_datagrams(port);
    assert!(receiver.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(100));
    let (stdout, stderr) = tracer.stop();
    let events = json_events(&stdout);
    assert!(!events.is_empty());
    for event in &events {
        let subject = match event["kind"].as_str().unwrap() {
            "sched_waking" | "sched_wakeup" => event["pid"].as_u64(),
            "sched_switch" => event["next_pid"].as_u64(),
            _ => None,
        };
        let ours = event["task_pid"] == pid
            || subject == Some(u64::from(reader_tid))
            || subject == Some(pid.into());
        assert!(ours, "event of another process passed --pid {pid}: {event}");
    }
    let returns = of_kind(&events, "sys_exit_recvfrom")
        .filter(|event| event["task_tid"] == reader_tid)
        .count();
    assert_eq!(returns, DATAGRAMS as usize);
    // Woken in the sender's (this test's) context, kept because the reader is the subject.
    let wakings = of_kind(&events, "sched_waking")
        .filter(|event| event["pid"] == reader_tid)
        .count();
    assert_eq!(wakings, DATAGRAMS as usize);
    assert_eq!(lost_total(&stderr), 0);
}

#[test]
fn a_missing_tracepoint_is_named_and_the_rest_attaches() {
    let Some(_serial) = kernel_test("a_missing_tracepoint_is_named_and_the_rest_attaches") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tracer = RunningTracer::start(
        &[
            "events",
            "--json",
            "--without",
            "sock:sk_data_ready",
            "--without",
            "napi_poll",
        ],
        dir.path(),
    );
    let (stdout, stderr) = tracer.stop();
    let text = stderr.join("\n");
    assert!(
        text.contains("not tracing sock:sk_data_ready: excluded with --without"),
        "{text}"
    );
    assert!(
        text.contains("not tracing napi:napi_poll: excluded with --without"),
        "{text}"
    );
    assert!(text.contains("tracing 28 of 30 tracepoints"), "{text}");
    let events = json_events(&stdout);
    assert!(
        events
            .iter()
            .all(|event| event["kind"] != "sk_data_ready" && event["kind"] != "napi_poll")
    );
    assert!(
        of_kind(&events, "sched_switch").count() > 0,
        "the other tracepoints still attach"
    );
}

#[test]
fn duration_stops_by_itself() {
    let Some(_serial) = kernel_test("duration_stops_by_itself") else {
        return;
    };
    let started = Instant::now();
    let out = Command::new(tracer_bin())
        .args(["events", "--duration", "300ms", "--cpu", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        assert!(line.contains(" [000] "), "--cpu 0 let through {line:?}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lost 0 (cpu0=0"), "{stderr}");
}

#[test]
fn bad_input_gives_one_clear_line() {
    let Some(_serial) = kernel_test("bad_input_gives_one_clear_line") else {
        return;
    };
    let run = |args: &[&str]| {
        let out = Command::new(tracer_bin()).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
        )
    };
    let (code, stderr) = run(&["events", "--pid", "999999999", "--duration", "1s"]);
    assert_eq!(
        (code, stderr.as_str()),
        (Some(1), "tracer: error: no process with pid 999999999")
    );
    let (code, stderr) = run(&["events", "--cpu", "4096", "--duration", "1s"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("tracer: error: no CPU 4096: this machine has CPUs 0-"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
    let (code, stderr) = run(&["events", "--duration", "soon"]);
    assert_eq!(code, Some(2), "clap's usage error");
    assert!(stderr.contains("invalid duration \"soon\""), "{stderr}");
}

#[test]
fn without_privileges_one_line_names_the_capability() {
    let Some(_serial) = kernel_test("without_privileges_one_line_names_the_capability") else {
        return;
    };
    // Drop to an unprivileged user with no capabilities at all.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(tracer_bin())
        .args(["events", "--duration", "1s"])
        .output()
        .expect("setpriv (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("tracer: error: missing capability CAP_BPF and CAP_PERFMON"),
        "{stderr}"
    );
}

/// Journey mode keeps only network devices' interrupts, in the kernel: during a disk
/// workload (write + fsync, which raises the block device's interrupts), an event-mode tracer
/// sees interrupts of other devices, while a journey-mode recording made at the same time
/// holds only IRQs that sysfs names as a network device's.
#[test]
fn journey_mode_keeps_only_network_interrupts() {
    let Some(_serial) = kernel_test("journey_mode_keeps_only_network_interrupts") else {
        return;
    };
    let network: HashSet<u32> = tracer::host::irqmap::IrqMap::from_system()
        .irqs
        .keys()
        .copied()
        .collect();
    assert!(
        !network.is_empty(),
        "this host has no network device interrupts in sysfs: nothing to filter by"
    );
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("irqs.trc");
    let events = RunningTracer::start(&["events", "--json"], dir.path());
    let record_dir = tempfile::tempdir().unwrap();
    let recorder = RunningTracer::start(
        &["record", "-o", trace.to_str().unwrap()],
        record_dir.path(),
    );
    // On the build directory's disk: /tmp may be a tmpfs, which raises no interrupt.
    let disk_file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("irq-filter-disk-load");
    {
        use std::io::Write as _;
        let mut file = fs::File::create(&disk_file).unwrap();
        for round in 0..200u32 {
            file.write_all(&[round as u8; 4096]).unwrap();
            file.sync_data().unwrap();
        }
    }
    let _ = fs::remove_file(&disk_file);
    let (_, recorded_stderr) = recorder.stop();
    let (stdout, stderr) = events.stop();
    assert_eq!(lost_total(&stderr), 0, "events lost: {stderr:?}");
    let seen: HashSet<u64> = json_events(&stdout)
        .iter()
        .filter(|event| event["kind"] == "irq_handler_entry")
        .filter_map(|event| event["irq"].as_u64())
        .collect();
    let other: Vec<&u64> = seen
        .iter()
        .filter(|irq| !network.contains(&(**irq as u32)))
        .collect();
    assert!(
        !other.is_empty(),
        "the disk workload raised no interrupt outside the network devices ({seen:?}): the check below could not fail"
    );
    let recording = tracer::recording::Recording::read(&trace).unwrap_or_else(|err| {
        panic!("recording unreadable: {err}; recorder said {recorded_stderr:?}")
    });
    let recorded: HashSet<u32> = recording
        .events
        .iter()
        .filter(|event| event.kind == tracer_common::EventKind::IrqHandlerEntry as u8)
        .map(|event| event.arg0)
        .collect();
    let foreign: Vec<&u32> = recorded
        .iter()
        .filter(|irq| !network.contains(irq))
        .collect();
    assert!(
        foreign.is_empty(),
        "journey mode recorded interrupts of other devices {foreign:?} (network: {network:?}; event mode saw {seen:?})"
    );
}
