//! Small measuring tools shared by the bench programs.

use reaper_trace::identity::USER_HZ;
use reaper_trace::procfs::stat_field;

/// CPU time (user + system) a process has used so far, in seconds; 0 if it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`, which may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> f64 { f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    let ticks = field(stat_field::UTIME) + field(stat_field::STIME);
    ticks / USER_HZ as f64
}

/// Forks a child that exits at once, and reaps it: one full process life (fork, exit,
/// zombie, reap) for the tracer to see.
pub fn fork_and_reap() {
    // SAFETY: the child only calls _exit.
    match unsafe { libc::fork() } {
        0 => unsafe { libc::_exit(0) },
        -1 => panic!("fork failed: {}", std::io::Error::last_os_error()),
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
    }
}
