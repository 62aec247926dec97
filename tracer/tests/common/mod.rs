//! Helpers of the kernel tests: run the real tracer binary, run peer processes.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::{
    fs::File,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// Kernel tests of one binary run one at a time: they share CPUs, and some load them.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether kernel tests can run here, holding the serialising lock while they do. In CI
/// (CI=true) they must: a missing capability fails the test instead of skipping it.
pub fn kernel_test(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    kernel_tests_enabled(test).then(|| {
        SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    })
}

fn kernel_tests_enabled(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        return true;
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{test}: kernel tests must run in CI, but this process is not root");
    }
    eprintln!(
        "\n!!! SKIPPING kernel test {test}: not root (loading eBPF programs needs root) !!!\n"
    );
    false
}

/// The tracer binary under test.
pub fn tracer_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tracer")
}

/// A running `tracer` whose stdout goes to a file (not a pipe: the tracer ignores the
/// readers of its output pipe, and the test process is also a traffic sender).
pub struct RunningTracer {
    child: Child,
    stderr_lines: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
    stdout_path: std::path::PathBuf,
}

impl RunningTracer {
    /// Starts `tracer <args>` and waits until it says it is tracing.
    pub fn start(args: &[&str], dir: &Path) -> Self {
        let stdout_path = dir.join("tracer.out");
        let stdout = File::create(&stdout_path).expect("create tracer output file");
        let mut child = Command::new(tracer_bin())
            .args(args)
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tracer");
        let stderr = child.stderr.take().expect("tracer stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut tracer = Self {
            child,
            stderr_lines: rx,
            stderr_seen: Vec::new(),
            stdout_path,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match tracer.stderr_lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let ready = line.contains("Ctrl-C to stop");
                    tracer.stderr_seen.push(line);
                    if ready {
                        return tracer;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = tracer.child.wait().expect("wait tracer");
        panic!(
            "tracer did not start ({status}); stderr:\n{}",
            tracer.stderr_seen.join("\n")
        );
    }

    /// Stops it with SIGINT (as Ctrl-C does) and returns (stdout, stderr lines).
    pub fn stop(mut self) -> (String, Vec<String>) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().expect("wait tracer");
        self.stderr_seen.extend(self.stderr_lines.try_iter());
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_secs(5)) {
            self.stderr_seen.push(line);
        }
        assert!(
            status.success(),
            "tracer exited with {status}; stderr:\n{}",
            self.stderr_seen.join("\n")
        );
        let stdout = std::fs::read_to_string(&self.stdout_path).expect("read tracer output");
        (stdout, std::mem::take(&mut self.stderr_seen))
    }
}

impl RunningTracer {
    /// The tracer's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL (no chance to clean up) and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunningTracer {
    fn drop(&mut self) {
        // A failed test must not leave a tracer running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Parses the JSON lines of `tracer events --json`.
pub fn json_events(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("bad JSON line {line:?}: {err}"))
        })
        .collect()
}

/// The number the tracer's stderr gives after `marker`, if any.
pub fn number_after(stderr: &[String], marker: &str) -> Option<u64> {
    let text = stderr.join("\n");
    let rest = text.split(marker).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The tracer must not have lost events (then no byte count could be exact: say so first).
pub fn assert_no_loss(label: &str, stderr: &[String]) {
    let text = stderr.join("\n");
    assert_eq!(
        (
            number_after(stderr, "lost events: "),
            number_after(stderr, "late events: ")
        ),
        (Some(0), Some(0)),
        "{label}: the tracer lost events, or got them later than its reorder window \
         (an overloaded machine?):\n{text}"
    );
}

/// Total lost events from the tracer's closing stderr line `... lost N (cpu0=..)`.
pub fn lost_total(stderr: &[String]) -> u64 {
    let line = stderr
        .iter()
        .find(|line| line.contains(" events; lost "))
        .unwrap_or_else(|| panic!("no lost-count line in stderr:\n{}", stderr.join("\n")));
    line.split(" lost ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the lost count in {line:?}"))
}

/// CLOCK_MONOTONIC now, in nanoseconds (the clock bpf_ktime_get_ns reads).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// This thread's id.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// IDs of the BPF programs loaded now (`bpftool prog show`).
pub fn program_ids() -> std::collections::HashSet<u64> {
    programs().into_keys().collect()
}

/// The BPF programs loaded now by id, with their names (`bpftool prog show`; the kernel
/// keeps 15 bytes of a name).
pub fn programs() -> std::collections::HashMap<u64, String> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()
        .expect("bpftool runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|prog| {
            let name = prog["name"].as_str().unwrap_or_default().to_owned();
            prog["id"].as_u64().map(|id| (id, name))
        })
        .collect()
}

/// Waits up to 10 s for every program `left` names (given the programs loaded now) to be
/// gone; fails naming them and `what` left them. The kernel releases programs
/// asynchronously once their last fd and link go: those on raw_syscalls:sys_enter/sys_exit
/// about 0.3 s after their process exits, here.
pub fn assert_programs_released(
    what: &str,
    left: impl Fn(&std::collections::HashSet<u64>) -> Vec<u64>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = left(&program_ids());
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what} left programs {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
