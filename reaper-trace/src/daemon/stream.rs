//! The event stream on the daemon's Unix socket: each client gets the header and a snapshot
//! (containers, zombies now), then every event, and is told how many it missed when it falls
//! behind. Clients past the cap are refused: a stream is long-lived, none is closed to make
//! room.

use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

use super::backoff::Acceptor;
use crate::clock::boottime_ns;
use crate::event::Event;
use crate::metrics::{ClosedLabels, Metrics, ServerMetrics};

/// Stream clients at most.
pub const MAX_CLIENTS: usize = 64;
/// Lines a client may fall behind before it is told how many it missed (a `lost` event with
/// `what: stream`).
pub const BACKLOG: usize = 65536;

/// One JSON Lines line.
pub fn line(ev: &impl serde::Serialize) -> String {
    let mut s = serde_json::to_string(ev).expect("events serialize");
    s.push('\n');
    s
}

/// Accepts clients on `listener` until the task is aborted. `header` is the stream's first
/// line; `tx` carries every event's line.
pub async fn serve(
    listener: UnixListener,
    header: String,
    tx: broadcast::Sender<Arc<str>>,
    metrics: Arc<Mutex<Metrics>>,
    server: ServerMetrics,
) {
    let mut acceptor = Acceptor::new(
        server
            .accept_errors
            .get_or_create(&ServerMetrics::STREAM)
            .clone(),
    );
    loop {
        let (stream, _) = acceptor.next(|| listener.accept()).await;
        let m = metrics.lock().unwrap_or_else(|e| e.into_inner());
        if m.clients.get() >= MAX_CLIENTS as i64 {
            drop(m);
            server
                .closed
                .get_or_create(&ClosedLabels {
                    listener: "stream",
                    reason: "cap",
                })
                .inc();
            continue;
        }
        // Subscribed and snapshotted under the lock the event loop applies and sends under:
        // every event is either in the snapshot or in the subscription, never in neither.
        let rx = tx.subscribe();
        let mut snapshot = header.clone().into_bytes();
        for ev in m.snapshot(boottime_ns()) {
            snapshot.extend_from_slice(line(&ev).as_bytes());
        }
        m.clients.inc();
        drop(m);
        tokio::spawn(serve_client(stream, snapshot, rx, metrics.clone()));
    }
}

/// Writes the snapshot, then every line the daemon broadcasts, until the client leaves.
async fn serve_client(
    stream: UnixStream,
    snapshot: Vec<u8>,
    mut rx: broadcast::Receiver<Arc<str>>,
    metrics: Arc<Mutex<Metrics>>,
) {
    let mut out = tokio::io::BufWriter::with_capacity(1 << 16, stream);
    let _: std::io::Result<()> = async {
        out.write_all(&snapshot).await?;
        out.flush().await?;
        loop {
            let mut next = Some(rx.recv().await);
            while let Some(r) = next.take() {
                match r {
                    Ok(line) => out.write_all(line.as_bytes()).await?,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let lost = Event::Lost {
                            ts: boottime_ns(),
                            what: "stream".into(),
                            count: n,
                        };
                        out.write_all(line(&lost).as_bytes()).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        out.flush().await?;
                        return Ok(());
                    }
                }
                next = match rx.try_recv() {
                    Ok(l) => Some(Ok(l)),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        Some(Err(broadcast::error::RecvError::Lagged(n)))
                    }
                    Err(_) => None,
                };
            }
            out.flush().await?;
        }
    }
    .await;
    metrics
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clients
        .dec();
}
