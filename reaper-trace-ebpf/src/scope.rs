//! Tree scope (`record -- CMD`): which tasks are traced.

use crate::globals::off;
use crate::maps::TRACKED;
use crate::mem::Mem;
use crate::task::leader_start;

#[inline(always)]
pub(crate) fn tree_scope() -> bool {
    off!(scope_tree) != 0
}

/// Is `task` one the user asked to trace? Always, unless tracing one command's tree.
#[inline(always)]
pub(crate) fn in_scope<M: Mem>(task: *const u8) -> bool {
    if !tree_scope() {
        return true;
    }
    let tgid = M::read::<u32>(task, off!(task_tgid));
    // SAFETY: the value is copied out at once.
    let Some(start) = (unsafe { TRACKED.get(&tgid) }).copied() else {
        return false;
    };
    let leader = leader_start::<M>(task);
    if start == 0 {
        // The root, named by userspace before its start time was known: pin it now, so that
        // a later process reusing the pid is not taken for it.
        let _ = TRACKED.insert(&tgid, &leader, 0);
        return true;
    }
    start == leader
}
