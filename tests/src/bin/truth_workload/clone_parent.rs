//! Case 4: CLONE_PARENT.

use super::*;

/// Case 4: CLONE_PARENT: A forks B; B clones C with CLONE_PARENT, so C's parent is A, which reaps
/// it. C records itself (PPid A); B writes a note naming the caller and the child.
pub(crate) fn clone_parent() -> i32 {
    record_me("top");
    let a = fork_child(|| {
        record_me("A");
        fork_child(|| {
            let b = record_me("B");
            // SAFETY: a raw clone without CLONE_VM behaves like fork (the child runs on a
            // copy of this stack); the child only records itself and leaves with _exit.
            let c = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            if c < 0 {
                die("clone(CLONE_PARENT)");
            }
            if c == 0 {
                // SAFETY: arming our alarm; leaving the child.
                unsafe {
                    libc::alarm(ALARM_S);
                    record_me("C");
                    libc::_exit(9)
                }
            }
            fact!(
                "{{\"kind\":\"note\",\"what\":\"clone_parent\",\"caller\":{},\"child\":{c}}}",
                b.tgid
            );
            0
        });
        // B and C are both A's children.
        wait_fact("A waits", -1, 0, true);
        wait_fact("A waits", -1, 0, true);
        0
    });
    wait_fact("top waits A", a, 0, true);
    0
}
