//! Builds a process tree from a JSON description, for `tree`'s end-to-end tests, then keeps
//! every process of it blocked until it is killed.
//!
//! `tree_builder SPEC`: this process makes itself a subreaper that reaps what it adopts (so
//! nothing the test kills ends up with the host's init), then forks SPEC's root. A node is
//! `{"name", "subreaper", "clear_subreaper", "newns", "threads", "forked_by", "zombies",
//! "children"}`: `newns` makes the node the init of a new pid namespace; `threads` extra
//! threads, each of which exits alone on SIGUSR1 (so does the main thread); `forked_by` is
//! the thread of the parent (0: main) that forks the node; `zombies` are names of children
//! that exit at once and are never waited for; `clear_subreaper` sets the flag before the
//! children are forked and clears it after. Each process (and zombie) writes one line to
//! standard output when it is in place: `NAME PID TID...` (global ids, the main thread first).

use std::os::raw::c_int;
use std::sync::mpsc;

use serde_json::Value;

fn write_line(line: &str) {
    let line = format!("{line}\n");
    // One write(2) per line: lines from many processes on one pipe do not interleave.
    // SAFETY: a valid buffer of that length.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

/// The global pid (this process's /proc is the host's: it resolves /proc/self there).
fn global_pid() -> u32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .expect("/proc/self")
}

fn global_tid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.to_str()?.rsplit('/').next()?.parse().ok())
        .expect("/proc/thread-self")
}

extern "C" fn exit_thread(_: c_int) {
    // SAFETY: ends only the calling thread.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
}

fn forever() -> ! {
    loop {
        // SAFETY: no preconditions.
        unsafe { libc::pause() };
    }
}

fn set_subreaper(on: bool) {
    // SAFETY: plain prctl.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, on as libc::c_ulong, 0, 0, 0) };
    assert_eq!(r, 0, "prctl(PR_SET_CHILD_SUBREAPER)");
}

/// Forks (or clones into a new pid namespace) a process that becomes `node`.
fn spawn(node: &Value) {
    let newns = node["newns"].as_bool().unwrap_or(false);
    // SAFETY: fork/clone as fork; the child only runs this program's code.
    let pid = unsafe {
        if newns {
            libc::syscall(
                libc::SYS_clone,
                (libc::CLONE_NEWPID | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            ) as i32
        } else {
            libc::fork()
        }
    };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        become_node(node);
    }
}

fn become_node(node: &Value) -> ! {
    let name = node["name"].as_str().expect("a name");
    let clear = node["clear_subreaper"].as_bool().unwrap_or(false);
    if node["subreaper"].as_bool().unwrap_or(false) || clear {
        set_subreaper(true);
    }
    // SAFETY: installs a handler that only calls exit(2).
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            exit_thread as *const () as libc::sighandler_t,
        )
    };
    let mut tids = vec![global_tid()];
    let mut forkers = Vec::new();
    let nthreads = node["threads"].as_u64().unwrap_or(0);
    for _ in 0..nthreads {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (req_tx, req_rx) = mpsc::channel::<(Value, mpsc::Sender<()>)>();
        std::thread::spawn(move || {
            tid_tx.send(global_tid()).unwrap();
            while let Ok((child, done)) = req_rx.recv() {
                spawn(&child);
                let _ = done.send(());
            }
            forever()
        });
        tids.push(tid_rx.recv().unwrap());
        forkers.push(req_tx);
    }
    for child in node["children"].as_array().into_iter().flatten() {
        match child["forked_by"].as_u64().unwrap_or(0) as usize {
            0 => spawn(child),
            k => {
                let (done_tx, done_rx) = mpsc::channel();
                forkers[k - 1].send((child.clone(), done_tx)).unwrap();
                done_rx.recv().unwrap();
            }
        }
    }
    for z in node["zombies"].as_array().into_iter().flatten() {
        // SAFETY: the child writes a line and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            write_line(&format!(
                "{} {} {}",
                z.as_str().unwrap(),
                global_pid(),
                global_tid()
            ));
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
    }
    if clear {
        set_subreaper(false);
    }
    let tids: Vec<String> = tids.iter().map(u32::to_string).collect();
    write_line(&format!("{name} {} {}", global_pid(), tids.join(" ")));
    // Keep the forkers' channels open: the threads wait on them, then pause.
    std::mem::forget(forkers);
    forever()
}

fn main() {
    let spec: Value =
        serde_json::from_str(&std::env::args().nth(1).expect("a JSON spec")).expect("valid JSON");
    set_subreaper(true);
    spawn(&spec);
    // Reap what is adopted (and the root when it is killed); wait for the test to kill us.
    loop {
        // SAFETY: plain wait.
        if unsafe { libc::wait(std::ptr::null_mut()) } < 0 {
            // SAFETY: no preconditions.
            unsafe { libc::pause() };
        }
    }
}
