//! The metrics endpoint: a minimal HTTP responder that answers every request with the
//! OpenMetrics text.

use std::time::Duration;

/// The next metrics connection, or never without a listener.
pub async fn accept(
    listener: Option<&tokio::net::TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Answers one HTTP request with the metrics text (any path; scrapers ask for /metrics).
pub async fn serve_metrics(mut stream: tokio::net::TcpStream, body: String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut request = [0u8; 4096];
    let mut read = 0;
    // Read the request head; a scraper sends it at once.
    while read < request.len() {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut request[read..])).await
        {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => read += n,
        }
        if request[..read]
            .windows(4)
            .any(|window| window == b"\r\n\r\n")
        {
            break;
        }
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}
