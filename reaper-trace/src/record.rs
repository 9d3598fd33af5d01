//! `reaper-trace record`: events as JSON Lines, system-wide or for one command's tree.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Instant, sleep_until};

use crate::daemon::client::Ended;
use crate::exit::Exit;
use crate::jsonl::{Destination, JsonlWriter, header};
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
        mut stops,
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
    let mut writer = JsonlWriter::new(destination.open()?);
    let command = (!opts.command.is_empty()).then(|| opts.command.clone());
    writer.header(&header(command, session.started_ts))?;
    for ev in session.zombies_before_trace() {
        writer.event(&ev)?;
    }
    writer.flush()?;

    let mut child = None;
    if let Some((program, args)) = opts.command.split_first() {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).stdin(Stdio::inherit());
        child = Some(
            session
                .spawn_tracked(|| Ok(cmd.spawn()))?
                .map_err(|e| Exit::cannot_run(program, &e))?,
        );
    }

    let mut stopping = Stopping::No;
    let mut code = 0;
    let mut flush_at = Instant::now() + FLUSH_EVERY;
    let mut events = Vec::new();
    loop {
        let stop_at = match stopping {
            Stopping::No => None,
            Stopping::Asked(t) | Stopping::Lingering(t) => Some(t),
        };
        // Inputs first: a signal or the command's exit is seen between two batches, however
        // many records are waiting.
        tokio::select! {
            biased;
            sig = stops.recv() => stopping = stop_requested(&mut child, sig, stopping),
            status = async { child.as_mut().expect("guarded").wait().await }, if child.is_some() => {
                code = exit_code(status.context("waiting for the command")?);
                child = None;
                if stopping == Stopping::No {
                    stopping = Stopping::Lingering(Instant::now() + opts.linger);
                } else {
                    // Asked to stop: no lingering.
                    break;
                }
            }
            _ = sleep_until(stop_at.unwrap_or_else(Instant::now)), if stop_at.is_some() => break,
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() && stopping == Stopping::No => {
                stopping = stop_requested(&mut child, libc::SIGTERM, stopping);
            }
            _ = sleep_until(flush_at) => {}
            r = session.ready() => r?,
        }
        if matches!(stopping, Stopping::Asked(at) if at <= Instant::now()) {
            // Nothing to wait for: the end starts now, not after one more batch.
            break;
        }
        session.step(&mut events);
        for ev in events.drain(..) {
            writer.event(&ev)?;
        }
        if Instant::now() >= flush_at {
            writer.flush()?;
            flush_at = Instant::now() + FLUSH_EVERY;
        }
        report_kernel_messages(&mut session, opts.quiet);
        if writer.closed() && stopping == Stopping::No {
            // `record | head`: the reader has what it wanted. Stop as after the duration.
            stopping = stop_requested(&mut child, libc::SIGTERM, stopping);
        }
        if let Stopping::Lingering(_) = stopping
            && session.model().tree_settled()
        {
            break;
        }
    }
    if let Some(mut c) = child.take() {
        // The grace period ran out: don't leave the command behind.
        let _ = c.start_kill();
        code = c.wait().await.map(exit_code).unwrap_or(1);
    }
    session.finish(&mut events).await;
    for ev in events.drain(..) {
        writer.event(&ev)?;
    }
    report_kernel_messages(&mut session, opts.quiet);
    writer.finish()?;
    if writer.closed() {
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
    Ok(code)
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

/// The kernel programs' rare warnings, one line each on standard error (the recording keeps
/// their effect as `lost` events).
fn report_kernel_messages(session: &mut Session, quiet: bool) {
    for msg in session.kernel_messages() {
        if !quiet {
            eprintln!(
                "reaper-trace: kernel: {}",
                crate::escape::escape_control(&msg)
            );
        }
    }
}

/// Ctrl-C, SIGTERM and SIGHUP: each ends a recording.
struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl StopSignals {
    fn new() -> Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next of them to come, by number.
    async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
        }
    }
}

/// What every recording sets up before it reads anything: its output checked (and, for a
/// FIFO, a reader waited for), the signals that stop it, and its deadline.
struct Start {
    destination: Destination,
    stops: StopSignals,
    /// The duration bounds the whole run: waiting for a FIFO's reader and attaching included.
    deadline: Option<Instant>,
}

impl Start {
    /// `Err(code)`: a signal came while waiting for a FIFO's reader (128 + its number:
    /// nothing was recorded).
    async fn prepare(opts: &RecordOptions) -> Result<Result<Self, i32>> {
        let deadline = opts.duration.map(|d| Instant::now() + d);
        let mut destination = Destination::check(opts.output.as_deref())?;
        let mut stops = StopSignals::new()?;
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
                sig = stops.recv() => return Ok(Err(128 + sig)),
            }
        }
        Ok(Ok(Self {
            destination,
            stops,
            deadline,
        }))
    }
}

/// Ctrl-C, SIGTERM, SIGHUP or the duration: pass the signal on to the command and give it a
/// moment to exit. A second request while lingering ends at once.
fn stop_requested(
    child: &mut Option<tokio::process::Child>,
    sig: i32,
    stopping: Stopping,
) -> Stopping {
    match (child.as_ref().and_then(|c| c.id()), stopping) {
        (Some(pid), Stopping::No) => {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid as i32, sig) };
            Stopping::Asked(Instant::now() + COMMAND_STOP_GRACE)
        }
        (Some(_), asked @ Stopping::Asked(_)) => asked,
        _ => Stopping::Asked(Instant::now()),
    }
}

/// `record --connect SOCKET`: the daemon's event stream written as a recording, until Ctrl-C,
/// SIGTERM, SIGHUP, the duration, or the daemon stopping.
pub async fn run_connected(socket: &std::path::Path, opts: RecordOptions) -> Result<i32> {
    let Start {
        destination,
        mut stops,
        deadline,
    } = match Start::prepare(&opts).await? {
        Ok(start) => start,
        Err(code) => return Ok(code),
    };
    let mut stream = crate::daemon::client::subscribe(socket).await?;
    let mut writer = JsonlWriter::new(destination.open()?);
    writer.header(&stream.header)?;
    let mut flush_at = Instant::now() + FLUSH_EVERY;
    let mut ended_by_daemon = false;
    loop {
        tokio::select! {
            biased;
            _ = stops.recv() => break,
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => break,
            _ = sleep_until(flush_at) => {
                writer.flush()?;
                flush_at = Instant::now() + FLUSH_EVERY;
            }
            next = stream.next() => match next {
                Ok(ev) => writer.event(&ev)?,
                Err(Ended::DaemonStopped) => {
                    ended_by_daemon = true;
                    break;
                }
                Err(why @ Ended::Unreadable(_)) => {
                    // What came before is whole in the file.
                    writer.finish()?;
                    anyhow::bail!("{}: {why}", socket.display())
                }
            },
        }
    }
    writer.finish()?;
    if !opts.quiet {
        eprintln!(
            "reaper-trace: {} events written to {}{}",
            writer.events,
            crate::escape::escape_control(&writer.describe()),
            if ended_by_daemon {
                " (the daemon stopped)"
            } else {
                ""
            }
        );
    }
    Ok(0)
}
