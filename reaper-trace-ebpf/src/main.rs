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
        bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes, bpf_probe_read_user,
        generated::{self, bpf_ktime_get_boot_ns},
    },
    macros::{btf_tracepoint, map, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, TracePointContext},
};
use aya_log_ebpf::warn;
use reaper_trace_common::{
    ARGS_LEN, COMM_LEN, DEAD_LEADER_GONE, DeadEvent, EventHeader, ExecEvent, ExitEvent,
    FORK_FLAG_THREAD, ForkEvent, FreeEvent, LOST_SLOTS, MAX_ANCESTOR_THREADS, MAX_ANCESTORS,
    MAX_CHILDREN, MAX_CHILDREN_COUNTED, MAX_PID_LEVELS, MAX_SUBREAPERS, MAX_THREADS, MAX_TRACKED,
    MAX_TRACKED_ZOMBIE_PIDS, Offsets, PendingCall, PendingChildren, REPARENT_REAPER_ID_ONLY,
    REPARENT_RELEASED, ReaperSnapshot, ReparentEvent, SnapshotEvent, SubreaperEvent, TaskId,
    TaskInfo, UPid, WaitEvent, exit_state, kind, ns_pid_key, wait_syscall,
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
    signal_nr_threads: 0,
    signal_flags: 0,
    signal_group_exit_code: 0,
    scope_tree: 0,
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

/// Children of exiting tasks, keyed by the exiting task's address, until its final switch.
#[map]
static PENDING: HashMap<u64, PendingChildren> = HashMap::with_max_entries(256, 0);

/// In tree scope (`record -- CMD`): the processes of the tree, by tgid, with their leader's
/// start time (0 until the first record of the root, whose start userspace does not know).
/// Filled at fork, emptied when the leader is freed; records of other tasks are never
/// reserved, so a tree recording does not compete with the whole machine for ring space.
#[map]
static TRACKED: HashMap<u32, u64> = HashMap::with_max_entries(MAX_TRACKED, 0);

/// In tree scope: the pid numbers of the tree's zombies at every namespace level (see
/// `ns_pid_key`), so a wait by a reaper outside the tree that returns one is still seen.
#[map]
static TRACKED_ZOMBIE_PIDS: LruHashMap<u64, u32> =
    LruHashMap::with_max_entries(MAX_TRACKED_ZOMBIE_PIDS, 0);

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

/// Reads a `T` at `base + off` in kernel memory; zero when the read fails (the helper zeroes
/// its destination then). No branch on the result: a branch per read doubles the states the
/// verifier explores at every read.
#[inline(always)]
fn rd<T: Copy + Default>(base: *const u8, off: usize) -> T {
    let mut value = T::default();
    // SAFETY: bpf_probe_read_kernel copes with any address (NULL included) and writes at
    // most `size_of::<T>()` bytes into `value`.
    unsafe {
        generated::bpf_probe_read_kernel(
            (&mut value as *mut T).cast(),
            core::mem::size_of::<T>() as u32,
            base.wrapping_add(off).cast(),
        )
    };
    value
}

#[inline(always)]
fn rd_ptr(base: *const u8, off: usize) -> *const u8 {
    rd::<u64>(base, off) as *const u8
}

#[inline(always)]
fn header(kind: u32) -> EventHeader {
    EventHeader {
        kind,
        cpu: 0,
        // SAFETY: a helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
    }
}

#[inline(always)]
fn count_lost_n(kind: u32, n: u64) {
    if let Some(slot) = LOST.get_ptr_mut(kind) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += n };
    }
}

#[inline(always)]
fn count_lost(kind: u32) {
    count_lost_n(kind, 1);
}

/// The one way every record is written: reserve, stamp the header, let `fill` write every
/// other field in place (no copy of the record through the stack), submit. A full ring buffer
/// is counted per kind, never silent.
///
/// # Safety
/// `T` must be a record type whose first field is an `EventHeader`, and `fill` must write
/// every field after it.
#[inline(always)]
unsafe fn emit<T: 'static>(kind: u32, fill: impl FnOnce(&mut T)) {
    let Some(mut entry) = EVENTS.reserve::<T>(0) else {
        count_lost(kind);
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` is a reserved ring buffer slot of `size_of::<T>()` bytes that starts
    // with the header; the caller writes the rest before submit.
    unsafe {
        record.cast::<EventHeader>().write(header(kind));
        fill(&mut *record);
    }
    entry.submit(0);
}

/// How a program reads kernel memory. Typed pointers (tracepoint arguments, and pointers
/// loaded through them) are read [`Direct`]ly: the offsets are load-time constants (frozen
/// read-only data), so the verifier checks each access against the kernel's BTF and the JIT
/// turns it into one faulting load (zero at a bad address), many times cheaper than a helper
/// call. Plain addresses (saved in maps, walked through lists, variable offsets) go through
/// the [`Probe`] helper.
trait Mem {
    fn read<T: Copy + Default>(base: *const u8, off: usize) -> T;

    #[inline(always)]
    fn ptr(base: *const u8, off: usize) -> *const u8 {
        Self::read::<u64>(base, off) as *const u8
    }

    #[inline(always)]
    fn comm(task: *const u8) -> [u8; COMM_LEN] {
        rd::<[u8; COMM_LEN]>(task, off!(task_comm))
    }
}

struct Direct;
struct Probe;

impl Mem for Direct {
    #[inline(always)]
    fn read<T: Copy + Default>(base: *const u8, off: usize) -> T {
        // SAFETY: `base` is BTF-typed and `off` a constant: the verifier accepts the load
        // only if it is a field of the kernel type, and the JIT makes it fault-safe.
        unsafe { read_volatile(base.wrapping_add(off) as *const T) }
    }

    /// Byte by byte: the verifier allows loads within one element of `char comm[16]`.
    #[inline(always)]
    fn comm(task: *const u8) -> [u8; COMM_LEN] {
        let mut comm = [0u8; COMM_LEN];
        for (i, b) in comm.iter_mut().enumerate() {
            *b = Self::read::<u8>(task, off!(task_comm) + i);
        }
        comm
    }
}

impl Mem for Probe {
    #[inline(always)]
    fn read<T: Copy + Default>(base: *const u8, off: usize) -> T {
        rd::<T>(base, off)
    }
}

#[inline(always)]
fn task_id<M: Mem>(task: *const u8) -> TaskId {
    TaskId {
        tid: M::read::<u32>(task, off!(task_pid)),
        tgid: M::read::<u32>(task, off!(task_tgid)),
        start_ns: M::read::<u64>(task, off!(task_start_boottime)),
    }
}

/// `&pid->numbers[level]` for a `struct pid *` (a plain address: the offset varies).
#[inline(always)]
fn upid_at(pid: *const u8, level: u32) -> *const u8 {
    pid.wrapping_add(off!(pid_numbers) + level as usize * off!(upid_size))
}

#[inline(always)]
fn pid_ns_inum(ns: *const u8) -> u32 {
    rd::<u32>(ns, off!(pidns_inum))
}

/// `task`'s pid number and pid namespace inode at `level`. Level 0 (most tasks) is a
/// constant offset; deeper levels vary, so they are probe-read from the pid's address.
#[inline(always)]
fn pid_at<M: Mem>(task: *const u8, level: u32) -> UPid {
    if level == 0 {
        let upid = M::ptr(task, off!(task_thread_pid)).wrapping_add(off!(pid_numbers));
        UPid {
            nr: M::read::<u32>(upid, off!(upid_nr)),
            pidns: M::read::<u32>(M::ptr(upid, off!(upid_ns)), off!(pidns_inum)),
        }
    } else {
        let upid = upid_at(rd_ptr(task, off!(task_thread_pid)), level);
        UPid {
            nr: rd::<u32>(upid, off!(upid_nr)),
            pidns: pid_ns_inum(rd_ptr(upid, off!(upid_ns))),
        }
    }
}

/// The task's pid namespace (`task_active_pid_ns`) and its level.
#[inline(always)]
fn task_pid_ns(task: *const u8) -> (*const u8, u32) {
    let pid = rd_ptr(task, off!(task_thread_pid));
    let level = rd::<u32>(pid, off!(pid_level));
    (rd_ptr(upid_at(pid, level), off!(upid_ns)), level)
}

#[inline(always)]
fn task_info<M: Mem>(task: *const u8) -> TaskInfo {
    let id = task_id::<M>(task);
    let level = M::read::<u32>(M::ptr(task, off!(task_thread_pid)), off!(pid_level));
    let own = pid_at::<M>(task, level);
    let ns_tgid = if id.tid == id.tgid {
        own.nr
    } else {
        pid_at::<M>(M::ptr(task, off!(task_group_leader)), level).nr
    };
    TaskInfo {
        id,
        ns_tid: own.nr,
        ns_tgid,
        pidns: own.pidns,
        level,
        comm: M::comm(task),
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
            return (task_id::<Probe>(thread), false);
        }
        pos = rd_ptr(pos, 0);
    }
    (TaskId::default(), !pos.is_null() && pos != head)
}

/// `SIGNAL_GROUP_EXIT` in `signal_struct::flags`: the wait status is `group_exit_code`.
const SIGNAL_GROUP_EXIT: u32 = 0x4;

/// The start time that names a process: its leader's (`de_thread` gives an exec'ing thread
/// the leader's start time, so it stays the same across exec).
#[inline(always)]
fn leader_start<M: Mem>(task: *const u8) -> u64 {
    M::read::<u64>(
        M::ptr(task, off!(task_group_leader)),
        off!(task_start_boottime),
    )
}

#[inline(always)]
fn tree_scope() -> bool {
    off!(scope_tree) != 0
}

/// Is `task` one the user asked to trace? Always, unless tracing one command's tree.
#[inline(always)]
fn in_scope<M: Mem>(task: *const u8) -> bool {
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

/// Pid numbers of `task` at levels `0..=level` (capped), zeros above, and zeros once the task
/// has been released (its `thread_pid` is then NULL).
#[inline(always)]
fn read_pids<M: Mem>(task: *const u8, level: u32, pids: &mut [UPid; MAX_PID_LEVELS]) {
    for (l, slot) in pids.iter_mut().enumerate() {
        *slot = if l as u32 <= level {
            pid_at::<M>(task, l as u32)
        } else {
            UPid::default()
        };
    }
}

fn on_fork(ctx: &BtfTracePointContext) {
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    if tree_scope() {
        if !in_scope::<Direct>(parent) {
            return;
        }
        let tid = Direct::read::<u32>(child, off!(task_pid));
        let tgid = Direct::read::<u32>(child, off!(task_tgid));
        let start = Direct::read::<u64>(child, off!(task_start_boottime));
        if tid == tgid && TRACKED.insert(&tgid, &start, 0).is_err() {
            count_lost(kind::SCOPE_FULL);
        }
    }
    // SAFETY: ForkEvent starts with the header; every other field is written.
    unsafe {
        emit::<ForkEvent>(kind::FORK, |ev| {
            ev.parent = task_info::<Direct>(parent);
            ev.child = task_info::<Direct>(child);
            // The caller, unless CLONE_PARENT (or a thread) gave the child another parent.
            let real_parent = Direct::ptr(child, off!(task_real_parent));
            ev.real_parent = if real_parent == parent {
                ev.parent.id
            } else {
                task_id::<Direct>(real_parent)
            };
            ev.flags = if ev.child.id.tid != ev.child.id.tgid {
                FORK_FLAG_THREAD
            } else {
                0
            };
            ev._pad = 0;
        })
    };
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    if enabled() {
        on_fork(&ctx);
    }
    0
}

fn on_exec(ctx: &BtfTracePointContext) {
    let task: *const u8 = ctx.arg(0);
    let old_tid: u32 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);
    if !in_scope::<Direct>(task) {
        return;
    }
    // SAFETY: ExecEvent starts with the header; every other field is written.
    unsafe {
        emit::<ExecEvent>(kind::EXEC, |ev| {
            ev.task = task_info::<Direct>(task);
            ev.old_tid = old_tid;
            ev._pad = 0;
            ev.filename = [0; reaper_trace_common::FILENAME_LEN];
            let filename = rd_ptr(bprm, off!(binprm_filename));
            let _ = bpf_probe_read_kernel_str_bytes(filename, &mut ev.filename);
            ev.args = [0; ARGS_LEN];
            let mm = rd_ptr(task, off!(task_mm));
            let start = rd::<u64>(mm, off!(mm_arg_start));
            let end = rd::<u64>(mm, off!(mm_arg_end));
            let total = end.saturating_sub(start);
            let mut len = total;
            if len > ARGS_LEN as u64 {
                len = ARGS_LEN as u64;
            }
            let ok = generated::bpf_probe_read_user(
                ev.args.as_mut_ptr() as *mut _,
                len as u32,
                start as *const _,
            ) == 0;
            ev.args_total = total as u32;
            ev.args_len = if ok { len as u32 } else { 0 };
        })
    };
}

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> u32 {
    if enabled() {
        on_exec(&ctx);
    }
    0
}

/// Records the exit, captures what `find_new_reaper` will read, and saves the children to
/// follow until the final switch.
fn on_exit(ctx: &BtfTracePointContext) {
    let task: *const u8 = ctx.arg(0);
    if !in_scope::<Direct>(task) {
        return;
    }
    let group_dead: u64 = if off!(exit_has_group_dead) != 0 {
        ctx.arg::<u64>(1) & 0xff
    } else {
        // Older kernels: the group is dead once no thread is left un-exited.
        (rd::<u32>(rd_ptr(task, off!(task_signal)), off!(signal_live)) == 0) as u64
    };
    // The children to follow, saved before the exit record is written (it says how many).
    let id = task_id::<Direct>(task);
    let head = task.wrapping_add(off!(task_children));
    let first = rd_ptr(task, off!(task_children));
    let (followed, truncated) = if !first.is_null() && first != head {
        save_children(ctx, task, id, head, first)
    } else {
        (0, 0)
    };
    // SAFETY: ExitEvent starts with the header; every other field is written.
    unsafe {
        emit::<ExitEvent>(kind::EXIT, |ev| {
            ev.task = task_info::<Direct>(task);
            ev.parent = task_id::<Direct>(Direct::ptr(task, off!(task_real_parent)));
            ev.exit_code = Direct::read::<u32>(task, off!(task_exit_code));
            ev.group_dead = group_dead as u32;
            ev.children_followed = followed;
            ev.children_truncated = truncated;
            read_pids::<Direct>(task, ev.task.level, &mut ev.pids);
        })
    };
    if followed > 0 {
        // SAFETY: SnapshotEvent starts with the header; every other field is written.
        unsafe {
            emit::<SnapshotEvent>(kind::EXIT_SNAPSHOT, |ev| {
                ev.father = id;
                ev.snapshot = ReaperSnapshot::default();
                take_snapshot(task, &mut ev.snapshot);
            })
        };
    }
}

/// Stores the children of exiting `task` in `PENDING`, to read their new parent at its final
/// switch. Returns how many are followed, and whether some are not.
#[inline(always)]
fn save_children(
    ctx: &BtfTracePointContext,
    task: *const u8,
    id: TaskId,
    head: *const u8,
    first: *const u8,
) -> (u32, u32) {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return (0, 1);
    };
    // SAFETY: per-CPU scratch, only this program on this CPU uses it.
    let pending = unsafe { &mut *scratch };
    pending.father = id;
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
    pending.count = n;
    let mut truncated = 0;
    if !walk.pos.is_null() && walk.pos != head {
        // More children than are followed: count them, so `lost` says how many adoptions
        // went unseen, and say so once.
        walk.count = 0;
        // SAFETY: as above.
        unsafe {
            generated::bpf_loop(
                MAX_CHILDREN_COUNTED,
                count_child as *mut core::ffi::c_void,
                (&mut walk as *mut ChildWalk).cast(),
                0,
            );
        }
        truncated = 1;
        count_lost_n(kind::CHILDREN_OVERFLOW, walk.count as u64);
        warn!(
            ctx,
            "task {} exits with more than {} children: only those are followed",
            id.tid,
            MAX_CHILDREN as u32
        );
    }
    if PENDING.insert(task as u64, &*pending, 0).is_err() {
        count_lost_n(kind::CHILDREN_OVERFLOW, n as u64);
        warn!(
            ctx,
            "task {} exits with children but the map of pending exits is full: its adoptions are not followed",
            id.tid
        );
        return (0, 1);
    }
    (n, truncated)
}

/// What `find_new_reaper` reads for `task`'s children, as it is now. `snap` starts zeroed.
#[inline(always)]
fn take_snapshot(task: *const u8, snap: &mut ReaperSnapshot) {
    let (alive, incomplete) = find_alive_thread::<MAX_THREADS>(task);
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
        let (alive, incomplete) = find_alive_thread::<MAX_ANCESTOR_THREADS>(ancestor);
        snap.subreapers[i].task = task_id::<Probe>(ancestor);
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
    pending.children[i].id = task_id::<Probe>(child);
    // From the index, not `+= 1`: an exact count per iteration would give the verifier a new
    // state each time round (it would walk all 256 iterations instead of converging).
    walk.count = index as u32 + 1;
    walk.pos = rd_ptr(child, off!(task_sibling));
    0
}

/// Counts one child past those followed (bpf_loop callback); stops at the end of the list.
#[inline(never)]
extern "C" fn count_child(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
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

#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> u32 {
    if enabled() {
        on_exit(&ctx);
    }
    0
}

/// The dead task's last switch: reparenting is done, read the results.
fn on_task_dead(task: *const u8) {
    let key = task as u64;
    // Only tasks in scope at their exit have an entry.
    // SAFETY: the map value stays valid until we remove it below.
    if let Some(pending) = unsafe { PENDING.get(&key) } {
        report_adoptions(task, pending);
        let _ = PENDING.remove(&key);
    }
    // A task killed inside wait or prctl never reaches the syscall's exit tracepoint.
    let _ = CALLS.remove(&Direct::read::<u32>(task, off!(task_pid)));
    // The process is done once no other thread is left to release (`nr_threads` counts the
    // threads not yet released; exited threads are released before their final switch).
    let signal = Direct::ptr(task, off!(task_signal));
    if Direct::read::<u32>(signal, off!(signal_nr_threads)) <= 1 && in_scope::<Direct>(task) {
        report_dead(task, signal);
    }
}

/// Is `leader` still the leader of the group whose signal struct is `signal` (its memory not
/// released and reused)? `signal` is held by the task whose final switch this is.
#[inline(always)]
fn is_leader_of(leader: *const u8, tgid: u32, signal: *const u8) -> bool {
    Direct::read::<u32>(leader, off!(task_pid)) == tgid
        && Direct::ptr(leader, off!(task_signal)) == signal
}

fn report_dead(task: *const u8, signal: *const u8) {
    let tgid = Direct::read::<u32>(task, off!(task_tgid));
    let leader = Direct::ptr(task, off!(task_group_leader));
    let mut flags = 0;
    let mut exit_state = 0;
    if is_leader_of(leader, tgid, signal) {
        exit_state = Direct::read::<u32>(leader, off!(task_exit_state));
        if exit_state == 0 {
            // The leader has not exited: the process lives on.
            return;
        }
    } else {
        flags = DEAD_LEADER_GONE;
    }
    let group_exit = Direct::read::<u32>(signal, off!(signal_flags)) & SIGNAL_GROUP_EXIT != 0;
    // SAFETY: DeadEvent starts with the header; every other field is written.
    unsafe {
        emit::<DeadEvent>(kind::DEAD, |ev| {
            ev.last = task_id::<Direct>(task);
            ev.exit_code = if group_exit {
                Direct::read::<u32>(signal, off!(signal_group_exit_code))
            } else {
                Direct::read::<u32>(leader, off!(task_exit_code))
            };
            ev.task = task_info::<Direct>(leader);
            ev.parent = task_info::<Direct>(Direct::ptr(leader, off!(task_real_parent)));
            read_pids::<Direct>(leader, ev.task.level, &mut ev.pids);
            ev.exit_state = exit_state;
            ev._pad = 0;
            // Read again: what was read is only the leader's if it still is.
            if flags != 0 || !is_leader_of(leader, tgid, signal) {
                ev.task = TaskInfo::default();
                ev.task.id.tid = tgid;
                ev.task.id.tgid = tgid;
                ev.parent = TaskInfo::default();
                ev.pids = [UPid::default(); MAX_PID_LEVELS];
                ev.exit_state = 0;
                flags = DEAD_LEADER_GONE;
            }
            ev.flags = flags;
            if tree_scope() && ev.exit_state == exit_state::EXIT_ZOMBIE {
                // A reaper outside the tree may wait for it: let its wait through.
                for upid in ev.pids.iter() {
                    if upid.nr != 0 {
                        let _ =
                            TRACKED_ZOMBIE_PIDS.insert(&ns_pid_key(upid.pidns, upid.nr), &tgid, 0);
                    }
                }
            }
        })
    };
}

/// What every adoption record of one exit shares, handed to `report_adoption` by `bpf_loop`.
#[repr(C)]
struct Adoptions {
    pending: *const PendingChildren,
    reaper: *const u8,
    reaper_info: TaskInfo,
    reaper_is_subreaper: u32,
}

/// The child's fields that `report_adoption` needs, or `None` if the saved child is no longer
/// that task (released, its memory possibly reused): the id is read before and after.
#[inline(always)]
fn read_child(child: *const u8, id: &TaskId) -> Option<(*const u8, u32, [u8; COMM_LEN])> {
    if task_id::<Probe>(child) != *id {
        return None;
    }
    let parent = rd_ptr(child, off!(task_real_parent));
    let state = rd::<u32>(child, off!(task_exit_state));
    let comm = rd::<[u8; COMM_LEN]>(child, off!(task_comm));
    (task_id::<Probe>(child) == *id).then_some((parent, state, comm))
}

fn report_adoptions(father: *const u8, pending: &PendingChildren) {
    // The state find_new_reaper read, again, now that the kernel has chosen: userspace tells
    // a real mismatch from a state that changed in between (threads exiting together).
    // SAFETY: SnapshotEvent starts with the header; every other field is written.
    unsafe {
        emit::<SnapshotEvent>(kind::ADOPTIONS, |ev| {
            ev.father = pending.father;
            ev.snapshot = ReaperSnapshot::default();
            take_snapshot(father, &mut ev.snapshot);
        })
    };
    let count = (pending.count as usize).min(MAX_CHILDREN);
    // The kernel gives every child of a task the same new parent: read it once, from the
    // first saved child that is still the task that was saved.
    let mut reaper: *const u8 = core::ptr::null();
    for i in 0..4 {
        if i >= count {
            break;
        }
        let saved = &pending.children[i];
        if let Some((parent, _, _)) = read_child(saved.task as *const u8, &saved.id) {
            reaper = parent;
            break;
        }
    }
    let mut ctx = Adoptions {
        pending,
        reaper,
        reaper_info: task_info::<Probe>(reaper),
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
    let child = read_child(saved.task as *const u8, &saved.id);
    // SAFETY: ReparentEvent starts with the header; every other field is written.
    unsafe {
        emit::<ReparentEvent>(kind::REPARENT, |ev| {
            ev.orphan = saved.id;
            ev.father = pending.father;
            ev._pad = 0;
            match child {
                None => {
                    ev.orphan_comm = [0; COMM_LEN];
                    ev.reaper = TaskInfo::default();
                    ev.reaper_is_subreaper = 0;
                    ev.orphan_exit_state = 0;
                    ev.flags = REPARENT_RELEASED;
                }
                Some((parent, state, comm)) => {
                    ev.orphan_comm = comm;
                    ev.orphan_exit_state = state;
                    if parent == ctx.reaper {
                        ev.reaper = ctx.reaper_info;
                        ev.reaper_is_subreaper = ctx.reaper_is_subreaper;
                        ev.flags = 0;
                    } else {
                        ev.reaper = TaskInfo::default();
                        ev.reaper.id = task_id::<Probe>(parent);
                        ev.reaper_is_subreaper = 0;
                        ev.flags = REPARENT_REAPER_ID_ONLY;
                    }
                }
            }
        })
    };
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
    if !in_scope::<Direct>(task) {
        return 0;
    }
    let id = task_id::<Direct>(task);
    if tree_scope() && id.tid == id.tgid {
        // The process is gone for good: its pid may now name another one.
        let _ = TRACKED.remove(&id.tgid);
    }
    // SAFETY: FreeEvent starts with the header; every other field is written.
    unsafe { emit::<FreeEvent>(kind::FREE, |ev| ev.task = id) };
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

/// The current task as a BTF-typed pointer: read [`Direct`]ly.
#[inline(always)]
fn current_task() -> *const u8 {
    // SAFETY: no preconditions.
    unsafe { generated::bpf_get_current_task_btf() as *const u8 }
}

/// A wait that returned `pid`. In tree scope it is recorded when the waiter is in the tree,
/// or when `pid` names one of the tree's zombies in the waiter's namespace (a reaper outside
/// the tree that adopted one of its orphans).
fn emit_wait(syscall: u32, pid: u32, status: i32, code: i32) {
    let waiter = current_task();
    if tree_scope() && !in_scope::<Direct>(waiter) {
        let (ns, _) = task_pid_ns(waiter);
        let key = ns_pid_key(pid_ns_inum(ns), pid);
        // SAFETY: only the presence is used.
        if unsafe { TRACKED_ZOMBIE_PIDS.get(&key) }.is_none() {
            return;
        }
        let _ = TRACKED_ZOMBIE_PIDS.remove(&key);
    }
    // SAFETY: WaitEvent starts with the header; every other field is written.
    unsafe {
        emit::<WaitEvent>(kind::WAIT, |ev| {
            ev.waiter = task_info::<Direct>(waiter);
            ev.syscall = syscall;
            ev.pid = pid;
            ev.status = status;
            ev.code = code;
        })
    };
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
fn tp_arg(ctx: &TracePointContext, n: usize) -> u64 {
    tp_field::<u64>(ctx, SYSCALL_ARG0 + 8 * n)
}

#[inline(always)]
fn tp_ret(ctx: &TracePointContext) -> i64 {
    tp_field::<i64>(ctx, SYSCALL_RET)
}

/// wait4's result is enough: the pid it returns names a process the model knows to be
/// exiting or a zombie (a reap), or one that stopped or continued (not a reap). So no entry
/// program, no map of pending calls, and no user memory read for it.
#[tracepoint(category = "syscalls", name = "sys_exit_wait4")]
pub fn sys_exit_wait4(ctx: TracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let ret = tp_ret(&ctx);
    if ret > 0 {
        emit_wait(wait_syscall::WAIT4, ret as u32, -1, 0);
    }
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
    let task = current_task();
    if tp_ret(&ctx) != 0 || !in_scope::<Direct>(task) {
        return 0;
    }
    // SAFETY: SubreaperEvent starts with the header; every other field is written.
    unsafe {
        emit::<SubreaperEvent>(kind::SUBREAPER, |ev| {
            ev.task = task_info::<Direct>(task);
            ev.enabled = (call.arg0 != 0) as u32;
            ev._pad = 0;
        })
    };
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

/// The floor the bench compares against: programs that do nothing, on the same hooks. Loaded
/// only by `reaper-trace floor` (never by the tracer); their run time is what the hook and the
/// BPF dispatch cost alone.
mod floor {
    use super::*;

    #[btf_tracepoint(function = "sched_process_fork")]
    pub fn floor_fork(_ctx: BtfTracePointContext) -> u32 {
        0
    }

    #[btf_tracepoint(function = "sched_process_exec")]
    pub fn floor_exec(_ctx: BtfTracePointContext) -> u32 {
        0
    }

    #[btf_tracepoint(function = "sched_process_exit")]
    pub fn floor_exit(_ctx: BtfTracePointContext) -> u32 {
        0
    }

    #[btf_tracepoint(function = "sched_switch")]
    pub fn floor_switch(_ctx: BtfTracePointContext) -> u32 {
        0
    }

    #[btf_tracepoint(function = "sched_process_free")]
    pub fn floor_free(_ctx: BtfTracePointContext) -> u32 {
        0
    }

    #[tracepoint(category = "syscalls", name = "sys_exit_wait4")]
    pub fn floor_exit_wait4(_ctx: TracePointContext) -> u32 {
        0
    }
}
