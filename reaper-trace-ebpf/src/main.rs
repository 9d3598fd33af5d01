//! reaper-trace's kernel side: small, bounded programs that copy what the kernel knows about
//! exits, adoptions and reaps into one ring buffer. Every decision is made in userspace.
//!
//! Field offsets are not compiled in: userspace resolves them from the running kernel's BTF
//! and writes them into `OFFSETS` before loading (the Rust eBPF toolchain has no CO-RE).
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

use core::ffi::c_void;
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

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
    ARGS_LEN, AdoptionChunkEvent, CHUNK_CHILDREN, COMM_LEN, DEAD_LEADER_GONE, DeadEvent,
    EventHeader, ExecEvent, ExitEvent, FORK_FLAG_THREAD, FREE_REPLACED_LEADER, ForkEvent,
    FreeEvent, LOST_SLOTS, MAX_ANCESTOR_THREADS, MAX_ANCESTORS, MAX_CHILDREN, MAX_CHILDREN_COUNTED,
    MAX_CHILDREN_COUNTED_BOUNDED, MAX_PID_LEVELS, MAX_SUBREAPERS, MAX_THREADS, MAX_TRACKED,
    MAX_TRACKED_ZOMBIE_PIDS, Offsets, PendingCall, PendingChildren, REPARENT_REAPER_ID_ONLY,
    REPARENT_RELEASED, ReaperSnapshot, ReparentEvent, SnapshotEvent, SubreaperEvent,
    TREE_MAX_THREADS, TaskId, TaskInfo, TreeTask, UPid, WaitEvent, exit_state, kind, ns_pid_key,
    standby, tree_flag, wait_syscall,
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
    task_state: 0,
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
    task_self_exec_id: 0,
    signal_live: 0,
    signal_nr_threads: 0,
    signal_flags: 0,
    signal_group_exit_code: 0,
    scope_tree: 0,
    exit_has_group_dead: 0,
    switch_has_prev_state: 0,
    valid: 0,
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

/// Scratch space to build a `PendingChildren` (too big for the 512-byte stack): one slot per
/// copy of the exit program (see [`standby`]), as a standby copy runs while the copies before
/// it are preempted on the same CPU, halfway through their use of their slot.
#[map]
static SCRATCH: PerCpuArray<PendingChildren> = PerCpuArray::with_max_entries(standby::COPIES, 0);

/// The calls the copies of a hook handled last on one CPU (see [`standby`]).
#[repr(C)]
#[derive(Clone, Copy)]
struct Handled {
    next: u64,
    tokens: [[u64; 2]; standby::RING as usize],
}

/// Per hook of [`standby`]: the tokens of the calls it handled last, on this CPU.
#[map]
static HANDLED: PerCpuArray<Handled> = PerCpuArray::with_max_entries(standby::HOOKS, 0);

/// Per hook of [`standby`]: calls a standby copy handled because the kernel had skipped the
/// primary one (userspace takes them from the primary's skipped calls: the rest is lost).
#[map]
static COVERED: PerCpuArray<u64> = PerCpuArray::with_max_entries(standby::HOOKS, 0);

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
/// verifier explores at every read. `T` must be plain data (any bit pattern valid).
#[inline(always)]
fn rd<T: Copy>(base: *const u8, off: usize) -> T {
    // Not zeroed first: the helper writes every byte either way (and zeroing an array would
    // make LLVM call `memset`).
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: bpf_probe_read_kernel copes with any address (NULL included) and writes all
    // `size_of::<T>()` bytes of `value`: what it read, or zeros when the read failed.
    unsafe {
        generated::bpf_probe_read_kernel(
            value.as_mut_ptr().cast(),
            core::mem::size_of::<T>() as u32,
            base.wrapping_add(off).cast(),
        );
        value.assume_init()
    }
}

/// Zeroes `*dst` with one helper call: `bpf_probe_read_kernel` clears its destination when the
/// read fails, and a read from address 0 always fails. A plain assignment of zeros to a large
/// field makes LLVM call `memset`, a byte loop that the verifier walks byte by byte.
#[inline(always)]
fn zero<T>(dst: &mut T) {
    // SAFETY: writes at most `size_of::<T>()` bytes into `dst`.
    unsafe {
        generated::bpf_probe_read_kernel(
            (dst as *mut T).cast(),
            core::mem::size_of::<T>() as u32,
            core::ptr::null(),
        )
    };
}

/// One step of a loop: gets the index and the loop's state; non-zero stops the loop. `run` is
/// inlined into a bounded loop; `callback` is the same step as a function of its own, for
/// `bpf_loop`. Before 5.13 or so the verifier cannot track precision through a call to
/// another function: it then treats every number as exact, prunes no state, and a bounded
/// loop calling a function walks out of its limit (5.10 refused the exit program so).
trait Step {
    fn run(index: u64, state: *mut c_void) -> i64;

    #[inline(never)]
    extern "C" fn callback(index: u64, state: *mut c_void) -> i64 {
        Self::run(index, state)
    }
}

/// How a program repeats a step. [`HelperLoop`] (`bpf_loop`, Linux 5.17+) has the verifier
/// check the step once, whatever the count; [`BoundedLoop`] is for older kernels, where the
/// verifier checks every iteration, so its bounds are lower. Userspace loads the programs
/// built on the one the kernel has.
trait Repeat {
    /// Children of an exiting task followed (at most `MAX_CHILDREN`).
    const CHILDREN: u32;
    /// How many children past the followed ones an exit counts (for the `lost` figures).
    const COUNTED: u32;
    /// Ancestors walked looking for subreapers (at most `MAX_ANCESTORS`).
    const ANCESTORS: u32;
    /// Threads scanned for a live one: of the exiting task, and of each subreaper ancestor.
    const THREADS: u32;
    const ANCESTOR_THREADS: u32;

    /// Runs step `S` for the indices `0..n` until it returns non-zero. `n` is bounded (a
    /// constant, or at most one of the constants above).
    fn repeat<S: Step>(n: u32, state: *mut c_void);

    /// Reports the adoptions of the first `count` (at most `CHILDREN`) children saved.
    fn report(adoptions: &mut Adoptions, count: u32);
}

struct HelperLoop;
struct BoundedLoop;

impl Repeat for HelperLoop {
    const CHILDREN: u32 = MAX_CHILDREN as u32;
    const COUNTED: u32 = MAX_CHILDREN_COUNTED;
    const ANCESTORS: u32 = MAX_ANCESTORS as u32;
    const THREADS: u32 = MAX_THREADS as u32;
    const ANCESTOR_THREADS: u32 = MAX_ANCESTOR_THREADS as u32;

    #[inline(always)]
    fn repeat<S: Step>(n: u32, state: *mut c_void) {
        // SAFETY: the callback has the signature bpf_loop expects and `state` outlives the
        // call.
        unsafe { generated::bpf_loop(n, S::callback as *mut c_void, state, 0) };
    }

    /// One `REPARENT` record per child: the verifier checks `ReportAdoption` once.
    #[inline(always)]
    fn report(adoptions: &mut Adoptions, count: u32) {
        Self::repeat::<ReportAdoption>(count, (adoptions as *mut Adoptions).cast());
    }
}

impl Repeat for BoundedLoop {
    const CHILDREN: u32 = BOUNDED_CHILDREN;
    const COUNTED: u32 = MAX_CHILDREN_COUNTED_BOUNDED;
    const ANCESTORS: u32 = BOUNDED_ANCESTORS;
    const THREADS: u32 = BOUNDED_THREADS;
    const ANCESTOR_THREADS: u32 = BOUNDED_ANCESTOR_THREADS;

    #[inline(always)]
    fn repeat<S: Step>(n: u32, state: *mut c_void) {
        let mut i = 0;
        while i < n {
            if S::run(i as u64, state) != 0 {
                break;
            }
            i += 1;
        }
    }

    /// `ADOPTION_CHUNK` records: each chunk is one straight path (no branch per child), so
    /// the verifier walks each once instead of every path of every child.
    #[inline(always)]
    fn report(adoptions: &mut Adoptions, count: u32) {
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
}

/// The bounds of the programs for kernels without `bpf_loop` (before 5.17): the verifier
/// walks every iteration of their loops, so they are lower. Past them the records say so
/// (children counted as lost, a snapshot marked incomplete, hence an `unknown` verdict).
/// Measured on 6.18 with `REAPER_TRACE_NO_BPF_LOOP=1`: 106,368 and 120,107 instructions
/// verified for the exit and switch programs; 5.10 verifies them in seconds under TCG.
const BOUNDED_CHILDREN: u32 = 64;
const BOUNDED_ANCESTORS: u32 = 16;
const BOUNDED_THREADS: u32 = 8;
const BOUNDED_ANCESTOR_THREADS: u32 = 4;

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

/// Adds `n` to a per-CPU counter. Atomically: where tracepoints are preemptible another
/// program on this CPU can add to the same slot between a read and a write.
#[inline(always)]
fn add(counter: Option<*mut u64>, n: u64) {
    if let Some(slot) = counter {
        // SAFETY: a valid, aligned map value that lives as long as the map. (The BPF target
        // has no `AtomicU64::fetch_add`; the intrinsic is BPF's atomic add, unused result.)
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(slot, n) };
    }
}

#[inline(always)]
fn count_lost_n(kind: u32, n: u64) {
    add(LOST.get_ptr_mut(kind), n);
}

/// The primary copy of a program (see [`standby`]).
const PRIMARY: u32 = 0;

/// Runs `work` as copy `COPY` of the programs of `hook`, for the call named by `token`. The
/// primary copy always works. A standby copy runs after the copies before it in the same call
/// (the kernel calls them in the order they were attached), so the call's token is among the
/// last ones handled on this CPU if one of them worked: it works only if the token is not.
/// Each copy notes the token before it works. Where a preempted copy's note is overwritten
/// halfway, a token can go missing: the record is then sent twice, and userspace drops the
/// second one (`standby_repeats`).
#[inline(always)]
fn run_copy<const COPY: u32>(hook: u32, token: [u64; 2], work: impl FnOnce()) {
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
            add(COVERED.get_ptr_mut(hook), 1);
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
        #[btf_tracepoint(function = $hook_fn)]
        pub fn $name(ctx: BtfTracePointContext) -> u32 {
            const $copy: u32 = $n;
            if enabled() {
                let $ctx = &ctx;
                run_copy::<$copy>($hook, $token, || $work);
            }
            0
        }
    };
}

/// The token of a call about `task` (argument `arg` of the tracepoint): its tid with its exec
/// count, and its start time. These name one fork, one exec, one exit and one release: a task
/// execs more than once, and a thread that execs takes its old leader's tid and start time
/// (`de_thread`), while the leader exits and is released with the count it had. Numbers, not
/// the task's address: the verifier allows no arithmetic on a trusted pointer.
#[inline(always)]
fn task_token(ctx: &BtfTracePointContext, arg: usize) -> [u64; 2] {
    let task: *const u8 = ctx.arg(arg);
    [
        Direct::read::<u32>(task, off!(task_pid)) as u64 | ((exec_id(task) as u64) << 32),
        Direct::read::<u64>(task, off!(task_start_boottime)),
    ]
}

/// The low 32 bits of `task_struct::self_exec_id`: how many times the task exec'd.
#[inline(always)]
fn exec_id(task: *const u8) -> u32 {
    Direct::read::<u64>(task, off!(task_self_exec_id)) as u32
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
    fn read<T: Copy>(base: *const u8, off: usize) -> T;

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
    fn read<T: Copy>(base: *const u8, off: usize) -> T {
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
    fn read<T: Copy>(base: *const u8, off: usize) -> T {
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
/// most `max` (a constant) threads. Returns the thread (tid 0 if none) and whether the scan
/// stopped early.
#[inline(always)]
fn find_alive_thread(task: *const u8, max: u32) -> (TaskId, bool) {
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

copies!(
    "sched_process_fork",
    standby::FORK,
    |ctx, COPY| (task_token(ctx, 1), on_fork(ctx)),
    sched_process_fork,
    sched_process_fork_standby,
    sched_process_fork_standby2
);

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
            ev.exec_id = exec_id(task);
            let filename = rd_ptr(bprm, off!(binprm_filename));
            let _ = bpf_probe_read_kernel_str_bytes(filename, &mut ev.filename);
            zero(&mut ev.args);
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

copies!(
    "sched_process_exec",
    standby::EXEC,
    |ctx, COPY| (task_token(ctx, 0), on_exec(ctx)),
    sched_process_exec,
    sched_process_exec_standby,
    sched_process_exec_standby2
);

/// Records the exit, captures what `find_new_reaper` will read, and saves the children to
/// follow until the final switch.
fn on_exit<L: Repeat, const COPY: u32>(ctx: &BtfTracePointContext) {
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
        save_children::<L, COPY>(ctx, task, id, head, first)
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
            ev.exec_id = exec_id(task);
            ev._pad = 0;
            read_pids::<Direct>(task, ev.task.level, &mut ev.pids);
        })
    };
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

/// Stores the children of exiting `task` in `PENDING`, to read their new parent at its final
/// switch. Returns how many are followed, and whether some are not.
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
    let mut walk = ChildWalk {
        head,
        pos: first,
        pending: scratch,
        count: 0,
    };
    L::repeat::<SaveChild>(L::CHILDREN, (&mut walk as *mut ChildWalk).cast());
    // Read back from the map: for the verifier the count is then any number, not the constant
    // each way out of a bounded loop gives. A constant would be made precise by the branches
    // below, and each of those ways would then walk the rest of the program again.
    pending.count = walk.count;
    // SAFETY: `pending` is the per-CPU scratch value.
    let n = unsafe { read_volatile(&pending.count) };
    let mut truncated = 0;
    if !walk.pos.is_null() && walk.pos != head {
        // More children than are followed: count them, so `lost` says how many adoptions
        // went unseen, and say so once.
        walk.count = 0;
        L::repeat::<CountChild>(L::COUNTED, (&mut walk as *mut ChildWalk).cast());
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
fn take_snapshot<L: Repeat>(task: *const u8, snap: &mut ReaperSnapshot) {
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
            // and before 5.13 (or so) the verifier forgets the bounds of a 32-bit value kept on
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

/// State of the walk over an exiting task's `children` list, for `save_child`.
#[repr(C)]
struct ChildWalk {
    head: *const u8,
    pos: *const u8,
    pending: *mut PendingChildren,
    count: u32,
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

/// The dead task's last switch: reparenting is done, read the results.
fn on_task_dead<L: Repeat>(task: *const u8) {
    let key = task as u64;
    // Only tasks in scope at their exit have an entry.
    // SAFETY: the map value stays valid until we remove it below.
    if let Some(pending) = unsafe { PENDING.get(&key) } {
        report_adoptions::<L>(task, pending);
        let _ = PENDING.remove(&key);
    }
    // A task killed inside wait or prctl never reaches the syscall's exit tracepoint. (Not a
    // replaced leader: its tid is the exec'd program's now, and so are the calls under it.)
    let tid = Direct::read::<u32>(task, off!(task_pid));
    if !is_replaced_leader(task, tid, Direct::read::<u32>(task, off!(task_tgid))) {
        let _ = CALLS.remove(&tid);
    }
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
                zero(&mut ev.task);
                ev.task.id.tid = tgid;
                ev.task.id.tgid = tgid;
                zero(&mut ev.parent);
                zero(&mut ev.pids);
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

/// What every adoption record of one exit shares, handed to each `report_adoption`.
#[repr(C)]
struct Adoptions {
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
    comm: [u8; COMM_LEN],
}

/// Reads a saved child without a branch (probe reads cannot fault) but the one comparison of
/// its ids: every branch here would multiply the paths the verifier walks per child.
#[inline(always)]
fn read_child(child: *const u8, id: &TaskId) -> ChildNow {
    let before = task_id::<Probe>(child);
    let parent = rd_ptr(child, off!(task_real_parent));
    let exit_state = rd::<u32>(child, off!(task_exit_state));
    let comm = rd::<[u8; COMM_LEN]>(child, off!(task_comm));
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

fn report_adoptions<L: Repeat>(father: *const u8, pending: &PendingChildren) {
    // The state find_new_reaper read, again, now that the kernel has chosen: userspace tells
    // a real mismatch from a state that changed in between (threads exiting together).
    // SAFETY: SnapshotEvent starts with the header; every other field is written.
    unsafe {
        emit::<SnapshotEvent>(kind::ADOPTIONS, |ev| {
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
    for i in 0..4 {
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
struct ReportAdoption;

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

/// Runs on every context switch: returns at once unless the previous task is dead. Its state
/// is read from the task (the tracepoint's `prev_state` argument only exists since 5.18): a
/// dead task's final switch is never a preemption, so the two agree for it.
#[inline(always)]
fn on_switch<L: Repeat>(ctx: &BtfTracePointContext) -> u32 {
    let prev: *const u8 = ctx.arg(1);
    // A rodata constant: the verifier drops the branch not taken (and never sees the missing
    // argument on older kernels).
    let prev_state: u32 = if off!(switch_has_prev_state) != 0 {
        ctx.arg(3)
    } else {
        Direct::read::<u32>(prev, off!(task_state))
    };
    if prev_state & TASK_DEAD == 0 || !enabled() {
        return 0;
    }
    on_task_dead::<L>(prev);
    0
}

#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch(ctx: BtfTracePointContext) -> u32 {
    on_switch::<HelperLoop>(&ctx)
}

/// `sched_switch` for kernels without `bpf_loop` (before 5.17).
#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch_bounded(ctx: BtfTracePointContext) -> u32 {
    on_switch::<BoundedLoop>(&ctx)
}

copies!(
    "sched_process_free",
    standby::FREE,
    |ctx, COPY| (task_token(ctx, 0), on_free(ctx)),
    sched_process_free,
    sched_process_free_standby,
    sched_process_free_standby2
);

/// Is `task` (thread `tid` of process `tgid`) a leader whose place a thread's exec took
/// (`de_thread`)? That thread has its tid and start time now, and the process lives on in it.
#[inline(always)]
fn is_replaced_leader(task: *const u8, tid: u32, tgid: u32) -> bool {
    tid == tgid && Direct::ptr(task, off!(task_group_leader)) != task
}

fn on_free(ctx: &BtfTracePointContext) {
    let task: *const u8 = ctx.arg(0);
    if !in_scope::<Direct>(task) {
        return;
    }
    let id = task_id::<Direct>(task);
    let replaced = is_replaced_leader(task, id.tid, id.tgid);
    if tree_scope() && id.tid == id.tgid && !replaced {
        // The process is gone for good: its pid may now name another one.
        let _ = TRACKED.remove(&id.tgid);
    }
    // SAFETY: FreeEvent starts with the header; every other field is written.
    unsafe {
        emit::<FreeEvent>(kind::FREE, |ev| {
            ev.task = id;
            ev.exec_id = exec_id(task);
            ev.flags = if replaced { FREE_REPLACED_LEADER } else { 0 };
        })
    };
}

#[inline(always)]
fn current_tid() -> u32 {
    bpf_get_current_pid_tgid() as u32
}

#[inline(always)]
fn remember_call(arg0: u64, arg1: u64, arg2: u64) {
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

/// How a syscall program finds the task it runs for. [`TypedCurrent`] gets a BTF-typed
/// pointer (`bpf_get_current_task_btf`, Linux 5.11+), read [`Direct`]ly; [`PlainCurrent`] a
/// plain address read through the [`Probe`] helper, for older kernels. Userspace loads the
/// programs built on the one the kernel has.
trait Current {
    type M: Mem;
    fn task() -> *const u8;
}

struct TypedCurrent;
struct PlainCurrent;

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

/// A wait that returned `pid`. In tree scope it is recorded when the waiter is in the tree,
/// or when `pid` names one of the tree's zombies in the waiter's namespace (a reaper outside
/// the tree that adopted one of its orphans).
fn emit_wait<C: Current>(syscall: u32, pid: u32, status: i32, code: i32) {
    let waiter = C::task();
    if tree_scope() && !in_scope::<C::M>(waiter) {
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
            ev.waiter = task_info::<C::M>(waiter);
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
#[inline(always)]
fn on_exit_wait4<C: Current>(ctx: &TracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let ret = tp_ret(ctx);
    if ret > 0 {
        emit_wait::<C>(wait_syscall::WAIT4, ret as u32, -1, 0);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_wait4")]
pub fn sys_exit_wait4(ctx: TracePointContext) -> u32 {
    on_exit_wait4::<TypedCurrent>(&ctx)
}

/// `sys_exit_wait4` for kernels without `bpf_get_current_task_btf` (before 5.11).
#[tracepoint(category = "syscalls", name = "sys_exit_wait4")]
pub fn sys_exit_wait4_plain(ctx: TracePointContext) -> u32 {
    on_exit_wait4::<PlainCurrent>(&ctx)
}

#[tracepoint(category = "syscalls", name = "sys_enter_waitid")]
pub fn sys_enter_waitid(ctx: TracePointContext) -> u32 {
    if enabled() {
        // infop, options
        remember_call(tp_arg(&ctx, 2), tp_arg(&ctx, 3), 0);
    }
    0
}

#[inline(always)]
fn on_exit_waitid<C: Current>(ctx: &TracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let Some(call) = take_call() else { return 0 };
    if tp_ret(ctx) != 0 || call.arg0 == 0 || call.arg1 & WNOWAIT != 0 {
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
        emit_wait::<C>(wait_syscall::WAITID, pid as u32, status, code);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_waitid")]
pub fn sys_exit_waitid(ctx: TracePointContext) -> u32 {
    on_exit_waitid::<TypedCurrent>(&ctx)
}

/// `sys_exit_waitid` for kernels without `bpf_get_current_task_btf` (before 5.11).
#[tracepoint(category = "syscalls", name = "sys_exit_waitid")]
pub fn sys_exit_waitid_plain(ctx: TracePointContext) -> u32 {
    on_exit_waitid::<PlainCurrent>(&ctx)
}

#[tracepoint(category = "syscalls", name = "sys_enter_prctl")]
pub fn sys_enter_prctl(ctx: TracePointContext) -> u32 {
    if enabled() && tp_arg(&ctx, 0) == PR_SET_CHILD_SUBREAPER {
        remember_call(tp_arg(&ctx, 1), 0, 0);
    }
    0
}

#[inline(always)]
fn on_exit_prctl<C: Current>(ctx: &TracePointContext) -> u32 {
    if !enabled() {
        return 0;
    }
    let Some(call) = take_call() else { return 0 };
    let task = C::task();
    if tp_ret(ctx) != 0 || !in_scope::<C::M>(task) {
        return 0;
    }
    // SAFETY: SubreaperEvent starts with the header; every other field is written.
    unsafe {
        emit::<SubreaperEvent>(kind::SUBREAPER, |ev| {
            ev.task = task_info::<C::M>(task);
            ev.enabled = (call.arg0 != 0) as u32;
            ev._pad = 0;
        })
    };
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_prctl")]
pub fn sys_exit_prctl(ctx: TracePointContext) -> u32 {
    on_exit_prctl::<TypedCurrent>(&ctx)
}

/// `sys_exit_prctl` for kernels without `bpf_get_current_task_btf` (before 5.11).
#[tracepoint(category = "syscalls", name = "sys_exit_prctl")]
pub fn sys_exit_prctl_plain(ctx: TracePointContext) -> u32 {
    on_exit_prctl::<PlainCurrent>(&ctx)
}

/// Scratch space for one `tree` record (too big to build comfortably on the stack, and
/// `bpf_seq_write` wants memory the verifier knows the size of).
#[map]
static TREE_SCRATCH: PerCpuArray<TreeTask> = PerCpuArray::with_max_entries(1, 0);

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
