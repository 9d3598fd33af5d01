//! `sched_process_free`: a task's memory is released.

use aya_ebpf::programs::BtfTracePointContext;
use reaper_trace_common::{FREE_REPLACED_LEADER, FreeEvent, kind, standby};

use crate::copies::{copies, task_token};
use crate::emit::emit;
use crate::maps::TRACKED;
use crate::mem::Direct;
use crate::scope::{in_scope, tree_scope};
use crate::task::{exec_id, is_replaced_leader, task_id};

copies!(
    "sched_process_free",
    standby::FREE,
    |ctx, COPY| (task_token(ctx, 0), on_free(ctx)),
    sched_process_free,
    sched_process_free_standby,
    sched_process_free_standby2
);

fn on_free(ctx: &BtfTracePointContext) {
    let task: *const u8 = ctx.arg(0);
    if !in_scope::<Direct>(task) {
        return;
    }
    let id = task_id::<Direct>(task);
    let replaced = is_replaced_leader(task, id.tid, id.tgid);
    if tree_scope() && id.tid == id.tgid && !replaced {
        // The process is gone for good: its pid may now name another one.
        let _ = TRACKED.remove(&id.tgid);
    }
    // SAFETY: FreeEvent starts with the header; every other field is written.
    unsafe {
        emit::<FreeEvent>(kind::FREE, |ev| {
            ev.task = id;
            ev.exec_id = exec_id(task);
            ev.flags = if replaced { FREE_REPLACED_LEADER } else { 0 };
        })
    };
}
