//! prctl(PR_SET_CHILD_SUBREAPER): a process becomes (or stops being) a subreaper.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use reaper_trace_common::{SubreaperEvent, kind, standby};

use crate::copies::{PRIMARY, run_copy};
use crate::emit::emit;
use crate::globals::enabled;
use crate::scope::in_scope;
use crate::syscall::{
    Current, PlainCurrent, TypedCurrent, call_token, nr, remember_call, take_call, tp_arg, tp_ret,
};
use crate::task::task_info;

pub(crate) const PR_SET_CHILD_SUBREAPER: u64 = 36;

/// prctl's arguments: the option, and its value (for `PR_SET_CHILD_SUBREAPER`, on or off).
pub(crate) const PRCTL_OPTION: usize = 0;
pub(crate) const PRCTL_ARG2: usize = 1;

#[tracepoint(category = "syscalls", name = "sys_enter_prctl")]
pub fn sys_enter_prctl(ctx: TracePointContext) -> u32 {
    if enabled() && tp_arg(&ctx, PRCTL_OPTION) == PR_SET_CHILD_SUBREAPER {
        remember_call(tp_arg(&ctx, PRCTL_ARG2), 0, 0);
    }
    0
}

#[inline(always)]
fn on_exit_prctl<C: Current>(ctx: &TracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let Some(call) = take_call() else { return 0 };
    if tp_ret(ctx) != 0 {
        return 0;
    }
    let on = call.arg0 != 0;
    run_copy::<PRIMARY>(
        standby::PRCTL,
        || call_token(nr::PRCTL, on as u64),
        || on_set_subreaper::<C>(on),
    );
    0
}

/// A successful `prctl(PR_SET_CHILD_SUBREAPER, on)` by the current task.
#[inline(always)]
pub(crate) fn on_set_subreaper<C: Current>(on: bool) {
    let task = C::task();
    if !in_scope::<C::M>(task) {
        return;
    }
    // SAFETY: SubreaperEvent starts with the header; every other field is written.
    unsafe {
        emit::<SubreaperEvent>(kind::SUBREAPER, |ev| {
            ev.task = task_info::<C::M>(task);
            ev.enabled = on as u32;
            ev._pad = 0;
        })
    };
}

#[tracepoint(category = "syscalls", name = "sys_exit_prctl")]
pub fn sys_exit_prctl(ctx: TracePointContext) -> u32 {
    on_exit_prctl::<TypedCurrent>(&ctx)
}

/// `sys_exit_prctl` for kernels without `bpf_get_current_task_btf` (before 5.11).
#[tracepoint(category = "syscalls", name = "sys_exit_prctl")]
pub fn sys_exit_prctl_plain(ctx: TracePointContext) -> u32 {
    on_exit_prctl::<PlainCurrent>(&ctx)
}
