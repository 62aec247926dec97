//! Kernel test of `tracer report` over several recordings: two runs of `tracer record
//! --host` stand for two hosts, each with the test's own loopback datagrams; the merged
//! report's totals are the sum of each alone, its section per host is each file's own
//! report, `--json` names each journey's host, a pattern names the same files, and a bad
//! file in the set is one error line naming it.

mod common;

use std::{
    net::UdpSocket,
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use common::{RunningTracer, json_events, kernel_test, tracer_bin};

/// Records `count` datagrams read by a reader of this process, as `host`, into `file`
/// (the kernel filter keeps only the reader's port). Returns the port and the datagrams read.
fn record_host(dir: &Path, file: &Path, host: &str, count: usize) -> (u16, usize) {
    let reader = UdpSocket::bind("127.0.0.1:0").unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = reader.local_addr().unwrap().port();
    let filter = format!("udp and port {port}");
    let args = [
        "record",
        "-o",
        file.to_str().unwrap(),
        "--host",
        host,
        &filter,
    ];
    let tracer = RunningTracer::start(&args, dir);
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        (0..count).filter(|_| reader.recv(&mut buf).is_ok()).count()
    });
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..count {
        std::thread::sleep(Duration::from_millis(5));
        sender
            .send_to(&vec![1u8; 64 + seq], ("127.0.0.1", port))
            .unwrap();
    }
    let read = handle.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    tracer.stop();
    (port, read)
}

fn run(args: &[&str]) -> Output {
    Command::new(tracer_bin())
        .arg("report")
        .args(args)
        .output()
        .unwrap()
}

/// `tracer report ARGS`, which must succeed: (stdout, stderr).
fn report(args: &[&str]) -> (String, String) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "report {args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// The totals of a text report: journeys, complete, and the stage table's lines (stage,
/// count, p50, p90, p99, max as printed) after the `== N journeys, M complete ==` line.
fn totals(text: &str) -> (u64, u64, Vec<String>) {
    let mut lines = text.lines();
    let head = lines
        .find(|line| line.starts_with("== ") && line.contains(" journeys, "))
        .unwrap_or_else(|| panic!("no totals in:\n{text}"));
    let words: Vec<&str> = head.split_whitespace().collect();
    let (journeys, complete) = (words[1].parse().unwrap(), words[3].parse().unwrap());
    let table: Vec<String> = lines.take(9).map(str::to_owned).collect();
    assert!(table[0].starts_with("stage "), "{text}");
    (journeys, complete, table)
}

/// A stage table's counts, by stage.
fn counts(table: &[String]) -> Vec<(String, u64)> {
    table[1..]
        .iter()
        .map(|line| {
            let mut words = line.split_whitespace();
            let stage = words.next().unwrap().to_owned();
            (stage, words.next().unwrap().parse().unwrap())
        })
        .collect()
}

/// The section of `host` in a merged report: its heading line and its stage table.
fn host_section(text: &str, host: &str) -> (String, Vec<String>) {
    let mut lines = text
        .lines()
        .skip_while(|line| !line.starts_with("== by host"));
    let head = lines
        .find(|line| line.starts_with(&format!("  {host}: ")))
        .unwrap_or_else(|| panic!("no section of {host} in:\n{text}"));
    let table = lines
        .take(9)
        .map(|line| line.strip_prefix("    ").expect("indented").to_owned())
        .collect();
    (head.trim().to_owned(), table)
}

#[test]
fn report_merges_recordings_of_two_hosts() {
    let Some(_serial) = kernel_test("report_merges_recordings_of_two_hosts") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.trc"), dir.path().join("b.trc"));
    let (port_a, read_a) = record_host(dir.path(), &a, "host-a", 40);
    let (_, read_b) = record_host(dir.path(), &b, "host-b", 25);
    assert_eq!((read_a, read_b), (40, 25), "every datagram was read");
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    // Each alone: one journey per datagram read, all complete (loopback, our reader).
    let (text_a, _) = report(&[a]);
    let (text_b, _) = report(&[b]);
    let (journeys_a, complete_a, table_a) = totals(&text_a);
    let (journeys_b, complete_b, table_b) = totals(&text_b);
    assert_eq!((journeys_a, complete_a), (40, 40), "{text_a}");
    assert_eq!((journeys_b, complete_b), (25, 25), "{text_b}");
    assert!(text_a.contains("host host-a,"), "{text_a}");

    // Together: the sums, and each host's section is its own report's table.
    let (merged, _) = report(&[a, b]);
    let (journeys, complete, table) = totals(&merged);
    assert_eq!((journeys, complete), (65, 65), "{merged}");
    let sums: Vec<(String, u64)> = counts(&table_a)
        .into_iter()
        .zip(counts(&table_b))
        .map(|((stage, x), (_, y))| (stage, x + y))
        .collect();
    assert_eq!(counts(&table), sums, "{merged}");
    assert!(
        merged.starts_with("recordings: 2 files from 2 hosts,"),
        "{merged}"
    );
    for (host, own, n) in [("host-a", &table_a, 40), ("host-b", &table_b, 25)] {
        let (head, section) = host_section(&merged, host);
        assert_eq!(
            head,
            format!("{host}: {n} journeys, {n} complete, 0 incomplete")
        );
        assert_eq!(&section, own, "{host}'s section is its own report's table");
    }
    assert!(
        merged.contains("host-a: lo "),
        "breakdowns name the host:\n{merged}"
    );

    // JSON: the lines of each alone, in order, each with its host and file.
    let (json_a, _) = report(&[a, "--json"]);
    let (json_b, _) = report(&[b, "--json"]);
    let (json, stderr) = report(&[a, b, "--json"]);
    let lines: Vec<&str> = json.lines().collect();
    let alone: Vec<&str> = json_a.lines().chain(json_b.lines()).collect();
    assert_eq!(lines.len(), alone.len());
    for (at, (line, alone)) in lines.iter().zip(&alone).enumerate() {
        let first = at < json_a.lines().count();
        let (host, file) = if first { ("host-a", a) } else { ("host-b", b) };
        let suffix = format!(
            ",\"host\":{},\"recording\":{}}}",
            serde_json::to_string(host).unwrap(),
            serde_json::to_string(file).unwrap()
        );
        let stripped = line
            .strip_suffix(&suffix)
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(format!("{stripped}}}"), *alone);
    }
    let journeys = json_events(&json);
    assert_eq!(
        journeys.iter().filter(|j| j["host"] == "host-a").count(),
        read_a
    );
    assert_eq!(
        journeys
            .iter()
            .filter(|j| j["host"] == "host-b" && j["pid"] == std::process::id())
            .count(),
        read_b
    );
    assert!(stderr.contains("=== 2 recordings together ==="), "{stderr}");
    assert_eq!(host_section(&stderr, "host-a").1, table_a, "{stderr}");
    assert_eq!(totals(&stderr).0, 65, "{stderr}");

    // A pattern names the same files; a filter after the files selects in each.
    let pattern = format!("{}/*.trc", dir.path().display());
    assert_eq!(report(&[&pattern]).0, merged);
    let filter = format!("port {port_a}");
    let (filtered, _) = report(&[&pattern, "udp", "and", &filter]);
    assert_eq!(totals(&filtered).0, 40, "{filtered}");
    assert_eq!(
        host_section(&filtered, "host-b").0,
        "host-b: 0 journeys, 0 complete, 0 incomplete"
    );
    // A file named twice is read once: one recording's report.
    assert_eq!(report(&[a, a]).0, text_a);
    // Two files of one host are told apart by file.
    let copy = dir.path().join("copy.trc");
    std::fs::copy(a, &copy).unwrap();
    let copy = copy.to_str().unwrap();
    let (same_host, _) = report(&[a, copy]);
    assert_eq!(totals(&same_host).0, 80);
    assert_eq!(
        host_section(&same_host, &format!("host-a ({copy})")).1,
        table_a
    );

    // A bad file in the set: one line naming it, exit status 1, nothing on stdout.
    let bad = dir.path().join("bad.trc");
    std::fs::write(&bad, b"hello world, not a trace").unwrap();
    let missing = dir.path().join("missing.trc");
    let nothing = format!("{}/*.pcap", dir.path().display());
    for (file, expected) in [
        (bad.to_str().unwrap(), "not a tracer recording"),
        (missing.to_str().unwrap(), "No such file or directory"),
        (&nothing, "no file matches this pattern"),
    ] {
        let out = run(&[a, file, b]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(file) && stderr.contains(expected),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    // A file cut short (a recorder still writing): its whole chunks, with a warning.
    let bytes = std::fs::read(b).unwrap();
    let cut = dir.path().join("cut.trc");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let (_, stderr) = report(&[a, cut.to_str().unwrap()]);
    assert!(stderr.contains("cut.trc: no trailer"), "{stderr}");
}
