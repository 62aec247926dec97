//! Draws `tracer top` with ratatui: the header, the table of rows, the detail pane of the
//! selected row, the legend and the keys; a message instead when the terminal is too small.

mod detail;
mod table;
#[cfg(test)]
mod tests;

use std::time::Duration;

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Paragraph, Wrap},
};
use unicode_width::UnicodeWidthChar as _;

use super::model::TopModel;
use crate::journey::Stage;

/// The smallest terminal `top` draws in; a smaller one shows a message.
pub const MIN_WIDTH: u16 = 60;
/// See [`MIN_WIDTH`].
pub const MIN_HEIGHT: u16 = 12;
/// Below this height the detail pane is left out.
const DETAIL_MIN_HEIGHT: u16 = 20;

/// How the screen looks.
#[derive(Clone, Copy, Debug)]
pub struct Look {
    /// Colours (else bold, underline and reverse video only: NO_COLOR, dumb terminals).
    pub color: bool,
    /// How often the numbers move.
    pub refresh: Duration,
}

impl Look {
    /// A stage's part of a bar: its letter, on its colour when there is colour.
    fn stage(&self, stage: Stage) -> Style {
        if !self.color {
            return Style::new();
        }
        let color = match stage {
            Stage::Irq => Color::Red,
            Stage::SoftirqWait => Color::Yellow,
            Stage::Poll => Color::Green,
            Stage::Stack => Color::Cyan,
            Stage::Wakeup => Color::Blue,
            Stage::Runqueue => Color::Magenta,
            Stage::Syscall | Stage::Total => Color::Gray,
        };
        Style::new().bg(color).fg(Color::Black)
    }

    /// Something that needs attention (lost events, the pause).
    fn alert(&self) -> Style {
        let style = Style::new().add_modifier(Modifier::BOLD);
        if self.color {
            style.fg(Color::Red)
        } else {
            style.add_modifier(Modifier::UNDERLINED)
        }
    }

    /// Column titles.
    fn title(&self) -> Style {
        let style = Style::new().add_modifier(Modifier::BOLD);
        if self.color {
            style.fg(Color::Cyan)
        } else {
            style
        }
    }

    /// Text of less weight (absent stages, hints).
    fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    /// The selected row.
    fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
}

/// A stage's letter in the bars and the legend.
pub fn stage_letter(stage: Stage) -> char {
    match stage {
        Stage::Irq => 'i',
        Stage::SoftirqWait => 's',
        Stage::Poll => 'p',
        Stage::Stack => 'n',
        Stage::Wakeup => 'w',
        Stage::Runqueue => 'r',
        Stage::Syscall => 'c',
        Stage::Total => 't',
    }
}

/// The stages a journey's time is split into (all but the total).
const PARTS: [Stage; 7] = [
    Stage::Irq,
    Stage::SoftirqWait,
    Stage::Poll,
    Stage::Stack,
    Stage::Wakeup,
    Stage::Runqueue,
    Stage::Syscall,
];

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, model: &TopModel, look: &Look) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "tracer top needs at least {MIN_WIDTH}x{MIN_HEIGHT}; this terminal is {}x{}. \
             Enlarge it, or press q to quit.",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let sorted = model.rows();
    // The table takes what its rows need; the detail pane what is left, within bounds.
    let rest = area.height - 5;
    let wanted = u16::try_from(sorted.len() + 1).unwrap_or(u16::MAX).max(3);
    let detail_height = if area.height >= DETAIL_MIN_HEIGHT {
        rest.saturating_sub(wanted).clamp(11, 17)
    } else {
        0
    };
    let [header, rows, detail, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(2),
        Constraint::Length(detail_height),
        Constraint::Length(2),
    ])
    .areas(area);
    draw_header(frame, header, model, look);
    let selected = model.selected_index(&sorted);
    table::draw(frame, rows, model, &sorted, selected, look);
    if detail_height > 0 {
        detail::draw(frame, detail, model, sorted.get(selected).copied(), look);
    }
    draw_footer(frame, footer, look);
}

fn draw_header(frame: &mut Frame, area: Rect, model: &TopModel, look: &Look) {
    let header = &model.header;
    let mut title = vec![Span::styled("tracer top", look.title())];
    if model.paused {
        title.push(Span::raw("  "));
        title.push(Span::styled(
            format!("PAUSED, {} not counted", header.paused_skipped),
            look.alert(),
        ));
    }
    title.push(Span::raw(format!(
        "  by {}  sort {}  refresh {}  for {:.0}s",
        model.by.name(),
        model.sort.name(),
        seconds(look.refresh),
        header.seconds
    )));
    let mut rates = vec![Span::raw(format!(
        "packets/s {}  events/s {}  tracer cpu {}",
        rate(header.packets_per_s),
        rate(header.events_per_s),
        header
            .cpu_percent
            .map_or("-".to_owned(), |cpu| format!("{cpu:.1}%"))
    ))];
    for note in &model.notes {
        rates.push(Span::raw("  "));
        rates.push(Span::styled(note.clone(), look.alert()));
    }
    let lost: u64 = header.lost_per_cpu.iter().sum();
    let per_cpu: Vec<String> = header
        .lost_per_cpu
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(cpu, n)| format!("cpu{cpu} {n}"))
        .collect();
    let lost_text = if per_cpu.is_empty() {
        format!("lost {lost}")
    } else {
        format!("lost {lost} ({})", per_cpu.join(", "))
    };
    let loss_style = if lost > 0 || header.late > 0 {
        look.alert()
    } else {
        Style::new()
    };
    let facts = vec![
        Span::raw(format!(
            "journeys {} ({} complete, {} incomplete)  ",
            count(header.journeys),
            count(header.complete),
            count(header.incomplete())
        )),
        Span::styled(lost_text, loss_style),
        Span::styled(format!("  late {}", count(header.late)), loss_style),
    ];
    let lines = vec![Line::from(title), Line::from(rates), Line::from(facts)];
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_footer(frame: &mut Frame, area: Rect, look: &Look) {
    let mut legend = vec![Span::raw("stage p50s: ")];
    for stage in PARTS {
        legend.push(Span::styled(
            stage_letter(stage).to_string(),
            look.stage(stage),
        ));
        legend.push(Span::raw(format!(" {} ", stage.name())));
    }
    let keys = [
        ("q", "quit"),
        ("\u{2191}\u{2193}/jk", "select"),
        ("s/S", "sort"),
        ("g", "group"),
        ("p", "pause"),
        ("r", "reset"),
    ];
    let mut help = Vec::new();
    for (key, what) in keys {
        help.push(Span::styled(key, look.title()));
        help.push(Span::raw(format!(" {what}  ")));
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(legend), Line::from(help)]),
        area,
    );
}

/// A rate in at most 6 columns: `0.5`, `512`, `12.3k`, `512k`, `4.1M`.
pub fn rate(per_second: f64) -> String {
    match per_second {
        r if r < 10.0 => format!("{r:.1}"),
        r if r < 10_000.0 => format!("{r:.0}"),
        r if r < 100_000.0 => format!("{:.1}k", r / 1e3),
        r if r < 10_000_000.0 => format!("{:.0}k", r / 1e3),
        r => format!("{:.1}M", r / 1e6),
    }
}

/// A count, exact below ten million: `9999999`, `12.3M`, `4.56G`.
pub fn count(n: u64) -> String {
    match n {
        0..10_000_000 => n.to_string(),
        10_000_000..10_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}

/// A refresh period as `1s`, `1.5s` or `250ms`.
fn seconds(period: Duration) -> String {
    match period.as_millis() {
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms if ms > 1000 => format!("{}s", ms as f64 / 1000.0),
        ms => format!("{ms}ms"),
    }
}

/// `text` cut to `width` columns, keeping its last `tail` characters (a pid), with `…`
/// where it was cut; padded to `width`.
pub fn fit_keeping(text: &str, tail: usize, width: usize) -> String {
    let total: usize = text.chars().map(|c| c.width().unwrap_or(0)).sum();
    let split = text.len()
        - text
            .chars()
            .rev()
            .take(tail)
            .map(char::len_utf8)
            .sum::<usize>();
    let (head, end) = text.split_at(split);
    let end_width: usize = end.chars().map(|c| c.width().unwrap_or(0)).sum();
    if total <= width || end_width + 2 > width {
        return fit(text, width);
    }
    let mut out = fit(head, width - end_width);
    out.truncate(out.trim_end().len());
    out.push_str(end);
    let used: usize = out.chars().map(|c| c.width().unwrap_or(0)).sum();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    out
}

/// `text` cut to `width` columns (ending in `…` when cut) and padded to it.
pub fn fit(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    let total: usize = text.chars().map(|c| c.width().unwrap_or(0)).sum();
    let room = if total > width {
        width.saturating_sub(1)
    } else {
        width
    };
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        out.push(c);
        used += w;
    }
    if total > width && width > 0 {
        out.push('\u{2026}');
        used += 1;
    }
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    out
}
