//! A finished journey's stage durations, and the reason for every stage it does not have.

use std::borrow::Cow;

use super::{Degraded, Ending, Open};
use crate::journey::model::{Journey, Missing, Stage, StageDurations};

fn span(from: Option<u64>, to: Option<u64>) -> Option<u64> {
    to?.checked_sub(from?)
}

/// A wakeup that found the reader still on its CPU: it had announced it would sleep but not
/// yet switched out, so try_to_wake_up just set it running again (no run queue wait).
const STILL_RUNNING: &str =
    "woken while still on its CPU (before it had switched out): no run queue wait, no switch in";

/// Stage durations and missing-stage reasons of a finished journey, written into its
/// journey in place (the caller moves it out once: a journey is a few hundred bytes).
pub(super) fn finalize(open: &mut Open, incomplete: Option<Ending>, degraded: Degraded) {
    let Open {
        journey,
        softirq_unknown,
        raised_without_irq,
        woke_other,
        ..
    } = open;
    let (softirq_unknown, raised_without_irq, woke_other) =
        (*softirq_unknown, *raised_without_irq, *woke_other);
    // Read in place and the reasons written straight into the journey (no copy of its
    // stamps, no list moved in): the fields it reads apart from the one it writes.
    let Journey {
        ts,
        dev,
        lost_events,
        control,
        drop_reason,
        pid,
        missing,
        ..
    } = &mut **journey;
    let (ts, lost, control, dropped, pid) =
        (&*ts, *lost_events, *control, drop_reason.is_some(), *pid);
    let mut stages = StageDurations {
        irq: span(ts.irq_entry, ts.irq_exit),
        softirq_wait: span(ts.irq_exit.or(ts.softirq_raise), ts.softirq_entry),
        poll: span(ts.softirq_entry, ts.netif_receive),
        stack: span(ts.netif_receive, ts.sk_data_ready),
        wakeup: span(ts.sk_data_ready, ts.waking),
        runqueue: span(ts.waking, ts.switch_in),
        syscall: span(ts.switch_in, ts.recv_return),
        total: None,
    };
    stages.total = span(ts.first(), ts.recv_return);
    let virtual_dev = &**dev == "lo" || dev.starts_with("veth");
    missing.clear();
    let mut note = |stage: Stage, reason: &'static str| {
        missing.push(Missing {
            stage,
            reason: Cow::Borrowed(reason),
        })
    };
    if stages.irq.is_none() {
        let reason = if lost {
            "events lost"
        } else if virtual_dev {
            "loopback and veth have no hard IRQ: the journey starts at the softirq raise"
        } else if softirq_unknown {
            "the softirq began before the trace"
        } else if raised_without_irq {
            "NET_RX was raised without a NIC interrupt (NAPI repoll or process context)"
        } else if ts.irq_entry.is_some() {
            "the interrupt had not returned when NET_RX ran"
        } else {
            "no NIC interrupt raised this softirq"
        };
        note(Stage::Irq, reason);
    }
    if stages.softirq_wait.is_none() {
        note(
            Stage::SoftirqWait,
            if lost {
                "events lost"
            } else if softirq_unknown {
                "the softirq began before the trace"
            } else if ts.softirq_entry.is_none() {
                "processed outside a NET_RX softirq (threaded NAPI or process context)"
            } else {
                "no NET_RX raise seen for this softirq run"
            },
        );
    }
    if stages.poll.is_none() {
        note(
            Stage::Poll,
            if lost {
                "events lost"
            } else {
                "no NET_RX softirq entry for this packet"
            },
        );
    }
    const NO_DATA_READY: &str = "sock:sk_data_ready is not traced: the socket enqueue is unknown";
    if stages.stack.is_none() {
        let reason = if control {
            "control segment (no payload): it has no reader"
        } else if degraded.no_data_ready && !dropped {
            NO_DATA_READY
        } else if dropped {
            "dropped before the socket"
        } else if lost {
            "events lost"
        } else {
            "not enqueued on a socket"
        };
        note(Stage::Stack, reason);
    }
    let reader_path = (ts.sk_data_ready.is_some() || pid.is_some()) && !dropped && !control;
    if reader_path && stages.wakeup.is_none() {
        let reason = if woke_other {
            "the wakeup woke another thread (woken_tid), not the one that read this packet"
        } else if degraded.no_data_ready {
            NO_DATA_READY
        } else if lost {
            "events lost"
        } else {
            "no wakeup: the reader was not blocked (already running, woken by an earlier packet, or polling)"
        };
        note(Stage::Wakeup, reason);
    }
    if reader_path && ts.waking.is_some() && stages.runqueue.is_none() {
        note(
            Stage::Runqueue,
            if lost {
                "events lost"
            } else if ts.recv_return.is_some() {
                STILL_RUNNING
            } else {
                "the reader was not switched in before the trace ended"
            },
        );
    }
    if reader_path && stages.syscall.is_none() {
        let reason = if ts.recv_return.is_none() {
            incomplete.map_or("recv did not return", Ending::as_str)
        } else if woke_other {
            "no switch in of the reader: the wakeup was another thread's"
        } else if ts.waking.is_none() {
            "no switch in: the reader was not blocked"
        } else {
            STILL_RUNNING
        };
        note(Stage::Syscall, reason);
    }
    if stages.total.is_none() {
        note(
            Stage::Total,
            incomplete.map_or("recv did not return", Ending::as_str),
        );
    }
    journey.complete = incomplete.is_none() && ts.recv_return.is_some() && !lost;
    journey.stages_ns = stages;
}
