//! Kernel test of the flow fields between network namespaces: a veth pair joins a sender
//! namespace and a reader namespace that the test creates; for IPv4 and IPv6, UDP and TCP, a
//! reader process of the test's own (this binary, started inside the reader namespace and
//! moved into a cgroup the test creates) reads what a sender thread in the other namespace
//! sends. Every journey of the flow must carry the 5-tuple the reader's own sockets report
//! (recvfrom's source / getpeername, getsockname), the reader's network namespace (the inode
//! of /proc/<pid>/ns/net) and cgroup (the inode of its directory, named by /proc/<pid>/cgroup),
//! and be complete: the bytes the reader counted, no more, no less.

mod common;

use std::{
    fs,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{RunningTracer, assert_no_loss, json_events, kernel_test};
use serde_json::Value;

const PEER_DIR: &str = "TRACER_TEST_NS_DIR";
const PEER_ROLE: &str = "TRACER_TEST_NS_ROLE";
const PEER_BIND: &str = "TRACER_TEST_NS_BIND";
const PEER_CGROUP: &str = "TRACER_TEST_NS_CGROUP";
/// Messages per flow, and the size of message `seq` (distinct, so a lost one shows).
const MESSAGES: usize = 8;
fn message_len(seq: usize) -> usize {
    300 + seq
}

/// Whether the test may go on after `step` failed: in CI (CI=true) it may not.
fn or_skip(ok: bool, step: &str) -> bool {
    if !ok {
        let in_ci = std::env::var("CI").is_ok_and(|ci| ci == "true");
        assert!(!in_ci, "{step} failed: kernel tests must run in CI");
        eprintln!("\n!!! SKIPPING namespaces test: {step} failed !!!\n");
    }
    ok
}

/// Runs `ip <args>`; whether it succeeded.
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::inherit())
        .status()
        .is_ok_and(|status| status.success())
}

/// Two network namespaces joined by a veth pair, IPv4 and IPv6, removed on drop.
struct Namespaces {
    sender: String,
    reader: String,
    /// The sender's end of the veth pair, in our namespace until it is moved.
    veth: String,
}

impl Namespaces {
    const SENDER: [&str; 2] = ["10.214.9.1", "fd00:214::1"];
    const READER: [&str; 2] = ["10.214.9.2", "fd00:214::2"];

    fn create() -> Option<Self> {
        let id = std::process::id();
        let namespaces = Self {
            sender: format!("trns-s{id}"),
            reader: format!("trns-r{id}"),
            veth: format!("tns{id}a"),
        };
        let (a, b) = (format!("tns{id}a"), format!("tns{id}b"));
        let (sender, reader) = (namespaces.sender.as_str(), namespaces.reader.as_str());
        let mut steps = vec![
            format!("netns add {sender}"),
            format!("netns add {reader}"),
            format!("link add {a} type veth peer name {b}"),
            format!("link set {a} netns {sender}"),
            format!("link set {b} netns {reader}"),
        ];
        for (ns, dev, [v4, v6]) in [(sender, &a, Self::SENDER), (reader, &b, Self::READER)] {
            steps.push(format!("-n {ns} addr add {v4}/24 dev {dev}"));
            // nodad: usable at once, not tentative for a second.
            steps.push(format!("-n {ns} -6 addr add {v6}/64 dev {dev} nodad"));
            steps.push(format!("-n {ns} link set {dev} up"));
            steps.push(format!("-n {ns} link set lo up"));
        }
        for step in &steps {
            let args: Vec<&str> = step.split(' ').collect();
            if !or_skip(ip(&args), &format!("ip {step}")) {
                return None; // the guard removes what was made
            }
        }
        Some(namespaces)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and so the pair; a pair
        // not moved yet (a failed step) is deleted here.
        for args in [
            ["netns", "del", self.sender.as_str()],
            ["netns", "del", self.reader.as_str()],
            ["link", "del", self.veth.as_str()],
        ] {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        }
    }
}

/// A cgroup v2 directory the test creates for its readers, removed on drop (after them).
struct TestCgroup {
    dir: PathBuf,
}

/// The cgroup v2 hierarchy's mount point (not always /sys/fs/cgroup: /sys/fs/cgroup/unified
/// on a hybrid host).
fn cgroup2_root() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        (fields.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(fields[1]))
    })
}

impl TestCgroup {
    /// `None` when it cannot be made (the readers then stay in the test's own cgroup).
    fn create(root: &Path) -> Option<Self> {
        let dir = root.join(format!("tracer-test-{}", std::process::id()));
        fs::create_dir(&dir).ok()?;
        Some(Self { dir })
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // A reader just reaped may leave the cgroup a moment later (EBUSY until then).
        for _ in 0..50 {
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("could not remove {}", self.dir.display());
    }
}

/// What the reader's own sockets said: the flow (source as recvfrom/getpeername reports it,
/// destination as getsockname does), and the bytes of each read.
#[derive(Debug)]
struct Truth {
    from: SocketAddr,
    to: SocketAddr,
    reads: Vec<usize>,
}

/// The reader process (started by [`Reader::spawn`] inside the reader namespace): moves
/// itself into PEER_CGROUP if given, binds PEER_ROLE on PEER_BIND, writes `port` to
/// `<dir>/ready`, reads every message, then writes `from to bytes...` to `<dir>/truth`.
#[test]
#[ignore = "entry point of the reader process that the namespaces test starts"]
fn namespace_reader() {
    let dir = PathBuf::from(std::env::var(PEER_DIR).expect("run by Reader::spawn"));
    if let Ok(cgroup) = std::env::var(PEER_CGROUP) {
        let pid = std::process::id().to_string();
        fs::write(Path::new(&cgroup).join("cgroup.procs"), pid).expect("join the test cgroup");
    }
    let bind: SocketAddr = std::env::var(PEER_BIND).unwrap().parse().unwrap();
    let ready = |port: u16| {
        fs::write(dir.join("ready.tmp"), port.to_string()).unwrap();
        fs::rename(dir.join("ready.tmp"), dir.join("ready")).unwrap();
    };
    let total: usize = (0..MESSAGES).map(message_len).sum();
    let mut buf = vec![0u8; 65536];
    let mut reads = Vec::new();
    let (from, to) = match std::env::var(PEER_ROLE).unwrap().as_str() {
        "udp" => {
            let socket = UdpSocket::bind(bind).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            ready(socket.local_addr().unwrap().port());
            let mut from = None;
            for _ in 0..MESSAGES {
                let (bytes, source) = socket.recv_from(&mut buf).expect("a datagram within 20 s");
                assert!(from.is_none_or(|from| from == source), "one sender");
                from = Some(source);
                reads.push(bytes);
            }
            (from.unwrap(), socket.local_addr().unwrap())
        }
        "tcp" => {
            let listener = TcpListener::bind(bind).unwrap();
            ready(listener.local_addr().unwrap().port());
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            while reads.iter().sum::<usize>() < total {
                let bytes = stream.read(&mut buf).expect("data within 20 s");
                assert!(bytes > 0, "the sender closed early");
                reads.push(bytes);
            }
            (stream.peer_addr().unwrap(), stream.local_addr().unwrap())
        }
        role => panic!("unknown role {role}"),
    };
    let reads: Vec<String> = reads.iter().map(usize::to_string).collect();
    fs::write(
        dir.join("truth"),
        format!("{from} {to} {}", reads.join(" ")),
    )
    .unwrap();
}

/// A running reader process, killed on drop if the test fails first.
struct Reader {
    child: Child,
    port: u16,
}

impl Reader {
    /// Starts [`namespace_reader`] inside network namespace `netns` (setns before exec: the
    /// whole process is in it, and unlike `ip netns exec` no new mount namespace hides
    /// /sys/fs/cgroup) and waits until its socket is bound.
    fn spawn(dir: &Path, role: &str, bind: SocketAddr, netns: &str, cgroup: Option<&Path>) -> Self {
        let ns = fs::File::open(format!("/run/netns/{netns}")).expect("netns file");
        let ns_fd = ns.as_raw_fd();
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "namespace_reader",
                "--include-ignored",
                "--nocapture",
            ])
            .env(PEER_DIR, dir)
            .env(PEER_ROLE, role)
            .env(PEER_BIND, bind.to_string())
            .stdout(Stdio::null());
        if let Some(cgroup) = cgroup {
            command.env(PEER_CGROUP, cgroup);
        }
        // SAFETY: setns is a plain syscall (async-signal-safe) on an fd that outlives the fork.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start the reader process");
        drop(ns);
        let mut reader = Self { child, port: 0 };
        let ready = dir.join("ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            if let Some(status) = reader.child.try_wait().unwrap() {
                panic!("reader exited early: {status}");
            }
            assert!(Instant::now() < deadline, "reader did not get ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        reader.port = fs::read_to_string(ready).unwrap().parse().unwrap();
        reader
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn finish(mut self, dir: &Path) -> Truth {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "reader failed: {status}");
        let text = fs::read_to_string(dir.join("truth")).unwrap();
        let mut words = text.split(' ');
        Truth {
            from: words.next().unwrap().parse().unwrap(),
            to: words.next().unwrap().parse().unwrap(),
            reads: words.map(|word| word.parse().unwrap()).collect(),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends the messages from a thread inside network namespace `netns` (TCP_NODELAY, a gap
/// between messages so each is a segment of its own as a rule, not a requirement).
fn send(role: &str, target: SocketAddr, netns: &str) {
    let role = role.to_owned();
    in_netns(netns, move || {
        if role == "udp" {
            send_datagrams(target, MESSAGES, message_len);
        } else {
            let message = |seq: usize| vec![seq as u8; message_len(seq)];
            let mut stream = TcpStream::connect(target).unwrap();
            stream.set_nodelay(true).unwrap();
            for seq in 0..MESSAGES {
                std::thread::sleep(Duration::from_millis(15));
                stream.write_all(&message(seq)).unwrap();
            }
            // Keep the connection until the reader has read everything.
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .join()
    .expect("sender thread");
}

/// Sends `count` datagrams to `target` from this thread, `size(seq)` bytes each (all of
/// value `seq`), 15 ms apart.
fn send_datagrams(target: SocketAddr, count: usize, size: impl Fn(usize) -> usize) {
    let unspecified: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let socket = UdpSocket::bind(unspecified).unwrap();
    for seq in 0..count {
        std::thread::sleep(Duration::from_millis(15));
        socket.send_to(&vec![seq as u8; size(seq)], target).unwrap();
    }
}

/// The reader's namespace and cgroup as /proc says: (netns inode, cgroup id, cgroup path).
fn reader_context(pid: u32, cgroup_root: &Path) -> (u64, u64, String) {
    let netns = fs::metadata(format!("/proc/{pid}/ns/net")).unwrap().ino();
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .expect("a cgroup v2 line in /proc/<pid>/cgroup")
        .to_owned();
    let cgroup = fs::metadata(cgroup_root.join(path.trim_start_matches('/')))
        .unwrap()
        .ino();
    (netns, cgroup, path)
}

/// One flow's expectations, checked against the journeys of its reader.
struct Flow {
    name: String,
    proto: &'static str,
    family: &'static str,
    pid: u32,
    context: (u64, u64, String),
    truth: Truth,
}

impl Flow {
    fn check(&self, all: &[Value]) {
        let name = &self.name;
        let journeys: Vec<&Value> = all
            .iter()
            .filter(|j| j["pid"] == self.pid && j["control"] == false)
            .collect();
        let total: usize = self.truth.reads.iter().sum();
        assert_eq!(
            total,
            (0..MESSAGES).map(message_len).sum::<usize>(),
            "{name}"
        );
        if self.proto == "udp" {
            assert_eq!(journeys.len(), MESSAGES, "{name}: one journey per datagram");
        }
        let carried: u64 = journeys.iter().filter_map(|j| j["payload"].as_u64()).sum();
        assert_eq!(
            carried, total as u64,
            "{name}: the bytes the reader read: {journeys:#?}"
        );
        let (netns, cgroup, path) = &self.context;
        let (from, to) = (self.truth.from, self.truth.to);
        let (saddr, daddr) = (from.ip().to_string(), to.ip().to_string());
        for j in &journeys {
            let tuple = (
                j["proto"].as_str(),
                j["family"].as_str(),
                j["saddr"].as_str(),
                j["sport"].as_u64(),
                j["daddr"].as_str(),
                j["dport"].as_u64(),
            );
            let wanted = (
                Some(self.proto),
                Some(self.family),
                Some(saddr.as_str()),
                Some(u64::from(from.port())),
                Some(daddr.as_str()),
                Some(u64::from(to.port())),
            );
            assert_eq!(tuple, wanted, "{name}: the 5-tuple of {j}");
            assert_eq!(j["netns"].as_u64(), Some(*netns), "{name}: netns of {j}");
            assert_eq!(j["cgroup"].as_u64(), Some(*cgroup), "{name}: cgroup of {j}");
            assert_eq!(
                j["cgroup_path"].as_str(),
                Some(path.as_str()),
                "{name}: {j}"
            );
            assert_eq!(j["complete"], true, "{name}: {j}");
        }
    }
}

#[test]
fn journeys_name_flow_namespace_and_cgroup_across_a_veth_pair() {
    let test = "journeys_name_flow_namespace_and_cgroup_across_a_veth_pair";
    let Some(_serial) = kernel_test(test) else {
        return;
    };
    let Some(cgroup_root) = cgroup2_root() else {
        or_skip(false, "finding a cgroup2 mount");
        return;
    };
    let Some(namespaces) = Namespaces::create() else {
        return;
    };
    let cgroup = TestCgroup::create(&cgroup_root);
    if cgroup.is_none() {
        eprintln!("note: no cgroup v2 directory could be made: readers stay in our cgroup");
    }
    let dir = tempfile::tempdir().unwrap();
    let tracer = RunningTracer::start(&["live", "--json", "--interval", "1h"], dir.path());
    let own_netns = fs::metadata("/proc/self/ns/net").unwrap().ino();
    let mut flows = Vec::new();
    for (index, (family, proto)) in [
        ("ipv4", "udp"),
        ("ipv4", "tcp"),
        ("ipv6", "udp"),
        ("ipv6", "tcp"),
    ]
    .into_iter()
    .enumerate()
    {
        let v = usize::from(family == "ipv6");
        let flow_dir = dir.path().join(format!("flow{index}"));
        fs::create_dir(&flow_dir).unwrap();
        let bind = SocketAddr::new(Namespaces::READER[v].parse().unwrap(), 0);
        let reader = Reader::spawn(
            &flow_dir,
            proto,
            bind,
            &namespaces.reader,
            cgroup.as_ref().map(|c| c.dir.as_path()),
        );
        let pid = reader.pid();
        // Read while the reader lives (it joined its cgroup before it got ready).
        let context = reader_context(pid, &cgroup_root);
        send(
            proto,
            SocketAddr::new(bind.ip(), reader.port),
            &namespaces.sender,
        );
        let truth = reader.finish(&flow_dir);
        assert_ne!(context.0, own_netns, "the reader runs in its own namespace");
        if let Some(cgroup) = &cgroup {
            assert_eq!(
                context.1,
                fs::metadata(&cgroup.dir).unwrap().ino(),
                "in the test cgroup"
            );
        }
        flows.push(Flow {
            name: format!("{family} {proto}"),
            proto,
            family,
            pid,
            context,
            truth,
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    let (stdout, stderr) = tracer.stop();
    assert!(
        stderr
            .iter()
            .any(|line| line.starts_with("lost events: 0 ")),
        "events were lost: {stderr:?}"
    );
    let journeys = json_events(&stdout);
    for flow in &flows {
        flow.check(&journeys);
    }
}

/// Runs `work` on a thread of its own inside network namespace `netns`.
fn in_netns<T: Send + 'static>(
    netns: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let ns = fs::File::open(format!("/run/netns/{netns}")).expect("netns file");
    std::thread::spawn(move || {
        // SAFETY: setns of this thread only, with a valid namespace fd.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        work()
    })
}

/// Datagrams larger than the veth's 1500-byte MTU leave the sender in IP fragments (IPv4
/// and IPv6), which the reader's kernel reassembles into the skb of the fragment that
/// completed each datagram. Only the first fragment carries the UDP header: read from a
/// later one, its "ports" and "length" were payload bytes. Each datagram must be one
/// complete journey of the reader carrying exactly what its read returned, and no fragment
/// counted as a drop.
#[test]
fn fragmented_datagrams_are_one_journey_each_with_the_bytes_read() {
    let test = "fragmented_datagrams_are_one_journey_each_with_the_bytes_read";
    let Some(_serial) = kernel_test(test) else {
        return;
    };
    let Some(namespaces) = Namespaces::create() else {
        return;
    };
    const DATAGRAMS: usize = 10;
    let size = |seq: usize| 4000 + seq;
    let dir = tempfile::tempdir().unwrap();
    let tracer = RunningTracer::start(&["live", "--json", "--interval", "1h"], dir.path());
    let mut readers = Vec::new();
    for v in 0..2 {
        let bind = SocketAddr::new(Namespaces::READER[v].parse().unwrap(), 0);
        let (ready, port) = std::sync::mpsc::channel();
        let reader = in_netns(&namespaces.reader, move || {
            let socket = UdpSocket::bind(bind).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            ready.send(socket.local_addr().unwrap().port()).unwrap();
            let mut buf = vec![0u8; 65536];
            let reads: Vec<u64> = (0..DATAGRAMS)
                .map(|_| socket.recv(&mut buf).expect("a datagram within 20 s") as u64)
                .collect();
            (common::gettid(), reads)
        });
        let target = SocketAddr::new(bind.ip(), port.recv().unwrap());
        in_netns(&namespaces.sender, move || {
            send_datagrams(target, DATAGRAMS, size)
        })
        .join()
        .expect("sender thread");
        readers.push(reader.join().expect("reader thread"));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (stdout, stderr) = tracer.stop();
    let text = stderr.join("\n");
    assert_no_loss("fragments", &stderr);
    let journeys = json_events(&stdout);
    for (family, (tid, reads)) in ["ipv4", "ipv6"].iter().zip(&readers) {
        assert_eq!(
            reads,
            &(0..DATAGRAMS)
                .map(|seq| size(seq) as u64)
                .collect::<Vec<_>>(),
            "{family}: the reader got every datagram whole"
        );
        let mut ours: Vec<&Value> = journeys
            .iter()
            .filter(|j| j["tid"] == *tid && j["control"] == false)
            .collect();
        ours.sort_by_key(|j| j["ts"]["recv_return"].as_u64());
        let payloads: Vec<u64> = ours
            .iter()
            .map(|j| {
                assert_eq!(j["complete"], true, "{family}: {j}");
                assert_eq!(
                    (j["proto"].as_str(), j["family"].as_str()),
                    (Some("udp"), Some(*family)),
                    "{j}"
                );
                j["payload"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no payload: {j}"))
            })
            .collect();
        assert_eq!(
            &payloads, reads,
            "{family}: one journey per datagram, its bytes"
        );
    }
    // (Other drops happen here: IPv6 neighbour discovery and MLD to multicast groups
    // nobody joined.)
    let dropped_udp: Vec<&Value> = journeys
        .iter()
        .filter(|j| !j["drop_reason"].is_null() && j["proto"] == "udp")
        .collect();
    assert!(
        dropped_udp.is_empty(),
        "a fragment counted as a drop: {dropped_udp:?}"
    );
    assert!(
        text.contains("an IP fragment: its bytes went on in the datagram"),
        "the other fragments are said to be reassembled:\n{text}"
    );
}
