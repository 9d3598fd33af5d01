//! `sched_process_fork`: a new task.

use aya_ebpf::programs::BtfTracePointContext;
use reaper_trace_common::{FORK_FLAG_THREAD, ForkEvent, kind, lost_slot, standby};

use crate::copies::{copies, task_token};
use crate::emit::{count_lost, emit};
use crate::globals::off;
use crate::maps::TRACKED;
use crate::mem::{Direct, Mem};
use crate::scope::{in_scope, tree_scope};
use crate::task::{task_id, task_info};

fn on_fork(ctx: &BtfTracePointContext) {
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    if tree_scope() {
        if !in_scope::<Direct>(parent) {
            return;
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
        emit::<ForkEvent>(kind::FORK, |ev| {
            ev.parent = task_info::<Direct>(parent);
            ev.child = task_info::<Direct>(child);
            // The caller, unless CLONE_PARENT (or a thread) gave the child another parent.
            let real_parent = Direct::ptr(child, off!(task_real_parent));
            ev.real_parent = if real_parent == parent {
                ev.parent.id
            } else {
                task_id::<Direct>(real_parent)
            };
            ev.flags = if ev.child.id.tid != ev.child.id.tgid {
                FORK_FLAG_THREAD
            } else {
                0
            };
            ev._pad = 0;
        })
    };
}

copies!(
    "sched_process_fork",
    standby::FORK,
    |ctx, COPY| (task_token(ctx, 1), on_fork(ctx)),
    sched_process_fork,
    sched_process_fork_standby,
    sched_process_fork_standby2
);
