//! Kernel test with a real Prometheus server (Debian package `prometheus`, installed by
//! `cargo xtask setup`): it scrapes `tracer live --metrics` every second; PromQL's p99 of
//! each stage falls in the bucket of the p99 live's own summary printed, and every query of
//! the Grafana dashboard (dashboards/tracer.json) returns data.

mod common;

use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, UdpSocket},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{RunningTracer, kernel_test};
use serde_json::Value;

/// The upper bounds of `tracer_stage_seconds` (sink/metrics.rs): 1 us doubling 23 times.
fn bucket_bounds() -> Vec<f64> {
    (0..23).map(|k| 1e-6 * f64::from(1u32 << k)).collect()
}

fn free_tcp_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// A Prometheus server on a loopback port with its own config and storage, killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts it scraping `target` every second and waits until it is ready.
    fn start(dir: &Path, target: &str) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: tracer\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_tcp_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus");
        let mut server = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http_get(&server.addr, "/-/ready").is_some_and(|(status, _)| status == 200) {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "prometheus exited ({status}): {}",
                    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "prometheus never became ready");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An instant query: the result vector, or the error Prometheus gave.
    fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = http_get(&self.addr, &path).ok_or("no answer")?;
        let json: Value = serde_json::from_str(&body).map_err(|err| format!("{err}: {body}"))?;
        if status != 200 || json["status"] != "success" {
            return Err(format!("{status}: {body}"));
        }
        Ok(json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Polls a query until `done` holds for its result, or fails after `seconds`.
    fn wait_for(&self, promql: &str, seconds: u64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let result = self.query(promql);
            match &result {
                Ok(rows) if done(rows) => return rows.clone(),
                Err(err) if err.contains("bad_data") => panic!("{promql}: {err}"),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "{promql}: still {result:?} after {seconds}s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// One HTTP/1.0 GET: (status, body), or None when nothing answers.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of one instant-vector sample.
fn sample_value(row: &Value) -> f64 {
    row["value"][1]
        .as_str()
        .and_then(|value| value.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `575ns`, `1.2us`, `2.62ms`, `1.20s` (sink/summary.rs's human_ns) in nanoseconds.
fn parse_human_ns(text: &str) -> Option<f64> {
    let (number, scale) = [("ns", 1.0), ("us", 1e3), ("ms", 1e6), ("s", 1e9)]
        .iter()
        .find_map(|(unit, scale)| Some((text.strip_suffix(unit)?, *scale)))?;
    Some(number.parse::<f64>().ok()? * scale)
}

/// The last summary table in live's stderr: stage -> (count, p99 in ns).
fn summary_p99(stderr: &[String]) -> Vec<(String, u64, f64)> {
    let start = stderr
        .iter()
        .rposition(|line| line.starts_with("stage ") && line.contains("p99"))
        .unwrap_or_else(|| panic!("no summary table:\n{}", stderr.join("\n")));
    stderr[start + 1..]
        .iter()
        .map_while(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [stage, count, _p50, _p90, p99, _max] => Some(Some((
                    (*stage).to_owned(),
                    count.parse().ok()?,
                    parse_human_ns(p99)?,
                ))),
                [_stage, "0"] => Some(None),
                _ => None,
            }
        })
        .flatten()
        .collect()
}

/// Every PromQL expression of the dashboard, Grafana's variables replaced by values that
/// select everything (`$stage`: total; `$__rate_interval`: 1m).
fn dashboard_queries() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/tracer.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let substitute = |expr: &str| {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$stage", "total");
        let expr = ["$instance", "$dev", "$comm", "$port"]
            .iter()
            .fold(expr, |expr, var| expr.replace(var, ".*"));
        assert!(!expr.contains('$'), "a variable left in {expr}");
        expr
    };
    let mut queries = Vec::new();
    let mut panels: Vec<Value> = dashboard["panels"].as_array().unwrap().clone();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner.iter().cloned());
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            queries.push((title, substitute(target["expr"].as_str().unwrap())));
        }
    }
    // Template variables: label_values(SELECTOR, label) must find values too.
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let definition = variable["definition"].as_str().unwrap();
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("unexpected variable query {definition}"));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        queries.push((
            format!("variable {}", variable["name"]),
            substitute(&format!("count by ({}) ({selector})", label.trim())),
        ));
    }
    queries
}

fn prometheus_installed() -> bool {
    Command::new("prometheus")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn a_real_prometheus_agrees_with_live_and_answers_every_dashboard_query() {
    let Some(_serial) = kernel_test("a_real_prometheus_agrees_with_live") else {
        return;
    };
    if !prometheus_installed() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus is not installed (cargo xtask setup installs it)"
        );
        eprintln!("\n!!! SKIPPING: prometheus is not installed (run cargo xtask setup) !!!\n");
        return;
    }
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    let dir = tempfile::tempdir().unwrap();
    let reader = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = reader.local_addr().unwrap().port();
    // A port nobody listens on: its datagrams are dropped (NO_SOCKET), a drop reason and an
    // incomplete journey for the dashboard's panels.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{}", free_tcp_port());
    let filter = format!("udp and (port {port} or port {closed})");
    let tracer = RunningTracer::start(
        &[
            "live",
            "--json",
            "--interval",
            "0",
            "--metrics",
            &metrics,
            &filter,
        ],
        dir.path(),
    );
    let prometheus = Prometheus::start(dir.path(), &metrics);
    prometheus.wait_for("up{job=\"tracer\"}", 60, |rows| {
        rows.iter().any(|row| sample_value(row) == 1.0)
    });

    const DATAGRAMS: usize = 300;
    const DROPPED: usize = 5;
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        (0..DATAGRAMS)
            .filter(|_| reader.recv(&mut buf).is_ok())
            .count()
    });
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..DATAGRAMS {
        std::thread::sleep(Duration::from_millis(5));
        sender.send_to(&[7u8; 100], ("127.0.0.1", port)).unwrap();
        if seq % (DATAGRAMS / DROPPED) == 0 {
            sender.send_to(&[9u8; 10], ("127.0.0.1", closed)).unwrap();
        }
    }
    assert_eq!(handle.join().unwrap(), DATAGRAMS);

    // Until a scrape holds every journey (and the drops), then two more for rate()'s window.
    let expected = (DATAGRAMS + DROPPED) as f64;
    prometheus.wait_for("sum(tracer_journeys_total)", 60, |rows| {
        rows.first()
            .is_some_and(|row| sample_value(row) >= expected)
    });
    for (title, promql) in &queries {
        let rows = prometheus.wait_for(promql, 30, |rows| !rows.is_empty());
        eprintln!("{title}: {promql} -> {} series", rows.len());
    }
    let p99: Vec<(String, f64)> = prometheus
        .query("histogram_quantile(0.99, sum by (le, stage) (tracer_stage_seconds_bucket))")
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["metric"]["stage"].as_str().unwrap().to_owned(),
                sample_value(row),
            )
        })
        .collect();
    let counts = prometheus
        .query("sum by (stage) (tracer_stage_seconds_count)")
        .unwrap();
    let (_, stderr) = tracer.stop();
    let summary = summary_p99(&stderr);
    assert!(
        summary.iter().any(|(stage, ..)| stage == "total"),
        "{summary:?}"
    );
    let bounds = bucket_bounds();
    for (stage, count, summary_ns) in &summary {
        let prom_count = counts
            .iter()
            .find(|row| row["metric"]["stage"] == stage.as_str())
            .map(sample_value);
        assert_eq!(
            prom_count,
            Some(*count as f64),
            "{stage}: Prometheus's count vs live's summary"
        );
        let (_, value) = p99
            .iter()
            .find(|(name, _)| name == stage)
            .unwrap_or_else(|| panic!("no PromQL p99 for {stage}: {p99:?}"));
        // PromQL interpolates inside the bucket (lo, hi] that holds the p99 observation;
        // live prints that observation's log-linear bucket top (at most 1/16 above it,
        // capped at the max) rounded to 2-3 digits: it must lie in the same bucket, give or
        // take that much.
        let hi_index = bounds
            .iter()
            .position(|&bound| *value <= bound * (1.0 + 1e-9))
            .unwrap_or_else(|| panic!("{stage}: p99 {value} beyond the last bucket"));
        let hi = bounds[hi_index] * 1e9;
        let lo = if hi_index == 0 {
            0.0
        } else {
            bounds[hi_index - 1] * 1e9
        };
        eprintln!(
            "{stage}: count {count}, PromQL p99 {:.1}us in bucket ({:.0}us, {:.0}us], live's p99 {:.1}us",
            value * 1e6,
            lo / 1e3,
            hi / 1e3,
            summary_ns / 1e3
        );
        assert!(
            *summary_ns > lo * 0.95 && *summary_ns <= hi * 1.07,
            "{stage}: live's p99 {summary_ns}ns is outside PromQL's bucket ({lo}, {hi}] \
             (PromQL p99 {value}s)"
        );
    }
}
