//! Exports of the real-NIC fixture, checked by decoding: Perfetto with Perfetto's own
//! protos (Python package `perfetto`, installed by `cargo xtask setup`), CSV and JSON lines
//! against the journeys of `tracer report --json`.

use std::{path::Path, process::Command};

use serde_json::Value;

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nic-download/eth0-pip-download.trc")
        .display()
        .to_string()
}

fn tracer(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tracer"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tracer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn journeys() -> Vec<Value> {
    tracer(&["report", &fixture(), "--json"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn perfetto_export_decodes_with_perfettos_protos_and_draws_every_journey_as_a_flow() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace.pftrace");
    tracer(&[
        "export",
        &fixture(),
        "--format",
        "perfetto",
        "-o",
        out.to_str().unwrap(),
    ]);
    let check = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/perfetto_check.py"))
        .arg(&out)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&check.stderr);
    if stderr.contains("No module named 'perfetto'") && std::env::var("CI").is_err() {
        eprintln!(
            "\n!!! SKIPPING the Perfetto check: python package `perfetto` missing (run `cargo xtask setup`) !!!\n"
        );
        return;
    }
    assert!(
        check.status.success(),
        "Perfetto's protos rejected the trace: {stderr}"
    );
    let summary: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(
        summary["slice_begins"]["irq"].as_u64().unwrap() >= 20,
        "{summary}"
    );
    assert!(
        summary["slice_begins"]["NET_RX"].as_u64().unwrap() >= 20,
        "{summary}"
    );
    assert!(
        summary["slice_begins"]["pip"].as_u64().unwrap() >= 10,
        "reader running slices: {summary}"
    );
    let begins: u64 = summary["slice_begins"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(
        summary["slice_ends"].as_u64().unwrap(),
        begins,
        "every slice is closed"
    );

    let journeys = journeys();
    let flows = summary["flows"].as_object().unwrap();
    assert_eq!(flows.len(), journeys.len(), "one flow per journey");
    // The journey's record rides on its last instant as args (the field table).
    for journey in &journeys {
        let args = &summary["args"][journey["id"].to_string()];
        assert_eq!(args["id"], journey["id"], "{args}");
        assert_eq!(args["dev"], journey["dev"], "{args}");
        assert_eq!(args["complete"], journey["complete"], "{args}");
        if let Some(total) = journey["stages_ns"]["total"].as_u64() {
            assert_eq!(args["stages_ns.total"].as_u64(), Some(total), "{args}");
        }
        if let Some(pid) = journey["pid"].as_u64() {
            assert_eq!(args["pid"].as_u64(), Some(pid), "{args}");
        }
    }
    for journey in &journeys {
        let flow = &flows[&journey["id"].to_string()];
        let stamps = journey["ts"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, ts)| *name != "wakeup" && *name != "irq_exit" && ts.is_u64())
            .count() as u64;
        assert_eq!(
            flow[0].as_u64().unwrap() + 1,
            stamps,
            "journey {} passes its stamps: {flow}",
            journey["id"]
        );
        assert_eq!(flow[1], 1, "and terminates once");
    }
    // Packets read by pip cross from the softirq CPU track to the reader's task track.
    assert!(
        summary["flows_across_tracks"].as_u64().unwrap() >= 20,
        "{summary}"
    );
}

#[test]
fn csv_and_jsonl_exports_hold_the_report_journeys() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("j.csv");
    let jsonl = dir.path().join("j.jsonl");
    tracer(&[
        "export",
        &fixture(),
        "--format",
        "csv",
        "-o",
        csv.to_str().unwrap(),
    ]);
    tracer(&[
        "export",
        &fixture(),
        "--format",
        "jsonl",
        "-o",
        jsonl.to_str().unwrap(),
    ]);
    let journeys = journeys();
    let lines: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, journeys);
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), journeys.len() + 1);
    let header: Vec<&str> = rows[0].split(',').collect();
    let total = header
        .iter()
        .position(|column| *column == "total_ns")
        .unwrap();
    for (row, journey) in rows[1..].iter().zip(&journeys) {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[0], journey["id"].to_string());
        let expected = journey["stages_ns"]["total"]
            .as_u64()
            .map_or(String::new(), |ns| ns.to_string());
        assert_eq!(cells[total], expected);
    }
}
