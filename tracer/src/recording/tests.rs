//! Round trips, truncation and corruption of recordings.

use std::path::Path;

use tracer_common::{Event, EventKind};

use super::*;

fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            ts: 1_000_000 + i * 1000 - (i % 3) * 7, // not monotonic: cross-CPU order
            addr: 0xffff_8880_0000_0000 + (i % 50) * 256,
            tgid: 100 + (i % 4) as u32,
            tid: 100 + (i % 4) as u32,
            arg0: i as u32,
            cpu: (i % 2) as u16,
            kind: EventKind::ALL[(i % 27) as usize] as u8,
            name: *b"lo\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            ..Event::ZERO
        })
        .collect()
}

fn write(path: &Path, events: &[Event], finish: bool) {
    let meta = Metadata {
        kernel: "6.18".into(),
        cpus: 2,
        ..Metadata::default()
    };
    let mut writer = Writer::create(path, &meta).unwrap();
    for (i, event) in events.iter().enumerate() {
        writer.push(event).unwrap();
        if i % 1000 == 999 {
            writer.flush_chunk().unwrap();
        }
    }
    if finish {
        writer.finish(vec![0, 3], 42).unwrap();
    } else {
        writer.flush_chunk().unwrap();
    }
}

#[test]
fn round_trips_with_trailer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trc");
    let events = events(5000);
    write(&path, &events, true);
    let recording = Recording::read(&path).unwrap();
    assert_eq!(recording.version, 2);
    assert_eq!(recording.events, events);
    assert_eq!(recording.meta.kernel, "6.18");
    let trailer = recording.trailer.unwrap();
    assert_eq!(
        (trailer.lost_per_cpu, trailer.duration_ns),
        (vec![0, 3], 42)
    );
    assert_eq!(trailer.events_per_kind.values().sum::<u64>(), 5000);
    assert!(recording.truncated.is_none());
}

#[test]
fn truncation_at_every_byte_gives_the_prefix_or_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trc");
    write(&path, &events(2500), false);
    let bytes = std::fs::read(&path).unwrap();
    let mut last = 0;
    for cut in 0..bytes.len() {
        match Recording::parse(&bytes[..cut], &path) {
            Ok(recording) => {
                assert!(recording.events.len() >= last, "prefix shrank at {cut}");
                assert_eq!(
                    recording.events.len() % 1000,
                    0,
                    "only whole chunks: {}",
                    recording.events.len()
                );
                assert!(recording.trailer.is_none(), "this recorder never finished");
                last = recording.events.len();
            }
            Err(err) => {
                let text = err.to_string();
                assert!(text.starts_with(&path.display().to_string()), "{text}");
                assert!(last == 0, "error after a readable prefix at {cut}: {text}");
            }
        }
    }
    assert_eq!(
        last, 2000,
        "the two whole chunks before the last, partial one"
    );
    assert_eq!(Recording::parse(&bytes, &path).unwrap().events.len(), 2500);
}

#[test]
fn random_corruptions_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trc");
    write(&path, &events(3000), true);
    let clean = std::fs::read(&path).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut errors = 0;
    for _ in 0..3000 {
        let mut bytes = clean.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        match Recording::parse(&bytes, &path) {
            Ok(recording) => assert!(recording.events.len() <= 3000),
            Err(err) => {
                errors += 1;
                assert!(!err.to_string().is_empty());
            }
        }
    }
    assert!(
        errors > 2500,
        "corruption went unnoticed too often: {errors} errors"
    );
}

#[test]
fn unknown_versions_and_foreign_files_are_named() {
    let path = Path::new("x.trc");
    let err = Recording::parse(b"TRACERv7 and more", path)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "x.trc: recording format version 7 is not supported (this tracer reads versions 1 and 2)"
    );
    let err = Recording::parse(b"\x7fELF....", path)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "x.trc: not a tracer recording (bad magic at byte 0)");
    let err = Recording::parse(b"TRACERv2", path).unwrap_err().to_string();
    assert_eq!(
        err,
        "x.trc: the recording has no metadata (it ends at byte 8)"
    );
}

#[test]
fn compact_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trc");
    write(&path, &events(20000), true);
    let per_event = std::fs::metadata(&path).unwrap().len() as f64 / 20000.0;
    assert!(
        per_event < 64.0,
        "{per_event} B/event is no better than raw"
    );
}

#[test]
fn the_cgroup_table_is_optional_metadata() {
    let meta = Metadata {
        cgroups: [(77, "/system.slice/\u{1b}x.service".to_owned())].into(),
        ..Metadata::default()
    };
    let json = serde_json::to_string(&meta).unwrap();
    assert!(
        json.contains(r#""cgroups":{"77":"/system.slice/\u001bx.service"}"#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Metadata>(&json).unwrap(), meta);
    // A recording made before the table existed reads with an empty one.
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    old.as_object_mut().unwrap().remove("cgroups");
    let old: Metadata = serde_json::from_value(old).unwrap();
    assert!(old.cgroups.is_empty());
    // And a reader that does not know a key (an older tracer) ignores it.
    let mut newer: serde_json::Value = serde_json::from_str(&json).unwrap();
    newer["from_the_future"] = serde_json::json!([1, 2]);
    assert_eq!(serde_json::from_value::<Metadata>(newer).unwrap(), meta);
}
