//! `reaper-trace top`: a live terminal dashboard of adoptions, zombies and reapers, or a
//! recording played back through the same screens.
//!
//! - [`crate::view`]: what is shown, computed from events (no terminal);
//! - [`app`]: focus, selection, filters, pause, what keys do;
//! - [`keys`]: the key map (keys, help screen, footer and `top --help` from one table);
//! - [`ui`]: drawing a frame;
//! - [`input`]: reading keys on a thread;
//! - [`terminal`]: taking the terminal and giving it back, even on panic;
//! - [`replay`]: a recording's clock;
//! - [`tree`]: the tree panel (`t`), a process tree snapshot of the selected process.
//!
//! Events are drained as they arrive, but the screen is redrawn at most every
//! [`FRAME`] and only when something changed or a second passed (zombie ages count up).

pub mod app;
pub mod input;
pub mod keys;
pub mod replay;
pub mod terminal;
pub mod tree;
pub mod ui;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use crossterm::event::Event as TermEvent;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, MissedTickBehavior};

use crate::clock::boottime_ns;
use crate::jsonl;
use crate::model::Scope;
use crate::session::{Session, SessionOptions};
use crate::view::View;
use app::{Action, App, Mode};
use replay::{Player, Seeked};
use terminal::TerminalGuard;

/// Whether a daemon answers on the default socket.
/// Whether to show the daemon on the default socket: yes when one answers; no when there is
/// none, or when this user may not connect but may attach alone; an error saying so when
/// this user may do neither.
fn use_default_daemon() -> Result<bool> {
    let path = std::path::Path::new(crate::daemon::DEFAULT_SOCKET);
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            match crate::preflight::check_privileges() {
                Ok(()) => Ok(false),
                Err(_) => Err(crate::daemon::connect_error(path, e)),
            }
        }
        Err(_) => Ok(false),
    }
}

/// The shortest time between two frames.
pub const FRAME: Duration = Duration::from_millis(100);
/// A frame at least this often, even with nothing new: ages count up.
const IDLE_FRAME: Duration = Duration::from_secs(1);
/// Set, the dashboard panics after its first frame: how the tests check that a panic gives
/// the terminal back before its message is printed.
const PANIC_VAR: &str = "REAPER_TRACE_TOP_PANIC";

pub struct TopOptions {
    pub replay: Option<PathBuf>,
    /// Replay speed; 0: as fast as possible, then stay on the final state.
    pub speed: f64,
    pub zombie_threshold: Duration,
    pub ring_bytes: u32,
    /// Show only what involves this container (name, pod name or id prefix).
    pub container: Option<String>,
    /// Show this daemon's stream (`--connect`); without it, a daemon on the default socket
    /// is used when one answers, else top attaches by itself.
    pub connect: Option<PathBuf>,
}

enum Feed {
    Live(Box<Session>),
    Replay(Box<Player<std::io::BufReader<std::fs::File>>>),
    /// A daemon's stream: events parsed by a reader thread.
    Daemon(Box<Client>),
}

/// The reading end of a daemon's stream.
struct Client {
    stream: crate::daemon::client::Subscription,
    /// Received while waiting, applied at the next pump.
    pending: Vec<crate::event::Event>,
    /// Why the stream ended, once it has.
    ended: Option<crate::daemon::client::Ended>,
}

impl Client {
    fn new(stream: crate::daemon::client::Subscription) -> Self {
        Self {
            stream,
            pending: Vec::new(),
            ended: None,
        }
    }

    fn take(&mut self, r: Result<crate::event::Event, crate::daemon::client::Ended>) {
        match r {
            Ok(ev) => self.pending.push(ev),
            Err(e) => self.ended = Some(e),
        }
    }

    async fn ready(&mut self) {
        if self.ended.is_some() {
            return std::future::pending().await;
        }
        let r = self.stream.next().await;
        self.take(r);
    }
}

/// Runs the dashboard until the user quits; returns the exit code. Everything that can fail
/// (a bad recording, no privileges, no terminal) fails before the terminal is touched.
pub async fn run(opts: TopOptions) -> Result<i32> {
    if !opts.speed.is_finite() || opts.speed < 0.0 {
        bail!("--speed must be 0 (as fast as possible) or a positive factor");
    }
    let (feed, mode) = match &opts.replay {
        Some(path) => {
            let player = Player::new(jsonl::open(path)?, opts.speed)?;
            let mode = Mode::Replay {
                file: path.display().to_string(),
                cut_line: player.cut_line(),
                error: None,
                speed: opts.speed,
                position_ns: 0,
                total_ns: 0,
                done: false,
            };
            (Feed::Replay(Box::new(player)), mode)
        }
        None if opts.connect.is_some() || use_default_daemon()? => {
            let socket = opts
                .connect
                .clone()
                .unwrap_or_else(|| crate::daemon::DEFAULT_SOCKET.into());
            if !std::io::stdout().is_terminal() {
                bail!(
                    "top needs a terminal: use `reaper-trace record --connect` to write events to a file"
                );
            }
            let stream = crate::daemon::client::subscribe(&socket).await?;
            (Feed::Daemon(Box::new(Client::new(stream))), Mode::Live)
        }
        None => {
            if !std::io::stdout().is_terminal() {
                bail!("top needs a terminal: use `reaper-trace record` to write events to a file");
            }
            if std::io::stderr().is_terminal() {
                // Verifying the kernel programs takes a few seconds.
                eprintln!("reaper-trace: loading the kernel programs...");
            }
            let session = Session::start(&SessionOptions {
                scope: Scope::All,
                ring_bytes: opts.ring_bytes,
                quiet: false,
            })?;
            (Feed::Live(Box::new(session)), Mode::Live)
        }
    };
    if !std::io::stdout().is_terminal() {
        bail!("top needs a terminal: its standard output is not one");
    }
    let threshold = opts.zombie_threshold.as_nanos().min(u64::MAX as u128) as u64;
    let mut dashboard = Dashboard::new(feed, mode, threshold);
    dashboard.app.query.filter.container = opts.container;
    dashboard.run().await
}

struct Dashboard {
    feed: Feed,
    view: View,
    /// What the screen shows while a live dashboard is paused: the view as it was.
    frozen: Option<View>,
    app: App,
    events: Vec<crate::event::Event>,
    /// Takes the tree panel's snapshots (its program is loaded at the first).
    trees: tree::Source,
}

impl Dashboard {
    fn new(mut feed: Feed, mode: Mode, threshold_ns: u64) -> Self {
        let mut view = View::new(threshold_ns);
        if let Feed::Live(session) = &mut feed {
            // Zombies from before tracing began, as `record` writes them first.
            for ev in session.zombies_before_trace() {
                view.apply(&ev);
            }
        }
        Self {
            feed,
            view,
            frozen: None,
            app: App::new(mode),
            events: Vec::new(),
            trees: tree::Source::default(),
        }
    }

    /// Applies every pending event; returns how many.
    fn pump(&mut self, elapsed: Duration) -> usize {
        match &mut self.feed {
            Feed::Live(session) => {
                session.step(&mut self.events);
                let n = self.events.len();
                for ev in self.events.drain(..) {
                    self.view.apply(&ev);
                }
                n
            }
            Feed::Replay(player) => {
                let due = player.advance(elapsed);
                for ev in due {
                    self.view.apply(ev);
                }
                due.len()
            }
            Feed::Daemon(client) => {
                while client.pending.len() < crate::session::BATCH
                    && client.ended.is_none()
                    && let Some(r) = client.stream.try_next()
                {
                    client.take(r);
                }
                let n = client.pending.len();
                for ev in client.pending.drain(..) {
                    self.view.apply(&ev);
                }
                n
            }
        }
    }

    /// Brings the clock, the task count and the replay position up to date before a frame.
    fn prepare_frame(&mut self) {
        match &mut self.feed {
            Feed::Live(session) => {
                self.view.set_clock(boottime_ns());
                self.view.set_live_tasks(session.model().len());
            }
            Feed::Daemon(_) => self.view.set_clock(boottime_ns()),
            Feed::Replay(player) => {
                self.view.set_clock(player.clock());
                let (position_ns, total_ns) = player.position();
                if let Mode::Replay {
                    speed,
                    position_ns: pos,
                    total_ns: total,
                    done,
                    cut_line,
                    error,
                    ..
                } = &mut self.app.mode
                {
                    *speed = player.speed();
                    *pos = position_ns;
                    *total = total_ns;
                    *done = player.done();
                    *cut_line = player.cut_line();
                    *error = player.error().map(|e| format!("{e:#}"));
                }
            }
        }
    }

    fn on_action(&mut self, action: Action) -> bool {
        match action {
            Action::Quit => return false,
            Action::Pause => match &mut self.feed {
                Feed::Live(_) | Feed::Daemon(_) => {
                    self.frozen = self.app.paused.then(|| self.view.clone());
                }
                Feed::Replay(player) => player.set_paused(self.app.paused),
            },
            Action::Speed(factor) => {
                if let Feed::Replay(player) = &mut self.feed {
                    player.scale_speed(factor);
                }
            }
            Action::Seek(jump) => {
                if let Feed::Replay(player) = &mut self.feed
                    && player.seek(jump) == Seeked::Rewound
                {
                    // Played again from the start, into an empty view.
                    self.view = View::new(self.view.zombie_threshold_ns);
                }
            }
            Action::OpenTree => {
                let shown = self.frozen.as_ref().unwrap_or(&self.view);
                let target = self.app.selected_process(shown);
                let content = self.tree_of(target.as_ref());
                self.app.tree = Some(tree::TreePanel::new(target, content));
            }
            Action::RefreshTree => {
                let target = self.app.tree.as_ref().and_then(|t| t.target.clone());
                let content = self.tree_of(target.as_ref());
                if let Some(t) = &mut self.app.tree {
                    t.content = content;
                }
            }
            Action::None | Action::Redraw => {}
        }
        true
    }

    /// The tree panel's content for `target`: a snapshot of the kernel's tasks, taken now
    /// (in the run loop: one iterator pass, about 20 ms for 8,000 tasks; loading the
    /// program the first time takes longer). A replay has no live kernel to take it from;
    /// `--connect` does (the daemon's socket is local, so is its kernel).
    fn tree_of(&mut self, target: Option<&crate::event::Proc>) -> tree::Content {
        match (target, &self.feed) {
            (None, _) => tree::Content::NoSelection,
            (Some(_), Feed::Replay(_)) => tree::Content::NeedsLiveKernel,
            (Some(t), Feed::Live(_) | Feed::Daemon(_)) => self.trees.snapshot(t),
        }
    }

    async fn run(mut self) -> Result<i32> {
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sighup = signal(SignalKind::hangup())?;
        let mut guard = TerminalGuard::enter()?;
        let mut input = input::Input::spawn()?;
        let mut tick = tokio::time::interval(FRAME);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_pump = Instant::now();
        let mut last_draw: Option<Instant> = None;
        let mut drawn_generation = u64::MAX;
        let mut force = true;
        let live = matches!(self.feed, Feed::Live(_) | Feed::Daemon(_));
        let panic_on_purpose = std::env::var_os(PANIC_VAR).is_some();
        loop {
            // A replay with events due still (a jump, speed 0) goes on at once.
            let replay_behind = matches!(&self.feed, Feed::Replay(p) if p.behind());
            // Keys and signals first: they are seen between two batches of records, however
            // many are waiting (the session bounds each batch).
            tokio::select! {
                biased;
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
                _ = sighup.recv() => break,
                ev = input.events.recv() => match ev {
                    // The terminal is gone.
                    None => break,
                    Some(TermEvent::Key(key)) => {
                        let namespaces: Vec<u32> = self.view.pid_namespaces().collect();
                        let action = self.app.on_key(key, &namespaces);
                        if !self.on_action(action) {
                            break;
                        }
                        force |= action != Action::None;
                    }
                    Some(TermEvent::Resize(..)) => force = true,
                    Some(_) => {}
                },
                _ = tick.tick() => {}
                r = async {
                    match &mut self.feed {
                        Feed::Live(s) => s.ready().await,
                        Feed::Daemon(c) => {
                            c.ready().await;
                            Ok(())
                        }
                        Feed::Replay(_) => std::future::pending().await,
                    }
                }, if live => r?,
                _ = std::future::ready(()), if replay_behind => {}
            }
            let now = Instant::now();
            self.pump(now - last_pump);
            last_pump = now;
            if let Feed::Daemon(c) = &self.feed
                && c.ended.is_some()
            {
                break;
            }

            let since_draw = last_draw.map_or(Duration::MAX, |t| now - t);
            let changed = self.view.generation() != drawn_generation && self.frozen.is_none();
            if since_draw >= FRAME && (force || changed || since_draw >= IDLE_FRAME) {
                if self.frozen.is_none() {
                    self.prepare_frame();
                }
                let shown = self.frozen.as_ref().unwrap_or(&self.view);
                let app = &self.app;
                guard.terminal.draw(|f| ui::draw(f, shown, app))?;
                drawn_generation = self.view.generation();
                last_draw = Some(now);
                force = false;
                if panic_on_purpose {
                    panic!("{PANIC_VAR} is set: panicking after the first frame, on purpose");
                }
            }
        }
        drop(input);
        drop(guard);
        if let Feed::Live(session) = &mut self.feed {
            // The terminal is back. The kernel takes its time to detach the programs: let it
            // start now, while the rest is dropped (dropping the session waits for it).
            session.detach();
        }
        if let Feed::Daemon(client) = &self.feed
            && let Client {
                ended: Some(why),
                stream,
                ..
            } = client.as_ref()
        {
            bail!("{}: {why}", stream.socket.display());
        }
        // Playing stopped on a malformed line: the screen said so, the exit status does too.
        if let Feed::Replay(player) = &mut self.feed
            && let Some(e) = player.take_error()
        {
            return Err(e);
        }
        // What the screen showed goes while the programs are being detached; the session
        // (its drop waits for them) last.
        drop(self.view);
        drop(self.frozen);
        drop(self.feed);
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(replay: &std::path::Path, speed: f64) -> Result<i32> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(TopOptions {
            replay: Some(replay.to_path_buf()),
            speed,
            zombie_threshold: Duration::from_secs(5),
            ring_bytes: 1 << 20,
            container: None,
            connect: None,
        }))
    }

    #[test]
    fn bad_replays_fail_before_the_terminal_is_touched() {
        let path = std::env::temp_dir().join(format!("rt-top-bad-{}.jsonl", std::process::id()));
        let header = serde_json::to_string(&jsonl::header(None, 0)).unwrap();
        std::fs::write(
            &path,
            format!("{header}\n{{\"type\":\"lost\",\"ts\":1,\"what\":\"fork\",\"count\":2}}\n{{\"type\":\"reap\",\"ts\":\n\n"),
        )
        .unwrap();
        let err = top(&path, 1.0).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with(&format!("{}:3: malformed event", path.display())),
            "{msg}"
        );
        let err = top(&path, -1.0).unwrap_err();
        assert!(err.to_string().contains("--speed"), "{err}");
        std::fs::remove_file(&path).ok();
        let err = top(std::path::Path::new("/nonexistent/t.jsonl"), 1.0).unwrap_err();
        assert!(format!("{err:#}").contains("cannot open recording /nonexistent/t.jsonl"));
    }
}
