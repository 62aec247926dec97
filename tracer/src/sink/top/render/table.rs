//! The table: one line per row (name, count/s, total p50/p99, per-stage p99 when wide) and
//! a stacked bar of where its median journey's time goes.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
};

use super::{Look, PARTS, fit_keeping, rate, stage_letter};
use crate::{
    journey::Stage,
    sink::{
        summary::human_ns,
        top::{
            model::{SortKey, TopModel},
            row::{GroupBy, Row},
        },
    },
};

/// Width of a number column.
const NUMBER: usize = 8;
/// Width of the count/s column.
const RATE: usize = 7;
/// The narrowest bar worth drawing.
const MIN_BAR: usize = 10;

/// Which columns fit in a width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Columns {
    /// Width of the name column.
    pub name: usize,
    /// Journeys since the reset.
    pub count: bool,
    /// Each stage's p99.
    pub stages: bool,
    /// Width of the bar.
    pub bar: usize,
}

impl Columns {
    /// The columns for a table `width` wide whose longest name is `longest`.
    pub fn fit(width: usize, longest: usize) -> Self {
        // Marker, rate, p50, p99 and the gaps before each column.
        let fixed = 2 + (RATE + 1) + 2 * (NUMBER + 1) + 1;
        let name = longest.clamp(12, 34).min(width / 3);
        let count = width >= 100;
        let stages = width >= fixed + name + (NUMBER + 1) * (1 + PARTS.len()) + 24;
        let used = fixed
            + name
            + usize::from(count) * (NUMBER + 1)
            + usize::from(stages) * PARTS.len() * (NUMBER + 1);
        Self {
            name,
            count,
            stages,
            bar: width.saturating_sub(used).max(MIN_BAR.min(width)),
        }
    }
}

/// Splits `width` cells among `parts` in proportion to their values (largest remainder),
/// giving every part with a value at least one cell while there is room.
pub fn stacked(parts: &[(Stage, u64)], width: usize) -> Vec<(Stage, usize)> {
    let sum: u64 = parts.iter().map(|(_, value)| value).sum();
    if sum == 0 || width == 0 {
        return Vec::new();
    }
    let exact: Vec<f64> = parts
        .iter()
        .map(|(_, value)| *value as f64 * width as f64 / sum as f64)
        .collect();
    let mut cells: Vec<usize> = parts
        .iter()
        .zip(&exact)
        .map(|((_, value), x)| match value {
            0 => 0,
            _ => (x.floor() as usize).max(1),
        })
        .collect();
    // The cells given to small parts come from the widest.
    while cells.iter().sum::<usize>() > width {
        let widest = (0..cells.len()).max_by_key(|&i| cells[i]).unwrap_or(0);
        if cells[widest] <= 1 {
            break;
        }
        cells[widest] -= 1;
    }
    let mut order: Vec<usize> = (0..parts.len()).filter(|&i| parts[i].1 > 0).collect();
    order.sort_by(|&a, &b| (exact[b] - cells[b] as f64).total_cmp(&(exact[a] - cells[a] as f64)));
    let mut left = width.saturating_sub(cells.iter().sum());
    for i in order
        .into_iter()
        .cycle()
        .take(left.min(parts.len() * width))
    {
        if left == 0 {
            break;
        }
        cells[i] += 1;
        left -= 1;
    }
    // More parts than cells: the first ones that fit.
    let mut room = width;
    parts
        .iter()
        .zip(cells)
        .filter(|(_, cells)| *cells > 0)
        .map_while(|((stage, _), cells)| {
            room = room.checked_sub(cells)?;
            Some((*stage, cells))
        })
        .collect()
}

/// The bar of a row: each stage's p50, to scale.
fn bar(row: &Row, width: usize, look: &Look) -> Vec<Span<'static>> {
    let parts: Vec<(Stage, u64)> = PARTS
        .iter()
        .filter_map(|&stage| Some((stage, row.quantile(stage, 0.5)?)))
        .collect();
    stacked(&parts, width)
        .into_iter()
        .map(|(stage, cells)| {
            Span::styled(
                stage_letter(stage).to_string().repeat(cells),
                look.stage(stage),
            )
        })
        .collect()
}

fn quantile(row: &Row, stage: Stage, q: f64) -> String {
    row.quantile(stage, q).map_or("-".to_owned(), human_ns)
}

/// Draws the column titles and as many rows as fit, keeping the selected one in view.
pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    model: &TopModel,
    rows: &[&Row],
    selected: usize,
    look: &Look,
) {
    let longest = rows
        .iter()
        .map(|row| unicode_width::UnicodeWidthStr::width(row.label.as_str()))
        .max()
        .unwrap_or(0);
    let columns = Columns::fit(usize::from(area.width), longest);
    let mut lines = vec![titles(model, &columns, look)];
    if rows.is_empty() {
        lines.push(Line::styled(
            "  no journeys yet: waiting for packets read by a process",
            look.dim(),
        ));
    }
    let visible = usize::from(area.height).saturating_sub(1).max(1);
    let offset = (selected + 1).saturating_sub(visible);
    for (index, row) in rows.iter().enumerate().skip(offset).take(visible) {
        let chosen = index == selected;
        let mut text = format!(
            "{}{} {:>RATE$}",
            if chosen { '>' } else { ' ' },
            fit_keeping(&row.label, row.tail, columns.name),
            rate(row.rate)
        );
        if columns.count {
            text.push_str(&format!(" {:>NUMBER$}", row.journeys()));
        }
        text.push_str(&format!(
            " {:>NUMBER$} {:>NUMBER$}",
            quantile(row, Stage::Total, 0.5),
            quantile(row, Stage::Total, 0.99)
        ));
        if columns.stages {
            for stage in PARTS {
                text.push_str(&format!(" {:>NUMBER$}", quantile(row, stage, 0.99)));
            }
        }
        text.push_str("  ");
        let mut spans = vec![Span::raw(text)];
        spans.extend(bar(row, columns.bar, look));
        let line = Line::from(spans);
        lines.push(if chosen {
            line.patch_style(look.selected())
        } else {
            line
        });
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// The column titles, the sort column marked.
fn titles(model: &TopModel, columns: &Columns, look: &Look) -> Line<'static> {
    let sort = model.sort;
    let mark = |key: SortKey, title: &str, width: usize, right: bool| {
        let title = if key == sort {
            format!("{title}\u{25bc}")
        } else {
            title.to_owned()
        };
        if right {
            format!("{title:>width$}")
        } else {
            format!("{title:<width$}")
        }
    };
    let name = match model.by {
        GroupBy::Process => "PROCESS",
        GroupBy::Flow => "FLOW",
        GroupBy::Dev => "DEV",
        GroupBy::Cpu => "READER CPU",
    };
    let mut text = format!(
        " {} {}",
        mark(SortKey::Name, name, columns.name, false),
        mark(SortKey::Rate, "N/s", RATE, true)
    );
    if columns.count {
        text.push_str(&format!(" {:>NUMBER$}", "COUNT"));
    }
    text.push_str(&format!(
        " {} {}",
        mark(SortKey::P50(Stage::Total), "P50", NUMBER, true),
        mark(SortKey::P99(Stage::Total), "P99", NUMBER, true)
    ));
    if columns.stages {
        for stage in PARTS {
            let title = format!("{}99", short_name(stage));
            text.push_str(&format!(
                " {}",
                mark(SortKey::P99(stage), &title, NUMBER, true)
            ));
        }
    }
    text.push_str("  MEDIAN JOURNEY");
    Line::from(Span::styled(text, look.title()))
}

/// A stage's name in at most 6 columns, for the per-stage titles.
fn short_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Irq => "IRQ",
        Stage::SoftirqWait => "SIRQW",
        Stage::Poll => "POLL",
        Stage::Stack => "STACK",
        Stage::Wakeup => "WAKE",
        Stage::Runqueue => "RUNQ",
        Stage::Syscall => "SYSC",
        Stage::Total => "TOTAL",
    }
}
