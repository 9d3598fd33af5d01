//! reaper-trace's kernel side: small, bounded programs that copy what the kernel knows about
//! exits, adoptions and reaps into one ring buffer. Every decision is made in userspace.
//!
//! Field offsets are not compiled in: userspace resolves them from the running kernel's BTF
//! and writes them into `OFFSETS` before loading (the Rust eBPF toolchain has no CO-RE).
#![no_std]
#![no_main]

use core::ptr::{addr_of, read_volatile};

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel,
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user,
        generated::{self, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns},
    },
    macros::{btf_tracepoint, map, tracepoint},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, TracePointContext},
};
use aya_log_ebpf::warn;
use reaper_trace_common::{
    ARGS_LEN, COMM_LEN, DeadEvent, EventHeader, ExecEvent, ExitEvent, FORK_FLAG_THREAD, ForkEvent,
    FreeEvent, LOST_SLOTS, MAX_ANCESTOR_THREADS, MAX_ANCESTORS, MAX_CHILDREN, MAX_PID_LEVELS,
    MAX_SUBREAPERS, MAX_THREADS, Offsets, PendingCall, PendingChildren, REPARENT_REAPER_ID_ONLY,
    REPARENT_RELEASED, ReaperSnapshot, ReparentEvent, SubreaperEvent, TaskId, TaskInfo, UPid,
    WaitEvent, kind, wait_syscall,
};

/// Filled in by userspace before load (see `Offsets`). `valid == 0` keeps every program idle.
#[unsafe(no_mangle)]
static OFFSETS: Offsets = Offsets {
    task_pid: 0,
    task_tgid: 0,
    task_flags: 0,
    task_real_parent: 0,
    task_group_leader: 0,
    task_children: 0,
    task_sibling: 0,
    task_thread_node: 0,
    task_comm: 0,
    task_exit_state: 0,
    task_exit_code: 0,
    task_start_boottime: 0,
    task_signal: 0,
    task_thread_pid: 0,
    task_mm: 0,
    signal_thread_head: 0,
    signal_is_child_subreaper_byte: 0,
    signal_is_child_subreaper_bit: 0,
    signal_has_child_subreaper_byte: 0,
    signal_has_child_subreaper_bit: 0,
    pid_level: 0,
    pid_numbers: 0,
    upid_size: 0,
    upid_nr: 0,
    upid_ns: 0,
    pidns_child_reaper: 0,
    pidns_inum: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    binprm_filename: 0,
    signal_live: 0,
    exit_has_group_dead: 0,
    valid: 0,
    _pad: 0,
};

/// Size of the one ring buffer, in bytes; userspace may override it at load time.
const RING_BYTES: u32 = 4 << 20;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

/// Records that could not be reserved in the ring buffer, per kind (per CPU, summed by
/// userspace and reported as `lost` events).
#[map]
static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOST_SLOTS, 0);

/// Children of exiting tasks, keyed by the exiting task's tid, until its final switch.
#[map]
static PENDING: HashMap<u32, PendingChildren> = HashMap::with_max_entries(256, 0);

/// Scratch space to build a `PendingChildren` (too big for the 512-byte stack).
#[map]
static SCRATCH: PerCpuArray<PendingChildren> = PerCpuArray::with_max_entries(1, 0);

/// Arguments of in-flight wait4/waitid/prctl calls, keyed by tid.
#[map]
/// One slot per possible tid at the default `pid_max` (32768): full only on machines that
/// raised it and have that many threads inside these calls at once.
static CALLS: HashMap<u32, PendingCall> = HashMap::with_max_entries(32768, 0);

const PF_EXITING: u32 = 0x0000_0004;
const TASK_DEAD: u32 = 0x80;
const PR_SET_CHILD_SUBREAPER: u64 = 36;
const WNOWAIT: u64 = 0x0100_0000;
const CLD_EXITED: i32 = 1;
const CLD_DUMPED: i32 = 3;

macro_rules! off {
    ($field:ident) => {{
        // SAFETY: reading a field of a static; volatile so the loader's value is used,
        // not the zero the compiler sees.
        #[allow(unused_unsafe)]
        let value = unsafe { read_volatile(addr_of!(OFFSETS.$field)) };
        value as usize
    }};
}

#[inline(always)]
fn enabled() -> bool {
    off!(valid) != 0
}

/// Reads a `T` at `base + off` in kernel memory; zero when the read fails.
#[inline(always)]
fn rd<T: Copy + Default>(base: *const u8, off: usize) -> T {
    if base.is_null() {
        return T::default();
    }
    // SAFETY: bpf_probe_read_kernel copes with any address.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off) as *const T) }.unwrap_or_default()
}

#[inline(always)]
fn rd_ptr(base: *const u8, off: usize) -> *const u8 {
    rd::<u64>(base, off) as *const u8
}

#[inline(always)]
fn header(kind: u32) -> EventHeader {
    // SAFETY: helpers without preconditions.
    unsafe {
        EventHeader {
            kind,
            cpu: bpf_get_smp_processor_id(),
            ts_ns: bpf_ktime_get_boot_ns(),
        }
    }
}

#[inline(always)]
fn count_lost(kind: u32) {
    if let Some(slot) = LOST.get_ptr_mut(kind) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn task_id(task: *const u8) -> TaskId {
    TaskId {
        tid: rd::<u32>(task, off!(task_pid)),
        tgid: rd::<u32>(task, off!(task_tgid)),
        start_ns: rd::<u64>(task, off!(task_start_boottime)),
    }
}

/// `&pid->numbers[level]` for a `struct pid *`.
#[inline(always)]
fn upid_at(pid: *const u8, level: u32) -> *const u8 {
    pid.wrapping_add(off!(pid_numbers) + level as usize * off!(upid_size))
}

#[inline(always)]
fn pid_ns_inum(ns: *const u8) -> u32 {
    rd::<u32>(ns, off!(pidns_inum))
}

/// The task's pid namespace (`task_active_pid_ns`) and its level.
#[inline(always)]
fn task_pid_ns(task: *const u8) -> (*const u8, u32) {
    let pid = rd_ptr(task, off!(task_thread_pid));
    let level = rd::<u32>(pid, off!(pid_level));
    (rd_ptr(upid_at(pid, level), off!(upid_ns)), level)
}

fn task_info(task: *const u8) -> TaskInfo {
    let pid = rd_ptr(task, off!(task_thread_pid));
    let level = rd::<u32>(pid, off!(pid_level));
    let upid = upid_at(pid, level);
    let leader_pid = rd_ptr(rd_ptr(task, off!(task_group_leader)), off!(task_thread_pid));
    TaskInfo {
        id: task_id(task),
        ns_tid: rd::<u32>(upid, off!(upid_nr)),
        ns_tgid: rd::<u32>(upid_at(leader_pid, level), off!(upid_nr)),
        pidns: pid_ns_inum(rd_ptr(upid, off!(upid_ns))),
        level,
        comm: rd::<[u8; COMM_LEN]>(task, off!(task_comm)),
    }
}

#[inline(always)]
fn signal_bit(task: *const u8, byte: usize, bit: usize) -> bool {
    let signal = rd_ptr(task, off!(task_signal));
    rd::<u8>(signal, byte) & (1u8 << (bit & 7)) != 0
}

#[inline(always)]
fn is_child_subreaper(task: *const u8) -> bool {
    signal_bit(
        task,
        off!(signal_is_child_subreaper_byte),
        off!(signal_is_child_subreaper_bit),
    )
}

/// `find_alive_thread`: the first thread of `task`'s group without `PF_EXITING`, scanning at
/// most `N` threads. Returns the thread (tid 0 if none) and whether the scan stopped early.
#[inline(always)]
fn find_alive_thread<const N: usize>(task: *const u8) -> (TaskId, bool) {
    let head = rd_ptr(task, off!(task_signal)).wrapping_add(off!(signal_thread_head));
    let mut pos = rd_ptr(head, 0);
    for _ in 0..N {
        if pos.is_null() || pos == head {
            return (TaskId::default(), false);
        }
        let thread = pos.wrapping_sub(off!(task_thread_node));
        if rd::<u32>(thread, off!(task_flags)) & PF_EXITING == 0 {
            return (task_id(thread), false);
        }
        pos = rd_ptr(pos, 0);
    }
    (TaskId::default(), !pos.is_null() && pos != head)
}

fn try_sched_process_fork(ctx: &BtfTracePointContext) -> Option<()> {
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    let mut entry = EVENTS.reserve::<ForkEvent>(0).or_else(|| {
        count_lost(kind::FORK);
        None
    })?;
    let ev = ForkEvent {
        hdr: header(kind::FORK),
        parent: task_info(parent),
        child: task_info(child),
        real_parent: task_id(rd_ptr(child, off!(task_real_parent))),
        flags: 0,
        _pad: 0,
    };
    let thread = ev.child.id.tid != ev.child.id.tgid;
    entry.write(ForkEvent {
        flags: if thread { FORK_FLAG_THREAD } else { 0 },
        ..ev
    });
    entry.submit(0);
    Some(())
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    if enabled() {
        let _ = try_sched_process_fork(&ctx);
    }
    0
}

fn try_sched_process_exec(ctx: &BtfTracePointContext) -> Option<()> {
    let task: *const u8 = ctx.arg(0);
    let old_tid: u32 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        count_lost(kind::EXEC);
        return None;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved ring buffer record of the right size; every field is
    // written before submit.
    unsafe {
        (*ev).hdr = header(kind::EXEC);
        (*ev).task = task_info(task);
        (*ev).old_tid = old_tid;
        (*ev)._pad = 0;
        (*ev).filename = [0; reaper_trace_common::FILENAME_LEN];
        let filename = rd_ptr(bprm, off!(binprm_filename));
        let _ = bpf_probe_read_kernel_str_bytes(filename, &mut (*ev).filename);
        (*ev).args = [0; ARGS_LEN];
        let mm = rd_ptr(task, off!(task_mm));
        let start = rd::<u64>(mm, off!(mm_arg_start));
        let end = rd::<u64>(mm, off!(mm_arg_end));
        let total = end.saturating_sub(start);
        let mut len = total;
        if len > ARGS_LEN as u64 {
            len = ARGS_LEN as u64;
        }
        let ok = generated::bpf_probe_read_user(
            (*ev).args.as_mut_ptr() as *mut _,
            len as u32,
            start as *const _,
        ) == 0;
        (*ev).args_total = total as u32;
        (*ev).args_len = if ok { len as u32 } else { 0 };
    }
    entry.submit(0);
    Some(())
}

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> u32 {
    if enabled() {
        let _ = try_sched_process_exec(&ctx);
    }
    0
}

/// Captures what `find_new_reaper` will read, and saves the children to follow.
fn try_sched_process_exit(ctx: &BtfTracePointContext) -> Option<()> {
    let task: *const u8 = ctx.arg(0);
    let group_dead: u64 = if off!(exit_has_group_dead) != 0 {
        ctx.arg::<u64>(1) & 0xff
    } else {
        // Older kernels: the group is dead once no thread is left un-exited.
        (rd::<u32>(rd_ptr(task, off!(task_signal)), off!(signal_live)) == 0) as u64
    };
    let Some(mut entry) = EVENTS.reserve::<ExitEvent>(0) else {
        count_lost(kind::EXIT);
        return None;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is a reserved record; all fields are written before submit.
    unsafe {
        (*ev).hdr = header(kind::EXIT);
        (*ev).task = task_info(task);
        (*ev).parent = task_id(rd_ptr(task, off!(task_real_parent)));
        (*ev).exit_code = rd::<u32>(task, off!(task_exit_code));
        (*ev).group_dead = group_dead as u32;
        (*ev).children_followed = 0;
        (*ev).children_truncated = 0;
        (*ev).snapshot = Default::default();
    }

    let head = task.wrapping_add(off!(task_children));
    let first = rd_ptr(head, 0);
    if !first.is_null() && first != head {
        // SAFETY: as above.
        unsafe { save_children(ctx, task, head, first, &mut *ev) };
    }
    entry.submit(0);
    Some(())
}

/// Fills the exit record's reaper snapshot and stores the children in `PENDING`.
///
/// # Safety
/// `ev` must be a reserved ring buffer record.
#[inline(always)]
unsafe fn save_children(
    ctx: &BtfTracePointContext,
    task: *const u8,
    head: *const u8,
    first: *const u8,
    ev: &mut ExitEvent,
) {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch, only this program on this CPU uses it.
    let pending = unsafe { &mut *scratch };
    pending.father = ev.task.id;
    let mut walk = ChildWalk {
        head,
        pos: first,
        pending: scratch,
        count: 0,
    };
    // SAFETY: the callback has the signature bpf_loop expects and `walk` outlives the call.
    unsafe {
        generated::bpf_loop(
            MAX_CHILDREN as u32,
            save_child as *mut core::ffi::c_void,
            (&mut walk as *mut ChildWalk).cast(),
            0,
        );
    }
    let n = walk.count;
    let pos = walk.pos;
    pending.count = n;
    ev.children_followed = n;
    let tid = ev.task.id.tid;
    if !pos.is_null() && pos != head {
        ev.children_truncated = 1;
        count_lost(kind::CHILDREN_OVERFLOW);
        // Rare, and worth a line: which task, and that only the first children are followed.
        warn!(
            ctx,
            "task {} exits with more than {} children: only those are followed",
            tid,
            MAX_CHILDREN as u32
        );
    }
    if PENDING.insert(tid, &*pending, 0).is_err() {
        ev.children_followed = 0;
        ev.children_truncated = 1;
        count_lost(kind::CHILDREN_OVERFLOW);
        warn!(
            ctx,
            "task {} exits with children but the map of pending exits is full: its adoptions are not followed",
            tid
        );
    }

    let snap = &mut ev.snapshot;
    let (alive, incomplete) = find_alive_thread::<MAX_THREADS>(task);
    snap.alive_thread = alive;
    snap.alive_scan_incomplete = incomplete as u32;
    let (ns, level) = task_pid_ns(task);
    snap.child_reaper = task_info(rd_ptr(ns, off!(pidns_child_reaper)));
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
    // SAFETY: the callback has the signature bpf_loop expects and `walk` outlives the call.
    unsafe {
        generated::bpf_loop(
            MAX_ANCESTORS as u32,
            visit_ancestor as *mut core::ffi::c_void,
            (&mut walk as *mut AncestorWalk).cast(),
            0,
        );
    }
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

/// One step of `find_new_reaper`'s subreaper walk (bpf_loop callback).
#[inline(never)]
extern "C" fn visit_ancestor(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the AncestorWalk save_children passed, on its stack.
    let walk = unsafe { &mut *(ctx as *mut AncestorWalk) };
    let ancestor = walk.ancestor;
    let (_, level) = task_pid_ns(ancestor);
    if ancestor.is_null() || level != walk.level || rd::<u32>(ancestor, off!(task_pid)) == 0 {
        walk.done = 1;
        return 1;
    }
    let i = walk.found as usize;
    if i < MAX_SUBREAPERS && is_child_subreaper(ancestor) {
        // SAFETY: `snap` points into the exit record reserved by the caller.
        let snap = unsafe { &mut *walk.snap };
        let (alive, incomplete) = find_alive_thread::<MAX_ANCESTOR_THREADS>(ancestor);
        snap.subreapers[i].task = task_id(ancestor);
        snap.subreapers[i].alive_thread = alive;
        snap.subreapers[i].scan_incomplete = incomplete as u32;
        walk.found += 1;
    }
    walk.ancestor = rd_ptr(ancestor, off!(task_real_parent));
    0
}

/// State of the walk over an exiting task's `children` list, for `save_child`.
#[repr(C)]
struct ChildWalk {
    head: *const u8,
    pos: *const u8,
    pending: *mut PendingChildren,
    count: u32,
}

/// Saves one child (bpf_loop callback); stops at the end of the list.
#[inline(never)]
extern "C" fn save_child(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
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
    pending.children[i].id = task_id(child);
    walk.count += 1;
    walk.pos = rd_ptr(child, off!(task_sibling));
    0
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> u32 {
    if enabled() {
        let _ = try_sched_process_exit(&ctx);
    }
    0
}

/// The dead task's last switch: reparenting is done, read the results.
fn on_task_dead(task: *const u8) {
    let tid = rd::<u32>(task, off!(task_pid));
    let tgid = rd::<u32>(task, off!(task_tgid));
    if tid == tgid {
        report_dead(task);
    }
    // SAFETY: the map value stays valid until we remove it below.
    if let Some(pending) = unsafe { PENDING.get(tid) } {
        report_adoptions(pending);
        let _ = PENDING.remove(tid);
    }
    // A task killed inside wait or prctl never reaches the syscall's exit tracepoint.
    let _ = CALLS.remove(tid);
}

fn report_dead(task: *const u8) {
    let Some(mut entry) = EVENTS.reserve::<DeadEvent>(0) else {
        count_lost(kind::DEAD);
        return;
    };
    let ev = entry.as_mut_ptr();
    let pid = rd_ptr(task, off!(task_thread_pid));
    // SAFETY: `ev` is a reserved record; all fields are written before submit.
    unsafe {
        (*ev).hdr = header(kind::DEAD);
        (*ev).task = task_info(task);
        (*ev).parent = task_info(rd_ptr(task, off!(task_real_parent)));
        (*ev).exit_state = rd::<u32>(task, off!(task_exit_state));
        (*ev).exit_code = rd::<u32>(task, off!(task_exit_code));
        let level = (*ev).task.level;
        for l in 0..MAX_PID_LEVELS {
            (*ev).pids[l] = if l as u32 <= level {
                let upid = upid_at(pid, l as u32);
                UPid {
                    nr: rd::<u32>(upid, off!(upid_nr)),
                    pidns: pid_ns_inum(rd_ptr(upid, off!(upid_ns))),
                }
            } else {
                UPid::default()
            };
        }
    }
    entry.submit(0);
}

/// What every adoption record of one exit shares, handed to `report_adoption` by `bpf_loop`.
#[repr(C)]
struct Adoptions {
    pending: *const PendingChildren,
    reaper: *const u8,
    reaper_info: TaskInfo,
    reaper_is_subreaper: u32,
}

fn report_adoptions(pending: &PendingChildren) {
    let count = (pending.count as usize).min(MAX_CHILDREN);
    // The kernel gives every child of a task the same new parent: read it once, from the
    // first saved child that is still the task that was saved (a child can be released during
    // reparenting, e.g. a zombie auto-reaped by its new parent).
    let mut reaper: *const u8 = core::ptr::null();
    for i in 0..4 {
        if i >= count {
            break;
        }
        let saved = &pending.children[i];
        let child = saved.task as *const u8;
        if task_id(child) == saved.id {
            reaper = rd_ptr(child, off!(task_real_parent));
            break;
        }
    }
    let mut ctx = Adoptions {
        pending,
        reaper,
        reaper_info: task_info(reaper),
        reaper_is_subreaper: is_child_subreaper(reaper) as u32,
    };
    // bpf_loop: the verifier checks the callback once instead of every unrolled iteration.
    // SAFETY: the callback has the signature bpf_loop expects and `ctx` outlives the call.
    unsafe {
        generated::bpf_loop(
            count as u32,
            report_adoption as *mut core::ffi::c_void,
            (&mut ctx as *mut Adoptions).cast(),
            0,
        );
    }
}

/// One `reparent` record for child `index` of `Adoptions::pending`.
#[inline(never)]
extern "C" fn report_adoption(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let i = index as usize;
    if i >= MAX_CHILDREN {
        return 1;
    }
    // SAFETY: `ctx` is the `Adoptions` report_adoptions passed, on its stack.
    let ctx = unsafe { &*(ctx as *const Adoptions) };
    // SAFETY: the PENDING entry stays valid until report_adoptions returns.
    let pending = unsafe { &*ctx.pending };
    let saved = &pending.children[i];
    let child = saved.task as *const u8;
    let Some(mut entry) = EVENTS.reserve::<ReparentEvent>(0) else {
        count_lost(kind::REPARENT);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    let alive = task_id(child) == saved.id;
    // SAFETY: `ev` is a reserved record; all fields are written before submit.
    unsafe {
        (*ev).hdr = header(kind::REPARENT);
        (*ev).orphan = saved.id;
        (*ev).orphan_comm = rd::<[u8; COMM_LEN]>(child, off!(task_comm));
        (*ev).father = pending.father;
        (*ev)._pad = 0;
        if !alive {
            (*ev).reaper = TaskInfo::default();
            (*ev).reaper_is_subreaper = 0;
            (*ev).orphan_exit_state = 0;
            (*ev).flags = REPARENT_RELEASED;
        } else {
            (*ev).orphan_exit_state = rd::<u32>(child, off!(task_exit_state));
            let parent = rd_ptr(child, off!(task_real_parent));
            if parent == ctx.reaper {
                (*ev).reaper = ctx.reaper_info;
                (*ev).reaper_is_subreaper = ctx.reaper_is_subreaper;
                (*ev).flags = 0;
            } else {
                (*ev).reaper = TaskInfo {
                    id: task_id(parent),
                    ..TaskInfo::default()
                };
                (*ev).reaper_is_subreaper = 0;
                (*ev).flags = REPARENT_REAPER_ID_ONLY;
            }
        }
    }
    entry.submit(0);
    0
}

/// Runs on every context switch: returns at once unless the previous task is dead.
#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch(ctx: BtfTracePointContext) -> u32 {
    let prev_state: u32 = ctx.arg(3);
    if prev_state & TASK_DEAD == 0 || !enabled() {
        return 0;
    }
    on_task_dead(ctx.arg(1));
    0
}

#[btf_tracepoint(function = "sched_process_free")]
pub fn sched_process_free(ctx: BtfTracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let task: *const u8 = ctx.arg(0);
    let ev = FreeEvent {
        hdr: header(kind::FREE),
        task: task_id(task),
    };
    if EVENTS.output::<FreeEvent>(&ev, 0).is_err() {
        count_lost(kind::FREE);
    }
    0
}

#[inline(always)]
fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
fn remember_call(arg0: u64, arg1: u64, arg2: u64) {
    let call = PendingCall { arg0, arg1, arg2 };
    if CALLS.insert(current_tid(), &call, 0).is_err() {
        count_lost(kind::CALLS_FULL);
    }
}

#[inline(always)]
fn take_call() -> Option<PendingCall> {
    let tid = current_tid();
    // SAFETY: copied out before the entry is removed.
    let call = unsafe { CALLS.get(tid) }.copied()?;
    let _ = CALLS.remove(tid);
    Some(call)
}

#[inline(always)]
fn current_task() -> *const u8 {
    // SAFETY: no preconditions.
    unsafe { bpf_get_current_task() as *const u8 }
}

fn emit_wait(syscall: u32, pid: u32, status: i32, code: i32) {
    let ev = WaitEvent {
        hdr: header(kind::WAIT),
        waiter: task_info(current_task()),
        syscall,
        pid,
        status,
        code,
    };
    if EVENTS.output::<WaitEvent>(&ev, 0).is_err() {
        count_lost(kind::WAIT);
    }
}

/// Offsets of the classic syscall tracepoint records (stable ABI: see the `format` files).
const SYSCALL_ARG0: usize = 16;
const SYSCALL_RET: usize = 16;

#[inline(always)]
fn tp_arg(ctx: &TracePointContext, n: usize) -> u64 {
    // SAFETY: reading the tracepoint record at a documented offset.
    unsafe { ctx.read_at::<u64>(SYSCALL_ARG0 + 8 * n) }.unwrap_or(0)
}

#[inline(always)]
fn tp_ret(ctx: &TracePointContext) -> i64 {
    // SAFETY: as above.
    unsafe { ctx.read_at::<i64>(SYSCALL_RET) }.unwrap_or(-1)
}

#[tracepoint(category = "syscalls", name = "sys_enter_wait4")]
pub fn sys_enter_wait4(ctx: TracePointContext) -> u32 {
    if enabled() {
        // upid, stat_addr, options
        remember_call(tp_arg(&ctx, 1), tp_arg(&ctx, 2), 0);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_wait4")]
pub fn sys_exit_wait4(ctx: TracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let Some(call) = take_call() else { return 0 };
    let ret = tp_ret(&ctx);
    if ret <= 0 {
        return 0;
    }
    // The status tells a reap (exited or killed) from a stopped or continued child.
    let status = if call.arg0 != 0 {
        // SAFETY: user memory read by the helper, which copes with bad addresses.
        unsafe { bpf_probe_read_user(call.arg0 as *const i32) }.unwrap_or(-1)
    } else {
        -1
    };
    emit_wait(wait_syscall::WAIT4, ret as u32, status, 0);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_waitid")]
pub fn sys_enter_waitid(ctx: TracePointContext) -> u32 {
    if enabled() {
        // infop, options
        remember_call(tp_arg(&ctx, 2), tp_arg(&ctx, 3), 0);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_waitid")]
pub fn sys_exit_waitid(ctx: TracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let Some(call) = take_call() else { return 0 };
    if tp_ret(&ctx) != 0 || call.arg0 == 0 || call.arg1 & WNOWAIT != 0 {
        return 0;
    }
    // siginfo_t for SIGCHLD: si_code at 8, si_pid at 16, si_status at 24.
    let infop = call.arg0 as *const u8;
    // SAFETY: user memory reads by the helper.
    let (code, pid, status) = unsafe {
        (
            bpf_probe_read_user(infop.wrapping_add(8) as *const i32).unwrap_or(0),
            bpf_probe_read_user(infop.wrapping_add(16) as *const i32).unwrap_or(0),
            bpf_probe_read_user(infop.wrapping_add(24) as *const i32).unwrap_or(0),
        )
    };
    if pid > 0 && (CLD_EXITED..=CLD_DUMPED).contains(&code) {
        emit_wait(wait_syscall::WAITID, pid as u32, status, code);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_prctl")]
pub fn sys_enter_prctl(ctx: TracePointContext) -> u32 {
    if enabled() && tp_arg(&ctx, 0) == PR_SET_CHILD_SUBREAPER {
        remember_call(tp_arg(&ctx, 1), 0, 0);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_prctl")]
pub fn sys_exit_prctl(ctx: TracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let Some(call) = take_call() else { return 0 };
    if tp_ret(&ctx) != 0 {
        return 0;
    }
    let ev = SubreaperEvent {
        hdr: header(kind::SUBREAPER),
        task: task_info(current_task()),
        enabled: (call.arg0 != 0) as u32,
        _pad: 0,
    };
    if EVENTS.output::<SubreaperEvent>(&ev, 0).is_err() {
        count_lost(kind::SUBREAPER);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
