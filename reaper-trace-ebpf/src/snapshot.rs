//! What `find_new_reaper` reads for an exiting task's children: the reaper snapshot.

use core::ffi::c_void;

use reaper_trace_common::{MAX_SUBREAPERS, ReaperSnapshot, TaskId};

use crate::globals::off;
use crate::loops::{Repeat, Step};
use crate::mem::{Probe, rd, rd_ptr};
use crate::task::{PF_EXITING, is_child_subreaper, signal_bit, task_id, task_info, task_pid_ns};

/// `find_alive_thread`: the first thread of `task`'s group without `PF_EXITING`, scanning at
/// most `max` (a constant) threads. Returns the thread (tid 0 if none) and whether the scan
/// stopped early.
#[inline(always)]
pub(crate) fn find_alive_thread(task: *const u8, max: u32) -> (TaskId, bool) {
    let head = rd_ptr(task, off!(task_signal)).wrapping_add(off!(signal_thread_head));
    let mut pos = rd_ptr(head, 0);
    for _ in 0..max {
        if pos.is_null() || pos == head {
            return (TaskId::default(), false);
        }
        let thread = pos.wrapping_sub(off!(task_thread_node));
        if rd::<u32>(thread, off!(task_flags)) & PF_EXITING == 0 {
            return (task_id::<Probe>(thread), false);
        }
        pos = rd_ptr(pos, 0);
    }
    (TaskId::default(), !pos.is_null() && pos != head)
}

/// What `find_new_reaper` reads for `task`'s children, as it is now. `snap` starts zeroed.
#[inline(always)]
pub(crate) fn take_snapshot<L: Repeat>(task: *const u8, snap: &mut ReaperSnapshot) {
    let (alive, incomplete) = find_alive_thread(task, L::THREADS);
    snap.alive_thread = alive;
    snap.alive_scan_incomplete = incomplete as u32;
    let (ns, level) = task_pid_ns(task);
    snap.child_reaper = task_info::<Probe>(rd_ptr(ns, off!(pidns_child_reaper)));
    snap.has_child_subreaper = signal_bit(
        task,
        off!(signal_has_child_subreaper_byte),
        off!(signal_has_child_subreaper_bit),
    ) as u32;

    // The subreaper ancestors within the same pid namespace level, nearest first.
    let mut walk = AncestorWalk {
        ancestor: rd_ptr(task, off!(task_real_parent)),
        snap,
        level,
        found: 0,
        done: 0,
    };
    L::repeat::<VisitAncestor<L>>(L::ANCESTORS, (&mut walk as *mut AncestorWalk).cast());
    snap.nr_subreapers = walk.found;
    snap.ancestors_truncated = (walk.done == 0) as u32;
}

/// State of the walk up `real_parent` from an exiting task, for `visit_ancestor`.
#[repr(C)]
struct AncestorWalk {
    ancestor: *const u8,
    snap: *mut ReaperSnapshot,
    /// The exiting task's pid namespace level: the walk stops where it changes.
    level: u32,
    found: u32,
    /// Set when the walk ended inside the bound (left the level, or reached the idle task).
    done: u32,
}

/// One step of `find_new_reaper`'s subreaper walk.
struct VisitAncestor<L>(core::marker::PhantomData<L>);

impl<L: Repeat> Step for VisitAncestor<L> {
    #[inline(always)]
    fn run(_index: u64, ctx: *mut c_void) -> i64 {
        // SAFETY: `ctx` is the AncestorWalk take_snapshot passed, on its stack.
        let walk = unsafe { &mut *(ctx as *mut AncestorWalk) };
        let ancestor = walk.ancestor;
        let (_, level) = task_pid_ns(ancestor);
        if ancestor.is_null() || level != walk.level || rd::<u32>(ancestor, off!(task_pid)) == 0 {
            walk.done = 1;
            return 1;
        }
        let i = walk.found as usize;
        if i < MAX_SUBREAPERS && is_child_subreaper(ancestor) {
            // SAFETY: `snap` points into the record reserved by the caller.
            let snap = unsafe { &mut *walk.snap };
            let (alive, incomplete) = find_alive_thread(ancestor, L::ANCESTOR_THREADS);
            // Bounded again where it is used: LLVM reloads `found` from the walk's state here,
            // and older verifiers (5.10's) forget the bounds of a 32-bit value kept on
            // the stack. Opaque to LLVM, so the mask is not optimized away.
            let i = core::hint::black_box(i) & (MAX_SUBREAPERS - 1);
            let slot = &mut snap.subreapers[i];
            slot.task = task_id::<Probe>(ancestor);
            slot.alive_thread = alive;
            slot.scan_incomplete = incomplete as u32;
            walk.found += 1;
        }
        walk.ancestor = rd_ptr(ancestor, off!(task_real_parent));
        0
    }
}
