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
mod input;
pub mod keys;
mod replay;
mod terminal;
mod tree;
pub mod ui;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use crossterm::event::Event as TermEvent;
use tokio::time::{Instant, MissedTickBehavior};

use crate::clock::boottime_ns;
use crate::daemon::client::Connected;
use crate::event::Event;
use crate::jsonl;
use crate::live::{self, Flow, Sink, Source, StopSignals};
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

/// Where the dashboard's events come from.
enum Feed {
    Live(Box<Session>),
    Replay(Box<Replaying>),
    /// A daemon's stream: events parsed by a reader thread.
    Daemon(Box<Connected>),
}

/// A recording played at its own pace.
struct Replaying {
    player: Player<std::io::BufReader<std::fs::File>>,
    /// When the replay clock was last moved on.
    last_step: Instant,
}

impl Source for Feed {
    fn first_events(&mut self, out: &mut Vec<Event>) {
        if let Feed::Live(session) = self {
            session.first_events(out);
        }
    }

    async fn ready(&mut self) -> Result<()> {
        match self {
            Feed::Live(session) => session.ready().await,
            Feed::Daemon(stream) => stream.ready().await,
            // Moved on at each frame, or at once while events are due still (a jump, speed 0).
            Feed::Replay(r) if r.player.behind() => Ok(()),
            Feed::Replay(_) => std::future::pending().await,
        }
    }

    fn step(&mut self, out: &mut Vec<Event>) -> Flow {
        match self {
            Feed::Live(session) => Source::step(&mut **session, out),
            Feed::Daemon(stream) => stream.step(out),
            Feed::Replay(r) => {
                let now = Instant::now();
                r.player.advance_into(now - r.last_step, out);
                r.last_step = now;
                Flow::Go
            }
        }
    }

    async fn finish(&mut self, out: &mut Vec<Event>) {
        if let Feed::Live(session) = self {
            session.finish(out).await;
        }
    }

    fn kernel_messages(&mut self) -> Vec<String> {
        match self {
            Feed::Live(session) => session.kernel_messages(),
            _ => Vec::new(),
        }
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
            let replaying = Replaying {
                player,
                last_step: Instant::now(),
            };
            (Feed::Replay(Box::new(replaying)), mode)
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
            (Feed::Daemon(Box::new(Connected::new(stream))), Mode::Live)
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
    let mut dashboard = Dashboard::new(mode, threshold);
    dashboard.app.query.filter.container = opts.container;
    let mut feed = feed;
    let mut signals = StopSignals::new()?;
    live::run(&mut feed, &mut signals, &mut dashboard).await?;
    // What the screen showed goes while the programs are being detached; the session (its
    // drop waits for them) last.
    drop(dashboard);
    drop(feed);
    Ok(0)
}

struct Dashboard {
    view: View,
    /// What the screen shows while a live dashboard is paused: the view as it was.
    frozen: Option<View>,
    app: App,
    /// Takes the tree panel's snapshots (its program is loaded at the first).
    trees: tree::Source,
    /// The terminal, taken when the feed has started, given back when it stops.
    terminal: Option<TerminalGuard>,
    keys: Option<input::Input>,
    frames: tokio::time::Interval,
    last_draw: Option<Instant>,
    drawn_generation: u64,
    /// Draw the next frame even if the view has not changed (a key, a resize).
    force: bool,
    panic_on_purpose: bool,
}

/// What the dashboard waits for besides events.
enum Input {
    Term(Option<TermEvent>),
    Frame,
}

impl Dashboard {
    fn new(mode: Mode, threshold_ns: u64) -> Self {
        let mut frames = tokio::time::interval(FRAME);
        frames.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            view: View::new(threshold_ns),
            frozen: None,
            app: App::new(mode),
            trees: tree::Source::default(),
            terminal: None,
            keys: None,
            frames,
            last_draw: None,
            drawn_generation: u64::MAX,
            force: true,
            panic_on_purpose: std::env::var_os(PANIC_VAR).is_some(),
        }
    }

    /// Brings the clock, the task count and the replay position up to date before a frame.
    fn prepare_frame(&mut self, feed: &mut Feed) {
        match feed {
            Feed::Live(session) => {
                self.view.set_clock(boottime_ns());
                self.view.set_live_tasks(session.model().len());
            }
            Feed::Daemon(_) => self.view.set_clock(boottime_ns()),
            Feed::Replay(r) => {
                let player = &mut r.player;
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

    /// What a key asks for; false: quit.
    fn on_action(&mut self, action: Action, feed: &mut Feed) -> bool {
        match action {
            Action::Quit => return false,
            Action::Pause => match feed {
                Feed::Live(_) | Feed::Daemon(_) => {
                    self.frozen = self.app.paused.then(|| self.view.clone());
                }
                Feed::Replay(r) => r.player.set_paused(self.app.paused),
            },
            Action::Speed(factor) => {
                if let Feed::Replay(r) = feed {
                    r.player.scale_speed(factor);
                }
            }
            Action::Seek(jump) => {
                if let Feed::Replay(r) = feed
                    && r.player.seek(jump) == Seeked::Rewound
                {
                    // Played again from the start, into an empty view.
                    self.view = View::new(self.view.zombie_threshold_ns);
                }
            }
            Action::OpenTree => {
                let shown = self.frozen.as_ref().unwrap_or(&self.view);
                let target = self.app.selected_process(shown);
                let content = self.tree_of(target.as_ref(), feed);
                self.app.tree = Some(tree::TreePanel::new(target, content));
            }
            Action::RefreshTree => {
                let target = self.app.tree.as_ref().and_then(|t| t.target.clone());
                let content = self.tree_of(target.as_ref(), feed);
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
    fn tree_of(&mut self, target: Option<&crate::event::Proc>, feed: &Feed) -> tree::Content {
        match (target, feed) {
            (None, _) => tree::Content::NoSelection,
            (Some(_), Feed::Replay(_)) => tree::Content::NeedsLiveKernel,
            (Some(t), Feed::Live(_) | Feed::Daemon(_)) => self.trees.snapshot(t),
        }
    }

    /// Draws a frame when one is due: at most every [`FRAME`], when something changed, a key
    /// asked for it, or a second passed.
    fn draw(&mut self, feed: &mut Feed) -> Result<()> {
        let now = Instant::now();
        let since_draw = self.last_draw.map_or(Duration::MAX, |t| now - t);
        let changed = self.view.generation() != self.drawn_generation && self.frozen.is_none();
        if since_draw < FRAME || !(self.force || changed || since_draw >= IDLE_FRAME) {
            return Ok(());
        }
        if self.frozen.is_none() {
            self.prepare_frame(feed);
        }
        let shown = self.frozen.as_ref().unwrap_or(&self.view);
        let app = &self.app;
        if let Some(guard) = &mut self.terminal {
            guard.terminal.draw(|f| ui::draw(f, shown, app))?;
        }
        self.drawn_generation = self.view.generation();
        self.last_draw = Some(now);
        self.force = false;
        if self.panic_on_purpose {
            panic!("{PANIC_VAR} is set: panicking after the first frame, on purpose");
        }
        Ok(())
    }
}

impl Sink<Feed> for Dashboard {
    type Input = Input;

    fn started(&mut self, feed: &mut Feed, first: &mut Vec<Event>) -> Result<Flow> {
        if let Feed::Replay(r) = feed {
            r.last_step = Instant::now();
        }
        // Zombies from before tracing began, as `record` writes them first.
        for ev in first.iter() {
            self.view.apply(ev);
        }
        self.terminal = Some(TerminalGuard::enter()?);
        self.keys = Some(input::Input::spawn()?);
        Ok(Flow::Go)
    }

    async fn input(&mut self) -> Input {
        let keys = self.keys.as_mut().expect("taken at the start");
        tokio::select! {
            biased;
            ev = keys.events.recv() => Input::Term(ev),
            _ = self.frames.tick() => Input::Frame,
        }
    }

    fn on_input(&mut self, input: Input, feed: &mut Feed) -> Result<Flow> {
        match input {
            // The terminal is gone.
            Input::Term(None) => return Ok(Flow::Stop),
            Input::Term(Some(TermEvent::Key(key))) => {
                let namespaces: Vec<u32> = self.view.pid_namespaces().collect();
                let action = self.app.on_key(key, &namespaces);
                if !self.on_action(action, feed) {
                    return Ok(Flow::Stop);
                }
                self.force |= action != Action::None;
            }
            Input::Term(Some(TermEvent::Resize(..))) => self.force = true,
            Input::Term(Some(_)) | Input::Frame => {}
        }
        Ok(Flow::Go)
    }

    fn on_events(&mut self, events: &mut Vec<Event>, feed: &mut Feed) -> Result<Flow> {
        for ev in events.iter() {
            self.view.apply(ev);
        }
        self.draw(feed)?;
        Ok(Flow::Go)
    }

    fn on_kernel_message(&mut self, _: &str) {
        // The terminal is the screen: a line on standard error would tear it. What the
        // programs warn of shows as lost counts.
    }

    async fn stopping(&mut self, _: &mut Feed) -> Result<()> {
        // The terminal back before the programs are detached (the kernel takes its time).
        self.keys = None;
        self.terminal = None;
        Ok(())
    }

    fn finish(&mut self, _: &mut Vec<Event>, feed: &mut Feed) -> Result<()> {
        match feed {
            Feed::Daemon(stream) => match &stream.ended {
                Some(why) => bail!("{}: {why}", stream.subscription.socket.display()),
                None => Ok(()),
            },
            // Playing stopped on a malformed line: the screen said so, the exit status does too.
            Feed::Replay(r) => match r.player.take_error() {
                Some(e) => Err(e),
                None => Ok(()),
            },
            Feed::Live(_) => Ok(()),
        }
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
