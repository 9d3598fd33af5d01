//! Case 1: a ptracer that is not the parent.

use super::*;

/// Case 1: A ptracer that is not the parent collects the exit of a tracee; the parent reaps it.
///
/// W (the parent P) forks C (blocked on a pipe) and T. T seizes C and reports it; W lets C exit
/// with code 7. T's `waitpid(C)` returns C (status 7) without reaping it: T then records C in
/// `/proc` (still a zombie, PPid W) and tells W, which records C again and reaps it.
pub(crate) fn ptrace_case() -> i32 {
    let w = record_me("parent");
    let (go_r, go_w) = pipe_cloexec();
    let (seized_r, seized_w) = pipe_cloexec();
    let (done_r, done_w) = pipe_cloexec();
    let c = fork_child(|| {
        close(go_w);
        record_me("tracee");
        read_until_eof(go_r);
        7
    });
    let t = fork_child(|| {
        close(go_w);
        record_me("tracer");
        // SAFETY: PTRACE_SEIZE of a process we have the right to trace (root).
        let rc = unsafe {
            libc::ptrace(
                libc::PTRACE_SEIZE,
                c,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        if rc != 0 {
            die("PTRACE_SEIZE");
        }
        write_u32(seized_w, 1);
        // The tracee's exit is reported to its tracer first: wait returns it, and since the
        // tracer is not its parent, the kernel hands it back to the parent as a zombie.
        let r = wait_fact("tracer wait", c, libc::__WALL, false);
        if r.0 != c {
            die("the tracer's wait did not return the tracee");
        }
        record_obs("tracee after tracer wait", c);
        write_u32(done_w, 1);
        0
    });
    close(seized_w);
    close(done_w);
    if read_u32(seized_r) != Some(1) {
        die("the tracer did not seize the tracee");
    }
    close(go_w); // C exits.
    if read_u32(done_r) != Some(1) {
        die("the tracer did not report");
    }
    record_obs("tracee before parent wait", c);
    let r = wait_fact("parent wait", c, 0, true);
    if r.0 != c {
        die("the parent's wait did not return the tracee");
    }
    wait_fact("parent waits tracer", t, 0, true);
    fact!(
        "{{\"kind\":\"note\",\"what\":\"ptrace\",\"parent\":{},\"tracee\":{c},\"tracer\":{t}}}",
        w.tgid
    );
    0
}
