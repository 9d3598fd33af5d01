//! Process operations.

use super::*;

/// Forks; the child arms its alarm, runs `f` and leaves with `_exit(f())`. `f` uses
/// async-signal-safe operations, or allocation in single-threaded processes.
pub(crate) fn fork_child(f: impl FnOnce() -> i32) -> i32 {
    sys::fork_then(|| {
        // SAFETY: arming our own alarm.
        unsafe { libc::alarm(ALARM_S) };
        f()
    })
    .unwrap_or_else(|_| die("fork"))
}

/// `wait4(arg, &status, options)`, retried on EINTR; (ret, status, errno).
pub(crate) fn raw_wait4(arg: i32, options: i32) -> (i32, i32, i32) {
    let w = wait4(arg, options);
    (w.ret, w.status, w.errno)
}

pub(crate) fn emit_wait(label: &str, waiter: &Obs, arg: i32, r: (i32, i32, i32), reaped: bool) {
    emit_wait_by("wait4", label, waiter, arg, r, reaped);
}

/// A wait fact; `status` is a wait status (as wait4 fills it in) whatever `call` was.
pub(crate) fn emit_wait_by(
    call: &str,
    label: &str,
    waiter: &Obs,
    arg: i32,
    (ret, status, e): (i32, i32, i32),
    reaped: bool,
) {
    fact!(
        "{{\"kind\":\"wait\",\"label\":\"{label}\",\"call\":\"{call}\",\"waiter\":{},\"waiter_tid\":{},\"waiter_level\":{},\"waiter_pidns\":{},\"arg\":{arg},\"ret\":{ret},\"errno\":{e},\"status\":{status},\"reaped\":{}}}",
        waiter.tgid,
        waiter.tid,
        waiter.n_nspid.saturating_sub(1),
        waiter.pidns,
        reaped && ret > 0 && (libc::WIFEXITED(status) || libc::WIFSIGNALED(status)),
    );
}

/// Waits as `wait4(arg, .., options)` and records the result.
pub(crate) fn wait_fact(label: &str, arg: i32, options: i32, reaped: bool) -> (i32, i32, i32) {
    let waiter = me();
    let r = raw_wait4(arg, options);
    emit_wait(label, &waiter, arg, r, reaped);
    r
}

/// Waits for every child until ECHILD, recording each; returns the statuses by pid.
pub(crate) fn reap_all(label: &str) -> Vec<(i32, i32)> {
    let waiter = me();
    let mut got = Vec::new();
    loop {
        let r = raw_wait4(-1, libc::__WALL);
        emit_wait(label, &waiter, -1, r, true);
        if r.0 <= 0 {
            break;
        }
        got.push((r.0, r.1));
    }
    got
}

pub(crate) fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: fds is ours.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        die("pipe");
    }
    (fds[0], fds[1])
}

pub(crate) fn pipe_cloexec() -> (i32, i32) {
    sys::pipe().unwrap_or_else(|_| die("pipe2"))
}

pub(crate) fn write_u32(fd: i32, v: u32) {
    write_all(fd, &v.to_ne_bytes());
}

pub(crate) fn set_subreaper() {
    sys::set_subreaper().unwrap_or_else(|_| die("PR_SET_CHILD_SUBREAPER"));
}

/// Polls `/proc/PID` until it is gone (reaped) or `timeout`; records the last sighting
/// (`label` + " seen", e.g. State Z) and then `label` + " gone". True if it went away.
pub(crate) fn wait_gone(label: &str, pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut last: Option<Obs> = None;
    loop {
        match observe(pid) {
            None => {
                if let Some(o) = last {
                    emit_obs(&format!("{label} seen"), &o);
                }
                fact!(
                    "{{\"kind\":\"obs\",\"label\":\"{label} gone\",\"tid\":{pid},\"gone\":true}}"
                );
                return true;
            }
            Some(o) => last = Some(o),
        }
        if Instant::now() >= deadline {
            if let Some(o) = last {
                emit_obs(&format!("{label} seen"), &o);
            }
            return false;
        }
        sleep_ms(2);
    }
}
