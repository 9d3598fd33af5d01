//! `sched_process_fork`: a new task.

use aya_ebpf::programs::BtfTracePointContext;
use reaper_trace_common::{FORK_FLAG_LATE, FORK_FLAG_THREAD, ForkEvent, kind, lost_slot, standby};

use crate::backstop::{backstop, mark, skipped_for_test};
use crate::copies::{copies, task_token};
use crate::emit::{count_lost, emit};
use crate::globals::off;
use crate::maps::{FORK_MARKS, TRACKED};
use crate::mem::{Direct, Mem};
use crate::scope::{in_scope, tree_scope};
use crate::task::{task_id, task_info};

fn on_fork(ctx: &BtfTracePointContext) {
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    if skipped_for_test(child) {
        if in_scope::<Direct>(parent) {
            count_lost(kind::FORK);
        }
        return;
    }
    if record_fork(parent, child, 0) && backstop(standby::FORK) {
        mark(&FORK_MARKS, child);
    }
}

/// Records `caller`'s fork of `child` (with `FORK_FLAG_LATE` in `late`: at the child's first
/// switch in, timed at its start). In tree scope, adds a new process to the scope map when its
/// caller is in scope, and records nothing otherwise. Returns whether the record was sent.
#[inline(always)]
pub(crate) fn record_fork(caller: *const u8, child: *const u8, late: u32) -> bool {
    if tree_scope() {
        if !in_scope::<Direct>(caller) {
            return false;
        }
        let tid = Direct::read::<u32>(child, off!(task_pid));
        let tgid = Direct::read::<u32>(child, off!(task_tgid));
        let start = Direct::read::<u64>(child, off!(task_start_boottime));
        if tid == tgid && TRACKED.insert(&tgid, &start, 0).is_err() {
            count_lost(lost_slot::SCOPE_FULL);
        }
    }
    // SAFETY: ForkEvent starts with the header; every other field is written.
    unsafe {
        emit::<ForkEvent>(
            kind::FORK,
            // See `record_exit`.
            #[inline(always)]
            |ev| {
                ev.parent = task_info::<Direct>(caller);
                ev.child = task_info::<Direct>(child);
                // The caller, unless CLONE_PARENT (or a thread) gave the child another parent.
                let real_parent = Direct::ptr(child, off!(task_real_parent));
                ev.real_parent = if real_parent == caller {
                    ev.parent.id
                } else {
                    task_id::<Direct>(real_parent)
                };
                ev.flags = if ev.child.id.tid != ev.child.id.tgid {
                    FORK_FLAG_THREAD
                } else {
                    0
                } | late;
                if late != 0 {
                    ev.hdr.ts_ns = ev.child.id.start_ns;
                }
                ev._pad = 0;
            },
        )
    }
}

/// A fork every copy of the fork program skipped, recorded at the child's first switch in:
/// by its `real_parent` for a process, by its group leader for a thread.
#[inline(always)]
pub(crate) fn record_late_fork(child: *const u8) {
    let caller = if Direct::read::<u32>(child, off!(task_pid))
        == Direct::read::<u32>(child, off!(task_tgid))
    {
        Direct::ptr(child, off!(task_real_parent))
    } else {
        Direct::ptr(child, off!(task_group_leader))
    };
    record_fork(caller, child, FORK_FLAG_LATE);
}

copies!(
    "sched_process_fork",
    standby::FORK,
    |ctx, COPY| (task_token(ctx, 1), on_fork(ctx)),
    sched_process_fork,
    sched_process_fork_standby,
    sched_process_fork_standby2
);
