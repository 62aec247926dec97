//! Kernel tests of recordings: live and report agree on one capture, a recorder killed with
//! SIGKILL leaves a readable file, and exports decode with Perfetto's own protos.

mod common;

use std::{net::UdpSocket, process::Command, time::Duration};

use common::{RunningTracer, json_events, kernel_test, tracer_bin};
use serde_json::Value;

/// A reader thread blocked in recv() gets `count` datagrams of 100 + seq bytes, 10 ms apart.
fn udp_exchange(count: u32) {
    let reader = UdpSocket::bind("127.0.0.1:0").unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = reader.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        (0..count)
            .map(|_| reader.recv(&mut buf).unwrap())
            .collect::<Vec<_>>()
    });
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..count {
        std::thread::sleep(Duration::from_millis(10));
        sender
            .send_to(&vec![7u8; 100 + seq as usize], ("127.0.0.1", port))
            .unwrap();
    }
    let sizes = handle.join().unwrap();
    assert_eq!(
        sizes,
        (0..count).map(|seq| 100 + seq as usize).collect::<Vec<_>>()
    );
}

fn report(args: &[&str]) -> (String, String) {
    let out = Command::new(tracer_bin())
        .arg("report")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "report {args:?} failed: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

fn ours(journeys: &[Value]) -> Vec<&Value> {
    let me = std::process::id();
    journeys
        .iter()
        .filter(|journey| journey["pid"] == me)
        .collect()
}

#[test]
fn live_and_report_give_identical_journeys_for_one_capture() {
    let Some(_serial) = kernel_test("live_and_report_give_identical_journeys_for_one_capture")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture.trc");
    let file_arg = file.to_str().unwrap();
    let tracer = RunningTracer::start(
        &["live", "--json", "--interval", "0", "--record", file_arg],
        dir.path(),
    );
    udp_exchange(30);
    std::thread::sleep(Duration::from_millis(100));
    let (live, _) = tracer.stop();
    let (offline, stderr) = report(&[file_arg, "--json"]);
    assert!(!stderr.contains("warn"), "{stderr}");
    let live_journeys = json_events(&live);
    let ours_live = ours(&live_journeys);
    assert_eq!(ours_live.len(), 30, "one journey per datagram");
    assert!(ours_live.iter().all(|journey| journey["complete"] == true));
    assert_eq!(
        live, offline,
        "live --json and report --json differ over the same capture"
    );
}

#[test]
fn a_killed_recorder_leaves_a_readable_prefix() {
    let Some(_serial) = kernel_test("a_killed_recorder_leaves_a_readable_prefix") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("killed.trc");
    let file_arg = file.to_str().unwrap();
    let mut tracer = RunningTracer::start(&["record", "-o", file_arg], dir.path());
    udp_exchange(20);
    // Chunks reach the file every second; wait for one more, then kill without warning.
    std::thread::sleep(Duration::from_millis(1500));
    tracer.kill();
    let (stdout, stderr) = report(&[file_arg, "--json"]);
    assert!(
        stderr.contains("no trailer: the recorder did not finish"),
        "{stderr}"
    );
    let journeys = json_events(&stdout);
    assert_eq!(
        ours(&journeys).len(),
        20,
        "every datagram before the last flush is there"
    );

    // A file cut in the middle of a chunk still reports the chunks before the cut.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.trc");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let out = Command::new(tracer_bin())
        .args(["report", cut.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ends inside the chunk at byte"));
}

#[test]
fn bad_recordings_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.trc");
    for (content, expected) in [
        (
            &b"hello world, not a trace"[..],
            "not a tracer recording (bad magic at byte 0)",
        ),
        (
            &b"TRACERv9........"[..],
            "recording format version 9 is not supported",
        ),
    ] {
        std::fs::write(&path, content).unwrap();
        let out = Command::new(tracer_bin())
            .args(["report", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let out = Command::new(tracer_bin())
        .args(["report", "/nonexistent/x.trc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.trc: No such file"));
}

/// One HTTP GET of the metrics endpoint, parsed by a Prometheus text-format parser.
fn scrape(addr: &str) -> prometheus_parse::Scrape {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    let lines = body.lines().map(|line| Ok(line.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("a valid exposition")
}

#[test]
fn metrics_endpoint_histograms_match_the_journeys() {
    let Some(_serial) = kernel_test("metrics_endpoint_histograms_match_the_journeys") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let me = std::process::id().to_string();
    let tracer = RunningTracer::start(
        &[
            "live",
            "--json",
            "--interval",
            "0",
            "--pid",
            &me,
            "--metrics",
            &addr,
        ],
        dir.path(),
    );
    udp_exchange(25);
    std::thread::sleep(Duration::from_millis(500));
    let before_scrape = common::monotonic_ns();
    let scraped = scrape(&addr);
    let (stdout, _) = tracer.stop();
    // The scrape's own TCP response is read by this process too: compare what came before it.
    let journeys: Vec<Value> = json_events(&stdout)
        .into_iter()
        .filter(|journey| {
            journey["ts"]["recv_return"]
                .as_u64()
                .is_some_and(|ts| ts < before_scrape)
        })
        .collect();
    assert_eq!(ours(&journeys).len(), 25);
    let count_of = |stage: &str| -> f64 {
        scraped
            .samples
            .iter()
            .filter(|sample| {
                sample.metric == "tracer_stage_seconds" && sample.labels.get("stage") == Some(stage)
            })
            .map(|sample| match &sample.value {
                prometheus_parse::Value::Histogram(buckets) => buckets
                    .iter()
                    .map(|bucket| bucket.count)
                    .fold(0.0, f64::max),
                other => panic!("stage_seconds is not a histogram: {other:?}"),
            })
            .sum()
    };
    for stage in ["total", "stack", "wakeup", "runqueue"] {
        let expected = journeys
            .iter()
            .filter(|journey| journey["stages_ns"][stage].is_u64())
            .count() as f64;
        assert_eq!(
            count_of(stage),
            expected,
            "histogram count of {stage} vs the JSON journeys"
        );
    }
    let complete = scraped
        .samples
        .iter()
        .find(|sample| {
            sample.metric == "tracer_journeys_total"
                && sample.labels.get("complete") == Some("true")
        })
        .map(|sample| match sample.value {
            prometheus_parse::Value::Counter(value) | prometheus_parse::Value::Untyped(value) => {
                value
            }
            ref other => panic!("{other:?}"),
        })
        .expect("journeys counter");
    let json_complete = journeys
        .iter()
        .filter(|journey| journey["complete"] == true)
        .count() as f64;
    assert_eq!(complete, json_complete);
}
