//! The labs as data: for each, its story, questions, phases, measured claims and model
//! answers.

use super::{Competitor, Lab, Measured, Phase};
use crate::{
    journey::{Journey, Stage},
    sink::summary::human_ns,
};

pub const LABS: &[Lab] = &[
    Lab {
        name: "wakeup",
        summary: "a reader blocked in recv(): the kernel, not the packet, wakes it",
        story: "The reader called recv() and found nothing: the kernel took it off the CPU (blocked). \
                A datagram arrives: the NET_RX softirq runs the stack, enqueues it on the socket \
                (sk_data_ready) and only then wakes the reader (sched_waking: blocked -> ready). The \
                scheduler later puts it on a CPU (sched_switch: ready -> running) and recv() returns.",
        questions: &[
            "Which stage is longer: the kernel's work on the packet (poll + stack) or the wait for a CPU (runqueue)?",
            "How long after the socket enqueue is the reader marked ready (wakeup)?",
            "What fraction of the total does the reader spend waiting to run?",
        ],
        phases: wakeup_phases,
        claims: wakeup_claims,
        answers: wakeup_answers,
    },
    Lab {
        name: "scheduler",
        summary: "the same reader on an idle CPU, beside nice 0, nice -20 and SCHED_FIFO hogs, then at SCHED_FIFO and SCHED_BATCH itself",
        story: "A woken task waits in the run queue until the scheduler picks it. An idle (virtual) CPU must \
                first wake up; a busy CPU answers at once if the newcomer deserves it. The competitor's \
                priority decides: a nice -20 hog has about 87 times the weight of the nice 0 reader, yet \
                EEVDF places a woken task by its lag (the CPU time it was owed when it slept), and a reader \
                owed time may preempt even that hog at once; a SCHED_BATCH reader never preempts on wakeup \
                and waits for the hog's slice to end at a tick; a SCHED_FIFO hog would run until it \
                yields, but since Linux 6.12 a deadline \"fair server\" reserves 50 ms per second for \
                normal tasks, so a light reader still gets in at once (older kernels only let it in when \
                RT throttling stops the hog); a SCHED_FIFO reader preempts any normal task.",
        questions: &[
            "Order the phases by runqueue p50. Is the idle CPU the fastest? Why not?",
            "By what factor does a nice -20 competitor lengthen the runqueue stage, for the nice 0 reader and for the SCHED_BATCH one? Why can they differ?",
            "What changes when the reader itself is SCHED_FIFO?",
            "Why does the SCHED_FIFO hog delay the reader less than the nice -20 one on this kernel?",
        ],
        phases: scheduler_phases,
        claims: scheduler_claims,
        answers: scheduler_answers,
    },
    Lab {
        name: "napi",
        summary: "rising packet rates: packets per poll, and softirq raises per packet",
        story: "NAPI trades interrupts for polling: the first packet raises NET_RX, and while the poll \
                runs, packets that arrive meanwhile are taken in the same poll (up to the budget, 64). \
                At low rates each poll finds one packet; at high rates polls find more. Loopback and \
                veth have no hard IRQ: their packets go through the per-CPU backlog, whose poll \
                (process_backlog) shows as device (no_device). The lab steers loopback packets to the \
                reader's CPU with RPS (/sys/class/net/lo/queues/rx-0/rps_cpus, restored afterwards), so \
                the backlog fills while the sender keeps sending.",
        questions: &[
            "How many packets does one poll take at each rate?",
            "How many NET_RX raises are there per packet at each rate?",
            "Why does batching save work at high rates, and what does it cost the first packet of a batch?",
        ],
        phases: napi_phases,
        claims: napi_claims,
        answers: napi_answers,
    },
    Lab {
        name: "ksoftirqd",
        summary: "a flood long enough that NET_RX work moves to ksoftirqd",
        story: "Softirqs run on interrupt exit or when bottom halves are re-enabled, but only for so long \
                (2 ms or 10 restarts): past that, the kernel hands the rest to the per-CPU ksoftirqd \
                thread, which the scheduler treats like any task. Packets processed there wait for \
                ksoftirqd to be scheduled.",
        questions: &[
            "How many packets were processed in ksoftirqd, and how often was it woken?",
            "Compare softirq_wait of packets processed in ksoftirqd with the others.",
            "Why does the kernel defer softirq work to a thread at all?",
        ],
        phases: ksoftirqd_phases,
        claims: ksoftirqd_claims,
        answers: ksoftirqd_answers,
    },
    Lab {
        name: "polling",
        summary: "blocking recv vs epoll_wait vs a reader that never sleeps",
        story: "A blocked reader must be woken and scheduled; a reader that never sleeps (a non-blocking \
                recv() in a loop; SO_BUSY_POLL where the device has a NAPI id, which loopback's backlog \
                has not) is already running when the data lands: the wakeup and runqueue stages \
                disappear, and the CPU burns the whole time.",
        questions: &[
            "In which phase does the wakeup stage disappear, and why?",
            "How much CPU time does the reader use per packet in each phase?",
            "When is spinning worth its CPU cost?",
        ],
        phases: polling_phases,
        claims: polling_claims,
        answers: polling_answers,
    },
    Lab {
        name: "switches",
        summary: "voluntary vs involuntary context switches of a reader that also computes",
        story: "A voluntary switch is a task giving up the CPU (blocking in recv()); an involuntary one is \
                the scheduler taking it away (preemption) because another runnable task deserves the CPU. \
                The reader here computes 8 ms per packet, longer than a scheduler time slice: alone it \
                only ever blocks; with a competitor on its CPU it is also preempted.",
        questions: &[
            "How many voluntary and involuntary switches per packet, alone and with a competitor?",
            "Why are there no involuntary switches without a competitor?",
            "How does preemption show in the journeys' syscall stage?",
        ],
        phases: switches_phases,
        claims: switches_claims,
        answers: switches_answers,
    },
];

fn wakeup_phases(short: bool) -> Vec<Phase> {
    let n = |long: u32, short_n: u32| if short { short_n } else { long };
    vec![Phase::new("blocked reader", n(200, 10), 50_000)]
}

fn wakeup_claims(m: &[Measured]) -> Vec<(String, bool)> {
    vec![
        (
            "every packet woke the blocked reader: a wakeup and a runqueue stage in at least 90% of journeys".to_owned(),
            m[0].fraction(|j| j.stages_ns.wakeup.is_some() && j.stages_ns.runqueue.is_some()) >= 0.9,
        ),
        (
            "the order is enqueue -> waking -> switch in -> recv return".to_owned(),
            m[0].journeys.iter().all(|j| {
                let t = &j.ts;
                match (t.sk_data_ready, t.waking, t.switch_in, t.recv_return) {
                    (Some(a), Some(b), Some(c), Some(d)) => a <= b && b <= c && c <= d,
                    _ => true,
                }
            }),
        ),
    ]
}

fn wakeup_answers(m: &[Measured]) -> Vec<String> {
    let ns = |value: Option<u64>| value.map_or("-".to_owned(), human_ns);
    {
        let p = &m[0];
        let kernel = p.p50(Stage::Poll).unwrap_or(0) + p.p50(Stage::Stack).unwrap_or(0);
        let runqueue = p.p50(Stage::Runqueue).unwrap_or(0);
        let total = p.p50(Stage::Total).unwrap_or(1).max(1);
        vec![
            format!(
                "1. poll + stack = {} vs runqueue = {}: {} is longer here.",
                human_ns(kernel),
                human_ns(runqueue),
                if runqueue > kernel {
                    "waiting for a CPU"
                } else {
                    "the kernel's packet work"
                }
            ),
            format!(
                "2. wakeup p50 = {}: the waking happens right after the enqueue, in the softirq.",
                ns(p.p50(Stage::Wakeup))
            ),
            format!(
                "3. runqueue / total = {:.0}% of the packet's time.",
                runqueue as f64 * 100.0 / total as f64
            ),
        ]
    }
}

fn scheduler_phases(short: bool) -> Vec<Phase> {
    let n = |long: u32, short_n: u32| if short { short_n } else { long };
    {
        let base = |label| Phase::new(label, n(120, 20), 20_000);
        vec![
            base("idle CPU"),
            Phase {
                competitor: Some(Competitor::Nice(0)),
                ..base("nice 0 competitor")
            },
            Phase {
                competitor: Some(Competitor::Nice(-20)),
                ..base("nice -20 competitor")
            },
            Phase {
                competitor: Some(Competitor::Fifo),
                ..base("SCHED_FIFO competitor")
            },
            Phase {
                competitor: Some(Competitor::Nice(-20)),
                reader_fifo: true,
                ..base("SCHED_FIFO reader, nice -20 competitor")
            },
            Phase {
                competitor: Some(Competitor::Nice(-20)),
                reader_batch: true,
                ..base("SCHED_BATCH reader, nice -20 competitor")
            },
        ]
    }
}

fn scheduler_claims(m: &[Measured]) -> Vec<(String, bool)> {
    let p50 = |i: usize, stage| m[i].p50(stage).unwrap_or(0);
    vec![
        // Claims rest on what the kernel guarantees: a SCHED_BATCH reader never preempts on
        // wakeup, a SCHED_FIFO one always does. The nice 0 reader's wait depends on its EEVDF
        // lag (a CI run measured it shorter than the idle CPU's), so it is an answer, not a claim.
        (
            "a SCHED_BATCH reader beside a nice -20 competitor waits longer than on an idle CPU".to_owned(),
            p50(5, Stage::Runqueue) > p50(0, Stage::Runqueue),
        ),
        (
            "a SCHED_FIFO reader waits less than a SCHED_BATCH reader beside the same nice -20 competitor".to_owned(),
            p50(4, Stage::Runqueue) < p50(5, Stage::Runqueue),
        ),
    ]
}

fn scheduler_answers(m: &[Measured]) -> Vec<String> {
    let ns = |value: Option<u64>| value.map_or("-".to_owned(), human_ns);
    {
        let mut order: Vec<(&str, u64)> = m
            .iter()
            .map(|phase| (phase.phase.label, phase.p50(Stage::Runqueue).unwrap_or(0)))
            .collect();
        order.sort_by_key(|(_, ns)| *ns);
        let idle = m[0].p50(Stage::Runqueue).unwrap_or(1).max(1);
        vec![
            format!(
                "1. {}. An idle vCPU has to leave its idle state first; a busy CPU only reschedules.",
                order
                    .iter()
                    .map(|(label, ns)| format!("{label} {}", human_ns(*ns)))
                    .collect::<Vec<_>>()
                    .join(" < ")
            ),
            format!(
                "2. nice -20: {:.1}x the idle CPU's runqueue p50 for the nice 0 reader, {:.1}x for the \
                 SCHED_BATCH one. The batch reader waits for the hog's slice to end at a tick; the nice 0 \
                 reader preempts the hog at once whenever EEVDF finds it owed CPU time (positive lag) when \
                 it wakes, so its figure varies from run to run.",
                m[2].p50(Stage::Runqueue).unwrap_or(0) as f64 / idle as f64,
                m[5].p50(Stage::Runqueue).unwrap_or(0) as f64 / idle as f64
            ),
            format!(
                "3. SCHED_FIFO reader: {} vs {}: a real-time task preempts any normal one at once.",
                ns(m[4].p50(Stage::Runqueue)),
                ns(m[2].p50(Stage::Runqueue))
            ),
            format!(
                "4. SCHED_FIFO hog: {} vs nice -20 hog: {}. Since 6.12 the fair server reserves 50 ms per \
                 second for normal tasks and runs them when they wake; a reader needing microseconds per \
                 packet never exhausts it. The nice -20 hog is a normal task: EEVDF lets it finish its slice.",
                ns(m[3].p50(Stage::Runqueue)),
                ns(m[2].p50(Stage::Runqueue))
            ),
        ]
    }
}

fn napi_phases(short: bool) -> Vec<Phase> {
    let n = |long: u32, short_n: u32| if short { short_n } else { long };
    vec![
        Phase {
            rps: true,
            ..Phase::new("100 packets/s", n(1000, 20), 10_000)
        },
        Phase {
            rps: true,
            ..Phase::new("10k packets/s", n(20000, 400), 100)
        },
        Phase {
            rps: true,
            ..Phase::new("as fast as possible", n(100_000, 4000), 0)
        },
    ]
}

fn napi_claims(m: &[Measured]) -> Vec<(String, bool)> {
    {
        let per_poll: Vec<f64> = m
            .iter()
            .map(|phase| phase.packets_per_poll().unwrap_or(0.0))
            .collect();
        vec![(
            "packets per poll grows with the rate".to_owned(),
            per_poll[2] > per_poll[0] && per_poll[2] > 1.0,
        )]
    }
}

fn napi_answers(m: &[Measured]) -> Vec<String> {
    m.iter()
        .map(|phase| {
            format!(
                "{}: {:.2} packets per poll, {:.2} NET_RX runs per packet.",
                phase.phase.label,
                phase.packets_per_poll().unwrap_or(0.0),
                phase.raises_per_packet().unwrap_or(0.0)
            )
        })
        .collect()
}

fn ksoftirqd_phases(short: bool) -> Vec<Phase> {
    let n = |long: u32, short_n: u32| if short { short_n } else { long };
    vec![Phase::new("flood", n(200_000, 50_000), 0)]
}

fn ksoftirqd_claims(m: &[Measured]) -> Vec<(String, bool)> {
    vec![(
        "during the flood NET_RX ran in ksoftirqd (or ksoftirqd was woken to run it)".to_owned(),
        m[0].fraction(|j| j.softirq_in_ksoftirqd) > 0.0 || m[0].ksoftirqd_wakeups > 0,
    )]
}

fn ksoftirqd_answers(m: &[Measured]) -> Vec<String> {
    let ns = |value: Option<u64>| value.map_or("-".to_owned(), human_ns);
    {
        let p = &m[0];
        let (in_thread, elsewhere): (Vec<&Journey>, Vec<&Journey>) =
            p.journeys.iter().partition(|j| j.softirq_in_ksoftirqd);
        let median = |set: &[&Journey]| {
            let mut values: Vec<u64> = set
                .iter()
                .filter_map(|j| j.stages_ns.softirq_wait)
                .collect();
            values.sort_unstable();
            values.get(values.len() / 2).copied()
        };
        vec![
            format!("1. {} of {} packets in ksoftirqd; ksoftirqd woken {} times.", in_thread.len(), p.journeys.len(), p.ksoftirqd_wakeups),
            format!("2. softirq_wait p50: in ksoftirqd {}, elsewhere {}.", ns(median(&in_thread)), ns(median(&elsewhere))),
            "3. So that a flood cannot starve every task: the thread competes for the CPU like the others.".to_owned(),
        ]
    }
}

fn polling_phases(short: bool) -> Vec<Phase> {
    let n = |long: u32, short_n: u32| if short { short_n } else { long };
    {
        let base = |label| Phase::new(label, n(200, 15), 20_000);
        vec![
            base("blocking recv"),
            Phase {
                mode: "epoll",
                ..base("epoll_wait")
            },
            Phase {
                mode: "spin",
                ..base("never sleeps (spin)")
            },
        ]
    }
}

fn polling_claims(m: &[Measured]) -> Vec<(String, bool)> {
    vec![
        (
            "the blocking reader is woken for at least 90% of packets".to_owned(),
            m[0].fraction(|j| j.stages_ns.wakeup.is_some()) >= 0.9,
        ),
        (
            "the spinning reader is never woken: no wakeup stage".to_owned(),
            m[2].fraction(|j| j.stages_ns.wakeup.is_some()) == 0.0,
        ),
        (
            "spinning costs far more CPU than blocking".to_owned(),
            m[2].reader_number("reader_cpu_ns") > 10 * m[0].reader_number("reader_cpu_ns").max(1),
        ),
    ]
}

fn polling_answers(m: &[Measured]) -> Vec<String> {
    m.iter()
        .map(|phase| {
            format!(
                "{}: wakeup stage in {:.0}% of packets, reader CPU {} per packet.",
                phase.phase.label,
                phase.fraction(|j| j.stages_ns.wakeup.is_some()) * 100.0,
                human_ns(
                    phase.reader_number("reader_cpu_ns") / u64::from(phase.phase.count.max(1))
                )
            )
        })
        .collect()
}

fn switches_phases(short: bool) -> Vec<Phase> {
    let n = |long: u32, short_n: u32| if short { short_n } else { long };
    {
        let base = |label| Phase {
            work_us: 8000,
            ..Phase::new(label, n(300, 40), 20_000)
        };
        vec![
            base("alone"),
            Phase {
                competitor: Some(Competitor::Nice(0)),
                ..base("nice 0 competitor")
            },
        ]
    }
}

fn switches_claims(m: &[Measured]) -> Vec<(String, bool)> {
    vec![
        (
            "involuntary switches come with a competitor (most packets preempted with one; alone, at most a third as many, from the kernel's own threads)".to_owned(),
            m[1].reader_number("involuntary_switches") >= u64::from(m[1].phase.count) / 2
                && 3 * m[0].reader_number("involuntary_switches")
                    <= m[1].reader_number("involuntary_switches"),
        ),
        (
            "the reader blocks voluntarily about once per packet either way".to_owned(),
            m.iter().all(|phase| phase.reader_number("voluntary_switches") >= u64::from(phase.phase.count) / 2),
        ),
    ]
}

fn switches_answers(m: &[Measured]) -> Vec<String> {
    let ns = |value: Option<u64>| value.map_or("-".to_owned(), human_ns);
    m.iter()
        .map(|phase| {
            let n = f64::from(phase.phase.count.max(1));
            format!(
                "{}: {:.2} voluntary and {:.2} involuntary switches per packet; syscall p50 {}.",
                phase.phase.label,
                phase.reader_number("voluntary_switches") as f64 / n,
                phase.reader_number("involuntary_switches") as f64 / n,
                ns(phase.p50(Stage::Syscall))
            )
        })
        .collect()
}
