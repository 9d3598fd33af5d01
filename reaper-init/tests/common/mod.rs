//! Helpers shared by the integration tests: spawning reaper-init in its own
//! session, bounded waits, temp dirs and /proc parsing. Every process a test
//! starts is killed when the test ends, pass or fail.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_reaper-init");

/// Upper bound for any single reaper-init run in these tests.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("reaper-init-test-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a shell script into the directory and returns its path as a String.
    pub fn script(&self, name: &str, body: &str) -> String {
        let path = self.join(name);
        std::fs::write(&path, body).expect("write script");
        path.to_str().expect("utf-8 temp path").to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `reaper-init ARGS...`, prepared as described for `isolated`.
pub fn reaper(args: &[&str]) -> Command {
    isolated(BIN, args)
}

/// `PROGRAM ARGS...`, prepared so that tests are isolated and hermetic:
/// * `setsid()`: new session and process group (so cleanup can kill the whole
///   group, and no controlling terminal that `--group` could take over);
/// * stdin from /dev/null, stdout/stderr captured;
/// * `REAPER_INIT_SUBREAPER` removed, so the caller's environment cannot
///   change the behaviour under test.
pub fn isolated(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("REAPER_INIT_SUBREAPER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe; it cannot fail in a fresh child
    // (which is never a process group leader).
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd
}

/// The result of a finished run.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The exit code; panics (with the captured output) if it died of a signal.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("reaper-init did not exit normally: {self:?}"))
    }

    /// Pids from "reaper-init: reaped pid N (...)" lines of --verbose output.
    pub fn reaped_pids(&self) -> BTreeSet<i32> {
        self.stderr
            .lines()
            .filter_map(|line| line.strip_prefix("reaper-init: reaped pid "))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect()
    }
}

/// A running reaper-init. Dropping it SIGKILLs its whole process group (and any
/// extra groups registered with `also_kill_group`), so nothing outlives a test.
pub struct Running {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    extra_groups: Vec<i32>,
    finished: bool,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("spawn reaper-init");
        // Drain the pipes in threads so a chatty child can never block on a full pipe.
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Running {
            child,
            stdout,
            stderr,
            extra_groups: Vec::new(),
            finished: false,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Registers another process group to kill on cleanup (e.g. the `--group` child's).
    pub fn also_kill_group(&mut self, pgid: i32) {
        self.extra_groups.push(pgid);
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Waits for the process to exit (at most `timeout`, else panics) and collects its output.
    pub fn wait(mut self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            // Dropping `self` on this panic kills everything.
            assert!(
                Instant::now() < deadline,
                "reaper-init (pid {}) still running after {timeout:?}",
                self.pid()
            );
            thread::sleep(Duration::from_millis(5));
        };
        self.finished = true;
        // Kill leftovers (e.g. orphans a failing test left behind) before the
        // output threads are joined: they may hold the pipes open.
        self.kill_groups();
        let stdout = self.stdout.take().map(join).unwrap_or_default();
        let stderr = self.stderr.take().map(join).unwrap_or_default();
        Outcome {
            status,
            stdout,
            stderr,
        }
    }

    fn kill_groups(&self) {
        // The reaper-init process is the leader of its own session/group (setsid).
        for pgid in std::iter::once(self.pid()).chain(self.extra_groups.iter().copied()) {
            // SAFETY: kill has no memory-safety preconditions; ESRCH is fine.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            self.kill_groups();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn join(handle: JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

/// Runs a prepared command to completion (bounded by RUN_TIMEOUT).
pub fn run(cmd: Command) -> Outcome {
    Running::spawn(cmd).wait(RUN_TIMEOUT)
}

/// Polls `cond` every few milliseconds until it holds; false on timeout.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `path` exists, panicking after a few seconds.
pub fn wait_for_file(path: &Path) {
    assert!(
        wait_until(Duration::from_secs(5), || path.exists()),
        "timed out waiting for {}",
        path.display()
    );
}

/// Reads a file, or "" if it does not exist (yet).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// State, ppid and pgrp of a process from /proc/<pid>/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces or
    // parentheses itself, so split after its *last* closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcStat { state, ppid, pgrp })
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Shell function used by the in-child zombie checks: `count_zombies PPID`
/// prints how many zombies have parent pid PPID. It reads the kernel's list of
/// PPID's children (`/proc/PPID/task/*/children`, zombies included) and their
/// `stat`, with shell builtins only (no fork per process), splitting after the
/// last ") " of the command name like `proc_stat` does. Only PPID's children are
/// read, not every process: a scan of all of /proc takes seconds in a shell on a
/// machine with tens of thousands of tasks (a zombie storm beside the tests), which
/// ran a test past its timeout.
pub const COUNT_ZOMBIES_SH: &str = r#"
count_zombies() {
    want=$1
    n=0
    kids=
    for t in /proc/"$want"/task/*/children; do
        # One line of pids without a newline at its end: `read` fails, but sets it.
        line=
        read -r line 2>/dev/null < "$t"
        kids="$kids $line"
    done
    for c in $kids; do
        read -r line 2>/dev/null < /proc/"$c"/stat || continue
        rest=${line##*) }
        set -f
        set -- $rest
        set +f
        if [ "$1" = Z ] && [ "$2" = "$want" ]; then n=$((n + 1)); fi
    done
    echo "$n"
}
"#;
