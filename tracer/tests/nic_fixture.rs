//! Journeys of a real NIC: a recording made on eth0 (virtio-net) while pip downloaded two
//! packages (see tests/fixtures/README.md). No kernel needed.

use std::path::Path;

use tracer::{
    journey::{EngineConfig, Journey, Tracker},
    recording::Recording,
};

fn journeys() -> (Vec<Journey>, Recording) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nic-download/eth0-pip-download.trc");
    let recording = Recording::read(&path).expect("fixture reads");
    let mut tracker = Tracker::new(EngineConfig::from_recording(&recording.meta, false));
    let mut out = Vec::new();
    for event in &recording.events {
        tracker.push_event(*event);
    }
    tracker.finish(&mut out);
    (out, recording)
}

#[test]
fn nic_journeys_start_at_the_nic_interrupt_and_end_in_the_downloader() {
    let (journeys, recording) = journeys();
    assert!(recording.truncated.is_none());
    assert_eq!(
        recording.version, 1,
        "the fixture predates format v2: it also covers the v1 reader"
    );
    let input_irq = recording
        .meta
        .irqs
        .iter()
        .find(|irq| irq.name == "virtio2-input.0")
        .expect("rx IRQ in metadata");
    assert_eq!(input_irq.dev, "eth0");

    let read: Vec<&Journey> = journeys
        .iter()
        .filter(|j| &*j.dev == "eth0" && j.pid.is_some())
        .collect();
    assert!(
        read.len() >= 15,
        "only {} eth0 journeys reached a reader",
        read.len()
    );
    for journey in &read {
        assert_eq!(journey.irq, Some(input_irq.irq), "{journey:?}");
        assert_eq!(journey.irq_name.as_deref(), Some("virtio2-input.0"));
        assert!(
            journey
                .stages_ns
                .irq
                .is_some_and(|ns| ns > 0 && ns < 1_000_000),
            "{journey:?}"
        );
        assert_eq!(
            journey.comm.as_deref(),
            Some("pip"),
            "the downloading process reads it"
        );
        assert!(
            journey.proto == "tcp" || journey.proto == "udp",
            "{journey:?}"
        );
        assert!(journey.complete);
        assert!(
            journey.napi_batch_pos.is_some() && journey.napi_budget == Some(64),
            "{journey:?}"
        );
        let stamps: Vec<u64> = journey
            .ts
            .in_order()
            .iter()
            .filter_map(|(_, ts)| *ts)
            .collect();
        assert!(
            stamps.windows(2).all(|pair| pair[0] <= pair[1]),
            "not monotonic: {:?}",
            journey.ts
        );
        assert_eq!(
            journey.stages_ns.total,
            Some(journey.ts.recv_return.unwrap() - journey.ts.irq_entry.unwrap())
        );
    }
    // The HTTPS transfer, and the DNS answers that came before it.
    let tcp = read.iter().filter(|j| j.proto == "tcp").count();
    assert!(
        tcp >= 10 && read.iter().any(|j| j.proto == "udp"),
        "{tcp} tcp journeys"
    );
    // The reader slept in poll() between packets: most journeys have a wakeup and a runqueue stage.
    let woken = read
        .iter()
        .filter(|j| j.stages_ns.wakeup.is_some() && j.stages_ns.runqueue.is_some())
        .count();
    assert!(woken * 2 > read.len(), "{woken} of {} woken", read.len());
    // After pip closed its connections, late segments were dropped with the kernel's reason.
    let drops: Vec<&str> = journeys
        .iter()
        .filter_map(|j| j.drop_reason.as_deref())
        .collect();
    assert!(
        drops.contains(&"NO_SOCKET") || drops.contains(&"TCP_ABORT_ON_DATA"),
        "{drops:?}"
    );
}

#[test]
fn the_same_events_give_the_same_journeys() {
    let (first, _) = journeys();
    let (second, _) = journeys();
    assert_eq!(first, second);
}
