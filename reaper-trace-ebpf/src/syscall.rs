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
