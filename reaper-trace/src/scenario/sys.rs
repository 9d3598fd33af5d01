//! System helpers of the workloads: `/proc` (a task's stat, global ids, zombies), waits,
//! forks, prctl and namespaces, pipes, and where the init programs are. Public: the
//! end-to-end tests' workloads use them too.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::procfs::stat_field;

/// What `/proc/PID/stat` showed about a task at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z`, ...; `-` when the task no longer existed.
    pub state: char,
    /// Parent's global pid (the procfs here is the initial namespace's).
    pub ppid: u32,
    /// `task->flags` (field 9): `PF_EXITING` is 0x4.
    pub flags: u32,
    /// Start time in clock ticks since boot (field 22).
    pub start: u64,
}

impl Stat {
    pub const GONE: Stat = Stat {
        state: '-',
        ppid: 0,
        flags: 0,
        start: 0,
    };

    pub fn exiting(&self) -> bool {
        self.state != '-' && self.flags & PF_EXITING != 0
    }
}

/// `PF_EXITING` in `include/linux/sched.h`: set once the task has begun to exit.
const PF_EXITING: u32 = 0x4;

pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest: Vec<&str> = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    Some(Stat {
        state: rest.get(stat_field::STATE)?.chars().next()?,
        ppid: rest.get(stat_field::PPID)?.parse().ok()?,
        flags: rest.get(stat_field::FLAGS)?.parse().ok()?,
        start: rest.get(stat_field::STARTTIME)?.parse().ok()?,
    })
}

/// `/proc/PID/stat` of task `pid` (global), or [`Stat::GONE`].
pub fn stat_of(pid: u32) -> Stat {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .unwrap_or(Stat::GONE)
}

/// The calling thread's `/proc/thread-self/stat`.
pub fn stat_self() -> Stat {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| parse_stat(&s))
        .unwrap_or(Stat::GONE)
}

/// What a wait returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waited {
    /// The pid as the waiter's pid namespace numbers it, or -1.
    pub ret: i32,
    pub status: i32,
    pub errno: i32,
}

impl Waited {
    /// It returned `pid`, which had exited with `code`.
    pub fn exited(&self, pid: u32, code: i32) -> bool {
        self.ret > 0
            && self.ret as u32 == pid
            && libc::WIFEXITED(self.status)
            && libc::WEXITSTATUS(self.status) == code
    }
}

/// `wait4(pid, &status, options)`, retried on EINTR.
pub fn wait4(pid: i32, options: i32) -> Waited {
    loop {
        let mut status = 0;
        // SAFETY: status is ours.
        let ret = unsafe { libc::wait4(pid, &mut status, options, std::ptr::null_mut()) };
        let errno = if ret < 0 { errno() } else { 0 };
        if ret < 0 && errno == libc::EINTR {
            continue;
        }
        return Waited { ret, status, errno };
    }
}

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Process operations

/// The global pid of the calling process, even inside a pid namespace: `/proc` here is the
/// host's (not remounted), so `/proc/self` names the host pid.
pub fn global_pid() -> u32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or(0)
}

pub fn global_tid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// The global pid of this process's parent (`/proc` is the host's, see [`global_pid`]).
pub fn global_ppid() -> u32 {
    stat_of(global_pid()).ppid
}

/// Returns once this process has been handed to a new parent: the kernel sends the
/// parent-death signal as it reparents. Not a fixed sleep (on a slow machine, a TCG VM, the
/// father may still be forking when it ends, and the child would die as the father's zombie)
/// and not a poll of getppid (twenty processes waking every millisecond starved the father
/// of a TCG VM's CPU). `father` is the parent's pid as the parent saw it before forking (a
/// child that starts after it exited would otherwise take its new parent for it). Gives up
/// after 30 s: the scenario then fails on what it recorded.
pub fn wait_until_adopted(father: libc::pid_t) {
    // SAFETY: signal-mask and prctl calls on this process's own state.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1 as libc::c_ulong);
        // Already adopted before the signal was asked for: nothing will come.
        if libc::getppid() == father {
            let timeout = libc::timespec {
                tv_sec: 30,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout);
        }
    }
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// How long a fork is retried while it fails for want of a free pid (EAGAIN), which a busy
/// machine can run out of for a moment.
pub const FORK_RETRY_FOR: Duration = Duration::from_secs(5);

/// Forks; the child runs `f` and exits with its return value, never returning here.
pub fn fork_then(f: impl FnOnce() -> i32) -> Result<libc::pid_t> {
    let deadline = Instant::now() + FORK_RETRY_FOR;
    // SAFETY: fork; where the caller is multi-threaded, the child only uses what glibc keeps
    // usable after fork (malloc, read, write) and leaves with _exit.
    let pid = loop {
        match unsafe { libc::fork() } {
            -1 if errno() == libc::EAGAIN && Instant::now() < deadline => sleep_ms(1),
            -1 => bail!("fork: {}", std::io::Error::last_os_error()),
            pid => break pid,
        }
    };
    if pid == 0 {
        let code = f();
        // SAFETY: leave without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(code) }
    }
    Ok(pid)
}

/// Waits for one child; returns its wait status.
pub fn wait_for(pid: libc::pid_t) -> i32 {
    wait4(pid, 0).status
}

/// Reaps children until there are none left; how many.
pub fn reap_all() -> usize {
    let mut n = 0;
    while wait4(-1, 0).ret > 0 {
        n += 1;
    }
    n
}

pub fn set_subreaper() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        bail!(
            "prctl(PR_SET_CHILD_SUBREAPER): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

pub fn new_pid_namespace() -> Result<()> {
    // SAFETY: unshare with a flag; children of this process go into the new namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        bail!(
            "unshare(CLONE_NEWPID): {} (needs root)",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// `setns(CLONE_NEWPID)` into the pid namespace of process `pid` (global): this process's
/// next children are born there.
pub fn join_pid_namespace(pid: u32) -> Result<()> {
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

/// The inode of this process's pid namespace.
pub fn own_pidns() -> u32 {
    std::fs::read_link("/proc/thread-self/ns/pid")
        .ok()
        .and_then(|l| {
            let s = l.to_string_lossy().into_owned();
            s.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
        })
        .unwrap_or(0)
}

/// A pipe (read end, write end), O_CLOEXEC: shared by forks, closed by exec.
pub fn pipe() -> Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

pub fn close(fd: RawFd) {
    // SAFETY: closing a descriptor we own.
    unsafe { libc::close(fd) };
}

pub fn write_u32(fd: RawFd, v: u32) {
    let b = v.to_ne_bytes();
    // SAFETY: writing our buffer to our pipe.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
}

/// Reads one u32, exactly 4 bytes (blocking); `None` at end of file.
pub fn read_u32(fd: RawFd) -> Option<u32> {
    let mut b = [0u8; size_of::<u32>()];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(fd, b[got..].as_mut_ptr().cast(), b.len() - got) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return None;
        }
        got += n as usize;
    }
    Some(u32::from_ne_bytes(b))
}

/// Blocks until every writer of `fd` has closed it.
pub fn read_until_eof(fd: RawFd) {
    let mut b = [0u8; 64];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
    }
}

/// Polls until `done()` or `limit`; whether it became true.
pub fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Zombies whose parent is `ppid` (global pids), from `/proc`.
pub fn zombies_of(ppid: u32) -> u32 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .map(stat_of)
        .filter(|s| s.state == 'Z' && s.ppid == ppid)
        .count() as u32
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_flags_and_parent() {
        let line = "42 (a) b) S 7 42 42 0 -1 4194380 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                ppid: 7,
                flags: 4194380,
                start: 12345
            })
        );
        assert!(parse_stat(line).unwrap().exiting());
        let me = stat_of(std::process::id());
        assert!(!me.exiting() && me.state != '-');
        assert_eq!(stat_of(u32::MAX), Stat::GONE);
        assert!(!Stat::GONE.exiting());
    }
}
