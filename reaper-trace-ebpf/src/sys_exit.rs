//! `sys_exit` (BTF): the standby of the classic wait4, waitid and prctl exit programs.
//!
//! The kernel runs every classic tracepoint program of a CPU under one shared recursion
//! guard. Where syscall tracepoints run preemptibly (7.x) it skips a wait's program whenever
//! another classic program is preempted on that CPU, and no classic copy can cover it (it
//! would be skipped alike). A BTF tracepoint program has its own guard: this one runs after
//! the classic programs at the end of every system call, picks the three calls out by
//! number, and sends what their program did not (its token is not among those handled).
//! It costs every system call a program run, so userspace attaches it only where the skips
//! happen.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use reaper_trace_common::standby;

use crate::copies::run_copy;
use crate::globals::enabled;
use crate::prctl::{PR_SET_CHILD_SUBREAPER, PRCTL_ARG2, PRCTL_OPTION, on_set_subreaper};
use crate::syscall::{SavedCall, TypedCurrent, call_token, nr};
use crate::wait::{
    WAITID_INFOP, WAITID_OPTIONS, emit_wait, on_wait4, waitid_reaped, waitid_result,
};

/// The tracepoint's arguments: the saved registers, and the call's result.
const ARG_REGS: usize = 0;
const ARG_RET: usize = 1;
/// The first standby, after the classic primaries.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_standby(ctx: BtfTracePointContext) -> u32 {
    on_sys_exit::<1>(&ctx)
}

/// The second and third: a BTF program is skipped too while its own earlier run is preempted
/// on the same CPU; a call is lost only when all of them are.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_standby2(ctx: BtfTracePointContext) -> u32 {
    on_sys_exit::<2>(&ctx)
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_standby3(ctx: BtfTracePointContext) -> u32 {
    on_sys_exit::<3>(&ctx)
}

#[inline(always)]
fn on_sys_exit<const STANDBY: u32>(ctx: &BtfTracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let call = SavedCall::new(ctx.arg(ARG_REGS));
    let Some(number) = call.number() else {
        return 0;
    };
    let ret: i64 = ctx.arg(ARG_RET);
    match number {
        nr::WAIT4 if ret > 0 => run_copy::<STANDBY>(
            standby::WAIT4,
            || call_token(number, ret as u64),
            || on_wait4::<TypedCurrent>(ret as u32),
        ),
        nr::WAITID if ret == 0 => {
            let infop = call.arg(WAITID_INFOP);
            let (code, pid, status) = waitid_result(infop);
            if waitid_reaped(infop, call.arg(WAITID_OPTIONS), code, pid) {
                run_copy::<STANDBY>(
                    standby::WAITID,
                    || call_token(number, pid as u64),
                    || {
                        emit_wait::<TypedCurrent>(
                            reaper_trace_common::wait_syscall::WAITID,
                            pid as u32,
                            status,
                            code,
                        )
                    },
                )
            }
        }
        nr::PRCTL if ret == 0 && call.arg(PRCTL_OPTION) == PR_SET_CHILD_SUBREAPER => {
            let on = call.arg(PRCTL_ARG2) != 0;
            run_copy::<STANDBY>(
                standby::PRCTL,
                || call_token(number, on as u64),
                || on_set_subreaper::<TypedCurrent>(on),
            )
        }
        _ => {}
    }
    0
}
