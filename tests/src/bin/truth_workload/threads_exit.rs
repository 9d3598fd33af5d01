//! Case 6: threads of a father exiting at once.

use super::*;

/// Case 6: A process of 8 threads; a non-leader thread forks a child; then the whole group exits
/// at once (exit_group). The child is handed from thread to thread and finally to W, the
/// subreaper. It records its parent once its parent process is gone. Forty such processes run
/// at the same time (the races are the point), three times over, each writing a `threads_exit`
/// note.
pub(crate) fn threads_exit() -> i32 {
    const BATCHES: usize = 3;
    const FATHERS: usize = 40;
    record_me("subreaper");
    set_subreaper();
    for _ in 0..BATCHES {
        for _ in 0..FATHERS {
            fork_child(doomed_father);
        }
        reap_all("subreaper wait");
    }
    0
}

pub(crate) fn doomed_father() -> i32 {
    let f = record_me("father");
    let (r, w) = pipe_cloexec();
    let (k_r, k_w) = pipe_cloexec();
    let (block_r, _block_w) = pipe_cloexec();
    for i in 0..7 {
        std::thread::spawn(move || {
            if i == 3 {
                record_me("forking thread");
                let father = f.tgid;
                let (ready_r, ready_w) = pipe_cloexec();
                // SAFETY: the child only reads /proc, formats on the stack and _exits.
                let k = unsafe { libc::fork() };
                if k < 0 {
                    die("fork");
                }
                if k == 0 {
                    // SAFETY: as above.
                    unsafe {
                        libc::alarm(ALARM_S);
                        record_me("orphan before");
                        write_u32(ready_w, 1);
                        sleep_ms(500);
                        let deadline = Instant::now() + Duration::from_secs(10);
                        while libc::getppid() as u32 == father && Instant::now() < deadline {
                            sleep_ms(5);
                        }
                        record_me("orphan after");
                        libc::_exit(0)
                    }
                }
                close(ready_w);
                if read_u32(ready_r) != Some(1) {
                    die("the child did not start");
                }
                write_u32(k_w, k as u32);
            }
            write_u32(w, 1);
            // Blocks until exit_group: the write end stays open in the process until then.
            read_until_eof(block_r);
        });
    }
    for _ in 0..7 {
        if read_u32(r) != Some(1) {
            die("a thread did not start");
        }
    }
    let k = read_u32(k_r).unwrap_or_else(|| die("no child forked"));
    fact!(
        "{{\"kind\":\"note\",\"what\":\"threads_exit\",\"father\":{},\"orphan\":{k}}}",
        f.tgid
    );
    // All 8 threads die together.
    // SAFETY: leaving the whole process.
    unsafe { libc::syscall(libc::SYS_exit_group, 0) };
    unreachable!()
}
