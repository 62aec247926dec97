//! Kernel tests of `tracer live`: packet journeys against ground truth written by the
//! test's own reader process (per read: sequence number, bytes, CLOCK_MONOTONIC right after
//! the read returned), over loopback and over a veth pair between two network namespaces.

mod common;

use std::{
    fs,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{RunningTracer, gettid, json_events, kernel_test, monotonic_ns, tracer_bin};
use serde_json::Value;

const PEER_DIR: &str = "TRACER_TEST_PEER_DIR";
const PEER_ROLE: &str = "TRACER_TEST_PEER_ROLE";
const PEER_COUNT: &str = "TRACER_TEST_PEER_COUNT";
const PEER_BIND: &str = "TRACER_TEST_PEER_BIND";
const PEER_CPU: &str = "TRACER_TEST_PEER_CPU";
const PEER_BATCH: &str = "TRACER_TEST_PEER_BATCH";

/// Payload size of message `seq`: distinct per message, so bytes identify it.
fn payload_len(seq: u32) -> usize {
    200 + seq as usize
}

/// The reader process (started by [`Reader::spawn`]): binds UDP or TCP on PEER_BIND, writes
/// `port pid tid` to `<dir>/ready`, then for PEER_COUNT messages blocks in recv()/read()
/// and writes `seq bytes monotonic_ns` per read to `<dir>/reads`.
#[test]
#[ignore = "entry point of the reader process that kernel tests start"]
fn reader_peer() {
    let dir = std::env::var(PEER_DIR).expect("run by Reader::spawn");
    let dir = Path::new(&dir);
    let count: u32 = std::env::var(PEER_COUNT).unwrap().parse().unwrap();
    let bind = std::env::var(PEER_BIND).unwrap();
    if let Ok(cpu) = std::env::var(PEER_CPU) {
        tracer::lab::workload::pin_to(cpu.parse().unwrap()).expect("pin the reader");
    }
    if std::env::var_os(PEER_BATCH).is_some() {
        tracer::lab::workload::set_batch().expect("SCHED_BATCH");
    }
    let ready = |port: u16| {
        let text = format!("{port} {} {}", std::process::id(), gettid());
        fs::write(dir.join("ready.tmp"), text).unwrap();
        fs::rename(dir.join("ready.tmp"), dir.join("ready")).unwrap();
    };
    let mut buf = vec![0u8; 65536];
    let mut reads = Vec::new();
    match std::env::var(PEER_ROLE).unwrap().as_str() {
        "udp" => {
            let socket = UdpSocket::bind((bind.as_str(), 0)).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            ready(socket.local_addr().unwrap().port());
            for _ in 0..count {
                let before = monotonic_ns();
                let bytes = socket.recv(&mut buf).expect("datagram within 30 s");
                let stamp = monotonic_ns();
                reads.push((
                    u32::from_be_bytes(buf[..4].try_into().unwrap()),
                    bytes,
                    before,
                    stamp,
                ));
            }
        }
        "tcp" => {
            let listener = TcpListener::bind((bind.as_str(), 0)).unwrap();
            ready(listener.local_addr().unwrap().port());
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            for _ in 0..count {
                let before = monotonic_ns();
                let bytes = stream.read(&mut buf).expect("data within 30 s");
                let stamp = monotonic_ns();
                reads.push((
                    u32::from_be_bytes(buf[..4].try_into().unwrap()),
                    bytes,
                    before,
                    stamp,
                ));
            }
        }
        role => panic!("unknown role {role}"),
    }
    let lines: Vec<String> = reads
        .iter()
        .map(|(seq, bytes, before, stamp)| format!("{seq} {bytes} {before} {stamp}"))
        .collect();
    fs::write(dir.join("reads"), lines.join("\n")).unwrap();
}

/// One read as the reader saw it.
#[derive(Debug)]
struct Read {
    seq: u32,
    bytes: i64,
    /// CLOCK_MONOTONIC just before the read call, and just after it returned.
    before: u64,
    stamp: u64,
}

struct Reader {
    child: Child,
    port: u16,
    pid: u32,
    tid: u32,
}

impl Reader {
    /// Starts [`reader_peer`] (inside network namespace `netns` if given) and waits until
    /// its socket is bound.
    fn spawn(
        dir: &Path,
        role: &str,
        count: u32,
        bind: &str,
        netns: Option<&str>,
        cpu: Option<usize>,
        batch: bool,
    ) -> Self {
        let exe = std::env::current_exe().unwrap();
        let mut command = match netns {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        command
            .args([
                "--exact",
                "reader_peer",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PEER_DIR, dir)
            .env(PEER_ROLE, role)
            .env(PEER_COUNT, count.to_string())
            .env(PEER_BIND, bind)
            .stdout(Stdio::null());
        if let Some(cpu) = cpu {
            command.env(PEER_CPU, cpu.to_string());
        }
        if batch {
            command.env(PEER_BATCH, "1");
        }
        let mut child = command.spawn().expect("start reader process");
        let ready = dir.join("ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("reader exited early: {status}");
            }
            assert!(Instant::now() < deadline, "reader did not get ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        let text = fs::read_to_string(ready).unwrap();
        let fields: Vec<u32> = text
            .split(' ')
            .map(|field| field.parse().unwrap())
            .collect();
        Self {
            child,
            port: fields[0] as u16,
            pid: fields[1],
            tid: fields[2],
        }
    }

    fn finish(mut self, dir: &Path) -> Vec<Read> {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "reader failed: {status}");
        fs::read_to_string(dir.join("reads"))
            .unwrap()
            .lines()
            .map(|line| {
                let fields: Vec<u64> = line
                    .split(' ')
                    .map(|field| field.parse().unwrap())
                    .collect();
                Read {
                    seq: fields[0] as u32,
                    bytes: fields[1] as i64,
                    before: fields[2],
                    stamp: fields[3],
                }
            })
            .collect()
    }
}

/// Sends `count` numbered messages, `gap` apart, over UDP or TCP (TCP_NODELAY), optionally
/// from inside network namespace `netns` and pinned to a CPU.
fn send(
    role: &str,
    target: (String, u16),
    count: u32,
    gap: Duration,
    netns: Option<String>,
    cpu: Option<usize>,
) {
    let role = role.to_owned();
    let sender = std::thread::spawn(move || {
        if let Some(ns) = netns {
            let file = fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
            // SAFETY: setns on this thread only, with a valid namespace fd.
            assert_eq!(
                unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
                0,
                "setns {ns}"
            );
        }
        if let Some(cpu) = cpu {
            tracer::lab::workload::pin_to(cpu).expect("pin the sender");
        }
        let message = |seq: u32| {
            let mut payload = vec![0u8; payload_len(seq)];
            payload[..4].copy_from_slice(&seq.to_be_bytes());
            payload
        };
        match role.as_str() {
            "udp" => {
                let socket = UdpSocket::bind(("0.0.0.0", 0)).unwrap();
                for seq in 0..count {
                    std::thread::sleep(gap);
                    socket
                        .send_to(&message(seq), (target.0.as_str(), target.1))
                        .unwrap();
                }
            }
            _ => {
                let mut stream = TcpStream::connect((target.0.as_str(), target.1)).unwrap();
                stream.set_nodelay(true).unwrap();
                for seq in 0..count {
                    std::thread::sleep(gap);
                    stream.write_all(&message(seq)).unwrap();
                }
                // Keep the connection until the reader has read everything.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    sender.join().expect("sender thread");
}

/// Two network namespaces joined by a veth pair, removed on drop.
struct VethPair {
    names: [String; 2],
}

impl VethPair {
    const SENDER_ADDR: &str = "10.213.7.1";
    const READER_ADDR: &str = "10.213.7.2";

    fn create() -> Self {
        let id = std::process::id();
        let names = [format!("trsend{id}"), format!("trrecv{id}")];
        let pair = VethPair { names };
        let [a, b] = &pair.names;
        let (va, vb) = (format!("tva{id}"), format!("tvb{id}"));
        let ip = |args: &[&str]| {
            let status = Command::new("ip")
                .args(args)
                .status()
                .expect("ip (iproute2)");
            assert!(status.success(), "ip {}", args.join(" "));
        };
        ip(&["netns", "add", a]);
        ip(&["netns", "add", b]);
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb]);
        ip(&["link", "set", &va, "netns", a]);
        ip(&["link", "set", &vb, "netns", b]);
        for (ns, dev, addr) in [(a, &va, Self::SENDER_ADDR), (b, &vb, Self::READER_ADDR)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    fn reader_dev(&self) -> String {
        format!("tvb{}", std::process::id())
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs one exchange under `tracer live --json --pid <reader>` and returns (journeys of the
/// reader, ground truth, reader).
struct Exchange<'a> {
    /// Extra `tracer live` arguments.
    extra: &'a [&'a str],
    role: &'a str,
    count: u32,
    netns: Option<&'a VethPair>,
    reader_cpu: Option<usize>,
    sender_cpu: Option<usize>,
    /// The reader runs SCHED_BATCH: it never preempts the running task on wakeup.
    reader_batch: bool,
}

impl Exchange<'_> {
    fn run(&self) -> (Vec<Value>, Vec<Read>, u32, u32) {
        let dir = tempfile::tempdir().unwrap();
        let (bind, target_host, reader_ns, sender_ns) = match self.netns {
            Some(pair) => (
                VethPair::READER_ADDR,
                VethPair::READER_ADDR,
                Some(pair.names[1].as_str()),
                Some(pair.names[0].clone()),
            ),
            None => ("127.0.0.1", "127.0.0.1", None, None),
        };
        let reader = Reader::spawn(
            dir.path(),
            self.role,
            self.count,
            bind,
            reader_ns,
            self.reader_cpu,
            self.reader_batch,
        );
        let pid = reader.pid.to_string();
        let mut args = vec!["live", "--json", "--pid", &pid, "--interval", "0"];
        args.extend(self.extra);
        let tracer = RunningTracer::start(&args, dir.path());
        let target = (target_host.to_owned(), reader.port);
        send(
            self.role,
            target,
            self.count,
            Duration::from_millis(20),
            sender_ns,
            self.sender_cpu,
        );
        let (reader_pid, reader_tid) = (reader.pid, reader.tid);
        let truth = reader.finish(dir.path());
        std::thread::sleep(Duration::from_millis(100));
        let (stdout, stderr) = tracer.stop();
        let journeys: Vec<Value> = json_events(&stdout)
            .into_iter()
            .filter(|journey| journey["pid"] == reader_pid)
            .collect();
        assert!(
            stderr
                .iter()
                .any(|line| line.starts_with("lost events: 0 ")),
            "events were lost: {stderr:?}"
        );
        // Every program loads in the form asked for (a verifier refusal falls back, loudly).
        assert!(
            !stderr.iter().any(|line| line.contains("load failed")),
            "a program failed to load: {stderr:?}"
        );
        // Events are batched when asked to.
        let batched = self.extra.contains(&"--batched");
        assert_eq!(
            stderr
                .iter()
                .any(|line| line.contains("events batched per NET_RX run and per read")),
            batched,
            "the ready line says whether runs are batched: {stderr:?}"
        );
        (journeys, truth, reader_pid, reader_tid)
    }
}

/// Every read has exactly one journey: same reader, same bytes, recv return before the
/// reader's own read call (its stamps just before and just after), stamps in order, complete.
fn check_against_truth(journeys: &[Value], truth: &[Read], tid: u32, count: u32, dev: &str) {
    assert_eq!(truth.len(), count as usize);
    for (index, read) in truth.iter().enumerate() {
        assert_eq!(read.seq, index as u32, "the reader saw messages in order");
        assert_eq!(
            read.bytes,
            payload_len(read.seq) as i64,
            "one message per read"
        );
    }
    assert_eq!(
        journeys.len(),
        truth.len(),
        "one journey per packet: {journeys:#?}"
    );
    let mut journeys: Vec<&Value> = journeys.iter().collect();
    journeys.sort_by_key(|journey| journey["ts"]["recv_return"].as_u64());
    for (journey, read) in journeys.iter().zip(truth) {
        assert_eq!(journey["tid"], tid, "{journey}");
        assert_eq!(journey["bytes"].as_i64(), Some(read.bytes), "{journey}");
        assert_eq!(journey["dev"], dev, "{journey}");
        assert_eq!(journey["complete"], true, "{journey}");
        let ret = journey["ts"]["recv_return"].as_u64().expect("recv_return");
        assert!(
            read.before <= ret && ret <= read.stamp,
            "recv_return {ret} outside the reader's own read call [{}, {}]",
            read.before,
            read.stamp
        );
        let order = [
            "irq_entry",
            "softirq_raise",
            "irq_exit",
            "softirq_entry",
            "netif_receive",
            "sk_data_ready",
            "waking",
            "switch_in",
            "recv_return",
        ];
        let stamps: Vec<u64> = order
            .iter()
            .filter_map(|name| journey["ts"][name].as_u64())
            .collect();
        assert!(
            stamps.windows(2).all(|pair| pair[0] <= pair[1]),
            "stamps out of order: {}",
            journey["ts"]
        );
        assert!(journey["ts"]["netif_receive"].is_u64() && journey["ts"]["sk_data_ready"].is_u64());
        let irq_missing = journey["missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["stage"] == "irq");
        assert!(
            irq_missing && journey["irq"].is_null(),
            "{dev} has no hard IRQ: {journey}"
        );
    }
}

#[test]
fn udp_over_loopback() {
    let Some(_serial) = kernel_test("udp_over_loopback") else {
        return;
    };
    let exchange = Exchange {
        extra: &[],
        role: "udp",
        count: 20,
        netns: None,
        reader_cpu: None,
        sender_cpu: None,
        reader_batch: false,
    };
    let (journeys, truth, _, tid) = exchange.run();
    check_against_truth(&journeys, &truth, tid, 20, "lo");
    for journey in &journeys {
        assert_eq!(journey["proto"], "udp");
        assert_eq!(journey["syscall"], "recvfrom", "{journey}");
        // Blocked between datagrams: each one wakes the reader.
        assert!(journey["stages_ns"]["wakeup"].is_u64(), "{journey}");
        assert_runqueue_or_still_running(journey);
    }
}

#[test]
fn tcp_over_loopback() {
    let Some(_serial) = kernel_test("tcp_over_loopback") else {
        return;
    };
    let exchange = Exchange {
        extra: &[],
        role: "tcp",
        count: 20,
        netns: None,
        reader_cpu: None,
        sender_cpu: None,
        reader_batch: false,
    };
    let (journeys, truth, _, tid) = exchange.run();
    check_against_truth(&journeys, &truth, tid, 20, "lo");
    for journey in &journeys {
        assert_eq!(journey["proto"], "tcp");
        assert_eq!(
            journey["syscall"], "recvfrom",
            "std's TcpStream::read is recv(2)"
        );
    }
}

/// The classic tracepoints (the path of kernels without BTF, forced here) rebuild the same
/// journeys as the BTF tracepoints the tests above attach.
#[test]
fn classic_tracepoints_rebuild_the_same_journeys() {
    let Some(_serial) = kernel_test("classic_tracepoints_rebuild_the_same_journeys") else {
        return;
    };
    udp_and_tcp_over_loopback_with(&["--classic-tracepoints"]);
}

/// Events batched per NET_RX run and per read (several in one ring record) rebuild the same
/// journeys as the events written one by one the tests above read.
#[test]
fn batched_events_rebuild_the_same_journeys() {
    let Some(_serial) = kernel_test("batched_events_rebuild_the_same_journeys") else {
        return;
    };
    udp_and_tcp_over_loopback_with(&["--batched"]);
}

/// The default reads whether a task is inside a traced syscall from its saved registers and
/// attaches no program at syscall entry; `--syscall-entry-marks` marks each entry at
/// raw_syscalls:sys_enter instead. Both rebuild the same journeys, the first read of a
/// reader blocked in recv() before the tracer started included (the exchange's reader is).
#[test]
fn syscall_entry_marks_rebuild_the_same_journeys() {
    let Some(_serial) = kernel_test("syscall_entry_marks_rebuild_the_same_journeys") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (extra, entry_program) in [(&[][..], false), (&["--syscall-entry-marks"][..], true)] {
        let mut args = vec!["live", "--json"];
        args.extend(extra);
        let before = common::programs();
        let tracer = RunningTracer::start(&args, dir.path());
        let names: Vec<String> = common::programs()
            .into_iter()
            .filter(|(id, _)| !before.contains_key(id))
            .map(|(_, name)| name)
            .collect();
        tracer.stop();
        assert!(
            names.iter().any(|name| name == "sys_exit_btf"),
            "{extra:?}: the raw exit program is attached: {names:?}"
        );
        assert_eq!(
            names.iter().any(|name| name == "sys_enter_btf"),
            entry_program,
            "{extra:?}: the raw entry program is attached only to mark entries: {names:?}"
        );
        let [udp, _] = udp_and_tcp_over_loopback_with(extra);
        for journey in &udp {
            // Blocked between datagrams: each one wakes the reader, the first too.
            assert!(
                journey["stages_ns"]["wakeup"].is_u64(),
                "{extra:?}: {journey}"
            );
        }
    }
}

/// 15 UDP datagrams, then 15 TCP segments, over loopback with these options: every journey
/// checked against the reader's own stamps and bytes. Returns the UDP and the TCP journeys.
fn udp_and_tcp_over_loopback_with(extra: &[&str]) -> [Vec<Value>; 2] {
    ["udp", "tcp"].map(|role| {
        let exchange = Exchange {
            extra,
            role,
            count: 15,
            netns: None,
            reader_cpu: None,
            sender_cpu: None,
            reader_batch: false,
        };
        let (journeys, truth, _, tid) = exchange.run();
        check_against_truth(&journeys, &truth, tid, 15, "lo");
        assert!(journeys.iter().all(|journey| journey["proto"] == role));
        journeys
    })
}

#[test]
fn udp_and_tcp_over_a_veth_pair_between_namespaces() {
    let Some(_serial) = kernel_test("udp_and_tcp_over_a_veth_pair_between_namespaces") else {
        return;
    };
    let pair = VethPair::create();
    let dev = pair.reader_dev();
    for role in ["udp", "tcp"] {
        let exchange = Exchange {
            extra: &[],
            role,
            count: 15,
            netns: Some(&pair),
            reader_cpu: None,
            sender_cpu: None,
            reader_batch: false,
        };
        let (journeys, truth, _, tid) = exchange.run();
        check_against_truth(&journeys, &truth, tid, 15, &dev);
        assert!(journeys.iter().all(|journey| journey["proto"] == role));
    }
}

/// A woken reader waits in the run queue, unless the wakeup found it still on its CPU (it
/// had not switched out yet): then the journey says so instead of inventing a wait.
fn assert_runqueue_or_still_running(journey: &Value) {
    if journey["stages_ns"]["runqueue"].is_u64() {
        return;
    }
    let reason = journey["missing"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["stage"] == "runqueue");
    let reason = reason
        .and_then(|m| m["reason"].as_str())
        .unwrap_or_default();
    assert!(
        reason.starts_with("woken while still on its CPU"),
        "no runqueue stage and no reason: {journey}"
    );
}

fn runqueue_p50(journeys: &[Value]) -> u64 {
    let mut values: Vec<u64> = journeys
        .iter()
        .filter_map(|journey| journey["stages_ns"]["runqueue"].as_u64())
        .collect();
    assert!(
        values.len() >= 5,
        "too few runqueue stages ({}) in {journeys:#?}",
        values.len()
    );
    values.sort_unstable();
    values[values.len() / 2]
}

/// A SCHED_BATCH reader never preempts on wakeup (the kernel leaves batch tasks to the tick),
/// so beside a nice -20 CPU hog it waits in the run queue until the hog's slice ends. A normal
/// reader is not a steady subject: EEVDF places a woken task by its lag, and one with positive
/// lag preempts even a nice -20 hog at once (a CI run measured 25 us contended against 87 us
/// on the idle CPU; on the machine it usually waits 1-2 ms).
#[test]
fn a_hog_the_reader_cannot_preempt_lengthens_the_runqueue_stage() {
    let Some(_serial) = kernel_test("a_hog_the_reader_cannot_preempt_lengthens_the_runqueue_stage")
    else {
        return;
    };
    let cpus = std::thread::available_parallelism().unwrap().get();
    let (reader_cpu, sender_cpu) = (cpus - 1, 0);
    let exchange = Exchange {
        extra: &[],
        role: "udp",
        count: 30,
        netns: None,
        reader_cpu: Some(reader_cpu),
        sender_cpu: Some(sender_cpu),
        reader_batch: true,
    };
    let (alone, _, _, _) = exchange.run();
    let idle_p50 = runqueue_p50(&alone);

    // Killed on drop too: a failing exchange must not leave a nice -20 CPU hog behind (it
    // would slow every later test on this machine).
    struct Competitor(std::process::Child);
    impl Drop for Competitor {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let competitor = Competitor(
        Command::new("nice")
            .args([
                "-n",
                "-20",
                "taskset",
                "-c",
                &reader_cpu.to_string(),
                "sh",
                "-c",
                "while :; do :; done",
            ])
            .spawn()
            .expect("start the competitor"),
    );
    std::thread::sleep(Duration::from_millis(200));
    // The hog's own state, so a failure below cannot come from a hog that is not there.
    let stat = fs::read_to_string(format!("/proc/{}/stat", competitor.0.id())).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // After the command name: state is field 3, nice 19 and processor 39 (proc_pid_stat(5)).
    assert_eq!(
        (fields[0], fields[16], fields[36]),
        ("R", "-20", reader_cpu.to_string().as_str()),
        "the competitor should be running at nice -20 on CPU {reader_cpu}: {stat}"
    );
    let (contended, _, _, _) = exchange.run();
    drop(competitor);
    let busy_p50 = runqueue_p50(&contended);
    eprintln!("runqueue p50: alone {idle_p50} ns, with a nice -20 competitor {busy_p50} ns");
    assert!(
        busy_p50 > 2 * idle_p50 && busy_p50 > 200_000,
        "a nice -20 CPU hog on the SCHED_BATCH reader's CPU should delay it: alone {idle_p50} ns, contended {busy_p50} ns"
    );
}

#[test]
fn live_rejects_unknown_pid_and_device() {
    let Some(_serial) = kernel_test("live_rejects_unknown_pid_and_device") else {
        return;
    };
    let run = |args: &[&str]| {
        let out = Command::new(tracer_bin()).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
        )
    };
    let (code, stderr) = run(&["live", "--pid", "999999999", "--duration", "1s"]);
    assert_eq!(
        (code, stderr.as_str()),
        (Some(1), "tracer: error: no process with pid 999999999")
    );
    let (code, stderr) = run(&["live", "--dev", "nosuchdev0", "--duration", "1s"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("tracer: error: no network device named \"nosuchdev0\" (devices: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
}

#[test]
fn each_fallback_keeps_every_journey_and_names_what_it_lost() {
    let Some(_serial) = kernel_test("each_fallback_keeps_every_journey_and_names_what_it_lost")
    else {
        return;
    };
    for (without, lost_stages) in [
        ("sock:sk_data_ready", &["stack", "wakeup"][..]),
        ("sock:sock_recv_length", &[][..]),
        ("napi:napi_poll", &[][..]),
    ] {
        let extra = ["--without", without];
        let exchange = Exchange {
            extra: &extra,
            role: "udp",
            count: 10,
            netns: None,
            reader_cpu: None,
            sender_cpu: None,
            reader_batch: false,
        };
        let (journeys, truth, _, tid) = exchange.run();
        assert_eq!(
            journeys.len(),
            10,
            "--without {without}: one journey per datagram"
        );
        for (journey, read) in journeys.iter().zip(&truth) {
            assert_eq!(journey["tid"], tid);
            assert_eq!(
                journey["bytes"].as_i64(),
                Some(read.bytes),
                "--without {without}: {journey}"
            );
            assert_eq!(journey["complete"], true, "--without {without}: {journey}");
            let ret = journey["ts"]["recv_return"].as_u64().unwrap();
            assert!(
                read.before <= ret && ret <= read.stamp,
                "--without {without}: recv_return {ret} outside [{}, {}]",
                read.before,
                read.stamp
            );
            for stage in lost_stages {
                let reason = journey["missing"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|missing| missing["stage"] == *stage)
                    .unwrap_or_else(|| {
                        panic!("--without {without}: stage {stage} should be missing: {journey}")
                    });
                assert!(
                    reason["reason"].as_str().unwrap().contains(without),
                    "{reason}"
                );
                assert!(journey["stages_ns"][stage].is_null());
            }
            if without == "napi:napi_poll" {
                assert!(
                    journey["napi_batch_pos"].is_null() && journey["napi_work"].is_null(),
                    "{journey}"
                );
            } else {
                assert_eq!(journey["napi_batch_pos"], 1, "{journey}");
            }
            if without != "sock:sk_data_ready" {
                assert!(journey["stages_ns"]["stack"].is_u64(), "{journey}");
            }
            assert_runqueue_or_still_running(journey);
        }
    }
}

#[test]
fn the_demo_shows_complete_journeys_with_every_stage_but_irq() {
    let Some(_serial) = kernel_test("the_demo_shows_complete_journeys_with_every_stage_but_irq")
    else {
        return;
    };
    let out = Command::new(tracer_bin())
        .args(["demo", "--json", "-n", "10", "--gap-ms", "20"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let journeys = json_events(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(journeys.len(), 10, "{stderr}");
    for journey in &journeys {
        assert_eq!(journey["complete"], true, "{journey}");
        for stage in ["softirq_wait", "poll", "stack", "wakeup", "total"] {
            assert!(
                journey["stages_ns"][stage].is_u64(),
                "the reader thread starts after the tracer: {stage} in {journey}"
            );
        }
        assert_runqueue_or_still_running(journey);
    }
    assert!(stderr.contains("demo done: 10 journeys"), "{stderr}");
}
