//! Standby copies of a hook's program (see `reaper_trace_common::standby`).

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use aya_ebpf::programs::BtfTracePointContext;
use reaper_trace_common::standby;

use crate::globals::off;
use crate::maps::HANDLED;
use crate::mem::{Direct, Mem};
use crate::task::exec_id;

/// The primary copy of a program (see [`standby`]).
pub(crate) const PRIMARY: u32 = 0;

/// Runs `work` as copy `COPY` of the programs of `hook`, for the call named by `token`. The
/// primary copy always works. A standby copy runs after the copies before it in the same call
/// (the kernel calls them in the order they were attached), so the call's token is among the
/// last ones handled on this CPU if one of them worked: it works only if the token is not.
/// Each copy notes the token before it works. Where a preempted copy's note is overwritten
/// halfway, a token can go missing: the record is then sent twice, and userspace drops the
/// second one (`standby_repeats`). Where the hook has no standby attached (kernels that never
/// skip a program), the primary just works: the token is not even computed (the flag is
/// read-only data, so the verifier drops the branch not taken).
#[inline(always)]
pub(crate) fn run_copy<const COPY: u32>(
    hook: u32,
    token: impl FnOnce() -> [u64; 2],
    work: impl FnOnce(),
) {
    if COPY == PRIMARY && off!(standby_hooks) & (1 << hook) == 0 {
        work();
        return;
    }
    let token = token();
    let Some(handled) = HANDLED.get_ptr_mut(hook) else {
        return;
    };
    // SAFETY: a per-CPU map value; a program preempted on this CPU may write it between
    // these accesses (volatile: each one is done as written).
    unsafe {
        if COPY != PRIMARY {
            let tokens = addr_of_mut!((*handled).tokens);
            for i in 0..standby::RING as usize {
                if read_volatile(addr_of!((*tokens)[i])) == token {
                    return;
                }
            }
        }
        let next = read_volatile(addr_of!((*handled).next));
        let slot = (next as usize) & (standby::RING as usize - 1);
        write_volatile(addr_of_mut!((*handled).tokens[slot]), token);
        write_volatile(addr_of_mut!((*handled).next), next.wrapping_add(1));
    }
    work();
}

/// The programs of a hook with standby copies: `$primary` then its standby copies, each one
/// running `$work` for the call `$token` names (given the context, and its copy number as a
/// const) through [`run_copy`].
macro_rules! copies {
    ($hook_fn:literal, $hook:expr, |$ctx:ident, $copy:ident| ($token:expr, $work:expr), $primary:ident, $($standby:ident),+) => {
        copies!(@one $hook_fn, $hook, |$ctx, $copy| ($token, $work), $primary, 0);
        copies!(@standbys $hook_fn, $hook, |$ctx, $copy| ($token, $work), 1, $($standby),+);
    };
    (@standbys $hook_fn:literal, $hook:expr, |$ctx:ident, $copy:ident| ($token:expr, $work:expr), $n:expr, $first:ident $(, $rest:ident)*) => {
        copies!(@one $hook_fn, $hook, |$ctx, $copy| ($token, $work), $first, $n);
        copies!(@standbys $hook_fn, $hook, |$ctx, $copy| ($token, $work), $n + 1, $($rest),*);
    };
    (@standbys $hook_fn:literal, $hook:expr, |$ctx:ident, $copy:ident| ($token:expr, $work:expr), $n:expr,) => {};
    (@one $hook_fn:literal, $hook:expr, |$ctx:ident, $copy:ident| ($token:expr, $work:expr), $name:ident, $n:expr) => {
        #[aya_ebpf::macros::btf_tracepoint(function = $hook_fn)]
        pub fn $name(ctx: aya_ebpf::programs::BtfTracePointContext) -> u32 {
            const $copy: u32 = $n;
            if $crate::globals::enabled() {
                let $ctx = &ctx;
                $crate::copies::run_copy::<$copy>($hook, || $token, || $work);
            }
            0
        }
    };
}
pub(crate) use copies;

/// The token of a call about `task` (argument `arg` of the tracepoint): its tid with its exec
/// count, and its start time. These name one fork, one exec, one exit and one release: a task
/// execs more than once, and a thread that execs takes its old leader's tid and start time
/// (`de_thread`), while the leader exits and is released with the count it had. Numbers, not
/// the task's address: the verifier allows no arithmetic on a trusted pointer.
#[inline(always)]
pub(crate) fn task_token(ctx: &BtfTracePointContext, arg: usize) -> [u64; 2] {
    let task: *const u8 = ctx.arg(arg);
    [
        Direct::read::<u32>(task, off!(task_pid)) as u64 | ((exec_id(task) as u64) << 32),
        Direct::read::<u64>(task, off!(task_start_boottime)),
    ]
}
