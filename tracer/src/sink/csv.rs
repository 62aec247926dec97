//! One CSV row per journey, for spreadsheets: the columns of the field table
//! ([`crate::journey::fields`]), `ts` and `stages_ns` flattened to `ts_<stamp>` and
//! `<stage>_ns`.

use std::io;

use super::{Sink, escape};
use crate::journey::{
    Journey,
    fields::{FIELDS, Value, stages},
};

/// The verdict columns, kept last in this order (as the CSV always had them).
const LAST: [&str; 3] = ["complete", "drop_reason", "missing"];

/// The fields in column order: the table's order with [`LAST`] at the end.
fn columns() -> impl Iterator<Item = &'static crate::journey::fields::Field> {
    let head = FIELDS.iter().filter(|field| !LAST.contains(&field.name));
    let tail = LAST
        .iter()
        .filter_map(|name| FIELDS.iter().find(|field| field.name == *name));
    head.chain(tail)
}

/// The header row.
pub fn header() -> String {
    let journey = Journey::default();
    let mut names: Vec<String> = Vec::new();
    for field in columns() {
        match (field.value)(&journey) {
            // Stamps in the order they happen, as the columns always were.
            Value::Stamps(ts) => {
                names.extend(ts.in_order().iter().map(|(stamp, _)| format!("ts_{stamp}")))
            }
            Value::Stages(ns) => {
                names.extend(stages(ns).map(|(stage, _)| format!("{}_ns", stage.name())))
            }
            _ => names.push(field.name.to_owned()),
        }
    }
    names.join(",")
}

fn field(value: impl ToString) -> String {
    let text = value.to_string();
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or(String::new(), field)
}

/// One journey as a row (empty cells where a value is absent).
pub fn row(journey: &Journey) -> String {
    let mut cells = Vec::with_capacity(64);
    for column in columns() {
        match (column.value)(journey) {
            Value::Unsigned(value) => cells.push(optional(value)),
            Value::Signed(value) => cells.push(optional(value)),
            Value::Text(value) => cells.push(optional(
                value.map(|text| escape::csv_cell(text).into_owned()),
            )),
            Value::Bool(value) => cells.push(field(value)),
            Value::Addr(value) => cells.push(optional(value)),
            Value::Ip(value) => cells.push(optional(value)),
            Value::Stamps(ts) => cells.extend(ts.in_order().iter().map(|(_, ts)| optional(*ts))),
            Value::Stages(ns) => cells.extend(stages(ns).map(|(_, ns)| optional(ns))),
            Value::Missing(list) => {
                let missing: Vec<String> = list
                    .iter()
                    .map(|missing| format!("{}: {}", missing.stage.name(), missing.reason))
                    .collect();
                cells.push(field(missing.join("; ")));
            }
        }
    }
    cells.join(",")
}

/// Journeys as CSV rows, after the header, on a writer (`export --format csv`).
pub struct CsvRows<W: io::Write> {
    out: W,
}

impl<W: io::Write> CsvRows<W> {
    /// Writes the header row.
    pub fn new(mut out: W) -> io::Result<Self> {
        writeln!(out, "{}", header())?;
        Ok(Self { out })
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: io::Write> Sink for CsvRows<W> {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        writeln!(self.out, "{}", row(journey))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::{Missing, Stage};

    #[test]
    fn rows_line_up_with_the_header_and_quote_commas() {
        let journey = Journey {
            id: 7,
            dev: "lo".into(),
            comm: Some("a,b".into()),
            missing: smallvec::smallvec![Missing {
                stage: Stage::Irq,
                reason: "no hard IRQ, loopback".into(),
            }],
            ..Journey::default()
        };
        let row = row(&journey);
        assert!(row.starts_with("7,lo,,,"), "{row}");
        assert!(row.contains("\"a,b\""));
        assert!(
            row.ends_with(",false,,\"irq: no hard IRQ, loopback\""),
            "{row}"
        );
        let unquoted = row
            .replace("\"a,b\"", "x")
            .replace("\"irq: no hard IRQ, loopback\"", "y");
        assert_eq!(unquoted.split(',').count(), header().split(',').count());
    }

    #[test]
    fn columns_are_the_json_keys() {
        let value = serde_json::to_value(Journey::default()).unwrap();
        let mut keys = Vec::new();
        for (key, value) in value.as_object().unwrap() {
            match key.as_str() {
                "ts" => keys.extend(value.as_object().unwrap().keys().map(|k| format!("ts_{k}"))),
                "stages_ns" => {
                    keys.extend(value.as_object().unwrap().keys().map(|k| format!("{k}_ns")))
                }
                _ => keys.push(key.clone()),
            }
        }
        let header = header();
        let mut columns: Vec<&str> = header.split(',').collect();
        keys.sort_unstable();
        columns.sort_unstable();
        assert_eq!(columns, keys);
    }
}
