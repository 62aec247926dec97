//! Hostile input and hard edges: names that try to drive the terminal, crafted recordings,
//! broken pipes and signals. Each ends in a clear one-line error or a clean stop, never a
//! crash, a hang, injected terminal control or silent loss.

mod common;

use std::{
    net::UdpSocket,
    sync::mpsc,
    time::{Duration, Instant},
};

use common::{RunningTracer, kernel_test};

/// A task name (15 bytes at most) holding ESC, BEL, CR and LF: printed raw, it would set
/// the terminal's title and colour and forge a line of its own.
const HOSTILE_COMM: &[u8] = b"\x1b[31m\x07\r\nEVIL";

/// A reader thread named [`HOSTILE_COMM`] receives datagrams on loopback while `live` and
/// `events` print text: neither output holds ESC, BEL or CR, and the name appears escaped
/// (so its LF forged no line).
#[test]
fn hostile_task_names_are_escaped_in_text_output() {
    let Some(_serial) = kernel_test("hostile_task_names_are_escaped_in_text_output") else {
        return;
    };
    assert!(HOSTILE_COMM.len() <= 15);
    let (live_dir, events_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let live = RunningTracer::start(&["live", "--interval", "0"], live_dir.path());
    let events = RunningTracer::start(&["events"], events_dir.path());

    const DATAGRAMS: usize = 20;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let (named_tx, named_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut name = HOSTILE_COMM.to_vec();
        name.push(0);
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of this thread's new name.
        let rc = unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
        assert_eq!(rc, 0, "prctl(PR_SET_NAME)");
        named_tx.send(()).unwrap();
        let mut buf = [0u8; 256];
        (0..DATAGRAMS)
            .filter(|_| socket.recv(&mut buf).is_ok())
            .count()
    });
    named_rx.recv().unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for seq in 0..DATAGRAMS {
        sender.send_to(&[seq as u8; 64], ("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(Instant::now() < deadline);
    }
    assert_eq!(reader.join().unwrap(), DATAGRAMS, "the reader got every datagram");
    std::thread::sleep(Duration::from_millis(300));
    let (live_out, _) = live.stop();
    let (events_out, _) = events.stop();

    let escaped = r"\x1b[31m\x07\x0d\x0aEVIL";
    for (command, out) in [("live", &live_out), ("events", &events_out)] {
        for byte in [0x1b, 0x07, b'\r'] {
            assert!(
                !out.as_bytes().contains(&byte),
                "{command}: raw byte {byte:#04x} in the text output"
            );
        }
        assert!(
            !out.lines().any(|line| line.starts_with("EVIL")),
            "{command}: the name's LF forged a line"
        );
        assert!(
            out.contains(escaped),
            "{command}: the reader's name, escaped, is missing:\n{}",
            out.lines().take(40).collect::<Vec<_>>().join("\n")
        );
    }
}
