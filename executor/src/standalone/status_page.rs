//! The master's status page: a minimal HTTP/1.1 responder whose `GET /json` (or `/`) answers
//! `MasterState::status` as JSON; the data a future web UI shows comes from the same place.

use std::sync::Weak;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::master::MasterState;

/// A minimal HTTP/1.1 responder: `GET /json` (or `/`) answers the status as JSON.
pub(crate) async fn serve(listener: tokio::net::TcpListener, state: Weak<Mutex<MasterState>>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let Some(state) = state.upgrade() else { return };
        tokio::spawn(async move {
            let mut request = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
                    let n = socket.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let line = String::from_utf8_lossy(&request);
            let mut words = line.split_whitespace();
            let (status, body) = match (words.next(), words.next()) {
                (Some("GET"), Some("/" | "/json" | "/json/")) => {
                    let status = state.lock().status();
                    drop(state);
                    ("200 OK", serde_json::to_string_pretty(&status).unwrap_or_default())
                }
                _ => ("404 Not Found", "{\"error\": \"try GET /json\"}".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}
