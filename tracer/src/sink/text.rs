//! One text line per journey, and the header above the lines.

use super::{escape, summary::human_ns};
use crate::journey::{Journey, Stage};

/// Column header of [`line`].
pub fn header() -> String {
    let mut text = format!(
        "{:>15} {:<8} {:<9} {:<28} {:>6} ",
        "TIME(s)", "DEV", "CPU", "TASK", "BYTES"
    );
    for stage in Stage::ALL {
        text.push_str(&format!(" {:>9}", stage.name().to_uppercase()));
    }
    text
}

/// `TIME DEV CPU(irq>softirq>task) comm(pid/tid) BYTES` then each stage; `-` where absent,
/// then the flow `saddr:sport>daddr:dport` when known, the reader's `cgroup:PATH` when it is
/// known and not the root, then flags: `ksoftirqd`, `drop:REASON`, `lost`, `incomplete`.
pub fn line(journey: &Journey) -> String {
    let time = journey.ts.first().map_or("-".to_owned(), |ts| {
        format!("{}.{:06}", ts / 1_000_000_000, (ts % 1_000_000_000) / 1000)
    });
    let cpu = |cpu: Option<u16>| cpu.map_or("-".to_owned(), |cpu| cpu.to_string());
    let cpus = format!(
        "{}>{}>{}",
        cpu(journey.cpu_irq),
        cpu(journey.cpu_softirq),
        cpu(journey.cpu_task)
    );
    let task = match (journey.comm.as_deref(), journey.pid, journey.tid) {
        (comm, Some(pid), Some(tid)) => {
            format!("{}({pid}/{tid})", escape::text(comm.unwrap_or("?")))
        }
        _ => "-".to_owned(),
    };
    let bytes = journey
        .bytes
        .map_or("-".to_owned(), |bytes| bytes.to_string());
    let mut text = format!(
        "{time:>15} {:<8} {cpus:<9} {task:<28} {bytes:>6} ",
        escape::text(&journey.dev)
    );
    for stage in Stage::ALL {
        let value = journey
            .stages_ns
            .get(stage)
            .map_or("-".to_owned(), human_ns);
        text.push_str(&format!(" {value:>9}"));
    }
    if let Some(flow) = flow(journey) {
        text.push(' ');
        text.push_str(&flow);
    }
    if let Some(path) = journey.cgroup_path.as_deref().filter(|path| *path != "/") {
        text.push_str(" cgroup:");
        text.push_str(&escape::text(path));
    }
    if journey.softirq_in_ksoftirqd {
        text.push_str(" ksoftirqd");
    }
    if let Some(reason) = &journey.drop_reason {
        text.push_str(&format!(" drop:{}", escape::text(reason)));
    }
    if journey.lost_events {
        text.push_str(" lost");
    }
    if !journey.complete && journey.drop_reason.is_none() {
        text.push_str(" incomplete");
    }
    text
}

/// The journey's flow as `saddr:sport>daddr:dport` (`[v6]:port`), when its headers were read.
pub fn flow(journey: &Journey) -> Option<String> {
    let end = |ip: std::net::IpAddr, port: Option<u16>| match (ip, port) {
        (std::net::IpAddr::V6(ip), Some(port)) => format!("[{ip}]:{port}"),
        (ip, Some(port)) => format!("{ip}:{port}"),
        (ip, None) => ip.to_string(),
    };
    Some(format!(
        "{}>{}",
        end(journey.saddr?, journey.sport),
        end(journey.daddr?, journey.dport)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::{StageDurations, Stamps};

    #[test]
    fn renders_a_loopback_journey() {
        let journey = Journey {
            dev: "lo".into(),
            cpu_softirq: Some(0),
            cpu_task: Some(1),
            comm: Some("reader".into()),
            pid: Some(10),
            tid: Some(11),
            bytes: Some(64),
            ts: Stamps {
                softirq_raise: Some(2_000_123_456),
                recv_return: Some(2_000_200_000),
                ..Stamps::default()
            },
            stages_ns: StageDurations {
                stack: Some(5_000),
                total: Some(76_544),
                ..StageDurations::default()
            },
            complete: true,
            ..Journey::default()
        };
        let text = line(&journey);
        assert!(
            text.starts_with("       2.000123 lo       ->0>1     reader(10/11)"),
            "{text}"
        );
        assert!(text.contains("5.0us") && text.contains("76.5us"), "{text}");
        assert!(!text.contains("incomplete"));
        assert!(!text.contains("cgroup"), "{text}");
        assert_eq!(header().split_whitespace().count(), 13);
    }

    #[test]
    fn shows_ipv6_flows_and_escapes_cgroup_paths() {
        let journey = Journey {
            dev: "veth0".into(),
            saddr: Some("fd00::1".parse().unwrap()),
            sport: Some(40000),
            daddr: Some("fd00::2".parse().unwrap()),
            dport: Some(6379),
            cgroup_path: Some("/evil\x1b]0;title\x07\n.scope".into()),
            ..Journey::default()
        };
        let text = line(&journey);
        assert!(text.contains(" [fd00::1]:40000>[fd00::2]:6379 "), "{text}");
        assert!(
            text.contains(" cgroup:/evil\\x1b]0;title\\x07\\x0a.scope"),
            "{text}"
        );
        assert!(!text.chars().any(char::is_control), "{text}");
        let v4 = Journey {
            saddr: Some("10.0.0.1".parse().unwrap()),
            sport: Some(1),
            daddr: Some("10.0.0.2".parse().unwrap()),
            dport: Some(2),
            cgroup_path: Some("/".into()),
            ..Journey::default()
        };
        assert_eq!(flow(&v4).as_deref(), Some("10.0.0.1:1>10.0.0.2:2"));
        assert!(
            !line(&v4).contains("cgroup"),
            "the root cgroup says nothing"
        );
    }
}
