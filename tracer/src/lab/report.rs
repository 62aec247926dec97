//! A lab's text output: the phase table, the reader's numbers, a representative packet, the
//! claims, the questions and the model answers.

use super::{Lab, Measured};
use crate::{
    journey::{Journey, Stage},
    sink::{analysis, summary::human_ns},
};

pub fn print_text(lab: &Lab, m: &[Measured], claims: &[(String, bool)], answers: bool) {
    let ns = |value: Option<u64>| value.map_or("-".to_owned(), human_ns);
    crate::outln!(
        "{:<40} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "phase",
        "packets",
        "poll",
        "stack",
        "wakeup",
        "runqueue",
        "total",
        "woken",
        "pkt/poll"
    );
    for phase in m {
        crate::outln!(
            "{:<40} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7.0}% {:>8}",
            phase.phase.label,
            phase.journeys.len(),
            ns(phase.p50(Stage::Poll)),
            ns(phase.p50(Stage::Stack)),
            ns(phase.p50(Stage::Wakeup)),
            ns(phase.p50(Stage::Runqueue)),
            ns(phase.p50(Stage::Total)),
            phase.fraction(|j| j.stages_ns.wakeup.is_some()) * 100.0,
            phase
                .packets_per_poll()
                .map_or("-".to_owned(), |v| format!("{v:.2}")),
        );
    }
    crate::outln!("(p50 per stage; reader: CPU time and context switches per phase below)");
    for phase in m {
        crate::outln!(
            "  {:<38} reader CPU {}, voluntary switches {}, involuntary {}",
            phase.phase.label,
            human_ns(phase.reader_number("reader_cpu_ns")),
            phase.reader_number("voluntary_switches"),
            phase.reader_number("involuntary_switches")
        );
    }
    if let Some(first) = m.first() {
        let mut sorted: Vec<&Journey> = first
            .journeys
            .iter()
            .filter(|j| j.stages_ns.total.is_some())
            .collect();
        sorted.sort_by_key(|j| j.stages_ns.total);
        if let Some(median) = sorted.get(sorted.len() / 2) {
            crate::outln!(
                "\na representative packet of phase \"{}\" (the median total):",
                first.phase.label
            );
            crate::out!("{}", analysis::waterfall(median, 60));
        }
    }
    crate::outln!("\nmeasured claims:");
    for (claim, holds) in claims {
        crate::outln!(
            "  [{}] {claim}",
            if *holds {
                "holds"
            } else {
                "DOES NOT HOLD on this run"
            }
        );
    }
    crate::outln!("\nquestions:");
    for (index, question) in lab.questions.iter().enumerate() {
        crate::outln!("  {}. {question}", index + 1);
    }
    if answers {
        crate::outln!("\nmodel answers (from this run's numbers):");
        for line in (lab.answers)(m) {
            crate::outln!("  {line}");
        }
    }
}

pub fn textwrap(text: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line + word.len() > 92 {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}
