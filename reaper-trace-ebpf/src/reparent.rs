//! The adoptions of an exiting task's children, read at its final switch.

use core::ffi::c_void;

use reaper_trace_common::{
    AdoptionChunkEvent, CHUNK_CHILDREN, MAX_CHILDREN, PendingChildren, REPARENT_REAPER_ID_ONLY,
    REPARENT_RELEASED, ReparentEvent, SnapshotEvent, TASK_COMM_LEN, TaskId, TaskInfo, kind,
};

use crate::emit::{count_lost_n, emit, header};
use crate::globals::off;
use crate::loops::{Repeat, Step};
use crate::maps::EVENTS;
use crate::mem::{Probe, rd, rd_ptr, zero};
use crate::snapshot::take_snapshot;
use crate::task::{exec_id, is_child_subreaper, task_id, task_info};

/// What every adoption record of one exit shares, handed to each `report_adoption`.
#[repr(C)]
pub(crate) struct Adoptions {
    pending: *const PendingChildren,
    reaper: *const u8,
    reaper_info: TaskInfo,
    reaper_is_subreaper: u32,
}

/// What `report_adoption` reads of a saved child.
struct ChildNow {
    /// Zero when the saved child is still the task that was saved (not released, its memory
    /// not reused): its id read before and after the fields below, xor-ed with the saved one.
    /// Otherwise the fields mean nothing.
    changed: u64,
    parent: *const u8,
    exit_state: u32,
    comm: [u8; TASK_COMM_LEN],
}

/// Reads a saved child without a branch (probe reads cannot fault) but the one comparison of
/// its ids: every branch here would multiply the paths the verifier walks per child.
#[inline(always)]
fn read_child(child: *const u8, id: &TaskId) -> ChildNow {
    let before = task_id::<Probe>(child);
    let parent = rd_ptr(child, off!(task_real_parent));
    let exit_state = rd::<u32>(child, off!(task_exit_state));
    let comm = rd::<[u8; TASK_COMM_LEN]>(child, off!(task_comm));
    let after = task_id::<Probe>(child);
    let diff =
        |a: &TaskId| ((a.tid ^ id.tid) | (a.tgid ^ id.tgid)) as u64 | (a.start_ns ^ id.start_ns);
    ChildNow {
        changed: diff(&before) | diff(&after),
        parent,
        exit_state,
        comm,
    }
}

/// Saved children tried, in order, for one still there to read the new parent from: more
/// would lengthen the program for a case (the first ones all released) that is rare.
const REAPER_READ_TRIES: usize = 4;

pub(crate) fn report_adoptions<L: Repeat>(father: *const u8, pending: &PendingChildren) {
    // The state find_new_reaper read, again, now that the kernel has chosen: userspace tells
    // a real mismatch from a state that changed in between (threads exiting together).
    // SAFETY: SnapshotEvent starts with the header; every other field is written.
    unsafe {
        emit::<SnapshotEvent>(kind::SWITCH_SNAPSHOT, |ev| {
            ev.father = pending.father;
            ev.exec_id = exec_id(father);
            ev._pad = 0;
            zero(&mut ev.snapshot);
            take_snapshot::<L>(father, &mut ev.snapshot);
        })
    };
    let count = (pending.count as usize).min(L::CHILDREN as usize);
    // The kernel gives every child of a task the same new parent: read it once, from the
    // first saved child that is still the task that was saved.
    let mut reaper: *const u8 = core::ptr::null();
    for i in 0..REAPER_READ_TRIES {
        if i >= count {
            break;
        }
        let saved = &pending.children[i];
        let child = read_child(saved.task as *const u8, &saved.id);
        if child.changed == 0 {
            reaper = child.parent;
            break;
        }
    }
    let mut adoptions = Adoptions {
        pending,
        reaper,
        reaper_info: task_info::<Probe>(reaper),
        reaper_is_subreaper: is_child_subreaper(reaper) as u32,
    };
    L::report(&mut adoptions, count as u32);
}

/// One `reparent` record for child `index` of `Adoptions::pending`.
pub(crate) struct ReportAdoption;

impl Step for ReportAdoption {
    #[inline(always)]
    fn run(index: u64, ctx: *mut c_void) -> i64 {
        let i = index as usize;
        if i >= MAX_CHILDREN {
            return 1;
        }
        // SAFETY: `ctx` is the `Adoptions` report_adoptions passed, on its stack.
        let ctx = unsafe { &*(ctx as *const Adoptions) };
        // SAFETY: the PENDING entry stays valid until report_adoptions returns.
        let pending = unsafe { &*ctx.pending };
        let saved = &pending.children[i];
        let child = read_child(saved.task as *const u8, &saved.id);
        // SAFETY: ReparentEvent starts with the header; every other field is written.
        unsafe {
            emit::<ReparentEvent>(kind::REPARENT, |ev| {
                ev.orphan = saved.id;
                ev.father = pending.father;
                ev._pad = 0;
                ev.orphan_comm = child.comm;
                ev.orphan_exit_state = child.exit_state;
                ev.reaper = ctx.reaper_info;
                ev.reaper_is_subreaper = ctx.reaper_is_subreaper;
                ev.flags = 0;
                if child.changed != 0 {
                    zero(&mut ev.orphan_comm);
                    ev.orphan_exit_state = 0;
                    zero(&mut ev.reaper);
                    ev.reaper_is_subreaper = 0;
                    ev.flags = REPARENT_RELEASED;
                } else if child.parent != ctx.reaper {
                    zero(&mut ev.reaper);
                    ev.reaper.id = task_id::<Probe>(child.parent);
                    ev.reaper_is_subreaper = 0;
                    ev.flags = REPARENT_REAPER_ID_ONLY;
                }
            })
        };
        0
    }
}

/// `ADOPTION_CHUNK` records for the first `count` children saved: what [`BoundedLoop`](crate::loops::BoundedLoop)
/// reports (see its `report`).
#[inline(always)]
pub(crate) fn report_chunks(adoptions: &mut Adoptions, count: u32) {
    // SAFETY: the PENDING entry stays valid until report_adoptions returns.
    let pending = unsafe { &*adoptions.pending };
    for chunk in 0..(MAX_CHILDREN / CHUNK_CHILDREN) {
        let base = chunk * CHUNK_CHILDREN;
        if base as u32 >= count {
            break;
        }
        let n = count - base as u32;
        let n = if n > CHUNK_CHILDREN as u32 {
            CHUNK_CHILDREN as u32
        } else {
            n
        };
        let Some(mut entry) = EVENTS.reserve::<AdoptionChunkEvent>(0) else {
            count_lost_n(kind::REPARENT, n as u64);
            continue;
        };
        let ev = entry.as_mut_ptr();
        // SAFETY: a reserved slot of the record's size; every field is written below.
        unsafe {
            (*ev).hdr = header(kind::ADOPTION_CHUNK);
            (*ev).father = pending.father;
            (*ev).reaper = adoptions.reaper_info;
            (*ev).reaper_is_subreaper = adoptions.reaper_is_subreaper;
            (*ev).count = n;
            for j in 0..CHUNK_CHILDREN {
                // Past `n` the saved entries are stale: read anyway (probe reads cannot
                // fault) rather than branch; userspace reads only `count` of them.
                let saved = &pending.children[base + j];
                let child = read_child(saved.task as *const u8, &saved.id);
                let out = &mut (*ev).children[j];
                out.orphan = saved.id;
                out.parent = task_id::<Probe>(child.parent);
                out.orphan_comm = child.comm;
                out.orphan_exit_state = child.exit_state;
                out._pad = 0;
                out.changed = child.changed;
            }
        }
        entry.submit(0);
    }
}
