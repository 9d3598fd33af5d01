//! Small process-tree experiments with a known right answer, run as real processes: the
//! end-to-end tests and `validate` trace them and compare what the kernel did.
//!
//! `reaper-trace scenario NAME` runs one and prints, on its last line of standard output, a
//! JSON object with the pids involved (global pids, gathered through a pipe from whichever
//! process learned them) and the expected adoption.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::event::ReaperKind;

/// The outcome a scenario prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioReport {
    pub scenario: String,
    /// Named global pids (or tids) of the processes involved.
    pub pids: BTreeMap<String, u32>,
    /// The reaper kind `find_new_reaper` must give the orphan named `orphan`.
    pub expected_kind: Option<ReaperKind>,
}

pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "orphan-subreaper",
        "a parent exits before its child; the subreaper above adopts it",
    ),
    (
        "orphan-init",
        "a parent exits before its child inside a pid namespace; the namespace init adopts it",
    ),
    (
        "zombie",
        "a child exits while its parent sleeps without waiting, then is reaped",
    ),
    (
        "sleep-init",
        "a pid namespace whose PID 1 is `sleep`: an orphan is adopted by it and stays a zombie",
    ),
    (
        "subreaper-reaps",
        "a subreaper that reaps (like containerd-shim) adopts a burst of orphans and reaps them at once",
    ),
    (
        "thread-reaper",
        "the thread that forked a child exits; a sibling thread adopts the child",
    ),
];

/// Where processes of a scenario write `name=pid` lines for the scenario's main process.
struct Notes {
    read: OwnedFd,
    write: RawFd,
}

impl Notes {
    fn new() -> Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the array; O_CLOEXEC keeps the pipe out of exec'd programs.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            bail!("pipe: {}", std::io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: a fresh descriptor we own.
            read: unsafe { OwnedFd::from_raw_fd(fds[0]) },
            write: fds[1],
        })
    }

    /// Records a pid. One short write is atomic on a pipe, whichever process makes it.
    fn note(&self, name: &str, pid: u32) {
        let line = format!("{name}={pid}\n");
        // SAFETY: writing our buffer to our pipe.
        unsafe { libc::write(self.write, line.as_ptr().cast(), line.len()) };
    }

    /// Closes this process's write end and reads every note once all writers are gone.
    fn collect(self) -> BTreeMap<String, u32> {
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(self.write) };
        let mut text = String::new();
        let _ = std::fs::File::from(self.read).read_to_string(&mut text);
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }
}

/// The global pid of the calling process, even inside a pid namespace: `/proc` here is the
/// host's (not remounted), so `/proc/self` names the host pid.
fn global_pid() -> u32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or(0)
}

fn global_tid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Forks; the child runs `f` and exits with its return value, never returning here.
fn fork_then(f: impl FnOnce() -> i32) -> Result<libc::pid_t> {
    // SAFETY: fork in a single-threaded process (or, in thread-reaper, a child that only
    // sleeps and exits).
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            let code = f();
            // SAFETY: leave without running the parent's atexit handlers or destructors.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

/// Waits for one child; returns its wait status.
fn wait_for(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return status;
        }
    }
}

/// Reaps children until there are none left.
fn reap_all() -> usize {
    let mut n = 0;
    loop {
        let mut status = 0;
        // SAFETY: waiting for any child.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r > 0 {
            n += 1;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return n;
        }
    }
}

fn set_subreaper() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        bail!(
            "prctl(PR_SET_CHILD_SUBREAPER): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn new_pid_namespace() -> Result<()> {
    // SAFETY: unshare with a flag; children of this process go into the new namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        bail!(
            "unshare(CLONE_NEWPID): {} (needs root)",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A parent that forks `orphan` (which lives `orphan_ms`) and exits at once.
fn orphan_maker(notes: &Notes, orphan_ms: u64) -> i32 {
    notes.note("father", global_pid());
    let child = fork_then(|| {
        notes.note("orphan", global_pid());
        sleep_ms(orphan_ms);
        0
    });
    if child.is_err() { 1 } else { 0 }
}

pub fn run(name: &str, seconds: f64) -> Result<ScenarioReport> {
    let notes = Notes::new()?;
    let expected_kind = match name {
        "orphan-subreaper" => {
            set_subreaper()?;
            notes.note("reaper", global_pid());
            let father = fork_then(|| orphan_maker(&notes, 300))?;
            wait_for(father);
            reap_all();
            Some(ReaperKind::Subreaper)
        }
        "orphan-init" => {
            new_pid_namespace()?;
            let init = fork_then(|| {
                notes.note("reaper", global_pid());
                if fork_then(|| orphan_maker(&notes, 300)).is_err() {
                    return 1;
                }
                reap_all();
                0
            })?;
            wait_for(init);
            Some(ReaperKind::Init)
        }
        "zombie" => {
            notes.note("parent", global_pid());
            let child = fork_then(|| {
                notes.note("zombie", global_pid());
                7
            })?;
            std::thread::sleep(Duration::from_secs_f64(seconds));
            wait_for(child);
            None
        }
        "sleep-init" => {
            new_pid_namespace()?;
            let secs = format!("{seconds}");
            let init = fork_then(|| {
                notes.note("reaper", global_pid());
                if fork_then(|| orphan_maker(&notes, 200)).is_err() {
                    return 1;
                }
                let err = std::os::unix::process::CommandExt::exec(
                    std::process::Command::new("sleep").arg(&secs),
                );
                eprintln!("exec sleep: {err}");
                127
            })?;
            wait_for(init);
            Some(ReaperKind::Init)
        }
        "subreaper-reaps" => {
            set_subreaper()?;
            notes.note("reaper", global_pid());
            let father = fork_then(|| {
                notes.note("father", global_pid());
                for _ in 0..20 {
                    if fork_then(|| {
                        sleep_ms(100);
                        0
                    })
                    .is_err()
                    {
                        return 1;
                    }
                }
                0
            })?;
            wait_for(father);
            let reaped = reap_all();
            notes.note("reaped", reaped as u32);
            Some(ReaperKind::Subreaper)
        }
        "thread-reaper" => {
            notes.note("reaper", global_tid());
            let n = &notes;
            let orphan = std::thread::scope(|s| {
                s.spawn(move || {
                    n.note("father", global_tid());
                    fork_then(|| {
                        sleep_ms(300);
                        0
                    })
                })
                .join()
            });
            let orphan = match orphan {
                Ok(Ok(pid)) => pid,
                _ => bail!("the forking thread failed"),
            };
            notes.note("orphan", orphan as u32);
            wait_for(orphan);
            Some(ReaperKind::Thread)
        }
        other => bail!("unknown scenario {other}: see `reaper-trace scenario --list`"),
    };
    Ok(ScenarioReport {
        scenario: name.to_string(),
        pids: notes.collect(),
        expected_kind,
    })
}
