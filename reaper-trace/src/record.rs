//! `reaper-trace record`: events as JSON Lines, system-wide or for one command's tree.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use std::future::Future;

use tokio::time::{Instant, sleep_until};

use crate::daemon::client::{Connected, Ended};
use crate::event::Event;
use crate::exit::Exit;
use crate::jsonl::{Destination, JsonlWriter, header};
use crate::live::{self, Flow, Sink, StopSignals};
use crate::model::Scope;
use crate::session::{Session, SessionOptions};

/// The file gets whole lines at least this often, however slowly events come.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// After Ctrl-C, SIGTERM or SIGHUP with a command running: how long it has to exit.
const COMMAND_STOP_GRACE: Duration = Duration::from_secs(2);
/// How long the orphans a command leaves are followed after it exits, by default.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(2);

pub struct RecordOptions {
    pub output: Option<PathBuf>,
    pub duration: Option<Duration>,
    pub command: Vec<String>,
    pub ring_bytes: u32,
    pub quiet: bool,
    /// After the command exits, keep following what is left of its tree this long at most.
    pub linger: Duration,
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Why the recording is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    /// Not yet.
    No,
    /// A signal or the duration: the command (if any) was told to stop; end when it has
    /// exited or at the deadline.
    Asked(Instant),
    /// The command exited: follow its tree until nothing is left of it, or the deadline.
    Lingering(Instant),
}

/// Runs the recording; returns the process exit code (the command's, when there is one).
pub async fn run(opts: RecordOptions) -> Result<i32> {
    // Everything a user can get wrong is checked before anything is attached, and the output
    // is created (or emptied) only after: a failed run leaves no empty (or truncated)
    // recording. A command that cannot run is told first, with a shell's status (127, 126).
    if let Some(program) = opts.command.first() {
        check_command(program)?;
    }
    crate::preflight::check_privileges()?;
    let scope = if opts.command.is_empty() {
        Scope::All
    } else {
        Scope::Tree
    };
    // Checked now, opened (an existing file emptied) only once the programs are attached.
    let Start {
        destination,
        mut signals,
        deadline,
    } = match Start::prepare(&opts).await? {
        Ok(start) => start,
        Err(code) => return Ok(code),
    };
    let mut session = Session::start(&SessionOptions {
        scope,
        ring_bytes: opts.ring_bytes,
        quiet: opts.quiet,
    })?;
    let mut recorder = Recorder::new(destination, deadline, &opts);
    live::run(&mut session, &mut signals, &mut recorder).await?;
    if recorder.closed() {
        // Quietly, as a tool that SIGPIPE stopped, once everything is detached.
        return Ok(Exit::BROKEN_PIPE.into());
    }
    if !opts.quiet {
        if scope == Scope::Tree {
            report_left_behind(&session);
        }
        let stats = session.stats();
        let mut notes = Vec::new();
        if let Some(lost) = stats.describe_lost() {
            notes.push(format!("lost: {lost}"));
        }
        if stats.bad_records > 0 {
            notes.push(format!("{} undecodable records", stats.bad_records));
        }
        recorder.report_written(&notes);
    }
    Ok(recorder.code)
}

/// The recording's end of a live session or of a daemon's stream: events to the file, the
/// command (if any) started, stopped and waited for.
struct Recorder {
    /// Opened by [`Sink::started`] (once the programs are attached) into `writer`.
    destination: Option<Destination>,
    writer: Option<JsonlWriter>,
    command: Vec<String>,
    quiet: bool,
    linger: Duration,
    child: Option<tokio::process::Child>,
    stopping: Stopping,
    /// The duration's end.
    deadline: Option<Instant>,
    flush_at: Instant,
    /// The process's exit code: the command's, when there is one.
    code: i32,
}

/// What a recording waits for besides its events.
enum Due {
    CommandExited(std::io::Result<std::process::ExitStatus>),
    /// The command's grace period or the lingering is over.
    StopNow,
    /// The duration is over.
    Deadline,
    Flush,
}

impl Recorder {
    fn new(destination: Destination, deadline: Option<Instant>, opts: &RecordOptions) -> Self {
        Self {
            destination: Some(destination),
            writer: None,
            command: opts.command.clone(),
            quiet: opts.quiet,
            linger: opts.linger,
            child: None,
            stopping: Stopping::No,
            deadline,
            flush_at: Instant::now() + FLUSH_EVERY,
            code: 0,
        }
    }

    fn open(&mut self, header: &crate::event::Header) -> Result<()> {
        let destination = self.destination.take().expect("opened once");
        self.writer
            .insert(JsonlWriter::new(destination.open()?))
            .header(header)
    }

    fn writer(&mut self) -> &mut JsonlWriter {
        self.writer
            .as_mut()
            .expect("opened when the source started")
    }

    /// Whether the output's reader has gone (`record | head`).
    fn closed(&self) -> bool {
        self.writer.as_ref().is_some_and(JsonlWriter::closed)
    }

    fn write(&mut self, events: &[crate::event::Event]) -> Result<()> {
        let writer = self.writer();
        for ev in events {
            writer.event(ev)?;
        }
        if Instant::now() >= self.flush_at {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.writer().flush()?;
        self.flush_at = Instant::now() + FLUSH_EVERY;
        Ok(())
    }

    async fn due(&mut self) -> Due {
        let stop_at = match self.stopping {
            Stopping::No => None,
            Stopping::Asked(t) | Stopping::Lingering(t) => Some(t),
        };
        let deadline = self.deadline.filter(|_| self.stopping == Stopping::No);
        let flush_at = self.flush_at;
        let child = &mut self.child;
        tokio::select! {
            biased;
            status = async { child.as_mut().expect("guarded").wait().await }, if child.is_some() => {
                Due::CommandExited(status)
            }
            _ = sleep_until(stop_at.unwrap_or_else(Instant::now)), if stop_at.is_some() => Due::StopNow,
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Due::Deadline,
            _ = sleep_until(flush_at) => Due::Flush,
        }
    }

    fn on_due(&mut self, due: Due) -> Result<Flow> {
        match due {
            Due::CommandExited(status) => {
                self.code = exit_code(status.context("waiting for the command")?);
                self.child = None;
                if self.stopping != Stopping::No {
                    // Asked to stop: no lingering.
                    return Ok(Flow::Stop);
                }
                self.stopping = Stopping::Lingering(Instant::now() + self.linger);
                Ok(Flow::Go)
            }
            Due::StopNow => Ok(Flow::Stop),
            Due::Deadline => Ok(self.stop_requested(libc::SIGTERM)),
            Due::Flush => {
                self.flush()?;
                Ok(Flow::Go)
            }
        }
    }

    /// Ctrl-C, SIGTERM, SIGHUP or the duration: pass the signal on to the command and give it
    /// a moment to exit. Without a command, or at a second request, the end is now.
    fn stop_requested(&mut self, sig: i32) -> Flow {
        match (self.child.as_ref().and_then(|c| c.id()), self.stopping) {
            (Some(pid), Stopping::No) => {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid as i32, sig) };
                self.stopping = Stopping::Asked(Instant::now() + COMMAND_STOP_GRACE);
                Flow::Go
            }
            (Some(_), Stopping::Asked(_)) => Flow::Go,
            _ => Flow::Stop,
        }
    }

    /// After a batch: `record | head` has what it wanted once the reader is gone (stop as
    /// after the duration).
    fn after_batch(&mut self) -> Flow {
        if self.closed() && self.stopping == Stopping::No {
            return self.stop_requested(libc::SIGTERM);
        }
        Flow::Go
    }

    fn report_written(&self, notes: &[String]) {
        let Some(writer) = &self.writer else { return };
        eprintln!(
            "reaper-trace: {} events written to {}{}",
            writer.events,
            crate::escape::escape_control(&writer.describe()),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            }
        );
    }
}

impl Sink<Session> for Recorder {
    type Input = Due;

    fn started(&mut self, session: &mut Session, first: &mut Vec<Event>) -> Result<Flow> {
        let command = (!self.command.is_empty()).then(|| self.command.clone());
        self.open(&header(command, session.started_ts))?;
        self.write(first)?;
        self.flush()?;
        if let Some((program, args)) = self.command.split_first() {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args).stdin(Stdio::inherit());
            self.child = Some(
                session
                    .spawn_tracked(|| Ok(cmd.spawn()))?
                    .map_err(|e| Exit::cannot_run(program, &e))?,
            );
        }
        Ok(Flow::Go)
    }

    fn input(&mut self) -> impl Future<Output = Due> {
        self.due()
    }

    fn on_input(&mut self, due: Due, _: &mut Session) -> Result<Flow> {
        self.on_due(due)
    }

    fn on_signal(&mut self, signal: i32, _: &mut Session) -> Result<Flow> {
        Ok(self.stop_requested(signal))
    }

    fn on_events(&mut self, events: &mut Vec<Event>, session: &mut Session) -> Result<Flow> {
        self.write(events)?;
        if self.after_batch() == Flow::Stop {
            return Ok(Flow::Stop);
        }
        if let Stopping::Lingering(_) = self.stopping
            && session.model().tree_settled()
        {
            return Ok(Flow::Stop);
        }
        Ok(Flow::Go)
    }

    fn on_kernel_message(&mut self, message: &str) {
        if !self.quiet {
            eprintln!(
                "reaper-trace: kernel: {}",
                crate::escape::escape_control(message)
            );
        }
    }

    async fn stopping(&mut self, _: &mut Session) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            // The grace period ran out: don't leave the command behind.
            let _ = c.start_kill();
            self.code = c.wait().await.map(exit_code).unwrap_or(1);
        }
        Ok(())
    }

    fn finish(&mut self, last: &mut Vec<Event>, _: &mut Session) -> Result<()> {
        self.write(last)?;
        self.writer().finish()
    }
}

impl Sink<Connected> for Recorder {
    type Input = Due;

    fn started(&mut self, stream: &mut Connected, _: &mut Vec<Event>) -> Result<Flow> {
        let header = stream.subscription.header.clone();
        self.open(&header)?;
        Ok(Flow::Go)
    }

    fn input(&mut self) -> impl Future<Output = Due> {
        self.due()
    }

    fn on_input(&mut self, due: Due, _: &mut Connected) -> Result<Flow> {
        self.on_due(due)
    }

    fn on_events(&mut self, events: &mut Vec<Event>, _: &mut Connected) -> Result<Flow> {
        self.write(events)?;
        Ok(self.after_batch())
    }

    fn finish(&mut self, last: &mut Vec<Event>, stream: &mut Connected) -> Result<()> {
        self.write(last)?;
        // What came before a line the reader refused is whole in the file.
        self.writer().finish()?;
        match &stream.ended {
            Some(why @ Ended::Unreadable(_)) => {
                anyhow::bail!("{}: {why}", stream.subscription.socket.display())
            }
            _ => Ok(()),
        }
    }
}

/// After a tree recording: what of the command's tree was still there when it ended.
fn report_left_behind(session: &Session) {
    let (running, zombies) = session.model().tree_left();
    let list = |procs: &[crate::event::Proc]| {
        let mut names: Vec<String> = procs
            .iter()
            .take(10)
            .map(|p| format!("{} ({})", p.pid, crate::escape::escape_control(&p.comm)))
            .collect();
        if procs.len() > 10 {
            names.push(format!("and {} more", procs.len() - 10));
        }
        names.join(", ")
    };
    if !running.is_empty() {
        eprintln!(
            "reaper-trace: still running when the recording ended: {}",
            list(&running)
        );
    }
    if !zombies.is_empty() {
        eprintln!(
            "reaper-trace: still zombies when the recording ended: {}",
            list(&zombies)
        );
    }
}

/// Fails, as spawning it would, when `program` names no executable file (directly when it has
/// a `/`, else in `PATH`): a mistyped command is reported before anything is attached, with a
/// shell's exit status: 127 when there is no such file, 126 when there is one but it is not
/// an executable file.
fn check_command(program: &str) -> Result<(), Exit> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join(program))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut found_one = false;
    for p in &candidates {
        match std::fs::metadata(p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(()),
            // A directory named so in PATH is passed over, as shells do; named by its path, it
            // is there but cannot run.
            Ok(m) if m.is_file() || program.contains('/') => found_one = true,
            Ok(_) => {}
            Err(_) => {}
        }
    }
    let err = if found_one {
        Error::from_raw_os_error(libc::EACCES)
    } else {
        Error::from(ErrorKind::NotFound)
    };
    Err(Exit::cannot_run(program, &err))
}

/// What every recording sets up before it reads anything: its output checked (and, for a
/// FIFO, a reader waited for), the signals that stop it, and its deadline.
struct Start {
    destination: Destination,
    signals: StopSignals,
    /// The duration bounds the whole run: waiting for a FIFO's reader and attaching included.
    deadline: Option<Instant>,
}

impl Start {
    /// `Err(code)`: a signal came while waiting for a FIFO's reader (128 + its number:
    /// nothing was recorded).
    async fn prepare(opts: &RecordOptions) -> Result<Result<Self, i32>> {
        let deadline = opts.duration.map(|d| Instant::now() + d);
        let mut destination = Destination::check(opts.output.as_deref())?;
        let mut signals = StopSignals::new()?;
        if let Destination::Fifo { path, .. } = &destination {
            let path = path.display().to_string();
            let quiet = opts.quiet;
            let announce = move || {
                if !quiet {
                    eprintln!(
                        "reaper-trace: waiting for a reader on the FIFO {}",
                        crate::escape::escape_control(&path)
                    );
                }
            };
            tokio::select! {
                r = destination.wait_for_reader(deadline, announce) => r?,
                sig = signals.recv() => return Ok(Err(128 + sig)),
            }
        }
        Ok(Ok(Self {
            destination,
            signals,
            deadline,
        }))
    }
}

/// `record --connect SOCKET`: the daemon's event stream written as a recording, until Ctrl-C,
/// SIGTERM, SIGHUP, the duration, or the daemon stopping.
pub async fn run_connected(socket: &std::path::Path, opts: RecordOptions) -> Result<i32> {
    let Start {
        destination,
        mut signals,
        deadline,
    } = match Start::prepare(&opts).await? {
        Ok(start) => start,
        Err(code) => return Ok(code),
    };
    let mut stream = Connected::new(crate::daemon::client::subscribe(socket).await?);
    let mut recorder = Recorder::new(destination, deadline, &opts);
    live::run(&mut stream, &mut signals, &mut recorder).await?;
    if recorder.closed() {
        return Ok(Exit::BROKEN_PIPE.into());
    }
    if !opts.quiet {
        let notes = match stream.ended {
            Some(Ended::DaemonStopped) => vec!["the daemon stopped".to_string()],
            _ => Vec::new(),
        };
        recorder.report_written(&notes);
    }
    Ok(0)
}
