//! Signal sets, the list of signals we forward, and synchronous waiting.
//!
//! reaper-init never installs signal handlers. Instead it blocks every signal
//! it cares about and collects them one at a time with `sigtimedwait`. That
//! keeps all logic in ordinary straight-line code (no async-signal-safety
//! puzzles) and, importantly for PID 1, makes the kernel queue the signals:
//! a PID 1 silently drops signals whose disposition is SIG_DFL, but a
//! *blocked* signal is always queued.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use libc::c_int;

/// The classic signals that are forwarded to the child, with their names for logging.
///
/// Not included on purpose:
/// * SIGKILL / SIGSTOP: cannot be caught or blocked anyway.
/// * SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT: fault signals that the
///   kernel raises synchronously for *our own* misbehaviour; they must keep
///   their default action (die) rather than be passed on to the child.
/// * SIGCHLD: it is the reaping trigger, consumed by us.
/// * SIGXCPU, SIGXFSZ, SIGSTKFLT: about our own resource use, not the child's.
const FORWARDED: &[(c_int, &str)] = &[
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGIO, "SIGIO"),
    (libc::SIGPWR, "SIGPWR"),
    (libc::SIGSYS, "SIGSYS"),
];

/// Every signal number that is forwarded to the child: the classic ones above
/// plus all realtime signals. `SIGRTMIN()` is a function because the C library
/// reserves the first few realtime signals for its own threading internals;
/// we must neither block nor forward those.
pub fn forwarded() -> Vec<c_int> {
    FORWARDED
        .iter()
        .map(|&(sig, _)| sig)
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
        .collect()
}

/// Human-readable signal name for log messages ("SIGTERM", "SIGRTMIN+3", "signal 99").
pub fn name(sig: c_int) -> String {
    if let Some(&(_, name)) = FORWARDED.iter().find(|&&(s, _)| s == sig) {
        return name.to_string();
    }
    let (rtmin, rtmax) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    match sig {
        libc::SIGCHLD => "SIGCHLD".to_string(),
        s if s == rtmin => "SIGRTMIN".to_string(),
        s if s == rtmax => "SIGRTMAX".to_string(),
        s if s > rtmin && s < rtmax => format!("SIGRTMIN+{}", s - rtmin),
        s => format!("signal {s}"),
    }
}

/// Job-control stop signals: when not PID 1 we mimic being stopped by them (see main.rs).
pub fn is_job_control_stop(sig: c_int) -> bool {
    matches!(sig, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU)
}

/// A `sigset_t` with a safe interface.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    pub fn empty() -> Self {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset fully initialises the set it is given; it cannot
        // fail for a valid pointer.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            SigSet(set.assume_init())
        }
    }

    pub fn from_signals(signals: &[c_int]) -> io::Result<Self> {
        let mut set = Self::empty();
        for &sig in signals {
            set.add(sig)?;
        }
        Ok(set)
    }

    pub fn add(&mut self, sig: c_int) -> io::Result<()> {
        // SAFETY: self.0 is an initialised sigset_t.
        if unsafe { libc::sigaddset(&mut self.0, sig) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn as_ptr(&self) -> *const libc::sigset_t {
        &self.0
    }
}

/// Adds `set` to the blocked-signal mask and returns the previous mask, which
/// the child restores before exec so the command starts with the mask we got.
pub fn block(set: &SigSet) -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    // SAFETY: both pointers refer to valid sigset_t values. We are single-threaded,
    // so the process mask and the thread mask are the same thing.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, set.as_ptr(), &mut old.0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// Waits up to `timeout` for one signal of `set` (which must be blocked).
///
/// Returns `Ok(Some(signo))` for a signal, `Ok(None)` on timeout or when a
/// signal outside the set (e.g. SIGCONT after a stop) interrupted the wait.
pub fn wait(set: &SigSet, timeout: Duration) -> io::Result<Option<c_int>> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: valid set and timespec pointers; a null siginfo pointer is allowed.
    let sig = unsafe { libc::sigtimedwait(set.as_ptr(), std::ptr::null_mut(), &ts) };
    if sig >= 0 {
        return Ok(Some(sig));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
        _ => Err(err),
    }
}

/// Puts every signal disposition back to SIG_DFL, then restores `mask`.
///
/// Runs in the forked child just before exec, so it may only make
/// async-signal-safe calls (no allocation). Handlers would be reset by exec
/// anyway, but *ignored* dispositions survive exec: the Rust runtime ignores
/// SIGPIPE, and whoever started us may have ignored others (nohup, shells
/// ignoring SIGINT/SIGQUIT for background jobs...). The command should start
/// as if exec'd by a plain init, with every disposition at its default.
///
/// # Safety
/// Must only be called in a single-threaded process (i.e. right after fork).
pub unsafe fn reset_for_exec(mask: &SigSet) {
    // SAFETY: signal() and sigprocmask() are async-signal-safe. Errors are
    // ignored on purpose: they only occur for SIGKILL/SIGSTOP (skipped) and
    // for the C library's reserved realtime signals, which it refuses to let
    // anyone touch; there is no one to report anything to here either.
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        libc::sigprocmask(libc::SIG_SETMASK, mask.as_ptr(), std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_list_is_sane() {
        let sigs = forwarded();
        for never in [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGABRT,
            libc::SIGCHLD,
        ] {
            assert!(
                !sigs.contains(&never),
                "{} must not be forwarded",
                name(never)
            );
        }
        for always in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGWINCH] {
            assert!(sigs.contains(&always));
        }
        assert!(sigs.contains(&libc::SIGRTMIN()) && sigs.contains(&libc::SIGRTMAX()));
        // All of them can go into a sigset (glibc rejects its reserved ones).
        assert!(SigSet::from_signals(&sigs).is_ok());
    }

    #[test]
    fn names() {
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        assert_eq!(name(libc::SIGCHLD), "SIGCHLD");
        assert_eq!(name(libc::SIGRTMIN()), "SIGRTMIN");
        assert_eq!(name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
        assert_eq!(name(libc::SIGRTMAX()), "SIGRTMAX");
    }
}
