//! `sched_process_exit`: the exit record, the reaper snapshot, and the children saved to
//! follow until the task's final switch.

use core::ffi::c_void;
use core::ptr::read_volatile;

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use aya_log_ebpf::warn;
use reaper_trace_common::{
    ExitEvent, MAX_CHILDREN, OverflowKey, PendingChildren, SnapshotEvent, TaskId, kind, lost_slot,
    standby,
};

use crate::backstop::{backstop, mark, skipped_for_test};
use crate::copies::{PRIMARY, copies, task_token};
use crate::emit::{count_lost, count_lost_n, emit};
use crate::globals::{enabled, off};
use crate::loops::{BoundedLoop, HelperLoop, Repeat, Step};
use crate::maps::{EXIT_MARKS, OVERFLOW, PENDING, SCRATCH};
use crate::mem::{Direct, Mem, Probe, rd, rd_ptr, zero};
use crate::scope::in_scope;
use crate::snapshot::take_snapshot;
use crate::task::{exec_id, read_pids, task_id, task_info};

/// Records the exit, captures what `find_new_reaper` will read, and saves the children to
/// follow until the final switch.
fn on_exit<L: Repeat, const COPY: u32>(ctx: &BtfTracePointContext) {
    let task: *const u8 = ctx.arg(0);
    if !in_scope::<Direct>(task) {
        return;
    }
    if skipped_for_test(task) {
        count_lost(kind::EXIT);
        return;
    }
    let group_dead: u64 = if off!(exit_has_group_dead) != 0 {
        // A `bool`: only its low byte is set.
        ctx.arg::<u64>(1) & 0xff
    } else {
        // Older kernels: the group is dead once no thread is left un-exited.
        (rd::<u32>(rd_ptr(task, off!(task_signal)), off!(signal_live)) == 0) as u64
    };
    // The children to follow, saved before the exit record is written (it says how many).
    let id = task_id::<Direct>(task);
    let head = task.wrapping_add(off!(task_children));
    // A typed load, not a probe read: most exits have no children, and this is all they read
    // of the list.
    let first = Direct::ptr(task, off!(task_children));
    let (followed, truncated) = if !first.is_null() && first != head {
        save_children::<L, COPY>(ctx, task, id, head, first)
    } else {
        (0, 0)
    };
    if record_exit(task, group_dead as u32, followed, truncated, 0) && backstop(standby::EXIT) {
        mark(&EXIT_MARKS, task);
    }
    if followed > 0 {
        // SAFETY: SnapshotEvent starts with the header; every other field is written.
        unsafe {
            emit::<SnapshotEvent>(kind::EXIT_SNAPSHOT, |ev| {
                ev.father = id;
                ev.exec_id = exec_id(task);
                ev._pad = 0;
                zero(&mut ev.snapshot);
                take_snapshot::<L>(task, &mut ev.snapshot);
            })
        };
    }
}

/// Records `task`'s exit (with `EXIT_FLAG_LATE` in `flags`: at its final switch, its children
/// not read). Returns whether the record was sent.
#[inline(always)]
pub(crate) fn record_exit(
    task: *const u8,
    group_dead: u32,
    followed: u32,
    truncated: u32,
    flags: u32,
) -> bool {
    // SAFETY: ExitEvent starts with the header; every other field is written.
    unsafe {
        emit::<ExitEvent>(
            kind::EXIT,
            // Inlined where it is used: the verifier refuses a function that returns with a
            // stack pointer left in r0 (and the record is on the ring, not the stack).
            #[inline(always)]
            |ev| {
                ev.task = task_info::<Direct>(task);
                ev.parent = task_id::<Direct>(Direct::ptr(task, off!(task_real_parent)));
                ev.exit_code = Direct::read::<u32>(task, off!(task_exit_code));
                ev.group_dead = group_dead;
                ev.children_followed = followed;
                ev.children_truncated = truncated;
                ev.exec_id = exec_id(task);
                ev.flags = flags;
                read_pids::<Direct>(task, ev.task.level, &mut ev.pids);
            },
        )
    }
}

/// Stores the children of exiting `task` in `PENDING` (and, past the first `MAX_CHILDREN`, in
/// `OVERFLOW` where the kernel has `bpf_loop`), to read their new parent at its final switch.
/// Returns how many are followed, and whether some are not.
#[inline(always)]
fn save_children<L: Repeat, const COPY: u32>(
    ctx: &BtfTracePointContext,
    task: *const u8,
    id: TaskId,
    head: *const u8,
    first: *const u8,
) -> (u32, u32) {
    let Some(scratch) = SCRATCH.get_ptr_mut(COPY) else {
        return (0, 1);
    };
    // SAFETY: per-CPU scratch, only this copy of this program on this CPU uses it.
    let pending = unsafe { &mut *scratch };
    pending.father = id;
    pending.overflow_chunks = 0;
    let mut walk = ChildWalk {
        head,
        pos: first,
        pending: scratch,
        count: 0,
        task: task as u64,
        chunks: 0,
        unsaved: 0,
    };
    L::repeat::<SaveChild>(L::CHILDREN, (&mut walk as *mut ChildWalk).cast());
    // Read back from the map: for the verifier the count is then any number, not the constant
    // each way out of a bounded loop gives. A constant would be made precise by the branches
    // below, and each of those ways would then walk the rest of the program again.
    pending.count = walk.count;
    // SAFETY: `pending` is the per-CPU scratch value.
    let n = unsafe { read_volatile(&pending.count) };
    let key = task as u64;
    let more = |w: &ChildWalk| !w.pos.is_null() && w.pos != head;
    let mut followed = n;
    if PENDING.insert(&key, &*pending, 0).is_err() {
        // None of them is followed: the ones walked are lost, the rest counted below.
        walk.unsaved = n;
        followed = 0;
        warn!(
            ctx,
            "task {} exits with children but the map of pending exits is full: its adoptions are not followed",
            id.tid
        );
    } else if L::OVERFLOW_CHUNKS > 0 && more(&walk) {
        // More children than one entry holds: only exits with hundreds of children get here.
        // The scratch is free again (PENDING has its copy): each chunk is built there.
        walk.count = 0;
        L::repeat::<SaveOverflowChild>(
            L::OVERFLOW_CHUNKS * MAX_CHILDREN as u32,
            (&mut walk as *mut ChildWalk).cast(),
        );
        if walk.chunks > 0 {
            match PENDING.get_ptr_mut(&key) {
                Some(entry) => {
                    // SAFETY: this task's entry, which only its final switch reads, later.
                    unsafe { (*entry).overflow_chunks = walk.chunks };
                    followed += walk.count;
                }
                // Gone since the insert above (only this task's final switch removes it, so
                // it cannot be): the chunks would not be reported, count them as lost.
                None => walk.unsaved += walk.count,
            }
        }
    }
    let mut lost = walk.unsaved as u64;
    if more(&walk) {
        // More children than are followed: count them, so `lost` says how many adoptions
        // went unseen.
        walk.count = 0;
        L::repeat::<CountChild>(L::COUNTED, (&mut walk as *mut ChildWalk).cast());
        lost += walk.count as u64;
    }
    let truncated = (lost > 0) as u32;
    if lost > 0 {
        count_lost_n(lost_slot::CHILDREN_OVERFLOW, lost);
        if followed > 0 {
            warn!(
                ctx,
                "task {} exits with more children than are followed: {} followed, the rest counted as lost",
                id.tid,
                followed
            );
        }
    }
    (followed, truncated)
}

/// State of the walk over an exiting task's `children` list, for the steps below.
#[repr(C)]
struct ChildWalk {
    head: *const u8,
    pos: *const u8,
    /// The per-CPU scratch entry the children are saved in.
    pending: *mut PendingChildren,
    /// Children saved (or counted) so far by the current loop.
    count: u32,
    /// The exiting task's address: the key of its entries.
    task: u64,
    /// Overflow chunks stored.
    chunks: u32,
    /// Children walked past but not saved (an overflow chunk the map had no room for).
    unsaved: u32,
}

/// Saves one child; stops at the end of the list.
struct SaveChild;

impl Step for SaveChild {
    #[inline(always)]
    fn run(index: u64, ctx: *mut c_void) -> i64 {
        // SAFETY: `ctx` is the ChildWalk save_children passed, on its stack.
        let walk = unsafe { &mut *(ctx as *mut ChildWalk) };
        let i = index as usize;
        if i >= MAX_CHILDREN || walk.pos.is_null() || walk.pos == walk.head {
            return 1;
        }
        let child = walk.pos.wrapping_sub(off!(task_sibling));
        // SAFETY: the per-CPU scratch value outlives the loop.
        let pending = unsafe { &mut *walk.pending };
        pending.children[i].task = child as u64;
        pending.children[i].id = task_id::<Probe>(child);
        // From the index, not `+= 1`: an exact count per iteration would give the verifier a new
        // state each time round (it would walk all 256 iterations instead of converging).
        walk.count = index as u32 + 1;
        walk.pos = rd_ptr(child, off!(task_sibling));
        0
    }
}

/// Saves one child past the first `MAX_CHILDREN` into the scratch entry, and stores the entry
/// in `OVERFLOW` as chunk `index / MAX_CHILDREN + 1` once it is full or the list ends; stops
/// at the end of the list, or when the map is full. Only with `bpf_loop` (checked once).
struct SaveOverflowChild;

impl Step for SaveOverflowChild {
    #[inline(always)]
    fn run(index: u64, ctx: *mut c_void) -> i64 {
        // SAFETY: `ctx` is the ChildWalk save_children passed, on its stack.
        let walk = unsafe { &mut *(ctx as *mut ChildWalk) };
        if walk.pos.is_null() || walk.pos == walk.head {
            return 1;
        }
        let slot = index as usize & (MAX_CHILDREN - 1);
        let child = walk.pos.wrapping_sub(off!(task_sibling));
        // SAFETY: the per-CPU scratch value outlives the loop.
        let chunk = unsafe { &mut *walk.pending };
        chunk.children[slot].task = child as u64;
        chunk.children[slot].id = task_id::<Probe>(child);
        walk.pos = rd_ptr(child, off!(task_sibling));
        let end = walk.pos.is_null() || walk.pos == walk.head;
        if slot == MAX_CHILDREN - 1 || end {
            chunk.count = slot as u32 + 1;
            chunk.overflow_chunks = 0;
            let key = OverflowKey {
                task: walk.task,
                chunk: (index / MAX_CHILDREN as u64) + 1,
            };
            if OVERFLOW.insert(&key, &*chunk, 0).is_err() {
                // No room (other exits with many children in flight): this chunk's children
                // and the rest are counted, not followed.
                walk.unsaved = slot as u32 + 1;
                return 1;
            }
            walk.chunks = key.chunk as u32;
            walk.count = index as u32 + 1;
            if end {
                return 1;
            }
        }
        0
    }
}

/// Counts one child past those followed; stops at the end of the list.
struct CountChild;

impl Step for CountChild {
    #[inline(always)]
    fn run(index: u64, ctx: *mut c_void) -> i64 {
        // SAFETY: `ctx` is the ChildWalk save_children passed, on its stack.
        let walk = unsafe { &mut *(ctx as *mut ChildWalk) };
        if walk.pos.is_null() || walk.pos == walk.head {
            return 1;
        }
        walk.count = index as u32 + 1;
        walk.pos = rd_ptr(
            walk.pos.wrapping_sub(off!(task_sibling)),
            off!(task_sibling),
        );
        0
    }
}

copies!(
    "sched_process_exit",
    standby::EXIT,
    |ctx, COPY| (task_token(ctx, 0), on_exit::<HelperLoop, COPY>(ctx)),
    sched_process_exit,
    sched_process_exit_standby,
    sched_process_exit_standby2
);

/// `sched_process_exit` for kernels without `bpf_loop` (before 5.17). Those run tracepoint
/// programs with preemption disabled: they need no standby copy, and have none.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit_bounded(ctx: BtfTracePointContext) -> u32 {
    if enabled() {
        on_exit::<BoundedLoop, PRIMARY>(&ctx);
    }
    0
}
