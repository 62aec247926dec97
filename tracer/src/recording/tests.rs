//! Round trips, truncation and corruption of recordings.

use std::path::Path;

use tracer_common::{Event, EventKind};

use super::*;
use crate::recording::{EventBatches, Outline, RecordingReader};

fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            ts: 1_000_000 + i * 1000 - (i % 3) * 7, // not monotonic: cross-CPU order
            addr: 0xffff_8880_0000_0000 + (i % 50) * 256,
            tgid: 100 + (i % 4) as u32,
            tid: 200 + (i % 4) as u32,
            arg0: i as u32,
            // Every column its own values, so that a column decoded into another's field
            // shows.
            arg1: (i * 3) as u32,
            arg2: (i * 5 % 7) as u32,
            addr2: i << 20 | 0x55,
            flags: (i % 5) as u8,
            cpu: (i % 2) as u16,
            kind: EventKind::ALL[(i % 27) as usize] as u8,
            name: *b"lo\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
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
    assert_eq!(recording.version, 3);
    assert_eq!(recording.events, events);
    assert_eq!(recording.meta.kernel, "6.18");
    let trailer = recording.trailer.unwrap();
    assert_eq!(
        (trailer.lost_per_cpu, trailer.duration_ns),
        (vec![0, 3], 42)
    );
    assert_eq!(trailer.events_per_kind.values().sum::<u64>(), 5000);
    // Counted by kind as written, named by the kind's name.
    let mut expected = std::collections::BTreeMap::new();
    for event in &events {
        let name = EventKind::from_u8(event.kind).unwrap().name().to_owned();
        *expected.entry(name).or_insert(0u64) += 1;
    }
    assert_eq!(trailer.events_per_kind, expected);
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
        "x.trc: recording format version 7 is not supported (this tracer reads versions 1 to 3)"
    );
    let err = Recording::parse(b"\x7fELF....", path)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "x.trc: not a tracer recording (bad magic at byte 0)");
    for magic in [b"TRACERv2", b"TRACERv3"] {
        let err = Recording::parse(magic, path).unwrap_err().to_string();
        assert_eq!(
            err,
            "x.trc: the recording has no metadata (it ends at byte 8)"
        );
    }
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

/// Every batch of a reader, decoded on this thread or a second one, then the error or the
/// end.
fn batches<R: std::io::Read + Send + 'static>(
    reader: RecordingReader<R>,
    threads: usize,
) -> (Vec<Vec<Event>>, Result<Outline, String>) {
    let mut batches = EventBatches::new(reader, threads);
    let mut out = Vec::new();
    loop {
        match batches.next_batch() {
            Ok(Some(events)) => out.push(events.to_vec()),
            Ok(None) => break,
            Err(err) => return (out, Err(err.to_string())),
        }
    }
    let reader = batches
        .into_reader()
        .expect("the reader comes back at the end");
    (out, Ok(reader.outline()))
}

/// The outline (chunk headers alone, seeking) says what the reader knows at the end: event
/// count, trailer, where a cut file ends; on every cut of a recording.
#[test]
fn the_outline_says_what_the_stream_finds_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trc");
    write(&path, &events(2500), true);
    let bytes = std::fs::read(&path).unwrap();
    let cut_path = dir.path().join("cut.trc");
    for cut in (60..bytes.len()).step_by(97).chain([bytes.len()]) {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let Ok(reader) = RecordingReader::open(&cut_path) else {
            continue; // cut inside the metadata
        };
        let outline = Outline::read(reader.file(), 3, &cut_path)
            .unwrap()
            .expect("a regular file");
        let (_, ended) = batches(reader, 1);
        assert_eq!(Ok(outline), ended, "cut at {cut}");
    }
    let whole = Outline::read(&std::fs::File::open(&path).unwrap(), 3, &path)
        .unwrap()
        .unwrap();
    assert_eq!(whole.events, 2500);
    assert_eq!(whole.trailer.unwrap().lost_per_cpu, vec![0, 3]);
    assert!(whole.truncated.is_none());
    // A pipe has no outline.
    let fifo = std::fs::File::open("/proc/self/fd/0").ok();
    if let Some(file) = fifo.filter(|file| file.metadata().is_ok_and(|m| !m.is_file())) {
        assert_eq!(Outline::read(&file, 3, &path).unwrap(), None);
    }
}

/// Decoded on a second thread, the same batches in the same order as on this one, the same
/// error after the same batches for a corrupt chunk; and a file rewinds for a second pass.
#[test]
fn a_second_thread_decodes_the_same_batches_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.trc");
    write(&path, &events(5000), true);
    let here = batches(RecordingReader::open(&path).unwrap(), 1);
    let there = batches(RecordingReader::open(&path).unwrap(), 2);
    assert_eq!(here, there);
    assert_eq!(here.0.concat(), events(5000));
    assert_eq!(here.0.len(), 5, "a batch per chunk");

    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let here = batches(RecordingReader::open(&path).unwrap(), 1);
    let there = batches(RecordingReader::open(&path).unwrap(), 2);
    assert_eq!(here, there);
    assert!(
        here.1.as_ref().unwrap_err().contains("is corrupt"),
        "{here:?}"
    );
    assert!(!here.0.is_empty(), "the chunks before the corrupt one");

    write(&path, &events(3000), false);
    let mut reader = RecordingReader::open(&path).unwrap();
    let mut first = Vec::new();
    while reader.next_events(&mut first).unwrap() {}
    let mut again = Vec::new();
    let mut reader = reader.rewind().unwrap();
    while reader.next_events(&mut again).unwrap() {}
    assert_eq!(first, again);
    assert_eq!(first.len(), 3000);
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

#[test]
fn a_chunk_decodes_block_by_block_and_checks_its_stamps() {
    // 1000 events: blocks of DECODE_BLOCK and a shorter last one.
    let events = events(1000);
    let raw = format::encode_events(&events);
    let mut out = vec![Event::ZERO; 3];
    format::decode_events(&raw, events.len(), &mut out).unwrap();
    assert_eq!(&out[3..], &events[..]);

    // One stamp byte too many or too few: an error, and nothing appended.
    let fixed = events.len() * format::EVENT_FIXED;
    let stamps = raw.len() - fixed;
    let mut longer = raw[..stamps].to_vec();
    longer.push(0);
    longer.extend_from_slice(&raw[stamps..]);
    let shorter = [&raw[..stamps - 1], &raw[stamps..]].concat();
    for bad in [longer, shorter, raw[..events.len() - 1].to_vec()] {
        let mut out = vec![Event::ZERO; 3];
        assert!(format::decode_events(&bad, events.len(), &mut out).is_err());
        assert_eq!(out.len(), 3);
    }
}

/// A version 2 recording (zstd, fixed columns), as older tracers wrote it: magic, metadata,
/// event chunks of 1000, trailer.
fn v2_bytes(events: &[Event]) -> Vec<u8> {
    let mut bytes = format::MAGIC_V2.to_vec();
    let mut chunk = |kind: u8, count: usize, raw: &[u8]| {
        let body = zstd::bulk::compress(raw, 3).unwrap();
        bytes.push(kind);
        bytes.extend_from_slice(&(count as u32).to_le_bytes());
        bytes.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
    };
    let meta = Metadata {
        kernel: "6.12".into(),
        ..Metadata::default()
    };
    chunk(b'M', 0, &serde_json::to_vec(&meta).unwrap());
    for events in events.chunks(1000) {
        chunk(b'E', events.len(), &format::encode_events(events));
    }
    let trailer = Trailer {
        duration_ns: 7,
        ..Trailer::default()
    };
    chunk(b'C', 0, &serde_json::to_vec(&trailer).unwrap());
    bytes
}

#[test]
fn version_2_recordings_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.trc");
    let events = events(2500);
    std::fs::write(&path, v2_bytes(&events)).unwrap();
    let recording = Recording::read(&path).unwrap();
    assert_eq!(recording.version, 2);
    assert_eq!(recording.meta.kernel, "6.12");
    assert_eq!(recording.events, events);
    assert_eq!(recording.trailer.unwrap().duration_ns, 7);
    let outline = Outline::read(&std::fs::File::open(&path).unwrap(), 2, &path)
        .unwrap()
        .unwrap();
    assert_eq!(outline.events, 2500);
}

/// Events that exercise every sparse column: zero and not, a thread apart from its process
/// and not, CPUs past 255, names on some events only; chunk lengths across blocks and not a
/// multiple of 8.
fn sparse_events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let pick = |every: u64, value: u64| if i % every == 0 { 0 } else { value };
            let tgid = pick(5, 4000 + i % 3) as u32;
            Event {
                ts: 5_000_000_000 + i * 700 - (i % 4) * 900,
                addr: pick(3, 0xffff_8881_0000_0000 + i * 64),
                addr2: pick(2, i << 33 | 1),
                tgid,
                tid: if i % 7 == 0 {
                    tgid
                } else {
                    tgid + 1 + (i % 2) as u32
                },
                arg0: pick(4, i) as u32,
                arg1: pick(6, u64::from(u32::MAX) - i) as u32,
                arg2: pick(9, 7) as u32,
                flags: (i % 3) as u8,
                cpu: pick(2, 1 + (i % 300)) as u16,
                kind: EventKind::ALL[(i % EventKind::ALL.len() as u64) as usize] as u8,
                name: if i % 5 < 2 {
                    *b"nginx: worker\0\0\0"
                } else {
                    [0; tracer_common::NAME_LEN]
                },
            }
        })
        .collect()
}

#[test]
fn sparse_columns_round_trip_every_field() {
    for n in [0, 1, 7, 8, 9, 255, 256, 257, 1000, CHUNK_EVENTS as u64] {
        let events = sparse_events(n);
        let raw = sparse::encode_events(&events);
        assert!(raw.len() >= sparse::min_len(events.len()), "{n}");
        assert!(raw.len() <= sparse::max_len(events.len()), "{n}");
        let mut out = vec![Event::ZERO; 2];
        sparse::decode_events(&raw, events.len(), &mut out).unwrap();
        assert_eq!(&out[2..], &events[..], "{n} events");
    }
    // Zeros cost nothing but a column's form: bare events are their stamp, kind and flags.
    let bare: Vec<Event> = (0..1000)
        .map(|i| Event {
            ts: i * 10,
            kind: EventKind::SoftirqEntry as u8,
            ..Event::ZERO
        })
        .collect();
    let raw = sparse::encode_events(&bare);
    assert_eq!(raw.len(), 4 + 1000 * 3 + 9);
    // Each form: all zero, dense (three in four set or more), sparse; decoded alike.
    for every in [1, 2, 4, 5, 100] {
        let events: Vec<Event> = (0..1000u64)
            .map(|i| Event {
                ts: i,
                kind: EventKind::NapiPoll as u8,
                arg1: if i % every == 0 { 0 } else { 7 + i as u32 },
                ..Event::ZERO
            })
            .collect();
        let raw = sparse::encode_events(&events);
        let mut out = Vec::new();
        sparse::decode_events(&raw, events.len(), &mut out).unwrap();
        assert_eq!(out, events, "a zero every {every}");
    }
}

#[test]
fn sparse_columns_that_do_not_add_up_are_errors() {
    let events = sparse_events(100);
    let raw = sparse::encode_events(&events);
    let decode = |raw: &[u8], count: usize| {
        let mut out = vec![Event::ZERO; 1];
        let result = sparse::decode_events(raw, count, &mut out);
        assert_eq!(
            out.len(),
            if result.is_ok() { 1 + count } else { 1 },
            "{result:?}"
        );
        result
    };
    decode(&raw, 100).unwrap();
    // A byte more or less, anywhere in the columns; a count that is not the chunk's.
    let mut longer = raw.clone();
    longer.push(0);
    assert!(
        decode(&longer, 100)
            .unwrap_err()
            .contains("left after the columns")
    );
    assert!(decode(&raw[..raw.len() - 1], 100).is_err());
    assert!(decode(&raw, 99).is_err());
    assert!(decode(&raw, 101).is_err());
    // The stamps' length one off: the stamps do not end where it says.
    let stamps = u32::from_le_bytes(raw[..4].try_into().unwrap());
    for wrong in [stamps - 1, stamps + 1] {
        let mut bad = raw.clone();
        bad[..4].copy_from_slice(&wrong.to_le_bytes());
        assert!(decode(&bad, 100).is_err(), "stamps length {wrong}");
    }
    // The cpu column (every other event on CPU 0) is sparse: a bit set past the last event
    // (100 events: the last bitmap byte holds 4), an unknown form.
    let cpu_form = 4 + stamps as usize + 2 * 100;
    assert_eq!(raw[cpu_form], 2, "sparse");
    let mut bad = raw.clone();
    bad[cpu_form + 1 + 12] |= 0x80;
    assert!(
        decode(&bad, 100)
            .unwrap_err()
            .contains("cpu: bits set past the last event")
    );
    let mut bad = raw.clone();
    bad[cpu_form] = 3;
    assert!(
        decode(&bad, 100)
            .unwrap_err()
            .contains("cpu: unknown column form 3")
    );
    // An unknown kind.
    let mut bad = raw.clone();
    bad[4 + stamps as usize + 3] = 250;
    assert!(
        decode(&bad, 100)
            .unwrap_err()
            .contains("unknown event kind 250")
    );
}
