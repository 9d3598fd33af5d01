//! `reaper-trace daemon`: one set of programs attached for the whole host; Prometheus metrics
//! over HTTP (axum), and the JSON Lines event stream on a Unix socket (mode 0600) for
//! `top --connect` and `record --connect`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast;

use crate::clock::boottime_ns;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::model::Scope;
use crate::session::{Session, SessionOptions};

pub const DEFAULT_METRICS: &str = "127.0.0.1:9750";
pub const DEFAULT_SOCKET: &str = "/run/reaper-trace.sock";
/// Lines a client may fall behind before it is told how many it missed (a `lost` event with
/// `what: stream`).
const STREAM_BACKLOG: usize = 65536;
/// How often the gauges are recomputed.
const UPDATE_EVERY: Duration = Duration::from_secs(1);

pub struct DaemonOptions {
    pub metrics: SocketAddr,
    pub socket: PathBuf,
    pub zombie_threshold: Duration,
    pub ring_bytes: u32,
}

/// Binds the socket with mode 0600 (created so: the umask is set around the bind). A socket
/// file nobody listens on is stale and replaced; one a daemon answers on is a user error.
fn bind_socket(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "a daemon already listens on {}: stop it, or choose another --socket",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| {
            format!(
                "cannot replace the stale socket {}: remove it, or choose another --socket",
                path.display()
            )
        })?;
    }
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    unsafe { libc::umask(old) };
    bound.with_context(|| {
        format!(
            "cannot listen on {}: choose a writable --socket path",
            path.display()
        )
    })
}

/// Writes the snapshot, then every line the daemon broadcasts, until the client leaves.
async fn serve_client(
    stream: UnixStream,
    snapshot: Vec<u8>,
    mut rx: broadcast::Receiver<Arc<str>>,
    metrics: Arc<Mutex<Metrics>>,
) {
    let mut out = tokio::io::BufWriter::with_capacity(1 << 16, stream);
    let _ = async {
        out.write_all(&snapshot).await?;
        out.flush().await?;
        loop {
            let first = rx.recv().await;
            let mut next = Some(first);
            while let Some(r) = next.take() {
                match r {
                    Ok(line) => out.write_all(line.as_bytes()).await?,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let lost = Event::Lost {
                            ts: boottime_ns(),
                            what: "stream".into(),
                            count: n,
                        };
                        let mut line = serde_json::to_string(&lost).expect("serializable");
                        line.push('\n');
                        out.write_all(line.as_bytes()).await?;
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
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    }
    .await;
    metrics
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clients
        .dec();
}

fn line(ev: &impl serde::Serialize) -> String {
    let mut s = serde_json::to_string(ev).expect("events serialize");
    s.push('\n');
    s
}

pub async fn run(opts: DaemonOptions) -> Result<i32> {
    crate::preflight::check_privileges()?;
    // Everything a user can get wrong is checked before the programs are attached.
    let http = std::net::TcpListener::bind(opts.metrics).with_context(|| {
        format!(
            "cannot serve metrics on {}: choose another --metrics address (e.g. 127.0.0.1:9751)",
            opts.metrics
        )
    })?;
    http.set_nonblocking(true)?;
    let http = tokio::net::TcpListener::from_std(http)?;
    let listener = bind_socket(&opts.socket)?;
    let socket = opts.socket.clone();
    let _remove = scopeguard(move || {
        let _ = std::fs::remove_file(&socket);
    });
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;

    let mut session = Session::start(&SessionOptions {
        scope: Scope::All,
        ring_bytes: opts.ring_bytes,
    })?;
    let threshold = opts.zombie_threshold.as_nanos().min(u64::MAX as u128) as u64;
    let metrics = Arc::new(Mutex::new(Metrics::new(threshold)));
    let header = line(&crate::jsonl::header(None, session.started_ts));

    let served = metrics.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = served.clone();
            async move {
                let body = m.lock().unwrap_or_else(|e| e.into_inner()).encode();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(http, app).await });

    let (tx, _) = broadcast::channel::<Arc<str>>(STREAM_BACKLOG);
    let mut events = session.zombies_before_trace();
    {
        let mut m = metrics.lock().unwrap_or_else(|e| e.into_inner());
        for ev in &events {
            m.apply(ev);
        }
        m.update(boottime_ns());
    }
    events.clear();
    eprintln!(
        "reaper-trace: daemon: metrics on http://{}/metrics, events on {}",
        opts.metrics,
        crate::escape::escape_control(&opts.socket.display().to_string())
    );
    let mut update = tokio::time::interval(UPDATE_EVERY);
    update.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            conn = listener.accept() => {
                if let Ok((stream, _)) = conn {
                    // Subscribed before the snapshot is taken: nothing falls in between.
                    let rx = tx.subscribe();
                    let m = metrics.lock().unwrap_or_else(|e| e.into_inner());
                    let mut snapshot = header.clone().into_bytes();
                    for ev in m.snapshot(boottime_ns()) {
                        snapshot.extend_from_slice(line(&ev).as_bytes());
                    }
                    m.clients.inc();
                    drop(m);
                    tokio::spawn(serve_client(stream, snapshot, rx, metrics.clone()));
                }
            }
            _ = update.tick() => {
                metrics.lock().unwrap_or_else(|e| e.into_inner()).update(boottime_ns());
            }
            r = session.ready() => r?,
        }
        session.step(&mut events);
        if events.is_empty() {
            continue;
        }
        let streaming = tx.receiver_count() > 0;
        let mut m = metrics.lock().unwrap_or_else(|e| e.into_inner());
        for ev in events.drain(..) {
            m.apply(&ev);
            if streaming {
                let _ = tx.send(Arc::from(line(&ev)));
            }
        }
        drop(m);
        for msg in session.kernel_messages() {
            eprintln!(
                "reaper-trace: kernel: {}",
                crate::escape::escape_control(&msg)
            );
        }
    }
    server.abort();
    drop(session);
    eprintln!("reaper-trace: daemon stopped, programs detached");
    Ok(0)
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f()
            }
        }
    }
    Guard(Some(f))
}

/// Connects to a daemon's socket; a user error naming what to do when none answers.
pub async fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).await.with_context(|| {
        format!(
            "no reaper-trace daemon answers on {}: start one with `reaper-trace daemon`, or name its socket",
            path.display()
        )
    })
}
