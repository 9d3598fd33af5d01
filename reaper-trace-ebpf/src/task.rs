//! What a task's fields say: its identity, pids and pid namespace, subreaper bits, leader.

use reaper_trace_common::{MAX_PID_LEVELS, TaskId, TaskInfo, UPid};

use crate::globals::off;
use crate::mem::{Direct, Mem, rd, rd_ptr};

pub(crate) const PF_EXITING: u32 = 0x0000_0004;

/// The low 32 bits of `task_struct::self_exec_id`: how many times the task exec'd.
#[inline(always)]
pub(crate) fn exec_id(task: *const u8) -> u32 {
    Direct::read::<u64>(task, off!(task_self_exec_id)) as u32
}

#[inline(always)]
pub(crate) fn task_id<M: Mem>(task: *const u8) -> TaskId {
    TaskId {
        tid: M::read::<u32>(task, off!(task_pid)),
        tgid: M::read::<u32>(task, off!(task_tgid)),
        start_ns: M::read::<u64>(task, off!(task_start_boottime)),
    }
}

/// `&pid->numbers[level]` for a `struct pid *` (a plain address: the offset varies).
#[inline(always)]
fn upid_at(pid: *const u8, level: u32) -> *const u8 {
    pid.wrapping_add(off!(pid_numbers) + level as usize * off!(upid_size))
}

#[inline(always)]
pub(crate) fn pid_ns_inum(ns: *const u8) -> u32 {
    rd::<u32>(ns, off!(pidns_inum))
}

/// `task`'s pid number and pid namespace inode at `level`. Level 0 (most tasks) is a
/// constant offset; deeper levels vary, so they are probe-read from the pid's address.
#[inline(always)]
fn pid_at<M: Mem>(task: *const u8, level: u32) -> UPid {
    if level == 0 {
        let upid = M::ptr(task, off!(task_thread_pid)).wrapping_add(off!(pid_numbers));
        UPid {
            nr: M::read::<u32>(upid, off!(upid_nr)),
            pidns: M::read::<u32>(M::ptr(upid, off!(upid_ns)), off!(pidns_inum)),
        }
    } else {
        let upid = upid_at(rd_ptr(task, off!(task_thread_pid)), level);
        UPid {
            nr: rd::<u32>(upid, off!(upid_nr)),
            pidns: pid_ns_inum(rd_ptr(upid, off!(upid_ns))),
        }
    }
}

/// The task's pid namespace (`task_active_pid_ns`) and its level.
#[inline(always)]
pub(crate) fn task_pid_ns(task: *const u8) -> (*const u8, u32) {
    let pid = rd_ptr(task, off!(task_thread_pid));
    let level = rd::<u32>(pid, off!(pid_level));
    (rd_ptr(upid_at(pid, level), off!(upid_ns)), level)
}

#[inline(always)]
pub(crate) fn task_info<M: Mem>(task: *const u8) -> TaskInfo {
    let id = task_id::<M>(task);
    let level = M::read::<u32>(M::ptr(task, off!(task_thread_pid)), off!(pid_level));
    let own = pid_at::<M>(task, level);
    let ns_tgid = if id.tid == id.tgid {
        own.nr
    } else {
        pid_at::<M>(M::ptr(task, off!(task_group_leader)), level).nr
    };
    TaskInfo {
        id,
        ns_tid: own.nr,
        ns_tgid,
        pidns: own.pidns,
        level,
        comm: M::comm(task),
    }
}

#[inline(always)]
pub(crate) fn signal_bit(task: *const u8, byte: usize, bit: usize) -> bool {
    let signal = rd_ptr(task, off!(task_signal));
    rd::<u8>(signal, byte) & (1u8 << (bit & 7)) != 0
}

#[inline(always)]
pub(crate) fn is_child_subreaper(task: *const u8) -> bool {
    signal_bit(
        task,
        off!(signal_is_child_subreaper_byte),
        off!(signal_is_child_subreaper_bit),
    )
}

/// `SIGNAL_GROUP_EXIT` in `signal_struct::flags`: the wait status is `group_exit_code`.
pub(crate) const SIGNAL_GROUP_EXIT: u32 = 0x4;

/// The start time that names a process: its leader's (`de_thread` gives an exec'ing thread
/// the leader's start time, so it stays the same across exec).
#[inline(always)]
pub(crate) fn leader_start<M: Mem>(task: *const u8) -> u64 {
    M::read::<u64>(
        M::ptr(task, off!(task_group_leader)),
        off!(task_start_boottime),
    )
}

/// Pid numbers of `task` at levels `0..=level` (capped), zeros above, and zeros once the task
/// has been released (its `thread_pid` is then NULL).
#[inline(always)]
pub(crate) fn read_pids<M: Mem>(task: *const u8, level: u32, pids: &mut [UPid; MAX_PID_LEVELS]) {
    for (l, slot) in pids.iter_mut().enumerate() {
        *slot = if l as u32 <= level {
            pid_at::<M>(task, l as u32)
        } else {
            UPid::default()
        };
    }
}

/// Is `task` (thread `tid` of process `tgid`) a leader whose place a thread's exec took
/// (`de_thread`)? That thread has its tid and start time now, and the process lives on in it.
#[inline(always)]
pub(crate) fn is_replaced_leader(task: *const u8, tid: u32, tgid: u32) -> bool {
    tid == tgid && Direct::ptr(task, off!(task_group_leader)) != task
}
