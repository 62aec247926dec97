//! One CSV row per journey, for spreadsheets.

use crate::journey::{Journey, Stage};

const STAMPS: [&str; 10] = [
    "irq_entry",
    "softirq_raise",
    "irq_exit",
    "softirq_entry",
    "netif_receive",
    "sk_data_ready",
    "waking",
    "wakeup",
    "switch_in",
    "recv_return",
];

/// The header row.
pub fn header() -> String {
    let mut columns: Vec<String> = [
        "id",
        "dev",
        "irq",
        "irq_name",
        "cpu_irq",
        "cpu_softirq",
        "cpu_task",
        "pid",
        "tid",
        "comm",
        "proto",
        "len",
        "bytes",
        "syscall",
        "napi_batch_pos",
        "napi_work",
        "napi_budget",
        "softirq_in_ksoftirqd",
    ]
    .iter()
    .map(|column| column.to_string())
    .collect();
    columns.extend(STAMPS.iter().map(|stamp| format!("ts_{stamp}")));
    columns.extend(
        Stage::ALL
            .iter()
            .map(|stage| format!("{}_ns", stage.name())),
    );
    columns.extend(
        ["complete", "drop_reason", "missing"]
            .iter()
            .map(|column| column.to_string()),
    );
    columns.join(",")
}

fn field(value: impl ToString) -> String {
    let text = value.to_string();
    if text.contains([',', '"', '\n']) {
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
    let mut cells = vec![
        field(journey.id),
        field(&journey.dev),
        optional(journey.irq),
        optional(journey.irq_name.as_deref()),
        optional(journey.cpu_irq),
        optional(journey.cpu_softirq),
        optional(journey.cpu_task),
        optional(journey.pid),
        optional(journey.tid),
        optional(journey.comm.as_deref()),
        field(&journey.proto),
        field(journey.len),
        optional(journey.bytes),
        optional(journey.syscall),
        optional(journey.napi_batch_pos),
        optional(journey.napi_work),
        optional(journey.napi_budget),
        field(journey.softirq_in_ksoftirqd),
    ];
    let stamps = journey.ts.in_order();
    for name in STAMPS {
        let value = stamps
            .iter()
            .find(|(stamp, _)| *stamp == name)
            .and_then(|(_, ts)| *ts);
        cells.push(optional(value));
    }
    cells.extend(
        Stage::ALL
            .iter()
            .map(|stage| optional(journey.stages_ns.get(*stage))),
    );
    cells.push(field(journey.complete));
    cells.push(optional(journey.drop_reason.as_deref()));
    let missing: Vec<String> = journey
        .missing
        .iter()
        .map(|missing| format!("{}: {}", missing.stage.name(), missing.reason))
        .collect();
    cells.push(field(missing.join("; ")));
    cells.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::Missing;

    #[test]
    fn rows_line_up_with_the_header_and_quote_commas() {
        let journey = Journey {
            id: 7,
            dev: "lo".into(),
            comm: Some("a,b".into()),
            missing: vec![Missing {
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
}
