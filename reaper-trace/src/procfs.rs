//! What `/proc` says about tasks: the processes that existed before tracing began, and a
//! check that a zombie the model holds is still one.

use std::fs;

use crate::identity::start_in_tick;

/// Where `/proc/PID/stat`'s fields are among the words after the comm's closing `)`: field N
/// of proc(5) is word N - 3 (the pid and the comm come before).
pub mod stat_field {
    pub const STATE: usize = 0;
    pub const PPID: usize = 1;
    pub const FLAGS: usize = 6;
    /// CPU time in user and in kernel mode, in clock ticks.
    pub const UTIME: usize = 11;
    pub const STIME: usize = 12;
    /// Start time since boot, in clock ticks.
    pub const STARTTIME: usize = 19;
}

/// How many `/proc` entries are read between two looks at the clock: reading it for every
/// entry would cost more than the listing itself.
const DEADLINE_CHECK_EVERY: usize = 256;

/// A task as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcTask {
    pub tid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub comm: String,
    /// `R`, `S`, `Z`, ...
    pub state: char,
    /// Start time since boot in clock ticks.
    pub start_ticks: u64,
    /// Pid numbers from the root namespace down to the task's own (`NSpid`).
    pub nspid: Vec<u32>,
    /// Same, for the process id (`NStgid`).
    pub nstgid: Vec<u32>,
    /// Inode of the task's pid namespace.
    pub pidns: u32,
}

/// Parses `/proc/PID/stat`: (comm, state, ppid, start ticks). The comm is in parentheses and
/// may itself contain spaces and parentheses, so split at the last `)`.
pub fn parse_stat(stat: &str) -> Option<(String, char, u32, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let state = rest.get(stat_field::STATE)?.chars().next()?;
    let ppid = rest.get(stat_field::PPID)?.parse().ok()?;
    let start = rest.get(stat_field::STARTTIME)?.parse().ok()?;
    Some((comm, state, ppid, start))
}

fn status_ids(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn pidns_inode(tid: u32) -> u32 {
    fs::read_link(format!("/proc/{tid}/ns/pid"))
        .ok()
        .and_then(|l| {
            let s = l.to_string_lossy().into_owned();
            s.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
        })
        .unwrap_or(0)
}

fn read_task(tgid: u32, tid: u32) -> Option<ProcTask> {
    let base = format!("/proc/{tgid}/task/{tid}");
    let (comm, state, ppid, start_ticks) =
        parse_stat(&fs::read_to_string(format!("{base}/stat")).ok()?)?;
    let status = fs::read_to_string(format!("{base}/status")).unwrap_or_default();
    Some(ProcTask {
        tid,
        tgid,
        ppid,
        comm,
        state,
        start_ticks,
        nspid: status_ids(&status, "NSpid:"),
        nstgid: status_ids(&status, "NStgid:"),
        pidns: pidns_inode(tid),
    })
}

fn numeric_entries(dir: &str) -> Vec<u32> {
    fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every task (thread) in `/proc`. Tasks that vanish while being read are skipped.
pub fn scan() -> Vec<ProcTask> {
    let mut out = Vec::new();
    for tgid in numeric_entries("/proc") {
        for tid in numeric_entries(&format!("/proc/{tgid}/task")) {
            if let Some(t) = read_task(tgid, tid) {
                out.push(t);
            }
        }
    }
    out
}

/// The process ids `/proc` lists now (one directory read: a process not in it is gone).
pub fn live_pids() -> std::collections::HashSet<u32> {
    numeric_entries("/proc").into_iter().collect()
}

/// The process ids `/proc` lists, read until `deadline` at most: the set, and the highest pid
/// the listing is complete up to (`u32::MAX` when it got to the end). `/proc` lists pids in
/// ascending order, so a pid up to that one and not in the set is gone; about a higher one
/// the listing says nothing.
pub fn live_pids_until(deadline: std::time::Instant) -> (std::collections::HashSet<u32>, u32) {
    let mut live = std::collections::HashSet::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return (live, 0);
    };
    let mut last = 0;
    for (i, entry) in dir.enumerate() {
        if i % DEADLINE_CHECK_EVERY == DEADLINE_CHECK_EVERY - 1
            && std::time::Instant::now() >= deadline
        {
            return (live, last);
        }
        if let Some(pid) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<u32>().ok())
        {
            live.insert(pid);
            last = pid;
        }
    }
    (live, u32::MAX)
}

/// Is the task `tid` that started at `start_ns` (boottime) still a zombie?
pub fn still_zombie(tid: u32, start_ns: u64) -> bool {
    fs::read_to_string(format!("/proc/{tid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .is_some_and(|(_, state, _, ticks)| state == 'Z' && start_in_tick(start_ns, ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_hostile_comm() {
        let line = "42 (a) b) (c) Z 7 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        assert_eq!(parse_stat(line), Some(("a) b) (c".into(), 'Z', 7, 12345)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn scan_finds_this_process() {
        let me = std::process::id();
        let tasks = scan();
        let t = tasks.iter().find(|t| t.tid == me).expect("own task listed");
        assert_eq!(t.tgid, me);
        assert_eq!(t.nspid.last().copied(), Some(me), "{t:?}");
        assert!(t.pidns != 0);
        assert!(!still_zombie(
            me,
            crate::identity::ticks_to_ns(t.start_ticks)
        ));
    }

    #[test]
    fn a_listing_cut_short_is_complete_up_to_its_last_pid() {
        let (all, upto) =
            live_pids_until(std::time::Instant::now() + std::time::Duration::from_secs(60));
        assert_eq!(upto, u32::MAX);
        assert!(all.contains(&std::process::id()));
        // Out of time at once: whatever was read is complete up to the last pid read (the
        // first 256 entries are read before the clock is looked at).
        let (some, upto) = live_pids_until(std::time::Instant::now());
        assert!(some.iter().all(|&p| p <= upto), "{upto} {some:?}");
        assert!(some.len() <= 256);
    }
}
