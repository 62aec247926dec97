//! Kernel tests: every journey names its flow (family, addresses, ports from the packet's own
//! headers), checked against what the test's own sockets report (getsockname/getpeername,
//! recvfrom's source), over IPv4 and IPv6 loopback, TCP and UDP.

mod common;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use common::{RunningTracer, gettid, json_events, kernel_test};
use serde_json::Value;

/// (family, saddr, sport, daddr, dport) of a journey.
fn flow(journey: &Value) -> (String, String, u64, String, u64) {
    (
        journey["family"].as_str().unwrap_or("null").to_owned(),
        journey["saddr"].as_str().unwrap_or("null").to_owned(),
        journey["sport"].as_u64().unwrap_or(0),
        journey["daddr"].as_str().unwrap_or("null").to_owned(),
        journey["dport"].as_u64().unwrap_or(0),
    )
}

fn expected(family: &str, from: SocketAddr, to: SocketAddr) -> (String, String, u64, String, u64) {
    (
        family.to_owned(),
        from.ip().to_string(),
        u64::from(from.port()),
        to.ip().to_string(),
        u64::from(to.port()),
    )
}

#[test]
fn journeys_name_their_flow_over_ipv4_and_ipv6() {
    let Some(_serial) = kernel_test("journeys_name_their_flow_over_ipv4_and_ipv6") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tracer = RunningTracer::start(&["live", "--json", "--interval", "1h"], dir.path());
    let reader_tid = u64::from(gettid());
    let mut wanted = Vec::new();
    for (family, local) in [("ipv4", "127.0.0.1:0"), ("ipv6", "[::1]:0")] {
        // UDP: the source as recvfrom reports it, the destination as getsockname does.
        let receiver = UdpSocket::bind(local).unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let sender = UdpSocket::bind(local).unwrap();
        for _ in 0..3 {
            sender
                .send_to(b"flow", receiver.local_addr().unwrap())
                .unwrap();
            let mut buf = [0u8; 64];
            let (_, from) = receiver.recv_from(&mut buf).unwrap();
            wanted.push((
                "udp",
                expected(family, from, receiver.local_addr().unwrap()),
            ));
        }
        // TCP: the server's accepted stream reads what the client wrote.
        let listener = TcpListener::bind(local).unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        for _ in 0..3 {
            client.write_all(b"flow").unwrap();
            let mut buf = [0u8; 4];
            server.read_exact(&mut buf).unwrap();
        }
        wanted.push((
            "tcp",
            expected(
                family,
                server.peer_addr().unwrap(),
                server.local_addr().unwrap(),
            ),
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (stdout, _) = tracer.stop();
    let journeys = json_events(&stdout);
    let ours: Vec<&Value> = journeys
        .iter()
        .filter(|j| j["tid"].as_u64() == Some(reader_tid) && j["control"] == false)
        .collect();
    for (proto, flow_wanted) in &wanted {
        let found = ours
            .iter()
            .filter(|j| j["proto"] == *proto && flow(j) == *flow_wanted)
            .count();
        assert!(
            found >= 1,
            "no {proto} journey of {flow_wanted:?} in {:?}",
            ours.iter().map(|j| flow(j)).collect::<Vec<_>>()
        );
    }
    for j in &ours {
        let (family, ..) = flow(j);
        assert!(
            family == "ipv4" || family == "ipv6",
            "every journey names its family: {j}"
        );
        assert!(
            wanted
                .iter()
                .any(|(proto, f)| j["proto"] == *proto && flow(j) == *f),
            "a journey with a flow the test did not make: {j}"
        );
    }
    assert_eq!(ours.len(), 12, "3 datagrams and 3 segments per family");
}
