//! The screen drawn into ratatui's TestBackend: what each size shows, colour and its
//! absence, hostile names, the pure layout helpers.

use ratatui::{Terminal, backend::TestBackend, buffer::Buffer, style::Color};

use super::{
    detail::log2_lines,
    table::{Columns, stacked},
    *,
};
use crate::sink::top::{
    Action,
    fixtures::{counters, journey, two_readers},
    model::TopModel,
    row::GroupBy,
};

const LOOK: Look = Look {
    color: true,
    refresh: Duration::from_secs(1),
};

fn render(model: &TopModel, look: &Look, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, model, look)).unwrap();
    terminal.backend().buffer().clone()
}

fn lines(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

fn find<'a>(lines: &'a [String], text: &str) -> (usize, &'a String) {
    lines
        .iter()
        .enumerate()
        .find(|(_, line)| line.contains(text))
        .unwrap_or_else(|| panic!("{text:?} not on screen:\n{}", lines.join("\n")))
}

#[test]
fn eighty_by_twenty_four_shows_header_rows_detail_and_keys() {
    let screen = lines(&render(&two_readers(), &LOOK, 80, 24));
    let text = screen.join("\n");
    assert!(
        screen[0].starts_with("tracer top  by process  sort total p99"),
        "{text}"
    );
    assert!(
        screen[1].starts_with("packets/s 25  events/s 500  tracer cpu 1.0%"),
        "{text}"
    );
    assert!(
        screen[2].starts_with("journeys 50 (50 complete, 0 incomplete)  lost 0  late 0"),
        "{text}"
    );
    let (title, titles) = find(&screen, "PROCESS");
    assert!(
        titles.contains("P99\u{25bc}"),
        "the sort column is marked: {titles}"
    );
    let (alpha, alpha_line) = find(&screen, "alpha(10)");
    let (busy, busy_line) = find(&screen, "busy(20)");
    assert_eq!((alpha, busy), (title + 1, title + 2), "{text}");
    assert!(
        alpha_line.starts_with(">alpha(10)"),
        "selected: {alpha_line}"
    );
    assert!(busy_line.starts_with(" busy(20)"), "{busy_line}");
    assert!(busy_line.contains("20.0"), "count/s: {busy_line}");
    // The median journey: runqueue dominates alpha's, syscall busy's.
    let bar = |line: &str, letter: char| line.chars().filter(|c| *c == letter).count();
    assert!(bar(alpha_line, 'r') > bar(alpha_line, 'c'), "{alpha_line}");
    assert!(bar(busy_line, 'c') > bar(busy_line, 'r'), "{busy_line}");
    find(&screen, "alpha(10) \u{b7} 10 journeys \u{b7} 10 complete");
    find(&screen, "slowest: 99.0us");
    find(&screen, "total (log2)");
    find(&screen, "runqueue (log2)");
    find(&screen, "no irq in 100%: no hard IRQ: loopback");
    let (_, irq) = find(&screen, "irq ");
    assert!(irq.contains("   0%  absent: no hard \u{2026}"), "{irq}");
    let (_, runqueue) = find(&screen, "runqueue ");
    assert!(runqueue.contains(" 100%  "), "{runqueue}");
    assert!(
        screen[22].starts_with("stage p50s: i irq s softirq_wait"),
        "{text}"
    );
    assert!(screen[23].starts_with("q quit"), "{text}");
}

#[test]
fn wide_terminals_add_counts_and_stage_columns() {
    let model = two_readers();
    let screen = lines(&render(&model, &LOOK, 100, 30));
    let (_, titles) = find(&screen, "PROCESS");
    assert!(
        titles.contains("COUNT") && !titles.contains("RUNQ99"),
        "{titles}"
    );
    let screen = lines(&render(&model, &LOOK, 200, 50));
    let (_, titles) = find(&screen, "PROCESS");
    for title in ["COUNT", "IRQ99", "SIRQW99", "RUNQ99", "SYSC99"] {
        assert!(titles.contains(title), "{title}: {titles}");
    }
    let (_, alpha) = find(&screen, ">alpha(10)");
    assert!(alpha.contains("50.0us"), "runqueue p99 column: {alpha}");
}

#[test]
fn every_size_draws_without_panicking_and_small_ones_say_so() {
    let mut model = two_readers();
    model.apply(Action::Down);
    for (width, height) in [(0, 0), (1, 1), (59, 30), (80, 11)] {
        let screen = lines(&render(&model, &LOOK, width, height)).join("");
        if width > 40 {
            assert!(screen.contains("needs at least 60x12"), "{screen}");
        }
    }
    for width in (60..=130).step_by(7) {
        for height in 12..=40 {
            for by in 0..GroupBy::ALL.len() {
                let mut model = model.clone();
                (0..by).for_each(|_| model.apply(Action::NextGroup));
                render(&model, &LOOK, width, height);
            }
        }
    }
    let screen = lines(&render(&model, &LOOK, 60, 12));
    find(&screen, "busy(20)");
}

#[test]
fn no_colour_draws_in_reverse_and_bold_only() {
    let model = two_readers();
    let colored = render(&model, &LOOK, 80, 24);
    assert!(
        colored.content.iter().any(|cell| cell.bg == Color::Magenta),
        "runqueue has its colour"
    );
    let plain = render(
        &model,
        &Look {
            color: false,
            ..LOOK
        },
        80,
        24,
    );
    for cell in &plain.content {
        assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{cell:?}");
    }
    assert_eq!(lines(&plain), lines(&colored), "the same text either way");
}

#[test]
fn hostile_names_are_escaped_and_long_ones_cut() {
    let mut model = TopModel::new(GroupBy::Process, vec![]);
    model.add(&journey(7, "\x1b]0;x\x07\r\nEVIL", 0, 5000, 10_000, 100));
    let long = "a-very-long-task-name-that-will-not-fit";
    model.add(&journey(8, long, 0, 5001, 10_000, 100));
    let buffer = render(&model, &LOOK, 80, 24);
    for cell in &buffer.content {
        assert!(!cell.symbol().chars().any(char::is_control), "{cell:?}");
    }
    let screen = lines(&buffer);
    find(&screen, "\\x1b]0;x\\x07\\x0d\\x0aEV\u{2026}(7)");
    find(&screen, "a-very-long-task-name-\u{2026}(8)");
}

#[test]
fn an_empty_view_says_it_waits() {
    let mut model = TopModel::new(GroupBy::Flow, vec!["not tracing sock:sk_data_ready".into()]);
    model.close_interval(counters(1, 0));
    let screen = lines(&render(&model, &LOOK, 80, 24));
    find(&screen, "no journeys yet");
    find(&screen, "not tracing sock:sk_data_ready");
    find(&screen, "FLOW");
}

#[test]
fn the_pause_and_loss_show_in_the_header() {
    let mut model = two_readers();
    model.close_interval(crate::sink::top::Counters {
        lost_per_cpu: vec![0, 10],
        ..counters(4, 1000)
    });
    model.apply(Action::Pause);
    model.add(&journey(1, "x", 0, 1, 1000, 100));
    let screen = lines(&render(&model, &LOOK, 80, 24));
    find(&screen, "PAUSED, 1 not counted");
    find(&screen, "lost 7 (cpu1 7)");
}

#[test]
fn stacked_bars_fill_their_width_in_proportion() {
    use crate::journey::Stage::*;
    assert_eq!(
        stacked(&[(Poll, 1), (Stack, 3)], 8),
        [(Poll, 2), (Stack, 6)]
    );
    let small = stacked(&[(Irq, 1), (Stack, 1000), (Syscall, 1)], 10);
    assert_eq!(
        small,
        [(Irq, 1), (Stack, 8), (Syscall, 1)],
        "small parts keep a cell"
    );
    let parts = [(Irq, 3), (Poll, 3), (Stack, 3)];
    assert_eq!(
        stacked(&parts, 10).iter().map(|(_, n)| n).sum::<usize>(),
        10
    );
    assert_eq!(stacked(&parts, 2).len(), 2, "more parts than cells");
    assert!(stacked(&parts, 0).is_empty());
    assert!(stacked(&[(Irq, 0)], 10).is_empty());
}

#[test]
fn histograms_keep_their_densest_buckets_and_merge_the_rest() {
    let mut counts = [0u64; 65];
    counts[5] = 1; // [16ns, 32ns)
    counts[11] = 4; // [1024ns, 2048ns)
    counts[12] = 9;
    counts[14] = 2;
    let line = |label: &str, count: u64| (label.to_owned(), count);
    assert_eq!(
        log2_lines(&counts, 10),
        [
            line("16ns", 1),
            line("32ns", 0),
            line("64ns", 0),
            line("128ns", 0),
            line("256ns", 0),
            line("512ns", 0),
            line("1.0us", 4),
            line("2.0us", 9),
            line("4.1us", 0),
            line("8.2us", 2),
        ]
    );
    // The densest run keeps its resolution; the rest is merged below and above it.
    assert_eq!(
        log2_lines(&counts, 4),
        [
            line("<1.0us", 1),
            line("1.0us", 4),
            line("2.0us", 9),
            line("\u{2265}4.1us", 2)
        ]
    );
    assert_eq!(
        log2_lines(&counts, 3),
        [
            line("<2.0us", 5),
            line("2.0us", 9),
            line("\u{2265}4.1us", 2)
        ]
    );
    assert_eq!(
        log2_lines(&counts, 1),
        [line("<16.4us", 16)],
        "one line for all"
    );
    assert!(log2_lines(&[0; 65], 5).is_empty());
    let mut top = [0u64; 65];
    top[64] = 1;
    assert_eq!(log2_lines(&top, 1).len(), 1, "no overflow past 2^63");
}

#[test]
fn columns_and_fit() {
    let narrow = Columns::fit(80, 19);
    assert_eq!(
        (narrow.name, narrow.count, narrow.stages),
        (19, false, false)
    );
    assert_eq!(narrow.bar, 80 - 29 - 19);
    assert!(Columns::fit(100, 19).count);
    assert!(Columns::fit(200, 19).stages);
    assert_eq!(fit("abc", 5), "abc  ");
    assert_eq!(fit("abcdef", 4), "abc\u{2026}");
    assert_eq!(fit("abc", 0), "");
    assert_eq!(fit_keeping("reader(123)", 5, 9), "rea\u{2026}(123)");
    assert_eq!(fit_keeping("reader(123)", 5, 12), "reader(123) ");
    assert_eq!(
        fit_keeping("reader(123)", 5, 6),
        "reade\u{2026}",
        "no room for the tail"
    );
    assert_eq!(rate(0.5), "0.5");
    assert_eq!(rate(512.4), "512");
    assert_eq!(rate(12_345.0), "12.3k");
    assert_eq!(rate(123_456.0), "123k");
    assert_eq!(count(9_999_999), "9999999");
    assert_eq!(count(12_345_678), "12.3M");
}
