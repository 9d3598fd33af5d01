//! `reaper-trace tree`'s task iterator: one `TreeTask` per task.

use core::ffi::c_void;
use core::ptr::read_volatile;

use aya_ebpf::helpers::generated;
use reaper_trace_common::{TREE_MAX_THREADS, TaskId, TreeTask, tree_flag};

use crate::globals::{enabled, off};
use crate::maps::TREE_SCRATCH;
use crate::mem::{Probe, rd, rd_ptr, zero};
use crate::task::{
    PF_EXITING, SIGNAL_GROUP_EXIT, is_child_subreaper, leader_start, read_pids, signal_bit,
    task_id, task_info, task_pid_ns,
};

/// The first two threads of `task`'s group without `PF_EXITING`, in thread-list order (what
/// `find_alive_thread` returns for any thread of the group, and for the first of them), and
/// whether the scan stopped at its bound before it found two. A plain bounded loop: the
/// verifier of every kernel since 5.3 takes it, no `bpf_loop` needed.
/// `found` starts zeroed.
#[inline(always)]
fn first_live_threads(task: *const u8, found: &mut [TaskId; 2]) -> bool {
    let head = rd_ptr(task, off!(task_signal)).wrapping_add(off!(signal_thread_head));
    let mut pos = rd_ptr(head, 0);
    let mut n = 0usize;
    for _ in 0..TREE_MAX_THREADS {
        if pos.is_null() || pos == head {
            return false;
        }
        let thread = pos.wrapping_sub(off!(task_thread_node));
        if rd::<u32>(thread, off!(task_flags)) & PF_EXITING == 0 {
            found[n & 1] = task_id::<Probe>(thread);
            n += 1;
            if n >= 2 {
                return false;
            }
        }
        pos = rd_ptr(pos, 0);
    }
    !pos.is_null() && pos != head
}

/// `reaper-trace tree`: one `TreeTask` per task the kernel's task iterator visits (every
/// thread of the reader's pid namespace), written to the iterator's seq_file. Each record is
/// read while the iterator holds that task (under RCU): one task at one moment.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn tree_task(ctx: *mut c_void) -> i32 {
    if !enabled() {
        return 0;
    }
    // struct bpf_iter__task { struct bpf_iter_meta *meta; struct task_struct *task; }
    // SAFETY: context loads at the two fields' offsets, checked by the verifier.
    let (meta, task) = unsafe {
        (
            read_volatile(ctx as *const *const u8),
            read_volatile((ctx as *const *const u8).wrapping_add(1)),
        )
    };
    // NULL once past the last task (the iterator's stop call).
    if task.is_null() {
        return 0;
    }
    let Some(rec) = TREE_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: struct bpf_iter_meta { struct seq_file *seq; ... }: a BTF-typed load, which
    // bpf_seq_write requires.
    let seq = unsafe { read_volatile(meta as *const *mut c_void) };
    // SAFETY: the per-CPU scratch value; only this program on this CPU writes it.
    let r = unsafe { &mut *rec };
    zero(r);
    r.size = core::mem::size_of::<TreeTask>() as u32;
    r.task = task_info::<Probe>(task);
    r.leader_start_ns = leader_start::<Probe>(task);
    r.parent = task_id::<Probe>(rd_ptr(task, off!(task_real_parent)));
    let (ns, _) = task_pid_ns(task);
    r.child_reaper = task_id::<Probe>(rd_ptr(ns, off!(pidns_child_reaper)));
    let incomplete = first_live_threads(task, &mut r.alive);
    r.task_flags = rd::<u32>(task, off!(task_flags));
    r.exit_state = rd::<u32>(task, off!(task_exit_state));
    let signal = rd_ptr(task, off!(task_signal));
    r.nr_threads = rd::<u32>(signal, off!(signal_nr_threads));
    let mut flags = 0;
    if is_child_subreaper(task) {
        flags |= tree_flag::IS_CHILD_SUBREAPER;
    }
    if signal_bit(
        task,
        off!(signal_has_child_subreaper_byte),
        off!(signal_has_child_subreaper_bit),
    ) {
        flags |= tree_flag::HAS_CHILD_SUBREAPER;
    }
    if incomplete {
        flags |= tree_flag::ALIVE_INCOMPLETE;
    }
    if rd::<u32>(signal, off!(signal_flags)) & SIGNAL_GROUP_EXIT != 0 {
        flags |= tree_flag::GROUP_EXIT;
    }
    r.flags = flags;
    read_pids::<Probe>(task, r.task.level, &mut r.pids);
    // SAFETY: `seq` is the iterator's seq_file; `rec` is `size_of::<TreeTask>()` bytes of map
    // value. A full buffer makes the kernel flush it and run this task again.
    unsafe {
        generated::bpf_seq_write(
            seq as *mut _,
            rec as *const c_void,
            core::mem::size_of::<TreeTask>() as u32,
        )
    };
    0
}
