//! Parser, compiler and evaluator tests on synthetic tuples.

use std::net::IpAddr;

use super::*;

fn filter(text: &str) -> FlowFilter {
    FlowFilter::parse(text)
        .unwrap_or_else(|err| panic!("{text}: {err}"))
        .expect("not empty")
}

fn error(text: &str) -> FilterError {
    FlowFilter::parse(text).expect_err(text)
}

/// A received packet: `proto` from `src:sport` to `dst:dport`.
fn packet(f: &FlowFilter, proto: &str, src: &str, sport: u16, dst: &str, dport: u16) -> bool {
    let proto = match proto {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        other => other.parse().unwrap(),
    };
    let saddr: IpAddr = src.parse().unwrap();
    let daddr: IpAddr = dst.parse().unwrap();
    f.matches_packet(proto, Some(saddr), Some(sport), Some(daddr), Some(dport))
}

#[test]
fn empty_is_no_filter() {
    assert_eq!(FlowFilter::parse("").unwrap(), None);
    assert_eq!(FlowFilter::parse("   ").unwrap(), None);
}

#[test]
fn protocols_and_versions() {
    let tcp = filter("tcp");
    assert!(packet(&tcp, "tcp", "10.0.0.1", 1, "10.0.0.2", 2));
    assert!(!packet(&tcp, "udp", "10.0.0.1", 1, "10.0.0.2", 2));
    let ip6 = filter("ip6");
    assert!(packet(&ip6, "udp", "fd00::1", 1, "fd00::2", 2));
    assert!(!packet(&ip6, "udp", "10.0.0.1", 1, "10.0.0.2", 2));
    let icmp = filter("icmp");
    assert!(packet(&icmp, "icmp", "10.0.0.1", 0, "10.0.0.2", 0));
    assert!(!packet(&icmp, "tcp", "10.0.0.1", 0, "10.0.0.2", 0));
}

#[test]
fn directions_of_ports() {
    let dst = filter("tcp and dst port 6379");
    assert!(packet(&dst, "tcp", "127.0.0.1", 40000, "127.0.0.1", 6379));
    assert!(!packet(&dst, "tcp", "127.0.0.1", 6379, "127.0.0.1", 40000));
    assert!(!packet(&dst, "udp", "127.0.0.1", 40000, "127.0.0.1", 6379));
    let either = filter("port 6379");
    assert!(packet(
        &either,
        "tcp",
        "127.0.0.1",
        6379,
        "127.0.0.1",
        40000
    ));
    assert!(packet(&either, "udp", "127.0.0.1", 1, "127.0.0.1", 6379));
    let both = filter("src and dst port 53");
    assert!(packet(&both, "udp", "127.0.0.1", 53, "127.0.0.1", 53));
    assert!(!packet(&both, "udp", "127.0.0.1", 54, "127.0.0.1", 53));
    let or = filter("src or dst port 53");
    assert!(packet(&or, "udp", "127.0.0.1", 54, "127.0.0.1", 53));
    let range = filter("dst portrange 6000-6010");
    assert!(packet(&range, "udp", "::1", 1, "::1", 6000));
    assert!(packet(&range, "udp", "::1", 1, "::1", 6010));
    assert!(!packet(&range, "udp", "::1", 1, "::1", 6011));
    assert!(!packet(&range, "udp", "::1", 6005, "::1", 1));
}

#[test]
fn ports_need_tcp_or_udp() {
    let port = filter("port 0");
    assert!(!packet(&port, "icmp", "10.0.0.1", 0, "10.0.0.2", 0));
}

#[test]
fn hosts_and_nets_in_both_families() {
    let host = filter("src host 10.1.2.3");
    assert!(packet(&host, "udp", "10.1.2.3", 1, "10.0.0.2", 2));
    assert!(!packet(&host, "udp", "10.1.2.4", 1, "10.1.2.3", 2));
    let net = filter("net 10.1.0.0/16");
    assert!(packet(&net, "udp", "192.168.0.1", 1, "10.1.200.3", 2));
    assert!(!packet(&net, "udp", "192.168.0.1", 1, "10.2.0.3", 2));
    // An IPv4 test never matches an IPv6 packet, whatever its bytes.
    let zero = filter("net 0.0.0.0/0");
    assert!(packet(&zero, "udp", "1.2.3.4", 1, "5.6.7.8", 2));
    assert!(!packet(&zero, "udp", "::1", 1, "::1", 2));
    let six = filter("dst net fd00::/64");
    assert!(packet(&six, "tcp", "fd01::1", 1, "fd00::abcd", 2));
    assert!(!packet(&six, "tcp", "fd00::abcd", 1, "fd01::1", 2));
    let odd = filter("dst net fd00::/13");
    assert!(packet(&odd, "tcp", "::1", 1, "fd07::1", 2));
    assert!(!packet(&odd, "tcp", "::1", 1, "fd08::1", 2));
    // A bare address is a host.
    let bare = filter("10.0.0.9");
    assert!(packet(&bare, "tcp", "10.0.0.1", 1, "10.0.0.9", 2));
}

#[test]
fn and_or_have_equal_precedence_left_to_right_as_in_pcap_filter() {
    // (udp or tcp) and port 80, not udp or (tcp and port 80).
    let f = filter("udp or tcp and port 80");
    assert!(!packet(&f, "udp", "10.0.0.1", 1, "10.0.0.2", 2));
    assert!(packet(&f, "udp", "10.0.0.1", 1, "10.0.0.2", 80));
    let grouped = filter("udp or (tcp and port 80)");
    assert!(packet(&grouped, "udp", "10.0.0.1", 1, "10.0.0.2", 2));
    assert_eq!(f.expr(), filter("(udp or tcp) and port 80").expr());
}

#[test]
fn negation_binds_tightest() {
    let f = filter("not tcp and port 53");
    assert!(packet(&f, "udp", "10.0.0.1", 1, "10.0.0.2", 53));
    assert!(!packet(&f, "tcp", "10.0.0.1", 1, "10.0.0.2", 53));
    assert!(!packet(&f, "udp", "10.0.0.1", 1, "10.0.0.2", 54));
    let g = filter("!(tcp && port 53) || icmp");
    assert!(packet(&g, "udp", "10.0.0.1", 1, "10.0.0.2", 53));
    assert!(!packet(&g, "tcp", "10.0.0.1", 1, "10.0.0.2", 53));
    assert!(packet(&g, "icmp", "10.0.0.1", 0, "10.0.0.2", 0));
    let double = filter("not not udp");
    assert!(packet(&double, "udp", "10.0.0.1", 1, "10.0.0.2", 2));
}

#[test]
fn qualifiers_repeat_for_bare_values() {
    let f = filter("tcp dst port 80 or 443");
    assert!(packet(&f, "tcp", "10.0.0.1", 1, "10.0.0.2", 443));
    assert!(!packet(&f, "udp", "10.0.0.1", 1, "10.0.0.2", 443));
    assert!(!packet(&f, "tcp", "10.0.0.1", 443, "10.0.0.2", 1));
    let hosts = filter("host 10.0.0.1 or 10.0.0.3");
    assert!(packet(&hosts, "udp", "10.0.0.3", 1, "10.0.0.2", 2));
}

#[test]
fn keywords_ignore_case() {
    let f = filter("UDP AND DST PORT 9");
    assert!(packet(&f, "udp", "10.0.0.1", 1, "10.0.0.2", 9));
}

#[test]
fn errors_point_at_the_token() {
    let err = error("tcp and dst port x");
    assert_eq!(err.column, 18, "{err}");
    assert!(err.message.contains("port number"), "{err}");
    let err = error("tcp udp");
    assert_eq!(err.column, 5, "{err}");
    assert!(err.message.contains("'udp'"), "{err}");
    let err = error("(tcp or udp");
    assert_eq!(err.column, 1, "{err}");
    assert!(err.message.contains("never closed"), "{err}");
    let err = error("tcp and");
    assert_eq!(err.column, 8, "{err}");
    assert!(err.message.contains("at the end"), "{err}");
    let err = error("host example.com");
    assert_eq!(err.column, 6, "{err}");
    assert!(err.message.contains("not resolved"), "{err}");
    let err = error("net 10.0.0.1/8");
    assert!(err.message.contains("10.0.0.0/8"), "{err}");
    let err = error("net 10.0.0.0/33");
    assert!(err.message.contains("0-32"), "{err}");
    let err = error("portrange 9-1");
    assert!(err.message.contains("ends before"), "{err}");
    let err = error("port 65536");
    assert_eq!(err.column, 6, "{err}");
    let err = error("tcp )");
    assert_eq!(err.column, 5, "{err}");
    let err = error("frobnicate");
    assert_eq!(err.column, 1, "{err}");
    assert!(err.message.contains("primitive"), "{err}");
    assert_eq!(err.to_string(), format!("column 1: {}", err.message));
}

#[test]
fn too_long_for_the_kernel_is_an_error() {
    let many = (1..=20)
        .map(|port| format!("port {port}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let err = error(&many);
    assert!(err.message.contains("too long"), "{err}");
    let fits = (1..=8)
        .map(|port| format!("port {port}"))
        .collect::<Vec<_>>()
        .join(" or ");
    assert!(packet(&filter(&fits), "udp", "::1", 1, "::1", 8));
}

#[test]
fn port_shorthand_joins_the_expression() {
    let f = from_args(&["udp".to_owned()], &[53, 5353])
        .unwrap()
        .unwrap();
    assert_eq!(f.text(), "(udp) and (port 53 or port 5353)");
    assert!(packet(&f, "udp", "::1", 1, "::1", 5353));
    assert!(!packet(&f, "tcp", "::1", 1, "::1", 5353));
    let only = from_args(&[], &[7]).unwrap().unwrap();
    assert_eq!(only.text(), "port 7");
    assert_eq!(from_args(&[], &[]).unwrap(), None);
    let bad = from_args(&["tcp\x1b[31m".to_owned()], &[]).unwrap_err();
    assert!(!bad.to_string().contains('\x1b'), "{bad}");
}

#[test]
fn unknown_addresses_never_match() {
    let f = filter("not host 10.0.0.1");
    assert!(!f.matches_packet(17, None, None, None, None));
}
