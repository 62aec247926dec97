//! The engine on synthetic event streams: one test per case it must get right.

use std::collections::HashMap;

use tracer_common::{
    COPIED_SEQ_VALID, Event, EventKind, FLAG_ADDRS, FLAG_LOST_BEFORE, FLAG_OUTSIDE_SYSCALL,
    HDR_FRAGMENT, HDR_VALID, NAME_LEN, NET_RX_SOFTIRQ,
};

use super::{Engine, EngineConfig, IrqDevice, Journey, Stage, engine::Ending};

const NIC_IRQ: u32 = 38;
const READER: u32 = 500;
const SOCK: u64 = 0xffff_0000_5000;
const TCP_SOCK: u64 = 0xffff_0000_6000;
/// The client port of the TCP segments `Stream::tcp_segment` makes.
const CLIENT_PORT: u16 = 40000;

fn named(text: &str) -> [u8; NAME_LEN] {
    let mut name = [0; NAME_LEN];
    name[..text.len()].copy_from_slice(text.as_bytes());
    name
}

/// A kernel without tcp:tcp_probe and without BTF (or a recording from before them): TCP
/// segments have no known payload, and a read takes every segment queued before it.
fn without_tcp_probe(mut config: EngineConfig) -> EngineConfig {
    config.degraded.no_tcp_probe = true;
    config
}

/// Builds events; each call stamps the next event on a CPU at a time in microseconds.
#[derive(Default)]
struct Stream {
    events: Vec<Event>,
}

impl Stream {
    fn ev(
        &mut self,
        cpu: u16,
        us: u64,
        tid: u32,
        kind: EventKind,
        fill: impl FnOnce(&mut Event),
    ) -> &mut Self {
        let mut event = Event {
            ts: us * 1000,
            cpu,
            tgid: tid,
            tid,
            kind: kind as u8,
            ..Event::ZERO
        };
        fill(&mut event);
        self.events.push(event);
        self
    }
    fn irq(&mut self, cpu: u16, entry: u64, exit: u64, raise: bool) -> &mut Self {
        self.ev(cpu, entry, 0, EventKind::IrqHandlerEntry, |e| {
            e.arg0 = NIC_IRQ
        });
        if raise {
            self.ev(cpu, entry + 1, 0, EventKind::SoftirqRaise, |e| {
                e.arg0 = NET_RX_SOFTIRQ
            });
        }
        self.ev(cpu, exit, 0, EventKind::IrqHandlerExit, |e| {
            e.arg0 = NIC_IRQ;
            e.arg1 = 1;
        })
    }
    fn raise(&mut self, cpu: u16, us: u64, tid: u32) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::SoftirqRaise, |e| {
            e.arg0 = NET_RX_SOFTIRQ
        })
    }
    fn softirq_entry(&mut self, cpu: u16, us: u64, tid: u32) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::SoftirqEntry, |e| {
            e.arg0 = NET_RX_SOFTIRQ
        })
    }
    fn softirq_exit(&mut self, cpu: u16, us: u64, tid: u32) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::SoftirqExit, |e| {
            e.arg0 = NET_RX_SOFTIRQ
        })
    }
    fn gro(&mut self, cpu: u16, us: u64, skb: u64) -> &mut Self {
        self.ev(cpu, us, 0, EventKind::NapiGroReceiveEntry, |e| {
            e.addr = skb;
            e.arg0 = 1500;
            e.name = named("eth0");
        })
    }
    fn receive(&mut self, cpu: u16, us: u64, tid: u32, skb: u64, dev: &str, len: u32) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::NetifReceiveSkb, |e| {
            e.addr = skb;
            e.arg0 = len;
            e.name = named(dev);
        })
    }
    fn data_ready(&mut self, cpu: u16, us: u64, tid: u32, sk: u64, protocol: u32) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::SkDataReady, |e| {
            e.addr = sk;
            e.arg0 = 2;
            e.arg1 = protocol;
        })
    }
    fn waking(&mut self, cpu: u16, us: u64, tid: u32, woken: u32, comm: &str) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::SchedWaking, |e| {
            e.arg0 = woken;
            e.arg1 = u32::from(cpu);
            e.name = named(comm);
        })
    }
    fn switch_in(&mut self, cpu: u16, us: u64, prev: u32, next: u32, comm: &str) -> &mut Self {
        self.ev(cpu, us, prev, EventKind::SchedSwitch, |e| {
            e.arg0 = prev;
            e.arg1 = next;
            e.name = named(comm);
        })
    }
    fn napi_poll(
        &mut self,
        cpu: u16,
        us: u64,
        tid: u32,
        work: u32,
        budget: u32,
        dev: &str,
    ) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::NapiPoll, |e| {
            e.addr = 0xaaaa;
            e.arg0 = work;
            e.arg1 = budget;
            e.name = named(dev);
        })
    }
    fn recv_length(&mut self, cpu: u16, us: u64, sk: u64, ret: i32, flags: u32) -> &mut Self {
        self.ev(cpu, us, READER, EventKind::SockRecvLength, |e| {
            e.addr = sk;
            e.arg0 = ret as u32;
            e.arg1 = flags;
            e.arg2 = 2 << 16 | 17;
        })
    }
    fn recv_exit(&mut self, cpu: u16, us: u64, kind: EventKind, ret: i64) -> &mut Self {
        self.ev(cpu, us, READER, kind, |e| e.addr = ret as u64)
    }
    fn kfree(&mut self, cpu: u16, us: u64, skb: u64, reason: u32) -> &mut Self {
        self.ev(cpu, us, 0, EventKind::KfreeSkb, |e| {
            e.addr = skb;
            e.arg0 = reason;
        })
    }
    fn consume(&mut self, cpu: u16, us: u64, skb: u64) -> &mut Self {
        self.ev(cpu, us, 0, EventKind::ConsumeSkb, |e| e.addr = skb)
    }

    /// netif_receive_skb of a TCP segment whose headers the kernel side read, from the
    /// client's port 40000 to the server's 6379.
    fn tcp_segment(
        &mut self,
        cpu: u16,
        us: u64,
        tid: u32,
        skb: u64,
        segment: (u32, u32, u8),
    ) -> &mut Self {
        self.tcp_segment_from(CLIENT_PORT, cpu, us, tid, skb, segment)
    }
    /// [`Self::tcp_segment`] from the client's port `port`.
    fn tcp_segment_from(
        &mut self,
        port: u16,
        cpu: u16,
        us: u64,
        tid: u32,
        skb: u64,
        (seq, payload, flags): (u32, u32, u8),
    ) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::NetifReceiveSkb, |e| {
            e.addr = skb;
            e.arg0 = 52 + payload;
            e.name = named("lo");
            e.arg1 = HDR_VALID | 4 << 16 | u32::from(flags) << 8 | 6;
            e.arg2 = payload;
            e.addr2 = u64::from(seq) | u64::from(port) << 32 | 6379 << 48;
        })
    }
    fn tcp_probe(
        &mut self,
        cpu: u16,
        us: u64,
        tid: u32,
        skb: u64,
        sk: u64,
        data_len: u32,
    ) -> &mut Self {
        self.tcp_probe_from(CLIENT_PORT, cpu, us, tid, (skb, sk), data_len)
    }
    /// tcp_probe of a segment from the client's port `port`.
    fn tcp_probe_from(
        &mut self,
        port: u16,
        cpu: u16,
        us: u64,
        tid: u32,
        (skb, sk): (u64, u64),
        data_len: u32,
    ) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::TcpProbe, |e| {
            e.addr = skb;
            e.addr2 = sk;
            e.arg0 = data_len;
            // The socket's view: local port 6379, remote `port`.
            e.arg1 = 6379 << 16 | u32::from(port);
            e.arg2 = 2;
        })
    }
    /// A TCP segment received, linked to socket `sk` by tcp_probe and enqueued
    /// (sk_data_ready), at `us`, `us + 1` and `us + 2`.
    fn queued_segment(
        &mut self,
        cpu: u16,
        us: u64,
        tid: u32,
        skb: u64,
        segment: (u32, u32, u8),
        sk: u64,
    ) -> &mut Self {
        self.tcp_segment(cpu, us, tid, skb, segment)
            .tcp_probe(cpu, us + 1, tid, skb, sk, segment.1)
            .data_ready(cpu, us + 2, tid, sk, 6)
    }
    fn destroy(&mut self, cpu: u16, us: u64, sk: u64) -> &mut Self {
        self.ev(cpu, us, 0, EventKind::TcpDestroySock, |e| e.addr = sk)
    }
    /// A TCP read by `tid` of process `pid` returning `ret` bytes; `copied` is the socket's
    /// copied_seq after it (None: a kernel without BTF).
    fn tcp_read(
        &mut self,
        cpu: u16,
        us: u64,
        (pid, tid): (u32, u32),
        sk: u64,
        ret: u32,
        copied: Option<u32>,
    ) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::SockRecvLength, |e| {
            e.tgid = pid;
            e.addr = sk;
            e.arg0 = ret;
            e.arg2 = 2 << 16 | 6;
            e.addr2 = copied.map_or(0, |seq| COPIED_SEQ_VALID | u64::from(seq));
        });
        self.ev(cpu, us + 1, tid, EventKind::SysExitRecvfrom, |e| {
            e.tgid = pid;
            e.addr = u64::from(ret);
        })
    }

    /// tcp_rcv_space_adjust outside a recv-family syscall (splice) by `tid` of `pid`:
    /// the socket's copied_seq is now `copied` (None: a kernel without BTF).
    fn splice(
        &mut self,
        cpu: u16,
        us: u64,
        (pid, tid): (u32, u32),
        sk: u64,
        copied: Option<u32>,
    ) -> &mut Self {
        self.ev(cpu, us, tid, EventKind::TcpRcvSpaceAdjust, |e| {
            e.tgid = pid;
            e.addr = sk;
            e.addr2 = copied.map_or(0, |seq| COPIED_SEQ_VALID | u64::from(seq));
            e.name = named("haproxy");
        })
    }

    fn run(&self, config: EngineConfig) -> (Vec<Journey>, Engine) {
        let mut engine = Engine::new(config);
        let mut out = Vec::new();
        for event in &self.events {
            engine.push(event, &mut out);
        }
        engine.finish(&mut out);
        (out, engine)
    }
}

fn nic_config() -> EngineConfig {
    let mut irq_devices = HashMap::new();
    irq_devices.insert(
        NIC_IRQ,
        IrqDevice {
            dev: "eth0".into(),
            name: "virtio2-input.0".into(),
        },
    );
    let mut drop_reasons = std::collections::BTreeMap::new();
    drop_reasons.insert(6, "SOCKET_RCVBUFF".to_owned());
    EngineConfig {
        irq_devices,
        drop_reasons,
        ..EngineConfig::default()
    }
}

fn missing_reason(journey: &Journey, stage: Stage) -> Option<&str> {
    journey
        .missing
        .iter()
        .find(|m| m.stage == stage)
        .map(|m| m.reason.as_ref())
}

/// Every stamp present is in journey order.
fn assert_ordered(journey: &Journey) {
    let stamps: Vec<u64> = journey
        .ts
        .in_order()
        .iter()
        .filter_map(|(_, ts)| *ts)
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "stamps out of order: {:?}",
        journey.ts
    );
}

#[test]
fn loopback_datagram_to_a_blocked_reader_has_every_stage_but_irq() {
    let mut s = Stream::default();
    // The sender (tid 900) sends: netif_rx raises NET_RX in its context.
    s.raise(0, 100, 900)
        .softirq_entry(0, 102, 900)
        .receive(0, 105, 900, 0x1000, "lo", 92)
        .data_ready(0, 110, 900, SOCK, 17)
        .waking(0, 111, 900, READER, "reader")
        .napi_poll(0, 115, 900, 1, 64, "(no_device)")
        .softirq_exit(0, 116, 900)
        .switch_in(1, 150, 0, READER, "reader")
        .recv_length(1, 160, SOCK, 64, 0)
        .recv_exit(1, 162, EventKind::SysExitRecvfrom, 64);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 1);
    let j = &journeys[0];
    assert!(j.complete, "{j:?}");
    assert_eq!(
        (&*j.dev, j.proto.as_ref(), j.len, j.bytes),
        ("lo", "udp", 92, Some(64))
    );
    assert_eq!(
        (j.pid, j.tid, j.comm.as_deref()),
        (Some(READER), Some(READER), Some("reader"))
    );
    assert_eq!(
        (j.cpu_softirq, j.cpu_task, j.syscall),
        (Some(0), Some(1), Some("recvfrom"))
    );
    assert_eq!(
        (j.napi_batch_pos, j.napi_work, j.napi_budget),
        (Some(1), Some(1), Some(64))
    );
    let st = &j.stages_ns;
    assert_eq!(st.irq, None);
    assert_eq!(st.softirq_wait, Some(2_000));
    assert_eq!(st.poll, Some(3_000));
    assert_eq!(st.stack, Some(5_000));
    assert_eq!(st.wakeup, Some(1_000));
    assert_eq!(st.runqueue, Some(39_000));
    assert_eq!(st.syscall, Some(12_000));
    assert_eq!(st.total, Some(62_000));
    assert_eq!(
        missing_reason(j, Stage::Irq),
        Some("loopback and veth have no hard IRQ: the journey starts at the softirq raise")
    );
    assert_eq!(j.missing.len(), 1);
    assert_ordered(j);
    assert_eq!(engine.stats().complete, 1);
}

#[test]
fn napi_batch_one_irq_many_packets() {
    let mut s = Stream::default();
    s.irq(0, 10, 14, true).softirq_entry(0, 20, 0);
    for (n, skb) in [0x1000u64, 0x2000, 0x3000].into_iter().enumerate() {
        let t = 30 + n as u64 * 10;
        s.receive(0, t, 0, skb, "eth0", 1000)
            .data_ready(0, t + 1, 0, SOCK, 17);
        if n == 0 {
            s.waking(0, t + 2, 0, READER, "reader");
        }
    }
    s.napi_poll(0, 70, 0, 3, 64, "eth0")
        .softirq_exit(0, 71, 0)
        .switch_in(1, 90, 0, READER, "reader");
    for (n, t) in [100u64, 110, 120].into_iter().enumerate() {
        s.recv_length(1, t, SOCK, 972, 0)
            .recv_exit(1, t + 1, EventKind::SysExitRecvfrom, 972);
        let _ = n;
    }
    let (journeys, _) = s.run(nic_config());
    assert_eq!(journeys.len(), 3);
    for (n, j) in journeys.iter().enumerate() {
        assert_eq!(j.napi_batch_pos, Some(n as u32 + 1));
        assert_eq!((j.napi_work, j.napi_budget), (Some(3), Some(64)));
        assert_eq!(
            (j.irq, j.irq_name.as_deref()),
            (Some(NIC_IRQ), Some("virtio2-input.0"))
        );
        assert_eq!(
            (j.ts.irq_entry, j.ts.irq_exit),
            (Some(10_000), Some(14_000))
        );
        assert_eq!(j.stages_ns.irq, Some(4_000));
        assert_eq!(
            j.stages_ns.softirq_wait,
            Some(6_000),
            "irq exit -> softirq entry"
        );
        assert_eq!(j.cpu_irq, Some(0));
        assert_ordered(j);
    }
    // Only the first packet woke the reader; the others found it already woken.
    assert_eq!(journeys[0].stages_ns.wakeup, Some(1_000));
    assert!(journeys[0].complete);
    assert!(journeys[1].complete, "no wakeup is not incomplete");
    assert_eq!(journeys[1].stages_ns.wakeup, None);
    assert!(
        missing_reason(&journeys[1], Stage::Wakeup)
            .unwrap()
            .starts_with("no wakeup")
    );
    assert_eq!(journeys[2].stages_ns.total, Some(121_000 - 10_000));
}

#[test]
fn gro_merges_segments_into_one_journey() {
    let mut s = Stream::default();
    s.irq(0, 10, 12, true)
        .softirq_entry(0, 20, 0)
        .gro(0, 21, 0xa000)
        .gro(0, 22, 0xb000)
        .gro(0, 23, 0xc000)
        .receive(0, 30, 0, 0xa000, "eth0", 4400)
        .data_ready(0, 31, 0, TCP_SOCK, 6)
        .napi_poll(0, 35, 0, 3, 64, "eth0")
        .softirq_exit(0, 36, 0)
        .recv_length(1, 50, TCP_SOCK, 4344, 0)
        .recv_exit(1, 51, EventKind::SysExitRead, 4344);
    let (journeys, engine) = s.run(without_tcp_probe(nic_config()));
    assert_eq!(journeys.len(), 1, "{journeys:?}");
    let j = &journeys[0];
    assert_eq!(
        (j.gro_merged, j.proto.as_ref(), j.bytes),
        (2, "tcp", Some(4344))
    );
    assert_eq!(j.napi_batch_pos, Some(1));
    assert_eq!(j.syscall, Some("read"));
    assert!(j.complete);
    assert_eq!(
        engine
            .stats()
            .unsocketed
            .get("merged into another packet by GRO"),
        Some(&2)
    );
}

#[test]
fn net_rx_in_ksoftirqd_is_marked_and_its_wakeup_counted() {
    let mut s = Stream::default();
    s.irq(1, 10, 12, true)
        .waking(1, 13, 0, 16, "ksoftirqd/1")
        .switch_in(1, 40, 0, 16, "ksoftirqd/1")
        .softirq_entry(1, 41, 16)
        .receive(1, 45, 16, 0x1000, "eth0", 100)
        .data_ready(1, 46, 16, SOCK, 17)
        .waking(1, 47, 16, READER, "reader")
        .softirq_exit(1, 50, 16)
        .switch_in(1, 60, 16, READER, "reader")
        .recv_length(1, 61, SOCK, 72, 0)
        .recv_exit(1, 62, EventKind::SysExitRecvmsg, 72);
    let (journeys, engine) = s.run(nic_config());
    let j = &journeys[0];
    assert!(j.softirq_in_ksoftirqd);
    assert_eq!(
        j.stages_ns.softirq_wait,
        Some(29_000),
        "includes the ksoftirqd scheduling delay"
    );
    assert_eq!(engine.stats().ksoftirqd_wakeups, 1);
    assert!(j.complete);
}

#[test]
fn rps_packet_processed_on_another_cpu_than_its_irq() {
    let mut s = Stream::default();
    s.irq(0, 10, 12, true)
        .softirq_entry(0, 20, 0)
        .gro(0, 22, 0x7000)
        .napi_poll(0, 25, 0, 1, 64, "eth0")
        .softirq_exit(0, 26, 0)
        .raise(1, 27, 0)
        .softirq_entry(1, 30, 0)
        .receive(1, 32, 0, 0x7000, "eth0", 100)
        .data_ready(1, 33, 0, SOCK, 17)
        .softirq_exit(1, 35, 0)
        .recv_length(1, 40, SOCK, 72, 0)
        .recv_exit(1, 41, EventKind::SysExitRecvfrom, 72);
    let (journeys, _) = s.run(nic_config());
    assert_eq!(journeys.len(), 1);
    let j = &journeys[0];
    assert_eq!(
        (j.cpu_irq, j.cpu_softirq, j.cpu_stack),
        (Some(0), Some(0), Some(1))
    );
    assert_eq!(j.irq, Some(NIC_IRQ));
    assert_eq!(j.napi_batch_pos, Some(1));
    assert_eq!(
        j.stages_ns.poll,
        Some(12_000),
        "NAPI entry on CPU 0 -> receive on CPU 1"
    );
    assert_ordered(j);
}

#[test]
fn reader_already_running_has_no_wakeup_stage() {
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x1000, "lo", 92)
        .data_ready(0, 13, 900, SOCK, 17)
        .softirq_exit(0, 14, 900)
        .recv_length(1, 20, SOCK, 64, 0)
        .recv_exit(1, 21, EventKind::SysExitRecvfrom, 64);
    let (journeys, _) = s.run(EngineConfig::default());
    let j = &journeys[0];
    assert!(j.complete);
    assert_eq!(
        (
            j.stages_ns.wakeup,
            j.stages_ns.runqueue,
            j.stages_ns.syscall
        ),
        (None, None, None)
    );
    assert!(
        missing_reason(j, Stage::Wakeup)
            .unwrap()
            .contains("not blocked")
    );
    assert_eq!(
        missing_reason(j, Stage::Syscall),
        Some("no switch in: the reader was not blocked")
    );
    assert_eq!(j.stages_ns.total, Some(11_000));
}

#[test]
fn one_read_returns_several_datagrams_or_segments() {
    let mut s = Stream::default();
    s.raise(0, 10, 900).softirq_entry(0, 11, 900);
    for (n, skb) in [0x1000u64, 0x2000].into_iter().enumerate() {
        s.receive(0, 12 + n as u64 * 2, 900, skb, "lo", 92)
            .data_ready(0, 13 + n as u64 * 2, 900, SOCK, 17);
    }
    for (n, skb) in [0x3000u64, 0x4000].into_iter().enumerate() {
        s.receive(0, 20 + n as u64 * 2, 900, skb, "lo", 552)
            .data_ready(0, 21 + n as u64 * 2, 900, TCP_SOCK, 6);
    }
    s.softirq_exit(0, 30, 900)
        // recvmmsg: one sock_recv_length per datagram, one syscall exit.
        .recv_length(1, 40, SOCK, 64, 0)
        .recv_length(1, 41, SOCK, 64, 0)
        .recv_exit(1, 42, EventKind::SysExitRecvmmsg, 2)
        // One TCP read takes both segments.
        .recv_length(1, 50, TCP_SOCK, 1000, 0)
        .recv_exit(1, 51, EventKind::SysExitRecvfrom, 1000);
    let (journeys, _) = s.run(without_tcp_probe(EngineConfig::default()));
    assert_eq!(journeys.len(), 4);
    for j in &journeys[..2] {
        assert_eq!(
            (j.syscall, j.bytes, j.read_packets),
            (Some("recvmmsg"), Some(64), 1)
        );
        assert_eq!(j.ts.recv_return, Some(42_000));
    }
    for j in &journeys[2..] {
        assert_eq!(
            (j.proto.as_ref(), j.bytes, j.read_packets),
            ("tcp", Some(1000), 2)
        );
        assert_eq!(j.ts.recv_return, Some(51_000));
    }
    assert!(journeys.iter().all(|j| j.complete));
}

#[test]
fn a_read_that_returns_part_of_a_datagram() {
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x1000, "lo", 1028) // 1000 bytes of payload
        .data_ready(0, 13, 900, SOCK, 17)
        .softirq_exit(0, 14, 900)
        .recv_length(1, 20, SOCK, 100, 0)
        .recv_exit(1, 21, EventKind::SysExitRecvfrom, 100);
    let (journeys, _) = s.run(EngineConfig::default());
    assert!(journeys[0].partial_read);
    assert_eq!(journeys[0].bytes, Some(100));
}

#[test]
fn peeking_does_not_consume_a_datagram() {
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x1000, "lo", 92)
        .data_ready(0, 13, 900, SOCK, 17)
        .softirq_exit(0, 14, 900)
        .recv_length(1, 20, SOCK, 64, 2) // MSG_PEEK
        .recv_exit(1, 21, EventKind::SysExitRecvfrom, 64)
        .recv_length(1, 30, SOCK, 64, 0)
        .recv_exit(1, 31, EventKind::SysExitRecvfrom, 64);
    let (journeys, _) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 1);
    assert_eq!(journeys[0].ts.recv_return, Some(31_000));
}

#[test]
fn a_dropped_packet_ends_with_the_drop_reason() {
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x1000, "lo", 92)
        .kfree(0, 13, 0x1000, 6)
        .softirq_exit(0, 14, 900);
    let (journeys, engine) = s.run(nic_config());
    assert_eq!(journeys.len(), 1);
    let j = &journeys[0];
    assert_eq!(j.drop_reason.as_deref(), Some("SOCKET_RCVBUFF"));
    assert!(!j.complete);
    assert_eq!(
        missing_reason(j, Stage::Stack),
        Some("dropped before the socket")
    );
    assert_eq!(engine.stats().dropped, 1);
    assert_eq!(engine.stats().incomplete.get("dropped"), Some(&1));
}

#[test]
fn a_packet_never_read_before_the_trace_ends() {
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x1000, "lo", 92)
        .data_ready(0, 13, 900, SOCK, 17)
        .softirq_exit(0, 14, 900);
    let (journeys, engine) = s.run(EngineConfig::default());
    let j = &journeys[0];
    assert!(!j.complete);
    assert_eq!(
        missing_reason(j, Stage::Total),
        Some("never read before the trace ended")
    );
    assert_eq!(
        engine
            .stats()
            .incomplete
            .get("never read before the trace ended"),
        Some(&1)
    );
}

#[test]
fn skb_and_socket_addresses_are_reused_in_time_order() {
    let mut s = Stream::default();
    s.raise(0, 10, 900).softirq_entry(0, 11, 900);
    // A packet with no socket (an ACK, say) whose free is not traced...
    s.receive(0, 12, 900, 0x1000, "lo", 52);
    // ...then the same address carries a datagram for the reader.
    s.receive(0, 20, 900, 0x1000, "lo", 92)
        .data_ready(0, 21, 900, SOCK, 17);
    // After it is queued the skb address is used again, and queued on the same socket.
    s.receive(0, 30, 900, 0x1000, "lo", 93)
        .data_ready(0, 31, 900, SOCK, 17);
    s.softirq_exit(0, 32, 900);
    s.recv_length(1, 40, SOCK, 64, 0)
        .recv_exit(1, 41, EventKind::SysExitRecvfrom, 64);
    s.recv_length(1, 50, SOCK, 65, 0)
        .recv_exit(1, 51, EventKind::SysExitRecvfrom, 65);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(
        journeys.len(),
        2,
        "the ACK-like packet is counted, not emitted: {journeys:?}"
    );
    assert_eq!((journeys[0].len, journeys[0].bytes), (92, Some(64)));
    assert_eq!((journeys[1].len, journeys[1].bytes), (93, Some(65)));
    assert!(journeys.iter().all(|j| j.complete));
    let reused = "skb address reused before the packet reached a socket (its free was not traced)";
    assert_eq!(engine.stats().unsocketed.get(reused), Some(&1));
}

#[test]
fn consumed_without_a_socket_is_counted_and_kept_on_request() {
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x1000, "lo", 52)
        .consume(0, 13, 0x1000);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert!(journeys.is_empty());
    assert_eq!(
        engine
            .stats()
            .unsocketed
            .get("consumed by the stack without reaching a socket"),
        Some(&1)
    );
    let (journeys, _) = s.run(EngineConfig {
        keep_unsocketed: true,
        ..EngineConfig::default()
    });
    assert_eq!(journeys.len(), 1);
    assert_eq!(
        missing_reason(&journeys[0], Stage::Stack),
        Some("not enqueued on a socket")
    );
}

#[test]
fn lost_events_mark_open_journeys() {
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x1000, "lo", 92)
        .data_ready(0, 13, 900, SOCK, 17)
        .softirq_exit(0, 14, 900);
    // The next event on CPU 1 says events were lost there just before it.
    s.ev(1, 20, 0, EventKind::SchedSwitch, |e| {
        e.flags = FLAG_LOST_BEFORE;
        e.arg1 = 77;
    });
    s.recv_length(1, 30, SOCK, 64, 0)
        .recv_exit(1, 31, EventKind::SysExitRecvfrom, 64);
    let (journeys, engine) = s.run(EngineConfig::default());
    let j = &journeys[0];
    assert!(j.lost_events);
    assert!(!j.complete, "a journey touched by loss is never complete");
    assert_eq!(engine.stats().loss_marks.get(&1), Some(&1));
    assert_eq!(engine.stats().incomplete.get("events lost"), Some(&1));
}

#[test]
fn a_trace_that_starts_with_packets_in_flight() {
    let mut s = Stream::default();
    // The softirq was already running when the trace began; a datagram queued before the
    // trace is read first.
    s.recv_length(1, 5, SOCK, 64, 0)
        .recv_exit(1, 6, EventKind::SysExitRecvfrom, 64);
    s.receive(0, 12, 900, 0x1000, "lo", 92)
        .data_ready(0, 13, 900, SOCK, 17)
        .softirq_exit(0, 14, 900);
    s.recv_length(1, 20, SOCK, 64, 0)
        .recv_exit(1, 21, EventKind::SysExitRecvfrom, 64);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(engine.stats().reads_without_packet, 1);
    assert_eq!(journeys.len(), 1);
    let j = &journeys[0];
    assert!(j.complete);
    assert_eq!(j.stages_ns.poll, None);
    assert_eq!(
        missing_reason(j, Stage::SoftirqWait),
        Some("the softirq began before the trace")
    );
    assert_eq!(j.stages_ns.stack, Some(1_000));
}

#[test]
fn net_rx_raised_without_a_nic_interrupt() {
    let mut s = Stream::default();
    s.raise(0, 10, 0) // a NAPI repoll: raised from the softirq itself
        .softirq_entry(0, 12, 0)
        .receive(0, 14, 0, 0x1000, "eth0", 100)
        .data_ready(0, 15, 0, SOCK, 17)
        .softirq_exit(0, 16, 0)
        .recv_length(1, 20, SOCK, 72, 0)
        .recv_exit(1, 21, EventKind::SysExitRecvfrom, 72);
    let (journeys, _) = s.run(nic_config());
    let j = &journeys[0];
    assert_eq!(j.irq, None);
    assert_eq!(
        missing_reason(j, Stage::Irq),
        Some("NET_RX was raised without a NIC interrupt (NAPI repoll or process context)")
    );
    assert_eq!(j.stages_ns.softirq_wait, Some(2_000));
}

#[test]
fn without_sk_data_ready_the_wakeup_links_packet_and_reader() {
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x1000, "lo", 92)
        .waking(0, 14, 900, READER, "reader")
        .softirq_exit(0, 15, 900)
        .switch_in(1, 30, 0, READER, "reader")
        .recv_length(1, 40, SOCK, 64, 0)
        .recv_exit(1, 41, EventKind::SysExitRecvfrom, 64);
    let config = EngineConfig {
        degraded: super::Degraded {
            no_tcp_probe: false,
            no_data_ready: true,
            no_recv_length: false,
        },
        ..EngineConfig::default()
    };
    let (journeys, _) = s.run(config);
    assert_eq!(journeys.len(), 1);
    let j = &journeys[0];
    assert!(j.complete);
    assert_eq!(
        (j.proto.as_ref(), j.bytes, j.tid),
        ("udp", Some(64), Some(READER))
    );
    assert_eq!(
        (j.stages_ns.stack, j.stages_ns.wakeup, j.stages_ns.runqueue),
        (None, None, Some(16_000))
    );
    assert!(
        missing_reason(j, Stage::Stack)
            .unwrap()
            .contains("sock:sk_data_ready")
    );
}

#[test]
fn without_sock_recv_length_the_socket_reader_and_syscall_exit_link_the_read() {
    let mut s = Stream::default();
    s.raise(0, 10, 900).softirq_entry(0, 11, 900);
    s.receive(0, 12, 900, 0x1000, "lo", 92)
        .data_ready(0, 13, 900, SOCK, 17)
        .waking(0, 14, 900, READER, "reader");
    s.receive(0, 15, 900, 0x2000, "lo", 93)
        .data_ready(0, 16, 900, SOCK, 17);
    s.softirq_exit(0, 17, 900)
        .switch_in(1, 30, 0, READER, "reader");
    // Two reads, no sock_recv_length: each recvfrom exit takes the oldest datagram.
    s.recv_exit(1, 40, EventKind::SysExitRecvfrom, 64)
        .recv_exit(1, 50, EventKind::SysExitRecvfrom, 65);
    let config = EngineConfig {
        degraded: super::Degraded {
            no_tcp_probe: false,
            no_data_ready: false,
            no_recv_length: true,
        },
        ..EngineConfig::default()
    };
    let (journeys, _) = s.run(config);
    assert_eq!(journeys.len(), 2);
    assert_eq!(
        (
            journeys[0].len,
            journeys[0].bytes,
            journeys[0].ts.recv_return
        ),
        (92, Some(64), Some(40_000))
    );
    assert_eq!(
        (
            journeys[1].len,
            journeys[1].bytes,
            journeys[1].ts.recv_return
        ),
        (93, Some(65), Some(50_000))
    );
    assert!(
        journeys
            .iter()
            .all(|j| j.complete && j.comm.as_deref() == Some("reader"))
    );
}

#[test]
fn open_journeys_are_bounded_and_evictions_counted() {
    let mut s = Stream::default();
    s.raise(0, 1, 900).softirq_entry(0, 2, 900);
    // 100 datagrams queued on a socket nobody reads.
    for n in 0..100u64 {
        s.receive(0, 10 + n * 2, 900, 0x10_0000 + n * 0x100, "lo", 92)
            .data_ready(0, 11 + n * 2, 900, SOCK, 17);
    }
    let config = EngineConfig {
        max_open: 32,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config);
    let mut out = Vec::new();
    for event in &s.events {
        engine.push(event, &mut out);
        assert!(
            engine.open_journeys() <= 33,
            "bounded: {}",
            engine.open_journeys()
        );
    }
    let evicted = engine.stats().evicted;
    assert!(evicted >= 60, "{evicted}");
    assert_eq!(out.len() as u64, evicted);
    assert!(out.iter().all(|j| {
        !j.complete
            && missing_reason(j, Stage::Total)
                .unwrap()
                .starts_with("evicted")
    }));
    assert_eq!(out[0].id, 1, "the oldest go first");
}

#[test]
fn a_wakeup_that_finds_the_reader_still_running_has_no_runqueue_stage() {
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x1000, "lo", 92)
        .data_ready(0, 13, 900, SOCK, 17)
        .waking(0, 14, 900, READER, "reader")
        .softirq_exit(0, 15, 900)
        // No sched_switch: the reader had not switched out yet and simply kept running.
        .recv_length(1, 20, SOCK, 64, 0)
        .recv_exit(1, 21, EventKind::SysExitRecvfrom, 64);
    let (journeys, _) = s.run(EngineConfig::default());
    let j = &journeys[0];
    assert!(j.complete);
    assert_eq!(
        (j.stages_ns.wakeup, j.stages_ns.runqueue),
        (Some(1_000), None)
    );
    assert!(
        missing_reason(j, Stage::Runqueue)
            .unwrap()
            .starts_with("woken while still on its CPU")
    );
}

// ---- TCP follows bytes, not reads (docs/tcp.md) ----

const PSH_ACK: u8 = 0x18;
const ACK: u8 = 0x10;
const FIN_ACK: u8 = 0x11;
const SYN: u8 = 0x02;

/// `n` segments of `size` bytes each arriving in softirq on CPU 0 (seq from 1000), each
/// linked to `TCP_SOCK` by tcp_probe and announced by sk_data_ready.
fn segments(s: &mut Stream, n: u32, size: u32, start_us: u64) {
    s.raise(0, start_us, 900)
        .softirq_entry(0, start_us + 1, 900);
    for i in 0..n {
        let us = start_us + 2 + u64::from(i) * 3;
        let skb = 0x10_000 + u64::from(i) * 0x100;
        s.tcp_segment(0, us, 900, skb, (1000 + i * size, size, PSH_ACK))
            .tcp_probe(0, us + 1, 900, skb, TCP_SOCK, size)
            .data_ready(0, us + 2, 900, TCP_SOCK, 6);
    }
    s.softirq_exit(0, start_us + 2 + u64::from(n) * 3, 900);
}

#[test]
fn one_read_of_coalesced_segments_ends_each_at_that_read_with_its_own_payload() {
    for copied in [true, false] {
        let mut s = Stream::default();
        segments(&mut s, 20, 10, 10);
        s.tcp_read(
            1,
            200,
            (READER, READER),
            TCP_SOCK,
            200,
            copied.then_some(1200),
        );
        let (journeys, engine) = s.run(EngineConfig::default());
        assert_eq!(journeys.len(), 20, "copied_seq {copied}: {journeys:?}");
        for j in &journeys {
            assert_eq!(j.payload, Some(10));
            assert_eq!((j.reads, j.read_packets, j.bytes), (1, 20, Some(200)));
            assert_eq!(j.ts.recv_return, Some(201_000));
            assert_eq!(j.first_read, Some(201_000));
            assert!(j.complete);
            assert_ordered(j);
        }
        assert_eq!(engine.stats().reads_without_packet, 0);
        assert_eq!(engine.stats().unmatched_read_bytes, 0);
    }
}

#[test]
fn a_large_segment_read_in_pieces_ends_at_the_read_of_its_last_byte() {
    for copied in [true, false] {
        let mut s = Stream::default();
        segments(&mut s, 3, 1000, 10);
        // Reads of 1500 bytes: the first takes segment 1 and half of 2, the second the rest.
        s.tcp_read(
            1,
            100,
            (READER, READER),
            TCP_SOCK,
            1500,
            copied.then_some(2500),
        )
        .tcp_read(
            1,
            200,
            (READER, READER),
            TCP_SOCK,
            1500,
            copied.then_some(4000),
        );
        let (journeys, _) = s.run(EngineConfig::default());
        assert_eq!(journeys.len(), 3, "copied_seq {copied}");
        let [a, b, c] = &journeys[..] else {
            unreachable!()
        };
        assert_eq!(
            (a.ts.recv_return, a.first_read, a.reads),
            (Some(101_000), Some(101_000), 1)
        );
        assert_eq!(
            (b.ts.recv_return, b.first_read, b.reads),
            (Some(201_000), Some(101_000), 2)
        );
        assert_eq!(
            (c.ts.recv_return, c.first_read, c.reads),
            (Some(201_000), Some(201_000), 1)
        );
        assert!(
            journeys
                .iter()
                .all(|j| j.complete && j.payload == Some(1000))
        );
    }
    // One 100 KB segment (loopback TSO) read 4 KB at a time: one journey, 25 reads.
    let mut s = Stream::default();
    segments(&mut s, 1, 100_000, 10);
    for read in 0..25u32 {
        let bytes = if read < 24 { 4096 } else { 100_000 - 24 * 4096 };
        let copied = 1000 + (read * 4096 + bytes).min(100_000);
        s.tcp_read(
            1,
            100 + u64::from(read) * 10,
            (READER, READER),
            TCP_SOCK,
            bytes,
            Some(copied),
        );
    }
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 1);
    let j = &journeys[0];
    assert_eq!(
        (j.reads, j.first_read, j.ts.recv_return),
        (25, Some(101_000), Some(341_000))
    );
    assert_eq!(engine.stats().reads_without_packet, 0);
}

#[test]
fn bytes_queued_before_the_trace_are_not_credited_to_later_segments() {
    let mut s = Stream::default();
    segments(&mut s, 2, 100, 10);
    // The first read returns 500 bytes that were queued before the trace (seq 500..1000).
    s.tcp_read(1, 100, (READER, READER), TCP_SOCK, 500, Some(1000))
        .tcp_read(1, 110, (READER, READER), TCP_SOCK, 200, Some(1200));
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 2);
    assert!(journeys.iter().all(|j| j.ts.recv_return == Some(111_000)));
    assert_eq!(engine.stats().reads_without_packet, 1);
}

#[test]
fn control_segments_are_not_data_journeys_nor_drops() {
    let mut s = Stream::default();
    s.raise(0, 10, 900).softirq_entry(0, 11, 900);
    // SYN to a listener, the handshake's last ACK (wakes accept()), a FIN (wakes the reader).
    s.tcp_segment(0, 12, 900, 0x1000, (1, 0, SYN))
        .consume(0, 13, 0x1000)
        .tcp_segment(0, 14, 900, 0x2000, (2, 0, ACK))
        .data_ready(0, 15, 900, 0xdead_0000, 6)
        .waking(0, 16, 900, READER, "server")
        .queued_segment(0, 17, 900, 0x3000, (2, 0, FIN_ACK), TCP_SOCK)
        .softirq_exit(0, 20, 900)
        // The FIN's skb purged at close: not a drop of data.
        .kfree(1, 30, 0x3000, 6)
        .destroy(1, 31, TCP_SOCK);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert!(journeys.is_empty(), "{journeys:?}");
    let stats = engine.stats();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.unlinked_data_ready, 0);
    assert_eq!(stats.control.get("SYN"), Some(&1));
    assert_eq!(stats.control.get("ACK"), Some(&1));
    assert_eq!(stats.control.get("FIN|ACK"), Some(&1));
    assert!(stats.incomplete.is_empty());
    // With --all they are shown, labelled, and still not counted as incomplete data.
    let all = EngineConfig {
        keep_unsocketed: true,
        ..EngineConfig::default()
    };
    let (journeys, engine) = s.run(all);
    assert_eq!(journeys.len(), 3);
    assert!(journeys.iter().all(|j| j.control && j.pid.is_none()));
    assert_eq!(journeys[2].tcp_flags.unwrap().to_string(), "FIN|ACK");
    assert_eq!(engine.stats().journeys_emitted, 0);
}

#[test]
fn without_btf_the_handshake_ack_on_the_listener_is_control() {
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x2000, "lo", 52)
        .data_ready(0, 13, 900, 0xdead_0000, 6)
        .waking(0, 14, 900, READER, "server")
        .softirq_exit(0, 15, 900);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert!(journeys.is_empty(), "{journeys:?}");
    assert_eq!(engine.stats().control.get("no payload"), Some(&1));
}

#[test]
fn a_segment_processed_from_the_socket_backlog_reaches_its_reader() {
    let mut s = Stream::default();
    // Softirq on CPU 0 finds the socket owned by the reader: the segment goes to the backlog.
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .tcp_segment(0, 12, 900, 0x1000, (1000, 300, PSH_ACK))
        .softirq_exit(0, 13, 900)
        // The reader releases the socket on CPU 1: tcp_probe and sk_data_ready in its context.
        .tcp_probe(1, 20, READER, 0x1000, TCP_SOCK, 300)
        .data_ready(1, 21, READER, TCP_SOCK, 6)
        .tcp_read(1, 22, (READER, READER), TCP_SOCK, 300, Some(1300));
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 1, "{:?}", engine.stats());
    let j = &journeys[0];
    assert!(j.complete);
    assert_eq!(
        (j.payload, j.tid, j.ts.sk_data_ready),
        (Some(300), Some(READER), Some(21_000))
    );
    assert_eq!(j.stages_ns.stack, Some(9_000));
    assert!(engine.stats().unsocketed.is_empty());
}

#[test]
fn a_wakeup_of_another_thread_is_not_the_readers() {
    const OTHER: u32 = 501;
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .receive(0, 12, 900, 0x1000, "lo", 92)
        .data_ready(0, 13, 900, SOCK, 17)
        .waking(0, 14, 900, OTHER, "worker")
        .softirq_exit(0, 15, 900)
        .switch_in(1, 20, 0, OTHER, "worker");
    // READER, already running, takes the datagram; the woken thread finds nothing.
    s.recv_length(1, 30, SOCK, 64, 0)
        .recv_exit(1, 31, EventKind::SysExitRecvfrom, 64);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 1);
    let j = &journeys[0];
    assert_eq!((j.tid, j.woken_tid), (Some(READER), Some(OTHER)));
    assert_eq!((j.ts.waking, j.ts.switch_in), (None, None));
    assert!(
        missing_reason(j, Stage::Wakeup)
            .unwrap()
            .contains("another thread")
    );
    assert_eq!(engine.stats().wakeups_of_other_threads, 1);
    assert!(j.complete, "the journey itself was followed by evidence");
}

#[test]
fn a_closed_socket_ends_its_unread_data_as_lost_not_dropped() {
    let mut s = Stream::default();
    segments(&mut s, 2, 100, 10);
    s.tcp_read(1, 100, (READER, READER), TCP_SOCK, 150, Some(1150))
        .destroy(1, 120, TCP_SOCK);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 2);
    assert!(journeys[0].complete);
    assert!(!journeys[1].complete);
    assert!(
        missing_reason(&journeys[1], Stage::Total)
            .unwrap()
            .contains("closed with part of this data unread")
    );
    assert_eq!(
        (engine.stats().closed_unread, engine.stats().dropped),
        (1, 0)
    );
    assert_eq!(engine.open_journeys(), 0);
}

#[test]
fn a_reader_filter_keeps_only_its_readers_journeys() {
    const OTHER_SOCK: u64 = 0xffff_0000_7000;
    const IDLE_SOCK: u64 = 0xffff_0000_8000;
    let mut s = Stream::default();
    s.raise(0, 10, 900).softirq_entry(0, 11, 900);
    for (i, sk) in [TCP_SOCK, OTHER_SOCK, IDLE_SOCK, OTHER_SOCK]
        .into_iter()
        .enumerate()
    {
        let us = 12 + i as u64 * 3;
        let skb = 0x1000 * (i as u64 + 1);
        s.tcp_segment(0, us, 900, skb, (1000, 100, PSH_ACK))
            .tcp_probe(0, us + 1, 900, skb, sk, 100)
            .data_ready(0, us + 2, 900, sk, 6);
    }
    s.softirq_exit(0, 30, 900)
        .tcp_read(1, 40, (READER, READER), TCP_SOCK, 100, Some(1100))
        .tcp_read(1, 50, (600, 601), OTHER_SOCK, 100, Some(1100));
    // A later segment on the other reader's socket is dropped at once under the filter, so
    // that reader's read of it finds nothing: not a read without a packet to report.
    s.raise(0, 60, 900)
        .softirq_entry(0, 61, 900)
        .tcp_segment(0, 62, 900, 0x9000, (1200, 100, PSH_ACK))
        .tcp_probe(0, 63, 900, 0x9000, OTHER_SOCK, 100)
        .softirq_exit(0, 64, 900)
        .tcp_read(1, 70, (600, 601), OTHER_SOCK, 100, Some(1200));
    let mut config = EngineConfig::default();
    config.readers.pids = vec![READER];
    let (journeys, engine) = s.run(config);
    assert_eq!(journeys.len(), 1, "{journeys:?}");
    assert_eq!(journeys[0].pid, Some(READER));
    let stats = engine.stats();
    // The other reader's two segments, its later one, and the never-read one on a socket
    // no selected reader used.
    assert_eq!(stats.not_selected, 4, "{stats:?}");
    assert_eq!(stats.reads_without_packet, 0, "{stats:?}");
    assert_eq!((stats.journeys_emitted, stats.complete), (1, 1));
    assert!(stats.incomplete.is_empty());
}

#[test]
fn segments_coalesced_in_the_socket_backlog_keep_their_own_journeys() {
    let mut s = Stream::default();
    // Three segments arrive while the reader holds the socket: all go to the backlog, where
    // the kernel merges the second and third into the first skb (freed untraced).
    s.raise(0, 10, 900).softirq_entry(0, 11, 900);
    for (i, skb) in [0x1000u64, 0x2000, 0x3000].into_iter().enumerate() {
        s.tcp_segment(
            0,
            12 + i as u64,
            900,
            skb,
            (1000 + i as u32 * 500, 500, PSH_ACK),
        );
    }
    s.softirq_exit(0, 20, 900)
        // The reader releases the socket: one tcp_probe with all 1500 bytes.
        .tcp_probe(1, 30, READER, 0x1000, TCP_SOCK, 1500)
        .data_ready(1, 31, READER, TCP_SOCK, 6)
        .tcp_read(1, 40, (READER, READER), TCP_SOCK, 1500, Some(2500));
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 3, "{:?}", engine.stats());
    for j in &journeys {
        assert_eq!(
            (j.payload, j.ts.sk_data_ready, j.ts.recv_return),
            (Some(500), Some(31_000), Some(41_000))
        );
        assert!(j.complete);
    }
    assert!(engine.stats().unsocketed.is_empty());
    assert_eq!(engine.stats().reads_without_packet, 0);
}

#[test]
fn a_coalesced_skb_beyond_64_kib_is_told_apart_by_its_16_bit_data_len() {
    // Seen with nginx reading a 200 KB PUT body: 47616 + 19968 bytes merged in the backlog,
    // and tcp_probe's 16-bit data_len says 2048 (67584 modulo 65536).
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .tcp_segment(0, 12, 900, 0x1000, (1000, 47616, ACK))
        .tcp_segment(0, 13, 900, 0x2000, (1000 + 47616, 19968, PSH_ACK))
        .softirq_exit(0, 14, 900)
        .tcp_probe(1, 20, READER, 0x1000, TCP_SOCK, 67584 % 65536)
        .data_ready(1, 21, READER, TCP_SOCK, 6)
        .tcp_read(1, 30, (READER, READER), TCP_SOCK, 67584, Some(1000 + 67584));
    let (journeys, engine) = s.run(EngineConfig::default());
    let payloads: Vec<Option<u32>> = journeys.iter().map(|j| j.payload).collect();
    assert_eq!(payloads, [Some(47616), Some(19968)], "{:?}", engine.stats());
    assert!(journeys.iter().all(|j| j.complete));
}

#[test]
fn the_addresses_record_names_the_flow_of_the_packet_that_follows() {
    let mut s = Stream::default();
    let v6 = |last: u8| {
        let mut bytes = [0u8; 16];
        bytes[15] = last;
        bytes
    };
    let (saddr, daddr) = (v6(1), v6(2));
    s.raise(0, 10, 900).softirq_entry(0, 11, 900);
    s.ev(0, 12, 900, EventKind::NetifReceiveSkb, |e| {
        e.flags = FLAG_ADDRS;
        e.addr = 0x1000;
        e.name = saddr;
        e.addr2 = u64::from_le_bytes(daddr[..8].try_into().unwrap());
        e.arg0 = u32::from_le_bytes(daddr[8..12].try_into().unwrap());
        e.arg1 = u32::from_le_bytes(daddr[12..].try_into().unwrap());
        e.arg2 = 6;
    })
    .queued_segment(0, 12, 900, 0x1000, (1000, 100, PSH_ACK), TCP_SOCK)
    .softirq_exit(0, 15, 900)
    .tcp_read(1, 20, (READER, READER), TCP_SOCK, 100, Some(1100));
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(
        journeys.len(),
        1,
        "the addresses record is no packet: {:?}",
        engine.stats()
    );
    let j = &journeys[0];
    assert_eq!(j.family, Some("ipv6"));
    assert_eq!(j.saddr, Some("::1".parse().unwrap()));
    assert_eq!(j.daddr, Some("::2".parse().unwrap()));
    assert_eq!((j.sport, j.dport), (Some(40000), Some(6379)));
}

#[test]
fn a_segment_merged_in_the_backlog_survives_the_reuse_of_its_freed_address() {
    // Two segments wait in the backlog; the second is merged into the first and freed, and
    // its address is taken by a new segment before the reader releases the socket.
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .tcp_segment(0, 12, 900, 0x1000, (1000, 500, PSH_ACK))
        .tcp_segment(0, 13, 900, 0x2000, (1500, 500, PSH_ACK))
        .tcp_segment(0, 14, 900, 0x2000, (2000, 500, PSH_ACK))
        .softirq_exit(0, 15, 900)
        .tcp_probe(1, 20, READER, 0x1000, TCP_SOCK, 1000)
        .data_ready(1, 21, READER, TCP_SOCK, 6)
        .tcp_probe(1, 22, READER, 0x2000, TCP_SOCK, 500)
        .data_ready(1, 23, READER, TCP_SOCK, 6)
        .tcp_read(1, 30, (READER, READER), TCP_SOCK, 1500, Some(2500));
    let (journeys, engine) = s.run(EngineConfig::default());
    let payloads: Vec<Option<u32>> = journeys.iter().map(|j| j.payload).collect();
    assert_eq!(
        payloads,
        [Some(500), Some(500), Some(500)],
        "{:?}",
        engine.stats()
    );
    assert!(journeys.iter().all(|j| j.complete));
}

#[test]
fn segments_merged_into_a_dropped_retransmission_are_dropped_with_it() {
    // Seen with iperf3 over loopback: two segments are reordered, the sender retransmits both
    // (RACK), the originals are already queued when the copies reach the backlog, where the
    // kernel merges the second copy into the first and then drops that skb as old data.
    // The second copy's bytes went with it: crediting it to the read counted them twice.
    const TCP_OLD_DATA: u32 = 60;
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .queued_segment(0, 12, 900, 0x1000, (1000, 500, ACK), TCP_SOCK)
        .queued_segment(0, 15, 900, 0x2000, (1500, 500, PSH_ACK), TCP_SOCK)
        // The copies, while the reader holds the socket.
        .tcp_segment(0, 18, 900, 0x3000, (1000, 500, ACK))
        .tcp_segment(0, 19, 900, 0x4000, (1500, 500, PSH_ACK))
        .softirq_exit(0, 20, 900)
        .tcp_probe(1, 30, READER, 0x3000, TCP_SOCK, 1000)
        .kfree(1, 31, 0x3000, TCP_OLD_DATA)
        .tcp_read(1, 40, (READER, READER), TCP_SOCK, 1000, Some(2000));
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(
        complete_payloads(&journeys),
        [(0x1000, Some(500)), (0x2000, Some(500))],
        "{:?}",
        engine.stats()
    );
    let dropped: Vec<u64> = journeys
        .iter()
        .filter(|j| j.drop_reason.is_some())
        .map(|j| j.skbaddr.0)
        .collect();
    assert_eq!(dropped, [0x3000, 0x4000], "{:?}", engine.stats());
    assert_eq!(engine.stats().dropped, 2);
}

#[test]
fn a_retransmitted_copy_the_socket_already_had_is_not_credited_to_a_read() {
    // Seen with iperf3 over loopback: segment A (1000..1500) arrives, then its copy A'
    // (RACK retransmitted it after a reordering), then B (1500..1700), while the reader
    // holds the socket. In the backlog the kernel merges B into A' (contiguous), then queues
    // A and, from A'+B, only B's bytes (the rest is trimmed as old): no skb is dropped.
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .tcp_segment(0, 12, 900, 0x1000, (1000, 500, ACK))
        .tcp_segment(0, 13, 900, 0x2000, (1000, 500, ACK))
        .tcp_segment(0, 14, 900, 0x3000, (1500, 200, PSH_ACK))
        .softirq_exit(0, 15, 900)
        .tcp_probe(1, 20, READER, 0x1000, TCP_SOCK, 500)
        .data_ready(1, 21, READER, TCP_SOCK, 6)
        .tcp_probe(1, 22, READER, 0x2000, TCP_SOCK, 700)
        .data_ready(1, 23, READER, TCP_SOCK, 6)
        .tcp_read(1, 30, (READER, READER), TCP_SOCK, 700, Some(1700));
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(
        complete_payloads(&journeys),
        [(0x1000, Some(500)), (0x3000, Some(200))],
        "{:?}",
        engine.stats()
    );
    let copy: Vec<&Journey> = journeys.iter().filter(|j| !j.complete).collect();
    assert_eq!(copy.len(), 1, "{:?}", engine.stats());
    assert_eq!(copy[0].skbaddr.0, 0x2000);
    assert_eq!(
        engine.stats().incomplete.get(Ending::Duplicate.as_str()),
        Some(&1)
    );
    assert_eq!(engine.stats().reads_without_packet, 0);
}

#[test]
fn a_copy_still_queued_when_its_socket_closes_was_not_left_unread() {
    // A is read; its retransmitted copy A' is queued behind it (merged with nothing, trimmed
    // by the kernel) and the socket closes before another read passes it.
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .queued_segment(0, 12, 900, 0x1000, (1000, 500, PSH_ACK), TCP_SOCK)
        .softirq_exit(0, 15, 900)
        .tcp_read(1, 20, (READER, READER), TCP_SOCK, 500, Some(1500))
        .raise(0, 30, 900)
        .softirq_entry(0, 31, 900)
        .queued_segment(0, 32, 900, 0x2000, (1000, 500, PSH_ACK), TCP_SOCK)
        .softirq_exit(0, 35, 900)
        .ev(1, 40, READER, EventKind::TcpDestroySock, |e| {
            e.addr = TCP_SOCK
        });
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 2, "{:?}", engine.stats());
    assert!(journeys[0].complete);
    assert_eq!(
        engine.stats().incomplete.get(Ending::Duplicate.as_str()),
        Some(&1)
    );
    assert_eq!(engine.stats().closed_unread, 0);
}

#[test]
fn a_new_connection_on_a_socket_address_is_not_judged_by_the_last_ones_reads() {
    // The first connection's reads credit up to 5000; its tcp_destroy_sock is not traced
    // (`--without tcp:tcp_destroy_sock`) and a new connection, from another client port,
    // gets the same socket address with sequence numbers below that point.
    let mut s = Stream::default();
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .queued_segment(0, 12, 900, 0x1000, (4000, 1000, PSH_ACK), TCP_SOCK)
        .softirq_exit(0, 15, 900)
        .tcp_read(1, 20, (READER, READER), TCP_SOCK, 1000, Some(5000))
        .raise(0, 30, 900)
        .softirq_entry(0, 31, 900)
        .tcp_segment_from(CLIENT_PORT + 1, 0, 32, 900, 0x2000, (1000, 300, PSH_ACK))
        .tcp_probe_from(CLIENT_PORT + 1, 0, 33, 900, (0x2000, TCP_SOCK), 300)
        .data_ready(0, 34, 900, TCP_SOCK, 6)
        .softirq_exit(0, 35, 900)
        .tcp_read(1, 40, (READER, READER), TCP_SOCK, 300, Some(1300));
    let (journeys, engine) = s.run(EngineConfig::default());
    let read: Vec<(u64, bool)> = journeys.iter().map(|j| (j.skbaddr.0, j.complete)).collect();
    assert_eq!(
        read,
        [(0x1000, true), (0x2000, true)],
        "{:?}",
        engine.stats()
    );
}

/// The skb address and payload of each complete journey, in order.
fn complete_payloads(journeys: &[Journey]) -> Vec<(u64, Option<u32>)> {
    journeys
        .iter()
        .filter(|j| j.complete)
        .map(|j| (j.skbaddr.0, j.payload))
        .collect()
}

/// Three segments (1000..1500, 1500..1700, 1700..2000) queued on TCP_SOCK.
fn three_queued_segments(s: &mut Stream) -> &mut Stream {
    s.raise(0, 10, 900)
        .softirq_entry(0, 11, 900)
        .queued_segment(0, 12, 900, 0x1000, (1000, 500, ACK), TCP_SOCK)
        .queued_segment(0, 15, 900, 0x2000, (1500, 200, ACK), TCP_SOCK)
        .queued_segment(0, 18, 900, 0x3000, (1700, 300, PSH_ACK), TCP_SOCK)
        .softirq_exit(0, 21, 900)
}

#[test]
fn bytes_taken_by_splice_end_their_journeys_there_not_as_left_unread() {
    // haproxy splicing: tcp_splice_read consumes the bytes, no sock_recv_length, no traced
    // syscall exit. The first splice takes 1000..1600 (A whole, B in part), the second the
    // rest; then the socket closes.
    let mut s = Stream::default();
    three_queued_segments(&mut s)
        .splice(1, 30, (77, READER), TCP_SOCK, Some(1600))
        .splice(1, 40, (77, READER), TCP_SOCK, Some(2000))
        .destroy(1, 50, TCP_SOCK);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(
        complete_payloads(&journeys),
        [
            (0x1000, Some(500)),
            (0x2000, Some(200)),
            (0x3000, Some(300))
        ],
        "{:?}",
        engine.stats()
    );
    let recv_return: Vec<Option<u64>> = journeys.iter().map(|j| j.ts.recv_return).collect();
    assert_eq!(recv_return, [Some(30_000), Some(40_000), Some(40_000)]);
    // B's first byte went at the first splice, its last at the second.
    assert_eq!(journeys[1].first_read, Some(30_000));
    for j in &journeys {
        assert_eq!((j.pid, j.tid), (Some(77), Some(READER)));
        assert_eq!(j.comm.as_deref(), Some("haproxy"));
        // Neither the syscall nor what it returned is known.
        assert_eq!((j.syscall, j.bytes), (None, None));
    }
    assert_eq!(engine.stats().closed_unread, 0);
    assert_eq!(engine.stats().reads_without_packet, 0);
}

#[test]
fn a_splice_without_the_read_point_credits_nothing() {
    // Without BTF the event has no copied_seq: which bytes went is unknown, so none are
    // credited, and the close still says what was never read by a known read.
    let mut s = Stream::default();
    three_queued_segments(&mut s)
        .splice(1, 30, (77, READER), TCP_SOCK, None)
        .destroy(1, 50, TCP_SOCK);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert!(complete_payloads(&journeys).is_empty());
    assert_eq!(engine.stats().closed_unread, 3);
}

#[test]
fn a_splice_by_another_process_is_not_the_filtered_readers() {
    let mut s = Stream::default();
    three_queued_segments(&mut s).splice(1, 30, (77, READER), TCP_SOCK, Some(2000));
    let mut config = EngineConfig::default();
    config.readers.pids = vec![78];
    let (journeys, engine) = s.run(config);
    assert!(journeys.is_empty(), "{journeys:?}");
    assert_eq!(engine.stats().not_selected, 3, "{:?}", engine.stats());
}

#[test]
fn a_datagram_read_outside_every_recv_syscall_returns_at_the_read() {
    // io_uring: the reader waits in io_uring_enter (a wait syscall), is woken and switched
    // in, and io_uring's recv takes the datagram there. No recv-family exit follows; the
    // io_uring_enter exit is not an event.
    let mut s = Stream::default();
    s.raise(0, 100, 900)
        .softirq_entry(0, 102, 900)
        .receive(0, 105, 900, 0x1000, "lo", 92)
        .data_ready(0, 110, 900, SOCK, 17)
        .waking(0, 111, 900, READER, "reader")
        .softirq_exit(0, 116, 900)
        .switch_in(1, 150, 0, READER, "reader")
        .ev(1, 160, READER, EventKind::SockRecvLength, |e| {
            e.addr = SOCK;
            e.arg0 = 64;
            e.arg2 = 2 << 16 | 17;
            e.flags = FLAG_OUTSIDE_SYSCALL;
        })
        // A later recv-family call of the same thread that returns nothing of it.
        .recv_exit(1, 300, EventKind::SysExitRecvfrom, -11);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 1, "{:?}", engine.stats());
    let j = &journeys[0];
    assert!(j.complete, "{j:?}");
    assert_eq!(
        (j.ts.recv_return, j.first_read),
        (Some(160_000), Some(160_000))
    );
    assert_eq!((j.syscall, j.bytes, j.tid), (None, Some(64), Some(READER)));
    // Woken and switched in: every stage but the hard IRQ.
    assert_eq!(j.stages_ns.syscall, Some(10_000));
    assert!(j.stages_ns.wakeup.is_some() && j.stages_ns.runqueue.is_some());
    assert_eq!(engine.stats().reads_without_packet, 0);
}

#[test]
fn a_tcp_read_outside_every_recv_syscall_is_taken_once() {
    // io_uring's TCP recv: tcp_rcv_space_adjust (emitted outside recv-family syscalls)
    // takes the bytes, then its sock_recv_length finds them gone: not a read without data.
    let mut s = Stream::default();
    three_queued_segments(&mut s)
        .splice(1, 30, (77, READER), TCP_SOCK, Some(2000))
        .ev(1, 31, READER, EventKind::SockRecvLength, |e| {
            e.tgid = 77;
            e.addr = TCP_SOCK;
            e.arg0 = 1000;
            e.arg2 = 2 << 16 | 6;
            e.addr2 = COPIED_SEQ_VALID | 2000;
            e.flags = FLAG_OUTSIDE_SYSCALL;
        });
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(
        complete_payloads(&journeys).len(),
        3,
        "{:?}",
        engine.stats()
    );
    assert!(journeys.iter().all(|j| j.ts.recv_return == Some(30_000)));
    assert_eq!(engine.stats().reads_without_packet, 0);
}

#[test]
fn a_consumption_inside_net_rx_is_the_kernels_not_the_interrupted_tasks() {
    // kTLS: its parser reads the TCP records in the softirq that received them (current is
    // whatever task ran); the application's read of the plaintext later returns them.
    let mut s = Stream::default();
    three_queued_segments(&mut s)
        .raise(0, 25, 900)
        .softirq_entry(0, 26, 900)
        .splice(0, 27, (900, 900), TCP_SOCK, Some(2000))
        .softirq_exit(0, 28, 900)
        .tcp_read(1, 40, (READER, READER), TCP_SOCK, 950, Some(2000));
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(
        complete_payloads(&journeys).len(),
        3,
        "{:?}",
        engine.stats()
    );
    for j in &journeys {
        assert_eq!(
            (j.tid, j.syscall),
            (Some(READER), Some("recvfrom")),
            "{j:?}"
        );
    }
}

#[test]
fn a_fragmented_datagram_is_the_journey_of_its_completing_fragment() {
    // Three IPv4 fragments of one 4000-byte datagram on a veth: the first two wait in the
    // reassembly queue and are consumed when the third completes the datagram, in the third's
    // skb. No fragment but the first has a UDP header: none says ports or the datagram size.
    let fragment = |s: &mut Stream, us: u64, skb: u64, len: u32| {
        s.ev(0, us, 900, EventKind::NetifReceiveSkb, |e| {
            e.addr = skb;
            e.arg0 = len;
            e.name = named("veth1");
            e.arg1 = HDR_VALID | HDR_FRAGMENT | 4 << 16 | 17;
            e.arg2 = len - 20;
            // What a later fragment's first bytes would have been taken for: payload.
            e.addr2 = 0x7979_7979_7979_7979;
        });
    };
    let mut s = Stream::default();
    s.raise(0, 10, 900).softirq_entry(0, 11, 900);
    fragment(&mut s, 12, 0x1000, 1500);
    fragment(&mut s, 13, 0x2000, 1500);
    fragment(&mut s, 14, 0x3000, 1068);
    s.consume(0, 15, 0x1000)
        .consume(0, 16, 0x2000)
        .data_ready(0, 17, 900, SOCK, 17)
        .softirq_exit(0, 18, 900)
        .recv_length(1, 30, SOCK, 4000, 0)
        .recv_exit(1, 31, EventKind::SysExitRecvfrom, 4000);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert_eq!(journeys.len(), 1, "{:?}", engine.stats());
    let j = &journeys[0];
    assert!(j.complete, "{j:?}");
    assert_eq!((j.skbaddr.0, j.proto.as_ref()), (0x3000, "udp"));
    assert_eq!(
        (j.payload, j.bytes, j.partial_read),
        (Some(4000), Some(4000), false)
    );
    assert_eq!((j.sport, j.dport), (None, None));
    assert_eq!(
        engine.stats().unsocketed.get(Ending::Reassembled.as_str()),
        Some(&2)
    );
    assert_eq!(engine.stats().dropped, 0);
}

#[test]
fn a_read_of_a_netlink_socket_is_no_read_without_its_packet() {
    // getaddrinfo's netlink reads (recorded before the kernel side skipped non-IP sockets).
    let mut s = Stream::default();
    s.ev(1, 10, READER, EventKind::SockRecvLength, |e| {
        e.addr = SOCK;
        e.arg0 = 396;
        e.arg2 = 16 << 16; // AF_NETLINK
    })
    .recv_length(1, 20, SOCK, 64, 0);
    let (journeys, engine) = s.run(EngineConfig::default());
    assert!(journeys.is_empty());
    // Only the IP read counts.
    assert_eq!(engine.stats().reads_without_packet, 1);
}
