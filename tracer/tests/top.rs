//! `tracer top` in a real terminal: tmux runs it (the real programs in the real kernel) at a
//! fixed size while two reader processes of this test receive loopback datagrams; the test
//! types keys (send-keys) and reads the screen (capture-pane). Every wait polls the screen
//! until a deadline: nothing depends on how fast this machine is.

mod common;

use std::{
    fs,
    net::UdpSocket,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use common::{kernel_test, tracer_bin};

const PEER_DIR: &str = "TRACER_TOP_PEER_DIR";
const PEER_NAME: &str = "TRACER_TOP_PEER_NAME";
/// Task names of the two readers: `a` sorts before `b` by name; `b` gets 4 datagrams for
/// each of `a`'s, so it sorts first by count/s.
const READER_A: &str = "top-rdr-a";
const READER_B: &str = "top-rdr-b";
/// The shell prompt in the tmux pane.
const PROMPT: &str = "top-test$";
/// How long any one thing may take to appear on screen (loading the programs included).
const DEADLINE: Duration = Duration::from_secs(90);

/// A reader process, run by [`Reader::spawn`]: names its thread, binds a loopback UDP
/// socket, writes `port pid` to `<dir>/ready`, then reads until killed (or 10 minutes,
/// should its test die without killing it).
#[test]
#[ignore = "entry point of the reader processes that the top tests start"]
fn top_reader_peer() {
    let dir = PathBuf::from(std::env::var(PEER_DIR).expect("run by Reader::spawn"));
    let name = std::env::var(PEER_NAME).expect("run by Reader::spawn");
    let mut comm = name.into_bytes();
    comm.push(0);
    // SAFETY: PR_SET_NAME reads a NUL-terminated name for this thread.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_NAME, comm.as_ptr()) }, 0);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    fs::write(
        dir.join("ready.tmp"),
        format!("{port} {}", std::process::id()),
    )
    .unwrap();
    fs::rename(dir.join("ready.tmp"), dir.join("ready")).unwrap();
    let end = Instant::now() + Duration::from_secs(600);
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        let _ = socket.recv(&mut buf);
    }
}

/// A reader process of this test.
struct Reader {
    child: Child,
    port: u16,
    pid: u32,
    name: &'static str,
}

impl Reader {
    fn spawn(dir: &Path, name: &'static str) -> Self {
        let dir = dir.join(name);
        fs::create_dir(&dir).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "top_reader_peer",
                "--include-ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PEER_DIR, &dir)
            .env(PEER_NAME, name)
            .stdout(Stdio::null())
            .spawn()
            .expect("start reader process");
        let ready = dir.join("ready");
        let deadline = Instant::now() + DEADLINE;
        while !ready.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("reader {name} exited early: {status}");
            }
            assert!(Instant::now() < deadline, "reader {name} did not get ready");
            std::thread::sleep(Duration::from_millis(10));
        }
        let text = fs::read_to_string(ready).unwrap();
        let (port, pid) = text.split_once(' ').unwrap();
        Self {
            child,
            port: port.parse().unwrap(),
            pid: pid.parse().unwrap(),
            name,
        }
    }

    /// Its row in the process grouping: `name(pid)`.
    fn row(&self) -> String {
        format!("{}({})", self.name, self.pid)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one datagram to `a` and four to `b` every 10 ms until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    fn start(a: u16, b: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            while !stopped.load(Ordering::Relaxed) {
                let _ = socket.send_to(&[1u8; 64], ("127.0.0.1", a));
                for _ in 0..4 {
                    let _ = socket.send_to(&[2u8; 64], ("127.0.0.1", b));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether tmux is here: a loud failure in CI (setup installs it), a loud skip elsewhere.
fn have_tmux() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("tmux is not installed: `cargo xtask setup` installs it");
        }
        eprintln!("\n!!! SKIPPING: tmux is not installed (run `cargo xtask setup`) !!!\n");
    }
    found
}

/// A private tmux server with one pane of a fixed size running an interactive bash.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(dir: &Path, width: u16, height: u16, env: &[(&str, &str)]) -> Self {
        let tmux = Self {
            socket: dir.join("tmux.sock"),
        };
        let mut shell = vec![
            "new-session".to_owned(),
            "-d".to_owned(),
            "-s".to_owned(),
            "top".to_owned(),
            "-x".to_owned(),
            width.to_string(),
            "-y".to_owned(),
            height.to_string(),
            "--".to_owned(),
            // The pane's environment is this test's, less a NO_COLOR the caller did not ask for.
            "env".to_owned(),
            "-u".to_owned(),
            "NO_COLOR".to_owned(),
            format!("PS1={PROMPT} "),
        ];
        shell.extend(env.iter().map(|(key, value)| format!("{key}={value}")));
        shell.extend(["bash", "--norc", "--noprofile"].map(str::to_owned));
        tmux.run(&shell.iter().map(String::as_str).collect::<Vec<_>>());
        // No status line: the pane is the whole window.
        tmux.run(&["set-option", "-g", "status", "off"]);
        let size = tmux.run(&[
            "display-message",
            "-p",
            "-t",
            "top",
            "#{pane_width}x#{pane_height}",
        ]);
        assert_eq!(size.trim(), format!("{width}x{height}"), "pane size");
        tmux.wait_for("the shell prompt", |screen| screen.contains(PROMPT));
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null", "-u"])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "top", "-l", text]);
    }

    /// Presses one key (tmux key name: `Enter`, `q`, `S`).
    fn press(&self, key: &str) {
        self.run(&["send-keys", "-t", "top", key]);
    }

    /// The pane's text.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// The pane's text with its attributes as escape sequences.
    fn screen_with_attributes(&self) -> String {
        self.run(&["capture-pane", "-p", "-e", "-t", "top"])
    }

    /// Polls the screen until `done` holds, returning that screen; panics with the last
    /// screen after [`DEADLINE`].
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {DEADLINE:?} for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

/// The header's journey count (`journeys N (`), when `top` is on screen.
fn journeys(screen: &str) -> Option<u64> {
    let after = screen.split("journeys ").nth(1)?;
    after.split(' ').next()?.parse().ok()
}

/// The line numbers of the lines containing each text (None: not on screen).
fn line_of(screen: &str, text: &str) -> Option<usize> {
    screen.lines().position(|line| line.contains(text))
}

/// Whether `first` is on screen on a line above `second`.
fn above(screen: &str, first: &str, second: &str) -> bool {
    matches!((line_of(screen, first), line_of(screen, second)), (Some(a), Some(b)) if a < b)
}

/// The command line typed into the pane: terminal settings before and after, `top` with its
/// pid in a file (`exec` keeps it), and its exit status.
fn top_command(dir: &Path, args: &str) -> String {
    let dir = dir.display();
    format!(
        "stty -g > {dir}/stty.before; sh -c 'echo $$ > {dir}/top.pid; exec {} top {args}'; \
         echo \"top exited $?\"; stty -g > {dir}/stty.after",
        tracer_bin()
    )
}

/// The shell is back: `top` said how it exited, the prompt is the last line, no `top`
/// screen is left, and the terminal settings are those from before.
fn assert_terminal_restored(tmux: &Tmux, dir: &Path) {
    let screen = tmux.wait_for("top to exit and the prompt to return", |screen| {
        screen.contains("top exited") && screen.trim_end().ends_with(PROMPT)
    });
    assert!(screen.contains("top exited 0"), "{screen}");
    assert!(
        screen.contains("tracer top: "),
        "the closing totals line: {screen}"
    );
    assert!(
        !screen.contains("q quit"),
        "the alternate screen is gone: {screen}"
    );
    let before = fs::read_to_string(dir.join("stty.before")).unwrap();
    let after = fs::read_to_string(dir.join("stty.after")).unwrap();
    assert_eq!(before, after, "terminal settings (raw mode off again)");
}

/// Whether an SGR sequence in `text` sets a colour (30-37, 38;.., 40-47, 48;.., 90-97,
/// 100-107): reverse video and bold are not colours.
fn has_colour(text: &str) -> bool {
    text.split("\x1b[").skip(1).any(|sequence| {
        let Some(end) = sequence.find('m') else {
            return false;
        };
        sequence[..end].split(';').any(|param| {
            matches!(
                param.parse::<u32>(),
                Ok(30..=38 | 40..=48 | 90..=97 | 100..=107)
            )
        })
    })
}

#[test]
fn top_shows_both_readers_sorts_groups_and_quits_with_q() {
    let Some(_serial) = kernel_test("top_shows_both_readers_sorts_groups_and_quits_with_q") else {
        return;
    };
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Reader::spawn(dir.path(), READER_A),
        Reader::spawn(dir.path(), READER_B),
    );
    let _traffic = Traffic::start(a.port, b.port);
    let tmux = Tmux::start(dir.path(), 100, 30, &[]);
    tmux.type_text(&top_command(
        dir.path(),
        &format!("--pid {} --pid {}", a.pid, b.pid),
    ));
    tmux.press("Enter");

    // Both readers have rows with their pid and name; the header counts move.
    let screen = tmux.wait_for("both readers' rows", |screen| {
        screen.contains(&a.row()) && screen.contains(&b.row()) && journeys(screen) > Some(0)
    });
    assert!(screen.starts_with("tracer top  by process"), "{screen}");
    let first = journeys(&screen).unwrap();
    tmux.wait_for("the journey count to move", |screen| {
        journeys(screen).is_some_and(|now| now > first)
    });
    assert!(
        has_colour(&tmux.screen_with_attributes()),
        "a terminal with colours gets them"
    );

    // s: total p99 -> total p50 -> count/s -> name. By name, a is above b.
    for _ in 0..3 {
        tmux.press("s");
    }
    tmux.wait_for("sort by name, a above b", |screen| {
        screen.contains("sort name") && above(screen, &a.row(), &b.row())
    });
    // S goes back to count/s: b, four times as busy, is above a.
    tmux.press("S");
    tmux.wait_for("sort by count/s, b above a", |screen| {
        screen.contains("sort count/s") && above(screen, &b.row(), &a.row())
    });

    // j selects the second row; the detail pane follows it.
    tmux.press("j");
    let screen = tmux.wait_for("the second row selected", |screen| {
        screen.contains(&format!(">{}", a.row()))
    });
    assert!(
        screen.contains(&format!("{} \u{b7} ", a.row())),
        "detail title: {screen}"
    );

    // g: flows (destination ports, b's first by count/s), devices, reader CPUs, processes.
    let (flow_a, flow_b) = (
        format!(">127.0.0.1:{}", a.port),
        format!(">127.0.0.1:{}", b.port),
    );
    tmux.press("g");
    tmux.wait_for("rows per flow, b's above a's", |screen| {
        screen.contains("by flow") && above(screen, &flow_b, &flow_a)
    });
    tmux.press("g");
    let screen = tmux.wait_for("rows per device", |screen| {
        screen.contains("by dev") && screen.lines().any(|line| line.starts_with(">lo "))
    });
    assert!(
        !screen.contains(&a.row()) && !screen.contains(&flow_a),
        "{screen}"
    );
    tmux.press("g");
    tmux.wait_for("rows per reader CPU", |screen| {
        screen.contains("by cpu") && screen.lines().any(|line| line.starts_with(">cpu"))
    });
    tmux.press("g");
    tmux.wait_for("rows per process again", |screen| {
        screen.contains("by process") && above(screen, &b.row(), &a.row())
    });

    tmux.press("q");
    assert_terminal_restored(&tmux, dir.path());
}

#[test]
fn top_fits_80x24_without_colour_and_gives_the_terminal_back_on_sigterm() {
    let Some(_serial) =
        kernel_test("top_fits_80x24_without_colour_and_gives_the_terminal_back_on_sigterm")
    else {
        return;
    };
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Reader::spawn(dir.path(), READER_A),
        Reader::spawn(dir.path(), READER_B),
    );
    let _traffic = Traffic::start(a.port, b.port);
    let tmux = Tmux::start(dir.path(), 80, 24, &[("NO_COLOR", "1")]);
    tmux.type_text(&top_command(
        dir.path(),
        &format!("--pid {} --pid {}", a.pid, b.pid),
    ));
    tmux.press("Enter");

    let screen = tmux.wait_for("both readers' rows and a slowest journey", |screen| {
        screen.contains(&a.row()) && screen.contains(&b.row()) && screen.contains("slowest: ")
    });
    let lines: Vec<&str> = screen.lines().collect();
    assert!(lines[0].starts_with("tracer top  by process"), "{screen}");
    assert!(lines[1].starts_with("packets/s "), "{screen}");
    assert!(lines[2].starts_with("journeys "), "{screen}");
    assert!(lines[2].contains("  lost "), "{screen}");
    for text in ["PROCESS", "total (log2)", "runqueue (log2)", "stage p50s: "] {
        assert!(screen.contains(text), "{text}: {screen}");
    }
    assert!(
        lines.last().is_some_and(|line| line.starts_with("q quit")),
        "keys on the last line: {screen}"
    );
    let attributes = tmux.screen_with_attributes();
    assert!(
        !has_colour(&attributes),
        "NO_COLOR: no colour in\n{attributes:?}"
    );

    let pid: i32 = fs::read_to_string(dir.path().join("top.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill on the pid of the `top` this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert_terminal_restored(&tmux, dir.path());
}
