//! Case 5: waits racing the final switch.

use super::*;

/// Case 5: Many children that exit at once, each waited for at once, with two CPU-bound threads
/// competing, so the wait often returns before the child's final context switch.
pub(crate) fn wait_race() -> i32 {
    let w = record_me("parent");
    const N: usize = 1000;
    static STOP: AtomicBool = AtomicBool::new(false);
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                // Nice 19: they fill idle CPU time without starving the forks and waits.
                // SAFETY: setting this thread's own priority.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as u32, 19) };
                let mut x: u64 = 0;
                while !STOP.load(Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(N);
    for i in 0..N {
        // SAFETY: the child only calls _exit (this process is multi-threaded).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            die("fork");
        }
        if pid == 0 {
            // SAFETY: leaving the child.
            unsafe { libc::_exit((i % 100) as i32) };
        }
        let r = raw_wait4(pid, 0);
        if r.0 != pid {
            die("wait4 did not return the child");
        }
        results.push((pid, r));
    }
    STOP.store(true, Ordering::Relaxed);
    for s in spinners {
        let _ = s.join();
    }
    for (pid, r) in results {
        emit_wait("race wait", &w, pid, r, true);
    }
    0
}
