//! The schema's columns and types, and a file read back with the Parquet crate's own reader.

use parquet::{
    basic::{Compression, LogicalType, Type as Physical},
    file::reader::{FileReader as _, SerializedFileReader},
    record::Field,
};

use super::{
    schema::{Kind, SCHEMA_VERSION},
    *,
};
use crate::journey::{Missing, Stage, StageDurations, Stamps, model::Addr};

fn meta() -> Metadata {
    Metadata {
        hostname: "host-a".into(),
        kernel: "6.18.0".into(),
        tool_version: "0.1.0".into(),
        realtime_offset_ns: 1_700_000_000_000_000_000,
        ..Metadata::default()
    }
}

fn journey(id: u64) -> Journey {
    Journey {
        id,
        dev: "lo".into(),
        proto: "udp".into(),
        comm: Some("reader".into()),
        pid: Some(42),
        saddr: Some("127.0.0.1".parse().unwrap()),
        sport: Some(5000),
        bytes: Some(-11),
        skbaddr: Addr(u64::MAX),
        ts: Stamps {
            softirq_raise: Some(1_000),
            recv_return: Some(1_234_567),
            ..Stamps::default()
        },
        stages_ns: StageDurations {
            runqueue: Some(777),
            total: Some(1_233_567),
            ..StageDurations::default()
        },
        complete: true,
        missing: smallvec::smallvec![Missing {
            stage: Stage::Irq,
            reason: "no hard IRQ, loopback".into(),
        }],
        ..Journey::default()
    }
}

#[test]
fn columns_are_the_csv_columns_typed_then_the_file_columns() {
    let columns = schema::columns();
    let kind = |name: &str| {
        columns
            .iter()
            .find(|(column, _)| column == name)
            .map(|(_, kind)| *kind)
    };
    let mut names: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
    let mut expected: Vec<String> = crate::sink::csv::header()
        .split(',')
        .map(str::to_owned)
        .collect();
    expected.extend(
        crate::journey::fields::STAMPS
            .iter()
            .map(|stamp| format!("mono_{}", stamp.name)),
    );
    expected.extend(["host", "kernel", "capture_id", "schema_version"].map(String::from));
    names.sort_unstable();
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert_eq!(kind("id"), Some(Kind::Rising));
    assert_eq!(kind("skbaddr"), Some(Kind::UInt64));
    assert_eq!(kind("bytes"), Some(Kind::Int64));
    assert_eq!(kind("ts_recv_return"), Some(Kind::Timestamp));
    assert_eq!(kind("mono_recv_return"), Some(Kind::Rising));
    assert_eq!(kind("pid"), Some(Kind::UInt64));
    assert_eq!(kind("runqueue_ns"), Some(Kind::Int64));
    assert_eq!(kind("total_ns"), Some(Kind::Int64));
    assert_eq!(kind("comm"), Some(Kind::Text));
    assert_eq!(kind("saddr"), Some(Kind::Text));
    assert_eq!(kind("missing"), Some(Kind::Text));
    assert_eq!(kind("complete"), Some(Kind::Bool));
    assert_eq!(kind("softirq_in_ksoftirqd"), Some(Kind::Bool));
    assert_eq!(kind("host"), Some(Kind::Text));
    assert_eq!(kind("schema_version"), Some(Kind::Int64));

    let schema = schema::parquet_schema("journey", &columns).unwrap();
    let fields = schema.get_fields();
    assert_eq!(fields.len(), columns.len());
    for field in fields {
        let info = field.get_basic_info();
        let (physical, logical) = (field.get_physical_type(), info.logical_type_ref().cloned());
        match kind(field.name()).unwrap() {
            Kind::UInt64 | Kind::Rising => {
                assert_eq!(physical, Physical::INT64);
                assert_eq!(logical, Some(LogicalType::integer(64, false)));
            }
            Kind::Int64 => assert_eq!((physical, logical), (Physical::INT64, None)),
            Kind::Timestamp => {
                assert_eq!(physical, Physical::INT64);
                assert_eq!(
                    logical,
                    Some(LogicalType::timestamp(
                        true,
                        parquet::basic::TimeUnit::NANOS
                    ))
                );
            }
            Kind::Text => {
                assert_eq!(physical, Physical::BYTE_ARRAY);
                assert_eq!(logical, Some(LogicalType::String));
            }
            Kind::Bool => assert_eq!((physical, logical), (Physical::BOOLEAN, None)),
        }
    }
}

#[test]
fn a_file_reads_back_with_typed_values_zstd_and_the_schema_version() {
    let journeys: Vec<Journey> = (1..=3).map(journey).collect();
    let bytes = to_bytes(&meta(), &journeys).unwrap();
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
    let file = reader.metadata().file_metadata();
    assert_eq!(file.num_rows(), 3);
    let kv = file.key_value_metadata().unwrap();
    let version = kv
        .iter()
        .find(|kv| kv.key == "tracer.schema_version")
        .and_then(|kv| kv.value.clone());
    assert_eq!(version, Some(SCHEMA_VERSION.to_string()));
    let group = reader.metadata().row_group(0);
    assert!(
        group
            .columns()
            .iter()
            .all(|column| matches!(column.compression(), Compression::ZSTD(_)))
    );
    let row = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
    let cell = |name: &str| {
        row.get_column_iter()
            .find(|(column, _)| *column == name)
            .map(|(_, value)| value.clone())
            .unwrap()
    };
    assert_eq!(cell("id"), Field::ULong(1));
    assert_eq!(cell("dev"), Field::Str("lo".into()));
    assert_eq!(cell("saddr"), Field::Str("127.0.0.1".into()));
    assert_eq!(cell("bytes"), Field::Long(-11));
    assert_eq!(cell("skbaddr"), Field::ULong(u64::MAX));
    assert_eq!(cell("irq"), Field::Null);
    assert_eq!(cell("runqueue_ns"), Field::Long(777));
    assert_eq!(cell("poll_ns"), Field::Null);
    assert_eq!(cell("mono_recv_return"), Field::ULong(1_234_567));
    // The row API reads a NANOS timestamp as its i64 (the schema test holds its type).
    assert_eq!(
        cell("ts_recv_return"),
        Field::Long(1_700_000_000_001_234_567)
    );
    assert_eq!(cell("ts_irq_entry"), Field::Null);
    assert_eq!(cell("complete"), Field::Bool(true));
    assert_eq!(
        cell("missing"),
        Field::Str("irq: no hard IRQ, loopback".into())
    );
    assert_eq!(cell("host"), Field::Str("host-a".into()));
    assert_eq!(cell("schema_version"), Field::Long(SCHEMA_VERSION));
}

#[test]
fn row_groups_are_cut_at_the_row_group_size_and_capture_ids_differ() {
    let journeys: Vec<Journey> = (0..ROW_GROUP_ROWS as u64 + 5).map(journey).collect();
    let bytes = to_bytes(&meta(), &journeys).unwrap();
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
    let groups: Vec<i64> = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|group| group.num_rows())
        .collect();
    assert_eq!(groups, [ROW_GROUP_ROWS as i64, 5]);
    let mut other = meta();
    other.realtime_offset_ns += 1;
    assert_ne!(
        Capture::from_metadata(&meta()).capture_id,
        Capture::from_metadata(&other).capture_id
    );
}

#[test]
fn a_stamp_out_of_the_timestamp_range_is_null_not_a_panic() {
    let mut meta = meta();
    meta.realtime_offset_ns = i128::MAX / 2;
    let mut journey = journey(1);
    journey.ts.recv_return = Some(u64::MAX);
    journey.stages_ns.total = Some(u64::MAX);
    let bytes = to_bytes(&meta, &[journey]).unwrap();
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
    let row = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
    let cell = |name: &str| {
        row.get_column_iter()
            .find(|(column, _)| *column == name)
            .map(|(_, value)| value.clone())
            .unwrap()
    };
    assert_eq!(cell("ts_recv_return"), Field::Null);
    assert_eq!(cell("mono_recv_return"), Field::ULong(u64::MAX));
    assert_eq!(cell("total_ns"), Field::Null);
}

#[test]
fn the_event_table_holds_every_field_of_an_event() {
    let names: Vec<(String, Kind)> = events::columns();
    let expected = [
        ("ts", Kind::Timestamp),
        ("mono_ns", Kind::Rising),
        ("kind", Kind::Text),
        ("cpu", Kind::UInt64),
        ("tgid", Kind::UInt64),
        ("tid", Kind::UInt64),
        ("arg0", Kind::UInt64),
        ("arg1", Kind::UInt64),
        ("arg2", Kind::UInt64),
        ("addr", Kind::UInt64),
        ("addr2", Kind::UInt64),
        ("name", Kind::Text),
        ("lost_before", Kind::Bool),
        ("host", Kind::Text),
        ("kernel", Kind::Text),
        ("capture_id", Kind::Text),
        ("schema_version", Kind::Int64),
    ]
    .map(|(name, kind)| (name.to_owned(), kind));
    assert_eq!(names, expected);

    let mut name = [0u8; tracer_common::NAME_LEN];
    name[..6].copy_from_slice(b"reader");
    let event = tracer_common::Event {
        ts: 5_000,
        addr: 0xffff_8880_0000_1000,
        addr2: 0,
        tgid: 42,
        tid: 43,
        arg0: 1,
        arg1: 2,
        arg2: u32::MAX,
        cpu: 1,
        kind: tracer_common::EventKind::SchedWaking as u8,
        flags: tracer_common::FLAG_LOST_BEFORE,
        name,
    };
    let mut sink = events::ParquetEvents::new(Vec::new(), Capture::from_metadata(&meta())).unwrap();
    sink.push(&event).unwrap();
    let reader = SerializedFileReader::new(bytes::Bytes::from(sink.finish().unwrap())).unwrap();
    let row = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
    let cells: Vec<(String, Field)> = row
        .get_column_iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let cell = |name: &str| cells.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(cell("ts"), Field::Long(1_700_000_000_000_005_000));
    assert_eq!(cell("kind"), Field::Str("sched_waking".into()));
    assert_eq!(cell("name"), Field::Str("reader".into()));
    assert_eq!(cell("addr"), Field::ULong(0xffff_8880_0000_1000));
    assert_eq!(cell("arg2"), Field::ULong(u64::from(u32::MAX)));
    assert_eq!(cell("lost_before"), Field::Bool(true));
    assert_eq!(cell("host"), Field::Str("host-a".into()));
}
