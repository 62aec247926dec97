//! The Parquet journey table's columns, derived from the field table
//! ([`crate::journey::fields`]) as the CSV's are: `ts` and `stages_ns` flattened to
//! `ts_<stamp>` (wall time), `mono_<stamp>` (the record's CLOCK_MONOTONIC ns) and
//! `<stage>_ns`, then the per-file columns.

use std::{borrow::Cow, sync::Arc};

use parquet::{
    basic::{LogicalType, Repetition, TimeUnit, Type as Physical},
    errors::ParquetError,
    schema::types::Type,
};

use crate::journey::{
    Journey,
    fields::{FIELDS, Value, stages},
};

/// The version of this table's schema, written as the `schema_version` column and as the
/// file's key-value metadata `tracer.schema_version`. Bumped when a column changes type or
/// meaning or is removed; adding a column keeps it.
pub const SCHEMA_VERSION: i64 = 1;

/// A column's logical type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// INT64 with the logical type INTEGER(64, unsigned): counts, ids, kernel addresses.
    UInt64,
    /// As [`Kind::UInt64`], for values that rise through a file (monotonic stamps, journey
    /// ids): delta-encoded instead of a dictionary, half the size.
    Rising,
    /// INT64 (signed): a syscall's return value, stage durations in ns, the schema version.
    Int64,
    /// INT64 TIMESTAMP(NANOS, UTC): a stamp made wall time with the recording's
    /// realtime offset.
    Timestamp,
    /// BYTE_ARRAY STRING, dictionary-encoded.
    Text,
    /// BOOLEAN.
    Bool,
}

/// One column's name, in three static parts so no row allocates it (`ts_` + `irq_entry`).
#[derive(Clone, Copy, Debug)]
pub struct Name {
    /// `ts_`, `mono_` or nothing.
    pub prefix: &'static str,
    /// The field's, stamp's or stage's name.
    pub name: &'static str,
    /// `_ns` for a stage duration, or nothing.
    pub suffix: &'static str,
}

impl Name {
    const fn plain(name: &'static str) -> Self {
        Self {
            prefix: "",
            name,
            suffix: "",
        }
    }

    /// The column's name.
    pub fn full(&self) -> String {
        format!("{}{}{}", self.prefix, self.name, self.suffix)
    }
}

/// One cell of a row: its value, null where the record has null.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell<'a> {
    /// A value of a [`Kind::UInt64`] column.
    UInt64(Option<u64>),
    /// A value of a [`Kind::Rising`] column.
    Rising(Option<u64>),
    /// A value of a [`Kind::Int64`] column.
    Int64(Option<i64>),
    /// A CLOCK_MONOTONIC stamp in ns (made wall time when written).
    Timestamp(Option<u64>),
    /// A value of a [`Kind::Text`] column.
    Text(Option<Cow<'a, str>>),
    /// A value of a [`Kind::Bool`] column.
    Bool(bool),
}

impl Cell<'_> {
    /// The kind of column this cell belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            Cell::UInt64(_) => Kind::UInt64,
            Cell::Rising(_) => Kind::Rising,
            Cell::Int64(_) => Kind::Int64,
            Cell::Timestamp(_) => Kind::Timestamp,
            Cell::Text(_) => Kind::Text,
            Cell::Bool(_) => Kind::Bool,
        }
    }
}

/// The per-file columns, after the journey's: the same value on every row of a file, so a
/// directory of exports can be queried as one table.
pub const FILE_COLUMNS: [(&str, Kind); 4] = [
    ("host", Kind::Text),
    ("kernel", Kind::Text),
    ("capture_id", Kind::Text),
    ("schema_version", Kind::Int64),
];

/// The unsigned fields whose values rise through a file: [`Kind::Rising`].
const RISING: [&str; 2] = ["id", "first_read"];

/// Calls `cell` with every journey column of `journey`, in column order.
pub fn journey_cells<'a>(journey: &'a Journey, mut cell: impl FnMut(Name, Cell<'a>)) {
    for field in FIELDS {
        let name = Name::plain(field.name);
        match (field.value)(journey) {
            // Ids and stamps rise through a file.
            Value::Unsigned(value) if RISING.contains(&field.name) => {
                cell(name, Cell::Rising(value))
            }
            Value::Unsigned(value) => cell(name, Cell::UInt64(value)),
            Value::Signed(value) => cell(name, Cell::Int64(value)),
            Value::Text(value) => cell(name, Cell::Text(value.map(Cow::Borrowed))),
            Value::Bool(value) => cell(name, Cell::Bool(value)),
            Value::Addr(value) => cell(name, Cell::UInt64(value.map(|addr| addr.0))),
            Value::Ip(value) => cell(name, Cell::Text(value.map(|ip| Cow::Owned(ip.to_string())))),
            Value::Stamps(ts) => {
                for (stamp, ns) in ts.in_order() {
                    let name = Name {
                        prefix: "ts_",
                        name: stamp,
                        suffix: "",
                    };
                    cell(name, Cell::Timestamp(ns));
                }
                // The same stamps as the record has them: DuckDB reads a UTC timestamp
                // in microseconds, these keep the nanoseconds and join with the JSON.
                for (stamp, ns) in ts.in_order() {
                    let name = Name {
                        prefix: "mono_",
                        name: stamp,
                        suffix: "",
                    };
                    cell(name, Cell::Rising(ns));
                }
            }
            Value::Stages(ns) => {
                for (stage, ns) in stages(ns) {
                    let name = Name {
                        prefix: "",
                        name: stage.name(),
                        suffix: "_ns",
                    };
                    cell(name, Cell::Int64(ns.and_then(|ns| i64::try_from(ns).ok())));
                }
            }
            Value::Missing(list) => {
                let text = list
                    .iter()
                    .map(|missing| format!("{}: {}", missing.stage.name(), missing.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                cell(name, Cell::Text(Some(Cow::Owned(text))));
            }
        }
    }
}

/// Every column of the journey table, journey columns then [`FILE_COLUMNS`]: (name, kind).
pub fn columns() -> Vec<(String, Kind)> {
    let journey = Journey::default();
    let mut columns = Vec::with_capacity(64);
    journey_cells(&journey, |name, cell| {
        columns.push((name.full(), cell.kind()))
    });
    columns.extend(
        FILE_COLUMNS
            .iter()
            .map(|(name, kind)| ((*name).to_owned(), *kind)),
    );
    columns
}

/// The Parquet schema of a table (message `message`, every column OPTIONAL).
pub fn parquet_schema(
    message: &str,
    columns: &[(String, Kind)],
) -> Result<Arc<Type>, ParquetError> {
    let fields = columns
        .iter()
        .map(|(name, kind)| {
            let (physical, logical) = match kind {
                Kind::UInt64 | Kind::Rising => {
                    (Physical::INT64, Some(LogicalType::integer(64, false)))
                }
                Kind::Int64 => (Physical::INT64, None),
                Kind::Timestamp => (
                    Physical::INT64,
                    Some(LogicalType::timestamp(true, TimeUnit::NANOS)),
                ),
                Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
                Kind::Bool => (Physical::BOOLEAN, None),
            };
            Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(
        Type::group_type_builder(message)
            .with_fields(fields)
            .build()?,
    ))
}
