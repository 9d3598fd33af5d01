//! Case 3: a parent ignoring SIGCHLD.

use super::*;

/// Case 3: A parent that ignores SIGCHLD: its children are released at once (autoreaped).
///
/// W forks P (in `ns` mode W unshares its pid namespace first and forks I, the new namespace's
/// PID 1, which forks P). P ignores SIGCHLD, forks 5 children that record themselves and exit
/// 3; P's `wait4(-1)` returns -1/ECHILD once all of them are gone (never their pids), and P
/// records that they are gone from `/proc`.
pub(crate) fn sigchld_ignored(ns: bool) -> i32 {
    record_me("top");
    let parent = || {
        record_me("ignoring parent");
        // SAFETY: setting a disposition.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let (r, w) = pipe_cloexec();
        let mut kids = Vec::new();
        for _ in 0..5 {
            kids.push(fork_child(|| {
                close(r);
                let o = record_me("autoreaped child");
                write_u32(w, o.tid);
                3
            }));
        }
        close(w);
        let mut global = Vec::new();
        while let Some(g) = read_u32(r) {
            global.push(g);
        }
        let (ret, _, e) = wait_fact("ignoring parent wait", -1, 0, true);
        if ret != -1 || e != libc::ECHILD {
            die("wait4 did not fail with ECHILD under SIG_IGN");
        }
        for g in global {
            record_obs("autoreaped child after wait", g as i32);
        }
        0
    };
    if ns {
        // SAFETY: unshare for this process's future children.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            die("unshare(CLONE_NEWPID)");
        }
        let init = fork_child(move || {
            record_me("ns init");
            let p = fork_child(parent);
            wait_fact("ns init waits parent", p, 0, true);
            0
        });
        wait_fact("top waits ns init", init, 0, true);
    } else {
        let p = fork_child(parent);
        wait_fact("top waits parent", p, 0, true);
    }
    0
}
