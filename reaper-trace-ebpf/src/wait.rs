//! wait4 and waitid: a reap.

use aya_ebpf::{helpers::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext};
use reaper_trace_common::{
    WAIT_STATUS_UNKNOWN, WaitEvent, cld, kind, ns_pid_key, standby, wait_syscall,
};

use crate::copies::{PRIMARY, run_copy};
use crate::emit::emit;
use crate::globals::enabled;
use crate::maps::TRACKED_ZOMBIE_PIDS;
use crate::scope::{in_scope, tree_scope};
use crate::syscall::{
    Current, PlainCurrent, TypedCurrent, call_token, nr, remember_call, take_call, tp_arg, tp_ret,
};
use crate::task::{pid_ns_inum, task_info, task_pid_ns};

pub(crate) const WNOWAIT: u64 = 0x0100_0000;

/// waitid's arguments: `infop` and `options`.
pub(crate) const WAITID_INFOP: usize = 2;
pub(crate) const WAITID_OPTIONS: usize = 3;

/// Where `siginfo_t` (64-bit) holds the fields of a SIGCHLD: `si_code`, `si_pid`, `si_status`.
const SI_CODE: usize = 8;
const SI_PID: usize = 16;
const SI_STATUS: usize = 24;

/// A wait that returned `pid`. In tree scope it is recorded when the waiter is in the tree,
/// or when `pid` names one of the tree's zombies in the waiter's namespace (a reaper outside
/// the tree that adopted one of its orphans).
pub(crate) fn emit_wait<C: Current>(syscall: u32, pid: u32, status: i32, code: i32) {
    let waiter = C::task();
    if tree_scope() && !in_scope::<C::M>(waiter) {
        let (ns, _) = task_pid_ns(waiter);
        let key = ns_pid_key(pid_ns_inum(ns), pid);
        // SAFETY: only the presence is used.
        if unsafe { TRACKED_ZOMBIE_PIDS.get(&key) }.is_none() {
            return;
        }
        let _ = TRACKED_ZOMBIE_PIDS.remove(&key);
    }
    // SAFETY: WaitEvent starts with the header; every other field is written.
    unsafe {
        emit::<WaitEvent>(kind::WAIT, |ev| {
            ev.waiter = task_info::<C::M>(waiter);
            ev.syscall = syscall;
            ev.pid = pid;
            ev.status = status;
            ev.code = code;
        })
    };
}

/// wait4's result is enough: the pid it returns names a process the model knows to be
/// exiting or a zombie (a reap), or one that stopped or continued (not a reap). So no entry
/// program, no map of pending calls, and no user memory read for it.
#[inline(always)]
fn on_exit_wait4<C: Current>(ctx: &TracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let ret = tp_ret(ctx);
    if ret > 0 {
        run_copy::<PRIMARY>(
            standby::WAIT4,
            || call_token(nr::WAIT4, ret as u64),
            || on_wait4::<C>(ret as u32),
        );
    }
    0
}

/// A wait4 that returned `pid`.
#[inline(always)]
pub(crate) fn on_wait4<C: Current>(pid: u32) {
    emit_wait::<C>(wait_syscall::WAIT4, pid, WAIT_STATUS_UNKNOWN, 0);
}

/// What a successful waitid wrote to its `siginfo_t` at `infop`: (code, pid, status).
#[inline(always)]
pub(crate) fn waitid_result(infop: u64) -> (i32, i32, i32) {
    let infop = infop as *const u8;
    // SAFETY: user memory reads by the helper.
    unsafe {
        (
            bpf_probe_read_user(infop.wrapping_add(SI_CODE) as *const i32).unwrap_or(0),
            bpf_probe_read_user(infop.wrapping_add(SI_PID) as *const i32).unwrap_or(0),
            bpf_probe_read_user(infop.wrapping_add(SI_STATUS) as *const i32).unwrap_or(0),
        )
    }
}

/// Whether a waitid with `options` (into `infop`) that wrote (`code`, `pid`) reaped:
/// `WNOWAIT` leaves the zombie, and only an exit or a killing signal is a reap.
#[inline(always)]
pub(crate) fn waitid_reaped(infop: u64, options: u64, code: i32, pid: i32) -> bool {
    infop != 0 && options & WNOWAIT == 0 && pid > 0 && (cld::EXITED..=cld::DUMPED).contains(&code)
}

#[tracepoint(category = "syscalls", name = "sys_exit_wait4")]
pub fn sys_exit_wait4(ctx: TracePointContext) -> u32 {
    on_exit_wait4::<TypedCurrent>(&ctx)
}

/// `sys_exit_wait4` for kernels without `bpf_get_current_task_btf` (before 5.11).
#[tracepoint(category = "syscalls", name = "sys_exit_wait4")]
pub fn sys_exit_wait4_plain(ctx: TracePointContext) -> u32 {
    on_exit_wait4::<PlainCurrent>(&ctx)
}

#[tracepoint(category = "syscalls", name = "sys_enter_waitid")]
pub fn sys_enter_waitid(ctx: TracePointContext) -> u32 {
    if enabled() {
        remember_call(tp_arg(&ctx, WAITID_INFOP), tp_arg(&ctx, WAITID_OPTIONS), 0);
    }
    0
}

#[inline(always)]
fn on_exit_waitid<C: Current>(ctx: &TracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let Some(call) = take_call() else { return 0 };
    if tp_ret(ctx) != 0 {
        return 0;
    }
    let (code, pid, status) = waitid_result(call.arg0);
    if waitid_reaped(call.arg0, call.arg1, code, pid) {
        run_copy::<PRIMARY>(
            standby::WAITID,
            || call_token(nr::WAITID, pid as u64),
            || emit_wait::<C>(wait_syscall::WAITID, pid as u32, status, code),
        );
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_waitid")]
pub fn sys_exit_waitid(ctx: TracePointContext) -> u32 {
    on_exit_waitid::<TypedCurrent>(&ctx)
}

/// `sys_exit_waitid` for kernels without `bpf_get_current_task_btf` (before 5.11).
#[tracepoint(category = "syscalls", name = "sys_exit_waitid")]
pub fn sys_exit_waitid_plain(ctx: TracePointContext) -> u32 {
    on_exit_waitid::<PlainCurrent>(&ctx)
}
