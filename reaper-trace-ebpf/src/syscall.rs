//! What the syscall programs share: their tracepoint records, the current task, and the
//! arguments kept from a syscall's entry to its exit.

use core::ptr::read_volatile;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated},
    programs::TracePointContext,
};
use reaper_trace_common::{PendingCall, lost_slot};

use crate::emit::count_lost;
use crate::maps::CALLS;
use crate::mem::{Direct, Mem, Probe};

#[inline(always)]
fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
pub(crate) fn remember_call(arg0: u64, arg1: u64, arg2: u64) {
    // Field by field, volatile, and inserted from where it was written: with constant zeros
    // in a copy of it, LLVM would call `memset`.
    let mut call = core::mem::MaybeUninit::<PendingCall>::uninit();
    let p = call.as_mut_ptr();
    // SAFETY: writes every field of the local value, then lends it to the map.
    let call = unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*p).arg0), arg0);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*p).arg1), arg1);
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*p).arg2), arg2);
        call.assume_init_ref()
    };
    if CALLS.insert(current_tid(), call, 0).is_err() {
        count_lost(lost_slot::CALLS_FULL);
    }
}

#[inline(always)]
pub(crate) fn take_call() -> Option<PendingCall> {
    let tid = current_tid();
    // SAFETY: copied out before the entry is removed.
    let call = unsafe { CALLS.get(tid) }.copied()?;
    let _ = CALLS.remove(tid);
    Some(call)
}

/// How a syscall program finds the task it runs for. [`TypedCurrent`] gets a BTF-typed
/// pointer (`bpf_get_current_task_btf`, Linux 5.11+), read [`Direct`]ly; [`PlainCurrent`] a
/// plain address read through the [`Probe`] helper, for older kernels. Userspace loads the
/// programs built on the one the kernel has.
pub(crate) trait Current {
    type M: Mem;
    fn task() -> *const u8;
}

pub(crate) struct TypedCurrent;
pub(crate) struct PlainCurrent;

impl Current for TypedCurrent {
    type M = Direct;

    #[inline(always)]
    fn task() -> *const u8 {
        // SAFETY: no preconditions.
        unsafe { generated::bpf_get_current_task_btf() as *const u8 }
    }
}

impl Current for PlainCurrent {
    type M = Probe;

    #[inline(always)]
    fn task() -> *const u8 {
        // SAFETY: no preconditions.
        unsafe { generated::bpf_get_current_task() as *const u8 }
    }
}

/// Offsets of the classic syscall tracepoint records (stable ABI: see the `format` files).
const SYSCALL_ARG0: usize = 16;
const SYSCALL_RET: usize = 16;

/// A field of the tracepoint's record, read directly (the verifier checks context accesses).
#[inline(always)]
fn tp_field<T: Copy>(ctx: &TracePointContext, off: usize) -> T {
    use aya_ebpf::EbpfContext;
    // SAFETY: a constant offset inside the syscall tracepoint's record.
    unsafe { read_volatile((ctx.as_ptr() as *const u8).add(off) as *const T) }
}

#[inline(always)]
pub(crate) fn tp_arg(ctx: &TracePointContext, n: usize) -> u64 {
    tp_field::<u64>(ctx, SYSCALL_ARG0 + 8 * n)
}

#[inline(always)]
pub(crate) fn tp_ret(ctx: &TracePointContext) -> i64 {
    tp_field::<i64>(ctx, SYSCALL_RET)
}

/// System call numbers (x86-64) of the calls whose results are records.
pub(crate) mod nr {
    pub(crate) const WAIT4: u64 = 61;
    pub(crate) const PRCTL: u64 = 157;
    pub(crate) const WAITID: u64 = 247;
}

/// The token of one result of a call by the current thread (see `copies::run_copy`): the
/// thread, the call's number and `value` (the pid reaped, or the value set). The classic
/// exit programs and their `sys_exit` standby compute it alike.
#[inline(always)]
pub(crate) fn call_token(number: u64, value: u64) -> [u64; 2] {
    [
        bpf_get_current_pid_tgid(),
        (number << 32) | (value & u32::MAX as u64),
    ]
}

/// Offsets in `struct pt_regs` (x86-64, a fixed ABI): the call's number, its first four
/// arguments, and the code segment it came from.
mod regs {
    pub(super) const R10: usize = 7 * 8;
    pub(super) const DX: usize = 12 * 8;
    pub(super) const SI: usize = 13 * 8;
    pub(super) const DI: usize = 14 * 8;
    pub(super) const ORIG_AX: usize = 15 * 8;
    pub(super) const CS: usize = 17 * 8;
}

/// The 64-bit user code segment (`__USER_CS`): a 32-bit (compat) process's calls come from
/// another one and are numbered differently.
const USER_CS: u64 = 0x33;

/// The call a `sys_exit` BTF tracepoint reports, from the registers the kernel saved when it
/// was made (the tracepoint's first argument, BTF-typed).
pub(crate) struct SavedCall {
    regs: *const u8,
}

impl SavedCall {
    #[inline(always)]
    pub(crate) fn new(regs: *const u8) -> Self {
        Self { regs }
    }

    /// The call's number, or `None` for a 32-bit process's call.
    #[inline(always)]
    pub(crate) fn number(&self) -> Option<u64> {
        (Direct::read::<u64>(self.regs, regs::CS) == USER_CS)
            .then(|| Direct::read::<u64>(self.regs, regs::ORIG_AX))
    }

    /// Argument `n` (0 to 3) as passed: the kernel leaves the saved argument registers alone.
    #[inline(always)]
    pub(crate) fn arg(&self, n: usize) -> u64 {
        let off = match n {
            0 => regs::DI,
            1 => regs::SI,
            2 => regs::DX,
            _ => regs::R10,
        };
        Direct::read::<u64>(self.regs, off)
    }
}
