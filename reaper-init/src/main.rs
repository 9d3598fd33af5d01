//! reaper-init: a tiny reaping init, in the spirit of tini, dumb-init and catatonit.
//!
//! It runs one command as its child and then does the two jobs that every
//! PID 1 (or child subreaper) has to do but ordinary programs don't:
//!
//! * **Reap zombies.** Orphaned processes are re-parented to PID 1 (or to the
//!   nearest ancestor that is a child subreaper). If nobody calls `wait` on
//!   them they stay zombies forever, eating pid numbers.
//! * **Forward signals.** The kernel drops signals sent to a PID 1 that has no
//!   handler for them, so `docker stop` (SIGTERM) would do nothing to a
//!   program that doesn't expect to be PID 1. We catch them and pass them on.
//!
//! When the child exits, reaper-init exits with the child's status
//! (128 + N if the child was killed by signal N).
//!
//! Linux only. The main loop is fully synchronous: all interesting signals are
//! blocked and collected with `sigtimedwait`, so there are no signal handlers.

mod args;
mod signals;

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use libc::{c_char, c_int, pid_t};

use crate::args::{Action, ArgError, Options};
use crate::signals::SigSet;

/// Writes one "reaper-init: ..." line to stderr.
///
/// Deliberately not `eprintln!`, which panics when stderr is broken (EPIPE,
/// EIO); an init process must not die because nobody reads its logs.
macro_rules! log {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stderr(), "reaper-init: {}", format_args!($($arg)*));
    }};
}

/// Usage errors (bad flags, no command).
const EXIT_USAGE: i32 = 2;
/// reaper-init itself failed (fork, sigprocmask, prctl...): same convention as env(1), timeout(1).
const EXIT_INTERNAL: i32 = 125;
/// The command exists but could not be executed (like a shell).
const EXIT_NOT_EXECUTABLE: i32 = 126;
/// The command was not found (like a shell).
const EXIT_NOT_FOUND: i32 = 127;

/// Longest sleep in `sigtimedwait` before doing a reaping pass anyway. SIGCHLD
/// is not queued per child, and although every pass reaps *all* exited
/// children, a periodic pass costs nothing and guards against surprises.
const REAP_INTERVAL: Duration = Duration::from_secs(1);

/// Environment variable that enables `--subreaper` when set to "1".
const SUBREAPER_ENV: &str = "REAPER_INIT_SUBREAPER";

fn main() {
    let code = match args::parse(std::env::args_os().skip(1)) {
        Ok(Action::Help) => {
            let _ = io::stdout().write_all(args::USAGE.as_bytes());
            0
        }
        Ok(Action::Version) => {
            let _ = writeln!(io::stdout(), "reaper-init {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Action::Run(opts)) => run(&opts),
        Err(ArgError::NoCommand) => {
            log!("no command given");
            let _ = io::stderr().write_all(args::USAGE.as_bytes());
            EXIT_USAGE
        }
        Err(ArgError::Invalid(msg)) => {
            log!("{msg} (see --help)");
            EXIT_USAGE
        }
    };
    std::process::exit(code);
}

/// Sets everything up, starts the command, supervises it; returns our exit code.
fn run(opts: &Options) -> i32 {
    let want_subreaper =
        opts.subreaper || std::env::var_os(SUBREAPER_ENV).is_some_and(|v| v == "1");
    if want_subreaper && let Err(err) = become_subreaper() {
        log!("cannot become a child subreaper (prctl PR_SET_CHILD_SUBREAPER): {err}");
        return EXIT_INTERNAL;
    }

    let is_pid1 = std::process::id() == 1;
    // Ask the kernel rather than trusting our flag: the attribute survives
    // exec, so a subreaper parent that exec'd us has already set it.
    if !is_pid1 && !is_subreaper() {
        log!(
            "warning: not running as PID 1 and not a child subreaper, so orphaned \
             processes will not be reaped; use --subreaper (or {SUBREAPER_ENV}=1)"
        );
    }

    // If whoever started us set SIGCHLD to SIG_IGN, the kernel would auto-reap
    // our children and we could never learn the command's exit status.
    // SAFETY: resetting a disposition to the default is always valid.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };

    // Block the signals *before* forking, so none can slip through (and, as
    // PID 1, be dropped by the kernel) between fork and the first wait.
    let forwarded = signals::forwarded();
    let wait_set = match SigSet::from_signals(&forwarded).and_then(|mut set| {
        set.add(libc::SIGCHLD)?;
        Ok(set)
    }) {
        Ok(set) => set,
        Err(err) => {
            log!("cannot build the signal set: {err}");
            return EXIT_INTERNAL;
        }
    };
    let original_mask = match signals::block(&wait_set) {
        Ok(mask) => mask,
        Err(err) => {
            log!("cannot block signals (sigprocmask): {err}");
            return EXIT_INTERNAL;
        }
    };

    let child = match spawn(&opts.command, opts.group, &original_mask) {
        Ok(pid) => pid,
        Err(SpawnError::Internal(msg)) => {
            log!("{msg}");
            return EXIT_INTERNAL;
        }
        Err(SpawnError::Exec(err)) => return report_exec_error(&opts.command[0], &err),
    };
    if opts.verbose {
        log!("started pid {child}: {}", opts.command[0].to_string_lossy());
    }

    supervise(child, opts, is_pid1, &wait_set)
}

/// The main loop: forward signals, reap zombies, and return our exit code once
/// the command has exited.
fn supervise(child: pid_t, opts: &Options, is_pid1: bool, wait_set: &SigSet) -> i32 {
    loop {
        match signals::wait(wait_set, REAP_INTERVAL) {
            // SIGCHLD, a timeout or an interruption: all handled by the reaping pass below.
            Ok(Some(libc::SIGCHLD)) | Ok(None) => {}
            Ok(Some(sig)) => forward(sig, child, opts, is_pid1),
            Err(err) => {
                log!("cannot wait for signals (sigtimedwait): {err}");
                return EXIT_INTERNAL;
            }
        }

        if let Some(status) = reap_zombies(child, opts.verbose) {
            // The command is gone. Orphans that died at the same moment may
            // still be zombies: collect them too before we exit (as PID 1 our
            // exit kills the rest of the namespace anyway).
            reap_zombies(child, opts.verbose);
            let code = exit_code(status, &opts.remap_exit);
            if opts.verbose {
                log!(
                    "child pid {child} ended ({}), exiting with code {code}",
                    describe(status)
                );
            }
            return code;
        }
    }
}

/// Passes one signal on to the command (or to its whole process group with --group).
fn forward(sig: c_int, child: pid_t, opts: &Options, is_pid1: bool) {
    let (target, what) = if opts.group {
        (-child, "process group")
    } else {
        (child, "pid")
    };
    if opts.verbose {
        log!("forwarding {} to {what} {child}", signals::name(sig));
    }
    // The child cannot have been reaped yet (we exit right after reaping it),
    // so its pid cannot have been recycled: this never hits a stranger.
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(target, sig) } == -1 {
        let err = io::Error::last_os_error();
        // ESRCH just means the target is already gone; only noteworthy when verbose.
        if opts.verbose || err.raw_os_error() != Some(libc::ESRCH) {
            log!(
                "cannot forward {} to {what} {child}: {err}",
                signals::name(sig)
            );
        }
    }
    // Job control: the sender (typically a shell after Ctrl-Z) expects us to
    // stop, and waits for that before giving the prompt back. Since these
    // signals are blocked, we stop ourselves explicitly after forwarding. A
    // PID 1 has no job-controlling parent and must keep reaping: never stop.
    if !is_pid1 && signals::is_job_control_stop(sig) {
        // SAFETY: raise has no memory-safety preconditions. We continue on SIGCONT.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}

/// Reaps every child that has exited, without blocking, until none is left.
///
/// Looping until waitpid says "nothing more" matters: SIGCHLD does not queue,
/// so one signal may stand for hundreds of exited orphans. Returns the raw
/// wait status of `main_child` if it was among the reaped.
fn reap_zombies(main_child: pid_t, verbose: bool) -> Option<c_int> {
    let mut main_status = None;
    loop {
        let mut status: c_int = 0;
        // __WALL: also reap children that were created with clone() and an
        // unusual exit signal; an init must not leave anything behind.
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
        match pid {
            // Children exist but none has exited (yet).
            0 => break,
            -1 => {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // No children at all: nothing to reap.
                    Some(libc::ECHILD) => break,
                    _ => {
                        log!("waitpid failed: {err}");
                        break;
                    }
                }
            }
            pid => {
                if verbose {
                    log!("reaped pid {pid} ({})", describe(status));
                }
                if pid == main_child {
                    main_status = Some(status);
                }
            }
        }
    }
    main_status
}

/// "exit 3" / "signal 9", for log lines.
fn describe(status: c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status:#x}")
    }
}

/// Our exit code for the command's wait status: its exit code, or 128 + signal
/// when it was killed (like a shell). We never re-raise the signal on
/// ourselves: as PID 1 it would be ignored, and a plain number is what
/// container runtimes and CI systems handle best. Codes listed with
/// --remap-exit become 0.
fn exit_code(status: c_int, remap_exit: &[u8]) -> i32 {
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        EXIT_INTERNAL
    };
    if u8::try_from(code).is_ok_and(|c| remap_exit.contains(&c)) {
        0
    } else {
        code
    }
}

fn become_subreaper() -> io::Result<()> {
    let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
    // SAFETY: PR_SET_CHILD_SUBREAPER takes plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, on, unused, unused, unused) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn is_subreaper() -> bool {
    let mut flag: c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer.
    let rc = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut flag as *mut c_int) };
    rc == 0 && flag != 0
}

enum SpawnError {
    /// fork/pipe failed: reaper-init's own problem.
    Internal(String),
    /// execvp failed in the child; this is its errno.
    Exec(io::Error),
}

/// Forks and execs the command, returning its pid once exec has succeeded.
///
/// An exec failure is reported back through a close-on-exec pipe: a
/// successful exec closes it (the parent reads EOF), a failed one writes
/// errno into it first. That way the parent can print a proper message and
/// pick 126 vs 127, and it knows the command really started.
fn spawn(command: &[OsString], group: bool, original_mask: &SigSet) -> Result<pid_t, SpawnError> {
    // Build everything the child needs before forking: between fork and exec
    // only async-signal-safe calls are allowed, so no allocation there.
    let c_args = command
        .iter()
        .map(|arg| CString::new(arg.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| SpawnError::Internal("command argument contains a NUL byte".into()))?;
    let mut argv: Vec<*const c_char> = c_args.iter().map(|arg| arg.as_ptr()).collect();
    argv.push(std::ptr::null());

    let mut fds: [c_int; 2] = [-1, -1];
    // SAFETY: fds has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        let err = io::Error::last_os_error();
        return Err(SpawnError::Internal(format!("cannot create a pipe: {err}")));
    }
    // SAFETY: pipe2 just returned these two fresh descriptors; we own them.
    let (error_reader, error_writer) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // SAFETY: we are single-threaded, so the child is a faithful copy and may
    // keep running Rust code, restricted to async-signal-safe calls.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        let err = io::Error::last_os_error();
        return Err(SpawnError::Internal(format!("cannot fork: {err}")));
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked, single-threaded child.
        unsafe { exec_child(&argv, group, original_mask, error_writer.as_raw_fd()) }
    }

    // Parent. Close our copy of the write end, or we would never see EOF.
    drop(error_writer);
    if group {
        // Also set the child's group from this side: whichever of us runs
        // first wins, so a signal forwarded to the group right after fork
        // cannot miss. Errors are expected (EACCES once the child has exec'd)
        // and harmless, the child does the same call itself.
        // SAFETY: setpgid has no memory-safety preconditions.
        unsafe { libc::setpgid(pid, pid) };
    }

    let mut report = Vec::new();
    let read_result = File::from(error_reader).read_to_end(&mut report);
    match (read_result, <[u8; 4]>::try_from(report.as_slice())) {
        // EOF without data: exec succeeded.
        (Ok(_), _) if report.is_empty() => Ok(pid),
        (Ok(_), Ok(errno)) => {
            // The child has _exit'ed (or is about to); collect it.
            wait_for(pid);
            Err(SpawnError::Exec(io::Error::from_raw_os_error(
                i32::from_ne_bytes(errno),
            )))
        }
        (Ok(_), Err(_)) => Err(SpawnError::Internal(
            "garbled exec status from the child".into(),
        )),
        // Cannot tell whether the command is running: assume it is and supervise it.
        (Err(err), _) => {
            log!("warning: cannot read the exec status of pid {pid}: {err}");
            Ok(pid)
        }
    }
}

/// The forked child: prepare the process state the command should start with, then exec.
///
/// # Safety
/// Must be called only in a freshly forked child of a single-threaded process.
/// Only async-signal-safe functions are used; nothing here allocates.
unsafe fn exec_child(
    argv: &[*const c_char],
    group: bool,
    original_mask: &SigSet,
    error_fd: RawFd,
) -> ! {
    // SAFETY: all calls are async-signal-safe libc functions with valid
    // arguments; argv is NULL-terminated and its strings outlive the exec.
    unsafe {
        if group {
            // Own process group, so forwarding to -pgid reaches the command and
            // everything it spawns (unless they create their own groups). A
            // freshly forked child is never a session leader, so this cannot fail.
            libc::setpgid(0, 0);
            // If we have a controlling terminal, give its foreground to the new
            // group, so that terminal reads and Ctrl-C/Ctrl-Z reach the command.
            // SIGTTOU, which a background group calling tcsetpgrp would get,
            // is still blocked here. No terminal (ENXIO): nothing to do.
            let tty = libc::open(
                c"/dev/tty".as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            );
            if tty >= 0 {
                libc::tcsetpgrp(tty, libc::getpid());
                libc::close(tty);
            }
        }

        signals::reset_for_exec(original_mask);
        libc::execvp(argv[0], argv.as_ptr());

        // Only reached when exec failed: tell the parent why, then give up.
        let errno = *libc::__errno_location();
        let bytes = errno.to_ne_bytes();
        libc::write(error_fd, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(EXIT_NOT_FOUND)
    }
}

/// Blocking wait for one specific child (used only when its exec failed).
fn wait_for(pid: pid_t) {
    loop {
        let mut status: c_int = 0;
        // SAFETY: status is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc != -1 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Prints why the command could not be started and picks the shell's exit code:
/// 127 when it does not exist, 126 when it exists but cannot be executed.
fn report_exec_error(command: &OsString, err: &io::Error) -> i32 {
    let name = command.to_string_lossy();
    if err.raw_os_error() == Some(libc::ENOENT) {
        if command.as_bytes().contains(&b'/') {
            log!("cannot execute '{name}': no such file or directory");
        } else {
            log!("cannot execute '{name}': command not found");
        }
        EXIT_NOT_FOUND
    } else {
        log!("cannot execute '{name}': {err}");
        EXIT_NOT_EXECUTABLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Wait statuses as the kernel encodes them.
    fn exited(code: c_int) -> c_int {
        code << 8
    }
    fn killed(sig: c_int) -> c_int {
        sig
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(exited(0), &[]), 0);
        assert_eq!(exit_code(exited(255), &[]), 255);
        assert_eq!(exit_code(killed(libc::SIGTERM), &[]), 143);
        assert_eq!(exit_code(killed(libc::SIGKILL), &[]), 137);
        assert_eq!(exit_code(exited(3), &[3]), 0);
        assert_eq!(exit_code(exited(4), &[3]), 4);
        assert_eq!(exit_code(killed(libc::SIGTERM), &[143]), 0);
    }

    #[test]
    fn descriptions() {
        assert_eq!(describe(exited(7)), "exit 7");
        assert_eq!(describe(killed(9)), "signal 9");
    }
}
