//! The `top` loop: ring buffer -> pipeline -> the top view, redrawn every refresh and on each
//! key, until `q`, Ctrl-C, SIGINT or SIGTERM.

use std::time::Duration;

use anyhow::Context as _;

use super::{Session, live::engine_config};
use crate::{
    host::{clock, irqmap::IrqMap},
    journey::{JourneyFilter, Tracker},
    probe::{ProbeOptions, Probes},
    sink::{
        escape,
        top::{
            Action, Counters, GroupBy, Look, TopModel,
            input::{Input, KeyReader},
            terminal::Screen,
        },
    },
};

/// What `top` shows, and how.
#[derive(Clone, Debug)]
pub struct TopOptions {
    /// Which journeys.
    pub filter: JourneyFilter,
    /// The first grouping.
    pub by: GroupBy,
    /// How often the numbers move.
    pub refresh: Duration,
    /// Draw in colour.
    pub color: bool,
}

/// What one `top` run saw, for the line printed after the terminal is given back.
#[derive(Debug, Default)]
pub struct TopStats {
    /// Journeys counted since the last reset.
    pub journeys: u64,
    /// Of them, complete.
    pub complete: u64,
    /// Events lost per CPU over the whole run.
    pub lost_per_cpu: Vec<u64>,
}

/// The tracer's counters now.
fn counters(probes: &Probes, tracker: &Tracker) -> anyhow::Result<Counters> {
    Ok(Counters {
        now_ns: clock::monotonic_ns(),
        events: tracker.engine().stats().events,
        cpu_ns: clock::process_cpu_ns(),
        lost_per_cpu: probes.lost_per_cpu()?,
        late: tracker.late_events(),
    })
}

/// What this host cannot trace, for the header (escaped: tracefs text).
fn notes(probes: &Probes) -> Vec<String> {
    let skipped: Vec<String> = probes
        .skipped
        .iter()
        .map(|(kind, _)| {
            let (category, name) = kind.tracepoint();
            format!("{category}:{name}")
        })
        .collect();
    if skipped.is_empty() {
        return Vec::new();
    }
    vec![escape::text(&format!("not tracing {}", skipped.join(", "))).into_owned()]
}

/// Traces and shows the `top` view until the user quits or a signal arrives.
pub async fn run(
    options: &ProbeOptions,
    top: &TopOptions,
    irqs: IrqMap,
) -> anyhow::Result<TopStats> {
    let Session {
        probes,
        mut source,
        mut signals,
    } = Session::start(options)?;
    let mut tracker = Tracker::new(engine_config(&probes, irqs, &top.filter, false));
    let mut model = TopModel::new(top.by, notes(&probes));
    let look = Look {
        color: top.color,
        refresh: top.refresh,
    };
    // Signal handlers are in place (Session::start): a SIGTERM from here on ends the loop,
    // and the screen's drop gives the terminal back.
    let mut screen = Screen::enter()?;
    let (keys, mut inputs) = KeyReader::start().context("starting the key reader")?;
    let mut advance = tokio::time::interval(Duration::from_millis(200));
    // Its first tick, right away, draws the screen and starts the first interval.
    let mut refresh = tokio::time::interval(top.refresh);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut journeys = Vec::new();
    loop {
        let mut redraw = false;
        tokio::select! {
            () = signals.recv() => break,
            _ = advance.tick() => tracker.advance(Some(clock::monotonic_ns()), &mut journeys),
            _ = refresh.tick() => {
                model.close_interval(counters(&probes, &tracker)?);
                redraw = true;
            }
            input = inputs.recv() => match input {
                Some(Input::Action(Action::Quit)) | None => break,
                Some(Input::Action(action)) => {
                    model.apply(action);
                    redraw = true;
                }
                Some(Input::Resize) => redraw = true,
                Some(Input::Failed(err)) => {
                    return Err(err).context("reading the terminal");
                }
            },
            batch = source.next_batch(|bytes| { tracker.push_record(bytes); }) => {
                batch.context("reading the ring buffer")?;
                tracker.advance(None, &mut journeys);
            }
        }
        for journey in journeys.drain(..) {
            if top.filter.keeps(&journey) {
                model.add(&journey);
            }
        }
        if redraw {
            screen
                .terminal
                .draw(|frame| crate::sink::top::draw(frame, &model, &look))
                .context("drawing")?;
        }
    }
    // The key reader stops before the terminal is given back, so it reads no more keys.
    drop(keys);
    drop(screen);
    Ok(TopStats {
        journeys: model.header.journeys,
        complete: model.header.complete,
        lost_per_cpu: probes.lost_per_cpu()?,
    })
}
