//! Forks and exits every copy of their program skipped, recorded from `sched_switch` (see
//! `reaper_trace_common::backstop`).

use aya_ebpf::maps::HashMap;
use reaper_trace_common::{EXIT_FLAG_LATE, standby};

use crate::exit::record_exit;
use crate::fork::record_late_fork;
use crate::globals::off;
use crate::maps::{EXIT_MARKS, FORK_MARKS};
use crate::mem::{Direct, Mem};
use crate::scope::in_scope;

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

/// Notes that `task`'s fork or exit is recorded. A full map loses the note only: the switch
/// then records the call a second time, and userspace drops the repeat.
#[inline(always)]
pub(crate) fn mark(marks: &HashMap<u64, u8>, task: *const u8) {
    let _ = marks.insert(&(task as u64), &0, 0);
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
    if FORK_MARKS.remove(&(next as u64)).is_err() {
        record_late_fork(next);
    }
}

/// Dead `task`'s final switch: records its exit unless a copy of the exit program did.
#[inline(always)]
pub(crate) fn on_final_switch(task: *const u8) {
    if !backstop(standby::EXIT)
        || EXIT_MARKS.remove(&(task as u64)).is_ok()
        || !in_scope::<Direct>(task)
    {
        return;
    }
    let signal = Direct::ptr(task, off!(task_signal));
    let group_dead = (Direct::read::<u32>(signal, off!(signal_live)) == 0) as u32;
    record_exit(task, group_dead, 0, 0, EXIT_FLAG_LATE);
}
