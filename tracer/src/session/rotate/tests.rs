//! The ring of recordings over a fake run: names, size rotation, restarts.

use std::cell::Cell;

use tracer_common::EventKind;

use super::*;
use crate::recording::Recording;

/// Counters of a fake run: losses grow by one per call on CPU 1.
#[derive(Default)]
struct Fake {
    calls: Cell<u64>,
}

impl Counters for Fake {
    fn metadata(&self) -> Metadata {
        Metadata {
            hostname: "test".into(),
            cpus: 2,
            ..Metadata::default()
        }
    }

    fn lost_per_cpu(&self) -> io::Result<Vec<u64>> {
        self.calls.set(self.calls.get() + 1);
        Ok(vec![0, self.calls.get()])
    }

    fn recursion_misses(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}

fn event(i: u64) -> Event {
    Event {
        ts: 1_000_000 + i * 997,
        addr: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        tgid: (i % 7) as u32,
        tid: (i % 13) as u32,
        arg0: i as u32,
        cpu: (i % 2) as u16,
        kind: EventKind::ALL[(i % 20) as usize] as u8,
        ..Event::ZERO
    }
}

#[test]
fn names_number_the_ring() {
    let output = Path::new("/data/host.trc");
    assert_eq!(numbered(output, 7), Path::new("/data/host.0007.trc"));
    assert_eq!(numbered(output, 12345), Path::new("/data/host.12345.trc"));
    assert_eq!(numbered(Path::new("cap"), 2), Path::new("cap.0002"));
    assert_eq!(sequence_of(output, "host.0007.trc"), Some(7));
    assert_eq!(sequence_of(output, "host.12345.trc"), Some(12345));
    for other in ["host.trc", "host.7.trc", "host.0007.pcap", "other.0007.trc"] {
        assert_eq!(sequence_of(output, other), None, "{other}");
    }
}

#[test]
fn size_rotation_keeps_complete_files_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("ring.trc");
    // A file of an earlier run: the ring numbers on after it, and removes it in turn.
    std::fs::write(dir.path().join("ring.0041.trc"), b"old").unwrap();
    let fake = Fake::default();
    let bound = 8 << 10;
    let rotation = Rotation {
        limit: RotateLimit::Size(bound),
        keep: 3,
    };
    let mut out = RecordingOutput::create(&output, Some(rotation), &fake).unwrap();
    assert_eq!(out.current(), dir.path().join("ring.0042.trc"));
    let mut pushed = 0;
    for i in 0..200_000 {
        out.push(&event(i)).unwrap();
        pushed += 1;
        if i % 1000 == 999 {
            out.flush_chunk().unwrap();
        }
    }
    let written = out.finish().unwrap();
    assert!(written.files > 4, "{written:?}");
    assert_eq!(written.events, pushed);
    let mut left: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    left.sort();
    let newest = 41 + written.files;
    let expected: Vec<PathBuf> = (newest - 2..=newest)
        .map(|seq| numbered(&output, seq))
        .collect();
    assert_eq!(left, expected, "the three newest remain");
    for path in &left {
        let recording = Recording::read(path).unwrap();
        let trailer = recording.trailer.expect("each file has its trailer");
        assert!(recording.truncated.is_none());
        assert_eq!(recording.meta.hostname, "test");
        assert_eq!(trailer.lost_per_cpu, vec![0, 1], "its own losses");
        let size = std::fs::metadata(path).unwrap().len();
        // 1000 events at most per chunk here: far below 8 KiB compressed, plus a trailer.
        assert!(size < bound + (8 << 10), "{}: {size}", path.display());
    }
}

#[test]
fn a_restart_numbers_on_and_never_holds_more_than_keep() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("ring.trc");
    for seq in 1..=3 {
        std::fs::write(numbered(&output, seq), b"old").unwrap();
    }
    std::fs::write(dir.path().join("ring.trc.bak"), b"not ours").unwrap();
    let fake = Fake::default();
    let rotation = Rotation {
        limit: RotateLimit::Age(Duration::from_secs(3600)),
        keep: 3,
    };
    let out = RecordingOutput::create(&output, Some(rotation), &fake).unwrap();
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(),
        [
            "ring.0002.trc",
            "ring.0003.trc",
            "ring.0004.trc",
            "ring.trc.bak"
        ]
    );
    let written = out.finish().unwrap();
    assert_eq!(written.files, 1);
    assert_eq!(written.last, numbered(&output, 4));
    assert!(Recording::read(&written.last).unwrap().trailer.is_some());
}
