//! `reaper-trace daemon`: one set of programs attached for the whole host; Prometheus metrics
//! over HTTP (axum), and the JSON Lines event stream on a Unix socket (mode 0600) for
//! `top --connect` and `record --connect`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::UnixStream;
use tokio::sync::broadcast;

use crate::clock::boottime_ns;
use crate::event::Event;
use crate::live::{self, Flow, Sink, StopSignals};
use crate::metrics::Metrics;
use crate::model::Scope;
use crate::session::{Session, SessionOptions};

mod backoff;
pub(crate) mod client;
pub mod exporter;
mod socket_file;
mod stream;
pub mod web_config;

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
    /// `--web-config`: TLS and basic authentication for the metrics.
    pub web_config: Option<PathBuf>,
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
    let web = match &opts.web_config {
        Some(path) => web_config::WebConfig::load(path)?,
        None => web_config::WebConfig::default(),
    };
    if web.users.is_some() && web.tls.is_none() {
        eprintln!(
            "reaper-trace: daemon: warning: basic_auth_users without tls_server_config: passwords cross the network in clear text"
        );
    }
    let http = listen_tcp(opts.metrics).with_context(|| {
        format!(
            "cannot serve metrics on {}: choose another --metrics address (e.g. 127.0.0.1:9751)",
            opts.metrics
        )
    })?;
    // Removed when this returns, unless another daemon has taken the path over since.
    let (listener, _socket_file) = socket_file::SocketFile::bind(&opts.socket)?;
    let mut signals = StopSignals::new()?;
    let mut session = Session::start(&SessionOptions {
        scope: Scope::All,
        ring_bytes: opts.ring_bytes,
        quiet: false,
    })?;
    let threshold = opts.zombie_threshold.as_nanos().min(u64::MAX as u128) as u64;
    let mut metrics = Metrics::new(threshold);
    let server = metrics.server_metrics();
    let metrics = Arc::new(Mutex::new(metrics));
    let exporter = tokio::spawn(exporter::serve(
        http,
        metrics.clone(),
        server.clone(),
        opts.limits,
        web.clone(),
    ));
    let mut update = tokio::time::interval(UPDATE_EVERY);
    update.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut daemon = Daemon {
        metrics,
        server,
        tx: broadcast::channel::<Arc<str>>(stream::BACKLOG).0,
        listener: Some(listener),
        streamer: None,
        update,
        serving: format!(
            "reaper-trace: daemon: metrics on {}://{}/metrics{} (at most {} connections), events on {} (open files: {file_limit})",
            web.scheme(),
            opts.metrics,
            if web.users.is_some() {
                " (password required)"
            } else {
                ""
            },
            opts.limits.max_connections,
            crate::escape::escape_control(&opts.socket.display().to_string())
        ),
    };
    let served = live::run(&mut session, &mut signals, &mut daemon).await;
    exporter.abort();
    if let Some(streamer) = daemon.streamer {
        streamer.abort();
    }
    served?;
    drop(session);
    eprintln!("reaper-trace: daemon stopped, programs detached");
    Ok(0)
}

/// The daemon's end of the live session: events into the metrics and out to stream clients.
struct Daemon {
    metrics: Arc<Mutex<Metrics>>,
    server: crate::metrics::ServerMetrics,
    /// Each event, as a line, to every stream client.
    tx: broadcast::Sender<Arc<str>>,
    /// The stream's listener, until the stream is served (once the first events are in the
    /// metrics: a client's snapshot then holds them).
    listener: Option<tokio::net::UnixListener>,
    streamer: Option<tokio::task::JoinHandle<()>>,
    /// When the gauges are recomputed.
    update: tokio::time::Interval,
    /// Said once the stream is served.
    serving: String,
}

impl Daemon {
    fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sink<Session> for Daemon {
    type Input = ();

    fn started(&mut self, session: &mut Session, first: &mut Vec<Event>) -> Result<Flow> {
        {
            let mut m = self.metrics();
            for ev in first.iter() {
                m.apply(ev);
            }
            m.update(boottime_ns());
        }
        let header = stream::line(&crate::jsonl::header(None, session.started_ts));
        self.streamer = Some(tokio::spawn(stream::serve(
            self.listener.take().expect("served once"),
            header,
            self.tx.clone(),
            self.metrics.clone(),
            self.server.clone(),
        )));
        eprintln!("{}", self.serving);
        Ok(Flow::Go)
    }

    async fn input(&mut self) {
        self.update.tick().await;
    }

    fn on_input(&mut self, _: (), _: &mut Session) -> Result<Flow> {
        self.metrics().update(boottime_ns());
        Ok(Flow::Go)
    }

    fn on_signal(&mut self, signal: i32, _: &mut Session) -> Result<Flow> {
        if signal == libc::SIGHUP {
            // Sent by service managers and closing terminals: the daemon has no configuration
            // to reload and keeps running.
            eprintln!(
                "reaper-trace: daemon: SIGHUP ignored (nothing to reload): stop it with SIGTERM"
            );
            return Ok(Flow::Go);
        }
        Ok(Flow::Stop)
    }

    fn on_events(&mut self, events: &mut Vec<Event>, _: &mut Session) -> Result<Flow> {
        if events.is_empty() {
            return Ok(Flow::Go);
        }
        let mut m = self.metrics();
        // Under the lock a new client subscribes under (see `stream::serve`).
        let streaming = self.tx.receiver_count() > 0;
        for ev in events.drain(..) {
            m.apply(&ev);
            if streaming {
                let _ = self.tx.send(Arc::from(stream::line(&ev)));
            }
        }
        Ok(Flow::Go)
    }

    fn finish(&mut self, _: &mut Vec<Event>, _: &mut Session) -> Result<()> {
        // Nobody reads the metrics or the stream any more.
        Ok(())
    }
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
