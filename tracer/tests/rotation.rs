//! Kernel tests of `tracer record --rotate`: a bounded ring of files, each a complete
//! recording that `tracer report` reads alone, the oldest removed, every file within the
//! size bound (closed by the first event chunk that reaches it: at most the bound plus that
//! chunk plus the trailer).

mod common;

use std::{
    net::UdpSocket,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{RunningTracer, kernel_test, tracer_bin};

/// The chunks of a version 3 recording (docs/FORMAT.md): (offset, kind, stored length,
/// event count).
fn chunks(path: &Path) -> Vec<(usize, u8, usize, u32)> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"TRACERv3", "{}", path.display());
    let mut offset = 8;
    let mut found = Vec::new();
    while offset < bytes.len() {
        let header = &bytes[offset..offset + 17];
        let stored = u32::from_le_bytes(header[9..13].try_into().unwrap()) as usize;
        let count = u32::from_le_bytes(header[1..5].try_into().unwrap());
        found.push((offset, header[0], 17 + stored, count));
        offset += 17 + stored;
    }
    assert_eq!(offset, bytes.len(), "{}: no torn chunk", path.display());
    found
}

/// The ring's files of `stem` in `dir`, by sequence number.
fn ring_files(dir: &Path, stem: &str) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let seq = name
                .strip_prefix(&format!("{stem}."))?
                .strip_suffix(".trc")?
                .parse()
                .ok()?;
            Some((seq, entry.path()))
        })
        .collect();
    files.sort();
    files
}

/// `tracer report FILE --json`: the number of journeys, with exit status 0.
fn report_alone(path: &Path) -> usize {
    let out = Command::new(tracer_bin())
        .args(["report", "--json"])
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", path.display());
    assert!(
        stderr.contains("journeys shown"),
        "{}: {stderr}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Loopback datagrams to a reader on `port`, until `done` says enough.
fn traffic_until(reader: UdpSocket, mut done: impl FnMut() -> bool) -> u64 {
    let port = reader.local_addr().unwrap().port();
    reader
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_reader = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop_reader.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = reader.recv(&mut buf);
        }
    });
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() && Instant::now() < deadline {
        for _ in 0..20 {
            sender.send_to(&[7u8; 200], ("127.0.0.1", port)).unwrap();
            sent += 1;
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.join().unwrap();
    sent
}

#[test]
fn size_rotation_keeps_a_bounded_ring_of_complete_recordings() {
    let Some(_serial) = kernel_test("size_rotation_keeps_a_bounded_ring_of_complete_recordings")
    else {
        return;
    };
    const BOUND: usize = 24 << 10;
    const KEEP: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let reader = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = reader.local_addr().unwrap().port().to_string();
    let output = dir.path().join("ring.trc");
    let tracer = RunningTracer::start(
        &[
            "record",
            "-o",
            output.to_str().unwrap(),
            "--rotate",
            "24K",
            "--keep",
            "3",
            "--port",
            &port,
        ],
        dir.path(),
    );
    // Until the ring has gone round: file KEEP + 2 exists, so at least two were removed.
    let mut most = 0;
    let sent = traffic_until(reader, || {
        let files = ring_files(dir.path(), "ring");
        assert!(files.len() <= KEEP, "more than --keep files: {files:?}");
        most = most.max(files.len());
        files.last().is_some_and(|(seq, _)| *seq >= KEEP as u64 + 2)
    });
    let (_, stderr) = tracer.stop();
    let files = ring_files(dir.path(), "ring");
    eprintln!("sent {sent} datagrams; files {files:?}; {stderr:?}");
    assert_eq!(files.len(), KEEP, "{files:?}");
    let newest = files.last().unwrap().0;
    assert!(newest >= KEEP as u64 + 2, "{files:?}");
    let expected: Vec<u64> = (newest + 1 - KEEP as u64..=newest).collect();
    assert_eq!(
        files.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        expected,
        "the oldest are the ones removed"
    );
    let mut journeys = 0;
    for (seq, path) in &files {
        let found = chunks(path);
        let size = std::fs::metadata(path).unwrap().len() as usize;
        assert_eq!(found.first().map(|chunk| chunk.1), Some(b'M'), "{seq}");
        assert_eq!(found.last().map(|chunk| chunk.1), Some(b'C'), "{seq}");
        let last_events = found
            .iter()
            .rev()
            .find(|chunk| chunk.1 == b'E')
            .unwrap_or_else(|| panic!("file {seq} holds no events chunk"));
        // The rule: a file is closed by the first event chunk that brings it to the bound,
        // so the last event chunk begins below the bound and only the trailer follows it.
        assert!(
            last_events.0 < BOUND,
            "file {seq}: its last chunk starts at {} >= {BOUND}",
            last_events.0
        );
        // Under a 24 KiB bound a chunk holds at most 1024 events (a 32nd of the bound in
        // events, at least 1024): the overshoot stays small.
        assert!(
            found.iter().all(|chunk| chunk.3 <= 1024),
            "file {seq}: {found:?}"
        );
        let trailer = found.last().unwrap();
        assert_eq!(last_events.0 + last_events.2, trailer.0, "file {seq}");
        assert!(
            size <= BOUND + last_events.2 + trailer.2,
            "file {seq}: {size} bytes"
        );
        // Every file but the newest (closed by Ctrl-C) reached the bound.
        if *seq != newest {
            assert!(size - trailer.2 >= BOUND, "file {seq} closed early: {size}");
        }
        journeys += report_alone(path);
        eprintln!(
            "file {seq}: {size} bytes, {} chunks, last event chunk {} bytes at {}",
            found.len(),
            last_events.2,
            last_events.0
        );
    }
    assert!(journeys > 0, "the ring's files hold journeys");
    assert!(
        journeys as u64 <= sent,
        "{journeys} journeys of {sent} sent"
    );
}

#[test]
fn time_rotation_keeps_a_bounded_ring_of_complete_recordings() {
    let Some(_serial) = kernel_test("time_rotation_keeps_a_bounded_ring_of_complete_recordings")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let reader = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = reader.local_addr().unwrap().port().to_string();
    let output = dir.path().join("ring.trc");
    let tracer = RunningTracer::start(
        &[
            "record",
            "-o",
            output.to_str().unwrap(),
            "--rotate",
            "1s",
            "--keep",
            "2",
            "--port",
            &port,
        ],
        dir.path(),
    );
    traffic_until(reader, || {
        let files = ring_files(dir.path(), "ring");
        assert!(files.len() <= 2, "more than --keep files: {files:?}");
        files.last().is_some_and(|(seq, _)| *seq >= 4)
    });
    let (_, stderr) = tracer.stop();
    let files = ring_files(dir.path(), "ring");
    assert_eq!(files.len(), 2, "{files:?} {stderr:?}");
    for (_, path) in &files {
        report_alone(path);
    }
}

#[test]
fn live_record_keeps_a_ring_by_age_under_the_given_host_name() {
    let Some(_serial) = kernel_test("live_record_keeps_a_ring_by_age_under_the_given_host_name")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let reader = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = reader.local_addr().unwrap().port().to_string();
    let output = dir.path().join("live.trc");
    let tracer = RunningTracer::start(
        &[
            "live",
            "--quiet",
            "--record",
            output.to_str().unwrap(),
            "--rotate",
            "1s",
            "--keep",
            "2",
            "--host",
            "lab-b",
            "--port",
            &port,
        ],
        dir.path(),
    );
    let sent = traffic_until(reader, || {
        let files = ring_files(dir.path(), "live");
        assert!(files.len() <= 2, "more than --keep files: {files:?}");
        files.last().is_some_and(|(seq, _)| *seq >= 4)
    });
    let (_, stderr) = tracer.stop();
    let files = ring_files(dir.path(), "live");
    assert_eq!(files.len(), 2, "{files:?} {stderr:?}");
    assert!(files[0].0 >= 3, "the oldest files were removed: {files:?}");
    let mut journeys = 0;
    for (_, path) in &files {
        journeys += report_alone(path);
        let out = Command::new(tracer_bin())
            .arg("report")
            .arg(path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains(", host lab-b,"),
            "{}: the recording names the host given: {text}",
            path.display()
        );
    }
    assert!(
        journeys > 0 && journeys as u64 <= sent,
        "the last two files hold some of the {sent} datagrams sent, not more: {journeys}"
    );
}
