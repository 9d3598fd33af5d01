//! The adoptions of an exiting task's children, read at its final switch.

use core::ffi::c_void;

use reaper_trace_common::{
    AdoptionChunkEvent, CHUNK_CHILDREN, MAX_CHILDREN, OverflowKey, PendingChildren,
    REPARENT_REAPER_ID_ONLY, REPARENT_RELEASED, ReparentEvent, SnapshotEvent, TASK_COMM_LEN,
    TaskId, TaskInfo, kind,
};

use crate::emit::{count_lost_n, emit, header};
use crate::globals::off;
use crate::loops::{Repeat, Step};
use crate::maps::{EVENTS, OVERFLOW};
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
    // The children past the first ones, saved in overflow chunks (with `bpf_loop` only; the
    // constant drops this code from the bounded programs).
    if L::OVERFLOW_CHUNKS > 0 {
        let chunks = pending.overflow_chunks.min(L::OVERFLOW_CHUNKS);
        if chunks > 0 {
            let mut overflow = Overflow {
                adoptions: &adoptions,
                task: father as u64,
            };
            L::repeat::<ReportOverflow>(
                chunks * RECORDS_PER_CHUNK,
                (&mut overflow as *mut Overflow).cast(),
            );
        }
    }
}

/// `ADOPTION_CHUNK` records per overflow chunk.
const RECORDS_PER_CHUNK: u32 = (MAX_CHILDREN / CHUNK_CHILDREN) as u32;
const _: () = assert!(RECORDS_PER_CHUNK.is_power_of_two());

/// What `ReportOverflow` reads: the adoptions of one exit, and the key of its chunks.
#[repr(C)]
struct Overflow {
    adoptions: *const Adoptions,
    task: u64,
}

/// One `ADOPTION_CHUNK` record for children `sub * CHUNK_CHILDREN..` of overflow chunk
/// `index / RECORDS_PER_CHUNK + 1` (`sub` the rest); the chunk's last record frees it. One
/// record per step: the verifier checks the step once, whatever the number of children.
struct ReportOverflow;

impl Step for ReportOverflow {
    #[inline(always)]
    fn run(index: u64, ctx: *mut c_void) -> i64 {
        // SAFETY: `ctx` is the `Overflow` report_adoptions passed, on its stack, and so is the
        // `Adoptions` it points to.
        let (task, adoptions) = unsafe {
            let o = &*(ctx as *const Overflow);
            (o.task, &*o.adoptions)
        };
        let key = OverflowKey {
            task,
            chunk: index / RECORDS_PER_CHUNK as u64 + 1,
        };
        let sub = (index % RECORDS_PER_CHUNK as u64) as usize;
        // SAFETY: the value stays valid until removed below, after its last use.
        let Some(chunk) = (unsafe { OVERFLOW.get(&key) }) else {
            return 0;
        };
        let base = sub * CHUNK_CHILDREN;
        if (base as u32) < chunk.count {
            let n = chunk.count - base as u32;
            let n = if n > CHUNK_CHILDREN as u32 {
                CHUNK_CHILDREN as u32
            } else {
                n
            };
            report_chunk(adoptions, chunk, base, n);
        }
        if sub == RECORDS_PER_CHUNK as usize - 1 {
            let _ = OVERFLOW.remove(&key);
        }
        0
    }
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
        report_chunk(adoptions, pending, base, n);
    }
}

/// One `ADOPTION_CHUNK` record: children `base..base + n` of `saved` (`n` at most
/// `CHUNK_CHILDREN`, `base + CHUNK_CHILDREN` at most `MAX_CHILDREN`), adopted by the reaper of
/// `adoptions`.
#[inline(always)]
fn report_chunk(adoptions: &Adoptions, saved: &PendingChildren, base: usize, n: u32) {
    // Copied to locals first: a field copied straight from memory that may alias the record
    // (the caller's state, a map value) is a `memmove`, a byte loop the verifier rejects.
    let reaper: TaskInfo = adoptions.reaper_info;
    let reaper_is_subreaper = adoptions.reaper_is_subreaper;
    let father: TaskId = saved.father;
    let Some(mut entry) = EVENTS.reserve::<AdoptionChunkEvent>(0) else {
        count_lost_n(kind::REPARENT, n as u64);
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: a reserved slot of the record's size; every field is written below.
    unsafe {
        (*ev).hdr = header(kind::ADOPTION_CHUNK);
        (*ev).father = father;
        (*ev).reaper = reaper;
        (*ev).reaper_is_subreaper = reaper_is_subreaper;
        (*ev).count = n;
        for j in 0..CHUNK_CHILDREN {
            // Past `n` the saved entries are stale: read anyway (probe reads cannot
            // fault) rather than branch; userspace reads only `count` of them.
            let saved = &saved.children[(base + j) & (MAX_CHILDREN - 1)];
            let id: TaskId = saved.id;
            let child = read_child(saved.task as *const u8, &id);
            let out = &mut (*ev).children[j];
            out.orphan = id;
            out.parent = task_id::<Probe>(child.parent);
            out.orphan_comm = child.comm;
            out.orphan_exit_state = child.exit_state;
            out._pad = 0;
            out.changed = child.changed;
        }
    }
    entry.submit(0);
}
