//! `tracer events`: the raw decoded event stream.

use std::time::Duration;

use clap::Args;
use tracer::session::events::stream;

use super::{FilterArgs, duration_arg};

/// Options of `tracer events`.
#[derive(Clone, Debug, Args)]
pub struct EventsArgs {
    /// Stop after this long (e.g. 5s, 500ms, 2m); default: until Ctrl-C.
    #[arg(short, long, value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// One JSON object per event on stdout (ts, cpu, kind, the task, the event's fields).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
}

pub async fn run(args: EventsArgs, verbose: bool) -> anyhow::Result<()> {
    let options = args.filters.probe_options(verbose)?;
    let stop = async move {
        match args.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    stream(&options, args.json, |_| {}, stop).await.map(|_| ())
}
