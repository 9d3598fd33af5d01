//! `truth_workload CASE FACTS [ARGS...]`: the process operations behind `tests/truth/`, one
//! subcommand per case, run under `reaper-trace record`. Each performs real process operations
//! and appends what the KERNEL said to FACTS, one JSON object per line:
//!
//! - `{"kind":"obs","label":L,"by":TID,"tid":..,"pid":..,"ppid":..,"state":"Z","nspid":[..],
//!   "nstgid":[..],"pidns":INODE,"start":TICKS,"comm":".."}`: `/proc/TID/status`, `/proc/TID/stat`
//!   (start time, clock ticks since boot) and `/proc/TID/ns/pid` read at one moment while the
//!   task existed (alive or a zombie); `{"kind":"obs","label":L,"tid":..,"gone":true}` when it
//!   no longer existed;
//! - `{"kind":"wait","label":L,"call":"wait4","waiter":PID,"waiter_tid":..,"waiter_level":..,
//!   "waiter_pidns":..,"arg":..,"ret":..,"errno":..,"status":..,"reaped":bool}`: what a wait
//!   returned (`ret` as the waiter sees it, in its own pid namespace; `waiter` is global);
//!   `reaped` is false for a wait that only collects a status without releasing the child (a
//!   ptracer that is not the parent);
//! - `{"kind":"note",...}`: anything else a case needs (documented where it is written).
//!
//! Uses std, libc and the scenarios' system helpers (`reaper_trace::scenario::sys`: waits,
//! pipes, forks) only. Children forked from multi-threaded processes format their facts
//! on the stack (no allocation) and leave with `_exit`. Every process arms `alarm` so a broken
//! handshake ends the case instead of hanging the test.

use std::ffi::CString;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use reaper_trace::procfs::stat_field;
use reaper_trace::scenario::sys::{self, close, errno, read_u32, read_until_eof, sleep_ms, wait4};

/// Every process of a case dies of SIGALRM after this long (a broken handshake, not a hang).
const ALARM_S: u32 = 28;

static FACTS_FD: AtomicI32 = AtomicI32::new(-1);

#[macro_use]
mod facts;
mod clone_parent;
mod exec_thread;
mod identity;
mod io_uring;
mod many_children;
mod observe;
mod ops;
mod pid_reuse;
mod ptrace;
mod sigchld;
mod threads_exit;
mod wait_race;

use facts::*;
use observe::*;
use ops::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: truth_workload CASE FACTS [ARGS...]");
        std::process::exit(2);
    }
    open_facts(&args[2]);
    // SAFETY: arming our own alarm.
    unsafe { libc::alarm(ALARM_S) };
    let code = match args[1].as_str() {
        "ptrace" => ptrace::ptrace_case(),
        "exec-thread" => exec_thread::exec_thread(false),
        "exec-thread-child" => exec_thread::exec_thread(true),
        "after-exec" => exec_thread::after_exec(&args[3..]),
        "sigchld-ignored" => sigchld::sigchld_ignored(false),
        "sigchld-ignored-ns" => sigchld::sigchld_ignored(true),
        "clone-parent" => clone_parent::clone_parent(),
        "wait-race" => wait_race::wait_race(),
        "threads-exit" => threads_exit::threads_exit(),
        "pid-reuse" => pid_reuse::pid_reuse(),
        "identity" => identity::identity(),
        "host" => identity::host(&args[3..]),
        "many-children" => many_children::many_children(&args[3..]),
        "io-uring-waitid" => io_uring::uring_waitid(),
        other => {
            eprintln!("truth_workload: unknown case {other}");
            2
        }
    };
    std::process::exit(code)
}
