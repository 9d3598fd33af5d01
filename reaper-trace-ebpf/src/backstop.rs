//! Forks and exits every copy of their program skipped, recorded from `sched_switch` (see
//! `reaper_trace_common::backstop`).

use aya_ebpf::maps::LruHashMap;
use reaper_trace_common::{EXIT_FLAG_LATE, standby};

use crate::exit::record_exit;
use crate::fork::record_late_fork;
use crate::globals::off;
use crate::maps::{EXIT_MARKS, FORK_MARKS};
use crate::mem::{Direct, Mem};
use crate::scope::in_scope;

/// `task_struct::flags` of a worker thread made by `create_io_thread` (5.12) and of one made by
/// `vhost_task_create` / `user_worker` (6.4).
const PF_IO_WORKER: u32 = 0x0000_0010;
const PF_USER_WORKER: u32 = 0x0000_4000;

/// Are the skipped calls of `hook` recorded by `sched_switch`? Read-only data: where they are
/// not, the verifier drops the code.
#[inline(always)]
pub(crate) fn backstop(hook: u32) -> bool {
    off!(backstop_hooks) & (1 << hook) != 0
}

/// For tests (`Offsets::test_skip_mask`): is `task`'s call one to act on as if the kernel had
/// skipped every copy of the program? The caller counts it as lost where the task is in scope.
#[inline(always)]
pub(crate) fn skipped_for_test(task: *const u8) -> bool {
    let mask = off!(test_skip_mask) as u32;
    mask != 0 && Direct::read::<u32>(task, off!(task_pid)) & mask == 0
}

/// Notes that `task`'s fork or exit is recorded. A mark the map lost (evicted as least
/// recently used) makes the switch record the call a second time, and userspace drops the
/// repeat.
#[inline(always)]
pub(crate) fn mark(marks: &LruHashMap<u64, u64>, task: *const u8) {
    let start = Direct::read::<u64>(task, off!(task_start_boottime));
    let _ = marks.insert(&(task as u64), &start, 0);
}

/// Takes `task`'s mark off: was its call recorded? A mark left at the same address by an
/// earlier task (one that never ran, or whose switch was not seen) is not its.
#[inline(always)]
fn take_mark(marks: &LruHashMap<u64, u64>, task: *const u8) -> bool {
    let key = task as u64;
    // SAFETY: the value is copied out at once.
    let Some(start) = (unsafe { marks.get(&key) }).copied() else {
        return false;
    };
    let _ = marks.remove(&key);
    start == Direct::read::<u64>(task, off!(task_start_boottime))
}

/// `next` is switched in: on its first run (it has run for no time yet, and is not an idle
/// task), records its fork unless a copy of the fork program did.
#[inline(always)]
pub(crate) fn on_switch_in(next: *const u8) {
    if !backstop(standby::FORK)
        || Direct::read::<u64>(next, off!(task_sum_exec_runtime)) != 0
        || Direct::read::<u32>(next, off!(task_pid)) == 0
    {
        return;
    }
    // io_uring's and vhost's workers are made without the fork tracepoint: no record to make
    // up for.
    if !take_mark(&FORK_MARKS, next)
        && Direct::read::<u32>(next, off!(task_flags)) & (PF_IO_WORKER | PF_USER_WORKER) == 0
    {
        record_late_fork(next);
    }
}

/// Dead `task`'s final switch: records its exit unless a copy of the exit program did.
#[inline(always)]
pub(crate) fn on_final_switch(task: *const u8) {
    if !backstop(standby::EXIT) || take_mark(&EXIT_MARKS, task) || !in_scope::<Direct>(task) {
        return;
    }
    let signal = Direct::ptr(task, off!(task_signal));
    let group_dead = (Direct::read::<u32>(signal, off!(signal_live)) == 0) as u32;
    record_exit(task, group_dead, 0, 0, EXIT_FLAG_LATE);
}
