//! Case 7: quick pid reuse.

use super::*;

/// Case 7: Forks and reaps children in a loop until a pid repeats (at most 40,000 forks or 20 s).
/// Writes every wait, then a note with the count and whether a pid was reused.
pub(crate) fn pid_reuse() -> i32 {
    let w = record_me("parent");
    let started = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut results = Vec::new();
    let mut reused = 0;
    while results.len() < 40_000 && started.elapsed() < Duration::from_secs(20) {
        // SAFETY: single-threaded; the child only calls _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            die("fork");
        }
        if pid == 0 {
            // SAFETY: leaving the child.
            unsafe { libc::_exit(0) };
        }
        let r = raw_wait4(pid, 0);
        if r.0 != pid {
            die("wait4 did not return the child");
        }
        results.push((pid, r));
        if !seen.insert(pid) {
            reused = pid;
            break;
        }
    }
    for (pid, r) in &results {
        emit_wait("reuse wait", &w, *pid, *r, true);
    }
    fact!(
        "{{\"kind\":\"note\",\"what\":\"pid_reuse\",\"forks\":{},\"reused\":{reused},\"ms\":{}}}",
        results.len(),
        started.elapsed().as_millis()
    );
    0
}
