//! `reaper-trace record`: events as JSON Lines, system-wide or for one command's tree.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, sleep_until};

use crate::jsonl::{JsonlWriter, Output, header};
use crate::model::Scope;
use crate::session::{HOUSEKEEPING_EVERY, Session, SessionOptions};

/// After the command exits, keep reading this long: the kernel frees tasks 5-20 ms after
/// their reap, and the last records may still be in the ring buffer.
const AFTER_COMMAND: Duration = Duration::from_millis(300);
/// How long records may gather in the ring buffer before a drain (at thousands of events per
/// second this divides the recorder's CPU use several times; the 4 MiB ring holds seconds).
const DRAIN_BATCH: Duration = Duration::from_millis(20);
/// After Ctrl-C or SIGTERM with a command running: how long it has to exit.
const COMMAND_STOP_GRACE: Duration = Duration::from_secs(2);

pub struct RecordOptions {
    pub output: Option<PathBuf>,
    pub duration: Option<Duration>,
    pub command: Vec<String>,
    pub ring_bytes: u32,
    pub quiet: bool,
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Runs the recording; returns the process exit code (the command's, when there is one).
pub async fn run(opts: RecordOptions) -> Result<i32> {
    // Everything a user can get wrong is checked before anything is attached, and privileges
    // before the output is created: a failed run leaves no empty (or truncated) recording.
    crate::preflight::check_privileges()?;
    if let Some(program) = opts.command.first() {
        check_command(program)?;
    }
    let output = Output::open(opts.output.as_deref())?;
    let scope = if opts.command.is_empty() {
        Scope::All
    } else {
        Scope::Tree(None)
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;

    let mut session = Session::start(&SessionOptions {
        scope,
        ring_bytes: opts.ring_bytes,
    })?;
    let mut writer = JsonlWriter::new(output);
    let command = (!opts.command.is_empty()).then(|| opts.command.clone());
    writer.header(&header(command, session.started_ts))?;
    for ev in session.zombies_before_trace() {
        writer.event(&ev)?;
    }
    writer.flush()?;

    let mut child = None;
    if let Some((program, args)) = opts.command.split_first() {
        let spawned = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {program}: check the command and its PATH"))?;
        if let Some(pid) = spawned.id() {
            session.model.set_root(pid);
        }
        child = Some(spawned);
    }

    let deadline = opts.duration.map(|d| Instant::now() + d);
    let mut stop_at: Option<Instant> = None;
    let mut code = 0;
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    let mut events = Vec::new();
    loop {
        tokio::select! {
            r = session.readable() => {
                r?;
                // Let records gather: one drain per batch, not one wake-up per record.
                tokio::time::sleep(DRAIN_BATCH).await;
            }
            _ = tick.tick() => session.housekeeping(&mut events),
            _ = sigint.recv() => stop_at = Some(stop_requested(&mut child, libc::SIGINT)),
            _ = sigterm.recv() => stop_at = Some(stop_requested(&mut child, libc::SIGTERM)),
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() && stop_at.is_none() => {
                stop_at = Some(stop_requested(&mut child, libc::SIGTERM));
            }
            status = async { child.as_mut().expect("guarded").wait().await }, if child.is_some() => {
                code = exit_code(status.context("waiting for the command")?);
                child = None;
                let drain_until = Instant::now() + AFTER_COMMAND;
                stop_at = Some(stop_at.map_or(drain_until, |t| t.min(drain_until)));
            }
            _ = sleep_until(stop_at.unwrap_or_else(Instant::now)), if stop_at.is_some() => break,
        }
        session.poll(&mut events);
        for ev in events.drain(..) {
            writer.event(&ev)?;
        }
        report_kernel_messages(&mut session, opts.quiet);
    }
    if let Some(mut c) = child.take() {
        // The grace period ran out: don't leave the command behind.
        let _ = c.start_kill();
        code = c.wait().await.map(exit_code).unwrap_or(1);
    }
    session.finish(&mut events);
    for ev in events.drain(..) {
        writer.event(&ev)?;
    }
    report_kernel_messages(&mut session, opts.quiet);
    writer.finish()?;
    if !opts.quiet {
        eprintln!(
            "reaper-trace: {} events written to {}{}",
            writer.events,
            writer.describe(),
            if session.bad_records > 0 {
                format!(" ({} undecodable records)", session.bad_records)
            } else {
                String::new()
            }
        );
    }
    Ok(code)
}

/// Fails, as spawning it would, when `program` names no executable file (directly when it has
/// a `/`, else in `PATH`): a mistyped command is reported before anything is attached.
fn check_command(program: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        runnable(std::path::Path::new(program))
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| runnable(&d.join(program))))
    };
    if !found {
        anyhow::bail!("cannot run {program}: check the command and its PATH: no such executable");
    }
    Ok(())
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

/// Ctrl-C or SIGTERM: pass it on to the command and give it a moment to exit.
fn stop_requested(child: &mut Option<tokio::process::Child>, sig: i32) -> Instant {
    match child.as_ref().and_then(|c| c.id()) {
        Some(pid) => {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid as i32, sig) };
            Instant::now() + COMMAND_STOP_GRACE
        }
        None => Instant::now(),
    }
}
