//! Hostile input and hard edges: names that try to drive the terminal, crafted recordings,
//! broken pipes and signals. Each ends in a clear one-line error or a clean stop, never a
//! crash, a hang, injected terminal control or silent loss.

mod common;

use std::{
    net::UdpSocket,
    sync::mpsc,
    time::{Duration, Instant},
};

use common::{RunningTracer, kernel_test};

/// A task name (15 bytes at most) holding ESC, BEL, CR and LF: printed raw, it would set
/// the terminal's title and colour and forge a line of its own.
const HOSTILE_COMM: &[u8] = b"\x1b[31m\x07\r\nEVIL";

/// A reader thread named [`HOSTILE_COMM`] receives datagrams on loopback while `live` and
/// `events` print text: neither output holds ESC, BEL or CR, and the name appears escaped
/// (so its LF forged no line).
#[test]
fn hostile_task_names_are_escaped_in_text_output() {
    let Some(_serial) = kernel_test("hostile_task_names_are_escaped_in_text_output") else {
        return;
    };
    assert!(HOSTILE_COMM.len() <= 15);
    let (live_dir, events_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let live = RunningTracer::start(&["live", "--interval", "0"], live_dir.path());
    let events = RunningTracer::start(&["events"], events_dir.path());

    const DATAGRAMS: usize = 20;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let (named_tx, named_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut name = HOSTILE_COMM.to_vec();
        name.push(0);
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of this thread's new name.
        let rc = unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
        assert_eq!(rc, 0, "prctl(PR_SET_NAME)");
        named_tx.send(()).unwrap();
        let mut buf = [0u8; 256];
        (0..DATAGRAMS)
            .filter(|_| socket.recv(&mut buf).is_ok())
            .count()
    });
    named_rx.recv().unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for seq in 0..DATAGRAMS {
        sender
            .send_to(&[seq as u8; 64], ("127.0.0.1", port))
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(Instant::now() < deadline);
    }
    assert_eq!(
        reader.join().unwrap(),
        DATAGRAMS,
        "the reader got every datagram"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (live_out, _) = live.stop();
    let (events_out, _) = events.stop();

    let escaped = r"\x1b[31m\x07\x0d\x0aEVIL";
    for (command, out) in [("live", &live_out), ("events", &events_out)] {
        for byte in [0x1b, 0x07, b'\r'] {
            assert!(
                !out.as_bytes().contains(&byte),
                "{command}: raw byte {byte:#04x} in the text output"
            );
        }
        assert!(
            !out.lines().any(|line| line.starts_with("EVIL")),
            "{command}: the name's LF forged a line"
        );
        assert!(
            out.contains(escaped),
            "{command}: the reader's name, escaped, is missing:\n{}",
            out.lines().take(40).collect::<Vec<_>>().join("\n")
        );
    }
}

/// The most address space a `report` of a hostile file may take: an over-allocation fails.
const ADDRESS_SPACE: u64 = 512 << 20;

/// Runs `tracer <args>` with its address space limited to [`ADDRESS_SPACE`].
fn tracer_limited(args: &[&std::ffi::OsStr]) -> std::process::Output {
    use std::os::unix::process::CommandExt as _;
    let mut command = std::process::Command::new(common::tracer_bin());
    command.args(args);
    // SAFETY: setrlimit is async-signal-safe; it runs in the child before exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().expect("run tracer")
}

/// `report` and `export` of `file` each end with one line `tracer: error: ...` naming
/// `expected` and exit status 1, within the address-space limit.
fn rejected(file: &std::path::Path, expected: &str) {
    let out_file = file.with_extension("jsonl");
    for args in [
        vec![std::ffi::OsStr::new("report"), file.as_os_str()],
        vec![
            "export".as_ref(),
            file.as_os_str(),
            "--format".as_ref(),
            "jsonl".as_ref(),
            "-o".as_ref(),
            out_file.as_os_str(),
        ],
    ] {
        let output = tracer_limited(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}; stderr:\n{stderr}",
            output.status
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, not:\n{stderr}");
        assert!(
            lines[0].starts_with("tracer: error: ") && lines[0].contains(expected),
            "{args:?}: {stderr}"
        );
    }
}

/// The magic and metadata chunk of a real recording.
fn recording_head(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("head.trc");
    let meta = tracer::recording::Metadata {
        kernel: "6.18".into(),
        cpus: 2,
        ..Default::default()
    };
    drop(tracer::recording::Writer::create(&path, &meta).unwrap());
    std::fs::read(&path).unwrap()
}

/// A chunk: kind, event count, declared decompressed size, then `body` with its CRC.
fn chunk(kind: u8, count: u32, raw_len: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&raw_len.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn chunk_counts_beyond_any_file_are_rejected_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let body = zstd::bulk::compress(&[0u8; 100], 3).unwrap();
    // 2^32 - 1 events in one chunk.
    let mut bytes = recording_head(dir.path());
    bytes.extend(chunk(b'E', u32::MAX, 100, &body));
    let path = dir.path().join("count32.trc");
    std::fs::write(&path, &bytes).unwrap();
    rejected(
        &path,
        "4294967295 events announced, a chunk holds at most 16384",
    );
    // 2^40 events over 256 chunks of 2^32 each (well, 2^32 - 1), and 2^40 bytes declared.
    let mut bytes = recording_head(dir.path());
    for _ in 0..256 {
        bytes.extend(chunk(b'E', u32::MAX, u32::MAX, &body));
    }
    let path = dir.path().join("count40.trc");
    std::fs::write(&path, &bytes).unwrap();
    rejected(&path, "events announced");
    // A plausible count with a size that cannot hold it.
    let mut bytes = recording_head(dir.path());
    bytes.extend(chunk(b'E', 16384, u32::MAX, &body));
    let path = dir.path().join("size.trc");
    std::fs::write(&path, &bytes).unwrap();
    rejected(&path, "16384 events cannot be encoded in 4294967295 bytes");
}

/// The magic and metadata chunk of a version 2 recording (zstd), as older tracers wrote.
fn recording_head_v2() -> Vec<u8> {
    let meta = serde_json::to_vec(&tracer::recording::Metadata::default()).unwrap();
    let mut bytes = b"TRACERv2".to_vec();
    bytes.extend(chunk(
        b'M',
        0,
        meta.len() as u32,
        &zstd::bulk::compress(&meta, 3).unwrap(),
    ));
    bytes
}

#[test]
fn zstd_bombs_decompress_no_further_than_declared() {
    let dir = tempfile::tempdir().unwrap();
    // 256 MiB of zeros in a few kilobytes, 64 times, declared as full event chunks of a
    // version 2 recording (zstd).
    let bomb = zstd::bulk::compress(&vec![0u8; 256 << 20], 19).unwrap();
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let mut bytes = recording_head_v2();
    for _ in 0..64 {
        bytes.extend(chunk(b'E', 16384, 16384 * 59, &bomb));
    }
    let path = dir.path().join("bomb.trc");
    std::fs::write(&path, &bytes).unwrap();
    rejected(&path, "zstd");
    // The same as a metadata chunk declared at most 16 MiB, and one declared 256 MiB.
    for declared in [16u32 << 20, 256 << 20] {
        let mut bytes = b"TRACERv2".to_vec();
        bytes.extend(chunk(b'M', 0, declared, &bomb));
        let path = dir.path().join("meta-bomb.trc");
        std::fs::write(&path, &bytes).unwrap();
        rejected(&path, "chunk at byte 8 is corrupt");
    }
}

#[test]
fn lz4_bombs_decompress_no_further_than_declared() {
    let dir = tempfile::tempdir().unwrap();
    // 64 MiB of zeros in a quarter MiB (LZ4 gains at most about 255 times), declared as
    // full event chunks and as metadata.
    let bomb = lz4_flex::block::compress(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 300 << 10, "{} bytes", bomb.len());
    let mut bytes = recording_head(dir.path());
    bytes.extend(chunk(b'E', 16384, 16384 * 40, &bomb));
    let path = dir.path().join("bomb.trc");
    std::fs::write(&path, &bytes).unwrap();
    rejected(&path, "lz4");
    for declared in [16u32 << 20, 256 << 20] {
        let mut bytes = b"TRACERv3".to_vec();
        bytes.extend(chunk(b'M', 0, declared, &bomb));
        let path = dir.path().join("meta-bomb.trc");
        std::fs::write(&path, &bytes).unwrap();
        rejected(&path, "chunk at byte 8 is corrupt");
    }
}

#[test]
fn endless_and_huge_files_that_are_no_recording_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    rejected(
        std::path::Path::new("/dev/zero"),
        "not a tracer recording (bad magic at byte 0)",
    );
    let huge = dir.path().join("huge.bin");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(1 << 30).unwrap(); // sparse: 1 GiB of zeros
    drop(file);
    rejected(&huge, "not a tracer recording");
    // A right magic then 1 GiB of zeros: the first chunk header is wrong, nothing more is read.
    let file = std::fs::OpenOptions::new().write(true).open(&huge).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"TRACERv3", 0).unwrap();
    drop(file);
    rejected(
        &huge,
        "chunk at byte 8 is corrupt: unexpected chunk type '\\0'",
    );
}

/// The NIC fixture's events `copies` times over, captures concatenated: a version 3
/// recording whose one event chunk is repeated (a few bytes per event on disk, as long to
/// replay as the events are many).
fn concatenated_captures(path: &std::path::Path, copies: usize) {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/nic-download/eth0-pip-download.trc"
    );
    let recording = tracer::recording::Recording::read(fixture.as_ref()).unwrap();
    assert!(recording.events.len() < tracer::recording::CHUNK_EVENTS);
    let mut writer = tracer::recording::Writer::create(path, &recording.meta).unwrap();
    for event in &recording.events {
        writer.push(event).unwrap();
    }
    writer.finish(vec![0, 0], 0).unwrap();
    // Magic, then chunks of a 17-byte header (the body's length at bytes 9..13) and a body:
    // metadata, events, trailer.
    let bytes = std::fs::read(path).unwrap();
    let mut chunks = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().unwrap()) as usize;
        chunks.push(&bytes[at..at + 17 + len]);
        at += 17 + len;
    }
    let [meta, events, trailer] = chunks[..] else {
        panic!("{} chunks", chunks.len());
    };
    let mut out = bytes[..8].to_vec();
    out.extend_from_slice(meta);
    for _ in 0..copies {
        out.extend_from_slice(events);
    }
    out.extend_from_slice(trailer);
    std::fs::write(path, out).unwrap();
}

/// SIGINT and SIGTERM stop `report` and `export` within a second with exit status 130 and a
/// one-line reason; export's partial output is a whole file.
#[test]
fn replays_stop_on_sigint_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.trc");
    concatenated_captures(&input, 3000);
    let output = dir.path().join("out.jsonl");
    let cases: [(&[&str], i32); 3] = [
        (&["report"], libc::SIGINT),
        (&["export", "--format", "jsonl", "-o"], libc::SIGINT),
        (&["report", "--list"], libc::SIGTERM),
    ];
    for (args, signal) in cases {
        let mut command = std::process::Command::new(common::tracer_bin());
        command.args(&args[..1]).arg(&input).args(&args[1..]);
        if args[0] == "export" {
            command.arg(&output);
        }
        let mut child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Well inside the replay: 12 M events take over a second even at 10 M events/s, and
        // a faster report must not finish before the signal.
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{args:?} ended before the signal: make the input bigger"
        );
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let sent = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                sent.elapsed() < Duration::from_millis(1500),
                "{args:?} still running after the signal"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
        assert_eq!(status.code(), Some(130), "{args:?}: {status}; {stderr}");
        assert!(
            stderr
                .lines()
                .last()
                .unwrap()
                .starts_with("tracer: error: interrupted: "),
            "{args:?}: {stderr}"
        );
        if args[0] == "export" {
            let text = std::fs::read_to_string(&output).unwrap();
            assert!(text.ends_with('\n'), "partial export ends in a whole line");
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line).expect("whole JSON lines");
            }
        }
    }
}

/// `report --list | head -1`: the closed pipe ends the report quietly, exit status 0.
#[test]
fn a_closed_stdout_is_a_normal_end() {
    let input = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/nic-download/eth0-pip-download.trc"
    );
    for args in [
        &["report", "--list", input][..],
        &["report", input],
        &["doctor"],
    ] {
        let mut child = std::process::Command::new(common::tracer_bin())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the first line
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            matches!(output.status.code(), Some(0..=2)),
            "{args:?}: {}; {stderr}",
            output.status
        );
    }
}

/// Usage mistakes that used to pass silently: exporting a recording onto itself, a
/// misspelt `--without`, a `--comm` longer than the kernel keeps.
#[test]
fn usage_mistakes_are_refused_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("a.trc");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/nic-download/eth0-pip-download.trc"
    );
    std::fs::copy(fixture, &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let link = dir.path().join("b.trc");
    std::fs::hard_link(&input, &link).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(common::tracer_bin())
            .args(args)
            .output()
            .unwrap()
    };
    for output in [input.clone(), dir.path().join("./a.trc"), link] {
        let out = run(&[
            "export".as_ref(),
            input.as_os_str(),
            "--format".as_ref(),
            "jsonl".as_ref(),
            "-o".as_ref(),
            output.as_os_str(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("is the recording being exported"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    assert_eq!(
        std::fs::read(&input).unwrap(),
        before,
        "the recording is intact"
    );

    for command in ["live", "record", "events", "doctor"] {
        let out = run(&[
            command.as_ref(),
            "--without".as_ref(),
            "sched_wakingg".as_ref(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        let first = stderr.lines().next().unwrap();
        assert!(
            first.contains("sched_wakingg")
                && first.contains("known: ")
                && first.contains("sched:sched_waking"),
            "{command}: {stderr}"
        );
    }
    for command in [&["live"][..], &["report", input.to_str().unwrap()]] {
        let mut args: Vec<&std::ffi::OsStr> = command.iter().map(|arg| arg.as_ref()).collect();
        args.extend(["--comm", "a-very-long-process-name"].map(std::ffi::OsStr::new));
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("at most 15 bytes") && stderr.contains("\"a-very-long-pro\""),
            "{command:?}: {stderr}"
        );
    }
}

/// Recordings are created 0600: task names, pids and the hostname are not for every user.
#[test]
fn recordings_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.trc");
    std::fs::write(&path, b"old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let meta = tracer::recording::Metadata::default();
    for _ in 0..2 {
        drop(tracer::recording::Writer::create(&path, &meta).unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        std::fs::remove_file(&path).unwrap();
    }
}

/// A write error while recording (here the file size limit, as a full disk would) stops
/// `record` at once with a summary and an error, and leaves a file `report` reads.
#[test]
fn record_stops_at_the_first_write_error_with_a_readable_file() {
    let Some(_serial) = kernel_test("record_stops_at_the_first_write_error_with_a_readable_file")
    else {
        return;
    };
    for live in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.trc");
        let path_text = path.to_str().unwrap();
        let args: Vec<&str> = if live {
            vec!["live", "--json", "--interval", "1h", "--record", path_text]
        } else {
            vec!["record", "--duration", "60s", "-o", path_text]
        };
        let (status, stderr) = run_until_the_file_is_full(&args);
        assert_eq!(status.code(), Some(1), "{status}; {stderr}");
        if live {
            assert!(
                stderr.contains("the recording stopped at a write error")
                    && stderr.contains("--- summary after"),
                "live --record ends with its summary: {stderr}"
            );
        } else {
            assert!(
                stderr.contains("recording stopped by a write error after"),
                "{stderr}"
            );
        }
        assert!(
            stderr
                .lines()
                .last()
                .unwrap()
                .starts_with("tracer: error: writing "),
            "{stderr}"
        );
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= 256 << 10, "{size}");
        let recording = tracer::recording::Recording::read(&path).expect("the file reads");
        assert!(
            !recording.events.is_empty(),
            "whole chunks before the error are kept"
        );
    }
}

/// Runs the tracer with a 256 KiB file size limit while loopback traffic fills its recording;
/// returns how it ended and its stderr.
fn run_until_the_file_is_full(args: &[&str]) -> (std::process::ExitStatus, String) {
    use std::os::unix::process::CommandExt as _;
    let mut command = std::process::Command::new(common::tracer_bin());
    command.args(args);
    // SAFETY: setrlimit and signal are async-signal-safe; they run in the child before exec.
    unsafe {
        command.pre_exec(|| {
            // Beyond 256 KiB a write fails with EFBIG (SIGXFSZ ignored, as exec keeps it).
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 256 << 10,
                rlim_max: 256 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = socket.local_addr().unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still running long after its file reached the limit: {args:?}"
        );
        for _ in 0..200 {
            let _ = sender.send_to(&[7u8; 512], target);
        }
        let mut buf = [0u8; 1024];
        socket.set_nonblocking(true).unwrap();
        while socket.recv(&mut buf).is_ok() {}
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    (status, stderr)
}

/// Whether tracefs is mounted at /sys/kernel/tracing (per /proc/self/mounts).
fn tracefs_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|line| line.split_whitespace().nth(1) == Some("/sys/kernel/tracing"))
}

/// tracefs mounted with mount(2) (a PATH without `mount` cannot be abused), unmounted at exit
/// when we mounted it, and said so by doctor.
#[test]
fn tracefs_is_mounted_with_the_syscall_and_unmounted_at_exit() {
    let Some(_serial) = kernel_test("tracefs_is_mounted_with_the_syscall_and_unmounted_at_exit")
    else {
        return;
    };
    let target = std::ffi::CString::new("/sys/kernel/tracing").unwrap();
    let remount = || {
        if !tracefs_mounted() {
            let (source, kind) = (
                std::ffi::CString::new("nodev").unwrap(),
                std::ffi::CString::new("tracefs").unwrap(),
            );
            // SAFETY: valid NUL-terminated strings, no data.
            let rc = unsafe {
                libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    kind.as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            assert_eq!(rc, 0, "remount tracefs");
        }
    };
    // SAFETY: a valid path; detaching lets other readers finish.
    while tracefs_mounted() && unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {}
    let out = std::process::Command::new(common::tracer_bin())
        .args(["doctor", "--json"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let still_mounted = tracefs_mounted();
    remount();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["check"] == "tracefs")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "ok", "{report}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("mounted by tracer with mount(2)"),
        "{check}"
    );
    assert!(!still_mounted, "what tracer mounted is unmounted at exit");
}
