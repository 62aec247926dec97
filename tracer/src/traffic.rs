//! Loopback traffic the tool makes itself (demo, labs): a reader blocked in recv() on a UDP
//! socket and a sender that sends numbered datagrams to it.

use std::{io, net::UdpSocket, thread, time::Duration};

/// What one [`udp_exchange`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// Datagrams sent.
    pub sent: u32,
    /// Datagrams the reader received.
    pub received: u32,
    /// Thread id of the reader.
    pub reader_tid: u32,
}

/// Sends `count` datagrams of `size` bytes (at least 4: a big-endian sequence number first)
/// over 127.0.0.1, `gap` apart, to a reader thread blocked in recv().
pub fn udp_exchange(count: u32, size: usize, gap: Duration) -> io::Result<Exchange> {
    let reader = UdpSocket::bind("127.0.0.1:0")?;
    reader.set_read_timeout(Some(Duration::from_secs(5)))?;
    let target = reader.local_addr()?;
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let handle = thread::Builder::new()
        .name("tracer-reader".into())
        .spawn(move || {
            // SAFETY: gettid has no preconditions.
            let _ = tid_tx.send(unsafe { libc::gettid() } as u32);
            let mut buf = vec![0u8; 65536];
            let mut received = 0;
            while received < count {
                match reader.recv(&mut buf) {
                    Ok(_) => received += 1,
                    Err(_) => break, // timed out: a datagram was lost
                }
            }
            received
        })?;
    let reader_tid = tid_rx.recv().map_err(io::Error::other)?;
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let mut payload = vec![0u8; size.max(4)];
    for seq in 0..count {
        thread::sleep(gap);
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        sender.send_to(&payload, target)?;
    }
    let received = handle
        .join()
        .map_err(|_| io::Error::other("reader thread panicked"))?;
    Ok(Exchange {
        sent: count,
        received,
        reader_tid,
    })
}
