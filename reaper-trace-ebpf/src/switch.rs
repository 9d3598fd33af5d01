//! `sched_switch`: a dead task's final switch, after the kernel reparented its children.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

use crate::backstop::{on_final_switch, on_switch_in};
use crate::dead::report_dead;
use crate::globals::{enabled, off};
use crate::loops::{BoundedLoop, HelperLoop, Repeat};
use crate::maps::{CALLS, PENDING};
use crate::mem::{Direct, Mem};
use crate::reparent::report_adoptions;
use crate::scope::in_scope;
use crate::task::is_replaced_leader;

const TASK_DEAD: u32 = 0x80;

/// The dead task's last switch: reparenting is done, read the results.
fn on_task_dead<L: Repeat>(task: *const u8) {
    // Before what follows from it.
    on_final_switch(task);
    let key = task as u64;
    // Only tasks in scope at their exit have an entry.
    // SAFETY: the map value stays valid until we remove it below.
    if let Some(pending) = unsafe { PENDING.get(&key) } {
        report_adoptions::<L>(task, pending);
        let _ = PENDING.remove(&key);
    }
    // A task killed inside wait or prctl never reaches the syscall's exit tracepoint. (Not a
    // replaced leader: its tid is the exec'd program's now, and so are the calls under it.)
    let tid = Direct::read::<u32>(task, off!(task_pid));
    if !is_replaced_leader(task, tid, Direct::read::<u32>(task, off!(task_tgid))) {
        let _ = CALLS.remove(&tid);
    }
    // The process is done once no other thread is left to release (`nr_threads` counts the
    // threads not yet released; exited threads are released before their final switch).
    let signal = Direct::ptr(task, off!(task_signal));
    if Direct::read::<u32>(signal, off!(signal_nr_threads)) <= 1 && in_scope::<Direct>(task) {
        report_dead(task, signal);
    }
}

/// Runs on every context switch: returns at once unless the next task runs for the first time
/// (where forks have a backstop) or the previous task is dead. Its state
/// is read from the task (the tracepoint's `prev_state` argument only exists since 5.18): a
/// dead task's final switch is never a preemption, so the two agree for it.
#[inline(always)]
fn on_switch<L: Repeat>(ctx: &BtfTracePointContext) -> u32 {
    on_switch_in(ctx.arg(2));
    let prev: *const u8 = ctx.arg(1);
    // A rodata constant: the verifier drops the branch not taken (and never sees the missing
    // argument on older kernels).
    let prev_state: u32 = if off!(switch_has_prev_state) != 0 {
        ctx.arg(3)
    } else {
        Direct::read::<u32>(prev, off!(task_state))
    };
    if prev_state & TASK_DEAD == 0 || !enabled() {
        return 0;
    }
    on_task_dead::<L>(prev);
    0
}

#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch(ctx: BtfTracePointContext) -> u32 {
    on_switch::<HelperLoop>(&ctx)
}

/// `sched_switch` for kernels without `bpf_loop` (before 5.17).
#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch_bounded(ctx: BtfTracePointContext) -> u32 {
    on_switch::<BoundedLoop>(&ctx)
}
