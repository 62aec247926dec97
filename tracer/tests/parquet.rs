//! Kernel test of `export --format parquet`: real loopback traffic (UDP and TCP on the test's
//! own sockets) recorded by the real tracer, exported to Parquet and queried with DuckDB
//! (PyPI `duckdb`, installed by `cargo xtask setup`): row count, per-stage p50/p99 and
//! per-flow counts equal those of `tracer report --json` over the same recording; `--events`
//! writes every recorded event.

mod common;

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream, UdpSocket},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::{RunningTracer, json_events, kernel_test, tracer_bin};
use serde_json::{Value, json};

const STAGES: [&str; 8] = [
    "irq",
    "softirq_wait",
    "poll",
    "stack",
    "wakeup",
    "runqueue",
    "syscall",
    "total",
];

/// `count` datagrams of 100 bytes to a reader thread blocked in recv(), 2 ms apart.
fn udp_flow(count: usize) {
    let reader = UdpSocket::bind("127.0.0.1:0").unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = reader.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..count {
            reader.recv(&mut buf).unwrap();
        }
    });
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..count {
        std::thread::sleep(Duration::from_millis(2));
        sender.send_to(&[7u8; 100], ("127.0.0.1", port)).unwrap();
    }
    handle.join().unwrap();
}

/// `count` messages of 300 bytes over a TCP connection, each read whole before the next.
fn tcp_flow(count: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.set_nodelay(true).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 300];
    for _ in 0..count {
        std::thread::sleep(Duration::from_millis(2));
        client.write_all(&[b't'; 300]).unwrap();
        server.read_exact(&mut buf).unwrap();
    }
}

/// `tracer <args>`: (stdout, stderr, seconds it took).
fn tracer(args: &[&str]) -> (String, String, f64) {
    let start = Instant::now();
    let out = Command::new(tracer_bin()).args(args).output().unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tracer {args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr, seconds)
}

/// The value at rank ceil(n * percent / 100) (at least 1) of the sorted values: what DuckDB's
/// `quantile_disc` returns, in integers so no rounding differs.
fn quantile_disc(sorted: &[u64], percent: usize) -> Option<u64> {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn key(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The flow key the query script writes: proto|saddr|sport|daddr|dport.
fn flow(journey: &Value) -> String {
    ["proto", "saddr", "sport", "daddr", "dport"]
        .map(|field| key(&journey[field]))
        .join("|")
}

/// What DuckDB should find, computed from `report --json`'s journeys.
fn expected(journeys: &[Value]) -> Value {
    let mut stages = serde_json::Map::new();
    for stage in STAGES {
        let mut values: Vec<u64> = journeys
            .iter()
            .filter_map(|journey| journey["stages_ns"][stage].as_u64())
            .collect();
        values.sort_unstable();
        stages.insert(
            stage.to_owned(),
            json!({
                "count": values.len(),
                "p50": quantile_disc(&values, 50),
                "p99": quantile_disc(&values, 99),
            }),
        );
    }
    let mut flows: BTreeMap<String, u64> = BTreeMap::new();
    for journey in journeys {
        *flows.entry(flow(journey)).or_default() += 1;
    }
    json!({ "rows": journeys.len(), "stages": stages, "flows": flows })
}

#[test]
fn duckdb_over_the_parquet_export_gives_the_reports_counts_and_quantiles() {
    let Some(_serial) =
        kernel_test("duckdb_over_the_parquet_export_gives_the_reports_counts_and_quantiles")
    else {
        return;
    };
    let probe = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .expect("python3 runs");
    if !probe.status.success() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have the Python package duckdb (cargo xtask setup): {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        eprintln!(
            "\n!!! SKIPPING the DuckDB check: python package `duckdb` missing (run `cargo xtask setup`) !!!\n"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trc = dir.path().join("capture.trc");
    let trc_arg = trc.to_str().unwrap();
    let recorder = RunningTracer::start(&["record", "-o", trc_arg], dir.path());
    udp_flow(40);
    udp_flow(15);
    tcp_flow(25);
    std::thread::sleep(Duration::from_millis(300));
    recorder.stop();

    let (stdout, stderr, _) = tracer(&["report", trc_arg, "--json"]);
    let journeys = json_events(&stdout);
    let me = std::process::id();
    let ours = |proto: &str| {
        journeys
            .iter()
            .filter(|journey| journey["pid"] == me && journey["proto"] == proto)
            .count()
    };
    assert_eq!(ours("udp"), 55, "one journey per datagram: {stderr}");
    assert!(ours("tcp") >= 25, "a journey per TCP segment: {stderr}");

    let mut sizes = Vec::new();
    let events = dir.path().join("events.parquet");
    let events_arg = events.to_str().unwrap();
    let mut events_written = 0;
    for format in ["parquet", "csv", "jsonl"] {
        let out = dir.path().join(format!("journeys.{format}"));
        let mut args = vec!["export", trc_arg, "--format", format];
        args.extend(["-o", out.to_str().unwrap()]);
        if format == "parquet" {
            args.extend(["--events", events_arg]);
        }
        let (_, stderr, seconds) = tracer(&args);
        if format == "parquet" {
            events_written = stderr
                .lines()
                .find_map(|line| {
                    let (rows, _) = line
                        .strip_prefix("tracer: ")?
                        .split_once(" events written to ")?;
                    rows.parse::<u64>().ok()
                })
                .unwrap_or_else(|| panic!("no events line: {stderr}"));
        }
        let bytes = std::fs::metadata(&out).unwrap().len();
        sizes.push(format!("{format} {bytes} bytes in {seconds:.2}s"));
    }
    eprintln!(
        "{} journeys from {} bytes of recording: {}",
        journeys.len(),
        std::fs::metadata(&trc).unwrap().len(),
        sizes.join(", ")
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parquet_query.py");
    let parquet = dir.path().join("journeys.parquet");
    let query = Command::new("python3")
        .arg(script)
        .arg(&parquet)
        .arg(&events)
        .output()
        .expect("python3 runs");
    assert!(
        query.status.success(),
        "DuckDB query failed: {}",
        String::from_utf8_lossy(&query.stderr)
    );
    let found: Value = serde_json::from_slice(&query.stdout).unwrap();
    let want = expected(&journeys);
    assert_eq!(found["rows"], want["rows"], "row count");
    assert_eq!(found["stages"], want["stages"], "per-stage count, p50, p99");
    assert_eq!(found["flows"], want["flows"], "journeys per flow");
    // The stage counts are also the report's summary table's (its quantiles are histogram
    // bounds, not exact values, so only the counts compare).
    for stage in STAGES {
        let line = stderr
            .lines()
            .find(|line| line.split_whitespace().next() == Some(stage))
            .unwrap_or_else(|| panic!("no {stage} row in the summary:\n{stderr}"));
        let count: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert_eq!(found["stages"][stage]["count"], count, "{line}");
    }

    let types = &found["types"];
    assert_eq!(types["ts_recv_return"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(types["mono_recv_return"], "UBIGINT");
    assert_eq!(types["runqueue_ns"], "BIGINT");
    assert_eq!(types["complete"], "BOOLEAN");
    assert_eq!(types["proto"], "VARCHAR");
    assert_eq!(
        found["stamps_off"], 0,
        "wall time = monotonic + realtime offset"
    );
    // One host, one kernel, one capture, schema 1, never null.
    assert_eq!(found["files"], json!([1, 1, 1, 1, 0]));
    // --events: every recorded event, one row each, of the same capture.
    assert!(events_written > 0);
    assert_eq!(found["events"], json!([events_written, 1]));
}
