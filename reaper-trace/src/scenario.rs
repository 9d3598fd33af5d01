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
    (
        "nested-subreapers",
        "an inner subreaper exits while its child lives; the outer subreaper adopts the child",
    ),
    (
        "exiting-subreaper",
        "a parent exits while the subreaper above it is itself exiting (PF_EXITING, its exit held open by a large address space); the subreaper is skipped and the next one adopts",
    ),
    (
        "setns-injected",
        "like `docker exec`: a process outside a pid namespace (under a subreaper) joins it with setns and forks a parent; that parent's orphan goes to the namespace init, not the subreaper",
    ),
    (
        "init-exits-with-children",
        "a namespace init exits with children alive: the kernel kills the namespace, and an orphan made while it dies is adopted by the dying init",
    ),
    (
        "pid1-sleep",
        "PID 1 is `sleep` (never waits); its child makes 10 orphans that exit after 100 ms: they stay zombies",
    ),
    (
        "pid1-reaper-init",
        "PID 1 is reaper-init running a command that makes 10 orphans: each is reaped at once",
    ),
    (
        "pid1-tini",
        "PID 1 is tini running a command that makes 10 orphans: each is reaped at once",
    ),
    (
        "pid1-dumb-init",
        "PID 1 is dumb-init running a command that makes 10 orphans: each is reaped at once",
    ),
    (
        "pid1-catatonit",
        "PID 1 is catatonit running a command that makes 10 orphans: each is reaped at once",
    ),
    (
        "orphan-burst",
        "(helper of the pid1-* scenarios) makes 10 orphans by double fork, counts its parent's zombies, exits after 1 s",
    ),
    (
        "hang",
        "(for testing `validate --timeout`) never ends: a pid namespace, a process that left the process group, an orphan",
    ),
];

/// Orphans the `orphan-burst` helper makes.
pub const BURST_ORPHANS: u32 = 10;
/// How long each of those orphans lives.
const BURST_ORPHAN_MS: u64 = 100;
/// How long PID 1 has to reap the last orphan before `orphan-burst` counts zombies.
const BURST_SETTLE_MS: u64 = 100;
/// When `orphan-burst` exits at the earliest (from its start).
const BURST_EXIT_AT_MS: u64 = 1000;
/// `sleep` as PID 1 in `pid1-sleep`: it never exits by itself in the scenario's time; the
/// scenario kills it (the container is stopped) once the zombies are counted.
const PID1_SLEEP_SECS: &str = "60";
/// Memory that keeps a process's exit (`exit_mm`) busy for ~100 ms after it set PF_EXITING.
const SLOW_EXIT_BYTES: usize = 512 << 20;
/// Where the `orphan-burst` helper, exec'd under another init, finds the notes pipe.
const NOTES_FD_ENV: &str = "REAPER_TRACE_NOTES_FD";

/// The reaping inits the `pid1-*` scenarios run as PID 1, with the arguments that come before
/// the command.
pub const PID1_INITS: &[(&str, &str, &[&str])] = &[
    ("pid1-reaper-init", "reaper-init", &[]),
    ("pid1-tini", "tini", &["--"]),
    ("pid1-dumb-init", "dumb-init", &[]),
    ("pid1-catatonit", "catatonit", &["--"]),
];

/// Where an init program is: `reaper-init` next to the running binary (or `REAPER_INIT_BIN`),
/// the others on `PATH` (Debian installs them in /usr/bin). `None` when it is not installed.
pub fn init_binary(program: &str) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let executable = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program == "reaper-init" {
        if let Some(p) = std::env::var_os("REAPER_INIT_BIN") {
            let p = PathBuf::from(p);
            return executable(&p).then_some(p);
        }
        let p = std::env::current_exe().ok()?.parent()?.join("reaper-init");
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| executable(p))
}

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

fn write_note(fd: RawFd, name: &str, pid: u32) {
    let line = format!("{name}={pid}\n");
    // SAFETY: writing our buffer to an inherited pipe (or failing on a bad descriptor).
    unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
}

/// A pipe without O_CLOEXEC (read end, write end): shared by forks, never exec'd.
fn pipe() -> Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

fn write_u32(fd: RawFd, v: u32) {
    let b = v.to_ne_bytes();
    // SAFETY: writing our buffer to our pipe.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
}

/// Reads one u32 (blocking); `None` at end of file.
fn read_u32(fd: RawFd) -> Option<u32> {
    let mut b = [0u8; 4];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if n == 4 {
            return Some(u32::from_ne_bytes(b));
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

/// The global pid of this process's parent (`/proc` is the host's, see [`global_pid`]).
fn global_ppid() -> u32 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| crate::procfs::parse_stat(&s))
        .map(|(_, _, ppid, _)| ppid)
        .unwrap_or(0)
}

/// Zombies whose parent is `ppid` (global pids), from `/proc`.
fn zombies_of(ppid: u32) -> u32 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|s| crate::procfs::parse_stat(&s))
        .filter(|(_, state, parent, _)| *state == 'Z' && *parent == ppid)
        .count() as u32
}

/// Maps and touches `SLOW_EXIT_BYTES`: tearing them down keeps this process's exit busy for
/// ~100 ms after PF_EXITING is set, before its children are reparented.
fn hold_exit_open() -> bool {
    // SAFETY: a fresh private anonymous mapping, populated by the kernel, never unmapped (the
    // point is for exit to unmap it).
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SLOW_EXIT_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    p != libc::MAP_FAILED
}

/// `task->flags` of process `pid` (field 9 of `/proc/PID/stat`), read through `fd`.
fn stat_flags(fd: RawFd) -> Option<u32> {
    let mut buf = [0u8; 1024];
    // SAFETY: reading into our buffer from our descriptor.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n <= 0 {
        return None;
    }
    let text = std::str::from_utf8(&buf[..n as usize]).ok()?;
    let rest = text.get(text.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(6)?.parse().ok()
}

const PF_EXITING: u32 = 0x4;

/// The inner subreaper S of `exiting-subreaper`; returns its exit code.
fn exiting_subreaper(notes: &Notes) -> i32 {
    if set_subreaper().is_err() {
        return 1;
    }
    let me = global_pid();
    notes.note("exiting_subreaper", me);
    let Ok((ready_read, ready_write)) = pipe() else {
        return 1;
    };
    let father = fork_then(|| {
        let father = global_pid();
        notes.note("father", father);
        if fork_then(|| {
            notes.note("orphan", global_pid());
            // Live until adopted (S's exit takes a while to begin: it maps its memory first).
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while global_ppid() == father && std::time::Instant::now() < deadline {
                sleep_ms(5);
            }
            0
        })
        .is_err()
        {
            return 1;
        }
        let Ok(stat) = std::fs::File::open(format!("/proc/{me}/stat")) else {
            return 1;
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stat);
        write_u32(ready_write, 1);
        // Exit the moment S is exiting (or after 10 s, if it never does).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            match stat_flags(fd) {
                Some(f) if f & PF_EXITING != 0 => return 0,
                Some(_) => std::hint::spin_loop(),
                None => return 4,
            }
        }
        5
    });
    if father.is_err() || !hold_exit_open() {
        return 1;
    }
    // SAFETY: closing our copy so a dead father shows as end of file.
    unsafe { libc::close(ready_write) };
    if read_u32(ready_read).is_none() {
        return 1;
    }
    // Exit without waiting for the father: the kernel looks for the orphan's reaper while we
    // are still tearing down our memory.
    0
}

/// The namespace init of `init-exits-with-children`; returns its exit code.
fn init_with_children(notes: &Notes) -> i32 {
    notes.note("reaper", global_pid());
    let Ok((ready_read, ready_write)) = pipe() else {
        return 1;
    };
    let killed = fork_then(|| {
        notes.note("killed", global_pid());
        sleep_ms(30_000);
        0
    });
    if killed.is_err() {
        return 1;
    }
    let father = fork_then(|| {
        notes.note("father", global_pid());
        let orphan = fork_then(|| {
            notes.note("orphan", global_pid());
            if hold_exit_open() {
                write_u32(ready_write, 1);
            }
            sleep_ms(30_000);
            0
        });
        if orphan.is_err() {
            return 1;
        }
        sleep_ms(30_000);
        0
    });
    if father.is_err() {
        return 1;
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(ready_write) };
    if read_u32(ready_read).is_none() {
        return 1;
    }
    // Exit with every child alive.
    0
}

/// `setns(CLONE_NEWPID)` into the pid namespace of process `pid` (global): this process's
/// next children are born there.
fn join_pid_namespace(pid: u32) -> Result<()> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/pid"))?;
    // SAFETY: setns with a namespace descriptor we own.
    if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWPID) } != 0 {
        bail!(
            "setns(CLONE_NEWPID) into process {pid}'s namespace: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The command under PID 1 in the `pid1-*` scenarios: `BURST_ORPHANS` orphans by double
/// fork, each exiting after `BURST_ORPHAN_MS`. Once the last of them has exited (and PID 1 had
/// `BURST_SETTLE_MS` to reap them), it counts PID 1's zombies, writes a byte to `done` if
/// given, and exits at `BURST_EXIT_AT_MS`. Notes go through `note`.
fn orphan_burst(note: &dyn Fn(&str, u32), done: Option<RawFd>) {
    let start = std::time::Instant::now();
    let init = global_ppid();
    note("workload", global_pid());
    // Every orphan holds the write end: end of file once they have all exited.
    let Ok((alive_read, alive_write)) = pipe() else {
        return;
    };
    for i in 0..BURST_ORPHANS {
        let middle = fork_then(|| {
            let orphan = fork_then(|| {
                note(&format!("orphan{i}"), global_pid());
                sleep_ms(BURST_ORPHAN_MS);
                0
            });
            if orphan.is_err() { 1 } else { 0 }
        });
        if let Ok(m) = middle {
            wait_for(m);
        }
    }
    // SAFETY: closing our own copy.
    unsafe { libc::close(alive_write) };
    let mut b = [0u8; 1];
    // SAFETY: blocks until every orphan has closed the pipe by exiting.
    while unsafe { libc::read(alive_read, b.as_mut_ptr().cast(), 1) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
    {}
    sleep_ms(BURST_SETTLE_MS);
    note("zombies_left", zombies_of(init));
    note("orphans", BURST_ORPHANS);
    if let Some(fd) = done {
        write_u32(fd, 1);
    }
    let at = Duration::from_millis(BURST_EXIT_AT_MS);
    if let Some(left) = at.checked_sub(start.elapsed()) {
        std::thread::sleep(left);
    }
}

/// `hang`: a tree that never ends and resists a polite cleanup: a pid namespace whose init
/// has children, a process that left the process group (setsid) and ignores SIGTERM, and an
/// orphan adopted outside the scenario's own process.
fn hang() -> ! {
    fn forever() -> ! {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let ignore_term = || {
        // SAFETY: setting a signal disposition.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
        }
    };
    let _ = fork_then(|| {
        // SAFETY: setsid has no preconditions.
        unsafe { libc::setsid() };
        ignore_term();
        let _ = fork_then(|| forever());
        // Exit: the child above becomes an orphan.
        0
    });
    if new_pid_namespace().is_ok() {
        let _ = fork_then(|| {
            let _ = fork_then(|| {
                ignore_term();
                let _ = fork_then(|| {
                    // SAFETY: as above.
                    unsafe { libc::setsid() };
                    forever()
                });
                forever()
            });
            forever()
        });
    }
    forever()
}

pub fn run(name: &str, seconds: f64) -> Result<ScenarioReport> {
    if name == "orphan-burst" {
        // Exec'd under another init: the notes pipe is inherited.
        let fd: RawFd = std::env::var(NOTES_FD_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1);
        orphan_burst(&|k, v| write_note(fd, k, v), None);
        return Ok(ScenarioReport {
            scenario: name.to_string(),
            pids: BTreeMap::new(),
            expected_kind: None,
        });
    }
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
        "nested-subreapers" => {
            // outer (this process) > inner subreaper > child; the inner one exits first.
            set_subreaper()?;
            notes.note("reaper", global_pid());
            let inner = fork_then(|| {
                if set_subreaper().is_err() {
                    return 1;
                }
                notes.note("father", global_pid());
                let child = fork_then(|| {
                    notes.note("orphan", global_pid());
                    sleep_ms(300);
                    0
                });
                // Exit at once, the child still running.
                if child.is_err() { 1 } else { 0 }
            })?;
            wait_for(inner);
            reap_all();
            Some(ReaperKind::Subreaper)
        }
        "exiting-subreaper" => {
            // outer subreaper (this process) > inner subreaper S > father P > orphan C.
            // S exits; its 512 MiB take ~100 ms to tear down (exit_mm) after PF_EXITING is
            // set, and P, watching S's flags in /proc, exits inside that window: when the
            // kernel looks for C's reaper, S is still P's parent but has no live thread.
            set_subreaper()?;
            notes.note("reaper", global_pid());
            let inner = fork_then(|| exiting_subreaper(&notes))?;
            wait_for(inner);
            reap_all();
            Some(ReaperKind::Subreaper)
        }
        "setns-injected" => {
            // This process is a subreaper in the host namespace. The injector J (forked
            // before the namespace exists, so it stays outside) joins the namespace of init I
            // with setns and forks P inside; P forks C and exits. P's parent J is outside the
            // namespace, so the subreaper walk stops at once: C goes to I, not to us.
            set_subreaper()?;
            notes.note("subreaper", global_pid());
            let (go_read, go_write) = pipe()?;
            let injector = fork_then(|| {
                // SAFETY: closing the child's copy of the write end.
                unsafe { libc::close(go_write) };
                notes.note("injector", global_pid());
                let Some(init) = read_u32(go_read) else {
                    return 2;
                };
                if let Err(e) = join_pid_namespace(init) {
                    eprintln!("{e:#}");
                    return 3;
                }
                let father = fork_then(|| {
                    notes.note("father", global_pid());
                    let child = fork_then(|| {
                        notes.note("orphan", global_pid());
                        sleep_ms(300);
                        0
                    });
                    if child.is_err() { 1 } else { 0 }
                });
                match father {
                    Ok(p) => {
                        wait_for(p);
                        0
                    }
                    Err(_) => 1,
                }
            })?;
            // SAFETY: the read end is the injector's.
            unsafe { libc::close(go_read) };
            new_pid_namespace()?;
            let init = fork_then(|| {
                notes.note("reaper", global_pid());
                // Outlive the orphan (300 ms), then reap it.
                sleep_ms(700);
                reap_all();
                0
            })?;
            write_u32(go_write, init as u32);
            // SAFETY: done with it.
            unsafe { libc::close(go_write) };
            wait_for(injector);
            wait_for(init);
            Some(ReaperKind::Init)
        }
        "init-exits-with-children" => {
            // init I > C1; I > father C2 > orphan G. I exits: the kernel kills everything in
            // the namespace (zap_pid_ns_processes). G's 512 MiB keep it exiting for ~100 ms
            // after C2 is dead, so C2's orphan G is adopted by the init that is dying.
            new_pid_namespace()?;
            let init = fork_then(|| init_with_children(&notes))?;
            wait_for(init);
            Some(ReaperKind::Init)
        }
        "pid1-sleep" => {
            new_pid_namespace()?;
            let (done_read, done_write) = pipe()?;
            let init = fork_then(|| {
                notes.note("reaper", global_pid());
                if fork_then(|| {
                    orphan_burst(&|k, v| notes.note(k, v), Some(done_write));
                    0
                })
                .is_err()
                {
                    return 1;
                }
                let err = std::os::unix::process::CommandExt::exec(
                    std::process::Command::new("sleep").arg(PID1_SLEEP_SECS),
                );
                eprintln!("exec sleep: {err}");
                127
            })?;
            // SAFETY: closing our copy, so that a dead workload shows as end of file.
            unsafe { libc::close(done_write) };
            // Once the zombies are counted, stop the "container": SIGKILL to its init (from
            // the parent namespace) tears the namespace down, zombies included.
            let _ = read_u32(done_read);
            // SAFETY: signalling our own child.
            unsafe { libc::kill(init, libc::SIGKILL) };
            wait_for(init);
            Some(ReaperKind::Init)
        }
        "pid1-reaper-init" | "pid1-tini" | "pid1-dumb-init" | "pid1-catatonit" => {
            let (_, program, init_args) = PID1_INITS
                .iter()
                .find(|(n, _, _)| *n == name)
                .expect("listed");
            let Some(path) = init_binary(program) else {
                bail!("{program} is not installed");
            };
            let me = std::env::current_exe()?;
            new_pid_namespace()?;
            let init = fork_then(|| {
                notes.note("reaper", global_pid());
                // The command under the init writes its notes to the inherited pipe.
                // SAFETY: clearing FD_CLOEXEC on our own descriptor.
                unsafe { libc::fcntl(notes.write, libc::F_SETFD, 0) };
                let err = std::os::unix::process::CommandExt::exec(
                    std::process::Command::new(&path)
                        .args(*init_args)
                        .arg(&me)
                        .args(["scenario", "orphan-burst"])
                        .env(NOTES_FD_ENV, notes.write.to_string()),
                );
                eprintln!("exec {}: {err}", path.display());
                127
            })?;
            let status = wait_for(init);
            if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                bail!("{program} as PID 1 ended with wait status {status:#x}");
            }
            Some(ReaperKind::Init)
        }
        "hang" => {
            hang();
        }
        other => bail!("unknown scenario {other}: see `reaper-trace scenario --list`"),
    };
    Ok(ScenarioReport {
        scenario: name.to_string(),
        pids: notes.collect(),
        expected_kind,
    })
}
