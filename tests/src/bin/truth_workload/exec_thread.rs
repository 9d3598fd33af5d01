//! Case 2: exec from a non-leader thread.

use super::*;

/// Case 2: A second thread execs while the main thread is blocked; `with_child`: the main
/// thread first forks a child that lives until the new program (which inherits the pipe) lets
/// it go.
///
/// W forks X. X (optionally forks K) spawns thread Y, which execs
/// `truth_workload after-exec FACTS FD K`. The new program records itself and K, lets K exit,
/// reaps it, and exits 42. W reaps X.
pub(crate) fn exec_thread(with_child: bool) -> i32 {
    record_me("waiter");
    let exe = std::env::current_exe().unwrap_or_else(|_| die("current_exe"));
    let facts = std::env::args().nth(2).expect("facts path");
    let x = fork_child(move || {
        record_me("leader before exec");
        let (mut fd, mut k) = (-1, 0);
        if with_child {
            let (r, w) = pipe(); // no CLOEXEC: the write end survives the exec
            k = fork_child(|| {
                close(w);
                record_me("child before exec");
                read_until_eof(r);
                0
            });
            close(r);
            fd = w;
        }
        let exe = CString::new(exe.as_os_str().as_encoded_bytes()).expect("path");
        let args = [
            CString::new("truth_workload").unwrap(),
            CString::new("after-exec").unwrap(),
            CString::new(facts).unwrap(),
            CString::new(fd.to_string()).unwrap(),
            CString::new(k.to_string()).unwrap(),
        ];
        let thread = std::thread::spawn(move || {
            record_me("exec thread");
            let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
            argv.push(std::ptr::null());
            // SAFETY: valid NUL-terminated argv (execv passes the process's environment).
            unsafe { libc::execv(exe.as_ptr(), argv.as_ptr()) };
            die("execve");
        });
        // Blocked here until the exec kills this thread.
        let _ = thread.join();
        die("the exec thread returned")
    });
    wait_fact("parent wait", x, 0, true);
    0
}

/// The program a non-leader thread exec'd (see `exec_thread`): args FD K.
pub(crate) fn after_exec(args: &[String]) -> i32 {
    let fd: i32 = args[0].parse().expect("fd");
    let k: i32 = args[1].parse().expect("child pid");
    record_me("after exec");
    if k > 0 {
        record_obs("child after exec", k);
        close(fd);
        let r = wait_fact("wait child after exec", k, 0, true);
        if r.0 != k {
            die("the exec'd program did not get the child");
        }
    }
    // Live on past the old leader's release (an RCU grace period after the exec): that
    // release carries the process's tid and start time, and must not end the process.
    std::thread::sleep(std::time::Duration::from_millis(50));
    42
}
