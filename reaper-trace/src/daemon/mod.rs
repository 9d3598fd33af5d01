//! `reaper-trace daemon`: one set of programs attached for the whole host; Prometheus metrics
//! over HTTP (axum), and the JSON Lines event stream on a Unix socket (mode 0600) for
//! `top --connect` and `record --connect`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::UnixStream;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast;

use crate::clock::boottime_ns;
use crate::metrics::Metrics;
use crate::model::Scope;
use crate::session::{Session, SessionOptions};

mod backoff;
pub mod client;
pub mod exporter;
mod socket_file;
mod stream;

pub const DEFAULT_METRICS: &str = "127.0.0.1:9750";
pub const DEFAULT_SOCKET: &str = "/run/reaper-trace.sock";
/// How often the gauges are recomputed.
const UPDATE_EVERY: Duration = Duration::from_secs(1);

pub struct DaemonOptions {
    pub metrics: SocketAddr,
    pub socket: PathBuf,
    pub zombie_threshold: Duration,
    pub ring_bytes: u32,
    pub limits: exporter::Limits,
}

/// Raises the soft limit on open files to the hard one: every connection is a file, and a
/// service manager's default soft limit (1,024 under systemd) is low for a server. Returns
/// the soft limit in force.
fn raise_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit fill and read a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}

/// Connections the kernel queues for the metrics listener before it drops new ones: a burst
/// of connections (a neighbour opening hundreds at once) waits here while the oldest are
/// closed to make room, rather than having its SYNs dropped.
const LISTEN_BACKLOG: u32 = 1024;

fn listen_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

pub async fn run(opts: DaemonOptions) -> Result<i32> {
    crate::preflight::check_privileges()?;
    let file_limit = raise_file_limit();
    // Everything a user can get wrong is checked before the programs are attached.
    let http = listen_tcp(opts.metrics).with_context(|| {
        format!(
            "cannot serve metrics on {}: choose another --metrics address (e.g. 127.0.0.1:9751)",
            opts.metrics
        )
    })?;
    // Removed when this returns, unless another daemon has taken the path over since.
    let (listener, _socket_file) = socket_file::SocketFile::bind(&opts.socket)?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;

    let mut session = Session::start(&SessionOptions {
        scope: Scope::All,
        ring_bytes: opts.ring_bytes,
        quiet: false,
    })?;
    let threshold = opts.zombie_threshold.as_nanos().min(u64::MAX as u128) as u64;
    let mut metrics = Metrics::new(threshold);
    let server = metrics.server_metrics();
    let metrics = Arc::new(Mutex::new(metrics));
    let header = stream::line(&crate::jsonl::header(None, session.started_ts));

    let exporter = tokio::spawn(exporter::serve(
        http,
        metrics.clone(),
        server.clone(),
        opts.limits,
    ));
    let (tx, _) = broadcast::channel::<Arc<str>>(stream::BACKLOG);
    {
        let mut m = metrics.lock().unwrap_or_else(|e| e.into_inner());
        for ev in &session.zombies_before_trace() {
            m.apply(ev);
        }
        m.update(boottime_ns());
    }
    let streamer = tokio::spawn(stream::serve(
        listener,
        header,
        tx.clone(),
        metrics.clone(),
        server,
    ));
    eprintln!(
        "reaper-trace: daemon: metrics on http://{}/metrics (at most {} connections), events on {} (open files: {file_limit})",
        opts.metrics,
        opts.limits.max_connections,
        crate::escape::escape_control(&opts.socket.display().to_string())
    );
    let mut update = tokio::time::interval(UPDATE_EVERY);
    update.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sighup.recv() => {
                // Sent by service managers and closing terminals: the daemon has no
                // configuration to reload and keeps running.
                eprintln!("reaper-trace: daemon: SIGHUP ignored (nothing to reload): stop it with SIGTERM");
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
        let mut m = metrics.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock a new client subscribes under (see `stream::serve`).
        let streaming = tx.receiver_count() > 0;
        for ev in events.drain(..) {
            m.apply(&ev);
            if streaming {
                let _ = tx.send(Arc::from(stream::line(&ev)));
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
    exporter.abort();
    streamer.abort();
    drop(session);
    eprintln!("reaper-trace: daemon stopped, programs detached");
    Ok(0)
}

/// Connects to a daemon's socket; a user error naming what to do when none answers, or when
/// one does but this user may not connect (the socket is mode 0600, root's).
pub async fn connect(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path)
        .await
        .map_err(|e| connect_error(path, e))
}

/// What a failed connection to a daemon's socket means, in one line.
pub fn connect_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        anyhow::anyhow!(
            "a reaper-trace daemon's socket is at {} but only its owner may connect (mode 0600): run as root, e.g. with sudo",
            path.display()
        )
    } else {
        anyhow::Error::new(e).context(format!(
            "no reaper-trace daemon answers on {}: start one with `reaper-trace daemon`, or name its socket",
            path.display()
        ))
    }
}
