//! Synthetic journeys and models for the unit tests of the view.

use std::{borrow::Cow, net::IpAddr};

use super::{Counters, GroupBy, TopModel};
use crate::journey::{Journey, Missing, Stage, StageDurations, Stamps};

/// A complete loopback UDP journey read by `comm(pid)` on `cpu`, `total` ns long with a
/// `runqueue` ns wait, from source port `sport`.
pub fn journey(pid: u32, comm: &str, cpu: u16, sport: u16, total: u64, runqueue: u64) -> Journey {
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let start = 1_000_000;
    let stack = total / 10;
    Journey {
        id: u64::from(sport),
        dev: "lo".into(),
        cpu_softirq: Some(0),
        cpu_task: Some(cpu),
        pid: Some(pid),
        tid: Some(pid),
        comm: Some(comm.into()),
        proto: Cow::Borrowed("udp"),
        saddr: Some(ip),
        sport: Some(sport),
        daddr: Some(ip),
        dport: Some(9000),
        ts: Stamps {
            softirq_raise: Some(start),
            softirq_entry: Some(start + 100),
            netif_receive: Some(start + 200),
            sk_data_ready: Some(start + 200 + stack),
            waking: Some(start + 300 + stack),
            switch_in: Some(start + 300 + stack + runqueue),
            recv_return: Some(start + total),
            ..Stamps::default()
        },
        stages_ns: StageDurations {
            softirq_wait: Some(100),
            poll: Some(100),
            stack: Some(stack),
            wakeup: Some(100),
            runqueue: Some(runqueue),
            syscall: Some(total - 300 - stack - runqueue),
            total: Some(total),
            ..StageDurations::default()
        },
        complete: true,
        missing: smallvec::smallvec![Missing {
            stage: Stage::Irq,
            reason: Cow::Borrowed("no hard IRQ: loopback"),
        }],
        ..Journey::default()
    }
}

/// Counters at second `now_s`: 1% of a CPU used, 3 events lost on CPU 1 before the start.
pub fn counters(now_s: u64, events: u64) -> Counters {
    Counters {
        now_ns: now_s * 1_000_000_000,
        events,
        cpu_ns: now_s * 10_000_000,
        lost_per_cpu: vec![0, 3],
        late: 0,
    }
}

/// Reader "busy" (pid 20) gets 40 fast journeys a second on CPU 1, reader "alpha" (pid 10)
/// 10 slow ones on CPU 0.
pub fn two_readers() -> TopModel {
    let mut model = TopModel::new(GroupBy::Process, vec![]);
    model.close_interval(counters(1, 0));
    for n in 0..40 {
        model.add(&journey(20, "busy", 1, 5000, 20_000 + n, 2_000));
    }
    for n in 0..10 {
        model.add(&journey(10, "alpha", 0, 6000, 90_000 + n * 1000, 50_000));
    }
    model.close_interval(counters(3, 1000));
    model
}
