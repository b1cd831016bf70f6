//! TCP transport for both services: length-delimited frames of bincode, bounded in size.
//!
//! A frame longer than [`MAX_FRAME_BYTES`] or one that does not decode closes that connection
//! (logged); the server goes on serving the others. Large payloads (task results, shuffle
//! blocks) travel in chunks of [`CHUNK_BYTES`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tarpc::serde_transport::tcp;
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};

/// Largest frame accepted on any connection.
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// Chunk size for large payloads.
pub const CHUNK_BYTES: u64 = 8 << 20;
/// Task results up to this size travel inline with the task's end.
pub const INLINE_RESULT_BYTES: usize = 4 << 20;

/// A request context whose deadline is `timeout` from now.
pub fn deadline(timeout: Duration) -> context::Context {
    let mut ctx = context::current();
    ctx.deadline = Instant::now() + timeout;
    ctx
}

/// Listens on `addr`; yields one transport per accepted connection.
pub async fn listen<Req, Resp>(
    addr: SocketAddr,
) -> std::io::Result<(
    SocketAddr,
    impl futures::Stream<Item = tarpc::serde_transport::Transport<tokio::net::TcpStream, Req, Resp, Bincode<Req, Resp>>>,
)>
where
    Req: for<'de> serde::Deserialize<'de>,
    Resp: serde::Serialize,
{
    let mut incoming = tcp::listen(addr, Bincode::default).await?;
    incoming.config_mut().max_frame_length(MAX_FRAME_BYTES);
    let local = incoming.local_addr();
    let stream = incoming.filter_map(|conn| async move {
        match conn {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                None
            }
        }
    });
    Ok((local, stream))
}

/// Connects to `addr`.
pub async fn connect<Req, Resp>(
    addr: &str,
) -> std::io::Result<tarpc::serde_transport::Transport<tokio::net::TcpStream, Resp, Req, Bincode<Resp, Req>>>
where
    Req: serde::Serialize,
    Resp: for<'de> serde::Deserialize<'de>,
{
    let mut connect = tcp::connect(addr, Bincode::default);
    connect.config_mut().max_frame_length(MAX_FRAME_BYTES);
    connect.await
}

/// Client settings: enough in-flight requests for every task slot and block fetch.
pub fn client_config() -> client::Config {
    let mut config = client::Config::default();
    config.max_in_flight_requests = 4096;
    config.pending_request_buffer = 4096;
    config
}
