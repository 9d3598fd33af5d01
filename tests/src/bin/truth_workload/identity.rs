//! Case 8: one identity for tasks that existed before tracing.

use super::*;

/// Case 8 (inside `host`): W forks X, X forks O and exits: O is adopted by the subreaper `host`
/// above `record`, a process that existed before tracing began, and reaped by it. O records
/// its parent once adopted; W waits until O is gone from `/proc` before it exits.
pub(crate) fn identity() -> i32 {
    record_me("command");
    let (r, w) = pipe_cloexec();
    let x = fork_child(|| {
        close(r);
        let x = record_me("father");
        fork_child(|| {
            record_me("orphan before");
            write_u32(w, gettid_global());
            let deadline = Instant::now() + Duration::from_secs(10);
            // SAFETY: getppid has no preconditions.
            while unsafe { libc::getppid() } as u32 == x.tgid && Instant::now() < deadline {
                sleep_ms(2);
            }
            record_me("orphan adopted");
            0 // closes `w` on exit
        });
        close(w);
        0
    });
    close(w);
    wait_fact("command waits father", x, 0, true);
    let o = read_u32(r).unwrap_or_else(|| die("no orphan"));
    read_until_eof(r); // O has exited (it may not be reaped yet)
    if !wait_gone("orphan", o as i32, Duration::from_secs(10)) {
        die("the orphan was not reaped by the host");
    }
    0
}

/// `host FACTS -- COMMAND...`: a subreaper that records itself, runs COMMAND and reaps every
/// process it is handed until none is left; exits with COMMAND's status.
pub(crate) fn host(args: &[String]) -> i32 {
    let command = args
        .iter()
        .position(|a| a == "--")
        .map(|i| &args[i + 1..])
        .unwrap_or_else(|| die("usage: host FACTS -- COMMAND..."));
    set_subreaper();
    record_me("host");
    let argv: Vec<CString> = command
        .iter()
        .map(|a| CString::new(a.as_str()).expect("no NUL"))
        .collect();
    let cmd = fork_child(|| {
        let mut p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        p.push(std::ptr::null());
        // SAFETY: valid argv; the alarm set by fork_child is cleared for the command.
        unsafe {
            libc::alarm(0);
            libc::execvp(p[0], p.as_ptr());
        }
        die("execvp")
    });
    record_obs("recorder", cmd);
    // Polls (WNOHANG) rather than blocking in wait4: a wait entered before tracing began
    // would be seen returning without its arguments, which is another matter than this case's.
    let waiter = me();
    let mut code = 1;
    loop {
        let r = raw_wait4(-1, libc::__WALL | libc::WNOHANG);
        if r.0 == 0 {
            sleep_ms(2);
            continue;
        }
        emit_wait("host wait", &waiter, -1, r, true);
        if r.0 < 0 {
            break;
        }
        let (pid, status) = (r.0, r.1);
        if pid == cmd {
            code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
        }
    }
    code
}
