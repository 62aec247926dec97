//! The detail pane of the selected row: each stage's p50 and p99 beside the slowest journey
//! of the last interval as a to-scale waterfall, and log2 histograms of total and runqueue.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    text::{Line, Span},
    widgets::{Block, Paragraph},
};

use super::{Look, PARTS, fit, stage_letter};
use crate::{
    journey::Stage,
    sink::{
        analysis::waterfall_rows,
        escape,
        summary::human_ns,
        top::{model::TopModel, row::Row},
    },
};

/// Draws the pane (a hint when there is no row yet).
pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    model: &TopModel,
    row: Option<&Row>,
    look: &Look,
) {
    let Some(row) = row else {
        let block = Block::bordered().title(" detail ");
        let hint = Paragraph::new(Line::styled(
            "the selected row's stages, histograms and slowest journey appear here",
            look.dim(),
        ))
        .block(block);
        frame.render_widget(hint, area);
        return;
    };
    let mut block = Block::bordered().title(format!(
        " {} \u{b7} {} journeys \u{b7} {} complete \u{b7} {} lost \u{b7} {} dropped ",
        row.label,
        row.journeys(),
        row.complete,
        row.lost,
        row.dropped
    ));
    if let Some((stage, reason, count)) = row.top_missing() {
        block = block.title_bottom(format!(
            " no {} in {}: {} ",
            stage.name(),
            percent(count, row.journeys()),
            escape::text(reason)
        ));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let histogram_width = (inner.width * 3 / 10).clamp(22, 40);
    let [stages, _, histograms] = Layout::horizontal([
        Constraint::Min(30),
        Constraint::Length(1),
        Constraint::Length(histogram_width),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(stage_lines(model, row, stages.width, look)),
        stages,
    );
    let [total, runqueue] =
        Layout::vertical([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(histograms);
    for (stage, area) in [(Stage::Total, total), (Stage::Runqueue, runqueue)] {
        let lines = histogram_lines(row, stage, area, look);
        frame.render_widget(Paragraph::new(lines), area);
    }
}

/// `part` of `whole` as a percentage.
fn percent(part: u64, whole: u64) -> String {
    format!("{:.0}%", part as f64 * 100.0 / whole.max(1) as f64)
}

/// One line per stage: name, p50, p99, then the slowest journey's stage as a bar placed
/// where it happened and its duration.
fn stage_lines(model: &TopModel, row: &Row, width: u16, look: &Look) -> Vec<Line<'static>> {
    const NAME: usize = 12;
    // Name, p50, p99 and share take 37 columns; the slowest journey's duration 9.
    let bar_width = usize::from(width).saturating_sub(NAME + 34);
    let slowest = row.slowest.as_ref();
    let title = match slowest {
        Some(slowest) => {
            let total = slowest.journey.stages_ns.total.unwrap_or(0);
            let age = model.header.now_ns.saturating_sub(slowest.interval_end_ns) / 1_000_000_000;
            let when = if age == 0 {
                String::new()
            } else {
                format!(" {age}s ago")
            };
            format!("slowest: {}{when}", human_ns(total))
        }
        None => "slowest: none yet".to_owned(),
    };
    let mut lines = vec![Line::styled(
        format!(
            "{:<NAME$} {:>8} {:>8} {:>4}  {title}",
            "stage", "p50", "p99", "in"
        ),
        look.title(),
    )];
    let waterfall = slowest.map(|slowest| waterfall_rows(&slowest.journey));
    let total = slowest
        .and_then(|slowest| slowest.journey.stages_ns.total)
        .unwrap_or(0)
        .max(1);
    let scale = |ns: u64| (ns as f64 * bar_width as f64 / total as f64).round() as usize;
    for stage in PARTS.into_iter().chain([Stage::Total]) {
        let quantile = |q| row.quantile(stage, q).map_or("-".to_owned(), human_ns);
        // The share of the row's journeys that had the stage: p50 and p99 are theirs.
        let with = row
            .stages
            .stage(stage)
            .map_or(0, |histogram| histogram.count());
        let mut spans = vec![Span::raw(format!(
            "{:<NAME$} {:>8} {:>8} {:>4}  ",
            stage.name(),
            quantile(0.5),
            quantile(0.99),
            percent(with, row.journeys())
        ))];
        let part = match stage {
            Stage::Total => slowest.map(|_| (0, total)),
            _ => waterfall
                .iter()
                .flatten()
                .find(|(part, _, _)| *part == stage)
                .map(|(_, from, ns)| (*from, *ns)),
        };
        match part {
            Some((_, ns)) if bar_width == 0 => spans.push(Span::raw(human_ns(ns))),
            Some((from, ns)) => {
                let offset = scale(from).min(bar_width.saturating_sub(1));
                let length = scale(ns).clamp(1, bar_width - offset);
                spans.push(Span::raw(" ".repeat(offset)));
                spans.push(Span::styled(
                    stage_letter(stage).to_string().repeat(length),
                    look.stage(stage),
                ));
                spans.push(Span::raw(format!(
                    "{} {:>8}",
                    " ".repeat(bar_width - offset - length),
                    human_ns(ns)
                )));
            }
            None if with == 0 => {
                let reason = row
                    .top_missing_of(stage)
                    .map_or("absent".to_owned(), |reason| {
                        format!("absent: {}", escape::text(reason))
                    });
                spans.push(Span::styled(fit(&reason, bar_width + 9), look.dim()));
            }
            // The row has the stage; its slowest journey does not: say why.
            None => {
                let reason = slowest
                    .and_then(|slowest| {
                        slowest
                            .journey
                            .missing
                            .iter()
                            .find(|missing| missing.stage == stage)
                    })
                    .map_or("-".to_owned(), |missing| {
                        format!("- {}", escape::text(&missing.reason))
                    });
                spans.push(Span::styled(fit(&reason, bar_width + 9), look.dim()));
            }
        }
        lines.push(Line::from(spans));
    }
    lines
}

/// Log2 buckets as at most `lines` labelled counts. When there are more buckets than
/// lines, the run of buckets holding the most values keeps its resolution and the buckets
/// below and above it are merged into one `<x` and one `≥y` line.
pub(super) fn log2_lines(counts: &[u64; 65], lines: usize) -> Vec<(String, u64)> {
    let used = || (0..65usize).filter(|&bit| counts[bit] > 0);
    let (Some(first), Some(last)) = (used().next(), used().next_back()) else {
        return Vec::new();
    };
    // Bucket `bit` holds [low(bit), low(bit + 1)).
    let low = |bit: usize| match bit {
        0 => 0,
        _ => 1u64.checked_shl(bit as u32 - 1).unwrap_or(u64::MAX),
    };
    let lines = lines.max(1);
    let sum = |from: usize, to: usize| counts[from..=to].iter().sum::<u64>();
    // The window [from, to] with the most values that fits with its merged lines; among
    // equals the higher one, nearer the tail.
    let mut best = (first, last);
    let mut most = None;
    for from in first..=last {
        for to in from..=last {
            let needed = to - from + 1 + usize::from(from > first) + usize::from(to < last);
            if needed > lines {
                break;
            }
            let inside = sum(from, to);
            if most.is_none_or(|most| inside >= most) {
                most = Some(inside);
                best = (from, to);
            }
        }
    }
    if most.is_none() {
        // One line for a histogram that spans several buckets: everything below the top.
        return vec![(format!("<{}", human_ns(low(last + 1))), sum(first, last))];
    }
    let (from, to) = best;
    let mut out = Vec::new();
    if from > first {
        out.push((format!("<{}", human_ns(low(from))), sum(first, from - 1)));
    }
    out.extend((from..=to).map(|bit| (human_ns(low(bit)), counts[bit])));
    if to < last {
        out.push((
            format!("\u{2265}{}", human_ns(low(to + 1))),
            sum(to + 1, last),
        ));
    }
    out
}

/// A histogram's title and bars, fitted to `area`.
fn histogram_lines(row: &Row, stage: Stage, area: Rect, look: &Look) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled(
        format!("{} (log2)", stage.name()),
        look.title(),
    )];
    let Some(histogram) = row.stages.stage(stage) else {
        lines.push(Line::styled("no samples", look.dim()));
        return lines;
    };
    let buckets = log2_lines(
        &histogram.log2_counts(),
        usize::from(area.height).saturating_sub(1),
    );
    let most = buckets.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let bar_width = usize::from(area.width).saturating_sub(8 + 7 + 1);
    for (label, count) in buckets {
        let length = (count as f64 * bar_width as f64 / most as f64).ceil() as usize;
        lines.push(Line::from(vec![
            Span::raw(format!("{} {count:>6} ", fit(&label, 8))),
            Span::styled(
                stage_letter(stage).to_string().repeat(length),
                look.stage(stage),
            ),
        ]));
    }
    lines
}
