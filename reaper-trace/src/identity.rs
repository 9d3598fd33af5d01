//! When two descriptions name the same task. Every "same task" question in userspace is
//! answered here: the clock tick `/proc` gives start times in, the start-time rule (with an
//! unknown start), and the thread-group rule.
//!
//! A task is a thread id plus the time it started: thread ids are reused (`pid_max` is small),
//! start times are not. Kernel records give start times in nanoseconds (`CLOCK_BOOTTIME`);
//! tasks that existed before tracing began are known from `/proc`, whose start times are whole
//! clock ticks.

use crate::event::Proc;

/// Clock ticks per second of `/proc/PID/stat`'s start time: `USER_HZ`, fixed at 100 by the
/// kernel's ABI on Linux whatever its internal `HZ`.
pub const USER_HZ: u64 = 100;
/// One clock tick: the resolution of a start time read from `/proc`.
pub const NS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;
/// The start time of a task named only by its id (an event that did not know more): it
/// matches any start.
pub const UNKNOWN_START: u64 = 0;

/// A start time as `/proc` gives it (clock ticks), in nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ticks * NS_PER_TICK
}

/// The clock tick a start time falls in: what `/proc` would show for it.
pub fn start_tick(start_ns: u64) -> u64 {
    start_ns / NS_PER_TICK
}

/// The start-time rule: equal start times, or, when one of them is a whole tick (it came from
/// `/proc`), the same tick. A kernel start time that is an exact multiple of a tick is rare,
/// and a tid reused within the same tick is impossible (`pid_max` pids would have to be
/// allocated in between).
pub fn same_start(a: u64, b: u64) -> bool {
    a == b
        || ((a.is_multiple_of(NS_PER_TICK) || b.is_multiple_of(NS_PER_TICK))
            && start_tick(a) == start_tick(b))
}

/// [`same_start`], where `start` may be [`UNKNOWN_START`]: an unknown start matches.
pub fn same_start_or_unknown(known: u64, start: u64) -> bool {
    start == UNKNOWN_START || same_start(known, start)
}

/// Whether a start time in nanoseconds is the one `/proc` showed as `ticks`: [`same_start`]
/// with a whole tick on one side.
pub fn start_in_tick(start_ns: u64, ticks: u64) -> bool {
    start_tick(start_ns) == ticks
}

/// The thread-group rule for ids: a thread is its process's leader when its thread id is the
/// process (thread group) id.
pub fn is_leader_id(tid: u32, tgid: u32) -> bool {
    tid == tgid
}

/// How far apart two start times may be and still be in order: one of them may be a whole
/// tick from `/proc`, up to a tick earlier than the nanosecond it stands for.
const ORDER_SLACK_NS: u64 = NS_PER_TICK;

/// The thread-group rule across pid reuse: whether thread `p` belongs to the process `pid`
/// whose leader started at `leader_start` (when known) and whose earliest known thread started
/// at `first_start`, rather than to a later process with the same pid. Same thread group id,
/// and the leader is the one that started first: a thread starts after its leader.
pub fn in_thread_group(p: &Proc, pid: u32, leader_start: Option<u64>, first_start: u64) -> bool {
    if p.pid != pid {
        return false;
    }
    match (p.is_leader(), leader_start) {
        (true, Some(leader)) => same_start(leader, p.start),
        // The leader starts before every other thread.
        (true, None) => p.start < first_start + ORDER_SLACK_NS,
        (false, Some(leader)) => p.start + ORDER_SLACK_NS > leader,
        (false, None) => true,
    }
}

impl Proc {
    /// Whether two descriptions name the same task: the same thread id and [`same_start`].
    pub fn same_task(&self, other: &Proc) -> bool {
        self.tid == other.tid && same_start(self.start, other.start)
    }

    /// Whether this thread is its process's leader (its tid is the process id).
    pub fn is_leader(&self) -> bool {
        is_leader_id(self.tid, self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel start time 3.7 ms into tick 5.
    const KERNEL_START: u64 = 5 * NS_PER_TICK + 3_700_000;

    fn task(tid: u32, pid: u32, start: u64) -> Proc {
        Proc {
            pid,
            tid,
            ns_pid: pid,
            ns_tid: tid,
            pidns: 1,
            start,
            comm: "t".into(),
        }
    }

    #[test]
    fn a_whole_tick_from_proc_is_the_kernel_start_in_that_tick() {
        let from_proc = ticks_to_ns(5);
        assert!(same_start(from_proc, KERNEL_START));
        assert!(same_start(KERNEL_START, from_proc));
        assert!(start_in_tick(KERNEL_START, 5));
        assert_eq!(start_tick(KERNEL_START), 5);
        assert!(task(7, 7, from_proc).same_task(&task(7, 7, KERNEL_START)));
    }

    #[test]
    fn different_ticks_are_different_tasks() {
        assert!(!same_start(ticks_to_ns(4), KERNEL_START));
        assert!(!same_start(ticks_to_ns(6), KERNEL_START));
        assert!(!start_in_tick(KERNEL_START, 6));
        // Two kernel starts in the same tick are exact: neither is a whole tick.
        assert!(!same_start(KERNEL_START, KERNEL_START + 1));
        assert!(same_start(KERNEL_START, KERNEL_START));
    }

    #[test]
    fn an_unknown_start_matches_any_but_only_where_allowed() {
        assert!(same_start_or_unknown(KERNEL_START, UNKNOWN_START));
        assert!(same_start_or_unknown(KERNEL_START, ticks_to_ns(5)));
        assert!(!same_start_or_unknown(KERNEL_START, ticks_to_ns(6)));
        // The plain rule does not treat 0 as unknown: it is tick 0.
        assert!(!same_start(KERNEL_START, UNKNOWN_START));
    }

    #[test]
    fn a_reused_tid_is_another_task() {
        let first = task(300, 300, KERNEL_START);
        let reused = task(300, 300, KERNEL_START + 40 * NS_PER_TICK);
        assert!(!first.same_task(&reused));
        assert!(!reused.same_task(&first));
        // Another tid with the same start is another task too.
        assert!(!first.same_task(&task(301, 300, KERNEL_START)));
    }

    #[test]
    fn a_thread_belongs_to_its_leaders_process_not_a_later_one() {
        let leader = task(10, 10, KERNEL_START);
        let thread = task(11, 10, KERNEL_START + 1_000);
        assert!(leader.is_leader() && !thread.is_leader());
        assert!(in_thread_group(
            &thread,
            10,
            Some(leader.start),
            leader.start
        ));
        assert!(in_thread_group(
            &leader,
            10,
            Some(leader.start),
            leader.start
        ));
        // The leader as /proc showed it (a whole tick) is still the leader.
        assert!(in_thread_group(
            &leader,
            10,
            Some(ticks_to_ns(5)),
            ticks_to_ns(5)
        ));
        // Another thread group, or a thread started before the leader (a reused pid's).
        assert!(!in_thread_group(
            &thread,
            12,
            Some(leader.start),
            leader.start
        ));
        let earlier = task(9, 10, KERNEL_START - 2 * NS_PER_TICK);
        assert!(!in_thread_group(
            &earlier,
            10,
            Some(leader.start),
            leader.start
        ));
        // A leader started after threads of the old process is a new one.
        let new_leader = task(10, 10, KERNEL_START + 40 * NS_PER_TICK);
        assert!(!in_thread_group(&new_leader, 10, None, KERNEL_START));
        assert!(in_thread_group(&thread, 10, None, KERNEL_START));
    }
}
